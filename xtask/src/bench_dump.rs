//! The goroutine-dump section of `cargo xtask bench`: `gmp-trace dump` on a running `dumpload`
//! with 10k, 100k and 1M parked goroutines, text and JSON interleaved round by round. Per dump:
//! the whole command's wall time and peak RSS, the reading alone (the dump's `duration_ns`),
//! the output's size, and what the dump did to the target: the rate of its CPU-bound worker
//! (from the `progress` lines it prints every 20 ms, stamped with CLOCK_MONOTONIC like our own
//! clock) before, during and after the dump. A dump that names fewer goroutines than the target
//! parked fails the bench: timing a broken dump would be worse than no figure.
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader, Read as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context as _};
use gmp_trace_tests::{build_sample, Variant};

use crate::bench_daemon::Ctx;
use crate::measure::{median, monotonic_ns, run_measured};

const SIZES: [u64; 3] = [10_000, 100_000, 1_000_000];
/// The 1M target's dumps take tens of seconds each: it runs at most this many rounds.
const MAX_ROUNDS_1M: usize = 3;
const FORMATS: [&str; 2] = ["text", "json"];
/// The issue's targets, for 1,000,000 goroutines.
const TARGET_WALL_S: f64 = 2.0;
const TARGET_RSS_MB: f64 = 500.0;
/// The windows the worker's rate is measured in before and after a dump.
const WINDOW_NS: u64 = 1_000_000_000;
/// What a parked goroutine of dumpload costs (2.7 KB measured on Go 1.27: a 2 KiB stack, the g,
/// the sudog), with room to spare: checked against MemAvailable before the target starts.
const BYTES_PER_GOROUTINE: u64 = 4096;
/// gmp-trace itself, the page cache of the outputs (1.4 GB of JSON for 1M) and slack.
const HEADROOM_BYTES: u64 = 3 << 30;

/// A running dumpload and its progress lines, (worker units, CLOCK_MONOTONIC ns), as read.
struct Target {
    child: Child,
    progress: Arc<Mutex<Vec<(u64, u64)>>>,
    rss_kb: u64,
}

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Target {
    /// Starts `dumpload -n N`, waits for `ready`, then collects its progress lines in a thread
    /// (which also keeps its stdout drained, so it never blocks on a full pipe).
    fn start(bin: &Path, n: u64) -> anyhow::Result<Target> {
        let need = n * BYTES_PER_GOROUTINE + HEADROOM_BYTES;
        let avail = mem_available()?;
        if avail < need {
            bail!(
                "the dump bench's target with {n} goroutines needs ~{:.1} GB of memory and \
                 MemAvailable is {:.1} GB: free some memory or run it on a larger machine",
                need as f64 / 1e9,
                avail as f64 / 1e9
            );
        }
        eprintln!(
            "xtask: bench dump: starting dumpload -n {n} (MemAvailable {:.1} GB, ~{:.1} GB needed)",
            avail as f64 / 1e9,
            need as f64 / 1e9
        );
        let mut child = Command::new(bin)
            .args(["-n", &n.to_string()])
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("dumpload's stdout")?;
        let progress = Arc::new(Mutex::new(Vec::new()));
        let mut t = Target {
            child,
            progress: progress.clone(),
            rss_kb: 0,
        };
        let mut lines = BufReader::new(stdout);
        let mut first = String::new();
        lines.read_line(&mut first)?;
        if !first.starts_with("ready") {
            bail!("dumpload -n {n} did not get ready (printed {first:?})");
        }
        std::thread::spawn(move || {
            for line in lines.lines().map_while(Result::ok) {
                let mut w = line.split_whitespace().skip(1).map(str::parse::<u64>);
                if let (Some(Ok(u)), Some(Ok(ns))) = (w.next(), w.next()) {
                    if let Ok(mut p) = progress.lock() {
                        p.push((u, ns));
                    }
                }
            }
        });
        // A first before-window of progress.
        std::thread::sleep(Duration::from_millis(1100));
        t.rss_kb = status_kb(t.child.id(), "VmRSS:")?;
        Ok(t)
    }

    fn progress(&self) -> Vec<(u64, u64)> {
        self.progress.lock().map(|p| p.clone()).unwrap_or_default()
    }
}

