//! The keys `--assert` may name: the summary's own numbers (by dotted path, units as the summary
//! keeps them: `*_ns` in nanoseconds, `attach_ms` in milliseconds), count maps by member, and
//! the derived keys CI asks about (`leak_sites`, `sched_latency_p99`, ...). One table, so the
//! parser, the evaluator, the "did you mean" list and the docs test all see the same keys.
//!
//! A key is read from one process's summary JSON. When the run did not measure it (latency at
//! `--level lifecycle`, `exit_code` in `--pid` mode), the lookup says why instead of a number.
use serde_json::Value;

/// How a key's value is written in an assertion and compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    /// A plain number.
    Count,
    /// A duration kept in nanoseconds: the assertion gives a unit (`2ms`), compared in ns.
    Nanos,
    /// A duration kept in milliseconds (`attach_ms`), likewise.
    Millis,
    /// Bytes: a number or a size (`64M`).
    Bytes,
    /// true or false (compared as 1 or 0).
    Bool,
}

/// Where a key's value comes from.
enum Source {
    /// A dotted path into the summary; missing or null means not measured, for this reason.
    Path(&'static str, &'static str),
    Derived(fn(&Value) -> Result<f64, String>),
}

pub struct KeyDef {
    pub name: &'static str,
    pub unit: Unit,
    source: Source,
}

const LIVE_ONLY: &str = "measured by live sessions only; a replay has no value";
const SAMPLED_ONLY: &str = "present with --sample-rate only";

const fn path(name: &'static str, unit: Unit) -> KeyDef {
    KeyDef {
        name,
        unit,
        source: Source::Path(name, "the summary has no value for it"),
    }
}

const fn path_or(name: &'static str, unit: Unit, absent: &'static str) -> KeyDef {
    KeyDef {
        name,
        unit,
        source: Source::Path(name, absent),
    }
}

const fn derived(name: &'static str, unit: Unit, f: fn(&Value) -> Result<f64, String>) -> KeyDef {
    KeyDef {
        name,
        unit,
        source: Source::Derived(f),
    }
}

use Unit::*;

/// Every fixed key (docs/ci.md documents each; a test checks that it does).
pub const KEYS: &[KeyDef] = &[
    path("events", Count),
    path("lost_events", Count),
    path("goroutines_created", Count),
    path("goroutines_exited", Count),
    path("goroutines_exited_creation_lost", Count),
    path("goroutines_live_at_end", Count),
    derived("goroutines_live_at_exit", Count, |v| {
        num(v, "goroutines_live_at_end")
    }),
    path("goroutines_at_attach", Count),
    path("counts_are_lower_bounds", Bool),
    path("threads", Count),
    derived("threads_max", Count, |v| num(v, "threads")),
    path("mstart_threads", Count),
    path("procs", Count),
    path_or(
        "gomaxprocs",
        Count,
        "procresize was not seen (GOMAXPROCS is set at startup, which --pid does not see)",
    ),
    path("duration_ns", Nanos),
    path_or(
        "exit_code",
        Count,
        "the exit code is known only when gmp-trace launched the program (`-- CMD`) and \
         waited for its exit",
    ),
    path("read_failures", Count),
    path("malformed_records", Count),
    path("startup_observed", Bool),
    path("gc_cycles", Count),
    path("stw_pauses", Count),
    derived("sched_latency.count", Count, |v| {
        num(v, "sched_latency.count")
    }),
    derived("sched_latency.p50_ns", Nanos, |v| latency(v, "p50_ns")),
    derived("sched_latency.p99_ns", Nanos, |v| latency(v, "p99_ns")),
    derived("sched_latency.max_ns", Nanos, |v| latency(v, "max_ns")),
    derived("sched_latency_p50", Nanos, |v| latency(v, "p50_ns")),
    derived("sched_latency_p99", Nanos, |v| latency(v, "p99_ns")),
    derived("sched_latency_max", Nanos, |v| latency(v, "max_ns")),
    path("work_stealing.steals", Count),
    path("work_stealing.goroutines_stolen", Count),
    path("work_stealing.failed_attempts", Count),
    path("work_stealing.spins", Count),
    path("work_stealing.spinning_ns", Nanos),
    path("work_stealing.max_spinning_ms", Count),
    derived("leak_sites", Count, |v| leaks(v).map(|(sites, _)| sites)),
    derived("leaked_goroutines", Count, |v| leaks(v).map(|(_, n)| n)),
    derived("blocked_sites", Count, blocked_sites),
    path_or("attach_ms", Millis, LIVE_ONLY),
    path_or("ring_buffer_bytes", Bytes, LIVE_ONLY),
    path_or("cpu_samples.taken", Count, SAMPLED_ONLY),
    path_or("cpu_samples.dropped", Count, SAMPLED_ONLY),
    path_or("cpu_samples.malformed", Count, SAMPLED_ONLY),
    path_or("cpu_samples.not_kept", Count, SAMPLED_ONLY),
    path_or("cpu_samples.unwind_failed", Count, SAMPLED_ONLY),
    path_or("cpu_samples.written", Count, SAMPLED_ONLY),
    path_or(
        "aggregate.counted_events",
        Count,
        "present with --aggregate only",
    ),
];

