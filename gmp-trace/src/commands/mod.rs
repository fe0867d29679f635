//! Commands: the top layer, one module per word on the command line, each a short story over
//! the layers below (process, probes, sources, model, exporters; see docs/architecture.md).
//! `main.rs` picks one by the first argument.
//!
//! `trace` (the default) and `replay`, `compare` stream events from uprobes or a recording;
//! `dump`, `top` and `profile` see without a trap per event: the runtime-memory reader and the
//! CPU sampler. Coming: `serve` (many processes, a metrics exporter).
pub mod compare;
pub mod dump;
pub mod profile;
pub mod replay;
pub mod top;
pub mod trace;

use tokio::signal::unix::{signal, Signal, SignalKind};

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
