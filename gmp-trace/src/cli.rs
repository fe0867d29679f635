//! Command-line interface (strace/perf conventions: options, then `-- CMD ARGS...` or `--pid`).
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::probes::{Level, Links};

/// Trace the Go scheduler (goroutines, threads, processors) in a live, unmodified Go program.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace", version = crate::commands::version::SHORT, about, long_about = None)]
#[command(
    after_help = "Examples:\n  gmp-trace -- ./server --port 8080      trace a program from its first instruction\n  gmp-trace --pid 4242 -o events.jsonl   attach to a running Go process until Ctrl-C\n  gmp-trace --record run.gmpt -- ./prog  keep the raw events; `gmp-trace replay run.gmpt` later\n  gmp-trace --summary-json s.json -- go version\n\nSubcommands: `gmp-trace replay FILE [OPTIONS]` remakes every output from a recording;\n`gmp-trace compare --recording FILE --go-trace TRACE` checks it against Go's own tracer;\n`gmp-trace doctor` checks this machine; `gmp-trace --version` says what a bug report needs."
)]
pub struct Args {
    /// Attach to the running Go process with this pid (until Ctrl-C, SIGTERM, --duration or its
    /// exit). Repeat it to trace several processes side by side: outputs are then combined
    /// (JSONL events carry `pid`, a Perfetto process per pid, the summary's `processes` list).
    #[arg(short = 'p', long = "pid", conflicts_with = "command")]
    pub pid: Vec<i32>,

    /// Trace every Go process on the machine, those running now and those that start while
    /// tracing (found within half a second; their first instants are missed), until Ctrl-C,
    /// SIGTERM or --duration. Narrow it with --exe-filter and --container.
    #[arg(long = "all", conflicts_with_all = ["command", "pid"])]
    pub all: bool,

    /// Also trace the launched program's descendants that are Go programs, each from its first
    /// instruction (an exec in the tree is held stopped until its probes are in); other
    /// descendants are listed and let go at once. Outputs as for several --pid.
    #[arg(short = 'f', long = "follow", requires = "command")]
    pub follow: bool,

    /// With --all: only processes whose executable path matches this regular expression.
    #[arg(long = "exe-filter", value_name = "REGEX", requires = "all")]
    pub exe_filter: Option<String>,

    /// With --all: only processes in this container (its id, or a prefix such as docker's
    /// 12-digit short id), read from /proc/PID/cgroup.
    #[arg(long = "container", value_name = "ID", requires = "all")]
    pub container: Option<String>,

    #[command(flatten)]
    pub out: OutputArgs,

    /// Also write the raw events to FILE, for `gmp-trace replay FILE` (identical outputs offline).
    #[arg(long = "record", value_name = "FILE")]
    pub record: Option<PathBuf>,

    /// Stop tracing after this long (e.g. 10s, 500ms, 2m); the target keeps running.
    #[arg(short = 'd', long = "duration", value_parser = parse_duration)]
    pub duration: Option<Duration>,

    /// What to trace: lifecycle (creation/exit, threads, GC, startup), sched (+ every
    /// goroutine state change and its M and P), full (+ the scheduler loop and syscalls).
    #[arg(short = 'l', long = "level", value_enum, default_value_t = Level::Full)]
    pub level: Level,

    /// Keep counts and the scheduling-latency histogram in BPF maps instead of streaming the
    /// frequent events (rare ones, such as startup, threads and GC, still stream). The summary
    /// has the counts and latency; there are no per-event outputs.
    #[arg(long = "aggregate", conflicts_with_all = ["output", "record", "graph"])]
    pub aggregate: bool,

    /// Capture user stacks (frame-pointer walk in the probes, deduplicated, symbolized with
    /// file:line) for goroutine creation (the creator's), blocking, yielding and preemption
    /// (where it stopped), unblocking (the waker's) and system calls; JSONL events carry a
    /// `stack` id defined by a `stack` record. Costs more per probe hit (see the bench).
    #[arg(long = "stacks", conflicts_with = "aggregate")]
    pub stacks: bool,

    /// Also sample the CPU at HZ per CPU (the sampler of `gmp-trace profile`: a perf-event
    /// program on the CPU clock, no trap per event) and put the samples, with their goroutine,
    /// thread, P and stack, into the Go trace (--format go) as Go's CPU samples.
    #[arg(long = "sample-rate", value_name = "HZ", value_parser = clap::value_parser!(u64).range(1..=10_000), conflicts_with = "aggregate")]
    pub sample_rate: Option<u64>,

