//! One watched process's numbers at one interval, from the cheap sources only: the runtime's
//! memory (process/snapshot.rs, as `gmp-trace top` reads it: goroutines, Ms, Ps), a few runtime
//! globals read beside it (the goid generator, memstats' GC totals, the global run queue) and
//! /proc/PID/stat (the process's CPU time). Nothing here attaches a probe: a process that exits
//! mid-read leaves nothing behind.
//!
//! Created and exited goroutine totals come from the goid generator, not from probes: the
//! runtime hands goids out of `runtime.sched.goidgen` in batches of 16 to each P's cache
//! (`p.goidcache`..`p.goidcacheend`), so `goidgen - sum(unused cache)` is every goroutine ever
//! created (the runtime's own included); where the binary's DWARF lacks the P fields, the
//! unused caches are counted as created (an over-count of at most 16 per P). Exited is created
//! minus the goroutines alive at the read, which race each other by the read's duration: kept
//! monotonic (a counter never goes back).
use std::sync::Arc;

use crate::binary::GoBinary;
use crate::commands::top::frame::{goroutine_counts, thread_counts, ThreadCounts};
use crate::commands::top::sched::GlobalRunq;
use crate::commands::top::uprobes::{Probes, With};
use crate::model::dump::Dump;
use crate::probes;
use crate::process::memory::Remote;
use crate::process::{maps, snapshot};

use super::hist::Buckets;

/// Why a read produced no numbers.
#[derive(Debug, thiserror::Error)]
pub enum ReadFailure {
    /// The runtime has no goroutine or no P yet (the process is starting, or exec'd a moment
    /// ago): nothing to say, and nothing wrong.
    #[error("the Go runtime is not initialised yet")]
    Starting,
    #[error("{0}")]
    Failed(String),
}

/// What one read found.
#[derive(Clone, Debug, Default)]
pub struct Reading {
    /// User goroutines (what runtime.NumGoroutine counts) by Go's status name.
    pub goroutines: Vec<(String, usize)>,
    /// Waiting user goroutines by wait reason (bounded by the runtime's list of reasons).
    pub waiting: Vec<(String, usize)>,
    /// The runtime's own goroutines (GC workers, finalizers...).
    pub system_goroutines: usize,
    pub threads: ThreadCounts,
    /// Ps by status (idle, running, syscall, gcstop), and GOMAXPROCS.
    pub procs: Vec<(&'static str, usize)>,
    pub gomaxprocs: usize,
    /// Goroutines in the Ps' local run queues, and in the global one (when the binary says
    /// where it is).
    pub runq_local: u64,
    pub runq_global: Option<u32>,
    pub created_total: Option<u64>,
    pub exited_total: Option<u64>,
    pub gc_cycles_total: Option<u64>,
    pub gc_stw_seconds_total: Option<f64>,
    /// From /proc/PID/stat.
    pub cpu_user_seconds: f64,
    pub cpu_system_seconds: f64,
    /// How long the memory read took, and goroutines it left out because they changed while
    /// they were read (torn reads).
    pub read_seconds: f64,
    pub torn_reads: u64,
    /// `--with sched`: the runnable -> running latency since the probes went on, and what the
    /// probes cost so far (BPF run time, seconds; program runs).
    pub sched_latency: Option<Buckets>,
    pub probe_seconds: Option<f64>,
    pub probe_hits: Option<u64>,
}

/// Reads one process, keeping what the next read needs.
pub struct ProcReader {
    pid: u32,
    bin: Arc<GoBinary>,
    bias: u64,
    mem: Remote,
    runq: Option<GlobalRunq>,
    goids: Option<Goids>,
    gc: Option<(u64, u64)>,
    /// The totals published so far: counters never go back.
    created_seen: u64,
    exited_seen: u64,
    /// `--with sched`: wanted, attached, or failed once (said once, not tried again).
    with_sched: bool,
    probes: Option<Probes>,
    probes_failed: bool,
}

/// Where the goid generator and the Ps' goid caches are.
struct Goids {
    goidgen: u64,
    allp: u64,
    /// p.goidcache and p.goidcacheend, when the DWARF says.
    cache: Option<(u64, u64)>,
}

impl ProcReader {
    /// Locates what the reads need in `bin` as process `pid` loaded it.
    pub fn new(pid: u32, bin: Arc<GoBinary>, with_sched: bool) -> Result<ProcReader, ReadFailure> {
        let bias = maps::load_bias(pid, &bin).map_err(|e| ReadFailure::Failed(e.to_string()))?;
        let goids = bin.data_symbol("runtime.sched").and_then(|s| {
            let off = bin.struct_field_offset("runtime.schedt", "goidgen").ok()?;
            let allp = snapshot::globals(&bin, bias).ok()?.allp;
            let cache = bin
                .struct_field_offset("runtime.p", "goidcache")
                .ok()
                .zip(bin.struct_field_offset("runtime.p", "goidcacheend").ok());
            Some(Goids {
                goidgen: s.addr.wrapping_add(bias).wrapping_add(off),
                allp,
                cache,
            })
        });
        if goids.is_none() {
            log::info!(
                "pid {pid}: no runtime.sched.goidgen (stripped binary): created/exited totals n/a"
            );
        }
        let gc = match bin.memstats_layout() {
            Ok(Some(l)) => {
                let at = l.addr.wrapping_add(bias);
                Some((
                    at + u64::from(l.offsets.numgc),
                    at + u64::from(l.offsets.pause_total_ns),
                ))
            }
            _ => None,
        };
        Ok(ProcReader {
            pid,
            runq: GlobalRunq::locate(&bin, bias, pid),
            mem: Remote::new(pid),
            bin,
            bias,
            goids,
            gc,
            created_seen: 0,
            exited_seen: 0,
            with_sched,
            probes: None,
            probes_failed: false,
        })
    }

