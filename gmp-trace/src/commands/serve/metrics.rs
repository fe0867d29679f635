//! The watched processes' readings as OpenMetrics text, with the `prometheus-client` crate.
//! The text is made once per pass by the reader thread, from a registry built afresh from what
//! is watched now: a process dropped after its grace period is simply not in the next registry,
//! so no series outlives its process by more than the grace. A scrape only copies the last text.
//!
//! Every per-process series carries `pid`, `exe`, `go_version` and, when the cgroup names one,
//! `container`. docs/serve.md lists the metrics; tests/tests/serve.rs checks the names the
//! Grafana dashboard in deploy/ queries against what this file registers.
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use super::hist::HistFamily;
use super::read::Reading;
use super::watch::{Watched, Watcher};

type Labels = Vec<(String, String)>;
type G = Family<Labels, Gauge<f64, AtomicU64>>;
type C = Family<Labels, Counter<f64, AtomicU64>>;

/// Bounds of the read-duration histogram, in seconds.
const READ_BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
];

/// What lives across passes: the read-duration histogram (a real distribution of every read).
pub struct Exporter {
    reads: Histogram,
}

impl Default for Exporter {
    fn default() -> Self {
        Exporter {
            reads: Histogram::new(READ_BUCKETS),
        }
    }
}

/// One metric family of the registry being built, by name.
struct Families {
    gauges: Vec<(&'static str, &'static str, G)>,
    counters: Vec<(&'static str, &'static str, C)>,
    latency: HistFamily,
}

impl Families {
    fn gauge(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        let f = match self.gauges.iter().position(|(n, _, _)| *n == name) {
            Some(i) => &self.gauges[i].2,
            None => {
                self.gauges.push((name, help, G::default()));
                &self.gauges[self.gauges.len() - 1].2
            }
        };
        f.get_or_create(&labels).set(v);
    }

    /// `name` without `_total`: the encoder adds it, as OpenMetrics wants.
    fn counter(&mut self, name: &'static str, help: &'static str, labels: Labels, v: f64) {
        let f = match self.counters.iter().position(|(n, _, _)| *n == name) {
            Some(i) => &self.counters[i].2,
            None => {
                self.counters.push((name, help, C::default()));
                &self.counters[self.counters.len() - 1].2
            }
        };
        f.get_or_create(&labels).inc_by(v.max(0.0));
    }
}

impl Exporter {
    /// The text of everything `w` knows now.
    pub fn render(&mut self, w: &Watcher) -> String {
        for d in &w.agent.read_durations {
            self.reads.observe(*d);
        }
        let mut f = Families {
            gauges: Vec::new(),
            counters: Vec::new(),
            latency: HistFamily::default(),
        };
        for p in w.procs.values() {
            process(&mut f, p);
        }
        agent(&mut f, w);
        let mut reg = Registry::default();
        for (name, help, fam) in f.gauges {
            reg.register(name, help, fam);
        }
        for (name, help, fam) in f.counters {
            reg.register(name, help, fam);
        }
        if !f.latency.0.is_empty() {
            reg.register(
                "gmptrace_sched_latency_seconds",
                "Scheduling latency, runnable to running (--with sched; since the probes went on)",
                f.latency,
            );
        }
        reg.register(
            "gmptrace_agent_read_duration_seconds",
            "How long one process's read took (runtime memory, globals, /proc)",
            self.reads.clone(),
        );
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would be a bug of ours, and an
        // empty page is the honest answer to it.
        if encode(&mut out, &reg).is_err() {
            log::error!("encoding the metrics failed");
            out.clear();
        }
        out
    }
}

/// pid, exe, go_version, container: every per-process series has them.
fn base(p: &Watched) -> Labels {
    let mut l = vec![
        ("pid".to_string(), p.id.pid.to_string()),
        ("exe".to_string(), p.id.exe.to_string_lossy().into_owned()),
        ("go_version".to_string(), p.id.go_version.clone()),
    ];
    if let Some(c) = &p.id.container_id {
        l.push(("container".to_string(), c.clone()));
    }
    l
}

fn with(mut l: Labels, k: &str, v: &str) -> Labels {
    l.push((k.to_string(), v.to_string()));
    l
}