    /// Ring buffer size in bytes (e.g. 65536, 256K, 64M), rounded up to a power of two (at least
    /// one page, at most 1G). Default: sized from --event-rate. Events that do not fit are lost,
    /// counted, and reported as `lost` events and in the summary.
    #[arg(long = "buffer-size", value_name = "BYTES", value_parser = parse_size)]
    pub buffer_size: Option<u64>,

    /// The event rate to size the ring buffer for (events/s), when --buffer-size is not given:
    /// rate x drain interval (50 ms) x record size x 4 for headroom, as a power of two.
    #[arg(long = "event-rate", value_name = "EVENTS_PER_S", default_value_t = DEFAULT_EVENT_RATE)]
    pub event_rate: u64,

    /// Place every probe on its function's first instruction instead of after the stack-check
    /// prologue (costs about 10x more per hit; for measuring that cost).
    #[arg(long = "entry-probes", hide = true)]
    pub entry_probes: bool,

    /// How uprobes are linked: multi (one uprobe_multi link per program for all its sites;
    /// kernel 6.6+, detaches in one grace period) or perf-event (one link per site; any kernel).
    /// Default: multi where the kernel has it, else perf-event. The summary's probe list says
    /// which was used.
    #[arg(long = "uprobe-links", value_name = "KIND", value_enum)]
    pub uprobe_links: Option<Links>,

    /// Trace even if the running process fails gmp-trace's checks of the runtime layout
    /// (g0/m0 links, P ids, goids read through the offsets it is about to use).
    #[arg(long = "force")]
    pub force: bool,

    /// Attach a program that does nothing at every probe site (the cost floor; for benchmarks).
    #[arg(long = "empty-probes", hide = true)]
    pub empty_probes: bool,

    /// Attach a program that only emits a bare record (clock, thread, no reads) at every probe
    /// site: what the ring buffer alone costs (for benchmarks).
    #[arg(
        long = "emit-only-probes",
        hide = true,
        conflicts_with = "empty_probes"
    )]
    pub emit_only_probes: bool,

    /// The program to launch and trace from its first instruction, with its arguments.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Where the results go; shared by live tracing and replay.
#[derive(clap::Args, Debug, Default)]
pub struct OutputArgs {
    /// Write events to FILE ("-" for stdout); the format comes from the extension or --format.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Event format for -o (default: from the extension: .jsonl -> jsonl, .pftrace -> perfetto,
    /// .gotrace -> go; jsonl for "-").
    #[arg(long = "format", value_enum)]
    pub format: Option<Format>,

    /// Write a machine-readable summary (JSON) to FILE.
    #[arg(long = "summary-json", value_name = "FILE")]
    pub summary_json: Option<PathBuf>,

    /// Write the scheduler graph (creation tree, G-M and M-P bindings) to FILE: .dot or .json.
    #[arg(long = "graph", value_name = "FILE")]
    pub graph: Option<PathBuf>,

    /// Do not print the human summary on stderr at the end.
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,

    /// Check the summary at the end, per process: `[all:|any:]KEY OP VALUE`, OP one of
    /// < <= == != >= >, e.g. `lost_events == 0`, `sched_latency_p99 < 2ms`, `leak_sites == 0`
    /// (keys: docs/ci.md). Repeatable. A failure prints a line and makes the exit code 3.
    #[arg(long = "assert", value_name = "EXPR", value_parser = crate::checks::parse_assertion)]
    pub asserts: Vec<crate::checks::Assertion>,

    /// Write the --assert results as a JUnit XML report to FILE (one testsuite per process).
    #[arg(long = "junit", value_name = "FILE", requires = "asserts")]
    pub junit: Option<PathBuf>,
}

/// Remake every output from a recording, offline and without privileges.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace replay")]
pub struct ReplayArgs {
    /// A recording made with `gmp-trace --record FILE`.
    pub recording: PathBuf,

    #[command(flatten)]
    pub out: OutputArgs,

