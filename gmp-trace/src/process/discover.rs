//! Finding Go processes and saying who each one is: the pids that run a Go program, with the
//! identity every multi-process output labels them by (executable, Go version, main module,
//! cgroup, container id, the pid inside its own namespace).
//!
//! A process is Go when the file behind `/proc/PID/exe` has a `.go.buildinfo` section (Go 1.18
//! and later record one; older releases are unsupported anyway). Only the ELF headers and that
//! section are read, and the answer is cached per file (device, inode, size, mtime), so a scan of
//! a machine with hundreds of processes running the same few binaries reads each binary once.
//! Everything else comes from /proc, whose entries can vanish at any moment: a process that
//! exits mid-look is `Gone`, never an error.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::binary::{go_stamp, GoStamp};

/// Who a Go process is.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// What `/proc/PID/exe` points at, without the kernel's " (deleted)" suffix. In another
    /// mount namespace (a container) this path is the container's, not ours.
    pub exe: PathBuf,
    /// `/proc/PID/comm`.
    pub comm: String,
    /// The version string the binary records (`go1.27.3`).
    pub go_version: String,
    pub module_path: Option<String>,
    /// The cgroup v2 path (`0::` line), else the first v1 hierarchy's.
    pub cgroup: Option<String>,
    /// A 64-hex-digit container id found in the cgroup path (docker, containerd, CRI-O, podman
    /// and kubepods name their cgroups after it).
    pub container_id: Option<String>,
    /// The pid as the process's own pid namespace numbers it (`NSpid`'s last field), when that
    /// namespace is not ours.
    pub ns_pid: Option<u32>,
}

/// The outcome of looking at one pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Look {
    Go(ProcessIdentity),
    /// Runs something that is not a Go program (or a kernel thread, which has no exe).
    NotGo,
    /// Exited before it could be read, or never existed.
    Gone,
    /// Exists, but /proc/PID/exe cannot be read (another user's process without privilege).
    Unreadable(String),
}

/// Narrows which Go processes are wanted (`--exe-filter`, `--container`).
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// Matched against the exe path.
    pub exe: Option<regex_lite::Regex>,
    /// A container id or a prefix of one (docker's 12-digit short ids work).
    pub container: Option<String>,
}

impl Filter {
    pub fn new(exe: Option<&str>, container: Option<&str>) -> anyhow::Result<Filter> {
        let exe = exe
            .map(|re| {
                regex_lite::Regex::new(re).map_err(|e| {
                    anyhow::anyhow!("--exe-filter {re:?} is not a valid regular expression: {e}")
                })
            })
            .transpose()?;
        Ok(Filter {
            exe,
            container: container.map(str::to_ascii_lowercase),
        })
    }

    pub fn accepts(&self, p: &ProcessIdentity) -> bool {
        let exe_ok = self
            .exe
            .as_ref()
            .is_none_or(|re| re.is_match(&p.exe.to_string_lossy()));
        let container_ok = self.container.as_ref().is_none_or(|want| {
            p.container_id
                .as_deref()
                .is_some_and(|id| id.starts_with(want.as_str()))
        });
        exe_ok && container_ok
    }
}

/// Files whose answer is remembered at most (a few hundred bytes each).
const MAX_STAMPS: usize = 4096;

/// Looks at processes, remembering which files are Go programs (by file identity, so a path
/// exec'd thousands of times costs one stat each time once it is known).
#[derive(Default)]
pub struct Discoverer {
    stamps: HashMap<(u64, u64, u64, i64), Option<GoStamp>>,
}

impl Discoverer {
    pub fn new() -> Discoverer {
        Discoverer::default()
    }

    /// Says whether `pid` runs a Go program and, if so, who it is.
    pub fn look(&mut self, pid: u32) -> Look {
        let proc_exe = PathBuf::from(format!("/proc/{pid}/exe"));
        let meta = match std::fs::metadata(&proc_exe) {
            Ok(m) => m,
            Err(e) => return absent_or_unreadable(pid, &proc_exe, e),
        };
        let key = (meta.dev(), meta.ino(), meta.size(), meta.mtime());
        let stamp = match self.stamps.get(&key) {
            Some(s) => s.clone(),
            None => match go_stamp(&proc_exe) {
                Ok(s) => {
                    if self.stamps.len() >= MAX_STAMPS {
                        // Files come and go (a build writes new test binaries each run): the
                        // cache is emptied rather than let grow with them.
                        self.stamps.clear();
                    }
                    self.stamps.insert(key, s.clone());
                    s
                }
                Err(e) => return absent_or_unreadable(pid, &proc_exe, e),
            },
        };
        let Some(stamp) = stamp else {
            return Look::NotGo;
        };
        let Ok(link) = std::fs::read_link(&proc_exe) else {
            return Look::Gone;
        };
        let link = link.to_string_lossy();
        let exe = PathBuf::from(link.strip_suffix(" (deleted)").unwrap_or(&link));
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end().to_string())
            .unwrap_or_default();
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|s| cgroup_path(&s));
        let container_id = cgroup.as_deref().and_then(container_id);
        let ns_pid = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| ns_pid(&s))
            .filter(|&n| n != pid);
        Look::Go(ProcessIdentity {
            pid,
            exe,
            comm,
            go_version: stamp.version,
            module_path: stamp.module_path,
            cgroup,
            container_id,
            ns_pid,
        })
    }

    /// Every Go process on the machine that `filter` accepts, by pid, except gmp-trace itself.
    /// Processes whose exe cannot be read are left out and counted in the second value.
    pub fn scan(&mut self, filter: &Filter) -> (Vec<ProcessIdentity>, usize) {
        let me = std::process::id();
        let mut found = Vec::new();
        let mut unreadable = 0;
        for pid in all_pids() {
            if pid == me {
                continue;
            }
            match self.look(pid) {
                Look::Go(p) if filter.accepts(&p) => found.push(p),
                Look::Unreadable(_) => unreadable += 1,
                _ => {}
            }
        }
        found.sort_by_key(|p| p.pid);
        (found, unreadable)
    }
}

