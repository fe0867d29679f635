//! What is traced, behind one interface: a command gmp-trace starts held before exec
//! ([`Launch`](super::launch::Launch)), or a process already running
//! ([`Attach`](super::attach::Attach), `--pid`). The trace command walks either through the same
//! steps (hold, attach the probes, start, wait, finish) without asking which it has; each
//! strategy keeps its own answers (who gets Ctrl-C, where the load address comes from, what
//! already exists). A new way to pick a process is a new variant here.
use std::path::Path;

use anyhow::bail;
use tokio::signal::unix::SignalKind;

use super::attach::Attach;
use super::launch::Launch;
use super::runtime::LiveReport;
use crate::binary::GoBinary;

pub enum Target {
    Launch(Launch),
    Attach(Attach),
}

/// What a signal to gmp-trace does to the session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SignalAction {
    /// Stop tracing (the target runs on).
    Stop,
    /// Keep tracing: the target got the signal (or its own copy) and decides.
    Follow,
}

/// Where the target's load address (PIE) comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bias {
    /// Known now (0 for a fixed-address executable).
    Known(u64),
    /// From the exec event, which carries where the text (linked at `text_vaddr`) was mapped.
    AtExec { text_vaddr: u64 },
}

impl Target {
    /// The target the command line names: `--pid PID` or `-- CMD [ARGS...]`.
    pub fn resolve(pid: Option<i32>, command: &[String], force: bool) -> anyhow::Result<Target> {
        match (pid, command.first()) {
            (Some(pid), _) => Ok(Target::Attach(Attach::resolve(pid, force)?)),
            (None, Some(_)) => Ok(Target::Launch(Launch::resolve(command)?)),
            (None, None) => bail!(
                "nothing to trace: give `--pid PID` to attach, or `-- CMD [ARGS...]` to launch \
                 (see gmp-trace --help)"
            ),
        }
    }

    /// The file to read and attach uprobes to.
    pub fn exe(&self) -> &Path {
        match self {
            Target::Launch(t) => t.exe(),
            Target::Attach(t) => t.exe(),
        }
    }

    /// `launch` or `pid`, as the summary and recordings say.
    pub fn mode(&self) -> &'static str {
        match self {
            Target::Launch(_) => "launch",
            Target::Attach(_) => "pid",
        }
    }

    /// Whether the exec is still to come (probes watch it: the first startup milestone).
    pub fn execs(&self) -> bool {
        matches!(self, Target::Launch(_))
    }

    /// Whether to tell the user when probes go in and out: a process that ran before us gets
    /// no other sign (like strace's "Process N attached"); a launched one is our own output.
    pub fn announces(&self) -> bool {
        matches!(self, Target::Attach(_))
    }

    /// The process name to show: the command's name, or the running process's.
    pub fn process_name(&self) -> String {
        match self {
            Target::Launch(t) => t.process_name(),
            Target::Attach(t) => t.process_name(),
        }
    }

    /// Makes the process exist without letting it run further than it has (a launched command
    /// is held before exec); returns its pid, for loading and attaching the probes.
    pub fn hold(&mut self) -> anyhow::Result<u32> {
        match self {
            Target::Launch(t) => t.hold(),
            Target::Attach(t) => Ok(t.pid()),
        }
    }

    /// Gives up before tracing began: a held command exits without having run.
    pub fn abort(&mut self) {
        match self {
            Target::Launch(t) => t.abort(),
            // One stopped at its exec (`--follow`) runs on untraced.
            Target::Attach(t) => t.release(),
        }
    }

    /// Lets the target run under the probes and says where its load address comes from;
    /// `exec_reports_text` is whether the exec event carries the mapped text address.
    pub fn start(&mut self, bin: &GoBinary, exec_reports_text: bool) -> anyhow::Result<Bias> {
        match self {
            Target::Launch(t) => t.start(bin, exec_reports_text),
            Target::Attach(t) => t.start(bin),
        }
    }

    /// The goroutines, Ms and Ps that existed before the probes (none for a launched command).
    pub fn existing(&self, bin: &GoBinary) -> anyhow::Result<Option<LiveReport>> {
        match self {
            Target::Launch(_) => Ok(None),
            Target::Attach(t) => t.existing(bin),
        }
    }

    /// Resolves when the target exits. Cancel-safe: the drive loop polls it again each turn.
    pub async fn exited(&mut self) -> anyhow::Result<()> {
        match self {
            Target::Launch(t) => t.exited().await,
            Target::Attach(t) => t.exited().await,
        }
    }

    /// What SIGINT, SIGTERM or SIGHUP to gmp-trace does.
    pub fn on_signal(&self, sig: SignalKind) -> SignalAction {
        match self {
            Target::Launch(t) => t.on_signal(sig),
            Target::Attach(_) => SignalAction::Stop,
        }
    }

    /// After tracing: the exit code to return (a launched command's, waited for if tracing
    /// stopped first); `None` for a process we did not start.
    pub async fn finish(self) -> anyhow::Result<Option<i32>> {
        match self {
            Target::Launch(t) => t.finish().await,
            Target::Attach(_) => Ok(None),
        }
    }
}
