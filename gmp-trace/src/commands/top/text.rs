//! The panels of a [`Frame`] as lines of text: the batch mode prints them one frame after the
//! other (like `top -b`), the TUI puts each panel's lines in a box of its own, so both views
//! always say the same thing. Also the `--summary-json` document.
use std::io::Write;

use serde_json::{json, Value};

use super::frame::{Frame, GcInterval, Latency, ProbeCost, SiteRow, SiteSort, WaitRow};

/// How many rows a list panel shows.
#[derive(Clone, Copy)]
pub struct Limits {
    pub sites: usize,
    pub cpu: usize,
    pub waits: usize,
}

pub fn title(f: &Frame, who: &str, paused: bool) -> String {
    format!(
        "gmp-trace top - {who} - frame {} - every {} ms{}",
        f.seq,
        f.interval_ms,
        if paused { " - PAUSED" } else { "" }
    )
}

pub fn procs(f: &Frame) -> Vec<String> {
    let mut out = vec![format!(
        "{:>3}  {:<8} {:>4} {:>8}  {:>4} {:>6}  {}",
        "P", "status", "M", "G", "runq", "cpu%", "start function"
    )];
    for p in &f.procs {
        out.push(format!(
            "{:>3}  {:<8} {:>4} {:>8}  {:>4} {:>6.1}  {}",
            p.p,
            p.status,
            opt(p.m),
            opt(p.goid),
            p.runq,
            p.cpu_pct,
            p.start_function.as_deref().unwrap_or("-")
        ));
    }
    out.push(format!("global run queue: {}", opt(f.global_runq)));
    out
}

pub fn threads(f: &Frame) -> Vec<String> {
    let t = &f.threads;
    vec![format!(
        "Ms: {} threads ({}): {} running, {} idle, {} spinning, {} in syscall, {} locked",
        t.total,
        signed(t.change),
        t.running,
        t.idle,
        t.spinning,
        t.syscall,
        t.locked
    )]
}

pub fn goroutines(f: &Frame, limits: &Limits) -> Vec<String> {
    let g = &f.goroutines;
    let states: Vec<String> = g.by_state.iter().map(|(s, n)| format!("{s} {n}")).collect();
    let mut out = vec![
        goroutines_head(f),
        format!("  by state: {}", states.join(", ")),
    ];
    out.extend(probe_lines(f));
    out.push(wait_head());
    for w in g.by_wait.iter().take(limits.waits) {
        out.push(wait_line(w));
    }
    out
}

/// GC from memory, and what `--with` probes counted: creations and exits, scheduling latency.
pub fn probe_lines(f: &Frame) -> Vec<String> {
    let mut out = vec![match &f.gc {
        Some(gc) => format!(
            "  GC: {} cycles, {:.1} ms STW in the last interval",
            gc.cycles,
            gc.stw_ns as f64 / 1e6
        ),
        None => "  GC: n/a (no runtime.memstats symbol: a stripped binary)".to_string(),
    }];
    if let Some(l) = &f.lifecycle {
        let lost = if l.lost > 0 {
            format!(", {} probe events lost", l.lost)
        } else {
            String::new()
        };
        out.push(format!(
            "  created {}, exited {} in the interval{lost}",
            l.created, l.exited
        ));
        for (head, rows) in [
            ("created at", &l.created_by_site),
            ("created by", &l.created_by_parent),
        ] {
            let top: Vec<String> = rows
                .iter()
                .take(3)
                .map(|(s, n)| format!("{n} {s}"))
                .collect();
            if !top.is_empty() {
                out.push(format!("    {head}: {}", top.join(", ")));
            }
        }
    }
    if let Some(l) = &f.latency {
        out.push(format!("  sched latency, {} runs:", l.samples));
        out.push(format!(
            "    p50 {} p90 {} p99 {} max {}",
            dur(l.p50_ns),
            dur(l.p90_ns),
            dur(l.p99_ns),
            dur(l.max_ns)
        ));
    }
    out
}

/// `Goroutines: N (+change), created X/s, exited Y/s`.
pub fn goroutines_head(f: &Frame) -> String {
    let g = &f.goroutines;
    format!(
        "Goroutines: {} ({}), created {:.1}/s, exited {:.1}/s",
        g.total,
        signed(g.change),
        g.created_per_sec,
        g.exited_per_sec
    )
}

pub fn wait_head() -> String {
    format!("  {:>7}  {:<28} oldest waiter", "count", "wait reason")
}

pub fn wait_line(w: &WaitRow) -> String {
    let oldest = w.oldest.map_or("-".to_string(), |(goid, ns)| {
        format!("goroutine {goid}, {}", secs(ns))
    });
    format!("  {:>7}  {:<28} {oldest}", w.count, w.reason)
}