/// MemAvailable from /proc/meminfo, in bytes.
fn mem_available() -> anyhow::Result<u64> {
    let text = std::fs::read_to_string("/proc/meminfo")?;
    text.lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .context("no MemAvailable in /proc/meminfo")
}

/// A `kB` field of /proc/PID/status.
fn status_kb(pid: u32, field: &str) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

/// The 1-minute load average, as /proc/loadavg has it.
fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// The worker's units per second between two progress lines: with `outer`, the last line at
/// or before `a` and the first at or after `b` (a span that covers [a, b] even when no line
/// falls inside it); otherwise the first at or after `a` and the last at or before `b`.
fn units_per_s(p: &[(u64, u64)], a: u64, b: u64, outer: bool) -> Option<f64> {
    let (from, to) = if outer {
        (
            p.iter().rev().find(|x| x.1 <= a)?,
            p.iter().find(|x| x.1 >= b)?,
        )
    } else {
        (
            p.iter().find(|x| x.1 >= a)?,
            p.iter().rev().find(|x| x.1 <= b)?,
        )
    };
    if to.1 <= from.1 {
        return None;
    }
    Some(to.0.saturating_sub(from.0) as f64 / ((to.1 - from.1) as f64 / 1e9))
}

/// Counts goroutines in a dump file without holding it in memory: xtask's own RSS must stay
/// small, because a spawned child's peak RSS (wait4) starts from its parent's. JSON: objects
/// opening with `{"goid":` (the goroutine's first field; `created_by` opens with "function");
/// text: lines `goroutine N [...]:`. Also returns the JSON's `duration_ns`, a top-level field
/// written before the goroutines.
fn count_goroutines(path: &Path, json: bool) -> anyhow::Result<(u64, Option<f64>)> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let pat: &[u8] = if json { b"{\"goid\":" } else { b"\ngoroutine " };
    let mut buf = vec![0u8; 1 << 20];
    // The text's first goroutine line has no newline before it: start as if after one.
    let mut carry: Vec<u8> = vec![b'\n'];
    let (mut count, mut head, mut duration) = (0u64, Vec::new(), None);
    loop {
        let got = f.read(&mut buf)?;
        if got == 0 {
            break;
        }
        if head.len() < 4096 {
            head.extend_from_slice(&buf[..got.min(4096)]);
        }
        carry.extend_from_slice(&buf[..got]);
        let last = carry.len().saturating_sub(pat.len());
        count += (0..=last)
            .filter(|&i| carry[i] == pat[0] && carry[i..].starts_with(pat))
            .count() as u64;
        // Keep a pattern's length less one, so a match across reads is counted once.
        let keep = carry.len().min(pat.len() - 1);
        carry.drain(..carry.len() - keep);
    }
    if json {
        let text = String::from_utf8_lossy(&head);
        duration = text
            .split("\"duration_ns\":")
            .nth(1)
            .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
            .and_then(|d| d.parse().ok());
    }
    Ok((count, duration))
}

/// The reading time gmp-trace logs at info level ("... in 12.3 ms").
fn logged_read_ns(stderr: &Path) -> Option<f64> {
    let text = std::fs::read_to_string(stderr).ok()?;
    let line = text.lines().find(|l| l.contains("goroutines,"))?;
    let ms = line.rsplit(" in ").next()?.trim().strip_suffix(" ms")?;
    ms.parse::<f64>().ok().map(|m| m * 1e6)
}

/// One dump's figures.
#[derive(Clone, Copy)]
struct Round {
    wall_s: f64,
    rss_mb: f64,
    read_s: f64,
    out_mb: f64,
    /// Worker units/s in the second before; during and after as ratios to it.
    before: f64,
    during: f64,
    after: f64,
}

