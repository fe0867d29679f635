//! `gmp-trace compare`: checks a recording against Go's own execution tracer run on the same
//! process (the program called runtime/trace.Start, or a test ran with -test.trace).
//!
//! Go's trace is read through `go tool trace -d=parsed` (Go 1.22+ toolchains; they also read the
//! older format Go <= 1.21 programs write), which prints every event as a line such as
//! `M=8306 P=1 G=1 StateTransition Time=1992835583872 GoID=18 NotExist->Runnable Reason=""`.
//! The recording is replayed through the model with every transition kept, and the goroutine
//! transitions of both are counted per goroutine and per type inside the time window both saw.
//! What is left out is counted and printed, never dropped silently (docs/fidelity.md).
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};
use clap::Parser;
use gmp_trace_common::Event;
use serde::Serialize;

use crate::model::{GoState, Model, Transition};
use crate::source::recording::Replay;
use crate::source::{Derive, Sink};

/// Compare a recording with Go's execution trace of the same run.
#[derive(Parser, Debug)]
#[command(name = "gmp-trace compare")]
#[command(
    after_help = "Example:\n  gmp-trace -q --record r.gmpt -- ./prog -trace go.trace\n  gmp-trace compare --recording r.gmpt --go-trace go.trace --min-match 99.9\n\nExit status: 0 when the comparison ran (1 with --min-match when a row is below it)."
)]
pub struct CompareArgs {
    /// A recording made with `gmp-trace --record FILE`.
    #[arg(long = "recording", value_name = "FILE")]
    pub recording: PathBuf,

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

    /// Print both sides' transitions of up to N goroutines whose counts differ.
    #[arg(long = "detail", value_name = "N", default_value_t = 0)]
    pub detail: usize,
}

// ---------------------------------------------------------------------------------------------
// Go's side: `go tool trace -d=parsed` text.

/// One goroutine state transition from Go's trace.
#[derive(Clone, Debug, PartialEq)]
pub struct GoTransition {
    /// Time= as printed (ns; CLOCK_MONOTONIC for traces from Go 1.22+, relative for older).
    pub time: i64,
    /// M= (the OS thread id for Go 1.22+ traces, m.id for older ones), -1 for none.
    pub m: i64,
    pub p: i64,
    /// G= : the goroutine running where the transition happened (the creator for GoCreate).
    pub g: i64,
    pub goid: u64,
    /// `Unknown` stands for the tracer's `Undetermined`.
    pub from: GoState,
    pub to: GoState,
    pub reason: String,
}

/// What `go tool trace -d=parsed` printed, reduced to what the comparison needs.
#[derive(Clone, Debug, Default)]
pub struct GoParsed {
    pub transitions: Vec<GoTransition>,
    /// First and last Time= of any event (negative times, as old traces' Sync has, ignored).
    pub first_time: Option<i64>,
    pub last_time: Option<i64>,
    /// The window Go's tracer recorded transitions in: from the first event other than Sync (a
    /// generation's Sync carries the time it began, before StartTrace's stop-the-world turned
    /// the tracer on) to the last event other than Sync or Undetermined->X (StopTrace writes
    /// the status of untouched goroutines after transitions stopped being recorded).
    pub first_event_time: Option<i64>,
    pub last_event_time: Option<i64>,
    pub events: u64,
    /// P state transitions (ProcID=...), not compared.
    pub proc_transitions: u64,
    /// Event lines by event type (StateTransition, Metric, RangeBegin, ...).
    pub by_type: BTreeMap<String, u64>,
    /// Lines that are neither events nor stack blocks (counted, otherwise ignored).
    pub unknown_lines: u64,
    /// Event lines whose fields could not be read (counted, otherwise ignored).
    pub bad_events: u64,
    /// A Sync event carried Mono= (Go 1.25+ clock snapshots): Time is the monotonic clock.
    pub has_clock_snapshot: bool,
}

/// Splits on spaces outside double quotes (Reason="chan receive" is one token).
fn tokens(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = None;
    let mut in_quote = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        if in_quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_quote = false;
            }
            continue;
        }
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(&line[s..i]);
            }
            continue;
        }
        if start.is_none() {
            start = Some(i);
        }
        if c == '"' {
            in_quote = true;
        }
    }
    if let Some(s) = start {
        out.push(&line[s..]);
    }
    out
}

fn go_state(s: &str) -> Option<GoState> {
    Some(match s {
        "Undetermined" => GoState::Unknown,
        "NotExist" => GoState::NotExist,
        "Runnable" => GoState::Runnable,
        "Running" => GoState::Running,
        "Waiting" => GoState::Waiting,
        "Syscall" => GoState::Syscall,
        _ => return None,
    })
}

fn unquote(s: &str) -> String {
    let s = s.strip_prefix('"').unwrap_or(s);
    let s = s.strip_suffix('"').unwrap_or(s);
    s.replace("\\\"", "\"").replace("\\\\", "\\")
}

