//! `gmp-trace compare --go-trace THEIRS --ours-go-trace OURS`: our `--format go` file against
//! Go's own execution trace of the same run, both read by `go tool trace -d=parsed`. Our file
//! goes through the same parser as Go's ([`go_side`]) and becomes the "ours" side of the same
//! [`matcher`] (window, exclusions, rows, GoStart placement), so the two comparisons agree on
//! every rule they share. On top of the rows this module checks what only a Go trace has:
//! the stacks events carry ([`same_stack`], the documented rule) and the block and stop
//! reasons, per reason string.
use std::collections::{BTreeMap, HashMap};
use std::io::Read as _;
use std::path::Path;

use serde::Serialize;

use super::go_side::{self, GoParsed};
use super::matcher::{compare_items, Item, Options, UNDETERMINED_SLACK_NS};
use super::report::Report;
use super::CompareArgs;
use crate::model::{GoState, Transition};

/// The stack rule, as the report states it (docs/fidelity.md says why).
pub const STACK_RULE: &str = "both stacks without a bottom runtime.goexit and then runtime.main \
(Go's tracer drops them); Go's stack must then be the outer end of ours, frame by frame by \
function name (Go's tracer skips a call-site-dependent number of leaf frames inside the runtime, \
e.g. gopark and chanrecv; our probes fire deeper in the same call), and not empty";

/// Which stack of a transition a row compares.
#[derive(Clone, Copy, PartialEq)]
enum Which {
    /// `Stack=`, by [`same_stack`] (GoCreate's is the creator's).
    Event,
    /// `TransitionStack=`: GoCreate's start function (for a `go` statement's wrapper, the
    /// function it calls), which must be the same.
    Start,
}

/// Stack rows: (name, from, to, required, which stack). GoBlock, GoCreate and GoCreate's
/// start function are held to the threshold.
const STACK_ROWS: &[(&str, GoState, GoState, bool, Which)] = &[
    (
        "GoBlock",
        GoState::Running,
        GoState::Waiting,
        true,
        Which::Event,
    ),
    (
        "GoCreate",
        GoState::NotExist,
        GoState::Runnable,
        true,
        Which::Event,
    ),
    (
        "GoCreate start func",
        GoState::NotExist,
        GoState::Runnable,
        true,
        Which::Start,
    ),
    (
        "GoStop",
        GoState::Running,
        GoState::Runnable,
        false,
        Which::Event,
    ),
    (
        "GoUnblock",
        GoState::Waiting,
        GoState::Runnable,
        false,
        Which::Event,
    ),
    (
        "GoSyscallBegin",
        GoState::Running,
        GoState::Syscall,
        false,
        Which::Event,
    ),
];

/// What a comparison of two Go traces adds to the [`Report`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct GoGo {
    pub stack_rule: String,
    pub stacks: Vec<StackRow>,
    pub reasons: Vec<ReasonRow>,
    /// Undetermined->X statuses in our file (goroutines alive before it starts, `--pid`).
    pub ours_statuses: u64,
    /// How our Ms were matched to Go's: "tid" (the same numbers) or "m.id (learned)".
    pub m_mapping: String,
    /// The stack rows' threshold (`--min-stack-match`), with --min-match.
    pub min_stack_match: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StackRow {
    pub name: String,
    /// Held to --min-stack-match (GoBlock, GoCreate); the others are printed for the record.
    pub required: bool,
    /// Go's events of the row in the window, and those of them with a stack (the ones judged).
    pub go: u64,
    pub go_with_stack: u64,
    /// Judged events paired with ours (k-th of the goroutine with k-th), and the same stack.
    pub paired: u64,
    pub same: u64,
    /// same / go_with_stack * 100.
    pub match_pct: Option<f64>,
    pub differing: Vec<StackDiff>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct StackDiff {
    pub goid: u64,
    pub nth: usize,
    pub go: Vec<String>,
    pub ours: Vec<String>,
}

/// One block or stop reason: its events per side, matched per goroutine like the rows.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReasonRow {
    pub name: String,
    pub reason: String,
    pub go: u64,
    pub ours: u64,
    pub matched: u64,
    pub match_pct: Option<f64>,
}

fn pct(n: u64, d: u64) -> Option<f64> {
    (d > 0).then(|| n as f64 * 100.0 / d as f64)
}

