//! The matcher: puts both sides on one clock and in one window, leaves out (and counts) what
//! one tracer cannot see, then counts each side's transitions per row and goroutine and pairs
//! GoStarts to check they ran on the same M and P. Pure: it takes both sides already read and
//! returns the [`Report`], so it is tested without Go or a recording.
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::detail;
use super::go_side::GoParsed;
use super::report::{Clock, Exclusions, Other, Placement, PlacementDiff, Report, Row, Window};
use crate::model::{GoState, Transition};

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
    /// How long after the window's end our transitions still count (0 for a recording; for
    /// our Go trace [`UNDETERMINED_SLACK_NS`]: Go's tracer stamps an event before the state
    /// change our probe sees, so its last event can close the window just before ours).
    pub end_slack_ns: i64,
}

/// Go's tracer records a goroutine's status lazily, when it first touches the goroutine in a
/// generation, stamped after the state change our probe saw (by up to a few microseconds, more
/// if the thread was preempted in between): our transitions that close before Go's
/// Undetermined->X still correspond to its first determined transition.
pub const UNDETERMINED_SLACK_NS: i64 = 20_000;

/// One side's transition, reduced to what is compared.
#[derive(Clone, Copy, Debug)]
pub(super) struct Item {
    pub ts: i64,
    pub goid: u64,
    pub from: GoState,
    pub to: GoState,
    /// Creator for GoCreate (0 = none).
    pub by: u64,
    pub m: i64,
    pub p: i64,
    /// Its index in the side's input (Go's transitions, or ours).
    pub idx: usize,
}

