//! One frame of `gmp-trace top`: a state read of the runtime (model::dump) and the interval's CPU
//! samples folded into the panels both views show (Ps, Ms, goroutines, creation sites, CPU).
//! Pure data in, plain rows out, so the batch printer and the TUI only read, and the folding is
//! tested here without a process. The only memory kept between frames is [`History`]: the
//! attach-time counts and the last few frames' counts per creation site, for the `leak?` flag.
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use serde::Serialize;

use crate::model::dump::{Dump, Goroutine};

/// One CPU sample, symbolized: what the CPU panel and the Ps' shares count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub p: i32,
    /// The goroutine's start function, `None` for the scheduler's own work or an unknown one.
    pub start: Option<Arc<str>>,
    /// The interrupted function ("[kernel]" in a system call or fault).
    pub function: Arc<str>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Frame {
    /// 1 for the first frame after attach.
    pub seq: u64,
    pub interval_ms: u64,
    /// How long the last state read took.
    pub read_ms: f64,
    /// Why the last state read was partial or failed (the footer says it).
    pub read_problem: Option<String>,
    pub procs: Vec<ProcRow>,
    /// Goroutines in the global run queue (runtime.sched), when the binary says where it is.
    pub global_runq: Option<u32>,
    pub threads: ThreadCounts,
    pub goroutines: GoroutineCounts,
    pub sites: Vec<SiteRow>,
    pub cpu: CpuPanel,
    /// Samples lost to a full ring: in this interval, and since attach.
    pub lost_samples: u64,
    pub lost_samples_total: u64,
    /// GC cycles completed and stop-the-world time in the interval, from the runtime's own
    /// totals; `None` when they cannot be read (a stripped binary).
    pub gc: Option<GcInterval>,
    /// `--with lifecycle`: goroutines created and exited in the interval, as the probes saw.
    pub lifecycle: Option<Lifecycle>,
    /// `--with sched`: runnable -> running latency of the interval.
    pub latency: Option<Latency>,
    /// The probes attached (`--with`), with what they cost in the interval.
    pub probes: Vec<ProbeCost>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct GcInterval {
    pub cycles: u64,
    /// Stop-the-world pauses of the GC (mstats.pause_total_ns's growth).
    pub stw_ns: u64,
    /// Completed cycles since the program started (mstats.numgc).
    pub total_cycles: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Lifecycle {
    pub created: u64,
    pub exited: u64,
    /// Probe events lost in the interval (a full ring): the counts above miss that many.
    pub lost: u64,
    /// Creations by site (`function file:line` of the go statement), most first.
    pub created_by_site: Vec<(String, u64)>,
    /// Creations by the creating goroutine's start function, most first.
    pub created_by_parent: Vec<(String, u64)>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Latency {
    /// Goroutines that went from runnable to running in the interval.
    pub samples: u64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
}

/// One `--with` probe set's cost, from the kernel's accounting of its BPF programs' run time
/// (bpf_stats): the programs' bodies, not the uprobe trap around each (about a microsecond).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProbeCost {
    pub name: String,
    /// Program runs. Each `None` where the kernel keeps no accounting (kernels before 5.8).
    pub hits: Option<u64>,
    pub hits_per_s: Option<f64>,
    pub ns_per_hit: Option<f64>,
    /// Percent of one CPU.
    pub cpu_pct: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ProcRow {
    pub p: i32,
    pub status: &'static str,
    pub m: Option<i64>,
    /// The goroutine its M runs now.
    pub goid: Option<u64>,
    pub start_function: Option<Arc<str>>,
    pub runq: u32,
    /// Percent of one CPU, from the interval's samples on this P.
    pub cpu_pct: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct ThreadCounts {
    pub total: usize,
    /// Since the previous frame.
    pub change: i64,
    /// With a goroutine that is not in a system call.
    pub running: usize,
    /// Without a goroutine and not looking for one.
    pub idle: usize,
    pub spinning: usize,
    /// With a goroutine in a system call (or a cgo call).
    pub syscall: usize,
    /// Goroutines wired to their thread (runtime.LockOSThread).
    pub locked: usize,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct GoroutineCounts {
    pub total: usize,
    /// Since the previous frame.
    pub change: i64,
    /// Goroutines alive now and not at the previous read (their goid is new), and alive then
    /// and gone now, per second of the interval. One born and gone between two reads is in
    /// neither, so both are lower bounds; `created - exited` is always `change`.
    pub created_per_sec: f64,
    pub exited_per_sec: f64,
    /// Go's status names, most first.
    pub by_state: Vec<(String, usize)>,
    pub by_wait: Vec<WaitRow>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct WaitRow {
    pub reason: String,
    pub count: usize,
    /// The longest waiter whose waiting time the runtime has stamped (it does so at GC).
    pub oldest: Option<(u64, u64)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteRow {
    /// `function file:line` of the `go` statement.
    pub site: String,
    pub live: usize,
    pub since_attach: i64,
    /// Over the last frames the leak test looks at.
    pub recent: i64,
    /// Rose at every one of the last frames.
    pub leak: bool,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct CpuPanel {
    pub samples: u64,
    pub rate_hz: u64,
    pub by_start_function: Vec<(String, u64)>,
    pub by_function: Vec<(String, u64)>,
}

/// How the sites panel is sorted (`s` cycles).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SiteSort {
    #[default]
    Live,
    SinceAttach,
    Recent,
    Name,
}

impl SiteSort {
    pub fn next(self) -> SiteSort {
        match self {
            SiteSort::Live => SiteSort::SinceAttach,
            SiteSort::SinceAttach => SiteSort::Recent,
            SiteSort::Recent => SiteSort::Name,
            SiteSort::Name => SiteSort::Live,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SiteSort::Live => "live",
            SiteSort::SinceAttach => "change since attach",
            SiteSort::Recent => "recent change",
            SiteSort::Name => "name",
        }
    }

    pub fn apply(self, rows: &mut [SiteRow]) {
        rows.sort_by(|a, b| self.order(a, b));
    }

    /// The panel's order: the key, then the site's name.
    pub fn order(self, a: &SiteRow, b: &SiteRow) -> std::cmp::Ordering {
        let key = match self {
            SiteSort::Live => b.live.cmp(&a.live),
            SiteSort::SinceAttach => b.since_attach.cmp(&a.since_attach),
            SiteSort::Recent => b.recent.cmp(&a.recent),
            SiteSort::Name => std::cmp::Ordering::Equal,
        };
        key.then(a.site.cmp(&b.site))
    }
}

/// What one frame needs from the ones before it.
#[derive(Debug, Default)]
pub struct History {
    /// Counts per site at the first state read.
    attach: Option<HashMap<String, usize>>,
    /// Counts per site of the last `leak_frames + 1` reads (attach included), oldest first.
    recent: VecDeque<HashMap<String, usize>>,
    prev_goroutines: Option<usize>,
    /// The goids of the previous read, ascending.
    prev_goids: Option<Vec<u64>>,
    prev_threads: Option<usize>,
    seq: u64,
    lost_total: u64,
    /// How many consecutive rises make a `leak?`.
    pub leak_frames: usize,
}

impl History {
    pub fn new(leak_frames: usize) -> History {
        History {
            leak_frames: leak_frames.max(1),
            ..History::default()
        }
    }

    /// The attach-time read: the reference for "since attach" (not a frame of its own).
    pub fn baseline(&mut self, d: &Dump) {
        let sites = site_counts(&d.goroutines);
        self.attach = Some(sites.clone());
        self.recent.push_back(sites);
        self.prev_goroutines = Some(d.goroutines.len());
        self.prev_goids = Some(goids(d));
        self.prev_threads = Some(d.threads.len());
    }

    /// The next frame from a state read and the interval's samples.
    pub fn frame(&mut self, d: &Dump, hits: &[Hit], interval: Cpu, lost: u64) -> Frame {
        if self.attach.is_none() {
            self.baseline(d);
        }
        self.seq += 1;
        self.lost_total += lost;
        let sites = site_counts(&d.goroutines);
        self.recent.push_back(sites.clone());
        while self.recent.len() > self.leak_frames + 1 {
            self.recent.pop_front();
        }
        let total = d.goroutines.len();
        let now = goids(d);
        let (created, exited) = match &self.prev_goids {
            Some(before) => born_and_gone(before, &now),
            None => (0, 0),
        };
        self.prev_goids = Some(now);
        let per_sec = |n: usize| {
            if interval.secs > 0.0 {
                n as f64 / interval.secs
            } else {
                0.0
            }
        };
        let goroutines = GoroutineCounts {
            total,
            change: diff(total, self.prev_goroutines.replace(total)),
            created_per_sec: per_sec(created),
            exited_per_sec: per_sec(exited),
            ..goroutine_counts(&d.goroutines)
        };
        let mut threads = thread_counts(d);
        threads.change = diff(threads.total, self.prev_threads.replace(threads.total));
        Frame {
            seq: self.seq,
            interval_ms: interval.secs_ms(),
            read_ms: d.duration_ns as f64 / 1e6,
            read_problem: d.incomplete.clone(),
            procs: proc_rows(d, hits, &interval),
            global_runq: None,
            threads,
            goroutines,
            sites: self.site_rows(&sites),
            cpu: cpu_panel(hits, interval.rate_hz),
            lost_samples: lost,
            lost_samples_total: self.lost_total,
            ..Frame::default()
        }
    }

    fn site_rows(&self, now: &HashMap<String, usize>) -> Vec<SiteRow> {
        let empty = HashMap::new();
        let attach = self.attach.as_ref().unwrap_or(&empty);
        let oldest = self.recent.front().unwrap_or(&empty);
        // A leak needs the whole window: leak_frames rises in a row.
        let full = self.recent.len() == self.leak_frames + 1;
        let mut rows: Vec<SiteRow> = now
            .iter()
            .map(|(site, &live)| {
                let rising = full
                    && self
                        .recent
                        .iter()
                        .zip(self.recent.iter().skip(1))
                        .all(|(a, b)| at(b, site) > at(a, site));
                SiteRow {
                    site: site.clone(),
                    live,
                    since_attach: diff(live, Some(at(attach, site))),
                    recent: diff(live, Some(at(oldest, site))),
                    leak: rising,
                }
            })
            .collect();
        SiteSort::Live.apply(&mut rows);
        rows
    }
}

/// The sampling interval's length and rate, for CPU shares.
#[derive(Clone, Copy, Debug)]
pub struct Cpu {
    pub secs: f64,
    pub rate_hz: u64,
}

impl Cpu {
    fn secs_ms(&self) -> u64 {
        (self.secs * 1000.0).round() as u64
    }

    /// `n` samples as percent of one CPU over the interval.
    fn pct(&self, n: u64) -> f64 {
        let expected = self.secs * self.rate_hz as f64;
        if expected > 0.0 {
            n as f64 * 100.0 / expected
        } else {
            0.0
        }
    }
}

fn at(m: &HashMap<String, usize>, k: &str) -> usize {
    m.get(k).copied().unwrap_or(0)
}

fn diff(now: usize, before: Option<usize>) -> i64 {
    before.map_or(0, |b| now as i64 - b as i64)
}

/// `function file:line` of where the goroutine was created; the main goroutine has none.
pub fn site_of(g: &Goroutine) -> Option<String> {
    let c = g.created_by.as_ref()?;
    Some(site_name(&c.function, &c.file, c.line))
}

/// A creation site as the panels name it: the function, the file's base name and the line.
pub fn site_name(function: &str, file: &str, line: u32) -> String {
    let file = file.rsplit('/').next().unwrap_or(file);
    format!("{function} {file}:{line}")
}

fn goids(d: &Dump) -> Vec<u64> {
    let mut v: Vec<u64> = d.goroutines.iter().map(|g| g.goid).collect();
    v.sort_unstable();
    v
}

/// How many of `now` are not in `before`, and of `before` not in `now` (both ascending).
fn born_and_gone(before: &[u64], now: &[u64]) -> (usize, usize) {
    let (mut i, mut j, mut born, mut gone) = (0, 0, 0, 0);
    while i < before.len() && j < now.len() {
        match before[i].cmp(&now[j]) {
            std::cmp::Ordering::Less => (gone, i) = (gone + 1, i + 1),
            std::cmp::Ordering::Greater => (born, j) = (born + 1, j + 1),
            std::cmp::Ordering::Equal => (i, j) = (i + 1, j + 1),
        }
    }
    (born + now.len() - j, gone + before.len() - i)
}

fn site_counts(gs: &[Goroutine]) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for site in gs.iter().filter_map(site_of) {
        *m.entry(site).or_insert(0) += 1;
    }
    m
}

/// States and wait reasons of `gs` (the filter's view counts a subset).
pub fn goroutine_counts<'g>(gs: impl IntoIterator<Item = &'g Goroutine>) -> GoroutineCounts {
    let mut states: BTreeMap<&str, usize> = BTreeMap::new();
    let mut waits: BTreeMap<&str, WaitRow> = BTreeMap::new();
    for g in gs {
        *states.entry(g.status).or_insert(0) += 1;
        // g.waitreason stays set after the wait ends: it is the state only while waiting (as
        // Go's own traceback header reads it; 1.26's leaked goroutines are waiting forever).
        let Some(reason) = g
            .wait_reason
            .filter(|_| matches!(g.status, "waiting" | "leaked"))
        else {
            continue;
        };
        let row = waits.entry(reason).or_insert_with(|| WaitRow {
            reason: reason.to_string(),
            ..WaitRow::default()
        });
        row.count += 1;
        if let Some(ns) = g.waiting_ns {
            if row.oldest.is_none_or(|(_, o)| ns > o) {
                row.oldest = Some((g.goid, ns));
            }
        }
    }
    let mut by_state: Vec<(String, usize)> = states
        .into_iter()
        .map(|(s, n)| (s.to_string(), n))
        .collect();
    by_state.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let mut by_wait: Vec<WaitRow> = waits.into_values().collect();
    by_wait.sort_by(|a, b| b.count.cmp(&a.count).then(a.reason.cmp(&b.reason)));
    GoroutineCounts {
        by_state,
        by_wait,
        ..GoroutineCounts::default()
    }
}

pub fn thread_counts(d: &Dump) -> ThreadCounts {
    let status: HashMap<u64, &str> = d.goroutines.iter().map(|g| (g.goid, g.status)).collect();
    let mut c = ThreadCounts {
        total: d.threads.len(),
        locked: d.goroutines.iter().filter(|g| g.locked_to_thread).count(),
        ..ThreadCounts::default()
    };
    for t in &d.threads {
        match t.curg {
            _ if t.spinning => c.spinning += 1,
            Some(g) if status.get(&g) == Some(&"syscall") => c.syscall += 1,
            Some(_) => c.running += 1,
            None => c.idle += 1,
        }
    }
    c
}

fn proc_rows(d: &Dump, hits: &[Hit], interval: &Cpu) -> Vec<ProcRow> {
    let curg: HashMap<i64, Option<u64>> = d.threads.iter().map(|t| (t.m, t.curg)).collect();
    let start: HashMap<u64, Option<Arc<str>>> = d
        .goroutines
        .iter()
        .map(|g| (g.goid, g.start_function.clone()))
        .collect();
    let mut on_p: HashMap<i32, u64> = HashMap::new();
    for h in hits {
        *on_p.entry(h.p).or_insert(0) += 1;
    }
    d.procs
        .iter()
        .map(|p| {
            let goid = p.m.and_then(|m| curg.get(&m).copied().flatten());
            ProcRow {
                p: p.p,
                status: p.status,
                m: p.m,
                goid,
                start_function: goid.and_then(|g| start.get(&g).cloned().flatten()),
                runq: p.runq,
                cpu_pct: interval.pct(on_p.get(&p.p).copied().unwrap_or(0)),
            }
        })
        .collect()
}

fn cpu_panel(hits: &[Hit], rate_hz: u64) -> CpuPanel {
    let mut by_start: HashMap<&str, u64> = HashMap::new();
    let mut by_func: HashMap<&str, u64> = HashMap::new();
    for h in hits {
        *by_start
            .entry(h.start.as_deref().unwrap_or("(scheduler)"))
            .or_insert(0) += 1;
        *by_func.entry(&h.function).or_insert(0) += 1;
    }
    CpuPanel {
        samples: hits.len() as u64,
        rate_hz,
        by_start_function: ranked(by_start),
        by_function: ranked(by_func),
    }
}

pub fn ranked(m: HashMap<&str, u64>) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = m.into_iter().map(|(k, n)| (k.to_string(), n)).collect();
    v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::dump::{CreatedBy, Proc, Thread};

    fn g(goid: u64, status: &'static str, site: Option<(&str, u32)>) -> Goroutine {
        Goroutine {
            goid,
            status,
            wait_reason: (status == "waiting").then_some("chan receive"),
            waiting_ns: Some(goid * 10),
            created_by: site.map(|(f, line)| CreatedBy {
                function: f.into(),
                file: "/src/main.go".into(),
                line,
                ..CreatedBy::default()
            }),
            ..Goroutine::default()
        }
    }

    fn dump(leaky: usize) -> Dump {
        let mut gs = vec![g(1, "running", None)];
        for i in 0..4 {
            gs.push(g(10 + i, "waiting", Some(("main.pool", 7))));
        }
        for i in 0..leaky as u64 {
            gs.push(g(100 + i, "waiting", Some(("main.leak", 9))));
        }
        Dump {
            goroutines: gs,
            threads: vec![
                Thread {
                    m: 0,
                    curg: Some(1),
                    p: Some(0),
                    ..Thread::default()
                },
                Thread {
                    m: 1,
                    spinning: true,
                    ..Thread::default()
                },
            ],
            procs: vec![Proc {
                p: 0,
                status: "running",
                m: Some(0),
                runq: 2,
            }],
            ..Dump::default()
        }
    }

    const CPU: Cpu = Cpu {
        secs: 1.0,
        rate_hz: 100,
    };

    #[test]
    fn a_site_that_only_grows_is_a_leak_and_a_steady_one_is_not() {
        let mut h = History::new(3);
        h.baseline(&dump(1));
        let mut last = Frame::default();
        for (i, n) in [2, 3, 4].into_iter().enumerate() {
            last = h.frame(&dump(n), &[], CPU, 0);
            let leak = last.sites.iter().find(|s| s.site == "main.leak main.go:9");
            // Three rises are needed: not before the third frame.
            assert_eq!(leak.map(|s| s.leak), Some(i == 2), "frame {}", i + 1);
        }
        let pool = last.sites.iter().find(|s| s.site == "main.pool main.go:7");
        assert_eq!(
            pool.map(|s| (s.live, s.since_attach, s.leak)),
            Some((4, 0, false))
        );
        let leak = &last.sites[0];
        assert_eq!((leak.live, leak.since_attach, leak.recent), (4, 3, 3));
        // A pause in growth clears the flag.
        let f = h.frame(&dump(4), &[], CPU, 0);
        assert!(!f.sites.iter().any(|s| s.leak));
    }

    #[test]
    fn counts_threads_states_and_cpu() {
        let mut h = History::new(3);
        let hits = vec![
            Hit {
                p: 0,
                start: Some("main.main".into()),
                function: "main.spin".into(),
            };
            50
        ];
        let f = h.frame(&dump(2), &hits, CPU, 7);
        assert_eq!(f.goroutines.total, 7);
        assert_eq!(f.goroutines.by_state[0], ("waiting".to_string(), 6));
        assert_eq!(f.goroutines.by_wait[0].count, 6);
        assert_eq!(f.goroutines.by_wait[0].oldest, Some((101, 1010)));
        assert_eq!((f.threads.running, f.threads.spinning), (1, 1));
        assert_eq!(f.procs[0].goid, Some(1));
        assert!((f.procs[0].cpu_pct - 50.0).abs() < 1e-9);
        assert_eq!(f.cpu.by_function, vec![("main.spin".to_string(), 50)]);
        assert_eq!((f.lost_samples, f.lost_samples_total), (7, 7));
    }

    #[test]
    fn a_wait_reason_counts_only_while_waiting() {
        // Just woken: runnable, with the reason it waited for still in g.waitreason.
        let mut woken = g(7, "runnable", None);
        woken.wait_reason = Some("chan receive");
        let gs = [g(5, "waiting", None), woken];
        let c = goroutine_counts(&gs);
        assert_eq!(c.by_wait.len(), 1);
        assert_eq!(
            (c.by_wait[0].reason.as_str(), c.by_wait[0].count),
            ("chan receive", 1)
        );
    }

    #[test]
    fn created_and_exited_come_from_goids_seen_and_gone() {
        let mut h = History::new(3);
        h.baseline(&dump(3));
        let two = Cpu { secs: 2.0, ..CPU };
        // Two more leaked goroutines: created 2 in 2 s, none gone.
        let f = h.frame(&dump(5), &[], two, 0);
        assert_eq!(f.goroutines.change, 2);
        assert_eq!(
            (f.goroutines.created_per_sec, f.goroutines.exited_per_sec),
            (1.0, 0.0)
        );
        // The leaked 100..105 replaced by 200..201: 2 new, 5 gone, and change says -3.
        let mut d = dump(0);
        d.goroutines.push(g(200, "waiting", Some(("main.leak", 9))));
        d.goroutines.push(g(201, "waiting", Some(("main.leak", 9))));
        let f = h.frame(&d, &[], CPU, 0);
        assert_eq!(f.goroutines.change, -3);
        assert_eq!(
            (f.goroutines.created_per_sec, f.goroutines.exited_per_sec),
            (2.0, 5.0)
        );
        assert_eq!(born_and_gone(&[1, 2, 3], &[]), (0, 3));
        assert_eq!(born_and_gone(&[], &[4]), (1, 0));
    }
}