    /// Reads the process now.
    pub fn read(&mut self) -> Result<Reading, ReadFailure> {
        let t0 = std::time::Instant::now();
        // Read before the goroutines: a goroutine created between the two reads is then alive
        // but not yet counted as created, which only delays an exit, never invents one.
        let created = self.created();
        let d = snapshot::take_counts(self.pid, &self.bin, self.bias)
            .map_err(|e| ReadFailure::Failed(e.to_string()))?;
        if let Some(why) = &d.incomplete {
            return Err(ReadFailure::Failed(format!("incomplete read: {why}")));
        }
        if d.procs.is_empty() || d.goroutines.is_empty() {
            return Err(ReadFailure::Starting);
        }
        let mut r = counts(&d);
        r.runq_global = self.runq.and_then(|q| q.read());
        if let Some(c) = created {
            let alive = d.goroutines.len() as u64;
            self.exited_seen = self.exited_seen.max(c.saturating_sub(alive));
            self.created_seen = self.created_seen.max(c).max(self.exited_seen + alive);
            r.created_total = Some(self.created_seen);
            r.exited_total = Some(self.exited_seen);
        }
        if let Some((numgc, pause)) = self.gc {
            let n = self.mem.read(numgc, 4).ok().and_then(|b| b.try_into().ok());
            let p = self.mem.read(pause, 8).ok().and_then(|b| b.try_into().ok());
            r.gc_cycles_total = n.map(|b| u64::from(u32::from_le_bytes(b)));
            r.gc_stw_seconds_total = p.map(|b| u64::from_le_bytes(b) as f64 / 1e9);
        }
        if let Some((user, system)) = cpu_seconds(self.pid) {
            r.cpu_user_seconds = user;
            r.cpu_system_seconds = system;
        }
        self.sched(&mut r);
        r.read_seconds = t0.elapsed().as_secs_f64();
        Ok(r)
    }

    /// `--with sched`: attaches the latency probes once the runtime is up (not to a process
    /// that is gone before its first whole read: a loop of short-lived processes costs no
    /// probe), then reads their histogram.
    fn sched(&mut self, r: &mut Reading) {
        if self.with_sched && self.probes.is_none() && !self.probes_failed {
            match self.attach() {
                Ok(p) => self.probes = Some(p),
                Err(e) => {
                    self.probes_failed = true;
                    log::warn!("pid {}: no --with sched probes: {e:#}", self.pid);
                }
            }
        }
        let Some(p) = self.probes.as_ref() else {
            return;
        };
        r.sched_latency = p.latency_histogram().map(|h| Buckets::of(&h));
        if let Some(c) = p.run_costs().first() {
            r.probe_hits = c.hits;
            r.probe_seconds = c.hits.zip(c.ns_per_hit).map(|(h, ns)| h as f64 * ns / 1e9);
        }
    }

