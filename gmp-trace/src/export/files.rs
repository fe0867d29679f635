//! Output files, opened (created) before the probes go in: an unwritable path fails before the
//! target is disturbed.
use std::fs::File;
use std::path::Path;

use anyhow::Context as _;

/// Opens a new recording file: like [`open_output`], but an existing regular file is unlinked
/// first instead of truncated, so a replay that has the old recording mapped keeps reading it
/// (truncating a mapped file under its reader kills the reader with SIGBUS).
pub fn open_recording(path: &Path) -> anyhow::Result<Option<File>> {
    if path.as_os_str() != "-" && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file()) {
        let _ = std::fs::remove_file(path);
    }
    open_output(path, "recording")
}

/// Opens (creating or truncating) an output file now, so an unwritable path fails before the
/// probes go in and the target is disturbed. `-` is stdout and opens nothing.
pub fn open_output(path: &Path, what: &str) -> anyhow::Result<Option<File>> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    let f = File::create(path).with_context(|| {
        format!(
            "cannot write the {what} to {}: choose a writable path (check the directory exists \
             and its permissions)",
            path.display()
        )
    })?;
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    /// A new recording over an old one leaves the old file whole for whoever still reads it
    /// (a replay maps it), and the path names the new one.
    #[test]
    fn new_recording_does_not_truncate_the_old_one() {
        let dir = std::env::temp_dir().join(format!("gmp-trace-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("run.gmpt");
        std::fs::write(&path, b"old recording").unwrap();
        let mut reader = File::open(&path).unwrap();
        let mut f = open_recording(&path).unwrap().unwrap();
        f.write_all(b"new").unwrap();
        let mut old = String::new();
        reader.read_to_string(&mut old).unwrap();
        assert_eq!(old, "old recording");
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
