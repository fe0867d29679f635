//! Measuring helpers shared by the bench sections: medians, a child's own resource usage
//! (wait4), the summary JSON gmp-trace writes, and the clock the events carry.
use std::fs::File;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _};

/// The median of `v` (NaN when empty).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[v.len() / 2]
}

/// What a finished child cost: wall time, CPU time (user + system) and peak RSS.
pub struct Usage {
    pub wall_s: f64,
    pub cpu_s: f64,
    pub max_rss_kb: u64,
}

/// Runs `c` to completion and reads its own resource usage (wait4), not its children's.
pub fn run_measured(c: &mut Command, scratch: &Path) -> anyhow::Result<Usage> {
    let out_path = scratch.join("child.stdout");
    let err_path = scratch.join("child.stderr");
    c.stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .stdin(Stdio::null());
    let t0 = std::time::Instant::now();
    let child = c
        .spawn()
        .with_context(|| format!("running {}", crate::show(c)))?;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to overwrite.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child's pid, writing to two valid locals. The Child is never
    // waited for through std afterwards (it is dropped, which does not wait).
    let r = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru) };
    let wall_s = t0.elapsed().as_secs_f64();
    if r < 0 {
        bail!(
            "waiting for {}: {}",
            crate::show(c),
            std::io::Error::last_os_error()
        );
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!(
            "{} failed (status {status:#x}): {}",
            crate::show(c),
            std::fs::read_to_string(&err_path).unwrap_or_default()
        );
    }
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    Ok(Usage {
        wall_s,
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        max_rss_kb: ru.ru_maxrss as u64,
    })
}

/// The summary JSON (or any JSON file) at `path`.
pub fn json(path: &Path) -> anyhow::Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(serde_json::from_str(&text)?)
}

/// A number field of a JSON object (NaN when absent).
pub fn num(v: &serde_json::Value, k: &str) -> f64 {
    v[k].as_f64().unwrap_or(f64::NAN)
}

/// CLOCK_MONOTONIC in ns: the clock of gmp-trace's events.
pub fn monotonic_ns() -> u64 {
    // SAFETY: a zeroed timespec is a valid value for clock_gettime to overwrite.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: clock_gettime writes one timespec to a valid local.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
