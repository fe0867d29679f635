//! Checks made before anything is attached, each failing with one line that says what to do.
use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The effective capability set of this process, from /proc/self/status.
fn effective_caps() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        })
        .unwrap_or(0)
}

/// Loading uprobes needs root, or CAP_BPF with CAP_PERFMON (or the older CAP_SYS_ADMIN).
pub fn check_privileges() -> anyhow::Result<()> {
    let caps = effective_caps();
    let has = |c: u32| caps & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    bail!(
        "gmp-trace needs root or the CAP_BPF and CAP_PERFMON capabilities to load its probes: \
         run it with sudo, or `sudo setcap cap_bpf,cap_perfmon+ep $(which gmp-trace)`"
    )
}

/// The executable of a running process, checked to exist.
pub fn process_exe(pid: i32) -> anyhow::Result<PathBuf> {
    if pid <= 0 {
        bail!(
            "--pid {pid} is not a process id; pass the pid of a running Go program (see `pgrep`)"
        );
    }
    let proc = PathBuf::from(format!("/proc/{pid}"));
    if !proc.exists() {
        bail!("no process with pid {pid}: check it with `ps -p {pid}` (it may have exited)");
    }
    let exe = proc.join("exe");
    if let Err(e) = std::fs::read_link(&exe) {
        bail!(
            "cannot read {} ({e}): the process is a kernel thread, a zombie, or not yours; \
             run gmp-trace as root",
            exe.display()
        );
    }
    Ok(exe)
}

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
