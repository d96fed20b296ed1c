//! The sane range of every number in the configuration and in the schedule files, in one
//! place. Each is checked where its file is loaded, and a value outside it is an error naming
//! file, line and field: nothing downstream may size a loop or an allocation by a number
//! nobody checked (`max.gpus: 1e308` once made `book free` walk four billion GPU ids).
//!
//! The bounds are meant to be generous for any real multi-GPU server, so they only ever
//! refuse a typo or a damaged file. README, "Configuration", lists them.

use std::ops::RangeInclusive;

/// GPUs of the host (`max.gpus`), and of one booking's limit. A booking's GPU ids lie in
/// `0..MAX_GPUS`.
pub const GPUS: RangeInclusive<u32> = 0..=64;
pub const MAX_GPUS: u32 = *GPUS.end();

/// CPU cores of the host, a per-booking limit, and a booking's CPUs (fractions in
/// hundredths; see [`crate::rules::capacity::cpus_problem`]).
pub const CPUS: RangeInclusive<f64> = 1.0..=4096.0;

/// GB of RAM, of swap, and of memory (RAM + swap) — the host's, a per-booking limit's, and a
/// booking's. 65,536 GB is 64 TB.
pub const MEMORY_GB: RangeInclusive<f64> = 0.0..=65_536.0;

/// GB of a disk quota (`backup_space`, `work_space`): up to a petabyte.
pub const SPACE_GB: RangeInclusive<f64> = 0.0..=1_000_000.0;

/// The share of a booking's memory that is RAM (`max.shm_rate`): above 0, at most 1.
pub const SHM_RATE: RangeInclusive<f64> = 0.0..=1.0;

/// A forward port (`forward_port` in `users_config.yaml` and in the schedule): any TCP port
/// but 0. `enroll` and `book` hand out [`crate::rules::settings::PORT_RANGE`].
pub const PORTS: RangeInclusive<u16> = 1..=65_535;

/// `cfg/containers.yaml`.
pub const PIDS_LIMIT: RangeInclusive<i64> = 64..=4_194_304;
pub const OPEN_FILES_LIMIT: RangeInclusive<i64> = 1024..=1_048_576;
pub const WRITABLE_LAYER_GB: RangeInclusive<i64> = 1..=100_000;

/// An expression in `capability_config.yaml` (`ram / (ram + swap_size)`): its length, and how
/// deeply its parentheses nest (the parser recurses once per level).
pub const EXPRESSION_BYTES: usize = 256;
pub const EXPRESSION_DEPTH: usize = 16;

/// A configuration file (YAML under `cfg/`, `users_config.yaml` and its side file) is read
/// whole; one larger than this is refused before it is read. A thousand users take about
/// 1 MB.
pub const CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// `Err` saying what was expected when `value` lies outside `range`; `what` names the unit
/// (`"a number of GB"`).
pub fn check(value: f64, range: &RangeInclusive<f64>, what: &str) -> Result<(), String> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(format!(
            "expected {what} from {} to {}, found {}",
            crate::error::number(*range.start()),
            crate::error::number(*range.end()),
            crate::error::number(value)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_outside_its_range_says_the_range_and_the_value_in_short() {
        assert_eq!(check(4.0, &MEMORY_GB, "a number of GB"), Ok(()));
        assert_eq!(
            check(1e308, &MEMORY_GB, "a number of GB").unwrap_err(),
            "expected a number of GB from 0 to 65536, found 1e308"
        );
        assert!(check(-1.0, &SPACE_GB, "GB").is_err());
        assert!(check(f64::NAN, &SPACE_GB, "GB").is_err());
    }
}
