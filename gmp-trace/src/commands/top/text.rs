//! The panels of a [`Frame`] as lines of text: the batch mode prints them one frame after the
//! other (like `top -b`), the TUI puts each panel's lines in a box of its own, so both views
//! always say the same thing. Also the `--summary-json` document.
use std::io::Write;

use serde_json::{json, Value};

use super::frame::{Frame, SiteRow, SiteSort, WaitRow};

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
        wait_head(),
    ];
    for w in g.by_wait.iter().take(limits.waits) {
        out.push(wait_line(w));
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
        vec![footer(f)],
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
        "last_frame": last,
    })
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or("-".to_string(), |v| v.to_string())
}

fn signed(n: i64) -> String {
    format!("{n:+}")
}

fn secs(ns: u64) -> String {
    format!("{:.1}s", ns as f64 / 1e9)
}