/// Whether a function name passes the filter (a plain substring; no filter passes all).
pub fn passes(name: &str, filter: Option<&str>) -> bool {
    filter.is_none_or(|f| name.contains(f))
}

/// The sites in `sort` order whose creating function passes `filter`.
pub fn sorted_sites<'f>(f: &'f Frame, sort: SiteSort, filter: Option<&str>) -> Vec<&'f SiteRow> {
    let mut rows: Vec<&SiteRow> = f
        .sites
        .iter()
        .filter(|r| passes(r.site.split(' ').next().unwrap_or(""), filter))
        .collect();
    rows.sort_by(|a, b| sort.order(a, b));
    rows
}

pub fn sites_head(sort: SiteSort) -> [String; 2] {
    [
        format!("Creation sites (by {}):", sort.name()),
        format!(
            "  {:>7} {:>7} {:>7}  {:<5}  created by",
            "live", "attach", "recent", "flag"
        ),
    ]
}

pub fn site_line(s: &SiteRow) -> String {
    format!(
        "  {:>7} {:>7} {:>7}  {:<5}  {}",
        s.live,
        signed(s.since_attach),
        signed(s.recent),
        if s.leak { "leak?" } else { "" },
        s.site
    )
}

pub fn sites(f: &Frame, sort: SiteSort, limits: &Limits) -> Vec<String> {
    let rows = sorted_sites(f, sort, None);
    let mut out = sites_head(sort).to_vec();
    for s in rows.iter().take(limits.sites) {
        out.push(site_line(s));
    }
    if rows.len() > limits.sites {
        out.push(format!("  ... {} more sites", rows.len() - limits.sites));
    }
    out
}

/// The CPU panel; with a filter, only the functions that pass it.
pub fn cpu(f: &Frame, limits: &Limits, filter: Option<&str>) -> Vec<String> {
    let c = &f.cpu;
    let mut out = vec![format!(
        "CPU: {} samples at {} Hz in the interval",
        c.samples, c.rate_hz
    )];
    let share = |n: u64| 100.0 * n as f64 / c.samples.max(1) as f64;
    for (head, rows) in [
        ("by start function", &c.by_start_function),
        ("by function", &c.by_function),
    ] {
        out.push(format!("  {head}:"));
        let shown = rows.iter().filter(|(name, _)| passes(name, filter));
        for (name, n) in shown.take(limits.cpu) {
            out.push(format!("  {:>6.1}% {:>6}  {name}", share(*n), n));
        }
    }
    out
}

pub fn footer(f: &Frame) -> String {
    let read = match &f.read_problem {
        Some(why) => format!("state read: {:.1} ms, partial ({why})", f.read_ms),
        None => format!("state read: {:.1} ms", f.read_ms),
    };
    format!(
        "samples lost: {} ({} since attach) - {read} - interval {} ms",
        f.lost_samples, f.lost_samples_total, f.interval_ms
    )
}

/// The probes attached and their cost in the interval; `None` without `--with`.
pub fn probes_footer(f: &Frame) -> Option<String> {
    if f.probes.is_empty() {
        return None;
    }
    let sets: Vec<String> = f
        .probes
        .iter()
        .map(|p| match (p.hits_per_s, p.ns_per_hit, p.cpu_pct) {
            (Some(rate), per, Some(cpu)) => format!(
                "{} {} hits/s, {}/hit, {cpu:.1}% CPU",
                p.name,
                count(rate),
                per.map_or("-".to_string(), |ns| dur(ns.round() as u64))
            ),
            _ => format!("{} (cost n/a: no BPF run-time accounting)", p.name),
        })
        .collect();
    Some(format!("probes: {}", sets.join("; ")))
}

/// A whole frame, as `--batch` prints it.
pub fn write_frame(
    out: &mut dyn Write,
    f: &Frame,
    who: &str,
    sort: SiteSort,
    limits: &Limits,
) -> std::io::Result<()> {
    writeln!(out, "{}", title(f, who, false))?;
    writeln!(out, "Ps:")?;
    let sections = [
        procs(f),
        threads(f),
        goroutines(f, limits),
        sites(f, sort, limits),
        cpu(f, limits, None),
        std::iter::once(footer(f)).chain(probes_footer(f)).collect(),
    ];
    for line in sections.iter().flatten() {
        writeln!(out, "{line}")?;
    }
    writeln!(out)?;
    out.flush()
}

