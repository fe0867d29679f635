//! The end-of-run summary: a JSON document with stable keys (`--summary-json`) and the human text
//! printed on stderr.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Symbolize;
use crate::model::goroutine::GoState;
use crate::model::startup::{AtMain, Phase};
use crate::model::views::{self, Latency, LeakGroup, ProcUse, SiteLatency, Steals, WorstGoroutine};
use crate::model::Model;
use crate::run::{Aggregates, ProbeInfo, RunInfo};
use gmp_trace_common::EventKind;

#[derive(Clone, Debug, Serialize)]
pub struct RuntimeMainInfo {
    pub goid: u64,
    pub tid: u32,
    pub m: i64,
    pub ts: u64,
}

/// Stable keys: scripts and CI smoke tests read these. Add keys, never rename or remove.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub go_version: String,
    pub binary: String,
    pub main_module: Option<String>,
    /// The Go build id of the traced executable (its identity, with the inode, at attach).
    pub build_id: Option<String>,
    pub mode: &'static str,
    pub pid: u32,
    pub events: u64,
    pub lost_events: u64,
    pub goroutines_created: u64,
    pub goroutines_exited: u64,
    /// Of `goroutines_exited`, those whose creation was not seen (lost), nor their presence
    /// at attach.
    pub goroutines_exited_creation_lost: u64,
    pub goroutines_live_at_end: usize,
    /// Events were lost: `events`, the goroutine counts and `events_by_kind` are lower bounds
    /// (what was seen), and `goroutines_live_at_end` may be off either way.
    pub counts_are_lower_bounds: bool,
    /// Goroutines that already existed when gmp-trace attached (--pid), read from the target.
    pub goroutines_at_attach: u64,
    pub threads: usize,
    pub procs: usize,
    pub duration_ns: u64,
    pub exit_code: Option<i32>,
    /// Probe reads of runtime memory that failed (fields of those events are missing).
    pub read_failures: u64,
    /// Ring-buffer records too short to decode.
    pub malformed_records: u64,
    pub events_by_kind: BTreeMap<String, u64>,
    pub runtime_main: Vec<RuntimeMainInfo>,
    pub goroutines_by_start_fn: BTreeMap<String, u64>,
    pub mstart_threads: usize,
    /// False when the process was already running (--pid): no timeline is made up.
    pub startup_observed: bool,
    pub startup: Vec<Phase>,
    /// GOMAXPROCS as last set by procresize during the trace.
    pub gomaxprocs: Option<u64>,
    /// Runnable -> Running latency over the whole program.
    pub sched_latency: Latency,
    pub sched_latency_by_site: Vec<SiteLatency>,
    pub worst_latency_goroutines: Vec<WorstGoroutine>,
    pub proc_utilization: Vec<ProcUse>,
    /// Spinning Ms and run-queue steals between Ps (level full).
    pub work_stealing: Steals,
    /// Live goroutines at the end, by state.
    pub states_at_end: BTreeMap<String, u64>,
    /// Live goroutines grouped by creator chain and creation site, largest first.
    pub leak_tree: Vec<LeakGroup>,
    /// `--stacks`: goroutines still blocked at the end whose blocking the trace saw, by where
    /// they blocked (set by the pipeline, which holds the stacks), largest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub blocked_at: Vec<crate::export::stacks::BlockedSite>,
    /// State transitions in Go tracer vocabulary ("Runnable->Running": n).
    pub transitions: BTreeMap<String, u64>,
    /// Every M seen: tid, m.id, creator thread, state and P at the end.
    pub thread_list: Vec<views::ThreadView>,
    pub gc_cycles: usize,
    pub stw_pauses: usize,
    /// Package init order (import paths), the runtime's own tasks first.
    pub init_order: Vec<String>,
    /// Goroutines and threads that existed when main.main began.
    pub at_main: Option<AtMain>,
    pub probes: Vec<ProbeInfo>,
    /// Live sessions only (absent in replays): ms from gmp-trace's start to every probe
    /// attached (reading the binary, loading the BPF programs, attaching the uprobes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attach_ms: Option<f64>,
    /// Live sessions only: the ring buffer's size in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ring_buffer_bytes: Option<u64>,
    /// `--sample-rate`: what the CPU sampler took, lost and wrote to the Go trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_samples: Option<crate::run::CpuSampleCounts>,
    /// Present in aggregate mode (`--aggregate`): the counts and latency above then come from
    /// the probes' maps, and the per-goroutine views (states at end, leak tree, worst
    /// goroutines, per-site latency, utilization) are empty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aggregate: Option<AggregateInfo>,
    /// Present when the traced program exec'd a new image: tracing of it ended there, the
    /// new image is not traced, and everything else here is the first image's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecInfo>,
    /// `--assert`: each assertion checked on each process (docs/ci.md).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub assertions: Vec<crate::checks::Outcome>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ExecInfo {
    /// The new executable (null: the process was gone before it could be read).
    pub path: Option<String>,
    /// CLOCK_MONOTONIC ns of the exec, as the events' `ts`.
    pub ts: u64,
    /// ns from the trace's first event to the exec.
    pub since_start_ns: u64,
    /// The thread that exec'd (the process's only thread from then on).
    pub tid: u32,
    /// Events after the exec (the new image's, while the probes came out): not applied.
    pub events_ignored: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct AggregateInfo {
    /// Events counted in BPF maps and never streamed.
    pub counted_events: u64,
    /// Changes to Waiting by wait reason (named per Go version).
    pub waits_by_reason: BTreeMap<String, u64>,
}

