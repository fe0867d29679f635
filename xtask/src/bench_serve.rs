//! `cargo xtask bench --only serve`: what `gmp-trace serve` (the fleet endpoint) costs the
//! programs it watches, against the same workload with no agent running, in interleaved
//! rounds: with the default sources (a read of the runtime's memory and /proc each interval,
//! no probe) and with `--with sched` (two uprobes per process: the opt-in latency histogram).
//!
//! serve runs as the DaemonSet runs it (`--all`, narrowed to the bench binary so that other
//! processes of the machine are not read), started before the workload and stopped after it;
//! the reads each run got are counted from serve's own /metrics (its read-duration histogram).
//!
//! At 1 s a workload of 1-2 s is read once or twice (at the default 5 s, at most once): a few
//! ms of cost, far below the run-to-run noise of this shared machine. So serve also runs at
//! 100, 20 and 10 ms, where the same per-read cost is 10-100x larger, and the workload's extra
//! wall and CPU time is fitted against the read rate (least squares within each round: drift
//! between rounds cancels) and projected to one read a second, and to one per default interval.
//! The agent's own CPU (its rusage at the end of each run) is fitted the same way.
use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use gmp_trace_tests::{build_sample, Variant};

use crate::bench::{run_once, workload, Mode};
use crate::measure::median;

/// The configurations of a round, in order: untraced, the default sources at each interval
/// (the first is the default; these are the fit's points), and `--with sched` at 1 s.
const CONFIGS: [(&str, &[&str]); 6] = [
    ("untraced", &[]),
    ("serve", &["--interval", "1s"]),
    ("serve 100ms", &["--interval", "100ms"]),
    ("serve 20ms", &["--interval", "20ms"]),
    ("serve 10ms", &["--interval", "10ms"]),
    (
        "serve --with sched",
        &["--interval", "1s", "--with", "sched"],
    ),
];
/// serve's default `--interval` (s), where the target is judged: the projection at 1 s scaled
/// by the read rate (the cost is per read).
const DEFAULT_INTERVAL_S: f64 = 5.0;

/// CONFIGS[..FIT] are the fit's points (untraced = no read).
const FIT: usize = 5;
const SCHED: usize = 5;

/// serve, started on a free port, narrowed to `exe`.
struct Agent {
    child: Child,
    port: u16,
    reaped: bool,
}

impl Agent {
    fn start(gmp: &Path, exe: &Path, extra: &[&str]) -> anyhow::Result<Agent> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let filter = format!("^{}$", regex_escape(&exe.display().to_string()));
        let child = Command::new(gmp)
            .args(["serve", "--all", "--exe-filter", &filter])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting gmp-trace serve")?;
        // Bound and past its first scan before the workload starts.
        std::thread::sleep(Duration::from_millis(300));
        Ok(Agent {
            child,
            port,
            reaped: false,
        })
    }

    /// Reads of the workload so far, from serve's own read-duration histogram.
    fn reads(&self) -> Option<f64> {
        let out = Command::new("curl")
            .args(["-s", "-m", "2"])
            .arg(format!("http://127.0.0.1:{}/metrics", self.port))
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout).lines().find_map(|l| {
            l.strip_prefix("gmptrace_agent_read_duration_seconds_count ")?
                .trim()
                .parse()
                .ok()
        })
    }

    /// Stops the agent and returns the CPU seconds (user + system) it used in all, from its
    /// rusage (µs resolution; /proc's ticks are 10 ms).
    fn stop(mut self) -> Option<f64> {
        let _ = self.child.kill();
        let mut status = 0;
        // SAFETY: a zeroed rusage is a valid value for wait4 to overwrite.
        let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: wait4 on our own unreaped child, writing to two valid locals; `reaped` keeps
        // Drop from waiting for (or killing) the pid again.
        let r = unsafe { libc::wait4(self.child.id() as libc::pid_t, &mut status, 0, &mut ru) };
        self.reaped = true;
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (r > 0).then(|| tv(ru.ru_utime) + tv(ru.ru_stime))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if !self.reaped {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            let special = "\\.+*?()|[]{}^$".contains(c);
            special
                .then_some('\\')
                .into_iter()
                .chain(std::iter::once(c))
        })
        .collect()
}