/// Reads both traces, compares them, prints the report; exit status 1 when a threshold fails.
pub fn run(args: &CompareArgs, ours_file: &Path) -> anyhow::Result<i32> {
    let (go, go_source) = go_side::load(
        args.go_parsed.as_deref(),
        args.go_trace.as_deref(),
        args.go.as_deref(),
    )?;
    let (ours, _) = go_side::load(None, Some(ours_file), args.go.as_deref())?;
    let version = args
        .go_trace
        .as_deref()
        .and_then(header_version)
        .unwrap_or((1, 22));
    let opts = Options {
        go_version: version,
        detail: args.detail,
        undetermined_slack_ns: UNDETERMINED_SLACK_NS,
        end_slack_ns: UNDETERMINED_SLACK_NS,
    };
    let mut rep = compare_go_go(&go, &ours, opts);
    rep.go_version = format!("Go's trace format go 1.{}", version.1);
    rep.recording = ours_file.display().to_string();
    rep.go_trace = go_source;
    rep.ours_events = ours.events;
    if let Some(min) = args.min_match {
        rep.check(min);
        if let Some(g) = rep.go_go.as_mut() {
            g.min_stack_match = Some(args.min_stack_match);
            let mut failures = std::mem::take(&mut rep.failures);
            g.check(min, args.min_stack_match, &mut failures);
            rep.failures = failures;
        }
    }
    rep.emit(args.json.as_deref())?;
    Ok(if rep.failures.is_empty() { 0 } else { 1 })
}

