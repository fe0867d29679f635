//! The attach and detach section of `cargo xtask bench`, for both ways of linking uprobes
//! (`--uprobe-links multi` and `perf-event`) side by side, interleaved round by round:
//! - launch mode on the Go toolchain's `compile -V` (28 MB, exits at once): gmp-trace's start
//!   to every probe attached (summary `attach_ms`), its start to the child's exec (the exec
//!   event's timestamp against the clock read just before spawning gmp-trace), peak RSS and the
//!   whole run;
//! - --pid mode on a running `parker -loop`: SIGINT to gmp-trace's exit, which is the detach
//!   (the ring drain and the report are a few ms).
use std::fmt::Write as _;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use gmp_trace_tests::{build_sample, go_binary, Variant};

use crate::bench_daemon::Ctx;
use crate::measure::{json, median, monotonic_ns, num, run_measured};

const LINKS: [&str; 2] = ["multi", "perf-event"];

/// One launch of `compile -V`: (attach ms, start-to-exec ms, peak RSS MB, whole run s).
fn launch_once(cx: &Ctx, compile: &Path, links: &str) -> anyhow::Result<[f64; 4]> {
    let summary = cx.scratch.join("attach-summary.json");
    let events = cx.scratch.join("attach-events.jsonl");
    let t0 = monotonic_ns();
    let u = run_measured(
        Command::new(&cx.gmp)
            .arg("-q")
            .args(["--uprobe-links", links])
            .arg("--summary-json")
            .arg(&summary)
            .arg("-o")
            .arg(&events)
            .arg("--")
            .arg(compile)
            .arg("-V"),
        &cx.scratch,
    )?;
    let s = json(&summary)?;
    let text = std::fs::read_to_string(&events)?;
    let exec_ts = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["kind"] == "phase" && e["phase"] == "exec")
        .and_then(|e| e["ts"].as_u64())
        .context("no exec event in the launch run")?;
    Ok([
        num(&s, "attach_ms"),
        exec_ts.saturating_sub(t0) as f64 / 1e6,
        u.max_rss_kb as f64 / 1024.0,
        u.wall_s,
    ])
}

/// One --pid run on `pid`: attach, trace 300 ms, SIGINT; (ms from SIGINT to exit, links held).
fn detach_once(cx: &Ctx, pid: u32, links: &str) -> anyhow::Result<(f64, usize)> {
    let mut c = Command::new(&cx.gmp);
    c.args(["--pid", &pid.to_string(), "--uprobe-links", links])
        .arg("-o")
        .arg(cx.scratch.join("detach-events.jsonl"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .with_context(|| format!("running {}", crate::show(&c)))?;
    let mut err = BufReader::new(child.stderr.take().context("gmp-trace's stderr")?);
    let mut line = String::new();
    while !line.contains("attached to pid") {
        line.clear();
        if err.read_line(&mut line)? == 0 {
            bail!("gmp-trace --pid {pid} ended without attaching");
        }
    }
    // Drain the rest of stderr (the report) so gmp-trace never blocks on it.
    let drain = std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    std::thread::sleep(Duration::from_millis(300));
    let held = std::fs::read_dir(format!("/proc/{}/fdinfo", child.id()))?
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path()).is_ok_and(|t| t.contains("link_type:")))
        .count();
    let t = Instant::now();
    // SAFETY: kill has no memory-safety preconditions; the pid is our own child's.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let st = child.wait()?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    let _ = drain.join();
    if !st.success() {
        bail!("gmp-trace --pid {pid} ended with {st} after SIGINT");
    }
    Ok((ms, held))
}

/// Starts `parker -loop` and waits for its first line; the caller kills it.
fn start_parker(cx: &Ctx) -> anyhow::Result<std::process::Child> {
    let bin = build_sample("parker", cx.go, Variant::Default);
    let mut child = Command::new(&bin)
        .arg("-loop")
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))?;
    let mut first = String::new();
    BufReader::new(child.stdout.take().context("parker's stdout")?).read_line(&mut first)?;
    Ok(child)
}

fn compile_tool(cx: &Ctx) -> anyhow::Result<PathBuf> {
    let compile = go_binary(cx.go)
        .parent()
        .and_then(Path::parent)
        .map(|root| root.join("pkg/tool/linux_amd64/compile"))
        .unwrap_or_default();
    if !compile.exists() {
        bail!("no compile at {}", compile.display());
    }
    Ok(compile)
}

fn range(v: &[f64]) -> String {
    let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = v.iter().copied().fold(0.0, f64::max);
    format!("{lo:.0}..{hi:.0}")
}

pub fn attach(cx: &Ctx) -> anyhow::Result<String> {
    let compile = compile_tool(cx)?;
    let mut parker = start_parker(cx)?;
    let pid = parker.id();
    let mut launch: Vec<Vec<[f64; 4]>> = vec![Vec::new(); LINKS.len()];
    let mut detach: Vec<Vec<(f64, usize)>> = vec![Vec::new(); LINKS.len()];
    eprintln!("xtask: bench attach/detach: {} interleaved rounds", cx.runs);
    let measured = (|| -> anyhow::Result<()> {
        for _ in 0..cx.runs {
            for (i, links) in LINKS.iter().enumerate() {
                launch[i].push(launch_once(cx, &compile, links)?);
                detach[i].push(detach_once(cx, pid, links)?);
            }
        }
        Ok(())
    })();
    let _ = parker.kill();
    let _ = parker.wait();
    measured?;

    let mut t = format!(
        "Launch mode on the Go toolchain's `compile -V` ({:.1} MB; level full, every probe): \
         gmp-trace's start to every probe attached (reading the \
         binary, placing the probes, loading the BPF programs, attaching: summary `attach_ms`), \
         its start to the child's exec (the child is held until every probe is in), gmp-trace's \
         peak RSS, and the whole run including the detach.\n\n\
         | uprobe links | attach (median) | attach (min..max) | start to child's exec | peak RSS | whole run |\n\
         |---|---|---|---|---|---|\n",
        std::fs::metadata(&compile)?.len() as f64 / 1e6
    );
    for (i, links) in LINKS.iter().enumerate() {
        let col = |k: usize| launch[i].iter().map(|x| x[k]).collect::<Vec<f64>>();
        let _ = writeln!(
            t,
            "| {links} | {:.0} ms | {} ms | {:.0} ms | {:.1} MB | {:.2} s |",
            median(col(0)),
            range(&col(0)),
            median(col(1)),
            median(col(2)),
            median(col(3)),
        );
    }
    let _ = write!(
        t,
        "\n--pid mode on a running `parker -loop` (level full): from SIGINT to gmp-trace's exit \
         (draining the ring, the report, removing every probe). Links = BPF links gmp-trace held \
         while attached.\n\n\
         | uprobe links | links | detach (median) | detach (min..max) |\n|---|---|---|---|\n"
    );
    for (i, links) in LINKS.iter().enumerate() {
        let ms: Vec<f64> = detach[i].iter().map(|x| x.0).collect();
        let held = detach[i].first().map_or(0, |x| x.1);
        let _ = writeln!(
            t,
            "| {links} | {held} | {:.0} ms | {} ms |",
            median(ms.clone()),
            range(&ms)
        );
    }
    Ok(t)
}
