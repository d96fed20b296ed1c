//! The canonical text forms: times as the files write them (`YYYY-MM-DD HH:MM:SS`), times as
//! people read them (`YYYY-MM-DD HH:MM`), and GPU id lists as Python list literals (`[0, 1]`).

use chrono::NaiveDateTime;

use crate::error::quoted;
use crate::model::ranges;

/// `YYYY-MM-DD HH:MM`: how messages, `--json` and people write a time.
pub const MINUTES: &str = "%Y-%m-%d %H:%M";

/// Reads `YYYY-MM-DD HH:MM:SS`, with or without a fractional part (pandas wrote one).
pub fn parse_time(text: &str) -> Result<NaiveDateTime, String> {
    // The exact shape every tool writes is read by hand: chrono's general parser is most of
    // the time `book list` spends on a long schedule.
    if let Some(time) = parse_plain_time(text) {
        return Ok(time);
    }
    for format in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d %H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(text, format) {
            return Ok(time);
        }
    }
    Err(format!("expected a time YYYY-MM-DD HH:MM:SS, found {}", quoted(text)))
}

fn parse_plain_time(text: &str) -> Option<NaiveDateTime> {
    parse_plain_time_remembering(text, &mut None)
}

/// [`parse_plain_time`], remembering the last date read: rows in a row mostly share their
/// date, and working out a date is half the time of reading one.
pub(crate) fn parse_plain_time_remembering(
    text: &str,
    last_date: &mut Option<([u8; 10], chrono::NaiveDate)>,
) -> Option<NaiveDateTime> {
    let bytes = text.as_bytes();
    if bytes.len() != 19
        || bytes[4] != b'-'
        || bytes[7] != b'-'
        || bytes[10] != b' '
        || bytes[13] != b':'
        || bytes[16] != b':'
    {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range]
            .iter()
            .try_fold(0u32, |value, byte| byte.is_ascii_digit().then(|| value * 10 + u32::from(byte - b'0')))
    };
    let written: [u8; 10] = bytes[..10].try_into().ok()?;
    let date = match *last_date {
        Some((known, date)) if known == written => date,
        _ => {
            let date = chrono::NaiveDate::from_ymd_opt(number(0..4)? as i32, number(5..7)?, number(8..10)?)?;
            *last_date = Some((written, date));
            date
        }
    };
    date.and_hms_opt(number(11..13)?, number(14..16)?, number(17..19)?)
}

pub fn format_time(time: NaiveDateTime) -> String {
    use chrono::{Datelike, Timelike};
    // Written digit by digit: `format!` costs more than the rest of `book list --json`.
    let mut text = String::with_capacity(19);
    let mut push = |value: u32, width: u32, separator: Option<char>| {
        for place in (0..width).rev() {
            let digit = value / 10u32.pow(place) % 10;
            text.push(char::from(b'0' + digit as u8));
        }
        if let Some(separator) = separator {
            text.push(separator);
        }
    };
    push(time.year().max(0) as u32, 4, Some('-'));
    push(time.month(), 2, Some('-'));
    push(time.day(), 2, Some(' '));
    push(time.hour(), 2, Some(':'));
    push(time.minute(), 2, Some(':'));
    push(time.second(), 2, None);
    text
}

/// `YYYY-MM-DD HH:MM`, the form `--json` and messages use.
pub fn format_minutes(time: NaiveDateTime) -> String {
    let mut text = crate::model::format_time(time);
    text.truncate(16);
    text
}

pub fn serialize_minutes<S: serde::Serializer>(time: &NaiveDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_minutes(*time))
}

/// Reads a Python list literal of GPU ids: `[0, 1]`, `[3]`, `[]` (an empty cell is `[]`).
pub fn parse_gpu_list(text: &str) -> Result<Vec<u32>, String> {
    let mut gpus = Vec::new();
    parse_gpu_list_into(text, &mut gpus)?;
    Ok(gpus)
}

/// [`parse_gpu_list`] into a buffer the caller keeps, so a long file is read without an
/// allocation per row.
pub(crate) fn parse_gpu_list_into(text: &str, gpus: &mut Vec<u32>) -> Result<(), String> {
    gpus.clear();
    let expected = || format!("expected a list of GPU ids such as \"[0, 1]\", found {}", quoted(text));
    if text.is_empty() {
        return Ok(());
    }
    let inner = text.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')).ok_or_else(expected)?;
    for item in inner.split(',') {
        let item = item.trim();
        if item.is_empty() && inner.trim().is_empty() {
            continue;
        }
        let id: u32 = item.parse().map_err(|_| expected())?;
        // Ids index the host's GPUs: one beyond any host is a damaged cell, and a list can
        // then hold at most `MAX_GPUS` ids.
        if id >= ranges::MAX_GPUS {
            return Err(format!(
                "GPU {id} is beyond any host (ids are 0 to {}), in {}",
                ranges::MAX_GPUS - 1,
                quoted(text)
            ));
        }
        if gpus.contains(&id) {
            return Err(format!("GPU {id} is listed twice in {}", quoted(text)));
        }
        gpus.push(id);
    }
    Ok(())
}

pub fn format_gpu_list(gpus: &[u32]) -> String {
    let ids: Vec<String> = gpus.iter().map(u32::to_string).collect();
    format!("[{}]", ids.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpu_lists_read_like_python_literals() {
        assert_eq!(parse_gpu_list("[0, 1]"), Ok(vec![0, 1]));
        assert_eq!(parse_gpu_list("[3]"), Ok(vec![3]));
        assert_eq!(parse_gpu_list("[]"), Ok(vec![]));
        assert_eq!(parse_gpu_list(""), Ok(vec![]));
        assert!(parse_gpu_list("[0,, 1]").is_err());
        assert!(parse_gpu_list("0, 1").is_err());
        assert!(parse_gpu_list("[-1]").is_err());
        assert!(parse_gpu_list("[1, 1]").is_err());
        assert_eq!(format_gpu_list(&[0, 1]), "[0, 1]");
        assert_eq!(format_gpu_list(&[]), "[]");
    }

    #[test]
    fn times_read_with_and_without_fraction() {
        let plain = parse_time("2023-01-01 13:30:00").unwrap();
        assert_eq!(parse_time("2023-01-01 13:30:00.000000").unwrap(), plain);
        assert_eq!(format_time(plain), "2023-01-01 13:30:00");
        assert!(parse_time("2023-13-01 13:30:00").is_err());
        assert!(parse_time("tomorrow").is_err());
    }
}