/// The version a trace file's header names (`go 1.21 trace\0...`), as (major, minor).
pub fn header_version(path: &Path) -> Option<(u32, u32)> {
    let mut head = [0u8; 16];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    let text = std::str::from_utf8(&head).ok()?;
    let v = text.strip_prefix("go ")?.split(' ').next()?;
    let (major, minor) = v.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// The comparison proper (pure, for the tests): Go's trace against ours, both parsed.
pub fn compare_go_go(go: &GoParsed, ours: &GoParsed, opts: Options) -> Report {
    // Our statuses are not transitions; the rest become the matcher's "ours" side, with the
    // index of each in our parsed file.
    let (mut trans, mut index) = (Vec::new(), Vec::new());
    let mut statuses = 0;
    for (i, t) in ours.transitions.iter().enumerate() {
        if t.from == GoState::Unknown {
            statuses += 1;
            continue;
        }
        trans.push(Transition {
            ts: t.time.max(0) as u64,
            goid: t.goid,
            from: t.from,
            to: t.to,
            tid: t.m.max(0) as u32,
            p: t.p as i32,
            by: t.g.max(0) as u64,
            reason: 0,
        });
        index.push(i);
    }
    let span = (
        ours.first_time.unwrap_or(0).max(0) as u64,
        ours.last_time.unwrap_or(0).max(0) as u64,
    );
    let (threads, m_mapping) = m_mapping(go, ours);
    let (mut rep, go_items, our_items) = compare_items(go, &trans, &threads, span, opts);
    let ours_of = |it: &Item| &ours.transitions[index[it.idx]];
    let go_of = |it: &Item| &go.transitions[it.idx];
    rep.go_go = Some(GoGo {
        stack_rule: STACK_RULE.to_string(),
        stacks: STACK_ROWS
            .iter()
            .map(|r| stack_row(r, &go_items, &our_items, &go_of, &ours_of))
            .collect(),
        reasons: reason_rows(&go_items, &our_items, &go_of, &ours_of, opts.go_version),
        ours_statuses: statuses,
        m_mapping,
        min_stack_match: None,
    });
    rep
}

/// Go 1.22+ traces name Ms by thread id, as ours does: nothing to map. Older ones name them by
/// m.id, which our file does not carry: each of our threads is mapped to the m.id its starts
/// most often pair with (k-th start of a goroutine with k-th), and the placement check then
/// counts the starts that disagree with that one-to-one naming.
fn m_mapping(go: &GoParsed, ours: &GoParsed) -> (HashMap<u32, i64>, String) {
    let starts = |p: &GoParsed| {
        let mut by: HashMap<u64, Vec<i64>> = HashMap::new();
        for t in &p.transitions {
            if t.from == GoState::Runnable && t.to == GoState::Running {
                by.entry(t.goid).or_default().push(t.m);
            }
        }
        by
    };
    let (gs, os) = (starts(go), starts(ours));
    let our_ms: std::collections::HashSet<i64> = os.values().flatten().copied().collect();
    let go_ms: std::collections::HashSet<i64> = gs.values().flatten().copied().collect();
    if go_ms.iter().filter(|m| our_ms.contains(m)).count() * 2 > go_ms.len() {
        return (HashMap::new(), "tid".to_string());
    }
    let mut votes: HashMap<i64, HashMap<i64, u64>> = HashMap::new();
    for (goid, g) in &gs {
        for (gm, om) in g.iter().zip(os.get(goid).into_iter().flatten()) {
            *votes.entry(*om).or_default().entry(*gm).or_default() += 1;
        }
    }
    let map = votes
        .into_iter()
        .filter_map(|(om, v)| {
            let best = v.into_iter().max_by_key(|&(gm, n)| (n, -gm))?;
            Some((u32::try_from(om).ok()?, best.0))
        })
        .collect();
    (
        map,
        "m.id (learned: each of our threads named by the m.id its starts pair with most)"
            .to_string(),
    )
}

/// The part of a stack compared: without a bottom runtime.goexit and then runtime.main.
fn comparable(s: &[String]) -> &[String] {
    let mut s = s;
    for f in ["runtime.goexit", "runtime.main"] {
        if s.last().is_some_and(|l| l == f) {
            s = &s[..s.len() - 1];
        }
    }
    s
}

/// [`STACK_RULE`]: Go's stack, not empty, is the outer end of ours.
pub fn same_stack(go: &[String], ours: &[String]) -> bool {
    let (g, o) = (comparable(go), comparable(ours));
    !g.is_empty() && o.len() >= g.len() && o[o.len() - g.len()..] == *g
}

/// Items of one row per goroutine, in order.
fn by_goroutine(items: &[Item], from: GoState, to: GoState) -> BTreeMap<u64, Vec<&Item>> {
    let mut by: BTreeMap<u64, Vec<&Item>> = BTreeMap::new();
    for it in items.iter().filter(|i| i.from == from && i.to == to) {
        by.entry(it.goid).or_default().push(it);
    }
    by
}

type Lookup<'a> = dyn Fn(&Item) -> &'a go_side::GoTransition + 'a;

/// One stack row: Go's k-th event of a goroutine against our k-th; GoCreate's stack is the
/// creator's (`Stack=`), the others' the goroutine's own; a start-function row compares
/// `TransitionStack=` (runtime.main's, g1's, is left out as the stack rule leaves it out).
fn stack_row<'a>(
    &(name, from, to, required, which): &(&str, GoState, GoState, bool, Which),
    go_items: &[Item],
    our_items: &[Item],
    go_of: &Lookup<'a>,
    ours_of: &Lookup<'a>,
) -> StackRow {
    let mut row = StackRow {
        name: name.to_string(),
        required,
        ..StackRow::default()
    };
    let ours = by_goroutine(our_items, from, to);
    for (goid, gs) in by_goroutine(go_items, from, to) {
        let os = ours.get(&goid);
        for (nth, g) in gs.iter().enumerate() {
            row.go += 1;
            let gt = go_of(g);
            let stack_of = |t: &'a go_side::GoTransition| match which {
                Which::Event => &t.stack,
                Which::Start => &t.tstack,
            };
            if comparable(stack_of(gt)).is_empty() {
                continue;
            }
            row.go_with_stack += 1;
            let Some(o) = os.and_then(|os| os.get(nth)) else {
                continue;
            };
            row.paired += 1;
            let (gs, os) = (stack_of(gt), stack_of(ours_of(o)));
            let same = match which {
                Which::Event => same_stack(gs, os),
                Which::Start => comparable(gs) == comparable(os),
            };
            if same {
                row.same += 1;
            } else if row.differing.len() < 5 {
                row.differing.push(StackDiff {
                    goid,
                    nth,
                    go: gs.clone(),
                    ours: os.clone(),
                });
            }
        }
    }
    row.match_pct = pct(row.same, row.go_with_stack);
    row
}

/// The block reasons a Go <= 1.21 trace can say (its event types, as Go's reader names them:
/// internal/trace/tracev1.go); every other wait is a plain GoBlock, read as "".
const OLD_BLOCK_REASONS: &[&str] = &[
    "forever",
    "sleep",
    "chan send",
    "chan receive",
    "network",
    "sync",
    "sync.(*Cond).Wait",
    "select",
    "GC mark assist wait for work",
    "preempted",
    "runtime.Gosched",
];

/// Our reason in the classes Go's trace of that version has: ours as is for Go 1.22+, and for
/// older traces [`OLD_BLOCK_REASONS`] or "".
fn reason_class(ours: &str, go_version: (u32, u32)) -> String {
    if go_version >= (1, 22) || OLD_BLOCK_REASONS.contains(&ours) {
        ours.to_string()
    } else {
        String::new()
    }
}

