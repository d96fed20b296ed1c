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
    parse_plain_time_remembering(text.as_bytes(), &mut None)
}

/// [`parse_plain_time`] of a field's bytes, remembering the last date read: rows in a row
/// mostly share their date, and working out a date is half the time of reading one.
#[inline]
pub(crate) fn parse_plain_time_remembering(
    bytes: &[u8],
    last_date: &mut Option<([u8; 10], chrono::NaiveDate)>,
) -> Option<NaiveDateTime> {
    let bytes: &[u8; 19] = bytes.try_into().ok()?;
    let written: [u8; 10] = bytes[..10].try_into().ok()?;
    let date = match *last_date {
        Some((known, date)) if known == written => date,
        _ => {
            if bytes[4] != b'-' || bytes[7] != b'-' {
                return None;
            }
            let year = four_digits(&bytes[..4])?;
            let date =
                chrono::NaiveDate::from_ymd_opt(year as i32, two_digits(&bytes[5..7])?, two_digits(&bytes[8..10])?)?;
            *last_date = Some((written, date));
            date
        }
    };
    if bytes[10] != b' ' {
        return None;
    }
    let seconds = seconds_of_clock(bytes[11..].try_into().ok()?)?;
    Some(NaiveDateTime::new(date, chrono::NaiveTime::from_num_seconds_from_midnight_opt(seconds, 0)?))
}

/// `HH:MM:SS` as seconds since midnight, if it is a time of day (as `and_hms_opt` takes it):
/// all eight bytes checked at once.
#[inline(always)]
fn seconds_of_clock(clock: &[u8; 8]) -> Option<u32> {
    const LOW_SEVEN: u64 = 0x7F7F_7F7F_7F7F_7F7F;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // 0x80 − 10 in each byte: adding it sets a byte's high bit when the byte is 10 or more.
    const TEN_BELOW_HIGH: u64 = 0x7676_7676_7676_7676;
    const COLONS: u64 = 0x0000_FF00_00FF_0000;
    // Each byte against the one expected: a digit becomes its value, a colon 0, and any other
    // byte 10 or more (or, in a colon's place, not 0).
    let values = u64::from_le_bytes(*clock) ^ u64::from_le_bytes(*b"00:00:00");
    if ((((values & LOW_SEVEN) + TEN_BELOW_HIGH) | values) & HIGHS) != 0 || values & COLONS != 0 {
        return None;
    }
    let digit = |index: u32| ((values >> (8 * index)) & 0xFF) as u32;
    let (hours, minutes, seconds) = (digit(0) * 10 + digit(1), digit(3) * 10 + digit(4), digit(6) * 10 + digit(7));
    (hours < 24 && minutes < 60 && seconds < 60).then_some(hours * 3600 + minutes * 60 + seconds)
}

/// Two ASCII digits as a number.
#[inline(always)]
fn two_digits(bytes: &[u8]) -> Option<u32> {
    let (tens, ones) = (bytes[0].wrapping_sub(b'0'), bytes[1].wrapping_sub(b'0'));
    (tens < 10 && ones < 10).then(|| u32::from(tens) * 10 + u32::from(ones))
}

/// Four ASCII digits as a number.
#[inline(always)]
fn four_digits(bytes: &[u8]) -> Option<u32> {
    Some(two_digits(&bytes[..2])? * 100 + two_digits(&bytes[2..4])?)
}

pub fn format_time(time: NaiveDateTime) -> String {
    let mut text = String::with_capacity(19);
    push_time(&mut text, time);
    text
}

/// Appends `time` as [`format_time`] writes it, digit by digit: `format!` costs more than the
/// rest of `book list --json`, and a file of bookings is written without a string per time.
pub fn push_time(text: &mut String, time: NaiveDateTime) {
    use chrono::{Datelike, Timelike};
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
    if parse_plain_gpu_list(text.as_bytes(), gpus).is_some() {
        return Ok(());
    }
    parse_any_gpu_list_into(text, gpus)
}