fn pct(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

fn row_of(from: GoState, to: GoState) -> Option<usize> {
    ROWS.iter().position(|r| r.1 == from && r.2 == to)
}

/// Compares Go's transitions with ours. `threads` maps our tids to m.id (for old traces, whose
/// M= is m.id); `ours_span` is our first..last event.
pub fn compare(
    go: &GoParsed,
    ours: &[Transition],
    threads: &HashMap<u32, i64>,
    ours_span: (u64, u64),
    opts: Options,
) -> Report {
    compare_items(go, ours, threads, ours_span, opts).0
}

/// [`compare`], also returning the items compared from each side (in the window, exclusions
/// applied) for checks made on top of the rows (stacks, reasons: [`super::go_go`]).
pub(super) fn compare_items(
    go: &GoParsed,
    ours: &[Transition],
    threads: &HashMap<u32, i64>,
    ours_span: (u64, u64),
    opts: Options,
) -> (Report, Vec<Item>, Vec<Item>) {
    let mut rep = Report {
        go_events: go.events,
        go_proc_transitions: go.proc_transitions,
        go_unknown_lines: go.unknown_lines,
        go_bad_events: go.bad_events,
        ours_transitions: ours.len() as u64,
        ..Report::default()
    };
    rep.clock = align_clock(go, ours);
    rep.window = common_window(go, ours_span, rep.clock.offset_ns);
    let (go_items, determined_from) =
        go_items(go, &rep.clock, &rep.window, opts, &mut rep.exclusions);
    let our_items = our_items(
        ours,
        &rep.window,
        &determined_from,
        opts,
        &mut rep.exclusions,
    );
    let (rows, other, differing_goids) = count_rows(&go_items, &our_items, opts.detail);
    rep.rows = rows;
    rep.other_transitions = other;
    rep.gostart_placement = gostart_placement(&go_items, &our_items, threads, rep.window.start);
    rep.details = differing_goids
        .into_iter()
        .map(|goid| detail::listing(goid, &go_items, &our_items, rep.window.start))
        .collect();
    (rep, go_items, our_items)
}

/// Go 1.22+ traces use CLOCK_MONOTONIC like our probes (offset ~0); older traces start at 0.
/// Align on the creations both saw: the median of (ours - Go's).
fn align_clock(go: &GoParsed, ours: &[Transition]) -> Clock {
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
    Clock {
        offset_ns: offset,
        pairs: diffs.len() as u64,
        min_diff_ns: diffs.first().map_or(0, |d| d - offset),
        max_diff_ns: diffs.last().map_or(0, |d| d - offset),
    }
}

/// Each side's window on our clock, and their intersection: what is compared.
fn common_window(go: &GoParsed, ours_span: (u64, u64), offset: i64) -> Window {
    let w = Window {
        go_first: go.first_event_time.or(go.first_time).unwrap_or(0) + offset,
        go_last: go.last_event_time.or(go.last_time).unwrap_or(0) + offset,
        ours_first: ours_span.0 as i64,
        ours_last: ours_span.1 as i64,
        ..Window::default()
    };
    let (start, end) = (w.go_first.max(w.ours_first), w.go_last.min(w.ours_last));
    Window { start, end, ..w }
}

fn inside(w: &Window, ts: i64) -> bool {
    ts >= w.start && ts <= w.end
}

/// Go <= 1.21: StopTrace calls traceGoSched() for its caller, which goes on running: a
/// Running->Runnable (Reason "runtime.Gosched") as the trace's last goroutine transition.
/// Returns its index in Go's transitions.
fn stop_trace_gosched(go: &GoParsed, opts: Options) -> Option<usize> {
    go.transitions
        .iter()
        .rposition(|t| t.from != GoState::Unknown)
        .filter(|&i| {
            let t = &go.transitions[i];
            opts.go_version < (1, 22)
                && t.from == GoState::Running
                && t.to == GoState::Runnable
                && t.reason == "runtime.Gosched"
        })
}

/// Go's side on our clock: drops Undetermined->X (remembering from when each goroutine is
/// determined), then what lies outside the window. Returns the items compared and, per
/// goroutine that was already alive, the time of its Undetermined->X.
fn go_items(
    go: &GoParsed,
    clock: &Clock,
    w: &Window,
    opts: Options,
    ex: &mut Exclusions,
) -> (Vec<Item>, HashMap<u64, i64>) {
    let stop_gosched = stop_trace_gosched(go, opts);
    let mut determined_from: HashMap<u64, i64> = HashMap::new();
    let mut first_seen: HashSet<u64> = HashSet::new();
    let mut items = Vec::new();
    let mut inside_goids: HashSet<u64> = HashSet::new();
    let mut all_goids: HashSet<u64> = HashSet::new();
    for (i, t) in go.transitions.iter().enumerate() {
        if Some(i) == stop_gosched {
            ex.stop_trace_gosched += 1;
            continue;
        }
        let first = first_seen.insert(t.goid);
        let ts = t.time + clock.offset_ns;
        if t.from == GoState::Unknown {
            if first {
                ex.undetermined_goroutines += 1;
                determined_from.insert(t.goid, ts);
            }
            ex.undetermined_events += 1;
            continue;
        }
        all_goids.insert(t.goid);
        if !inside(w, ts) {
            ex.go_outside_window += 1;
            continue;
        }
        inside_goids.insert(t.goid);
        items.push(Item {
            ts,
            goid: t.goid,
            from: t.from,
            to: t.to,
            by: if t.g < 0 { 0 } else { t.g as u64 },
            m: t.m,
            p: t.p,
            idx: i,
        });
    }
    ex.go_goroutines_outside_window = all_goids.difference(&inside_goids).count() as u64;
    (items, determined_from)
}

/// Marks our Running->Waiting immediately followed (for that goroutine, in the order the model
/// applied them) by Waiting->Running: runtime-internal waits Go's tracer does not show.
fn tracer_invisible_waits(ours: &[Transition], ex: &mut Exclusions) -> Vec<bool> {
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
    dropped
}

/// Our side: tracer-invisible waits out, then the window, then the Undetermined cut (our
/// transitions of a goroutine before Go first determined its state, less the slack).
fn our_items(
    ours: &[Transition],
    w: &Window,
    determined_from: &HashMap<u64, i64>,
    opts: Options,
    ex: &mut Exclusions,
) -> Vec<Item> {
    let dropped = tracer_invisible_waits(ours, ex);
    let mut items = Vec::new();
    let mut inside_goids: HashSet<u64> = HashSet::new();
    let mut all_goids: HashSet<u64> = HashSet::new();
    for (idx, (t, _)) in ours
        .iter()
        .zip(&dropped)
        .enumerate()
        .filter(|(_, (_, d))| !**d)
    {
        let ts = t.ts as i64;
        all_goids.insert(t.goid);
        if ts < w.start || ts > w.end + opts.end_slack_ns {
            ex.ours_outside_window += 1;
            continue;
        }
        inside_goids.insert(t.goid);
        if determined_from
            .get(&t.goid)
            .is_some_and(|d| ts < *d - opts.undetermined_slack_ns)
        {
            ex.ours_before_determined += 1;
            continue;
        }
        items.push(Item {
            ts,
            goid: t.goid,
            from: t.from,
            to: t.to,
            by: t.by,
            m: t.tid as i64,
            p: t.p as i64,
            idx,
        });
    }
    ex.ours_goroutines_outside_window = all_goids.difference(&inside_goids).count() as u64;
    items
}

/// (Go's count, ours) per row and goroutine (GoCreate: per (goid, creator)).
type Counts = BTreeMap<(u64, u64), (u64, u64)>;

/// Counts both sides per row and goroutine, and the transitions outside the rows per type.
/// Also returns the first `detail` goroutines whose counts differ, for the listings.
fn count_rows(
    go_items: &[Item],
    our_items: &[Item],
    detail: usize,
) -> (Vec<Row>, Vec<Other>, BTreeSet<u64>) {
    let mut counts: Vec<Counts> = vec![Counts::new(); ROWS.len()];
    let mut other: BTreeMap<(GoState, GoState), (u64, u64)> = BTreeMap::new();
    for (side, items) in [(0, go_items), (1, our_items)] {
        for it in items.iter() {
            let c = match row_of(it.from, it.to) {
                Some(r) => {
                    let key = (it.goid, if r == 0 { it.by } else { 0 });
                    counts[r].entry(key).or_default()
                }
                None => other.entry((it.from, it.to)).or_default(),
            };
            if side == 0 {
                c.0 += 1;
            } else {
                c.1 += 1;
            }
        }
    }
    let mut differing_goids: BTreeSet<u64> = BTreeSet::new();
    let rows = ROWS
        .iter()
        .zip(&counts)
        .map(|(row, counts)| score_row(row, counts, detail, &mut differing_goids))
        .collect();
    let other = other
        .into_iter()
        .map(|((f, t), (g, o))| Other {
            from: f.name().to_string(),
            to: t.name().to_string(),
            go: g,
            ours: o,
        })
        .collect();
    (rows, other, differing_goids)
}

/// One row from its per-goroutine counts: a goroutine's events match up to the smaller count;
/// the rest are missing (Go's) or extra (ours).
fn score_row(
    &(name, from, to): &(&str, GoState, GoState),
    counts: &Counts,
    detail: usize,
    differing_goids: &mut BTreeSet<u64>,
) -> Row {
    let mut row = Row {
        name: name.to_string(),
        from: from.name().to_string(),
        to: to.name().to_string(),
        ..Row::default()
    };
    for (&(goid, _), &(g, o)) in counts {
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
    row
}

/// (M, P, ts) of each start (Runnable->Running), per goroutine, in order.
fn starts(items: &[Item]) -> HashMap<u64, Vec<(i64, i64, i64)>> {
    let mut by: HashMap<u64, Vec<(i64, i64, i64)>> = HashMap::new();
    for it in items {
        if it.from == GoState::Runnable && it.to == GoState::Running {
            by.entry(it.goid).or_default().push((it.m, it.p, it.ts));
        }
    }
    by
}

/// GoStart placement: Go's k-th start of g against our k-th start of g. Go's M= is the
/// thread id in Go 1.22+ traces and m.id in older ones: take whichever our threads explain.
fn gostart_placement(
    go_items: &[Item],
    our_items: &[Item],
    threads: &HashMap<u32, i64>,
    start: i64,
) -> Placement {
    let (go_starts, our_starts) = (starts(go_items), starts(our_items));
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
    pl
}
