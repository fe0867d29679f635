//! The identity of the executable being traced, so a file replaced between reading it and
//! attaching probes to it is caught before probes go in at stale offsets.
use std::path::Path;

use anyhow::Context as _;

/// (device, inode, size, mtime) of a file: equal before and after means the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity(u64, u64, u64, i64);

impl FileIdentity {
    /// The identity of the file behind `path` (following /proc/PID/exe).
    pub fn of(path: &Path) -> anyhow::Result<FileIdentity> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(FileIdentity(m.dev(), m.ino(), m.size(), m.mtime()))
    }
}