/// Maps of counts, addressed `PREFIX.MEMBER`; a member the run never saw counts 0.
struct CountMap {
    prefix: &'static str,
    /// Whether a member name can ever be there (false: an unknown key).
    member_ok: fn(&str) -> bool,
}

const MAPS: &[CountMap] = &[
    CountMap {
        prefix: "events_by_kind",
        member_ok: |m| {
            gmp_trace_common::EventKind::ALL
                .iter()
                .any(|k| k.name() == m)
        },
    },
    CountMap {
        prefix: "states_at_end",
        member_ok: is_state,
    },
    CountMap {
        prefix: "transitions",
        member_ok: |m| {
            m.split_once("->")
                .is_some_and(|(a, b)| is_state(a) && is_state(b))
        },
    },
    CountMap {
        prefix: "goroutines_by_start_fn",
        member_ok: |m| !m.is_empty(),
    },
    CountMap {
        prefix: "aggregate.waits_by_reason",
        member_ok: |m| !m.is_empty(),
    },
];

fn is_state(s: &str) -> bool {
    crate::model::goroutine::GoState::ALL
        .iter()
        .any(|g| g.name() == s)
}

fn find_map(key: &str) -> Option<(&'static CountMap, &str)> {
    MAPS.iter().find_map(|m| {
        let member = key.strip_prefix(m.prefix)?.strip_prefix('.')?;
        (m.member_ok)(member).then_some((m, member))
    })
}

/// The unit of a key, or None for a key that does not exist.
pub fn unit_of(key: &str) -> Option<Unit> {
    if let Some(k) = KEYS.iter().find(|k| k.name == key) {
        return Some(k.unit);
    }
    find_map(key).map(|_| Count)
}

/// Known keys close to a misspelt one (edit distance, or one inside the other), closest first.
pub fn close_names(key: &str) -> Vec<String> {
    let names = KEYS
        .iter()
        .map(|k| k.name.to_string())
        .chain(MAPS.iter().map(|m| format!("{}.MEMBER", m.prefix)));
    let mut scored: Vec<(usize, String)> = names
        .filter_map(|n| {
            let d = distance(key, &n);
            let inside =
                key.len() >= 4 && (n.contains(key) || key.starts_with(n.split('.').next()?));
            (d <= 3 || inside).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored.into_iter().take(5).map(|(_, n)| n).collect()
}

/// Levenshtein distance (short strings: key names).
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// The value of `key` in one process's summary (in the key's unit), or why it has none.
pub fn lookup(key: &str, summary: &Value) -> Result<f64, String> {
    if let Some(k) = KEYS.iter().find(|k| k.name == key) {
        return match k.source {
            Source::Path(p, absent) => match at(summary, p) {
                Some(v) if !v.is_null() => {
                    as_number(v).ok_or_else(|| format!("{p} is not a number"))
                }
                _ => Err(absent.to_string()),
            },
            Source::Derived(f) => f(summary),
        };
    }
    let (map, member) = find_map(key).ok_or_else(|| format!("unknown key {key}"))?;
    match at(summary, map.prefix) {
        Some(Value::Object(o)) => Ok(o.get(member).and_then(as_number).unwrap_or(0.0)),
        _ if map.prefix.starts_with("aggregate.") => Err("present with --aggregate only".into()),
        _ => Err(format!("the summary has no {}", map.prefix)),
    }
}

fn at<'v>(v: &'v Value, dotted: &str) -> Option<&'v Value> {
    dotted.split('.').try_fold(v, |v, k| v.get(k))
}

