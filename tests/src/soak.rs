//! The soak: a steady server load (`tests/go/soakserver`) traced in `--pid` mode for a while,
//! the tracer's RSS sampled as it runs, then stopped with SIGINT and everything it left checked.
//! Shared by the CI test (tests/tests/soak.rs, seconds) and `cargo xtask reliability --only soak`
//! (minutes), so both check the same properties: RSS flat, nothing lost, outputs valid and
//! consistent with the summary, a clean exit leaving no BPF link behind, the target unharmed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::pid::{all_link_ids, attach, links_held_by, Target};
use crate::{build_sample, Variant, GO_VERSIONS};

/// How a soak runs.
#[derive(Clone, Debug)]
pub struct SoakConfig {
    pub duration: Duration,
    /// How often the tracer's RSS is sampled.
    pub sample_every: Duration,
    /// Requests a second the server's own clients aim at (0: as fast as they go).
    pub rate: u32,
    pub workers: u32,
    /// How long the untraced rate is measured, before attaching.
    pub untraced_for: Duration,
    /// Events written as Perfetto to this file; `None`: JSONL to a pipe, each line parsed and
    /// counted as it comes, nothing stored (minutes of events are gigabytes).
    pub perfetto: Option<PathBuf>,
    /// Where the summary JSON goes.
    pub summary: PathBuf,
}

/// What a soak saw. `check` says whether it held.
#[derive(Debug, Default)]
pub struct SoakReport {
    /// (seconds since attach, VmRSS in KiB).
    pub rss: Vec<(f64, u64)>,
    pub untraced_rate: f64,
    pub traced_rate: f64,
    pub after_rate: f64,
    /// Requests the server's clients found answered wrongly or not at all, over the whole run.
    pub target_errors: u64,
    pub summary: serde_json::Value,
    /// JSONL lines by kind (empty with a Perfetto output).
    pub jsonl_kinds: BTreeMap<String, u64>,
    pub jsonl_lines: u64,
    pub exit_ok: bool,
    /// What gmp-trace said on stderr after attaching (the human summary).
    pub stderr: String,
    /// Links gmp-trace held while tracing that still exist after it exited.
    pub links_left: Vec<u64>,
    pub links_held: usize,
}

/// The last `stats` line of soakserver: (seconds, ok, errors).
type Stats = Arc<Mutex<Vec<(f64, u64, u64)>>>;

fn start_server(cfg: &SoakConfig) -> (Target, u32, Stats) {
    let bin = build_sample("soakserver", GO_VERSIONS[0], Variant::Default);
    let mut t = Target(
        Command::new(bin)
            .args(["-report", "500ms"])
            .args(["-rate", &cfg.rate.to_string()])
            .args(["-workers", &cfg.workers.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start soakserver"),
    );
    let pid = t.0.id();
    let mut out = BufReader::new(t.0.stdout.take().expect("piped"));
    let mut first = String::new();
    out.read_line(&mut first).expect("soakserver's first line");
    assert_eq!(first.trim(), format!("soakserver pid {pid}"));
    let stats: Stats = Arc::default();
    let s = stats.clone();
    std::thread::spawn(move || {
        for line in out.lines().map_while(Result::ok) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if let ["stats", secs, ok, errs, _] = f[..] {
                if let (Ok(a), Ok(b), Ok(c)) = (secs.parse(), ok.parse(), errs.parse()) {
                    s.lock().unwrap().push((a, b, c));
                }
            }
        }
    });
    (t, pid, stats)
}

/// Requests a second between the stats lines nearest `from` and `to` (server seconds).
fn rate_between(stats: &Stats, from: f64, to: f64) -> f64 {
    let v = stats.lock().unwrap();
    let near = |t: f64| {
        v.iter()
            .min_by(|a, b| (a.0 - t).abs().total_cmp(&(b.0 - t).abs()))
            .copied()
    };
    match (near(from), near(to)) {
        (Some(a), Some(b)) if b.0 > a.0 => (b.1 - a.1) as f64 / (b.0 - a.0),
        _ => 0.0,
    }
}

fn server_now(stats: &Stats) -> f64 {
    stats.lock().unwrap().last().map_or(0.0, |s| s.0)
}

/// A process's resident set (KiB), from /proc/PID/status.
pub fn vm_rss_kib(pid: u32) -> Option<u64> {
    vm_kib(pid, "VmRSS:")
}

/// A `Vm*:` line of /proc/PID/status (`key` with its colon), in KiB.
pub fn vm_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads JSONL from `r` to its end, checking that every line is one JSON value; returns the
/// lines counted by kind. Cheap per line (no tree built, no allocation once every kind was
/// seen): the tracer blocks on the pipe when this falls behind.
fn count_jsonl(r: impl std::io::Read) -> (u64, BTreeMap<String, u64>) {
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    let mut n = 0;
    let mut r = BufReader::with_capacity(1 << 20, r);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).expect("JSONL is UTF-8 text") == 0 {
            break;
        }
        n += 1;
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&line) {
            panic!("JSONL line {n} does not parse ({e}): {line}");
        }
        let kind = line
            .split_once("\"kind\":\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map_or("<no kind>", |(k, _)| k);
        match kinds.get_mut(kind) {
            Some(c) => *c += 1,
            None => {
                kinds.insert(kind.to_string(), 1);
            }
        }
    }
    (n, kinds)
}

