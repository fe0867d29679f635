//! `gmp-trace compare`: checks a recording against Go's own execution tracer run on the same
//! process (the program called runtime/trace.Start, or a test ran with -test.trace).
//!
//! Go's trace is read through `go tool trace -d=parsed` (Go 1.22+ toolchains; they also read the
//! older format Go <= 1.21 programs write), which prints every event as a line such as
//! `M=8306 P=1 G=1 StateTransition Time=1992835583872 GoID=18 NotExist->Runnable Reason=""`.
//! The recording is replayed through the model with every transition kept, and the goroutine
//! transitions of both are counted per goroutine and per type inside the time window both saw.
//! What is left out is counted and printed, never dropped silently (docs/fidelity.md).
//!
//! The flow, one file each: [`go_side`] (Go's trace, in the model's vocabulary) and
//! [`our_side`] (the recording, replayed) feed the [`matcher`] (one clock and window,
//! exclusions, rows, GoStart placement); [`report`] prints its result as text and JSON, and
//! [`detail`] lists the goroutines that differ (`--detail`). [`go_go`] compares our own
//! `--format go` file instead of a recording (`--ours-go-trace`), stacks and reasons included.
use std::path::PathBuf;

use clap::Parser;

mod detail;
mod go_go;
#[cfg(test)]
mod go_go_tests;
mod go_side;
mod matcher;
mod our_side;
mod report;
#[cfg(test)]
mod tests;

use matcher::{compare, Options, UNDETERMINED_SLACK_NS};

/// Compare a recording with Go's execution trace of the same run.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace compare")]
#[command(
    after_help = "Example:\n  gmp-trace -q --record r.gmpt -- ./prog -trace go.trace\n  gmp-trace compare --recording r.gmpt --go-trace go.trace --min-match 99.9\n  gmp-trace -q --format go --stacks -o ours.gotrace -- ./prog -trace go.trace\n  gmp-trace compare --ours-go-trace ours.gotrace --go-trace go.trace --min-match 99.9\n\nExit status: 0 when the comparison ran (1 with --min-match when a row is below it)."
)]
pub struct CompareArgs {
    /// A recording made with `gmp-trace --record FILE`.
    #[arg(
        long = "recording",
        value_name = "FILE",
        required_unless_present = "ours_go_trace",
        conflicts_with = "ours_go_trace"
    )]
    pub recording: Option<PathBuf>,

    /// Instead of a recording: our Go trace of the same run (`--format go`, with `--stacks`
    /// for the stack rows), read by `go tool trace -d=parsed` like Go's.
    #[arg(long = "ours-go-trace", value_name = "FILE")]
    pub ours_go_trace: Option<PathBuf>,

    /// Go's execution trace of the same run (runtime/trace.Start or -test.trace).
    #[arg(
        long = "go-trace",
        value_name = "FILE",
        required_unless_present = "go_parsed",
        conflicts_with = "go_parsed"
    )]
    pub go_trace: Option<PathBuf>,

    /// The output of `go tool trace -d=parsed TRACE`, instead of --go-trace (no Go needed).
    #[arg(long = "go-parsed", value_name = "FILE")]
    pub go_parsed: Option<PathBuf>,

    /// The `go` command whose `go tool trace` reads the trace (Go 1.22+; default: `go` in PATH).
    #[arg(long = "go", value_name = "PATH")]
    pub go: Option<PathBuf>,

    /// Also write the comparison as JSON to FILE.
    #[arg(long = "json", value_name = "FILE")]
    pub json: Option<PathBuf>,

    /// Exit 1 when a row with Go events matches less than PERCENT (GoCreate: less than 100), or
    /// GoStart's same-M or same-P share is below it.
    #[arg(long = "min-match", value_name = "PERCENT")]
    pub min_match: Option<f64>,

    /// With --ours-go-trace and --min-match: exit 1 when GoBlock's or GoCreate's stacks are
    /// the same for less than PERCENT of Go's events that have one.
    #[arg(
        long = "min-stack-match",
        value_name = "PERCENT",
        default_value_t = 99.0
    )]
    pub min_stack_match: f64,

    /// Print both sides' transitions of up to N goroutines whose counts differ.
    #[arg(long = "detail", value_name = "N", default_value_t = 0)]
    pub detail: usize,
}

/// Reads both sides, matches them, prints the report; exit status 1 when --min-match fails.
pub fn run(args: CompareArgs) -> anyhow::Result<i32> {
    let recording = match (&args.recording, &args.ours_go_trace) {
        (_, Some(ours)) => return go_go::run(&args, ours),
        (Some(r), None) => r.clone(),
        (None, None) => anyhow::bail!("pass --recording FILE or --ours-go-trace FILE"),
    };
    let (go, go_source) = go_side::load(
        args.go_parsed.as_deref(),
        args.go_trace.as_deref(),
        args.go.as_deref(),
    )?;
    let ours = our_side::replay(&recording)?;
    let opts = Options {
        go_version: ours.version,
        detail: args.detail,
        undetermined_slack_ns: UNDETERMINED_SLACK_NS,
        end_slack_ns: 0,
    };
    let mut rep = compare(&go, &ours.transitions, &ours.threads, ours.span, opts);
    rep.go_version = ours.go_version;
    rep.recording = recording.display().to_string();
    rep.go_trace = go_source;
    rep.ours_events = ours.events;
    rep.ours_lost = ours.lost;
    rep.ours_probes_missing = ours.probes_missing;
    if let Some(min) = args.min_match {
        rep.check(min);
    }
    rep.emit(args.json.as_deref())?;
    Ok(if rep.failures.is_empty() { 0 } else { 1 })
}
