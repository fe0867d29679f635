//! `top --with lifecycle,sched`: the few uprobes top may add to its memory reads and sampler,
//! from the tracer's own registry, plan and loader (no BPF of top's own), each set in a BPF
//! object of its own because the two want the object's mode the other way round:
//! - lifecycle: goroutine creation (newproc1's result) and exit (goexit1), streamed, since the
//!   creation site and the creator are in each event; counted here per interval. Only these two
//!   programs are attached, so the ring carries nothing else.
//! - sched: aggregate mode's runnable -> running histogram (casgstatus, and newproc1's result
//!   for a new goroutine's first wait), kept in the probes' maps and read per interval: no
//!   event stream.
//!
//! What each set costs comes from the kernel's run-time accounting of its programs, switched on
//! (BPF_ENABLE_STATS) for as long as the probes are attached.
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::path::Path;

use anyhow::Context as _;
use aya::maps::{MapData, RingBuf};
use gmp_trace_common::{Event, EventKind, Offsets};

use super::frame::{ranked, site_name, Latency, Lifecycle, ProbeCost};
use crate::binary::GoBinary;
use crate::model::dump::Dump;
use crate::model::hist::Histogram;
use crate::probes::{self, Level, Links, ProgramStats, Tracer};
use crate::process::stacks::Symbols;

/// A set of probes `--with` adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum With {
    /// Goroutine creation and exit: exact counts per interval, creations by site and creator.
    Lifecycle,
    /// The scheduling-latency histogram (runnable -> running), as `--aggregate` keeps it.
    Sched,
}

/// The registry's programs each set attaches.
const LIFECYCLE: &[&str] = &["newproc1_ret", "goexit1"];
const SCHED: &[&str] = &["newproc1_ret", "casgstatus"];

/// The lifecycle ring: 64k events, drained every few tens of ms.
const LIFECYCLE_RING: u32 = 4 << 20;
/// The smallest ring the kernel takes, for the object that streams nothing.
const NO_RING: u32 = 4096;

/// The probes attached; dropping them detaches every link.
pub struct Probes {
    lifecycle: Option<LifecycleProbes>,
    sched: Option<SchedProbes>,
    /// Declared last so the accounting outlives the programs it measures.
    _stats: Option<OwnedFd>,
}

struct LifecycleProbes {
    ring: RingBuf<MapData>,
    tracer: Tracer,
    cost: Cost,
    created: u64,
    exited: u64,
    malformed: u64,
    lost_seen: u64,
    by_gopc: HashMap<u64, u64>,
    by_parent: HashMap<u64, u64>,
    /// Start pcs of the goroutines created in the interval: the creator of a later one may
    /// be gone by the state read.
    starts: HashMap<u64, u64>,
}

struct SchedProbes {
    tracer: Tracer,
    cost: Cost,
    prev: Histogram,
}

impl Probes {
    /// Attaches the sets asked for to process `offsets.target_pid` running `exe`.
    pub fn start(
        with: &[With],
        bin: &GoBinary,
        exe: &Path,
        offsets: &Offsets,
    ) -> anyhow::Result<Probes> {
        let mut p = Probes {
            lifecycle: None,
            sched: None,
            _stats: None,
        };
        if with.is_empty() {
            return Ok(p);
        }
        p._stats = match aya::sys::enable_stats(aya::sys::Stats::RunTime) {
            Ok(fd) => Some(fd),
            Err(e) => {
                log::warn!("no BPF run-time accounting (kernel 5.8+): probe costs n/a ({e})");
                None
            }
        };
        let plan = probes::plan(bin, Level::Sched, false).context("planning top's probes")?;
        let links = Links::detect();
        let attach = |names: &[&str], ring: u32, aggregate: bool| -> anyhow::Result<Tracer> {
            let mine: Vec<_> = plan
                .iter()
                .filter(|a| names.contains(&a.program))
                .cloned()
                .collect();
            let mut t = Tracer::load(offsets, ring, aggregate, links, 0)?;
            t.attach(&mine, exe, offsets.target_pid)?;
            Ok(t)
        };
        if with.contains(&With::Lifecycle) {
            let mut tracer = attach(LIFECYCLE, LIFECYCLE_RING, false)?;
            p.lifecycle = Some(LifecycleProbes {
                ring: tracer.take_ring()?,
                cost: Cost::new("lifecycle", &tracer),
                tracer,
                created: 0,
                exited: 0,
                malformed: 0,
                lost_seen: 0,
                by_gopc: HashMap::new(),
                by_parent: HashMap::new(),
                starts: HashMap::new(),
            });
        }
        if with.contains(&With::Sched) {
            let tracer = attach(SCHED, NO_RING, true)?;
            p.sched = Some(SchedProbes {
                cost: Cost::new("sched", &tracer),
                tracer,
                prev: Histogram::default(),
            });
        }
        Ok(p)
    }

