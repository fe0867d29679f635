//! The `--pid` strategy: a Go process that is already running. Its executable is reached through
//! /proc/PID/exe, its load address read from /proc/PID/maps, what already exists in it read from
//! its memory, and its exit seen through a pidfd; every signal to gmp-trace stops tracing and
//! leaves it running.
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, Context as _};
use tokio::io::unix::AsyncFd;

use super::exe::target_executable;
use super::maps::load_bias;
use super::preflight;
use super::runtime::{validate_live, LiveReport};
use super::target::Bias;
use crate::binary::GoBinary;

pub struct Attach {
    pid: u32,
    exe: PathBuf,
    /// `--force`: trace even where the runtime's memory does not look as expected.
    force: bool,
    bias: u64,
    /// Readable once the process exits; opened by `start`.
    pidfd: Option<AsyncFd<OwnedFd>>,
    /// `--follow`: the process is stopped right after an exec (SIGSTOP from the exec
    /// tracepoint), before its first instruction: nothing exists in it yet, and `start` lets it
    /// run (SIGCONT).
    at_exec: bool,
}

impl Attach {
    pub fn resolve(pid: i32, force: bool) -> anyhow::Result<Attach> {
        preflight::process_exe(pid)?;
        // /proc/PID/exe works for deleted binaries and other mount namespaces alike.
        let t = target_executable(pid as u32)?;
        if t.deleted || !t.disk_path_matches {
            log::info!(
                "pid {pid}'s executable is no longer at its path; tracing it through {}",
                t.proc_path.display()
            );
        }
        Ok(Attach {
            pid: pid as u32,
            exe: t.proc_path,
            force,
            bias: 0,
            pidfd: None,
            at_exec: false,
        })
    }

    /// A process stopped right after its exec (`--follow`); `start` continues it.
    pub fn stopped_at_exec(pid: u32) -> anyhow::Result<Attach> {
        let mut a = Attach::resolve(pid as i32, false)?;
        a.at_exec = true;
        Ok(a)
    }

    /// Lets a process stopped at its exec go on (after its probes are in, or on giving up).
    pub fn release(&self) {
        if self.at_exec {
            // SAFETY: kill has no memory preconditions; a pid that exited meanwhile gets ESRCH.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGCONT) };
        }
    }

    pub fn exe(&self) -> &Path {
        &self.exe
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    pub fn process_name(&self) -> String {
        std::fs::read_to_string(format!("/proc/{}/comm", self.pid))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|_| self.exe.display().to_string())
    }

    /// The process runs already: its load address, and a watch on its exit.
    pub fn start(&mut self, bin: &GoBinary) -> anyhow::Result<Bias> {
        self.bias = load_bias(self.pid, bin)?;
        self.pidfd = Some(pidfd_open(self.pid)?);
        self.release();
        Ok(Bias::Known(self.bias))
    }

    /// What already exists in the process, read from its memory; on a layout that does not
    /// fit, an error (or, with `--force`, a warning and nothing).
    pub fn existing(&self, bin: &GoBinary) -> anyhow::Result<Option<LiveReport>> {
        if self.at_exec {
            return Ok(None);
        }
        match validate_live(self.pid, bin, self.bias) {
            Ok(report) => {
                if let Some(why) = &report.skipped {
                    log::warn!("existing goroutines not read ({why}); they appear as they run");
                }
                Ok(Some(report))
            }
            Err(e) if self.force => {
                log::warn!("{e}; tracing anyway (--force)");
                Ok(None)
            }
            Err(e) => Err(anyhow!(e).context(
                "the running process does not look like the runtime layout gmp-trace expects; \
                 pass --force to trace it anyway",
            )),
        }
    }

    pub async fn exited(&mut self) -> anyhow::Result<()> {
        match &self.pidfd {
            // Readable means exited; the guard's readiness does not matter any more.
            Some(fd) => drop(fd.readable().await?),
            None => std::future::pending().await,
        }
        Ok(())
    }
}

/// A pidfd for `pid`, readable once the process exits.
fn pidfd_open(pid: u32) -> anyhow::Result<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("watching pid {pid} for exit"));
    }
    // SAFETY: the syscall returned a new fd that nothing else owns.
    let owned = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd keeps the pidfd open and unchanged for the AsyncFd's lifetime.
    unsafe { AsyncFd::register_with_interest(owned, tokio::io::Interest::READABLE) }
        .map_err(|e| anyhow!("watching pid {pid} for exit: {e}"))
}