fn as_number(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        v => v.as_f64(),
    }
}

fn num(v: &Value, dotted: &str) -> Result<f64, String> {
    at(v, dotted)
        .and_then(as_number)
        .ok_or_else(|| format!("the summary has no {dotted}"))
}

fn is_aggregate(v: &Value) -> bool {
    v.get("aggregate").is_some_and(Value::is_object)
}

/// Whether the run traced goroutine state changes (not at `--level lifecycle`).
fn states_traced(v: &Value) -> bool {
    is_aggregate(v)
        || at(v, "events_by_kind.go_status")
            .and_then(Value::as_u64)
            .unwrap_or(0)
            > 0
}

/// A scheduling-latency quantile, when the run measured any.
fn latency(v: &Value, field: &str) -> Result<f64, String> {
    if num(v, "sched_latency.count")? > 0.0 {
        return num(v, &format!("sched_latency.{field}"));
    }
    Err(if !states_traced(v) {
        "no scheduling latency: --level lifecycle does not trace goroutine state changes (use \
         --level sched or full)"
            .into()
    } else {
        "no scheduling latency: no goroutine went from runnable to running while tracing".into()
    })
}

/// `leak_sites` and `leaked_goroutines`: over the summary's leak tree (live goroutines at the
/// end grouped by creator chain, creation site and start function), the groups with goroutines
/// still blocked (Waiting) at the end, and those goroutines; the runtime's own goroutines (start
/// function in package runtime: GC workers, finalizers, forcegc) are not counted.
fn leaks(v: &Value) -> Result<(f64, f64), String> {
    if is_aggregate(v) {
        return Err("--aggregate keeps no per-goroutine view (the leak tree is empty)".into());
    }
    if !states_traced(v) {
        return Err(
            "--level lifecycle does not trace goroutine states, so blocked goroutines \
                    cannot be told (use --level sched or full)"
                .into(),
        );
    }
    let tree = at(v, "leak_tree")
        .and_then(Value::as_array)
        .ok_or("the summary has no leak_tree")?;
    let (mut sites, mut gs) = (0.0, 0.0);
    for g in tree {
        if g["start_fn"]
            .as_str()
            .is_some_and(|f| f.starts_with("runtime."))
        {
            continue;
        }
        let waiting: f64 = g["states"]
            .as_object()
            .map(|s| {
                s.iter()
                    .filter(|(k, _)| k.starts_with("Waiting"))
                    .filter_map(|(_, n)| n.as_f64())
                    .sum()
            })
            .unwrap_or(0.0);
        if waiting > 0.0 {
            sites += 1.0;
            gs += waiting;
        }
    }
    Ok((sites, gs))
}

/// `blocked_sites` (`--stacks`): distinct sites in `blocked_at` where goroutines still blocked
/// at the end blocked, the runtime's own goroutines' sites (`runtime.*`) left out.
fn blocked_sites(v: &Value) -> Result<f64, String> {
    // Without --stacks the summary has no blocked_at; with it, the list is left out only when
    // no goroutine seen blocking stayed blocked, which cannot be told apart: no value, not 0.
    let Some(list) = v.get("blocked_at").and_then(Value::as_array) else {
        return Err(
            "the summary has no blocked_at: run with --stacks (blocking sites are \
                    recorded with stacks only; an empty list is left out too)"
                .into(),
        );
    };
    let mut sites: Vec<&str> = list
        .iter()
        .filter_map(|b| b["site"].as_str())
        .filter(|s| !s.starts_with("runtime."))
        .collect();
    sites.sort_unstable();
    sites.dedup();
    Ok(sites.len() as f64)
}

#[cfg(test)]
#[path = "keys_tests.rs"]
mod tests;