    /// Removes every uprobe (also done on drop).
    pub fn detach(&mut self) {
        if let Some(l) = &mut self.lifecycle {
            l.tracer.detach();
        }
        if let Some(s) = &mut self.sched {
            s.tracer.detach();
        }
    }

    /// Counts the lifecycle events waiting in the ring.
    pub fn drain(&mut self) {
        let Some(l) = &mut self.lifecycle else {
            return;
        };
        while let Some(item) = l.ring.next() {
            let Some(e) = Event::from_bytes(&item) else {
                l.malformed += 1;
                continue;
            };
            if e.kind == EventKind::GoCreate as u32 {
                l.created += 1;
                *l.by_gopc.entry(e.arg2).or_insert(0) += 1;
                *l.by_parent.entry(e.arg0).or_insert(0) += 1;
                l.starts.insert(e.goid, e.arg1);
            } else if e.kind == EventKind::GoExit as u32 {
                l.exited += 1;
            }
        }
    }

    /// The interval's creations and exits, named with `sym` and the state read `d`; starts
    /// the next interval.
    pub fn lifecycle(&mut self, sym: &mut Symbols<'_>, d: &Dump) -> Option<Lifecycle> {
        self.drain();
        let l = self.lifecycle.as_mut()?;
        let lost_now = l.tracer.counters().map_or(l.lost_seen, |(full, _, _)| full);
        let lost = lost_now.saturating_sub(l.lost_seen);
        l.lost_seen = lost_now;
        let mut sites: HashMap<String, u64> = HashMap::new();
        for (gopc, n) in l.by_gopc.drain() {
            let site = match sym.creator(gopc) {
                Some((function, file, line, _)) => site_name(&function, &file, line),
                None => format!("(unknown pc {gopc:#x})"),
            };
            *sites.entry(site).or_insert(0) += n;
        }
        let live: HashMap<u64, Option<&str>> = d
            .goroutines
            .iter()
            .map(|g| (g.goid, g.start_function.as_deref()))
            .collect();
        let mut parents: HashMap<String, u64> = HashMap::new();
        for (parent, n) in l.by_parent.drain() {
            let name = match (live.get(&parent), l.starts.get(&parent)) {
                _ if parent == 0 => "(none)".to_string(),
                (Some(Some(f)), _) => f.to_string(),
                (_, Some(&pc)) => sym.name(pc).map_or("(unknown)".into(), |f| f.to_string()),
                _ => "(exited)".to_string(),
            };
            *parents.entry(name).or_insert(0) += n;
        }
        l.starts.clear();
        let out = Lifecycle {
            created: std::mem::take(&mut l.created),
            exited: std::mem::take(&mut l.exited),
            lost,
            created_by_site: ranked(sites.iter().map(|(k, n)| (k.as_str(), *n)).collect()),
            created_by_parent: ranked(parents.iter().map(|(k, n)| (k.as_str(), *n)).collect()),
        };
        Some(out)
    }

    /// The interval's scheduling latency; starts the next interval.
    pub fn latency(&mut self) -> Option<Latency> {
        let s = self.sched.as_mut()?;
        let now = match s.tracer.aggregates() {
            Ok(a) => a.latency,
            Err(e) => {
                log::warn!("reading the latency histogram: {e:#}");
                return None;
            }
        };
        let h = now.since(&s.prev);
        s.prev = now;
        Some(latency_of(&h))
    }