/// One `gmp-trace dump` of the target in `format`, then a second's wait (the after-window,
/// undisturbed by our own checks), then the checks.
fn dump_once(cx: &Ctx, t: &Target, n: u64, format: &str) -> anyhow::Result<Round> {
    let pid = t.child.id();
    let json = format == "json";
    let out = cx
        .scratch
        .join(format!("dump.{}", if json { "json" } else { "txt" }));
    let mut c = Command::new(&cx.gmp);
    c.args(["dump", "--pid", &pid.to_string(), "--format", format])
        .arg("-o")
        .arg(&out)
        .env("RUST_LOG", "info");
    let start = monotonic_ns();
    let u = run_measured(&mut c, &cx.scratch)?;
    let end = monotonic_ns();
    std::thread::sleep(Duration::from_nanos(WINDOW_NS + 100_000_000));
    let out_mb = std::fs::metadata(&out)?.len() as f64 / 1e6;
    let (count, duration_ns) = count_goroutines(&out, json)?;
    if count < n {
        bail!(
            "gmp-trace dump --pid {pid} --format {format} named {count} goroutines, and the \
             target parked {n}: the dump is broken, not worth timing"
        );
    }
    let read_ns = match duration_ns {
        Some(d) => d,
        None if json => bail!("the JSON dump of {pid} has no duration_ns"),
        None => logged_read_ns(&cx.scratch.join("child.stderr"))
            .context("gmp-trace dump logged no reading time at RUST_LOG=info")?,
    };
    let _ = std::fs::remove_file(&out);
    let p = t.progress();
    let rate = |a, b, outer| {
        units_per_s(&p, a, b, outer).with_context(|| {
            format!("dumpload printed too few progress lines around the {format} dump")
        })
    };
    let before = rate(start.saturating_sub(WINDOW_NS), start, false)?;
    let during = rate(start, end, true)?;
    let after = rate(end, end + WINDOW_NS, false)?;
    if during <= 0.0 {
        bail!("dumpload's worker made no progress during the {format} dump: the dump stopped it");
    }
    // The next dump's before-window: clear of this one's checks.
    std::thread::sleep(Duration::from_nanos(WINDOW_NS + 100_000_000));
    Ok(Round {
        wall_s: u.wall_s,
        rss_mb: u.max_rss_kb as f64 / 1024.0,
        read_s: read_ns / 1e9,
        out_mb,
        before,
        during: during / before,
        after: after / before,
    })
}

/// 1000000 as "1,000,000".
fn thousands(n: u64) -> String {
    let d = n.to_string();
    let mut s = String::new();
    for (i, c) in d.chars().enumerate() {
        if i > 0 && (d.len() - i).is_multiple_of(3) {
            s.push(',');
        }
        s.push(c);
    }
    s
}

/// One table row: the medians of a size's rounds in one format, and the target's verdict.
fn row(n: u64, format: &str, rounds: &[Round]) -> String {
    let m = |f: fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let (wall, rss) = (m(|r| r.wall_s), m(|r| r.rss_mb));
    // On a shared machine the spread says as much as the median.
    let lo = rounds
        .iter()
        .map(|r| r.wall_s)
        .fold(f64::INFINITY, f64::min);
    let hi = rounds.iter().map(|r| r.wall_s).fold(0.0, f64::max);
    let mut missed = Vec::new();
    if wall > TARGET_WALL_S {
        missed.push(format!("{wall:.2} s > {TARGET_WALL_S} s"));
    }
    if rss > TARGET_RSS_MB {
        missed.push(format!("{rss:.0} MB > {TARGET_RSS_MB} MB"));
    }
    let verdict = if missed.is_empty() {
        "met".to_owned()
    } else {
        format!("not met ({})", missed.join(", "))
    };
    format!(
        "| {} | {format} | {} | {wall:.2} s | {lo:.2}..{hi:.2} s | {:.3} s | {rss:.1} MB | {:.1} MB | {:.0}/s | {:.2}x | {:.2}x | {verdict} |",
        thousands(n),
        rounds.len(),
        m(|r| r.read_s),
        m(|r| r.out_mb),
        m(|r| r.before),
        m(|r| r.during),
        m(|r| r.after),
    )
}