/// (Go's count, ours) per goroutine.
type PerGoroutine = BTreeMap<u64, (u64, u64)>;

/// GoBlock and GoStop per reason string: per goroutine, each side's count of that reason;
/// they match up to the smaller.
fn reason_rows<'a>(
    go_items: &[Item],
    our_items: &[Item],
    go_of: &Lookup<'a>,
    ours_of: &Lookup<'a>,
    go_version: (u32, u32),
) -> Vec<ReasonRow> {
    let mut counts: BTreeMap<(&str, String), PerGoroutine> = BTreeMap::new();
    for (name, from, to) in [
        ("GoBlock", GoState::Running, GoState::Waiting),
        ("GoStop", GoState::Running, GoState::Runnable),
    ] {
        for (side, items) in [(0, go_items), (1, our_items)] {
            for it in items.iter().filter(|i| i.from == from && i.to == to) {
                let reason = if side == 0 {
                    go_of(it).reason.clone()
                } else {
                    reason_class(&ours_of(it).reason, go_version)
                };
                let c = counts
                    .entry((name, reason))
                    .or_default()
                    .entry(it.goid)
                    .or_default();
                if side == 0 {
                    c.0 += 1;
                } else {
                    c.1 += 1;
                }
            }
        }
    }
    counts
        .into_iter()
        .map(|((name, reason), per)| {
            let mut r = ReasonRow {
                name: name.to_string(),
                reason,
                ..ReasonRow::default()
            };
            for (g, o) in per.values() {
                r.go += g;
                r.ours += o;
                r.matched += g.min(o);
            }
            r.match_pct = pct(r.matched, r.go);
            r
        })
        .collect()
}

impl GoGo {
    /// Required stack rows below `min_stack`, reasons with Go events below `min`.
    pub fn check(&self, min: f64, min_stack: f64, failures: &mut Vec<String>) {
        for r in self.stacks.iter().filter(|r| r.required) {
            if let Some(p) = r.match_pct.filter(|p| *p < min_stack) {
                failures.push(format!("{} stack {p:.2}% < {min_stack}%", r.name));
            }
        }
        for r in &self.reasons {
            if let Some(p) = r.match_pct.filter(|p| *p < min) {
                failures.push(format!(
                    "{} reason {:?} matched {p:.2}% < {min}%",
                    r.name, r.reason
                ));
            }
        }
    }

    /// The stack and reason tables of the text report.
    pub fn text(&self, s: &mut String) {
        use std::fmt::Write as _;
        let _ = writeln!(s, "\nstacks ({}):", self.stack_rule);
        let _ = writeln!(
            s,
            "{:<20} {:>8} {:>10} {:>8} {:>8} {:>8}  threshold",
            "event", "go", "go+stack", "paired", "same", "same%"
        );
        for r in &self.stacks {
            let need = match (r.required, self.min_stack_match) {
                (true, Some(m)) => format!(">= {m}%"),
                (true, None) => "required".to_string(),
                (false, _) => "(not required)".to_string(),
            };
            let p = r.match_pct.map_or("n/a".to_string(), |p| format!("{p:.2}"));
            let _ = writeln!(
                s,
                "{:<20} {:>8} {:>10} {:>8} {:>8} {:>8}  {need}",
                r.name, r.go, r.go_with_stack, r.paired, r.same, p
            );
        }
        for r in &self.stacks {
            for d in &r.differing {
                let _ = writeln!(
                    s,
                    "  {} #{} of g{}: Go [{}] ours [{}]",
                    r.name,
                    d.nth,
                    d.goid,
                    d.go.join(" < "),
                    d.ours.join(" < ")
                );
            }
        }
        let _ = writeln!(
            s,
            "\n{:<10} {:<36} {:>8} {:>8} {:>8} {:>8}",
            "reason of", "reason", "go", "ours", "matched", "match%"
        );
        for r in &self.reasons {
            let p = r.match_pct.map_or("n/a".to_string(), |p| format!("{p:.2}"));
            let _ = writeln!(
                s,
                "{:<10} {:<36} {:>8} {:>8} {:>8} {:>8}",
                r.name,
                format!("{:?}", r.reason),
                r.go,
                r.ours,
                r.matched,
                p
            );
        }
        let _ = writeln!(
            s,
            "Ms matched by {}; our file's statuses (Undetermined->X) not compared: {}",
            self.m_mapping, self.ours_statuses
        );
    }
}