    fn attach(&self) -> anyhow::Result<Probes> {
        let mut offsets = probes::offsets(&self.bin)?;
        offsets.target_pid = self.pid;
        let exe = std::path::PathBuf::from(format!("/proc/{}/exe", self.pid));
        Probes::start(&[With::Sched], &self.bin, &exe, &offsets)
    }

    /// Goroutines ever created: the generator minus the goids still unused in the Ps' caches.
    fn created(&self) -> Option<u64> {
        let g = self.goids.as_ref()?;
        let gen = u64::from_le_bytes(self.mem.read(g.goidgen, 8).ok()?.try_into().ok()?);
        let Some((lo, hi)) = g.cache else {
            return Some(gen);
        };
        let slice = self.mem.read(g.allp, 16).ok()?;
        let ptr = u64::from_le_bytes(slice[..8].try_into().ok()?);
        let len = u64::from_le_bytes(slice[8..].try_into().ok()?).min(1 << 16) as usize;
        let ps = self.mem.read(ptr, len * 8).ok()?;
        let mut unused = 0u64;
        for p in ps.as_chunks::<8>().0 {
            let p = u64::from_le_bytes(*p);
            if p == 0 {
                continue;
            }
            let read = |off: u64| -> Option<u64> {
                Some(u64::from_le_bytes(
                    self.mem.read(p + off, 8).ok()?.try_into().ok()?,
                ))
            };
            let (a, b) = (read(lo)?, read(hi)?);
            // A P that never took a batch has both at 0; a torn pair is ignored.
            if b >= a && b - a <= 1024 {
                unused += b - a;
            }
        }
        Some(gen.saturating_sub(unused))
    }
}

/// The counts of one whole read: top's own counting, over the user goroutines.
fn counts(d: &Dump) -> Reading {
    let user = goroutine_counts(d.goroutines.iter().filter(|g| !g.system));
    let mut procs: Vec<(&'static str, usize)> = Vec::new();
    for p in &d.procs {
        match procs.iter_mut().find(|(s, _)| *s == p.status) {
            Some((_, n)) => *n += 1,
            None => procs.push((p.status, 1)),
        }
    }
    Reading {
        goroutines: user.by_state,
        waiting: user
            .by_wait
            .into_iter()
            .map(|w| (w.reason, w.count))
            .collect(),
        system_goroutines: d.goroutines.iter().filter(|g| g.system).count(),
        threads: thread_counts(d),
        procs,
        gomaxprocs: d.procs.len(),
        runq_local: d.procs.iter().map(|p| u64::from(p.runq)).sum(),
        torn_reads: d.torn_reads,
        ..Reading::default()
    }
}

/// (user, system) CPU seconds of process `pid`, from /proc/PID/stat.
pub fn cpu_seconds(pid: u32) -> Option<(f64, f64)> {
    let f = stat_fields(pid)?;
    let tick = clock_ticks();
    // utime and stime are fields 14 and 15; `f` starts at field 3 (the state).
    let user: u64 = f.get(11)?.parse().ok()?;
    let system: u64 = f.get(12)?.parse().ok()?;
    Some((user as f64 / tick, system as f64 / tick))
}

/// When process `pid` started, in clock ticks since boot (/proc/PID/stat field 22): with the
/// pid, who a process is (a pid reused by another process has another start).
pub fn start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// Seconds since the Unix epoch at `ticks` after boot (/proc/stat's btime).
pub fn start_time_seconds(ticks: u64) -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(btime as f64 + ticks as f64 / clock_ticks())
}

/// The fields of /proc/PID/stat after the command name (which may hold spaces and parens).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = st.rsplit_once(')')?;
    Some(rest.split_whitespace().map(str::to_string).collect())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_own_stat_reads() {
        let me = std::process::id();
        let t = start_ticks(me).expect("our start");
        let at = start_time_seconds(t).expect("a start time");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            at <= now + 1.0 && at > now - 86_400.0 * 365.0,
            "{at} vs {now}"
        );
        let (u, s) = cpu_seconds(me).expect("our cpu");
        assert!(u >= 0.0 && s >= 0.0);
        assert_eq!(start_ticks(u32::MAX - 1), None);
    }
}