/// [`parse_gpu_list_into`] for any form, naming what is wrong.
fn parse_any_gpu_list_into(text: &str, gpus: &mut Vec<u32>) -> Result<(), String> {
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

/// The GPU list as the tools write it, read without the general reader's searching and
/// trimming: `[` then ids of plain digits separated by commas, each with spaces around it or
/// not, then `]`. `None` for anything else, a repeated id or one beyond any host included:
/// the general reader then reads it (and names the problem). `gpus` is cleared first.
pub(crate) fn parse_plain_gpu_list(bytes: &[u8], gpus: &mut Vec<u32>) -> Option<()> {
    (parse_plain_gpu_list_prefix(bytes, gpus)? == bytes.len()).then_some(())
}

/// [`parse_plain_gpu_list`] of the list `bytes` starts with (up to its `]`); how long it is.
#[inline(always)]
pub(crate) fn parse_plain_gpu_list_prefix(bytes: &[u8], gpus: &mut Vec<u32>) -> Option<usize> {
    gpus.clear();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    // Plain loops: the lists are a few bytes long, where iterator adapters cost more than the
    // bytes themselves.
    let spaces = |mut at: usize| {
        while bytes.get(at) == Some(&b' ') {
            at += 1;
        }
        at
    };
    let mut at = spaces(1);
    if bytes.get(at) == Some(&b']') {
        return Some(at + 1);
    }
    loop {
        let first = at;
        let mut id: u32 = 0;
        while let Some(digit) = bytes.get(at).map(|byte| byte.wrapping_sub(b'0')) {
            if digit >= 10 {
                break;
            }
            if at - first == 9 {
                return None;
            }
            id = id * 10 + u32::from(digit);
            at += 1;
        }
        if at == first || id >= ranges::MAX_GPUS {
            return None;
        }
        for known in gpus.iter() {
            if *known == id {
                return None;
            }
        }
        gpus.push(id);
        at = spaces(at);
        match bytes.get(at)? {
            b']' => return Some(at + 1),
            b',' => at = spaces(at + 1),
            _ => return None,
        }
    }
}

pub fn format_gpu_list(gpus: &[u32]) -> String {
    let mut text = String::with_capacity(2 + 4 * gpus.len());
    push_gpu_list(&mut text, gpus);
    text
}

/// Appends `gpus` as [`format_gpu_list`] writes them.
pub fn push_gpu_list(text: &mut String, gpus: &[u32]) {
    use std::fmt::Write as _;
    text.push('[');
    for (index, gpu) in gpus.iter().enumerate() {
        if index > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{gpu}");
    }
    text.push(']');
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

    use proptest::strategy::Strategy;

    proptest::proptest! {
        /// A list the quick reader takes holds the ids the general reader finds in it; and it
        /// takes none that the general reader refuses.
        #[test]
        fn gpu_lists_read_quickly_are_those_read_in_general(
            text in proptest::collection::vec(proptest::sample::select(b"[], 0123456789\t+-".to_vec()), 0..14)
                .prop_map(|bytes| String::from_utf8(bytes).unwrap()),
            framed in proptest::bool::ANY,
        ) {
            let text = if framed { format!("[{}]", text.trim_matches(['[', ']'])) } else { text };
            let mut quick = vec![99];
            let mut general = vec![99];
            let read = parse_any_gpu_list_into(&text, &mut general);
            if parse_plain_gpu_list(text.as_bytes(), &mut quick).is_some() {
                proptest::prop_assert_eq!(read, Ok(()), "{:?}", text);
                proptest::prop_assert_eq!(quick, general, "{:?}", text);
            }
        }

        /// A time the quick reader takes (with any date remembered) is the one chrono reads;
        /// and every time the tools write is taken.
        #[test]
        fn times_read_quickly_are_those_chrono_reads(
            text in proptest::collection::vec(proptest::sample::select(b"0123456789-: 2".to_vec()), 19..=19)
                .prop_map(|bytes| String::from_utf8(bytes).unwrap()),
            seconds in 0i64..400 * 365 * 86_400,
            remembered in proptest::option::of(proptest::collection::vec(proptest::sample::select(b"0123456789-".to_vec()), 10..=10)),
        ) {
            let mut last_date = remembered.and_then(|bytes| {
                let text = String::from_utf8(bytes).unwrap();
                let date = chrono::NaiveDate::parse_from_str(&text, "%Y-%m-%d").ok()?;
                (date.format("%Y-%m-%d").to_string() == text).then(|| (text.as_bytes().try_into().unwrap(), date))
            });
            let chrono = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S").ok();
            if let Some(time) = parse_plain_time_remembering(text.as_bytes(), &mut last_date) {
                proptest::prop_assert_eq!(Some(time), chrono, "{:?}", text);
            }
            let written = chrono::DateTime::from_timestamp(seconds, 0).unwrap().naive_utc()
                + chrono::Duration::days(-150 * 365);
            // Twice: the second time with its date remembered.
            for _ in 0..2 {
                proptest::prop_assert_eq!(parse_plain_time_remembering(format_time(written).as_bytes(), &mut last_date), Some(written));
            }
        }
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