/// Totals over the whole run, next to the last frame.
#[derive(Debug, Default)]
pub struct Totals {
    pub frames: u64,
    pub samples: u64,
    pub cpu_by_function: std::collections::HashMap<String, u64>,
    pub cpu_by_start_function: std::collections::HashMap<String, u64>,
    /// GC cycles and STW ns over the frames; `None` when the GC totals cannot be read.
    pub gc: Option<GcInterval>,
    /// `--with lifecycle`: over the frames.
    pub created: Option<u64>,
    pub exited: Option<u64>,
    /// `--with sched`: the whole run's histogram.
    pub latency: Option<Latency>,
    /// Each `--with` set's cost since attach.
    pub probes: Vec<ProbeCost>,
}

impl Totals {
    /// Adds a frame's GC and lifecycle counts.
    pub fn add(&mut self, f: &Frame) {
        if let Some(g) = &f.gc {
            let t = self.gc.get_or_insert_with(GcInterval::default);
            t.cycles += g.cycles;
            t.stw_ns += g.stw_ns;
            t.total_cycles = g.total_cycles;
        }
        if let Some(l) = &f.lifecycle {
            *self.created.get_or_insert(0) += l.created;
            *self.exited.get_or_insert(0) += l.exited;
        }
    }
}

pub fn summary(last: &Frame, totals: &Totals, exited: bool) -> Value {
    let ranked = |m: &std::collections::HashMap<String, u64>| -> Vec<Value> {
        let v = super::frame::ranked(m.iter().map(|(k, n)| (k.as_str(), *n)).collect());
        v.into_iter()
            .map(|(f, n)| json!({"function": f, "samples": n}))
            .collect()
    };
    let states: serde_json::Map<String, Value> = last
        .goroutines
        .by_state
        .iter()
        .map(|(s, n)| (s.clone(), json!(n)))
        .collect();
    json!({
        "frames": totals.frames,
        "interval_ms": last.interval_ms,
        "target_exited": exited,
        "samples": totals.samples,
        "lost_samples": last.lost_samples_total,
        "goroutines": last.goroutines.total,
        "goroutines_by_state": states,
        "sites": last.sites,
        "cpu_by_function": ranked(&totals.cpu_by_function),
        "cpu_by_start_function": ranked(&totals.cpu_by_start_function),
        "procs": last.procs,
        "threads": last.threads,
        "gc": totals.gc.map(|g| json!({
            "cycles": g.cycles,
            "stw_ms": g.stw_ns as f64 / 1e6,
            "total_cycles": g.total_cycles,
        })),
        "goroutines_created": totals.created,
        "goroutines_exited": totals.exited,
        "sched_latency": totals.latency,
        "probes": totals.probes,
        "last_frame": last,
    })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn signed(n: i64) -> String {
    format!("{n:+}")
}

/// A duration in ns the way a latency is read: 850ns, 3.2µs, 1.2ms, 1.5s.
fn dur(ns: u64) -> String {
    match ns {
        0..1_000 => format!("{ns}ns"),
        1_000..100_000 => format!("{:.1}µs", ns as f64 / 1e3),
        100_000..1_000_000 => format!("{:.0}µs", ns as f64 / 1e3),
        1_000_000..100_000_000 => format!("{:.1}ms", ns as f64 / 1e6),
        100_000_000..1_000_000_000 => format!("{:.0}ms", ns as f64 / 1e6),
        _ => format!("{:.1}s", ns as f64 / 1e9),
    }
}

/// A rate with a k/M suffix: 950, 1.2k, 3.4M.
fn count(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn secs(ns: u64) -> String {
    format!("{:.1}s", ns as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_lines_and_footer() {
        let mut f = Frame {
            gc: Some(GcInterval {
                cycles: 2,
                stw_ns: 350_000,
                total_cycles: 9,
            }),
            latency: Some(Latency {
                samples: 40,
                p50_ns: 900,
                p90_ns: 3_200,
                p99_ns: 262_144,
                max_ns: 2_000_000_000,
            }),
            ..Frame::default()
        };
        let lines = probe_lines(&f);
        assert_eq!(
            lines,
            [
                "  GC: 2 cycles, 0.3 ms STW in the last interval",
                "  sched latency, 40 runs:",
                "    p50 900ns p90 3.2µs p99 262µs max 2.0s",
            ]
        );
        assert_eq!(probes_footer(&f), None);
        f.gc = None;
        assert!(probe_lines(&f)[0].starts_with("  GC: n/a"));
        f.probes = vec![
            ProbeCost {
                name: "lifecycle".into(),
                hits: Some(2_400),
                hits_per_s: Some(1_200.0),
                ns_per_hit: Some(900.4),
                cpu_pct: Some(0.108),
            },
            ProbeCost {
                name: "sched".into(),
                ..ProbeCost::default()
            },
        ];
        assert_eq!(
            probes_footer(&f).unwrap(),
            "probes: lifecycle 1.2k hits/s, 900ns/hit, 0.1% CPU; \
             sched (cost n/a: no BPF run-time accounting)"
        );
    }
}
