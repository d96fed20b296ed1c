//! gpu-booking: book time on a shared multi-GPU server.
//!
//! The library holds everything the four binaries share: the state files under `cfg/` and
//! `jobs/` (one module per file), the lock that guards them, the booking rules, and the
//! checks `enroll check` runs. The binaries only parse arguments, prompt, and map errors to
//! exit codes.

pub mod account;
pub mod booking;
pub mod check;
pub mod cli;
pub mod clock;
pub mod docker;
pub mod enrollment;
pub mod error;
pub mod gpu;
pub mod lab;
pub mod login_shell;
pub mod mail;
pub mod model;
pub mod monitor;
pub mod ownership;
pub mod password;
pub mod report;
pub mod rules;
pub mod safe_folder;
pub mod store;
pub mod views;
pub mod volumes;
