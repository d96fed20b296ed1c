//! The one home of what the integration tests share. Every test file declares `mod support;`
//! and takes what it needs:
//!
//! - [`lab`]: a temporary root made from a fixture (or the shipped `cfg/`, or for the Docker
//!   tests, with users and ports of its own), the binaries run on it, its files read back;
//! - [`run`]: the real binaries, run with a fixed clock (`GPU_BOOKING_NOW`) and a time limit,
//!   and what a run did;
//! - [`fixtures`]: `tests/fixtures/`, scratch copies of it, and line edits that damage a copy;
//! - [`snapshot`]: every file under a root, for "nothing changed" checks;
//! - [`schedule`]: the schedule files' names, header and rows;
//! - [`ports`]: forward ports and local ports;
//! - [`docker`], [`images`], [`debian_image`], [`mounts`]: the engine, the test images, and a
//!   volumes folder mounted as a deployment mounts it;
//! - [`terminal`], [`screen`]: a program on a pseudo-terminal, read as a person reads it.
//!
//! Each test file uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod debian_image;
pub mod docker;
pub mod fixtures;
pub mod images;
pub mod lab;
pub mod mounts;
pub mod ports;
pub mod run;
pub mod schedule;
pub mod screen;
pub mod snapshot;
pub mod terminal;
