//! The schedule files round-trip: what gpu-booking reads from the original's CSV it writes
//! back in the original's format, so either system can read the other's files.

mod support;

use std::fs;

use chrono::NaiveDateTime;
use gpu_booking::model::{Booking, UserId};
use gpu_booking::store::lock::{ExclusiveLock, SharedLock};
use gpu_booking::store::root::Root;
use gpu_booking::store::schedule::{self, ActiveFile};

use support::fixtures::{copy_fixture, fixture, names_in};
use support::schedule::HEADER;

fn read_booking_csv(root: &Root) -> Vec<Booking> {
    let lock = SharedLock::acquire(root).unwrap();
    schedule::read(&lock, ActiveFile::Booking).unwrap()
}

#[test]
fn read_write_read_is_lossless_and_writes_the_originals_format() {
    let scratch = copy_fixture("upstream");
    let root = Root::new(scratch.path());
    let original = read_booking_csv(&root);
    assert_eq!(original.len(), 2);

    // Write them into the (empty) using.csv and back over booking.csv.
    {
        let lock = ExclusiveLock::acquire(&root).unwrap();
        schedule::write(&lock, ActiveFile::Using, &original).unwrap();
        schedule::write(&lock, ActiveFile::Booking, &original).unwrap();
    }
    let lock = SharedLock::acquire(&root).unwrap();
    assert_eq!(schedule::read(&lock, ActiveFile::Using).unwrap(), original);
    assert_eq!(schedule::read(&lock, ActiveFile::Booking).unwrap(), original);
    drop(lock);

    let written = fs::read_to_string(scratch.path().join("jobs/booking.csv")).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 3, "{written}");
    assert_eq!(lines[0], HEADER.trim_end());
    // Times `YYYY-MM-DD HH:MM:SS`, a list of several GPUs quoted as the csv module did, a
    // single GPU bare, an empty image and command as empty fields.
    assert_eq!(lines[1], "2026-11-24 09:30:00,2026-11-25 09:30:00,m11007s05,4.5,16,\"[0, 1]\",10001,,");
    assert_eq!(
        lines[2],
        "2026-11-24 12:30:00,2026-11-25 12:30:00,m11007s05-1,4.5,16,[3],10002,\
         rober5566a/aivc-server:cuda11.8.0-cudnn8-devel-ubuntu20.04,python3 -m http.server 8888"
    );
    // In fact it is the original's file, byte for byte.
    assert_eq!(written, fs::read_to_string(fixture("upstream").join("jobs/booking.csv")).unwrap());

    // The rewrite is atomic: no temporary file is left beside the state files.
    assert_eq!(names_in(&scratch.path().join("jobs")), [".lock", "booking.csv", "used.csv", "using.csv"]);
}

#[test]
fn writing_creates_a_missing_file_with_its_header() {
    let scratch = tempfile::tempdir().unwrap();
    let root = Root::new(scratch.path());
    // Nothing there yet: reads as empty.
    assert!(read_booking_csv(&root).is_empty());
    {
        let lock = ExclusiveLock::acquire(&root).unwrap();
        schedule::ensure_files(&lock).unwrap();
    }
    for name in ["booking.csv", "using.csv", "used.csv"] {
        assert_eq!(fs::read_to_string(scratch.path().join("jobs").join(name)).unwrap(), HEADER, "{name}");
    }
    // An empty list round-trips too.
    assert!(read_booking_csv(&root).is_empty());
}

#[test]
fn times_with_a_fractional_part_read_and_are_written_without_it() {
    let scratch = copy_fixture("upstream");
    let root = Root::new(scratch.path());
    fs::write(
        scratch.path().join("jobs/booking.csv"),
        format!("{HEADER}2023-01-01 13:30:00.000000,2023-01-02 13:30:00.000000,m11007s05,2,8,[],10001,,\n"),
    )
    .unwrap();
    let bookings = read_booking_csv(&root);
    let at = |text| NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S").unwrap();
    assert_eq!(
        bookings,
        vec![Booking {
            start: at("2023-01-01 13:30:00"),
            end: at("2023-01-02 13:30:00"),
            user_id: UserId::parse("m11007s05").unwrap(),
            cpus: 2.0,
            memory: 8,
            gpus: vec![],
            forward_port: 10001,
            image: None,
            extra_command: None,
        }]
    );

    let lock = ExclusiveLock::acquire(&root).unwrap();
    schedule::write(&lock, ActiveFile::Booking, &bookings).unwrap();
    drop(lock);
    assert_eq!(
        fs::read_to_string(scratch.path().join("jobs/booking.csv")).unwrap(),
        format!("{HEADER}2023-01-01 13:30:00,2023-01-02 13:30:00,m11007s05,2,8,[],10001,,\n")
    );
    assert_eq!(read_booking_csv(&root), bookings);
}
