//! Durable writes. Only the state modules call these; each passes its lock guard so a
//! write can never happen without the lock.
//!
//! A whole-file rewrite goes to a temporary file in the same folder, is flushed to disk, and
//! is renamed over the old file; then the folder itself is flushed so the rename survives a
//! power cut. A reader therefore sees either the old file or the new one, never half of it.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, Result};

use crate::lock::ExclusiveLock;

pub fn write_atomically(_lock: &ExclusiveLock, path: &Path, contents: &[u8]) -> Result<()> {
    let folder = path.parent().filter(|parent| !parent.as_os_str().is_empty()).unwrap_or(Path::new("."));
    fs::create_dir_all(folder).with_context(|| format!("cannot create the folder {}", folder.display()))?;
    let file_name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let temporary = folder.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = (|| -> Result<()> {
        let mut file = File::create(&temporary).with_context(|| format!("cannot create {}", temporary.display()))?;
        file.write_all(contents).with_context(|| format!("cannot write {}", temporary.display()))?;
        file.sync_all().with_context(|| format!("cannot flush {} to disk", temporary.display()))?;
        // Keep the old file's permissions: users_config.yaml holds password hashes and an
        // admin may have made it private.
        if let Ok(metadata) = fs::metadata(path) {
            fs::set_permissions(&temporary, metadata.permissions())
                .with_context(|| format!("cannot set permissions on {}", temporary.display()))?;
        }
        fs::rename(&temporary, path)
            .with_context(|| format!("cannot replace {} with {}", path.display(), temporary.display()))?;
        sync_folder(folder)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temporary);
    }
    result
}

/// Appends to a file that only ever grows (`used.csv`, the log), creating it with `header`
/// first when it does not exist yet.
pub fn append_durably(_lock: &ExclusiveLock, path: &Path, header: &[u8], contents: &[u8]) -> Result<()> {
    let mut file = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .with_context(|| format!("cannot open {} for appending", path.display()))?;
    let length = file.metadata().with_context(|| format!("cannot read the size of {}", path.display()))?.len();
    let mut bytes = Vec::with_capacity(header.len() + contents.len());
    if length == 0 {
        bytes.extend_from_slice(header);
    } else if !ends_with_newline(&mut file, length) {
        // A hand edit left the last line open; without this the next row would be glued to it.
        bytes.push(b'\n');
    }
    bytes.extend_from_slice(contents);
    file.write_all(&bytes).with_context(|| format!("cannot append to {}", path.display()))?;
    file.sync_data().with_context(|| format!("cannot flush {} to disk", path.display()))?;
    Ok(())
}

fn ends_with_newline(file: &mut File, length: u64) -> bool {
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(length - 1)).is_ok() && file.read_exact(&mut last).is_ok() && last[0] == b'\n'
}

fn sync_folder(folder: &Path) -> Result<()> {
    let handle = File::open(folder).with_context(|| format!("cannot open the folder {}", folder.display()))?;
    handle.sync_all().with_context(|| format!("cannot flush the folder {} to disk", folder.display()))
}