    /// The traced executable, for function names (default: the path stored in the recording).
    #[arg(long = "binary", value_name = "PATH")]
    pub binary: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One JSON object per line.
    Jsonl,
    /// Native Perfetto protobuf (TrackEvent), valid at every packet boundary.
    Perfetto,
    /// Go's execution trace (what `runtime/trace` writes; format version go 1.26), for
    /// `go tool trace` and gotraceui. Needs goroutine transitions: not at --level lifecycle.
    Go,
}

impl OutputArgs {
    /// The output format: --format, else the extension of -o.
    pub fn output_format(&self) -> Result<Option<Format>, String> {
        let Some(path) = &self.output else {
            return Ok(None);
        };
        if let Some(f) = self.format {
            return Ok(Some(f));
        }
        if path.as_os_str() == "-" {
            return Ok(Some(Format::Jsonl));
        }
        match path.extension().and_then(|e| e.to_str()) {
            Some("jsonl") | Some("json") | Some("ndjson") => Ok(Some(Format::Jsonl)),
            Some("pftrace") | Some("perfetto") | Some("perfetto-trace") | Some("pb") => {
                Ok(Some(Format::Perfetto))
            }
            Some("gotrace") => Ok(Some(Format::Go)),
            other => Err(format!(
                "cannot tell the format of {} from its extension {:?}; name it *.jsonl, *.pftrace or *.gotrace, or pass --format jsonl|perfetto|go",
                path.display(),
                other.unwrap_or("")
            )),
        }
    }
}

/// The rate the default ring buffer is sized for (8 MiB), and the target rate.
pub const DEFAULT_EVENT_RATE: u64 = 1_000_000;

/// Parses a byte size: "65536", "256K", "64M", "1G" (powers of 1024; "KiB"/"MB" spellings too).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let upper = t.to_ascii_uppercase();
    let digits = upper.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let mult: u64 = match upper[digits.len()..]
        .trim_end_matches('B')
        .trim_end_matches('I')
    {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return Err(format!("bad size {s:?}: use e.g. 65536, 256K, 64M")),
    };
    let n: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("bad size {s:?}: use e.g. 65536, 256K, 64M"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {s:?} is too large"))
}

/// Parses "10s", "500ms", "2m", "1h" or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, mult_ms) = if let Some(n) = s.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60_000.0)
    } else if let Some(n) = s.strip_suffix('h') {
        (n, 3_600_000.0)
    } else {
        (s, 1000.0)
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("bad duration {s:?}: use e.g. 10s, 500ms, 2m"))?;
    if !v.is_finite() || v < 0.0 {
        return Err(format!("bad duration {s:?}: must be positive"));
    }
    Ok(Duration::from_micros((v * mult_ms * 1000.0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("abc").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn aggregate_has_no_per_event_outputs() {
        assert!(Args::try_parse_from(["gmp-trace", "--aggregate", "--", "prog"]).is_ok());
        for out in [
            ["-o", "x.jsonl"],
            ["--record", "r.gmpt"],
            ["--graph", "g.dot"],
        ] {
            let e = Args::try_parse_from(["gmp-trace", "--aggregate", out[0], out[1], "--", "p"])
                .unwrap_err();
            assert!(e.to_string().contains("cannot be used with"), "{e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("65536"), Ok(65536));
        assert_eq!(parse_size("256K"), Ok(256 << 10));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("M").is_err());
    }

    #[test]
    fn format_from_extension() {
        let a = Args::parse_from(["gmp-trace", "-o", "x.jsonl", "--", "prog"]);
        assert_eq!(a.out.output_format(), Ok(Some(Format::Jsonl)));
        assert_eq!(a.command, vec!["prog".to_string()]);
        let a = Args::parse_from(["gmp-trace", "-o", "x.bin", "--pid", "1"]);
        assert!(a.out.output_format().is_err());
        let a = Args::parse_from([
            "gmp-trace",
            "-o",
            "x.bin",
            "--format",
            "jsonl",
            "--pid",
            "1",
        ]);
        assert_eq!(a.out.output_format(), Ok(Some(Format::Jsonl)));
        let a = Args::parse_from(["gmp-trace", "-o", "x.gotrace", "--", "prog"]);
        assert_eq!(a.out.output_format(), Ok(Some(Format::Go)));
        let a = Args::parse_from(["gmp-trace", "-o", "x.trace", "--format", "go", "--", "p"]);
        assert_eq!(a.out.output_format(), Ok(Some(Format::Go)));
    }
}
