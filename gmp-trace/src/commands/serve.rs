//! `gmp-trace serve`: the fleet endpoint. A long-running agent that watches Go processes (the
//! listed pids, or every one on the machine) with the cheap sources only, and serves their
//! numbers as OpenMetrics text for Prometheus at `/metrics`, plus `/healthz`. docs/serve.md
//! lists the metrics and what each costs.
//!
//! The reads run on a thread of their own (`serve/reader.rs`), never on the async runtime: a
//! read of a big process takes milliseconds of system calls, and the runtime main.rs builds is
//! single-threaded, so a scrape must never wait behind one. That thread publishes a finished
//! page; a scrape (`serve/http.rs`) copies it. `serve/watch.rs` picks the processes each pass,
//! `serve/read.rs` reads one (sharing `top`'s counting, run-queue and `--with` code),
//! `serve/metrics.rs` and `serve/hist.rs` make the page.
mod hist;
mod http;
mod metrics;
mod read;
mod reader;
mod watch;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Parser;

use crate::cli::parse_duration;
use crate::process::discover::Filter;
use watch::Selection;

/// Serve metrics of Go processes' schedulers for Prometheus.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace serve", version, about, long_about = None)]
#[command(
    after_help = "Examples:\n  sudo gmp-trace serve --listen 127.0.0.1:9464 --all\n  sudo gmp-trace serve --all --exe-filter '/srv/.*api' --interval 1s\n  sudo gmp-trace serve --pid 4242 --pid 4243\n\nNothing is attached to the programs' code: the numbers are read from their memory and /proc\nat each interval. docs/serve.md lists the metrics."
)]
pub struct ServeArgs {
    /// Address and port of the HTTP endpoint.
    #[arg(
        long = "listen",
        value_name = "ADDR:PORT",
        default_value = "127.0.0.1:9464"
    )]
    pub listen: SocketAddr,

    /// Watch every Go process on the machine, present and future.
    #[arg(long = "all", conflicts_with = "pid")]
    pub all: bool,

    /// With --all: only processes whose executable path matches this regular expression.
    #[arg(long = "exe-filter", value_name = "RE", requires = "all")]
    pub exe_filter: Option<String>,

    /// With --all: only processes of this container (an id or a prefix of one).
    #[arg(long = "container", value_name = "ID", requires = "all")]
    pub container: Option<String>,

    /// A process to watch (repeatable).
    #[arg(short = 'p', long = "pid", value_name = "N")]
    pub pid: Vec<u32>,

    /// Time between reads of every watched process (and rescans for new ones). The default
    /// stays under what Prometheus scrapes at (15-60 s) while keeping each read's cost small
    /// (docs/serve.md, Cost); 1s for a closer look.
    #[arg(short = 'i', long = "interval", default_value = "5s", value_parser = parse_duration)]
    pub interval: Duration,

    /// How long the series of a process that exited stay (at its last values, with
    /// gmptrace_process_up 0) before they are dropped.
    #[arg(long = "grace", default_value = "5m", value_parser = parse_duration)]
    pub grace: Duration,

    /// Add probes (off by default): `sched`, the scheduling-latency histogram
    /// (gmptrace_sched_latency_seconds) from two uprobes per process, a trap on every goroutine
    /// state change (docs/serve.md gives the cost). Needs CAP_BPF and CAP_PERFMON.
    #[arg(long = "with", value_name = "SET", value_delimiter = ',')]
    pub with: Vec<ServeWith>,

    /// Stop after this long (default: until SIGINT or SIGTERM).
    #[arg(short = 'd', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,
}

/// A set of probes `serve --with` adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ServeWith {
    /// The scheduling-latency histogram (runnable -> running).
    Sched,
}

pub async fn run(args: ServeArgs) -> anyhow::Result<i32> {
    if !args.all && args.pid.is_empty() {
        bail!("what to watch? pass --all (every Go process) or --pid N (repeatable)");
    }
    // 10 ms lets the bench raise the read rate until a read's cost rises above the noise
    // (`cargo xtask bench --only serve`); below that the /proc rescan alone would be most of it.
    if args.interval < Duration::from_millis(10) {
        bail!("--interval must be at least 10ms");
    }
    let selection = if args.all {
        Selection::All(Filter::new(
            args.exe_filter.as_deref(),
            args.container.as_deref(),
        )?)
    } else {
        Selection::Pids(args.pid.clone())
    };
    let with_sched = args.with.contains(&ServeWith::Sched);
    if with_sched {
        crate::process::preflight::check_privileges()?;
    }
    // The default sources load no BPF: only the memory reads need privilege (CAP_SYS_PTRACE
    // for other users' processes), and a plain user still sees their own.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        log::warn!(
            "not root: only this user's processes can be read (root or CAP_SYS_PTRACE reads all)"
        );
    }
    // The port first: in use, nothing else starts.
    let listener = http::bind(args.listen).await?;
    eprintln!(
        "gmp-trace serve: http://{}/metrics, every {:?}",
        listener.local_addr().unwrap_or(args.listen),
        args.interval
    );
    let shared = reader::Shared::default();
    let stop = Arc::new(AtomicBool::new(false));
    let reader = reader::start_reader(
        selection,
        args.interval,
        args.grace,
        with_sched,
        shared.clone(),
        stop.clone(),
    )
    .context("starting the reader thread")?;
    let mut signals = super::StopSignals::new().context("installing signal handlers")?;
    let duration = args.duration;
    let until = async move {
        let forever = Duration::from_secs(u64::MAX / 4);
        tokio::select! {
            _ = signals.recv() => {}
            _ = tokio::time::sleep(duration.unwrap_or(forever)) => {}
        }
    };
    let served = http::serve(listener, shared, args.interval, until).await;
    stop.store(true, Ordering::Relaxed);
    if reader.join().is_err() {
        bail!("the reader thread panicked");
    }
    served.context("serving HTTP")?;
    Ok(0)
}