/// One run under one configuration: the workload's own wall and CPU seconds, serve's reads of
/// it and serve's own CPU seconds (both 0 untraced).
#[derive(Clone, Copy)]
struct Run {
    wall: f64,
    cpu: f64,
    reads: f64,
    agent_cpu: f64,
}

/// The least-squares slope of y on x, each round centred on its own means (a line per round,
/// one shared slope): what a round's drift moves is its intercept, not the slope. With one
/// round, the ordinary least-squares slope.
fn pooled_slope(rounds: &[Vec<(f64, f64)>]) -> f64 {
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for pts in rounds.iter().filter(|p| p.len() >= 2) {
        let n = pts.len() as f64;
        let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
        let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
        for (x, y) in pts {
            sxy += (x - mx) * (y - my);
            sxx += (x - mx) * (x - mx);
        }
    }
    if sxx > 0.0 {
        sxy / sxx
    } else {
        f64::NAN
    }
}

/// A slope fitted three ways: all rounds pooled, and each round's own (median, min, max).
struct Fit {
    pooled: f64,
    median: f64,
    lo: f64,
    hi: f64,
}

impl Fit {
    fn of(rounds: &[Vec<(f64, f64)>]) -> Fit {
        let each: Vec<f64> = rounds
            .iter()
            .map(|r| pooled_slope(std::slice::from_ref(r)))
            .filter(|s| s.is_finite())
            .collect();
        Fit {
            pooled: pooled_slope(rounds),
            median: median(each.clone()),
            lo: each.iter().copied().fold(f64::INFINITY, f64::min),
            hi: each.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// `scale` x the slope, as "pooled (rounds: median, min..max)" with `unit`.
    fn show(&self, scale: f64, unit: &str) -> String {
        format!(
            "{:+.2}{unit} (rounds: {:+.2}, {:+.2}..{:+.2})",
            self.pooled * scale,
            self.median * scale,
            self.lo * scale,
            self.hi * scale
        )
    }
}

/// One workload's runs: `runs[config][round]`, None where the run failed.
type Runs = Vec<Vec<Option<Run>>>;

/// One workload's interleaved rounds.
fn rounds(
    gmp: &Path,
    scratch: &Path,
    n: usize,
    name: &str,
    cmd: &[String],
) -> anyhow::Result<Runs> {
    eprintln!("xtask: bench serve {name}: {n} interleaved rounds");
    let exe = Path::new(&cmd[0]);
    let mut runs: Runs = CONFIGS.iter().map(|_| Vec::new()).collect();
    for _ in 0..n {
        for (i, (label, extra)) in CONFIGS.iter().enumerate() {
            let agent = if i == 0 {
                None
            } else {
                Some(Agent::start(gmp, exe, extra)?)
            };
            // A run that fails (under --with sched a server workload can run out of file
            // descriptors as requests pile up) is counted, not fatal: the other columns stand.
            let s = run_once(gmp, Mode::Untraced, cmd, scratch);
            let reads = agent.as_ref().map(|a| a.reads());
            let agent_cpu = agent.map(Agent::stop);
            let run = match (s, reads, agent_cpu) {
                (Ok(s), None, None) => Some((s, 0.0, 0.0)),
                (Ok(s), Some(Some(r)), Some(Some(c))) => Some((s, r, c)),
                (Ok(_), _, _) => {
                    eprintln!("xtask: bench serve {name} ({label}): no reads or agent CPU");
                    None
                }
                (Err(e), _, _) => {
                    eprintln!("xtask: bench serve {name} ({label}): a run failed: {e:#}");
                    None
                }
            };
            if let Some((s, reads, agent_cpu)) = &run {
                eprintln!(
                    "xtask: bench serve {name} ({label}): {:.0} ms wall, {:.0} ms CPU, \
                     {reads:.0} reads, agent {:.0} ms CPU",
                    s.elapsed_ns / 1e6,
                    s.cpu_ns / 1e6,
                    agent_cpu * 1e3
                );
            }
            runs[i].push(run.map(|(s, reads, agent_cpu)| Run {
                wall: s.elapsed_ns / 1e9,
                cpu: s.cpu_ns / 1e9,
                reads,
                agent_cpu,
            }));
        }
    }
    Ok(runs)
}

/// What one workload's runs say: its direct row and its fitted row.
struct Rows {
    direct: String,
    fit: String,
    /// Projected at 1 s, pooled fit: (wall, CPU) changes, and the same at each one's worst
    /// round.
    at_1s: (f64, f64),
    at_1s_worst: (f64, f64),
}

fn direct_row(name: &str, runs: &Runs) -> anyhow::Result<String> {
    let ok = |i: usize| runs[i].iter().flatten().copied().collect::<Vec<Run>>();
    let base = ok(0);
    if base.is_empty() {
        anyhow::bail!("every untraced run of {name} failed");
    }
    let wall = median(base.iter().map(|r| r.wall).collect());
    let cpu = median(base.iter().map(|r| r.cpu).collect());
    let lo = base.iter().map(|r| r.wall).fold(f64::INFINITY, f64::min);
    let hi = base.iter().map(|r| r.wall).fold(0.0, f64::max);
    let mut row = format!(
        "| {name} | {:.1} ms wall ({:.0}..{:.0}), {:.1} ms CPU |",
        wall * 1e3,
        lo * 1e3,
        hi * 1e3,
        cpu * 1e3
    );
    for (i, config) in runs.iter().enumerate().skip(1) {
        let s = ok(i);
        if s.is_empty() {
            let _ = write!(row, " every run failed |");
            continue;
        }
        let nfail = config.len() - s.len();
        if nfail > 0 {
            let _ = write!(row, " ({nfail} of {} runs failed)", config.len());
        }
        let _ = write!(
            row,
            " {:+.1}% wall, {:+.1}% CPU ({:.0} reads) |",
            (median(s.iter().map(|r| r.wall).collect()) / wall - 1.0) * 100.0,
            (median(s.iter().map(|r| r.cpu).collect()) / cpu - 1.0) * 100.0,
            median(s.iter().map(|r| r.reads).collect())
        );
    }
    Ok(row)
}

/// The fit's points: per round, (x, y) of each run of the configurations `configs`.
fn points(
    runs: &Runs,
    configs: std::ops::Range<usize>,
    xy: impl Fn(&Run) -> (f64, f64),
) -> Vec<Vec<(f64, f64)>> {
    let n = runs[0].len();
    (0..n)
        .map(|round| {
            configs
                .clone()
                .filter_map(|i| runs[i][round].as_ref().map(&xy))
                .collect()
        })
        .collect()
}

fn measure(
    gmp: &Path,
    scratch: &Path,
    n: usize,
    name: &str,
    cmd: &[String],
) -> anyhow::Result<Rows> {
    let runs = rounds(gmp, scratch, n, name, cmd)?;
    let direct = direct_row(name, &runs)?;
    let base: Vec<Run> = runs[0].iter().flatten().copied().collect();
    let wall = median(base.iter().map(|r| r.wall).collect());
    let base_cpu = median(base.iter().map(|r| r.cpu).collect());
    // The workload's CPUs in use: its CPU seconds per wall second, untraced.
    let cpus = base_cpu / wall;
    // The workload's time as a fraction of its untraced median, against the reads per second
    // of its run: the slope is the fraction lost per read a second, i.e. the seconds a read
    // costs, and directly the change at 1 s. The rate, not the count: at a fixed interval a
    // run slowed by the machine gets more reads, which would pass its noise off as cost.
    let rate = |r: &Run| r.reads / r.wall;
    let w = Fit::of(&points(&runs, 0..FIT, |r| (rate(r), r.wall / wall)));
    let c = Fit::of(&points(&runs, 0..FIT, |r| (rate(r), r.cpu / base_cpu)));
    // The agent's CPU is its own: its seconds against the reads.
    let a = Fit::of(&points(&runs, 1..FIT, |r| (r.reads, r.agent_cpu)));
    let top_rate = median(runs[FIT - 1].iter().flatten().map(rate).collect());
    let fit = format!(
        "| {name} | {top_rate:.0}/s | {} | {} | {} | {} | {} | {} |",
        w.show(1e3, " ms"),
        c.show(1e3 * cpus, " ms"),
        a.show(1e3, " ms"),
        w.show(100.0, "%"),
        c.show(100.0, "%"),
        a.show(100.0, "%"),
    );
    Ok(Rows {
        direct,
        fit,
        at_1s: (w.pooled * 100.0, c.pooled * 100.0),
        at_1s_worst: (w.hi * 100.0, c.hi * 100.0),
    })
}

/// The most BPF links serve holds while it watches `cmd` with `extra`, polled every 200 ms
/// from another thread (tests/src/pid.rs reads them from serve's fdinfo); None when that
/// failed (bpftool missing).
fn links_held(
    gmp: &Path,
    scratch: &Path,
    cmd: &[String],
    extra: &[&str],
) -> anyhow::Result<Option<usize>> {
    let agent = Agent::start(gmp, Path::new(&cmd[0]), extra)?;
    let pid = agent.child.id();
    let done = Arc::new(AtomicBool::new(false));
    let poll = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut most = 0;
            while !done.load(Ordering::Relaxed) {
                most = most.max(gmp_trace_tests::pid::links_held_by(pid).len());
                std::thread::sleep(Duration::from_millis(200));
            }
            most
        })
    };
    let run = run_once(gmp, Mode::Untraced, cmd, scratch);
    done.store(true, Ordering::Relaxed);
    let most = poll.join().ok();
    drop(agent);
    run?;
    Ok(most)
}

