//! The schedule files as a person reads them: their names, the original's header, and their
//! rows by column name, read by the `csv` crate rather than by the code under test.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

/// The original's header, which every schedule file keeps.
pub const HEADER: &str = "start,end,user_id,cpus,memory,gpus,forward_port,image,extra_command\n";

/// One row, as column name → value.
pub type Row = BTreeMap<String, String>;

/// The schedule files: bookings to come, those whose container runs (or should), and the
/// history of those that ended or were cancelled.
pub const BOOKING: &str = "jobs/booking.csv";
pub const USING: &str = "jobs/using.csv";
pub const USED: &str = "jobs/used.csv";

/// The rows of `root/relative`, header checked; a missing or empty file has none.
pub fn rows(root: &Path, relative: &str) -> Vec<Row> {
    let text = fs::read_to_string(root.join(relative)).unwrap_or_default();
    if text.is_empty() {
        return Vec::new();
    }
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers().unwrap_or_else(|error| panic!("{relative}: no header: {error}")).clone();
    assert_eq!(
        header.iter().collect::<Vec<_>>().join(","),
        HEADER.trim_end(),
        "{relative} must keep the original's header"
    );
    reader
        .records()
        .map(|record| {
            let record = record.unwrap_or_else(|error| panic!("{relative}: a bad row: {error}\n{text}"));
            header.iter().zip(record.iter()).map(|(name, value)| (name.to_string(), value.to_string())).collect()
        })
        .collect()
}

/// A time in the state files' form: `YYYY-MM-DD HH:MM` with seconds.
pub fn full(time: &str) -> String {
    format!("{time}:00")
}

/// What each monitor pass did, in the original's format.
pub const MONITOR_LOG: &str = "jobs/monitor.log";
/// Requests for a pass (`now`) and restarts (a user id), one a line.
pub const MONITOR_EXEC: &str = "jobs/monitor_exec";
