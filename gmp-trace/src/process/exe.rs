//! Which file a running process executes, and the identity of the file we read, so a file
//! replaced between reading it and attaching probes to it is caught before probes go in at
//! stale offsets.
//!
//! The path to open and attach uprobes to is `/proc/PID/exe`, never the name it points at: that
//! magic link reaches the very inode the process maps even after the file was deleted or replaced
//! (a redeploy), and from another mount namespace (a container) where the name means nothing to
//! us. The readlink target is kept for messages, with whether it still names the same inode.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::binary::{build_ids, BinaryError};

/// The executable of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetExe {
    pub pid: u32,
    /// `/proc/PID/exe`: open and attach to this.
    pub proc_path: PathBuf,
    /// What the link points at, without the kernel's " (deleted)" suffix; `None` if unreadable.
    pub disk_path: Option<PathBuf>,
    /// The kernel marked the link " (deleted)".
    pub deleted: bool,
    /// st_dev and st_ino of the mapped file.
    pub dev: u64,
    pub ino: u64,
    /// `disk_path` exists and is the same inode (false after delete or replace, or when the path
    /// belongs to another mount namespace).
    pub disk_path_matches: bool,
    /// From `.note.go.buildid`.
    pub go_build_id: Option<String>,
    /// NT_GNU_BUILD_ID in hex.
    pub gnu_build_id: Option<String>,
}

/// Resolves the executable of process `pid` (see the module doc for why `/proc/PID/exe`).
pub fn target_executable(pid: u32) -> Result<TargetExe, BinaryError> {
    let process = |what: String| BinaryError::Process { pid, what };
    let proc_path = PathBuf::from(format!("/proc/{pid}/exe"));
    let meta = std::fs::metadata(&proc_path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => process("no such process".into()),
        std::io::ErrorKind::PermissionDenied => process(format!(
            "cannot read {}: {e}; {}",
            proc_path.display(),
            super::preflight::unreadable_fix()
        )),
        _ => process(format!("{}: {e}", proc_path.display())),
    })?;
    let (disk_path, deleted) = match std::fs::read_link(&proc_path) {
        Ok(l) => {
            let s = l.to_string_lossy();
            match s.strip_suffix(" (deleted)") {
                Some(p) => (Some(PathBuf::from(p)), true),
                None => (Some(l.clone()), false),
            }
        }
        Err(_) => (None, false),
    };
    let disk_path_matches = !deleted
        && disk_path
            .as_ref()
            .and_then(|p| std::fs::metadata(p).ok())
            .is_some_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    let data =
        std::fs::read(&proc_path).map_err(|e| process(format!("{}: {e}", proc_path.display())))?;
    let (go_build_id, gnu_build_id) = build_ids(&data);
    Ok(TargetExe {
        pid,
        proc_path,
        disk_path,
        deleted,
        dev: meta.dev(),
        ino: meta.ino(),
        disk_path_matches,
        go_build_id,
        gnu_build_id,
    })
}

/// (device, inode, size, mtime) of a file: equal before and after means the same bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileIdentity(u64, u64, u64, i64);

impl FileIdentity {
    /// The identity of the file behind `path` (following /proc/PID/exe).
    pub fn of(path: &Path) -> anyhow::Result<FileIdentity> {
        let m = std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?;
        Ok(FileIdentity(m.dev(), m.ino(), m.size(), m.mtime()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::test_support::named;
    use crate::binary::GoBinary;
    use gmp_trace_tests::Variant;

    /// Kills the child on drop so a failing assert does not leak it.
    struct Child(std::process::Child);
    impl Drop for Child {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn self_is_not_deleted() {
        let me = target_executable(std::process::id()).unwrap();
        assert!(!me.deleted);
        assert!(me.disk_path_matches, "{me:?}");
        assert_eq!(me.disk_path.unwrap(), std::env::current_exe().unwrap());
        let e = target_executable(u32::MAX - 1).unwrap_err();
        assert!(e.to_string().contains("no such process"), "{e}");
    }

    #[test]
    fn deleted_binary_still_opens() {
        let src = named("parker", "1.27.3", Variant::Default);
        let dir = std::env::temp_dir().join(format!("gmp-trace-target-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let copy = dir.join("fanout-deleted");
        std::fs::copy(&src, &copy).unwrap();
        // Another test thread forking while the copy's write fd was open makes exec fail with
        // ETXTBSY until that child execs too: retry briefly.
        let mut tries = 0;
        let child = loop {
            match std::process::Command::new(&copy)
                .arg("-loop")
                .stdout(std::process::Stdio::null())
                .spawn()
            {
                Ok(c) => break c,
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && tries < 50 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(e) => panic!("spawning {}: {e}", copy.display()),
            }
        };
        let child = Child(child);
        let pid = child.0.id();
        std::fs::remove_file(&copy).unwrap();
        std::fs::remove_dir_all(&dir).ok();

        let t = target_executable(pid).unwrap();
        assert!(t.deleted, "{t:?}");
        assert!(!t.disk_path_matches);
        assert_eq!(t.disk_path.as_deref(), Some(copy.as_path()));
        assert_eq!(t.proc_path, PathBuf::from(format!("/proc/{pid}/exe")));
        let bin = GoBinary::open(&t.proc_path).unwrap();
        assert_eq!(t.go_build_id.as_deref(), bin.build_id());
        assert!(t.go_build_id.is_some());
        assert_eq!(t.gnu_build_id.as_deref(), bin.gnu_build_id());
        assert!(bin.probe_site("runtime.schedule").is_ok());
        let meta = std::fs::metadata(&src).unwrap();
        assert_ne!(
            (t.dev, t.ino),
            (meta.dev(), meta.ino()),
            "a copy is a new inode"
        );
        drop(child);
    }
}
