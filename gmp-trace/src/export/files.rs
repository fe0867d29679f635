//! Output files, opened (created) before the probes go in: an unwritable path fails before the
//! target is disturbed. Every command's outputs open here, so the rule on links planted by
//! other users (`open_output`) holds for all of them.
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _};
use std::path::Path;

use anyhow::{bail, Context as _};

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
///
/// gmp-trace runs as root, so an output path must not let another user aim it at a file of
/// their choosing: a symbolic link at the path is followed only when it belongs to the user
/// running gmp-trace, to root, or to the owner of its directory (the rule of Linux's
/// `fs.protected_symlinks`, applied in every directory and whatever the sysctl says; this is
/// what keeps `-o /dev/stdout` working), and an existing file in a sticky world-writable
/// directory (/tmp) is written only when it is ours or the directory owner's (the rule of
/// `fs.protected_regular`). Anything else is refused with the reason; a path that is not a
/// link is opened with O_NOFOLLOW, so a link planted after the check fails the open instead.
pub fn open_output(path: &Path, what: &str) -> anyhow::Result<Option<File>> {
    if path.as_os_str() == "-" {
        return Ok(None);
    }
    open_file(path, what).map(Some)
}

/// [`open_output`] for commands where `-` is a file name like any other.
pub fn open_file(path: &Path, what: &str) -> anyhow::Result<File> {
    let follow = check_output_path(path)
        .with_context(|| format!("refusing to write the {what} to {}", path.display()))?;
    let mut opts = OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    if !follow {
        opts.custom_flags(libc::O_NOFOLLOW);
    }
    let f = opts.open(path).with_context(|| {
        format!(
            "cannot write the {what} to {}: choose a writable path (check the directory exists \
             and its permissions)",
            path.display()
        )
    })?;
    Ok(f)
}

/// Whether `path` may be opened as an output, and whether that open follows a link there.
fn check_output_path(path: &Path) -> anyhow::Result<bool> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        // Nothing there yet (or not reachable: the open says why).
        return Ok(false);
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let dir_meta = std::fs::metadata(dir).ok();
    let dir_owner = dir_meta.as_ref().map(|m| m.uid());
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    let trusted = |uid: u32| uid == me || uid == 0 || Some(uid) == dir_owner;
    if meta.file_type().is_symlink() {
        if !trusted(meta.uid()) {
            bail!(
                "it is a symbolic link owned by uid {} (not you, root or the directory's owner), \
             which another user may have planted: remove it, or name the file it points to",
                meta.uid()
            );
        }
        return Ok(true);
    }
    let shared_dir = dir_meta.is_some_and(|m| m.mode() & 0o1002 == 0o1002);
    if shared_dir && meta.is_file() && !(meta.uid() == me || Some(meta.uid()) == dir_owner) {
        bail!(
            "it is an existing file of uid {} in a shared sticky directory, which another \
             user may have planted: remove it or choose another name",
            meta.uid()
        );
    }
    Ok(false)
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
