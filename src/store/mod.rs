//! Everything that reads or writes the state under `cfg/` and `jobs/`: one module per file,
//! the lock that guards them, and the durable-write primitives beneath.
//!
//! Locking rule for the whole layer: a writer takes `&ExclusiveLock`, a reader takes
//! `&impl LockHeld` (shared or exclusive), so no file is read or written without the lock held.
//! Paths reach the files only through [`root::Root`] and the lock's folder handle.

pub mod atomic_file;
pub mod config;
pub mod csv_scan;
pub mod faillock;
pub mod journal;
pub mod lock;
pub mod monitor_exec;
pub mod monitor_log;
pub mod notices;
pub mod queue;
pub mod root;
pub mod schedule;
pub mod state_folder;
pub mod text_file;
pub mod yaml_lines;