/// Runs the soak: the untraced rate, then `duration` traced with RSS samples, SIGINT, and
/// the rate after detaching.
pub fn run_soak(cfg: &SoakConfig) -> SoakReport {
    let (mut target, pid, stats) = start_server(cfg);
    std::thread::sleep(cfg.untraced_for + Duration::from_millis(600));
    let t0 = server_now(&stats);
    let untraced_rate = rate_between(&stats, t0 - cfg.untraced_for.as_secs_f64(), t0);

    let mut args: Vec<String> = vec!["--summary-json".into(), path_str(&cfg.summary)];
    match &cfg.perfetto {
        Some(p) => args.extend(["-o".into(), path_str(p)]),
        None => args.extend(["-o".into(), "-".into(), "--format".into(), "jsonl".into()]),
    }
    let out = if cfg.perfetto.is_some() {
        Stdio::null()
    } else {
        Stdio::piped()
    };
    let mut tracer = attach(pid, &args, out);
    let tpid = tracer.id();
    let jsonl = tracer
        .child
        .stdout
        .take()
        .map(|o| std::thread::spawn(move || count_jsonl(o)));
    let held: Vec<u64> = links_held_by(tpid).iter().map(|l| l.id).collect();
    let start = Instant::now();
    let s0 = server_now(&stats);
    let mut rss = Vec::new();
    while start.elapsed() < cfg.duration {
        std::thread::sleep(
            cfg.sample_every
                .min(cfg.duration.saturating_sub(start.elapsed())),
        );
        if let Some(kib) = vm_rss_kib(tpid) {
            rss.push((start.elapsed().as_secs_f64(), kib));
        }
    }
    let s1 = server_now(&stats);
    // SAFETY: kill has no memory preconditions; tpid is our child, not yet waited for.
    unsafe { libc::kill(tpid as i32, libc::SIGINT) };
    let (status, stderr) = tracer.finish();
    let (jsonl_lines, jsonl_kinds) = jsonl.map_or_else(Default::default, |h| h.join().unwrap());
    let kernel = all_link_ids();
    let links_left = held
        .iter()
        .copied()
        .filter(|id| kernel.contains(id))
        .collect();

    // The target after: still serving, at its own pace again.
    std::thread::sleep(Duration::from_secs(3));
    let s2 = server_now(&stats);
    let after_rate = rate_between(&stats, s2 - 2.0, s2);
    let target_errors = stats.lock().unwrap().last().map_or(u64::MAX, |s| s.2);
    let alive = target.0.try_wait().ok().flatten().is_none();
    assert!(alive, "soakserver died while traced");
    let summary = std::fs::read_to_string(&cfg.summary)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    SoakReport {
        rss,
        untraced_rate,
        traced_rate: rate_between(&stats, s0, s1),
        after_rate,
        target_errors,
        summary,
        jsonl_kinds,
        jsonl_lines,
        exit_ok: status.success(),
        stderr,
        links_left,
        links_held: held.len(),
    }
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("UTF-8 path").to_string()
}

/// How much the last third of the RSS samples may exceed the first third (after warm-up: the
/// first `WARMUP` fraction of samples is left out) before RSS counts as growing.
pub const RSS_SLACK: f64 = 0.10;
pub const WARMUP: f64 = 0.2;

/// (first third's max, last third's max) of the samples after warm-up, in KiB.
pub fn rss_thirds(rss: &[(f64, u64)]) -> (u64, u64) {
    let skip = (rss.len() as f64 * WARMUP).ceil() as usize;
    let v: Vec<u64> = rss.iter().skip(skip).map(|s| s.1).collect();
    let third = (v.len() / 3).max(1);
    let max = |s: &[u64]| s.iter().copied().max().unwrap_or(0);
    (
        max(&v[..third.min(v.len())]),
        max(&v[v.len().saturating_sub(third)..]),
    )
}