/// Parses `go tool trace -d=parsed` output. Stack blocks (`Stack=`, `TransitionStack=` and
/// their indented frames) are skipped; anything unrecognised is counted, never fatal.
pub fn parse_go(text: &str) -> GoParsed {
    let mut out = GoParsed::default();
    for line in text.lines() {
        if line.trim().is_empty() || line.starts_with(char::is_whitespace) {
            continue;
        }
        let toks = tokens(line);
        if toks.len() < 4 || !toks[0].starts_with("M=") {
            let first = toks.first().copied().unwrap_or("");
            if !(first.ends_with("Stack=") && toks.len() == 1) {
                out.unknown_lines += 1;
            }
            continue;
        }
        let head = |t: &str, k: &str| t.strip_prefix(k).and_then(|v| v.parse::<i64>().ok());
        let (Some(m), Some(p), Some(g)) = (
            head(toks[0], "M="),
            head(toks[1], "P="),
            head(toks[2], "G="),
        ) else {
            out.bad_events += 1;
            continue;
        };
        let kind = toks[3];
        out.events += 1;
        *out.by_type.entry(kind.to_string()).or_default() += 1;
        let mut fields: HashMap<&str, &str> = HashMap::new();
        let mut arrow = None;
        for t in &toks[4..] {
            match t.split_once('=') {
                Some((k, v)) if !k.contains('"') => {
                    fields.entry(k).or_insert(v);
                }
                _ if t.contains("->") => arrow = arrow.or(Some(*t)),
                _ => {}
            }
        }
        let time = fields.get("Time").and_then(|v| v.parse::<i64>().ok());
        if kind == "Sync" && fields.contains_key("Mono") {
            out.has_clock_snapshot = true;
        }
        if let Some(t) = time.filter(|t| *t >= 0) {
            out.first_time = Some(out.first_time.map_or(t, |f| f.min(t)));
            out.last_time = Some(out.last_time.map_or(t, |l| l.max(t)));
            if kind != "Sync" {
                out.first_event_time = Some(out.first_event_time.map_or(t, |f| f.min(t)));
                let status = arrow.is_some_and(|a| a.starts_with("Undetermined->"));
                if !status {
                    out.last_event_time = Some(out.last_event_time.map_or(t, |l| l.max(t)));
                }
            }
        }
        if kind != "StateTransition" {
            continue;
        }
        if fields.contains_key("ProcID") {
            out.proc_transitions += 1;
            continue;
        }
        let goid = fields.get("GoID").and_then(|v| v.parse::<u64>().ok());
        let states = arrow
            .and_then(|a| a.split_once("->"))
            .and_then(|(f, t)| Some((go_state(f)?, go_state(t)?)));
        let (Some(time), Some(goid), Some((from, to))) = (time, goid, states) else {
            out.bad_events += 1;
            continue;
        };
        out.transitions.push(GoTransition {
            time,
            m,
            p,
            g,
            goid,
            from,
            to,
            reason: fields.get("Reason").map(|r| unquote(r)).unwrap_or_default(),
        });
    }
    out
}

// ---------------------------------------------------------------------------------------------
// The comparison.

/// The rows compared, in Go's event names. GoCreate is matched on (goid, creator).
pub const ROWS: &[(&str, GoState, GoState)] = &[
    ("GoCreate", GoState::NotExist, GoState::Runnable),
    ("GoStart", GoState::Runnable, GoState::Running),
    ("GoBlock", GoState::Running, GoState::Waiting),
    ("GoUnblock", GoState::Waiting, GoState::Runnable),
    ("GoStop", GoState::Running, GoState::Runnable),
    ("GoDestroy", GoState::Running, GoState::NotExist),
    ("GoSyscallBegin", GoState::Running, GoState::Syscall),
    ("GoSyscallEnd", GoState::Syscall, GoState::Running),
    ("GoSyscallEndBlocked", GoState::Syscall, GoState::Runnable),
];

