//! Checks made before anything is attached, each failing with one line that says what to do.
use std::path::PathBuf;

use anyhow::bail;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// What to do about a process whose /proc/PID/exe (or memory) we may not read. As root the
/// advice to run as root is no help: the kernel's ptrace access check refuses root a process
/// holding capabilities we lack (a sandbox's init, another user namespace's processes).
pub fn unreadable_fix() -> &'static str {
    // SAFETY: geteuid has no preconditions.
    match unsafe { libc::geteuid() } {
        0 => {
            "a kernel thread or a zombie has no executable, and a process holding capabilities \
             gmp-trace lacks (a sandbox's init, a process of another user namespace) is denied \
             even to root: pick another pid, or run gmp-trace where that process runs"
        }
        _ => {
            "a kernel thread or a zombie has no executable; for another user's process, run \
             gmp-trace as root (or as that user)"
        }
    }
}

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
        bail!("cannot read {} ({e}): {}", exe.display(), unreadable_fix());
    }
    Ok(exe)
}