pub fn serve_overhead(gmp: &Path, scratch: &Path, runs: usize, go: &str) -> anyhow::Result<String> {
    let bench = build_sample("bench", go, Variant::Default);
    let workloads = [
        (
            "channel ping-pong (10M round trips)",
            workload(&bench, "pingpong", 10_000_000),
        ),
        (
            "spawn storm (5M goroutines)",
            workload(&bench, "spawn", 5_000_000),
        ),
        (
            "net/http at a bounded load (10k requests, 5k/s)",
            workload(&bench, "httprate", 10_000),
        ),
    ];
    let mut direct = String::new();
    let mut fit = String::new();
    let mut worst: (f64, f64) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut worst_round: (f64, f64) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut load = vec![loadavg()];
    for (name, cmd) in &workloads {
        let r = measure(gmp, scratch, runs, name, cmd)?;
        load.push(loadavg());
        eprintln!("{}\n{}", r.direct, r.fit);
        let _ = writeln!(direct, "{}", r.direct);
        let _ = writeln!(fit, "{}", r.fit);
        worst = (worst.0.max(r.at_1s.0), worst.1.max(r.at_1s.1));
        worst_round = (
            worst_round.0.max(r.at_1s_worst.0),
            worst_round.1.max(r.at_1s_worst.1),
        );
    }
    // The http workload: 2 s of steady requests, the same under either configuration.
    let check = &workloads[2].1;
    let default_links = links_held(gmp, scratch, check, CONFIGS[1].1)?;
    let sched_links = links_held(gmp, scratch, check, CONFIGS[SCHED].1)?;
    let load = load.iter().map(|l| format!("{l:.1}")).collect::<Vec<_>>();
    let mut t = text(
        &direct,
        &fit,
        worst,
        worst_round,
        (default_links, sched_links),
    );
    let _ = writeln!(
        t,
        "\nThe machine's 1-minute load average before the first workload and after each: {} \
         (other jobs shared it; the untraced spread above is the noise this made).",
        load.join(", ")
    );
    Ok(t)
}