/// "Waiting/14" -> "Waiting (chan receive)" with the version's waitReason names.
fn name_wait(key: &str, go_version: &str) -> String {
    let named = key
        .strip_prefix("Waiting/")
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| {
            let names = crate::export::perfetto::waitreason::wait_reasons(go_version)?;
            names
                .get(n)
                .filter(|s| !s.is_empty())
                .map(|s| format!("Waiting ({s})"))
        });
    named.unwrap_or_else(|| key.to_string())
}

/// " at dir/file.go:line" for the text summary (the JSON keeps the whole path); "" when unknown.
fn at_suffix(at: &str) -> String {
    if at.is_empty() {
        return String::new();
    }
    let short = at.rsplitn(3, '/').take(2).collect::<Vec<_>>();
    format!(
        " at {}",
        short.into_iter().rev().collect::<Vec<_>>().join("/")
    )
}

impl Summary {
    pub fn build(model: &Model, run: RunInfo, sym: &dyn Symbolize) -> Summary {
        let mut leak_tree = views::leak_tree(model, sym, 10);
        for g in &mut leak_tree {
            g.states = std::mem::take(&mut g.states)
                .into_iter()
                .map(|(k, v)| (name_wait(&k, &run.go_version), v))
                .collect();
        }
        let by_fn = views::created_by_start_fn(model, sym);
        let aggregates = run.aggregate;
        let mut summary = Summary {
            go_version: run.go_version,
            binary: run.binary,
            main_module: run.main_module,
            build_id: run.build_id,
            mode: run.mode,
            pid: run.pid,
            events: model.events,
            lost_events: model.lost,
            goroutines_created: model.created,
            goroutines_exited: model.exited,
            goroutines_exited_creation_lost: model.exited_unseen,
            goroutines_live_at_end: model.live_goroutines(),
            counts_are_lower_bounds: model.lost > 0,
            goroutines_at_attach: model.seeded,
            threads: model.threads.len(),
            procs: model.procs.len(),
            duration_ns: model.duration_ns(),
            exit_code: run.exit_code,
            read_failures: run.read_failures,
            malformed_records: run.malformed_records,
            events_by_kind: model
                .events_by_kind()
                .map(|(k, n)| (k.name().to_string(), n))
                .collect(),
            runtime_main: model
                .runtime_main
                .iter()
                .map(|r| RuntimeMainInfo {
                    goid: r.goid,
                    tid: r.tid,
                    m: r.m,
                    ts: r.ts,
                })
                .collect(),
            goroutines_by_start_fn: by_fn,
            mstart_threads: model
                .threads
                .values()
                .filter(|t| t.mstart_ts.is_some())
                .count(),
            gomaxprocs: model.gomaxprocs,
            sched_latency: Latency::of(&model.latency),
            sched_latency_by_site: views::latency_by_site(model, sym, 10),
            worst_latency_goroutines: views::worst_goroutines(model, sym, 10),
            proc_utilization: views::proc_use(model),
            work_stealing: views::steals(model),
            states_at_end: views::states_at_end(model),
            leak_tree,
            blocked_at: Vec::new(),
            transitions: model
                .transitions
                .iter()
                .map(|((a, b), n)| (format!("{}->{}", a.name(), b.name()), n))
                .collect(),
            thread_list: views::threads(model),
            gc_cycles: model.gc.begun(),
            stw_pauses: model.stw.begun(),
            startup_observed: model.startup.observed(),
            startup: model.startup.timeline(sym),
            init_order: model.startup.init_packages(sym),
            at_main: model.startup.at_main(sym),
            probes: run.probes,
            attach_ms: run.attach_ms,
            ring_buffer_bytes: run.ring_buffer_bytes,
            cpu_samples: run.cpu_samples,
            aggregate: None,
            exec: model.image_replaced.as_ref().map(|r| ExecInfo {
                path: r.path.clone(),
                ts: r.ts,
                since_start_ns: r.ts.saturating_sub(model.first_ts.unwrap_or(r.ts)),
                tid: r.tid,
                events_ignored: model.events_after_exec,
            }),
            assertions: Vec::new(),
        };
        if let Some(a) = aggregates {
            summary.add_aggregates(&a, model);
        }
        summary
    }