fn process(f: &mut Families, p: &Watched) {
    let b = base(p);
    let mut info = b.clone();
    info.push(("comm".into(), p.id.comm.clone()));
    info.push((
        "module".into(),
        p.id.module_path.clone().unwrap_or_default(),
    ));
    if let Some(n) = p.id.ns_pid {
        info.push(("ns_pid".into(), n.to_string()));
    }
    f.gauge(
        "gmptrace_process_info",
        "A watched Go process (always 1); its identity is in the labels",
        info,
        1.0,
    );
    let up = if p.gone_at.is_none() { 1.0 } else { 0.0 };
    f.gauge(
        "gmptrace_process_up",
        "1 while the process runs, 0 once it exited (its series stay for the grace period)",
        b.clone(),
        up,
    );
    if let Some(t) = p.start_time {
        f.gauge(
            "gmptrace_process_start_time_seconds",
            "When the process started, seconds since the Unix epoch",
            b.clone(),
            t,
        );
    }
    f.counter(
        "gmptrace_read_failures",
        "Reads of the process's memory that failed (the last good values stay published)",
        b.clone(),
        p.read_failures as f64,
    );
    if let Some(r) = &p.last {
        reading(f, &b, r);
    }
}

/// The goroutines of one reading, then the rest.
fn reading(f: &mut Families, b: &Labels, r: &Reading) {
    const GOROUTINES: &str =
        "Goroutines by state (user goroutines, as runtime.NumGoroutine counts them)";
    for (state, n) in &r.goroutines {
        f.gauge(
            "gmptrace_goroutines",
            GOROUTINES,
            with(b.clone(), "state", state),
            *n as f64,
        );
    }
    if r.goroutines.is_empty() {
        f.gauge(
            "gmptrace_goroutines",
            GOROUTINES,
            with(b.clone(), "state", "running"),
            0.0,
        );
    }
    for (reason, n) in &r.waiting {
        f.gauge(
            "gmptrace_goroutines_waiting",
            "Waiting user goroutines by the runtime's wait reason",
            with(b.clone(), "reason", reason),
            *n as f64,
        );
    }
    f.gauge(
        "gmptrace_goroutines_system",
        "The runtime's own goroutines (GC workers, finalizer, ...)",
        b.clone(),
        r.system_goroutines as f64,
    );
    if let (Some(c), Some(e)) = (r.created_total, r.exited_total) {
        f.counter(
            "gmptrace_goroutines_created",
            "Goroutines created since the process started (runtime.sched.goidgen less the Ps' unused goid caches)",
            b.clone(),
            c as f64,
        );
        f.counter(
            "gmptrace_goroutines_exited",
            "Goroutines that exited since the process started (created less alive)",
            b.clone(),
            e as f64,
        );
    }
    threads_and_procs(f, b, r);
    totals(f, b, r);
}

/// Ms, Ps and the run queues at the read.
fn threads_and_procs(f: &mut Families, b: &Labels, r: &Reading) {
    let t = &r.threads;
    for (state, n) in [
        ("running", t.running),
        ("syscall", t.syscall),
        ("spinning", t.spinning),
        ("idle", t.idle),
    ] {
        f.gauge(
            "gmptrace_threads",
            "The runtime's threads (Ms) by state",
            with(b.clone(), "state", state),
            n as f64,
        );
    }
    f.gauge(
        "gmptrace_threads_locked",
        "Goroutines wired to their thread (runtime.LockOSThread)",
        b.clone(),
        t.locked as f64,
    );
    for (state, n) in &r.procs {
        f.gauge(
            "gmptrace_procs",
            "Ps by status",
            with(b.clone(), "state", state),
            *n as f64,
        );
    }
    f.gauge(
        "gmptrace_gomaxprocs",
        "GOMAXPROCS: the number of Ps",
        b.clone(),
        r.gomaxprocs as f64,
    );
    let running = r
        .procs
        .iter()
        .find(|(s, _)| *s == "running")
        .map_or(0, |(_, n)| *n);
    f.gauge(
        "gmptrace_p_utilization_ratio",
        "Share of the Ps running Go code at the read (a point sample, 0..1)",
        b.clone(),
        if r.gomaxprocs > 0 {
            running as f64 / r.gomaxprocs as f64
        } else {
            0.0
        },
    );
    const RUNQ: &str = "Runnable goroutines waiting in the run queues";
    f.gauge(
        "gmptrace_runqueue_goroutines",
        RUNQ,
        with(b.clone(), "queue", "local"),
        r.runq_local as f64,
    );
    if let Some(g) = r.runq_global {
        f.gauge(
            "gmptrace_runqueue_goroutines",
            RUNQ,
            with(b.clone(), "queue", "global"),
            f64::from(g),
        );
    }
}

