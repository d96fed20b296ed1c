//! Reading the text of a file the admin or a user may have edited by hand: what every reader
//! of a YAML or CSV file shares.
//!
//! - A UTF-8 byte-order mark at the start (editors on Windows write one) is accepted and
//!   dropped. A file the tools rewrite is written without it; `used.csv`, which is only ever
//!   appended to, keeps one it has.
//! - Bytes that are not UTF-8 are an error naming the line and column of the first of them.
//! - A configuration file is read whole, so one that is not a plain file (a FIFO would block
//!   the reader forever; a folder or a device holds no text) or that is larger than any
//!   configuration could be ([`ranges::CONFIG_FILE_BYTES`]) is refused before it is read.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use crate::error::FileProblem;
use crate::model::ranges;

/// The UTF-8 byte-order mark.
pub const BOM: &str = "\u{feff}";

/// `text` without a byte-order mark at its start.
pub fn strip_bom(text: &str) -> &str {
    text.strip_prefix(BOM).unwrap_or(text)
}

/// `bytes` (the contents of `shown_path`) as text, without a byte-order mark; bytes that are
/// not UTF-8 are an error at the line and column of the first.
pub fn decode(shown_path: &str, mut bytes: Vec<u8>) -> Result<String, FileProblem> {
    if bytes.starts_with(BOM.as_bytes()) {
        bytes.drain(..BOM.len());
    }
    String::from_utf8(bytes).map_err(|error| {
        let valid = error.utf8_error().valid_up_to();
        let bytes = error.as_bytes();
        let before = &bytes[..valid];
        let line = before.iter().filter(|byte| **byte == b'\n').count() + 1;
        let line_start = before.iter().rposition(|byte| *byte == b'\n').map_or(0, |newline| newline + 1);
        let column = String::from_utf8_lossy(&before[line_start..]).chars().count() + 1;
        FileProblem::error(
            shown_path,
            Some(line),
            "",
            format!("not UTF-8 text: byte 0x{:02x} at column {column}; save the file as UTF-8", bytes[valid]),
        )
    })
}

/// Reads a configuration file under `cfg/` whole; `Ok(None)` when it does not exist. A link
/// is followed (these are the admin's files, in the admin's folder), but what it leads to
/// must be a plain file no larger than [`ranges::CONFIG_FILE_BYTES`].
pub fn read_config(path: &Path, shown_path: &str) -> Result<Option<String>, FileProblem> {
    use std::os::unix::fs::OpenOptionsExt;
    let cannot_read = |error: std::io::Error| FileProblem::error(shown_path, None, "", format!("cannot read: {error}"));
    // Non-blocking, so that opening a FIFO does not wait for a writer.
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NONBLOCK).open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(cannot_read(error)),
    };
    read_whole(file, shown_path).map(Some)
}

/// Reads an open file whole as text, refusing anything but a plain file of at most
/// [`ranges::CONFIG_FILE_BYTES`].
pub fn read_whole(file: File, shown_path: &str) -> Result<String, FileProblem> {
    use std::os::unix::fs::FileTypeExt;
    let whole_file = |message: String| FileProblem::error(shown_path, None, "", message);
    let metadata = file.metadata().map_err(|error| whole_file(format!("cannot read: {error}")))?;
    let kind = metadata.file_type();
    let not_plain = if kind.is_dir() {
        Some("a folder")
    } else if kind.is_fifo() {
        Some("a named pipe (FIFO)")
    } else if kind.is_socket() {
        Some("a socket")
    } else if kind.is_block_device() || kind.is_char_device() {
        Some("a device")
    } else if !kind.is_file() {
        Some("not a plain file")
    } else {
        None
    };
    if let Some(kind) = not_plain {
        return Err(whole_file(format!("cannot read: it is {kind}, expected a plain file")));
    }
    if metadata.len() > ranges::CONFIG_FILE_BYTES {
        return Err(whole_file(too_large(metadata.len())));
    }
    let mut bytes = Vec::new();
    // The file may grow while it is read: never read more than the limit.
    file.take(ranges::CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|error| whole_file(format!("cannot read: {error}")))?;
    if bytes.len() as u64 > ranges::CONFIG_FILE_BYTES {
        return Err(whole_file(too_large(bytes.len() as u64)));
    }
    decode(shown_path, bytes)
}

fn too_large(length: u64) -> String {
    format!(
        "cannot read: it is {length} bytes, and a configuration file holds at most {} MiB",
        ranges::CONFIG_FILE_BYTES / (1024 * 1024)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_order_mark_is_dropped() {
        assert_eq!(decode("f", b"\xef\xbb\xbfmax:\n".to_vec()).unwrap(), "max:\n");
        assert_eq!(decode("f", b"max:\n".to_vec()).unwrap(), "max:\n");
        assert_eq!(strip_bom("\u{feff}a"), "a");
    }

    #[test]
    fn bytes_that_are_not_utf8_are_placed_by_line_and_column() {
        let problem = decode("cfg/x.yaml", b"a: 1\nb: \xc3\xa9\xff\n".to_vec()).unwrap_err();
        assert_eq!(problem.to_string(), "cfg/x.yaml:2: not UTF-8 text: byte 0xff at column 5; save the file as UTF-8");
        // A mark at the start does not shift the line.
        let problem = decode("f", b"\xef\xbb\xbf\xfe".to_vec()).unwrap_err();
        assert_eq!(problem.line, Some(1));
    }

    #[test]
    fn a_fifo_or_a_folder_is_refused_without_blocking() {
        let scratch = tempfile::tempdir().unwrap();
        let fifo = scratch.path().join("login.yaml");
        rustix::fs::mknodat(rustix::fs::CWD, &fifo, rustix::fs::FileType::Fifo, rustix::fs::Mode::from(0o600), 0)
            .unwrap();
        let problem = read_config(&fifo, "cfg/login.yaml").unwrap_err();
        assert!(problem.to_string().contains("named pipe (FIFO)"), "{problem}");
        let problem = read_config(scratch.path(), "cfg").unwrap_err();
        assert!(problem.to_string().contains("a folder"), "{problem}");
        assert_eq!(read_config(&scratch.path().join("missing"), "m").unwrap(), None);
    }
}