pub fn dump(cx: &Ctx) -> anyhow::Result<String> {
    let bin: PathBuf = build_sample("dumpload", cx.go, Variant::Default);
    let load_start = load();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for n in SIZES {
        let rounds = if n >= 1_000_000 {
            cx.runs.min(MAX_ROUNDS_1M)
        } else {
            cx.runs
        };
        let t = Target::start(&bin, n)?;
        targets.push(format!(
            "{}: {:.0} MB",
            thousands(n),
            t.rss_kb as f64 / 1024.0
        ));
        eprintln!("xtask: bench dump {n} goroutines: {rounds} interleaved rounds");
        let mut samples: Vec<Vec<Round>> = vec![Vec::new(); FORMATS.len()];
        for _ in 0..rounds {
            for (i, f) in FORMATS.iter().enumerate() {
                samples[i].push(dump_once(cx, &t, n, f)?);
            }
        }
        drop(t);
        for (i, f) in FORMATS.iter().enumerate() {
            rows.push(row(n, f, &samples[i]));
        }
    }
    let mut text = format!(
        "`gmp-trace dump --pid P -o FILE` (text, Go's traceback format) and `--format json` on a \
         running `dumpload -n N`: N goroutines parked on a channel receive, a select, a \
         sync.Mutex, time.Sleep and a sync.Cond, at three stack depths (15 distinct stacks), \
         plus one worker goroutine doing CPU work in ~10 µs units. One target per N, started \
         once; text and JSON interleaved round by round; figures are medians (1,000,000 runs at \
         most {MAX_ROUNDS_1M} rounds: each of its dumps takes seconds). Wall and peak RSS are \
         the whole `gmp-trace dump` command (reading the binary, the process's memory, writing \
         the file); reading = the dump's own `duration_ns` (JSON; for text, the time it logs \
         at RUST_LOG=info): the process's memory alone. Every output is checked to name at \
         least N goroutines. Worker = the target's rate (units/s from its progress lines, every \
         20 ms) in the second before the dump, and as ratios to it during the dump (between the \
         progress lines that bracket it, so a dump shorter than 20 ms is diluted by up to 40 ms \
         of undisturbed running) and in the second after: the target keeps running while it is \
         read (below 1 is the worker losing CPU to gmp-trace or to the rest of the machine). \
         Target RSS after parking: {}. The issue's target: 1,000,000 goroutines dumped in <= \
         {TARGET_WALL_S} s and <= {TARGET_RSS_MB} MB RSS; every row is marked against those \
         bounds. Load average (1 min) at the start of the section: {load_start}, at the end: {} \
         (the machine is shared; figures are noisy).\n\n\
         | goroutines | format | rounds | wall | wall (min..max) | reading | peak RSS | output | worker before | during | after | target (<= 2 s, <= 500 MB) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        targets.join(", "),
        load(),
    );
    for r in rows {
        let _ = writeln!(text, "{r}");
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separated() {
        assert_eq!(thousands(10_000), "10,000");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn rates_inner_and_outer() {
        // 1000 units every 20 ms = 50,000/s; a stall between 100 and 160 ms.
        let p = [
            (0, 0),
            (1000, 20_000_000),
            (2000, 40_000_000),
            (3000, 60_000_000),
            (4000, 80_000_000),
            (5000, 100_000_000),
            (5000, 160_000_000),
            (6000, 180_000_000),
        ];
        let inner = units_per_s(&p, 0, 100_000_000, false).unwrap();
        assert!((inner - 50_000.0).abs() < 1e-6, "{inner}");
        // No line inside [110, 150] ms: the outer bracket is 100..160 ms, nothing done.
        assert_eq!(units_per_s(&p, 110_000_000, 150_000_000, true), Some(0.0));
        assert_eq!(units_per_s(&p, 110_000_000, 150_000_000, false), None);
        assert_eq!(units_per_s(&p, 170_000_000, 200_000_000, true), None);
    }

    #[test]
    fn counts_across_read_boundaries() {
        let dir = std::env::temp_dir().join(format!("bench-dump-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let json = dir.join("d.json");
        // More than one 1 MiB read, so matches straddle reads.
        let g = r#"{"goid":7,"created_by":{"function":"main.main","goid":1},"parent_goid":1},"#;
        let n = (3 << 20) / g.len() as u64;
        let body = format!(
            "{{\"pid\":1,\"duration_ns\":1234,\"goroutines\":[{}]}}",
            g.repeat(n as usize)
        );
        std::fs::write(&json, body).unwrap();
        assert_eq!(count_goroutines(&json, true).unwrap(), (n, Some(1234.0)));
        let txt = dir.join("d.txt");
        let g = "goroutine 12 [chan receive]:\nmain.f(...)\n\t/x.go:3\ncreated by main.main in goroutine 1\n\n";
        std::fs::write(&txt, g.repeat(n as usize)).unwrap();
        assert_eq!(count_goroutines(&txt, false).unwrap(), (n, None));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
