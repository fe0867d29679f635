//! Commands: the top layer, one module per word on the command line, each a short story over
//! the layers below (process, probes, sources, model, exporters; see docs/architecture.md).
//! `main.rs` picks one by the first argument.
//!
//! `trace` (the default) and `replay`, `compare` stream events from uprobes or a recording;
//! `dump`, `top` and `profile` see without a trap per event: the runtime-memory reader and the
//! CPU sampler; `serve` reads many processes that way for Prometheus. `doctor`, `completions`
//! (and the hidden `man`) and `--version` are about gmp-trace itself.
pub mod compare;
pub mod completions;
pub mod cpu_samples;
pub mod doctor;
pub mod dump;
mod many;
pub mod profile;
pub mod replay;
pub mod serve;
pub mod top;
pub mod trace;
pub mod version;

use anyhow::{bail, Context as _};
use gmp_trace_common::Offsets;
use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::binary::{Arch, GoBinary};
use crate::probes::Sampler;
use crate::process::{Bias, Target};

/// The commands that read the runtime's memory (`dump`, `top`) need Go's names and layouts of
/// the release (wait reasons change in every one) and an amd64 process: `command` says who
/// asks.
pub fn require_known_runtime(bin: &GoBinary, command: &str) -> anyhow::Result<()> {
    if bin.arch() != Arch::X86_64 {
        bail!("gmp-trace {command} reads x86_64 (amd64) processes only; this one is arm64");
    }
    if !bin.is_known_version() {
        bail!(
            "the process runs {}, and gmp-trace {command} knows the runtimes of Go 1.19 to 1.27 \
             only (their wait reasons and structures); use a gmp-trace release that knows it",
            bin.go_version()
        );
    }
    Ok(())
}

/// Holds the target (a launched program stops before its exec), starts the CPU sampler on its
/// pid, then lets it run: (pid, sampler, load bias). A sampler that cannot start aborts the
/// launch rather than leave the program unobserved.
pub fn start_sampled(
    target: &mut Target,
    bin: &GoBinary,
    mut offsets: Offsets,
    rate_hz: u64,
) -> anyhow::Result<(u32, Sampler, u64)> {
    let pid = target.hold()?;
    offsets.target_pid = pid;
    let sampler = match Sampler::start(&offsets, rate_hz) {
        Ok(s) => s,
        Err(e) => {
            target.abort();
            return Err(e).context("starting the CPU sampler");
        }
    };
    // The exec has happened when start returns: the load address is in /proc/PID/maps.
    let bias = match target.start(bin, false)? {
        Bias::Known(b) => b,
        Bias::AtExec { .. } => 0,
    };
    Ok((pid, sampler, bias))
}

/// SIGINT, SIGTERM and SIGHUP, which end a command's wait on a live target (what each one does
/// to the target is `Target::on_signal`'s business).
pub struct StopSignals {
    int: Signal,
    term: Signal,
    hup: Signal,
}

impl StopSignals {
    pub fn new() -> std::io::Result<StopSignals> {
        Ok(StopSignals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
        })
    }

    /// The next of the three to arrive.
    pub async fn recv(&mut self) -> SignalKind {
        tokio::select! {
            _ = self.int.recv() => SignalKind::interrupt(),
            _ = self.term.recv() => SignalKind::terminate(),
            _ = self.hup.recv() => SignalKind::hangup(),
        }
    }
}