    /// The run's whole latency histogram (the maps count from attach).
    pub fn latency_total(&self) -> Option<Latency> {
        let s = self.sched.as_ref()?;
        s.tracer.aggregates().ok().map(|a| latency_of(&a.latency))
    }

    /// The whole latency histogram since attach, raw (`gmp-trace serve` exports its buckets).
    pub fn latency_histogram(&self) -> Option<Histogram> {
        let s = self.sched.as_ref()?;
        s.tracer.aggregates().ok().map(|a| a.latency)
    }

    /// What each set cost in the `secs` since the previous call.
    pub fn costs(&mut self, secs: f64) -> Vec<ProbeCost> {
        let on = self._stats.is_some();
        let mut out = Vec::new();
        if let Some(l) = &mut self.lifecycle {
            out.push(l.cost.interval(&l.tracer, secs, on));
        }
        if let Some(s) = &mut self.sched {
            out.push(s.cost.interval(&s.tracer, secs, on));
        }
        out
    }

    /// What each set cost since attach.
    pub fn run_costs(&self) -> Vec<ProbeCost> {
        let on = self._stats.is_some();
        let mut out = Vec::new();
        if let Some(l) = &self.lifecycle {
            out.push(l.cost.since_attach(&l.tracer, on));
        }
        if let Some(s) = &self.sched {
            out.push(s.cost.since_attach(&s.tracer, on));
        }
        out
    }
}

fn latency_of(h: &Histogram) -> Latency {
    Latency {
        samples: h.count,
        p50_ns: h.quantile(0.5),
        p90_ns: h.quantile(0.9),
        p99_ns: h.quantile(0.99),
        max_ns: h.max,
    }
}

/// One set's program statistics at the previous frame and at attach.
struct Cost {
    name: &'static str,
    prev: ProgramStats,
    first: ProgramStats,
    attached: std::time::Instant,
}

impl Cost {
    fn new(name: &'static str, t: &Tracer) -> Cost {
        let now = t.program_stats();
        Cost {
            name,
            prev: now,
            first: now,
            attached: std::time::Instant::now(),
        }
    }

    fn interval(&mut self, t: &Tracer, secs: f64, on: bool) -> ProbeCost {
        let now = t.program_stats();
        let c = cost(self.name, &self.prev, &now, secs, on);
        self.prev = now;
        c
    }

    fn since_attach(&self, t: &Tracer, on: bool) -> ProbeCost {
        let secs = self.attached.elapsed().as_secs_f64();
        cost(self.name, &self.first, &t.program_stats(), secs, on)
    }
}

/// The cost between two readings `secs` apart; nothing without the kernel's accounting (it
/// counts neither runs nor run time then).
fn cost(name: &str, a: &ProgramStats, b: &ProgramStats, secs: f64, on: bool) -> ProbeCost {
    let hits = b.run_cnt.saturating_sub(a.run_cnt);
    let ns = b.run_time_ns.saturating_sub(a.run_time_ns) as f64;
    let on = on && secs > 0.0;
    ProbeCost {
        name: name.to_string(),
        hits: on.then_some(hits),
        hits_per_s: on.then(|| hits as f64 / secs),
        ns_per_hit: (on && hits > 0).then(|| ns / hits as f64),
        cpu_pct: on.then(|| ns * 100.0 / (secs * 1e9)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_per_hit_and_a_share_of_one_cpu() {
        let a = ProgramStats {
            run_time_ns: 1_000,
            run_cnt: 10,
        };
        let b = ProgramStats {
            run_time_ns: 2_001_000,
            run_cnt: 2_010,
        };
        let c = cost("lifecycle", &a, &b, 2.0, true);
        assert_eq!(c.hits, Some(2_000));
        assert_eq!(c.hits_per_s, Some(1_000.0));
        assert_eq!(c.ns_per_hit, Some(1_000.0));
        assert!((c.cpu_pct.unwrap() - 0.1).abs() < 1e-9);
        let off = cost("sched", &a, &b, 2.0, false);
        assert_eq!((off.hits, off.ns_per_hit, off.cpu_pct), (None, None, None));
    }
}