#[derive(Clone, Debug, Default, Serialize)]
pub struct Row {
    pub name: String,
    pub from: String,
    pub to: String,
    pub go: u64,
    pub ours: u64,
    pub matched: u64,
    /// In Go's trace, not in ours.
    pub missing: u64,
    /// In ours, not in Go's trace.
    pub extra: u64,
    /// matched / go * 100; None when Go has no event of this type.
    pub match_pct: Option<f64>,
    /// Goroutines whose counts differ: (goid, Go's count, ours), the first few.
    pub differing: Vec<(u64, u64, u64)>,
    pub differing_goroutines: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Placement {
    /// Go's GoStart events compared (the GoStart row's `go`).
    pub go_starts: u64,
    /// Of them, paired with our start of the same goroutine (k-th with k-th).
    pub paired: u64,
    pub same_m: u64,
    pub same_p: u64,
    /// same / go_starts * 100 (unpaired starts count as different).
    pub same_m_pct: Option<f64>,
    pub same_p_pct: Option<f64>,
    /// What Go's M= was matched against: "tid" (Go 1.22+ traces) or "m.id" (older traces).
    pub m_identity: String,
    /// The first few pairs that differ.
    pub differing: Vec<PlacementDiff>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PlacementDiff {
    pub goid: u64,
    /// Which start of the goroutine (0-based) in the window.
    pub nth: usize,
    /// Time of Go's start, ns from the window's start.
    pub go_ts: i64,
    pub go_m: i64,
    pub go_p: i64,
    pub ours_ts: i64,
    pub ours_m: i64,
    pub ours_p: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Clock {
    /// Added to Go's Time to get our clock (median over goroutines created in both).
    pub offset_ns: i64,
    pub pairs: u64,
    /// Spread of (ours - Go's) over those pairs around the median.
    pub min_diff_ns: i64,
    pub max_diff_ns: i64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Window {
    /// The window Go recorded transitions in (see [`GoParsed::first_event_time`]), on our clock.
    pub go_first: i64,
    pub go_last: i64,
    /// Our first..last event.
    pub ours_first: i64,
    pub ours_last: i64,
    /// What is compared: the intersection.
    pub start: i64,
    pub end: i64,
}

/// Everything left out of the rows, with how much.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Exclusions {
    /// Goroutines whose first event in Go's trace is Undetermined->X (they existed before
    /// tracing started): compared from their first determined transition on.
    pub undetermined_goroutines: u64,
    /// Their Undetermined->X events (not transitions we could see).
    pub undetermined_events: u64,
    /// Our transitions of those goroutines before Go's Undetermined->X (less the slack).
    pub ours_before_determined: u64,
    /// Our Running->Waiting immediately followed by Waiting->Running of the same goroutine
    /// (runtime-internal waits, e.g. GC stack scans, that Go's tracer does not show): pairs.
    pub tracer_invisible_waits: u64,
    /// Go <= 1.21 only: the GoSched StopTrace records for the goroutine stopping the trace
    /// (it is not descheduled).
    pub stop_trace_gosched: u64,
    /// Transitions outside the common window, and goroutines all of whose transitions are.
    pub go_outside_window: u64,
    pub ours_outside_window: u64,
    pub go_goroutines_outside_window: u64,
    pub ours_goroutines_outside_window: u64,
}

/// Transitions of a type outside the rows (e.g. Waiting->Running), per side.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Other {
    pub from: String,
    pub to: String,
    pub go: u64,
    pub ours: u64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub go_version: String,
    pub recording: String,
    pub go_trace: String,
    pub clock: Clock,
    pub window: Window,
    pub rows: Vec<Row>,
    pub gostart_placement: Placement,
    pub exclusions: Exclusions,
    pub other_transitions: Vec<Other>,
    /// Go's trace: event lines, P transitions, unrecognised lines.
    pub go_events: u64,
    pub go_proc_transitions: u64,
    pub go_unknown_lines: u64,
    pub go_bad_events: u64,
    /// Our recording: events, events lost in the ring buffer, transitions in total.
    pub ours_events: u64,
    pub ours_lost: u64,
    pub ours_transitions: u64,
    /// Probes the comparison relies on that the recording's footer does not list (a lower
    /// --level, or functions missing in that Go version): their rows cannot match.
    pub ours_probes_missing: Vec<String>,
    pub min_match: Option<f64>,
    /// Rows below --min-match (empty without it).
    pub failures: Vec<String>,
    #[serde(skip)]
    pub details: Vec<String>,
}

fn pct(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

/// One side's transition, reduced to what is compared.
#[derive(Clone, Copy, Debug)]
struct Item {
    ts: i64,
    goid: u64,
    from: GoState,
    to: GoState,
    /// Creator for GoCreate (0 = none).
    by: u64,
    m: i64,
    p: i64,
}

fn row_of(from: GoState, to: GoState) -> Option<usize> {
    ROWS.iter().position(|r| r.1 == from && r.2 == to)
}

/// How to compare.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Go version (major, minor) of the traced program: traces of Go <= 1.21 (the old format)
    /// end with a GoSched that StopTrace emits for its caller without descheduling it.
    pub go_version: (u32, u32),
    /// Print both sides' transitions of up to this many goroutines whose counts differ.
    pub detail: usize,
    /// How long before Go's Undetermined->X our transitions still count
    /// ([`UNDETERMINED_SLACK_NS`]).
    pub undetermined_slack_ns: i64,
}

/// Go's tracer records a goroutine's status lazily, when it first touches the goroutine in a
/// generation, stamped after the state change our probe saw (by up to a few microseconds, more
/// if the thread was preempted in between): our transitions that close before Go's
/// Undetermined->X still correspond to its first determined transition.
pub const UNDETERMINED_SLACK_NS: i64 = 20_000;

/// Compares Go's transitions with ours. `threads` maps our tids to m.id (for old traces, whose
/// M= is m.id); `ours_span` is our first..last event.
pub fn compare(
    go: &GoParsed,
    ours: &[Transition],
    threads: &HashMap<u32, i64>,
    ours_span: (u64, u64),
    opts: Options,
) -> Report {
    let detail = opts.detail;
    let mut rep = Report {
        go_events: go.events,
        go_proc_transitions: go.proc_transitions,
        go_unknown_lines: go.unknown_lines,
        go_bad_events: go.bad_events,
        ours_transitions: ours.len() as u64,
        ..Report::default()
    };

    // Clock: Go 1.22+ traces use CLOCK_MONOTONIC like our probes (offset ~0); older traces
    // start at 0. Align on the creations both saw.
    let go_created: HashMap<u64, i64> = go
        .transitions
        .iter()
        .filter(|t| t.from == GoState::NotExist && t.to == GoState::Runnable)
        .map(|t| (t.goid, t.time))
        .collect();
    let mut diffs: Vec<i64> = Vec::new();
    let mut seen = HashSet::new();
    for t in ours {
        if t.from == GoState::NotExist && t.to == GoState::Runnable && seen.insert(t.goid) {
            if let Some(gt) = go_created.get(&t.goid) {
                diffs.push(t.ts as i64 - gt);
            }
        }
    }
    diffs.sort_unstable();
    let offset = diffs.get(diffs.len() / 2).copied().unwrap_or(0);
    rep.clock = Clock {
        offset_ns: offset,
        pairs: diffs.len() as u64,
        min_diff_ns: diffs.first().map_or(0, |d| d - offset),
        max_diff_ns: diffs.last().map_or(0, |d| d - offset),
    };
    let w = Window {
        go_first: go.first_event_time.or(go.first_time).unwrap_or(0) + offset,
        go_last: go.last_event_time.or(go.last_time).unwrap_or(0) + offset,
        ours_first: ours_span.0 as i64,
        ours_last: ours_span.1 as i64,
        ..Window::default()
    };
    let (start, end) = (w.go_first.max(w.ours_first), w.go_last.min(w.ours_last));
    rep.window = Window { start, end, ..w };
    let inside = |ts: i64| ts >= start && ts <= end;

    // Go's side: drop Undetermined->X (remembering from when each goroutine is determined),
    // then what lies outside the window.
    let mut determined_from: HashMap<u64, i64> = HashMap::new();
    let mut go_first_seen: HashSet<u64> = HashSet::new();
    let mut go_items = Vec::new();
    let mut go_in: HashSet<u64> = HashSet::new();
    let mut go_all: HashSet<u64> = HashSet::new();
    // Go <= 1.21: StopTrace calls traceGoSched() for its caller, which goes on running: a
    // Running->Runnable (Reason "runtime.Gosched") as the trace's last goroutine transition.
    let stop_gosched = go
        .transitions
        .iter()
        .rposition(|t| t.from != GoState::Unknown)
        .filter(|&i| {
            let t = &go.transitions[i];
            opts.go_version < (1, 22)
                && t.from == GoState::Running
                && t.to == GoState::Runnable
                && t.reason == "runtime.Gosched"
        });
    let ex = &mut rep.exclusions;
    for (i, t) in go.transitions.iter().enumerate() {
        if Some(i) == stop_gosched {
            ex.stop_trace_gosched += 1;
            continue;
        }
        let first = go_first_seen.insert(t.goid);
        let ts = t.time + offset;
        if t.from == GoState::Unknown {
            if first {
                ex.undetermined_goroutines += 1;
                determined_from.insert(t.goid, ts);
            }
            ex.undetermined_events += 1;
            continue;
        }
        go_all.insert(t.goid);
        if !inside(ts) {
            ex.go_outside_window += 1;
            continue;
        }
        go_in.insert(t.goid);
        go_items.push(Item {
            ts,
            goid: t.goid,
            from: t.from,
            to: t.to,
            by: if t.g < 0 { 0 } else { t.g as u64 },
            m: t.m,
            p: t.p,
        });
    }
    ex.go_goroutines_outside_window = go_all.difference(&go_in).count() as u64;

    // Our side: tracer-invisible waits (per goroutine, in the order the model applied them),
    // then the window and the Undetermined cut.
    let mut last_of: HashMap<u64, usize> = HashMap::new();
    let mut dropped = vec![false; ours.len()];
    for (i, t) in ours.iter().enumerate() {
        if let Some(&j) = last_of.get(&t.goid) {
            let prev = &ours[j];
            if !dropped[j]
                && prev.from == GoState::Running
                && prev.to == GoState::Waiting
                && t.from == GoState::Waiting
                && t.to == GoState::Running
            {
                dropped[j] = true;
                dropped[i] = true;
                ex.tracer_invisible_waits += 1;
            }
        }
        last_of.insert(t.goid, i);
    }
    let mut our_items = Vec::new();
    let mut ours_in: HashSet<u64> = HashSet::new();
    let mut ours_all: HashSet<u64> = HashSet::new();
    for (t, _) in ours.iter().zip(&dropped).filter(|(_, d)| !**d) {
        let ts = t.ts as i64;
        ours_all.insert(t.goid);
        if !inside(ts) {
            ex.ours_outside_window += 1;
            continue;
        }
        ours_in.insert(t.goid);
        if determined_from
            .get(&t.goid)
            .is_some_and(|d| ts < *d - opts.undetermined_slack_ns)
        {
            ex.ours_before_determined += 1;
            continue;
        }
        our_items.push(Item {
            ts,
            goid: t.goid,
            from: t.from,
            to: t.to,
            by: t.by,
            m: t.tid as i64,
            p: t.p as i64,
        });
    }
    ex.ours_goroutines_outside_window = ours_all.difference(&ours_in).count() as u64;

    // Counts per row and goroutine (GoCreate: per (goid, creator)).
    type Counts = BTreeMap<(u64, u64), (u64, u64)>;
    let mut counts: Vec<Counts> = vec![Counts::new(); ROWS.len()];
    let mut other: BTreeMap<(GoState, GoState), (u64, u64)> = BTreeMap::new();
    for (side, items) in [(0, &go_items), (1, &our_items)] {
        for it in items.iter() {
            match row_of(it.from, it.to) {
                Some(r) => {
                    let key = (it.goid, if r == 0 { it.by } else { 0 });
                    let c = counts[r].entry(key).or_default();
                    if side == 0 {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
                None => {
                    let c = other.entry((it.from, it.to)).or_default();
                    if side == 0 {
                        c.0 += 1;
                    } else {
                        c.1 += 1;
                    }
                }
            }
        }
    }
    let mut differing_goids: BTreeSet<u64> = BTreeSet::new();
    for (r, (name, from, to)) in ROWS.iter().enumerate() {
        let mut row = Row {
            name: name.to_string(),
            from: from.name().to_string(),
            to: to.name().to_string(),
            ..Row::default()
        };
        for (&(goid, _), &(g, o)) in &counts[r] {
            let m = g.min(o);
            row.go += g;
            row.ours += o;
            row.matched += m;
            row.missing += g - m;
            row.extra += o - m;
            if g != o {
                row.differing_goroutines += 1;
                if row.differing.len() < 10 {
                    row.differing.push((goid, g, o));
                }
                if differing_goids.len() < detail {
                    differing_goids.insert(goid);
                }
            }
        }
        row.match_pct = pct(row.matched, row.go);
        rep.rows.push(row);
    }
    rep.other_transitions = other
        .into_iter()
        .map(|((f, t), (g, o))| Other {
            from: f.name().to_string(),
            to: t.name().to_string(),
            go: g,
            ours: o,
        })
        .collect();

    // GoStart placement: Go's k-th start of g against our k-th start of g. Go's M= is the
    // thread id in Go 1.22+ traces and m.id in older ones: take whichever our threads explain.
    let starts = |items: &[Item]| {
        let mut by: HashMap<u64, Vec<(i64, i64, i64)>> = HashMap::new();
        for it in items {
            if it.from == GoState::Runnable && it.to == GoState::Running {
                by.entry(it.goid).or_default().push((it.m, it.p, it.ts));
            }
        }
        by
    };
    let (go_starts, our_starts) = (starts(&go_items), starts(&our_items));
    let go_ms: HashSet<i64> = go_starts
        .values()
        .flatten()
        .map(|s| s.0)
        .filter(|m| *m >= 0)
        .collect();
    let tids: HashSet<i64> = threads.keys().map(|t| *t as i64).collect();
    let mids: HashSet<i64> = threads.values().copied().collect();
    let by_mid = go_ms.iter().filter(|m| mids.contains(m)).count()
        > go_ms.iter().filter(|m| tids.contains(m)).count();
    let mut pl = Placement {
        m_identity: if by_mid { "m.id" } else { "tid" }.to_string(),
        ..Placement::default()
    };
    let mut goids: Vec<&u64> = go_starts.keys().collect();
    goids.sort_unstable();
    for goid in goids {
        let gs = &go_starts[goid];
        pl.go_starts += gs.len() as u64;
        let Some(os) = our_starts.get(goid) else {
            continue;
        };
        for (nth, (g, o)) in gs.iter().zip(os).enumerate() {
            pl.paired += 1;
            let our_m = if by_mid {
                threads.get(&(o.0 as u32)).copied().unwrap_or(-1)
            } else {
                o.0
            };
            pl.same_m += u64::from(g.0 == our_m);
            pl.same_p += u64::from(g.1 == o.1);
            if (g.0 != our_m || g.1 != o.1) && pl.differing.len() < 10 {
                pl.differing.push(PlacementDiff {
                    goid: *goid,
                    nth,
                    go_ts: g.2 - start,
                    go_m: g.0,
                    go_p: g.1,
                    ours_ts: o.2 - start,
                    ours_m: our_m,
                    ours_p: o.1,
                });
            }
        }
    }
    pl.same_m_pct = pct(pl.same_m, pl.go_starts);
    pl.same_p_pct = pct(pl.same_p, pl.go_starts);
    rep.gostart_placement = pl;

    // Both sides' sequences of the first few goroutines whose counts differ, aligned, with
    // what did not align marked and a few transitions of context around it.
    for goid in differing_goids {
        let a: Vec<&Item> = go_items.iter().filter(|i| i.goid == goid).collect();
        let b: Vec<&Item> = our_items.iter().filter(|i| i.goid == goid).collect();
        let key = |i: &&Item| (i.from, i.to);
        let (ma, mb) = align(
            &a.iter().map(key).collect::<Vec<_>>(),
            &b.iter().map(key).collect::<Vec<_>>(),
        );
        let mut seq: Vec<(i64, &str, bool, &Item)> = a
            .iter()
            .zip(&ma)
            .map(|(i, m)| (i.ts, "go  ", *m, *i))
            .chain(b.iter().zip(&mb).map(|(i, m)| (i.ts, "ours", *m, *i)))
            .collect();
        seq.sort_by_key(|x| x.0);
        let near: Vec<bool> = (0..seq.len())
            .map(|k| {
                seq[k.saturating_sub(4)..(k + 5).min(seq.len())]
                    .iter()
                    .any(|x| !x.2)
            })
            .collect();
        let mut s = format!(
            "goroutine {goid} ({} Go transitions, {} ours; ! = not aligned):\n",
            a.len(),
            b.len()
        );
        let mut skipped = false;
        for (k, (ts, side, matched, i)) in seq.iter().enumerate() {
            if !near[k] {
                skipped = true;
                continue;
            }
            if skipped {
                s.push_str("  ...\n");
                skipped = false;
            }
            let _ = writeln!(
                s,
                "  {} {side} {:>12.3}us {:>8}->{:<8} M={} P={} by={}",
                if *matched { ' ' } else { '!' },
                (ts - start) as f64 / 1e3,
                i.from.name(),
                i.to.name(),
                i.m,
                i.p,
                i.by
            );
        }
        if skipped {
            s.push_str("  ...\n");
        }
        rep.details.push(s);
    }
    rep
}

/// Aligns two sequences that mostly agree: walks both, and where they disagree skips the
/// fewest elements (up to 8 on each side) after which the next three agree. Returns
/// which elements of each side were aligned.
fn align<T: PartialEq>(a: &[T], b: &[T]) -> (Vec<bool>, Vec<bool>) {
    let (mut ma, mut mb) = (vec![false; a.len()], vec![false; b.len()]);
    let sync = |i: usize, j: usize| {
        (0..3).all(|k| match (a.get(i + k), b.get(j + k)) {
            (Some(x), Some(y)) => x == y,
            (None, None) => true,
            _ => k > 0,
        })
    };
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i] == b[j] {
            ma[i] = true;
            mb[j] = true;
            i += 1;
            j += 1;
            continue;
        }
        let skip = (1..=16usize).find_map(|d| {
            (d.saturating_sub(8)..=d.min(8))
                .map(|x| (x, d - x))
                .find(|&(x, y)| sync(i + x, j + y))
        });
        let (x, y) = skip.unwrap_or((1, 1));
        i += x;
        j += y;
    }
    (ma, mb)
}

impl Report {
    /// Applies --min-match: every row with Go events at least `min` % matched (GoCreate 100 %),
    /// and GoStart's same M and same P at least `min` %.
    pub fn check(&mut self, min: f64) {
        self.min_match = Some(min);
        self.failures.clear();
        for r in &self.rows {
            let Some(p) = r.match_pct else { continue };
            let need = if r.name == "GoCreate" { 100.0 } else { min };
            if p < need {
                self.failures.push(format!(
                    "{} ({}->{}) matched {:.2}% < {need}%",
                    r.name, r.from, r.to, p
                ));
            }
        }
        let pl = &self.gostart_placement;
        for (what, v) in [("same M", pl.same_m_pct), ("same P", pl.same_p_pct)] {
            if let Some(p) = v.filter(|p| *p < min) {
                self.failures
                    .push(format!("GoStart {what} {p:.2}% < {min}%"));
            }
        }
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "gmp-trace compare: {} ({}) against {}",
            self.recording, self.go_version, self.go_trace
        );
        let w = &self.window;
        let _ = writeln!(
            s,
            "window: {:.3} ms compared (Go's trace {:.3} ms, ours {:.3} ms); clock offset {} ns over {} creations (spread {}..{} ns)",
            (w.end - w.start) as f64 / 1e6,
            (w.go_last - w.go_first) as f64 / 1e6,
            (w.ours_last - w.ours_first) as f64 / 1e6,
            self.clock.offset_ns,
            self.clock.pairs,
            self.clock.min_diff_ns,
            self.clock.max_diff_ns
        );
        let _ = writeln!(
            s,
            "\n{:<20} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "event", "transition", "go", "ours", "matched", "missing", "extra", "match%"
        );
        for r in &self.rows {
            let _ = writeln!(
                s,
                "{:<20} {:<20} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
                r.name,
                format!("{}->{}", r.from, r.to),
                r.go,
                r.ours,
                r.matched,
                r.missing,
                r.extra,
                r.match_pct.map_or("n/a".to_string(), |p| format!("{p:.2}"))
            );
        }
        let pl = &self.gostart_placement;
        let f = |v: Option<f64>| v.map_or("n/a".to_string(), |p| format!("{p:.2}%"));
        let _ = writeln!(
            s,
            "GoStart placement: {} starts, {} paired; same M ({}) {} {}, same P {} {}",
            pl.go_starts,
            pl.paired,
            pl.m_identity,
            pl.same_m,
            f(pl.same_m_pct),
            pl.same_p,
            f(pl.same_p_pct)
        );
        for d in &pl.differing {
            let _ = writeln!(
                s,
                "  GoStart #{} of g{}: Go M={} P={} at {:.3}us, ours M={} P={} at {:.3}us",
                d.nth,
                d.goid,
                d.go_m,
                d.go_p,
                d.go_ts as f64 / 1e3,
                d.ours_m,
                d.ours_p,
                d.ours_ts as f64 / 1e3
            );
        }
        for r in self.rows.iter().filter(|r| r.differing_goroutines > 0) {
            let list: Vec<String> = r
                .differing
                .iter()
                .map(|(g, a, b)| format!("g{g} go={a} ours={b}"))
                .collect();
            let _ = writeln!(
                s,
                "  {} differs on {} goroutines: {}",
                r.name,
                r.differing_goroutines,
                list.join(", ")
            );
        }
        if !self.other_transitions.is_empty() {
            let list: Vec<String> = self
                .other_transitions
                .iter()
                .map(|o| format!("{}->{} go={} ours={}", o.from, o.to, o.go, o.ours))
                .collect();
            let _ = writeln!(s, "other transitions (not compared): {}", list.join(", "));
        }
        let e = &self.exclusions;
        let _ = writeln!(s, "\nexcluded (docs/fidelity.md):");
        let _ = writeln!(
            s,
            "  goroutines already alive when Go's trace started (Undetermined->X): {} ({} events; {} of our transitions before)",
            e.undetermined_goroutines, e.undetermined_events, e.ours_before_determined
        );
        let _ = writeln!(
            s,
            "  tracer-invisible waits (our Running->Waiting->Running, e.g. GC stack scans): {} pairs",
            e.tracer_invisible_waits
        );
        if e.stop_trace_gosched > 0 {
            let _ = writeln!(
                s,
                "  Go <= 1.21 StopTrace's GoSched of the goroutine stopping the trace: {}",
                e.stop_trace_gosched
            );
        }
        let _ = writeln!(
            s,
            "  outside the common window: Go {} transitions ({} goroutines entirely), ours {} ({} goroutines entirely)",
            e.go_outside_window,
            e.go_goroutines_outside_window,
            e.ours_outside_window,
            e.ours_goroutines_outside_window
        );
        let _ = writeln!(
            s,
            "inputs: Go {} events ({} P transitions, {} unrecognised lines, {} unreadable events); ours {} events, {} lost, {} transitions",
            self.go_events,
            self.go_proc_transitions,
            self.go_unknown_lines,
            self.go_bad_events,
            self.ours_events,
            self.ours_lost,
            self.ours_transitions
        );
        if !self.ours_probes_missing.is_empty() {
            let _ = writeln!(
                s,
                "WARNING: the recording lacks the probes {} (recorded with a lower --level?): rows built from them cannot match",
                self.ours_probes_missing.join(", ")
            );
        }
        if let Some(min) = self.min_match {
            if self.failures.is_empty() {
                let _ = writeln!(s, "PASS: every row at least {min}% (GoCreate 100%)");
            } else {
                let _ = writeln!(s, "FAIL: {}", self.failures.join("; "));
            }
        }
        for d in &self.details {
            s.push('\n');
            s.push_str(d);
        }
        s
    }
}

// ---------------------------------------------------------------------------------------------
// The subcommand.

/// The probes whose events the compared transitions come from (`--level full`).
const NEEDED_PROBES: &[&str] = &[
    "newproc1_ret",
    "casgstatus",
    "acquirep",
    "syscall_enter",
    "syscall_exit",
];

struct ModelSink {
    model: Model,
    derive: Derive,
    malformed: u64,
}

impl Sink for ModelSink {
    fn event(&mut self, e: &Event) {
        if let Some(d) = self.derive.before(e) {
            self.model.apply(&d);
        }
        self.model.apply(e);
    }
    fn malformed(&mut self, _len: usize) {
        self.malformed += 1;
    }
}

fn go_tool_trace(go: Option<&Path>, trace: &Path) -> anyhow::Result<String> {
    let go = go.unwrap_or(Path::new("go"));
    let run = |flag: &str| {
        Command::new(go)
            .args(["tool", "trace", flag])
            .arg(trace)
            .env("GOTOOLCHAIN", "local")
            .output()
            .with_context(|| {
                format!(
                    "cannot run `{} tool trace` (pass --go PATH to a Go 1.22+ go command, or --go-parsed FILE)",
                    go.display()
                )
            })
    };
    let mut o = run("-d=parsed")?;
    if !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("for flag -d") {
        // Go 1.22 and 1.23 name the same dump -d=1.
        o = run("-d=1")?;
    }
    if !o.status.success() {
        bail!(
            "`{} tool trace -d=parsed {}` failed ({}); it needs a Go 1.22+ toolchain at least as new as the traced program (--go PATH):\n{}",
            go.display(),
            trace.display(),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    String::from_utf8(o.stdout).context("go tool trace printed non-UTF-8 text")
}

pub fn run(args: CompareArgs) -> anyhow::Result<i32> {
    let (text, source) = match (&args.go_parsed, &args.go_trace) {
        (Some(p), _) => (
            std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?,
            p.display().to_string(),
        ),
        (None, Some(t)) => (
            go_tool_trace(args.go.as_deref(), t)?,
            t.display().to_string(),
        ),
        (None, None) => bail!("pass --go-trace FILE or --go-parsed FILE"),
    };
    let go = parse_go(&text);
    if go.transitions.is_empty() {
        bail!(
            "no goroutine transitions in Go's trace {source} ({} events, {} unrecognised lines): is it `go tool trace -d=parsed` output of a Go execution trace?",
            go.events,
            go.unknown_lines
        );
    }

    let rec = Replay::open(&args.recording)?;
    let h = rec.header.clone();
    let version = crate::binary::GoVersion::parse(&h.go_version)
        .map(|v| (v.major, v.minor))
        .unwrap_or((0, 0));
    let mut model = Model::for_target(h.pid, version);
    model.log_transitions();
    let mut sink = ModelSink {
        model,
        derive: Derive::default(),
        malformed: 0,
    };
    let end = rec.run(&mut sink)?;
    let mut probes_missing = Vec::new();
    match &end.footer {
        None => log::warn!(
            "{} was cut short: compared every whole event",
            args.recording.display()
        ),
        Some(f) => {
            let attached: HashSet<&str> = f.probes.iter().map(|p| p.program.as_str()).collect();
            for p in NEEDED_PROBES {
                if !attached.contains(p) {
                    probes_missing.push(p.to_string());
                }
            }
        }
    }
    let model = sink.model;
    let threads: HashMap<u32, i64> = model
        .threads
        .values()
        .filter_map(|t| Some((t.tid, t.m?)))
        .collect();
    let log = model.transition_log.as_deref().unwrap_or_default();
    let span = (model.first_ts.unwrap_or(0), model.last_ts.unwrap_or(0));
    let opts = Options {
        go_version: version,
        detail: args.detail,
        undetermined_slack_ns: UNDETERMINED_SLACK_NS,
    };
    let mut rep = compare(&go, log, &threads, span, opts);
    rep.go_version = h.go_version.clone();
    rep.recording = args.recording.display().to_string();
    rep.go_trace = source;
    rep.ours_events = model.events;
    rep.ours_lost = model.lost;
    rep.ours_probes_missing = probes_missing;
    if let Some(min) = args.min_match {
        rep.check(min);
    }
    // A closed stdout (`| head`) is not an error worth a panic.
    let _ = std::io::Write::write_all(&mut std::io::stdout(), rep.text().as_bytes());
    if let Some(p) = &args.json {
        let mut j = serde_json::to_vec_pretty(&rep)?;
        j.push(b'\n');
        std::fs::write(p, j).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(if rep.failures.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"M=-1 P=-1 G=-1 Sync Time=1000 N=1 Trace=1000 Mono=990 Wall=2026-01-01T00:00:00Z
M=10 P=-1 G=-1 StateTransition Time=1100 ProcID=1 Undetermined->Running Reason=""
M=10 P=1 G=-1 StateTransition Time=1200 GoID=1 Undetermined->Running Reason=""
M=10 P=1 G=1 Metric Time=1300 Name="/sched/gomaxprocs:threads" Value=Value{Uint64(2)}
Stack=
	runtime.traceLocker.Gomaxprocs @ 0x46cc63
		runtime/traceruntime.go:282

M=10 P=1 G=1 StateTransition Time=1400 GoID=7 NotExist->Runnable Reason=""
TransitionStack=
	main.f @ 0x1
		x.go:1

Stack=
	main.main @ 0x2
		x.go:2

M=11 P=0 G=-1 StateTransition Time=1500 GoID=7 Runnable->Running Reason=""
M=11 P=0 G=7 StateTransition Time=1600 GoID=7 Running->Waiting Reason="chan receive"
M=10 P=1 G=1 StateTransition Time=1700 GoID=7 Waiting->Runnable Reason=""
M=10 P=1 G=1 RangeBegin Time=1750 Name="stop-the-world (x y)" Scope=Goroutine(1)
something odd
M=11 P=0 G=-1 StateTransition Time=1800 GoID=7 Runnable->Running Reason=""
M=11 P=0 G=7 StateTransition Time=1900 GoID=7 Running->NotExist Reason=""
M=-1 P=-1 G=-1 StateTransition Time=1990 GoID=9 Undetermined->Waiting Reason=""
M=-1 P=-1 G=-1 Sync Time=2000 N=2
"#;

    #[test]
    fn tokens_keep_quoted_spaces() {
        assert_eq!(
            tokens(r#"M=1 P=2 G=3 StateTransition Reason="chan \"x\" receive" Time=5"#),
            vec![
                "M=1",
                "P=2",
                "G=3",
                "StateTransition",
                r#"Reason="chan \"x\" receive""#,
                "Time=5"
            ]
        );
        assert_eq!(unquote(r#""chan \"x\" receive""#), r#"chan "x" receive"#);
    }

    #[test]
    fn parses_parsed_output() {
        let p = parse_go(SAMPLE);
        assert_eq!(p.first_time, Some(1000));
        assert_eq!(p.last_time, Some(2000));
        assert_eq!(p.proc_transitions, 1);
        assert_eq!(
            p.unknown_lines, 1,
            "the odd line only; stack blocks are skipped"
        );
        assert_eq!(p.bad_events, 0);
        assert!(p.has_clock_snapshot);
        assert_eq!(p.by_type["StateTransition"], 9);
        assert_eq!(p.events, 13);
        assert_eq!(
            (p.first_event_time, p.last_event_time),
            (Some(1100), Some(1900)),
            "no Sync; no final statuses"
        );
        let t = &p.transitions;
        assert_eq!(t.len(), 8);
        assert_eq!(
            t[0],
            GoTransition {
                time: 1200,
                m: 10,
                p: 1,
                g: -1,
                goid: 1,
                from: GoState::Unknown,
                to: GoState::Running,
                reason: String::new()
            }
        );
        assert_eq!(
            (t[1].goid, t[1].g, t[1].from, t[1].to),
            (7, 1, GoState::NotExist, GoState::Runnable)
        );
        assert_eq!(t[3].reason, "chan receive");
        assert_eq!((t[3].m, t[3].p), (11, 0));
        assert_eq!(t[6].to, GoState::NotExist);
    }

    #[test]
    fn bad_event_lines_are_counted() {
        let p = parse_go(
            "M=1 P=0 G=1 StateTransition Time=5 GoID=3 Running->Flying Reason=\"\"\nM=x P=0 G=1 Foo Time=1\n",
        );
        assert!(p.transitions.is_empty());
        assert_eq!(p.bad_events, 2);
    }

    fn opts(detail: usize) -> Options {
        Options {
            go_version: (1, 27),
            detail,
            undetermined_slack_ns: 0,
        }
    }

    fn tr(ts: u64, goid: u64, from: GoState, to: GoState, tid: u32, p: i32, by: u64) -> Transition {
        Transition {
            ts,
            goid,
            from,
            to,
            tid,
            p,
            by,
            reason: 0,
        }
    }

    use GoState::{NotExist as N, Runnable as R, Running as X, Syscall as S, Waiting as W};

    /// Our side of SAMPLE, 50 ns later, with extras to be excluded or counted.
    fn ours() -> Vec<Transition> {
        vec![
            // Before Go's trace: outside the window.
            tr(500, 3, N, R, 10, 1, 1),
            tr(600, 3, R, X, 10, 1, 0),
            // g1 existed before (Undetermined in Go's trace); ours before that is cut.
            tr(1150, 1, R, X, 10, 1, 0),
            tr(1450, 7, N, R, 10, 1, 1),
            tr(1550, 7, R, X, 11, 0, 0),
            // A GC stack scan: invisible to Go's tracer.
            tr(1560, 7, X, W, 11, 0, 0),
            tr(1570, 7, W, X, 11, 0, 0),
            tr(1650, 7, X, W, 11, 0, 0),
            tr(1750, 7, W, R, 10, 1, 1),
            // Started on another P than Go says.
            tr(1850, 7, R, X, 11, 1, 0),
            tr(1860, 7, X, S, 11, 1, 0),
            tr(1870, 7, S, X, 11, 1, 0),
            tr(1950, 7, X, N, 11, 1, 0),
            // After Go's trace stopped.
            tr(2100, 8, N, R, 10, 1, 1),
        ]
    }

    #[test]
    fn matches_per_goroutine_with_exclusions() {
        let go = parse_go(SAMPLE);
        let threads = HashMap::from([(10, 0), (11, 1)]);
        let rep = compare(&go, &ours(), &threads, (500, 2100), opts(5));
        assert_eq!(rep.clock.offset_ns, 50);
        assert_eq!(rep.clock.pairs, 1);
        assert_eq!(
            (rep.window.start, rep.window.end),
            (1150, 1950),
            "Sync left out"
        );
        let row = |n: &str| rep.rows.iter().find(|r| r.name == n).unwrap();
        let c = |n: &str| {
            let r = row(n);
            (r.go, r.ours, r.matched, r.missing, r.extra)
        };
        assert_eq!(c("GoCreate"), (1, 1, 1, 0, 0));
        assert_eq!(row("GoCreate").match_pct, Some(100.0));
        assert_eq!(c("GoStart"), (2, 2, 2, 0, 0));
        assert_eq!(c("GoBlock"), (1, 1, 1, 0, 0));
        assert_eq!(c("GoUnblock"), (1, 1, 1, 0, 0));
        assert_eq!(c("GoDestroy"), (1, 1, 1, 0, 0));
        assert_eq!(c("GoSyscallBegin"), (0, 1, 0, 0, 1));
        assert_eq!(row("GoSyscallBegin").match_pct, None);
        assert_eq!(row("GoSyscallBegin").differing, vec![(7, 0, 1)]);
        let e = &rep.exclusions;
        assert_eq!(e.undetermined_goroutines, 2);
        assert_eq!(e.undetermined_events, 2);
        assert_eq!(e.ours_before_determined, 1);
        assert_eq!(e.tracer_invisible_waits, 1);
        assert_eq!(e.ours_outside_window, 3);
        assert_eq!(e.ours_goroutines_outside_window, 2);
        assert_eq!(e.go_outside_window, 0);
        let pl = &rep.gostart_placement;
        assert_eq!(pl.m_identity, "tid");
        assert_eq!(
            (pl.go_starts, pl.paired, pl.same_m, pl.same_p),
            (2, 2, 2, 1)
        );
        assert_eq!(pl.same_p_pct, Some(50.0));
        assert_eq!(rep.details.len(), 1);
        assert!(rep.details[0].contains("goroutine 7"));
        // Within the slack, g1's start before its Undetermined->Running is compared.
        let slack = Options {
            undetermined_slack_ns: 100,
            ..opts(0)
        };
        let rep = compare(&go, &ours(), &threads, (500, 2100), slack);
        assert_eq!(rep.exclusions.ours_before_determined, 0);
        assert_eq!((rep.rows[1].go, rep.rows[1].extra), (2, 1));
    }

    #[test]
    fn creator_mismatch_is_missing_and_extra() {
        let go = parse_go(SAMPLE);
        let mut o = ours();
        o[3].by = 2;
        let rep = compare(&go, &o, &HashMap::new(), (500, 2100), opts(0));
        let r = &rep.rows[0];
        assert_eq!(
            (r.go, r.ours, r.matched, r.missing, r.extra),
            (1, 1, 0, 1, 1)
        );
        assert_eq!(r.differing_goroutines, 2);
        assert!(rep.details.is_empty());
    }

    #[test]
    fn old_traces_match_m_ids_and_align_the_clock() {
        // Go <= 1.21 traces: Time from 0 and M= is m.id.
        let text = "M=-1 P=-1 G=-1 Sync Time=-1 N=1\n\
            M=0 P=1 G=1 StateTransition Time=10 GoID=5 NotExist->Runnable Reason=\"\"\n\
            M=1 P=0 G=-1 StateTransition Time=20 GoID=5 Runnable->Running Reason=\"\"\n\
            M=1 P=0 G=5 StateTransition Time=30 GoID=5 Running->NotExist Reason=\"\"\n";
        let go = parse_go(text);
        assert_eq!(go.first_time, Some(10));
        let o = vec![
            tr(1_000_010, 5, N, R, 100, 1, 1),
            tr(1_000_021, 5, R, X, 101, 0, 0),
            tr(1_000_030, 5, X, N, 101, 0, 0),
        ];
        let threads = HashMap::from([(100, 0), (101, 1)]);
        let mut rep = compare(&go, &o, &threads, (0, 2_000_000), opts(0));
        assert_eq!(rep.clock.offset_ns, 1_000_000);
        assert_eq!(rep.gostart_placement.m_identity, "m.id");
        assert_eq!(rep.gostart_placement.same_m, 1);
        assert!(rep.rows.iter().all(|r| r.missing == 0 && r.extra == 0));
        rep.check(99.9);
        assert!(rep.failures.is_empty(), "{:?}", rep.failures);
        rep.gostart_placement.same_p_pct = Some(50.0);
        rep.rows[1].match_pct = Some(99.0);
        rep.check(99.9);
        assert_eq!(rep.failures.len(), 2, "{:?}", rep.failures);
        assert!(rep.text().contains("FAIL"));
    }

    #[test]
    fn old_traces_stop_with_a_gosched_that_is_not_compared() {
        let text = "M=0 P=1 G=1 StateTransition Time=10 GoID=1 Undetermined->Running Reason=\"\"\n\
            M=0 P=1 G=1 StateTransition Time=20 GoID=5 NotExist->Runnable Reason=\"\"\n\
            M=0 P=1 G=1 StateTransition Time=30 GoID=1 Running->Runnable Reason=\"runtime.Gosched\"\n";
        let go = parse_go(text);
        let o = vec![tr(120, 5, N, R, 100, 1, 1)];
        let threads = HashMap::from([(100, 0)]);
        let old = Options {
            go_version: (1, 21),
            ..opts(0)
        };
        let rep = compare(&go, &o, &threads, (0, 200), old);
        assert_eq!(rep.exclusions.stop_trace_gosched, 1);
        assert_eq!(rep.rows[4].go, 0, "GoStop");
        // Go 1.22+ StopTrace does not do that: a real GoStop, missing from ours.
        let rep = compare(&go, &o, &threads, (0, 200), opts(0));
        assert_eq!(rep.exclusions.stop_trace_gosched, 0);
        assert_eq!((rep.rows[4].go, rep.rows[4].missing), (1, 1));
    }

    #[test]
    fn align_skips_what_one_side_lacks() {
        let a = [1, 2, 3, 1, 2, 3, 1, 2, 3];
        let b = [1, 2, 3, 1, 9, 2, 3, 1, 2, 3];
        let (ma, mb) = align(&a, &b);
        assert!(ma.iter().all(|m| *m));
        assert_eq!(mb.iter().filter(|m| !**m).count(), 1);
        assert!(!mb[4]);
        let (ma, mb) = align(&[1, 2, 4, 4], &[1, 2, 5, 5]);
        assert_eq!(ma, [true, true, false, false]);
        assert_eq!(mb, [true, true, false, false]);
    }
}
