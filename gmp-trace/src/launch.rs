//! Launch mode: start the command held before exec, so probes can be attached to its pid first
//! and the trace begins at the binary's first instruction.
//!
//! std's `Command::spawn` returns only once the child has exec'd, so the child is spawned from a
//! helper thread; a `pre_exec` hook (running in the forked child) writes its pid to one pipe and
//! waits on another for the go-ahead. Closing the go-ahead pipe without writing aborts the exec.
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context as _};

pub struct HeldChild {
    pub pid: u32,
    go_w: Option<OwnedFd>,
    spawner: JoinHandle<io::Result<Child>>,
}

fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: fds is a valid array of two ints for pipe2 to fill.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Finds `cmd` the way execvp would: a path with a slash as is, else the first match in $PATH.
pub fn resolve_command(cmd: &str) -> anyhow::Result<PathBuf> {
    let is_exec = |p: &Path| {
        p.metadata()
            .map(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
            .unwrap_or(false)
    };
    if cmd.contains('/') {
        let p = PathBuf::from(cmd);
        if !p.exists() {
            bail!("{cmd}: no such file; check the path of the program to trace");
        }
        if !is_exec(&p) {
            bail!("{cmd}: not an executable file (chmod +x it?)");
        }
        return std::fs::canonicalize(&p).with_context(|| format!("resolving {cmd}"));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        let p = dir.join(cmd);
        if is_exec(&p) {
            return std::fs::canonicalize(&p).with_context(|| format!("resolving {}", p.display()));
        }
    }
    bail!("{cmd}: command not found in $PATH; give its path (e.g. ./{cmd})")
}

impl HeldChild {
    /// Forks `program` with `args` and holds it before exec. Returns once its pid is known.
    pub fn spawn(program: &Path, argv0: &OsStr, args: &[String]) -> anyhow::Result<HeldChild> {
        let (pid_r, pid_w) = pipe().context("creating a pipe")?;
        let (go_r, go_w) = pipe().context("creating a pipe")?;
        let (pid_w_fd, go_r_fd) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
        let (pid_r_fd, go_w_fd) = (pid_r.as_raw_fd(), go_w.as_raw_fd());
        let mut cmd = Command::new(program);
        cmd.arg0(argv0).args(args);
        // SAFETY: the hook runs in the forked child before exec and only calls async-signal-safe
        // functions (close, getpid, write, read) on fds that are open in the child.
        unsafe {
            cmd.pre_exec(move || {
                // Drop the child's copies of the parent's ends, so a dead parent means EOF here.
                libc::close(pid_r_fd);
                libc::close(go_w_fd);
                let pid: i32 = libc::getpid();
                let b = pid.to_ne_bytes();
                if libc::write(pid_w_fd, b.as_ptr().cast(), b.len()) != b.len() as isize {
                    return Err(io::Error::last_os_error());
                }
                let mut go = 0u8;
                if libc::read(go_r_fd, (&raw mut go).cast(), 1) != 1 {
                    return Err(io::Error::from_raw_os_error(libc::ECANCELED));
                }
                Ok(())
            });
        }
        let spawner = std::thread::spawn(move || {
            let r = cmd.spawn();
            drop((pid_w, go_r));
            r
        });
        let mut b = [0u8; 4];
        // SAFETY: reading into a local 4-byte buffer from an fd we own.
        let n = unsafe { libc::read(pid_r.as_raw_fd(), b.as_mut_ptr().cast(), 4) };
        if n != 4 {
            let err = match spawner.join() {
                Ok(Err(e)) => anyhow!(e),
                _ => anyhow!("the child exited before it could be traced"),
            };
            return Err(err.context(format!("starting {}", program.display())));
        }
        let pid = i32::from_ne_bytes(b);
        Ok(HeldChild {
            pid: pid as u32,
            go_w: Some(go_w),
            spawner,
        })
    }

    /// Lets the child exec and returns it.
    pub fn release(mut self) -> anyhow::Result<Child> {
        if let Some(w) = self.go_w.take() {
            let b = [1u8];
            // SAFETY: writing one byte from a local buffer to an fd we own.
            unsafe { libc::write(w.as_raw_fd(), b.as_ptr().cast(), 1) };
        }
        match self.spawner.join() {
            Ok(r) => r.context("exec of the traced program failed"),
            Err(_) => bail!("the thread starting the child panicked"),
        }
    }

    /// Makes the child's exec fail (it exits) and reaps it.
    pub fn abort(mut self) {
        drop(self.go_w.take());
        let _ = self.spawner.join();
    }
}

/// The exit code a shell would report for the child's status.
pub fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}