impl SoakReport {
    /// Every property the soak asserts; the failures, in words (empty: it held).
    pub fn check(&self) -> Vec<String> {
        let mut bad = Vec::new();
        let s = &self.summary;
        if s.is_null() {
            bad.push("no summary JSON (or it does not parse)".into());
            return bad;
        }
        let (first, last) = rss_thirds(&self.rss);
        if self.rss.len() < 5 {
            bad.push(format!("only {} RSS samples", self.rss.len()));
        } else if last as f64 > first as f64 * (1.0 + RSS_SLACK) {
            bad.push(format!(
                "RSS grows: last third's max {last} KiB > first third's max {first} KiB + {:.0}%",
                RSS_SLACK * 100.0
            ));
        }
        let num = |k: &str| s[k].as_u64();
        if num("lost_events") != Some(0) {
            bad.push(format!("lost_events = {}", s["lost_events"]));
        }
        if !self.exit_ok {
            bad.push(format!(
                "gmp-trace did not exit cleanly on SIGINT:\n{}",
                self.stderr
            ));
        }
        if !self.links_left.is_empty() || self.links_held == 0 {
            bad.push(format!(
                "{} links held, {:?} still in the kernel after exit",
                self.links_held, self.links_left
            ));
        }
        if self.target_errors != 0 {
            bad.push(format!(
                "the server's clients saw {} errors",
                self.target_errors
            ));
        }
        bad.extend(self.summary_consistency());
        bad
    }

    /// The summary's counts against each other and against the JSONL read back.
    fn summary_consistency(&self) -> Vec<String> {
        let s = &self.summary;
        let mut bad = Vec::new();
        let num = |k: &str| s[k].as_u64().unwrap_or(0);
        let by_kind: BTreeMap<String, u64> = s["events_by_kind"]
            .as_object()
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
                    .collect()
            })
            .unwrap_or_default();
        let kind = |k: &str| by_kind.get(k).copied().unwrap_or(0);
        if num("goroutines_created") == 0 || num("goroutines_created") != kind("go_create") {
            bad.push(format!(
                "goroutines_created {} vs go_create events {}",
                num("goroutines_created"),
                kind("go_create")
            ));
        }
        if num("goroutines_exited") != kind("go_exit") {
            bad.push(format!(
                "goroutines_exited {} vs go_exit events {}",
                num("goroutines_exited"),
                kind("go_exit")
            ));
        }
        // Alive at the end cannot exceed what existed at attach plus what was created.
        let live = num("goroutines_live_at_end");
        if live > num("goroutines_at_attach") + num("goroutines_created") {
            bad.push(format!(
                "{live} goroutines live at the end: more than ever existed"
            ));
        }
        if !self.jsonl_kinds.is_empty() && self.jsonl_kinds != by_kind {
            bad.push(format!(
                "JSONL lines by kind {:?} differ from the summary's events_by_kind {by_kind:?}",
                self.jsonl_kinds
            ));
        }
        bad
    }

    /// The report in words: the RSS series, rates and counts.
    pub fn text(&self) -> String {
        let s = &self.summary;
        let (first, last) = rss_thirds(&self.rss);
        let series: Vec<String> = self
            .rss
            .iter()
            .map(|(t, k)| format!("{t:.0}s:{k}"))
            .collect();
        let max = self.rss.iter().map(|s| s.1).max().unwrap_or(0);
        format!(
            "RSS KiB: {}\n  start {} end {} max {max}; after warm-up first third max {first}, \
             last third max {last}\nrequests/s: untraced {:.0}, traced {:.0}, after detach {:.0}; \
             the server's errors: {}\nevents {} lost {} goroutines created {} exited {} live at \
             end {} GC cycles {}; JSONL lines {}\nexit on SIGINT ok: {}; links held {}, left {:?}",
            series.join(" "),
            self.rss.first().map_or(0, |s| s.1),
            self.rss.last().map_or(0, |s| s.1),
            self.untraced_rate,
            self.traced_rate,
            self.after_rate,
            self.target_errors,
            s["events"],
            s["lost_events"],
            s["goroutines_created"],
            s["goroutines_exited"],
            s["goroutines_live_at_end"],
            s["gc_cycles"],
            self.jsonl_lines,
            self.exit_ok,
            self.links_held,
            self.links_left,
        )
    }
}