    /// Aggregate mode: the frequent events were counted in the probes' maps, not streamed.
    fn add_aggregates(&mut self, a: &Aggregates, model: &Model) {
        let kind_count = |k: EventKind| a.kinds.get(k as usize).copied().unwrap_or(0);
        let mut counted = 0;
        for k in EventKind::ALL {
            let n = kind_count(k);
            if n > 0 {
                *self.events_by_kind.entry(k.name().to_string()).or_default() += n;
                counted += n;
            }
        }
        self.events += counted;
        self.goroutines_created += kind_count(EventKind::GoCreate);
        self.goroutines_exited += kind_count(EventKind::GoExit);
        self.goroutines_live_at_end = (model.seeded + self.goroutines_created)
            .saturating_sub(self.goroutines_exited) as usize;
        self.sched_latency = Latency::of(&a.latency);
        // Without the acquire/release stream there is no per-P timeline to measure.
        self.proc_utilization.clear();
        for (i, &n) in a.status.iter().enumerate() {
            let (from, to) = (
                GoState::from_runtime(i as u64 >> 4),
                GoState::from_runtime(i as u64 & 0xf),
            );
            if n == 0 || from == to || from == GoState::Unknown || to == GoState::Unknown {
                continue;
            }
            *self
                .transitions
                .entry(format!("{}->{}", from.name(), to.name()))
                .or_default() += n;
        }
        let waits_by_reason = a
            .wait
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(r, &n)| (name_wait(&format!("Waiting/{r}"), &self.go_version), n))
            .collect();
        self.aggregate = Some(AggregateInfo {
            counted_events: counted,
            waits_by_reason,
        });
    }

    /// The startup timeline: aligned columns, durations and a bar per phase on a shared scale.
    fn startup_text(&self) -> String {
        let mut s = String::new();
        if !self.startup_observed {
            let _ = writeln!(
                s,
                "  startup    not observed: the process was already running when gmp-trace attached \
                 (launch it with `gmp-trace -- CMD` to see its startup)"
            );
            return s;
        }
        let total = self
            .startup
            .iter()
            .map(|p| p.start_ns + p.dur_ns)
            .max()
            .unwrap_or(0)
            .max(1);
        const WIDTH: u64 = 30;
        let _ = writeln!(s, "  startup timeline (from exec):");
        let _ = writeln!(
            s,
            "    {:>10} {:>10}  {:<4} {:<4} {:<44} ",
            "start", "duration", "G", "M", "phase"
        );
        for p in &self.startup {
            let from = (p.start_ns * WIDTH / total).min(WIDTH - 1);
            let len = (p.dur_ns * WIDTH).div_ceil(total).max(1).min(WIDTH - from);
            let bar = format!("{}{}", " ".repeat(from as usize), "█".repeat(len as usize));
            let indent = "  ".repeat(p.depth as usize);
            let m = if p.m < 0 {
                "-".to_string()
            } else {
                format!("m{}", p.m)
            };
            let _ = writeln!(
                s,
                "    {:>10} {:>10}  {:<4} {:<4} {:<44} |{:<w$}|",
                fmt_ns(p.start_ns),
                fmt_ns(p.dur_ns),
                format!("g{}", p.g),
                m,
                format!("{indent}{}", p.phase),
                bar,
                w = WIDTH as usize
            );
        }
        if let Some(at) = &self.at_main {
            let _ = writeln!(
                s,
                "  at main.main: {} goroutines ({}{}), {} threads started",
                at.goroutines.len() as u64 + at.more_goroutines,
                at.goroutines
                    .iter()
                    .map(|g| format!("g{} {}", g.goid, g.start_fn))
                    .collect::<Vec<_>>()
                    .join(", "),
                match at.more_goroutines {
                    0 => String::new(),
                    n => format!(", and {n} more"),
                },
                at.threads.len() as u64 + at.more_threads
            );
        }
        s
    }

    /// Latency, P use, end states and the leak tree.
    fn scheduler_text(&self) -> String {
        let mut s = String::new();
        let l = &self.sched_latency;
        let _ = writeln!(
            s,
            "  sched latency (runnable -> running): {} samples, p50 {}, p99 {}, max {}",
            l.count,
            fmt_ns(l.p50_ns),
            fmt_ns(l.p99_ns),
            fmt_ns(l.max_ns)
        );
        if !self.worst_latency_goroutines.is_empty() {
            let _ = writeln!(s, "  top goroutines by scheduling latency:");
            for w in self.worst_latency_goroutines.iter().take(5) {
                let _ = writeln!(
                    s,
                    "    {:>10}  g{:<6} {}",
                    fmt_ns(w.latency_ns),
                    w.goid,
                    w.start_fn
                );
            }
        }
        if !self.sched_latency_by_site.is_empty() {
            let _ = writeln!(s, "  latency by creation site (p50 / p99 / max):");
            for r in self.sched_latency_by_site.iter().take(5) {
                let _ = writeln!(
                    s,
                    "    {:>10} {:>10} {:>10}  {}{} ({} created)",
                    fmt_ns(r.latency.p50_ns),
                    fmt_ns(r.latency.p99_ns),
                    fmt_ns(r.latency.max_ns),
                    r.site,
                    at_suffix(&r.site_at),
                    r.created
                );
            }
        }
        if !self.proc_utilization.is_empty() {
            let row: Vec<String> = self
                .proc_utilization
                .iter()
                .map(|p| format!("P{} {:.1}%", p.p, 100.0 * p.utilization))
                .collect();
            let _ = writeln!(s, "  P utilization: {}", row.join(", "));
        }
        s += &self.stealing_text();
        s += &self.end_state_text();
        s
    }

    /// Threads and goroutines at the end, the leak tree, GC.
    fn end_state_text(&self) -> String {
        let mut s = String::new();
        if !self.thread_list.is_empty() {
            let row: Vec<String> = self
                .thread_list
                .iter()
                .map(|t| {
                    let m = t.m.map_or("M?".to_string(), |m| format!("M{m}"));
                    let p = t.p_at_end.map_or(String::new(), |p| format!(" P{p}"));
                    let by = t.created_by.map_or(String::new(), |c| format!(" by {c}"));
                    format!("{m} tid {}{by} {}{p}", t.tid, t.state_at_end)
                })
                .collect();
            let _ = writeln!(s, "  threads at end: {}", row.join("; "));
        }
        if !self.states_at_end.is_empty() {
            let row: Vec<String> = self
                .states_at_end
                .iter()
                .map(|(k, v)| format!("{v} {k}"))
                .collect();
            let _ = writeln!(s, "  goroutines at end: {}", row.join(", "));
        }
        if !self.leak_tree.is_empty() {
            let _ = writeln!(s, "  live goroutines by creator (leak tree):");
            for g in self.leak_tree.iter().take(5) {
                let chain = if g.creators.is_empty() {
                    String::new()
                } else {
                    format!("{} > ", g.creators.join(" > "))
                };
                let states: Vec<String> =
                    g.states.iter().map(|(k, v)| format!("{v} {k}")).collect();
                let _ = writeln!(
                    s,
                    "    {:>6}  {chain}{}{}  [{}]",
                    g.count,
                    g.start_fn,
                    match at_suffix(&g.create_at) {
                        a if a.is_empty() => a,
                        a => format!(" (created{a})"),
                    },
                    states.join(", ")
                );
            }
        }
        if !self.blocked_at.is_empty() {
            let _ = writeln!(
                s,
                "  blocked at the end, by where (--stacks, blocks seen while tracing):"
            );
            for b in self.blocked_at.iter().take(5) {
                let _ = writeln!(s, "    {:>6}  {}", b.count, b.site);
            }
        }
        if self.gc_cycles > 0 || self.stw_pauses > 0 {
            let _ = writeln!(
                s,
                "  GC cycles {}, stop-the-world pauses {}",
                self.gc_cycles, self.stw_pauses
            );
        }
        s
    }

    /// Spinning Ms and steals; nothing when neither was seen (level below full, old recording).
    fn stealing_text(&self) -> String {
        let mut s = String::new();
        let w = &self.work_stealing;
        if w.spins == 0 && w.steals == 0 && w.failed_attempts == 0 {
            return s;
        }
        let _ = writeln!(
            s,
            "  spinning Ms: {} spells, {} in all, at most {} at once",
            w.spins,
            fmt_ns(w.spinning_ns),
            w.max_spinning_ms
        );
        let per_m: Vec<String> = self
            .thread_list
            .iter()
            .filter(|t| t.spins > 0)
            .map(|t| {
                let m = t.m.map_or("M?".to_string(), |m| format!("M{m}"));
                format!("{m} {} ({}x)", fmt_ns(t.spinning_ns), t.spins)
            })
            .collect();
        if !per_m.is_empty() {
            let _ = writeln!(s, "    by M: {}", per_m.join(", "));
        }
        let attempts = w.steals + w.failed_attempts;
        let _ = writeln!(
            s,
            "  steals: {} of {} attempts succeeded, {} goroutines moved",
            w.steals, attempts, w.goroutines_stolen
        );
        let row: Vec<String> = self
            .proc_utilization
            .iter()
            .filter(|p| p.steals + p.stolen_from > 0)
            .map(|p| {
                format!(
                    "P{} stole {} ({} Gs), robbed {} ({} Gs)",
                    p.p, p.steals, p.goroutines_stolen, p.stolen_from, p.goroutines_lost
                )
            })
            .collect();
        if !row.is_empty() {
            let _ = writeln!(s, "    by P: {}", row.join("; "));
        }
        s
    }

    /// The human summary (stderr).
    pub fn text(&self) -> String {
        let mut s = self.head_text();
        s += &self.startup_text();
        s += &self.scheduler_text();
        s += &self.tail_text();
        s += &crate::checks::text(&self.assertions);
        s
    }

    /// The target, how much was traced, goroutine and thread counts, start functions.
    fn head_text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "── gmp-trace summary ─────────────────────────────────────────"
        );
        let _ = writeln!(
            s,
            "  target     {} (pid {}, {}, {})",
            self.binary,
            self.pid,
            self.go_version,
            self.main_module.as_deref().unwrap_or("unknown module")
        );
        let _ = writeln!(
            s,
            "  traced     {:.3} ms, {} events, {} lost{}",
            self.duration_ns as f64 / 1e6,
            self.events,
            self.lost_events,
            if self.lost_events > 0 {
                "  (!) increase --buffer-size"
            } else {
                ""
            }
        );
        if let Some(c) = &self.cpu_samples {
            let _ = writeln!(
                s,
                "  CPU        {} samples at {} Hz, {} lost (sampler ring full){}, {} in the Go trace",
                c.taken,
                c.rate_hz,
                c.dropped,
                if c.not_kept > 0 {
                    format!(", {} not kept", c.not_kept)
                } else {
                    String::new()
                },
                c.written
            );
        }
        if let Some(a) = &self.aggregate {
            let _ = writeln!(
                s,
                "  aggregate  {} events counted in BPF maps, not streamed (--aggregate)",
                a.counted_events
            );
        }
        if let Some(x) = &self.exec {
            let _ = writeln!(
                s,
                "  exec       tid {} exec'd {} at {:.3} ms: tracing ended there (the new image is \
                 not traced); everything here is the first image's",
                x.tid,
                x.path.as_deref().unwrap_or("a new image (path unknown)"),
                x.since_start_ns as f64 / 1e6
            );
        }
        let unseen = match self.goroutines_exited_creation_lost {
            0 => String::new(),
            n => format!(" ({n} whose creation was lost)"),
        };
        let _ = writeln!(
            s,
            "  goroutines {} created, {} exited{unseen}, {} live at end",
            self.goroutines_created, self.goroutines_exited, self.goroutines_live_at_end
        );
        if self.counts_are_lower_bounds {
            let _ = writeln!(
                s,
                "  (!) with {} events lost, the counts here are lower bounds (what was seen), \
                 and live at end may be off either way",
                self.lost_events
            );
        }
        let _ = writeln!(
            s,
            "  threads    {} Ms seen ({} seen starting), {} Ps",
            self.threads, self.mstart_threads, self.procs
        );
        for r in &self.runtime_main {
            let _ = writeln!(s, "  runtime.main on g{} (M{} tid {})", r.goid, r.m, r.tid);
        }
        if !self.goroutines_by_start_fn.is_empty() {
            let _ = writeln!(s, "  created by start function:");
            let mut v: Vec<_> = self.goroutines_by_start_fn.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (name, n) in v.iter().take(10) {
                let _ = writeln!(s, "    {n:>8}  {name}");
            }
            if v.len() > 10 {
                let _ = writeln!(s, "    ... {} more", v.len() - 10);
            }
        }
        s
    }

    /// Aggregate waits, events by kind, slow probe sites, the exit code.
    fn tail_text(&self) -> String {
        let mut s = String::new();
        if let Some(a) = &self.aggregate {
            if !a.waits_by_reason.is_empty() {
                let _ = writeln!(s, "  waits by reason:");
                let mut v: Vec<_> = a.waits_by_reason.iter().collect();
                v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
                for (name, n) in v.iter().take(10) {
                    let _ = writeln!(s, "    {n:>8}  {name}");
                }
            }
        }
        let _ = writeln!(s, "  events by kind:");
        for (k, v) in &self.events_by_kind {
            let _ = writeln!(s, "    {v:>8}  {k}");
        }
        // Recordings made before the link kind was kept have none: no line for them.
        if let Some(link) = self
            .probes
            .first()
            .map(|p| p.link.as_str())
            .filter(|l| !l.is_empty())
        {
            let programs: std::collections::BTreeSet<&str> =
                self.probes.iter().map(|p| p.program.as_str()).collect();
            let _ = writeln!(
                s,
                "  probes     {} sites, {} programs, {link} links",
                self.probes.len(),
                programs.len()
            );
        }
        let two_trap: Vec<_> = self.probes.iter().filter(|p| !p.one_trap).collect();
        if !two_trap.is_empty() {
            let names: Vec<_> = two_trap.iter().map(|p| p.function.as_str()).collect();
            let _ = writeln!(
                s,
                "  note: single-stepped probe sites (slower): {}",
                names.join(", ")
            );
        }
        if let Some(c) = self.exit_code {
            let _ = writeln!(s, "  exit code  {c}");
        }
        s
    }
}

/// "1.234 ms" / "56.7 us" / "890 ns": durations a person reads at a glance.
pub fn fmt_ns(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.3} ms", ns as f64 / 1e6)
    } else if ns >= 1_000 {
        format!("{:.1} us", ns as f64 / 1e3)
    } else {
        format!("{ns} ns")
    }
}