/// The counters: GC, CPU, the probes' histogram and cost, and what the read missed.
fn totals(f: &mut Families, b: &Labels, r: &Reading) {
    if let Some(n) = r.gc_cycles_total {
        f.counter(
            "gmptrace_gc_cycles",
            "Completed GC cycles (runtime.memstats.numgc)",
            b.clone(),
            n as f64,
        );
    }
    if let Some(s) = r.gc_stw_seconds_total {
        f.counter(
            "gmptrace_gc_stw_seconds",
            "Stop-the-world pause time of the GC (runtime.memstats.pause_total_ns)",
            b.clone(),
            s,
        );
    }
    const CPU: &str = "CPU time of the process (/proc/PID/stat)";
    f.counter(
        "gmptrace_process_cpu_seconds",
        CPU,
        with(b.clone(), "mode", "user"),
        r.cpu_user_seconds,
    );
    f.counter(
        "gmptrace_process_cpu_seconds",
        CPU,
        with(b.clone(), "mode", "system"),
        r.cpu_system_seconds,
    );
    if let Some(h) = &r.sched_latency {
        f.latency.0.push((b.clone(), h.clone()));
    }
    if let Some(s) = r.probe_seconds {
        f.counter(
            "gmptrace_agent_probe_seconds",
            "BPF run time of the --with probes on this process (the kernel's accounting)",
            b.clone(),
            s,
        );
    }
    if let Some(n) = r.probe_hits {
        f.counter(
            "gmptrace_agent_probe_hits",
            "Runs of the --with probes on this process (one uprobe trap each)",
            b.clone(),
            n as f64,
        );
    }
    f.gauge(
        "gmptrace_read_torn_goroutines",
        "Goroutines left out of the last read because they changed while read (lost to the race)",
        b.clone(),
        r.torn_reads as f64,
    );
}

fn agent(f: &mut Families, w: &Watcher) {
    let a = &w.agent;
    let (alive, gone) = w.procs.values().fold((0, 0), |(a, g), p| match p.gone_at {
        None => (a + 1, g),
        Some(_) => (a, g + 1),
    });
    const PROCS: &str = "Processes with series: running, and exited within the grace period";
    f.gauge(
        "gmptrace_agent_processes",
        PROCS,
        vec![("state".into(), "running".into())],
        alive as f64,
    );
    f.gauge(
        "gmptrace_agent_processes",
        PROCS,
        vec![("state".into(), "exited".into())],
        gone as f64,
    );
    f.counter(
        "gmptrace_agent_processes_seen",
        "Go processes found since the agent started",
        Vec::new(),
        a.processes_seen as f64,
    );
    f.gauge(
        "gmptrace_agent_unreadable_processes",
        "Processes the last scan could not inspect (/proc/PID/exe unreadable)",
        Vec::new(),
        a.unreadable as f64,
    );
    f.counter(
        "gmptrace_agent_passes",
        "Passes over the watched processes",
        Vec::new(),
        a.passes as f64,
    );
    f.gauge(
        "gmptrace_agent_pass_duration_seconds",
        "How long the last pass (scan and every read) took",
        Vec::new(),
        a.pass_seconds,
    );
    if let Some((user, system)) = super::read::cpu_seconds(std::process::id()) {
        const CPU: &str = "The agent's own CPU time";
        f.counter(
            "gmptrace_agent_cpu_seconds",
            CPU,
            vec![("mode".into(), "user".into())],
            user,
        );
        f.counter(
            "gmptrace_agent_cpu_seconds",
            CPU,
            vec![("mode".into(), "system".into())],
            system,
        );
    }
}

/// The same page in Prometheus's text format 0.0.4, for clients that do not ask for
/// OpenMetrics (curl, `promtool check metrics`, older scrapers): there a counter's family is
/// named with its `_total` (OpenMetrics names it without), and there is no `# EOF` or `# UNIT`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(l) => out.push_str(&l),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_get_their_total_in_the_text_format() {
        let om = "# HELP a_b Things.\n# TYPE a_b counter\na_b_total{x=\"1\"} 2.0\n\
                  # HELP c A gauge.\n# TYPE c gauge\nc 1.0\n# EOF\n";
        let t = prometheus_text(om);
        assert_eq!(
            t,
            "# HELP a_b_total Things.\n# TYPE a_b_total counter\na_b_total{x=\"1\"} 2.0\n\
             # HELP c A gauge.\n# TYPE c gauge\nc 1.0\n"
        );
    }
}