fn absent_or_unreadable(pid: u32, path: &Path, e: std::io::Error) -> Look {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Look::Gone;
    }
    match e.kind() {
        // A kernel thread's (or a zombie's) exe link exists but resolves to nothing.
        std::io::ErrorKind::NotFound => Look::NotGo,
        _ => Look::Unreadable(format!("{}: {e}", path.display())),
    }
}

/// The pids in /proc, ascending.
pub fn all_pids() -> Vec<u32> {
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// The cgroup v2 path from /proc/PID/cgroup (`0::/path`), else the first v1 line's path.
fn cgroup_path(text: &str) -> Option<String> {
    let path_of = |l: &str| l.splitn(3, ':').nth(2).map(str::to_string);
    text.lines()
        .find(|l| l.starts_with("0::"))
        .and_then(path_of)
        .or_else(|| text.lines().find_map(path_of))
        .filter(|p| !p.is_empty())
}

/// The last run of exactly 64 hex digits in a cgroup path: `docker-<id>.scope`,
/// `cri-containerd-<id>.scope`, `crio-<id>.scope`, `libpod-<id>.scope`, `/docker/<id>`,
/// `/kubepods/.../<id>`.
fn container_id(cgroup: &str) -> Option<String> {
    cgroup
        .split(|c: char| !c.is_ascii_hexdigit())
        .rfind(|run| run.len() == 64)
        .map(str::to_ascii_lowercase)
}

/// `NSpid:` of /proc/PID/status: the innermost namespace's pid is the last field.
fn ns_pid(status: &str) -> Option<u32> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))?
        .split_whitespace()
        .last()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gmp_trace_tests::{build_sample, Variant};

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn cgroup_and_container_ids() {
        let v2 = format!("0::/system.slice/docker-{ID}.scope\n");
        assert_eq!(
            cgroup_path(&v2).as_deref(),
            Some(&*format!("/system.slice/docker-{ID}.scope"))
        );
        assert_eq!(
            container_id(&cgroup_path(&v2).unwrap()).as_deref(),
            Some(ID)
        );
        let kube = format!("/kubepods/burstable/pod1234-5678/{ID}");
        assert_eq!(container_id(&kube).as_deref(), Some(ID));
        let crio = format!("/kubepods.slice/crio-{}.scope", ID.to_uppercase());
        assert_eq!(container_id(&crio).as_deref(), Some(ID));
        assert_eq!(
            container_id("/user.slice/user-0.slice/session-3.scope"),
            None
        );
        // 63 or 65 digits are not an id.
        assert_eq!(container_id(&format!("/docker/{}", &ID[1..])), None);
        assert_eq!(container_id(&format!("/docker/{ID}a")), None);
        let v1 = "12:pids:/docker/abc\n11:cpu:/docker/abc\n";
        assert_eq!(cgroup_path(v1).as_deref(), Some("/docker/abc"));
        assert_eq!(cgroup_path("0::\n"), None);
        assert_eq!(ns_pid("Name:\tx\nNSpid:\t4242\t17\n"), Some(17));
        assert_eq!(ns_pid("Name:\tx\n"), None);
    }

    #[test]
    fn filters() {
        let p = ProcessIdentity {
            pid: 1,
            exe: "/srv/api/bin/api-server".into(),
            comm: "api-server".into(),
            go_version: "go1.27.3".into(),
            module_path: Some("example.com/api".into()),
            cgroup: None,
            container_id: Some(ID.into()),
            ns_pid: None,
        };
        assert!(Filter::default().accepts(&p));
        assert!(Filter::new(Some("api-"), None).unwrap().accepts(&p));
        assert!(!Filter::new(Some("^worker"), None).unwrap().accepts(&p));
        assert!(Filter::new(None, Some("0123456789AB")).unwrap().accepts(&p));
        assert!(!Filter::new(None, Some("ffff")).unwrap().accepts(&p));
        let e = Filter::new(Some("("), None).unwrap_err().to_string();
        assert!(e.contains("--exe-filter"), "{e}");
    }

    /// A real Go program is found by a scan with its version and module; this test binary (Rust)
    /// and a kernel thread are not Go; a pid that does not exist is gone.
    #[test]
    fn scan_finds_a_running_go_program() {
        let bin = build_sample("parker", "1.27.3", Variant::Default);
        let mut child = std::process::Command::new(&bin)
            .arg("-loop")
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        let mut d = Discoverer::new();
        let (found, _) = d.scan(&Filter::default());
        let _ = child.kill();
        let _ = child.wait();
        let me = found
            .iter()
            .find(|p| p.pid == pid)
            .expect("the Go child is found");
        assert!(me.go_version.starts_with("go1.27"), "{me:?}");
        assert_eq!(me.exe, std::fs::canonicalize(&bin).unwrap());
        assert!(me.module_path.is_some(), "{me:?}");
        assert!(me.cgroup.is_some(), "{me:?}");
        assert_eq!(d.look(std::process::id()), Look::NotGo);
        assert_eq!(d.look(2), Look::NotGo, "kthreadd");
        assert_eq!(d.look(u32::MAX - 1), Look::Gone);
    }
}