/// The machine's 1-minute load average (NaN when unreadable).
fn loadavg() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

/// The section's text around the two tables.
fn text(
    direct: &str,
    fit: &str,
    worst: (f64, f64),
    worst_round: (f64, f64),
    links: (Option<usize>, Option<usize>),
) -> String {
    let at_default = |(w, c): (f64, f64)| (w / DEFAULT_INTERVAL_S, c / DEFAULT_INTERVAL_S);
    let (dw, dc) = at_default(worst);
    let (rw, rc) = at_default(worst_round);
    let d = DEFAULT_INTERVAL_S;
    let verdict = if dw <= 1.0 && dc <= 1.0 {
        "holds"
    } else {
        "does NOT hold"
    };
    let held = |n: Option<usize>| n.map_or("unknown (bpftool failed)".into(), |n| n.to_string());
    format!(
        "`gmp-trace serve --all --exe-filter BENCH --interval I` running while the workload \
         runs, against the same workload with no agent, on the workload's own time (wall and CPU \
         of its work, as it reports them); serve is started 300 ms before each run and stopped \
         after it. `serve` = the default sources at a 1 s interval (a read of the \
         runtime's memory, a few runtime globals and /proc each interval: no probe); `--with \
         sched` (1 s) adds the opt-in latency histogram's two uprobes (a trap on every goroutine \
         state change). Reads = reads of the workload serve made per run (median). Target for \
         the default sources: <= 1% slower, <= 1% more CPU.\n\n\
         | workload | untraced (min..max wall) | serve (1 s) | serve 100ms | serve 20ms | serve 10ms | serve --with sched |\n\
         |---|---|---|---|---|---|---|\n{direct}\n\
         At 1 s a run is read once or twice, a few ms of cost against an untraced spread of \
         tens to hundreds of ms: the 1 s column cannot show 1%. The shorter intervals raise the \
         same per-read cost 10-100x above the noise. Per read = the least-squares slope of the \
         workload's wall (CPU) time, as a fraction of its untraced median, against the reads \
         per second serve made of that run (untraced = 0; the rate, not the count, since at a \
         fixed interval a run the machine slows gets more reads), each round centred on its own \
         means (drift between rounds moves a round's line, not its slope): pooled over the \
         rounds, then each round's own slope (median, min..max). The slope is the fraction of \
         the workload's time one read a second costs, i.e. the change at 1 s; per read in ms = \
         that x 1 s (CPU: x the workload's CPUs in use). Agent = serve's own CPU seconds \
         (rusage) against its reads, over the four intervals (a pass also rescans /proc, so \
         this is per interval); at 1 s = per read / 1 s, a fraction of one CPU. A linear projection: at 10 ms a busy \
         agent competes with the workload for the two CPUs on every read, which is what a read \
         at 1 s does too, for its few ms.\n\n\
         | workload | read rate at 10 ms | wall per read | CPU per read | agent CPU per read | at 1 s: wall | at 1 s: CPU | at 1 s: agent (of one CPU) |\n\
         |---|---|---|---|---|---|---|---|\n{fit}\n\
         The <= 1% target with the default sources, at serve's default interval ({d} s: the \
         DaemonSet's; Prometheus scrapes every 15-60 s), {verdict} on these fits: at most \
         {dw:+.2}% wall and {dc:+.2}% CPU projected at {d} s (pooled; the worst single round's \
         slope: {rw:+.2}% wall, {rc:+.2}% CPU). At 1 s: at most {:+.2}% wall and {:+.2}% CPU \
         (pooled), the worst round {:+.2}% and {:+.2}%.\n\n\
         No probe by default: BPF links held by the serve process while it watched the bounded \
         HTTP workload (its fds' fdinfo, polled every 200 ms): {} with the default sources, {} \
         with `--with sched` (the check's control).\n",
        worst.0,
        worst.1,
        worst_round.0,
        worst_round.1,
        held(links.0),
        held(links.1),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slope_within_rounds() {
        // 2 ms per read, each round at its own level: the shared slope ignores the levels.
        let round = |base: f64| -> Vec<(f64, f64)> {
            [0.0, 2.0, 20.0, 100.0, 200.0]
                .iter()
                .map(|x| (*x, base + 0.002 * x))
                .collect()
        };
        let rounds = vec![round(1.0), round(1.5), round(4.0)];
        assert!((pooled_slope(&rounds) - 0.002).abs() < 1e-12);
        // Pooled naively, the same points would not give 2 ms once levels and reads
        // correlate: here the faster round reads less.
        let mut skew = round(1.0);
        skew.truncate(3);
        let rounds = vec![skew, round(4.0)];
        assert!((pooled_slope(&rounds) - 0.002).abs() < 1e-12);
        let f = Fit::of(&rounds);
        assert!((f.median - 0.002).abs() < 1e-12 && f.lo <= f.hi);
        assert!(pooled_slope(&[vec![(1.0, 1.0)]]).is_nan());
    }
}
