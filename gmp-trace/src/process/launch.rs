//! The launch strategy (`-- CMD ARGS`): start the command held before exec, so probes can be
//! attached to its pid first and the trace begins at the binary's first instruction; then let it
//! run, follow it to its exit and return its exit code. It shares our terminal, so Ctrl-C reaches
//! it directly; SIGTERM and SIGHUP are passed on. Its standard streams are ours unless a command
//! that owns the terminal sends them elsewhere ([`ChildStdio`], e.g. `top`'s full-screen view).
//!
//! std's `Command::spawn` returns only once the child has exec'd, so the child is spawned from a
//! helper thread; a `pre_exec` hook (running in the forked child) writes its pid to one pipe and
//! waits on another for the go-ahead. Closing the go-ahead pipe without writing aborts the exec.
use std::ffi::OsStr;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread::JoinHandle;

use anyhow::{anyhow, bail, Context as _};
use tokio::signal::unix::SignalKind;

use super::maps::load_bias;
use super::target::{Bias, SignalAction};
use crate::binary::GoBinary;

pub struct Launch {
    program: PathBuf,
    argv0: String,
    args: Vec<String>,
    pid: u32,
    /// From `hold` until `start` (or `abort`).
    held: Option<HeldChild>,
    /// The child's wait, from `start` until it has exited.
    wait: Option<tokio::task::JoinHandle<io::Result<ExitStatus>>>,
    status: Option<ExitStatus>,
    /// Taken by `hold`.
    stdio: ChildStdio,
}

/// Where the launched program's standard streams go; a `None` stream is inherited from us.
#[derive(Debug, Default)]
pub struct ChildStdio {
    pub stdin: Option<Stdio>,
    pub stdout: Option<Stdio>,
    pub stderr: Option<Stdio>,
}

impl Launch {
    pub fn resolve(command: &[String]) -> anyhow::Result<Launch> {
        let cmd = command
            .first()
            .ok_or_else(|| anyhow!("no command to launch"))?;
        Ok(Launch {
            program: resolve_command(cmd)?,
            argv0: cmd.clone(),
            args: command[1..].to_vec(),
            pid: 0,
            held: None,
            wait: None,
            status: None,
            stdio: ChildStdio::default(),
        })
    }

    /// Sends the program's streams elsewhere; must come before `hold`.
    pub fn redirect(&mut self, stdio: ChildStdio) {
        self.stdio = stdio;
    }

    pub fn exe(&self) -> &Path {
        &self.program
    }

    pub fn process_name(&self) -> String {
        Path::new(&self.argv0)
            .file_name()
            .map_or(self.argv0.clone(), |n| n.to_string_lossy().into_owned())
    }

    pub fn hold(&mut self) -> anyhow::Result<u32> {
        let stdio = std::mem::take(&mut self.stdio);
        let h = HeldChild::spawn(&self.program, self.argv0.as_ref(), &self.args, stdio)?;
        self.pid = h.pid;
        self.held = Some(h);
        Ok(self.pid)
    }

    pub fn abort(&mut self) {
        if let Some(h) = self.held.take() {
            h.abort();
        }
    }

    /// Lets the held child exec and starts waiting for it.
    pub fn start(&mut self, bin: &GoBinary, exec_reports_text: bool) -> anyhow::Result<Bias> {
        let held = self
            .held
            .take()
            .ok_or_else(|| anyhow!("the command was not started"))?;
        let mut child = held.release()?;
        let bias = match bin.text_vaddr() {
            // A PIE's load address comes with the exec event (mm->start_code), read in the
            // kernel before the program's first instruction: nothing can race it.
            Some(text) if bin.is_position_independent() && exec_reports_text => {
                Bias::AtExec { text_vaddr: text }
            }
            _ => {
                // release() returns once exec has succeeded: the new image is mapped, and
                // the program has barely started (a quick one may be gone already).
                let pid = self.pid;
                Bias::Known(load_bias(pid, bin).unwrap_or_else(|err| {
                    log::warn!("cannot read the load address of pid {pid} ({err}): function names may be wrong");
                    0
                }))
            }
        };
        self.wait = Some(tokio::task::spawn_blocking(move || child.wait()));
        Ok(bias)
    }

    /// Lets the held child exec without probes (`--follow`'s launched program when it is not
    /// Go: only its descendants are traced) and starts waiting for it.
    pub fn start_untraced(&mut self) -> anyhow::Result<()> {
        let held = self
            .held
            .take()
            .ok_or_else(|| anyhow!("the command was not started"))?;
        let mut child = held.release()?;
        self.wait = Some(tokio::task::spawn_blocking(move || child.wait()));
        Ok(())
    }

    pub async fn exited(&mut self) -> anyhow::Result<()> {
        let Some(wait) = self.wait.as_mut() else {
            return std::future::pending().await;
        };
        let status = wait.await;
        self.wait = None;
        self.status = Some(
            status
                .context("waiting for the child")?
                .context("waiting for the child")?,
        );
        Ok(())
    }

    /// The child shares our terminal and gets Ctrl-C itself; we follow it. SIGTERM and SIGHUP
    /// (sent to gmp-trace alone) are passed on.
    pub fn on_signal(&self, sig: SignalKind) -> SignalAction {
        if sig != SignalKind::interrupt() {
            forward(self.pid, sig.as_raw_value());
        }
        SignalAction::Follow
    }

    /// Tracing stopped while the program runs on (--duration): wait for it.
    pub async fn finish(mut self) -> anyhow::Result<Option<i32>> {
        if let Some(w) = self.wait.take() {
            self.status = Some(
                w.await
                    .context("waiting for the child")?
                    .context("waiting for the child")?,
            );
        }
        Ok(self.status.map(exit_code))
    }
}

fn forward(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions; a gone pid only returns ESRCH.
    unsafe { libc::kill(pid as i32, sig) };
}

struct HeldChild {
    pid: u32,
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
fn resolve_command(cmd: &str) -> anyhow::Result<PathBuf> {
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
    fn spawn(
        program: &Path,
        argv0: &OsStr,
        args: &[String],
        stdio: ChildStdio,
    ) -> anyhow::Result<HeldChild> {
        let (pid_r, pid_w) = pipe().context("creating a pipe")?;
        let (go_r, go_w) = pipe().context("creating a pipe")?;
        let (pid_w_fd, go_r_fd) = (pid_w.as_raw_fd(), go_r.as_raw_fd());
        let (pid_r_fd, go_w_fd) = (pid_r.as_raw_fd(), go_w.as_raw_fd());
        let mut cmd = Command::new(program);
        cmd.arg0(argv0).args(args);
        if let Some(s) = stdio.stdin {
            cmd.stdin(s);
        }
        if let Some(s) = stdio.stdout {
            cmd.stdout(s);
        }
        if let Some(s) = stdio.stderr {
            cmd.stderr(s);
        }
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
    fn release(mut self) -> anyhow::Result<Child> {
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
    fn abort(mut self) {
        drop(self.go_w.take());
        let _ = self.spawner.join();
    }
}

/// The exit code a shell would report for the child's status.
fn exit_code(status: ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => c,
        (None, Some(sig)) => 128 + sig,
        _ => 1,
    }
}
