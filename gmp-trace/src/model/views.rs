//! Views derived from the model for people: scheduling latency by creation site, per-P
//! utilization, goroutine states at the end, and the leak tree (live goroutines grouped by who
//! created them and where).
use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::hist::Histogram;
use super::{GoState, Model};
use crate::binary::Symbolize;

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

impl Latency {
    pub fn of(h: &Histogram) -> Latency {
        Latency {
            count: h.count,
            p50_ns: h.quantile(0.5),
            p99_ns: h.quantile(0.99),
            max_ns: h.max,
        }
    }
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct SiteLatency {
    /// The function containing the `go` statement (creation site), or the start function.
    pub site: String,
    /// The `go` statement's file:line (empty when the binary has no line table at hand).
    pub site_at: String,
    pub created: u64,
    #[serde(flatten)]
    pub latency: Latency,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct WorstGoroutine {
    pub goid: u64,
    pub start_fn: String,
    pub latency_ns: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ProcUse {
    pub p: i32,
    pub busy_ns: u64,
    /// busy / traced duration.
    pub utilization: f64,
    /// Goroutine starts (execute) on this P and times an M acquired it.
    pub starts: u64,
    pub acquires: u64,
    /// Run-queue steals: made by this P (an M holding it took goroutines from another P) and
    /// suffered by it, with the goroutines moved each way.
    pub steals: u64,
    pub goroutines_stolen: u64,
    pub stolen_from: u64,
    pub goroutines_lost: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct LeakGroup {
    /// Start functions of the creators, outermost first.
    pub creators: Vec<String>,
    pub create_site: String,
    /// The `go` statement's file:line (empty when unknown).
    pub create_at: String,
    pub start_fn: String,
    pub count: u64,
    /// States of the group's goroutines at the end ("Waiting (chan receive)" style keys use
    /// the raw runtime reason number: "Waiting/14").
    pub states: BTreeMap<String, u64>,
}

pub fn name(sym: &dyn Symbolize, pc: u64) -> String {
    if pc == 0 {
        return "?".to_string();
    }
    sym.func_name(pc)
        .map_or_else(|| format!("{pc:#x}"), str::to_owned)
}

/// A start function's name ([`Symbolize::start_name`]: `f` for `go f(x)`'s wrapper).
pub fn start_name(sym: &dyn Symbolize, pc: u64) -> String {
    if pc == 0 {
        return "?".to_string();
    }
    sym.start_name(pc)
        .map_or_else(|| format!("{pc:#x}"), str::to_owned)
}

/// Where a return address's call is in the source: `file:line` of the innermost frame there (an
/// inlined call's own line), as Go's `created by` lines print it; empty when unknown.
pub fn call_at(sym: &dyn Symbolize, pc: u64) -> String {
    if pc == 0 {
        return String::new();
    }
    sym.source_frames(pc.wrapping_sub(1))
        .first()
        .filter(|f| !f.file.is_empty())
        .map(|f| format!("{}:{}", f.file, f.line))
        .unwrap_or_default()
}

/// Latency per creation site (one `go` statement: function and file:line), worst p99 first.
pub fn latency_by_site(m: &Model, sym: &dyn Symbolize, top: usize) -> Vec<SiteLatency> {
    // Several pcs can name one place (a pc per call instruction, pcs without lines): merge.
    let mut by_site: HashMap<(String, String), (u64, Histogram)> = HashMap::new();
    for (pc, s) in &m.by_create_pc {
        let e = by_site
            .entry((name(sym, *pc), call_at(sym, *pc)))
            .or_default();
        e.0 += s.created;
        e.1.merge(&s.latency);
    }
    let mut v: Vec<SiteLatency> = by_site
        .into_iter()
        .filter(|(_, (_, h))| h.count > 0)
        .map(|((site, site_at), (created, h))| SiteLatency {
            site,
            site_at,
            created,
            latency: Latency::of(&h),
        })
        .collect();
    v.sort_by(|a, b| {
        b.latency
            .p99_ns
            .cmp(&a.latency.p99_ns)
            .then(a.site.cmp(&b.site))
            .then(a.site_at.cmp(&b.site_at))
    });
    v.truncate(top);
    v
}

pub fn worst_goroutines(m: &Model, sym: &dyn Symbolize, top: usize) -> Vec<WorstGoroutine> {
    m.worst_latency
        .iter()
        .take(top)
        .map(|&(lat, goid, spc)| WorstGoroutine {
            goid,
            start_fn: start_name(sym, spc),
            latency_ns: lat,
        })
        .collect()
}

pub fn proc_use(m: &Model) -> Vec<ProcUse> {
    let dur = m.duration_ns().max(1);
    let mut procs: Vec<&super::Proc> = m.procs.values().collect();
    procs.sort_unstable_by_key(|p| p.id);
    procs
        .into_iter()
        .map(|p| ProcUse {
            p: p.id,
            busy_ns: p.busy_ns,
            utilization: (p.busy_ns as f64 / dur as f64).min(1.0),
            starts: p.starts,
            acquires: p.acquires,
            steals: p.steals,
            goroutines_stolen: p.gs_stolen,
            stolen_from: p.stolen_from,
            goroutines_lost: p.gs_lost,
        })
        .collect()
}

pub fn state_key(state: GoState, reason: u8) -> String {
    match state {
        GoState::Waiting => format!("Waiting/{reason}"),
        s => s.name().to_string(),
    }
}

pub fn states_at_end(m: &Model) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for g in m.goroutines.values().filter(|g| g.is_live()) {
        *out.entry(g.state.name().to_string()).or_insert(0) += 1;
    }
    out
}

/// (creator chain, creation site, start function) -> (goroutines, states).
type LeakGroups = HashMap<(Vec<u64>, u64, u64), (u64, BTreeMap<String, u64>)>;

/// Live goroutines grouped by (creator chain, creation site, start function), largest first.
pub fn leak_tree(m: &Model, sym: &dyn Symbolize, top: usize) -> Vec<LeakGroup> {
    let mut groups: LeakGroups = HashMap::new();
    for g in m
        .goroutines
        .values()
        .filter(|g| g.is_live() && (g.created_ts.is_some() || g.seeded))
    {
        let chain: Vec<u64> = g.creators.iter().copied().filter(|&pc| pc != 0).collect();
        let e = groups.entry((chain, g.create_pc, g.start_pc)).or_default();
        e.0 += 1;
        *e.1.entry(state_key(g.state, g.wait_reason)).or_insert(0) += 1;
    }
    let mut v: Vec<LeakGroup> = groups
        .into_iter()
        .map(|((chain, cpc, spc), (count, states))| LeakGroup {
            creators: chain.iter().rev().map(|&pc| name(sym, pc)).collect(),
            create_site: name(sym, cpc),
            create_at: call_at(sym, cpc),
            start_fn: start_name(sym, spc),
            count,
            states,
        })
        .collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.start_fn.cmp(&b.start_fn)));
    v.truncate(top);
    v
}

/// Goroutines created, by start function.
pub fn created_by_start_fn(m: &Model, sym: &dyn Symbolize) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for (pc, s) in &m.by_start_pc {
        if s.created > 0 {
            *out.entry(start_name(sym, *pc)).or_insert(0) += s.created;
        }
    }
    out
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct ThreadView {
    pub tid: u32,
    pub m: Option<i64>,
    /// The thread whose newm created this M (None for m0 and Ms made before the trace).
    pub created_by: Option<u32>,
    pub started_in_trace: bool,
    /// Last known activity: running, scheduling, spinning, syscall, idle, unknown.
    pub state_at_end: &'static str,
    pub p_at_end: Option<i32>,
    pub events: u64,
    /// Time spent spinning (looking for work to steal, holding a P), and in how many spells.
    pub spinning_ns: u64,
    pub spins: u64,
    /// Successful run-queue steals made on this M.
    pub steals: u64,
}

pub fn threads(m: &Model) -> Vec<ThreadView> {
    use super::MState;
    let mut threads: Vec<&super::Thread> = m.threads.values().collect();
    threads.sort_unstable_by_key(|t| t.tid);
    threads
        .into_iter()
        .map(|t| ThreadView {
            tid: t.tid,
            m: t.m,
            created_by: t.created_by,
            started_in_trace: t.mstart_ts.is_some(),
            state_at_end: match t.state {
                MState::Unknown => "unknown",
                MState::Running => "running",
                MState::Scheduling => "scheduling",
                MState::Spinning => "spinning",
                MState::Syscall => "syscall",
                MState::Idle => "idle",
            },
            p_at_end: t.p,
            events: t.events,
            spinning_ns: t.spinning_ns,
            spins: t.spins,
            steals: t.steals,
        })
        .collect()
}

/// Work stealing over the run: successful steals by (thief, victim) P, and the totals.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Steals {
    /// runqsteal calls that returned a goroutine, and the goroutines they moved.
    pub steals: u64,
    pub goroutines_stolen: u64,
    /// runqsteal calls that found nothing to take (counted by the probe).
    pub failed_attempts: u64,
    pub by_pair: Vec<StealPair>,
    /// Spinning Ms: spells, total time, and the most spinning at once.
    pub spins: u64,
    pub spinning_ns: u64,
    pub max_spinning_ms: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct StealPair {
    pub thief_p: i32,
    /// -1 when the steal began before tracing did (the victim was not recorded).
    pub victim_p: i32,
    pub steals: u64,
    pub goroutines: u64,
}

pub fn steals(m: &Model) -> Steals {
    Steals {
        steals: m.steals,
        goroutines_stolen: m.goroutines_stolen,
        failed_attempts: m.steal_failed,
        by_pair: m
            .steal_pairs
            .iter()
            .map(|(&(thief_p, victim_p), &(steals, goroutines))| StealPair {
                thief_p,
                victim_p,
                steals,
                goroutines,
            })
            .collect(),
        spins: m.threads.values().map(|t| t.spins).sum(),
        spinning_ns: m.threads.values().map(|t| t.spinning_ns).sum(),
        max_spinning_ms: m.max_spinning,
    }
}
