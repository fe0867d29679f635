//! `-f/--follow` under churn: a shell (not Go: the launched program is let run untraced and
//! its children followed) execs a short-lived Go sample over and over, some in parallel, with
//! non-Go execs in between. Watched from outside all along: no process of the tree stays
//! stopped (each exec is held only until its probes are in), gmp-trace's memory stays bounded;
//! at the end every Go exec is accounted for (traced, or listed with a reason), the exit code
//! is the shell's, and no BPF link gmp-trace held survives it.
use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::{all_link_ids, links_held_by};
use gmp_trace_tests::soak::vm_rss_kib;
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, scratch_dir, Variant, GO_VERSIONS,
};
use serde_json::Value;

/// How long the shell loop runs; the Go execs it manages in that time depend on the machine
/// (each is held while its BPF object is verified and attached).
const LOOP_SECS: u64 = 20;

/// Longest a process of the tree may be seen stopped: a held exec waits for its setup, which on
/// a loaded 2-core machine took up to ~3 s.
const MAX_STOPPED: Duration = Duration::from_secs(15);

/// `(ppid, state, starttime)` of `pid`.
fn stat(pid: u32) -> Option<(u32, char, u64)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some((
        f.get(1)?.parse().ok()?,
        f.first()?.chars().next()?,
        f.get(19)?.parse().ok()?,
    ))
}

/// Every process below `root` now, with its state and start time.
fn descendants(root: u32) -> Vec<(u32, char, u64)> {
    let all: Vec<(u32, u32, char, u64)> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| stat(pid).map(|(pp, st, start)| (pid, pp, st, start)))
        .collect();
    let mut below = HashSet::from([root]);
    let mut grew = true;
    while grew {
        grew = false;
        for &(pid, ppid, _, _) in &all {
            if below.contains(&ppid) && below.insert(pid) {
                grew = true;
            }
        }
    }
    all.into_iter()
        .filter(|(pid, ..)| *pid != root && below.contains(pid))
        .map(|(pid, _, st, start)| (pid, st, start))
        .collect()
}

#[test]
fn shell_loop_of_go_execs() {
    require_bpf!();
    let dir = scratch_dir("follow-stress");
    let bin = build_sample("execer", GO_VERSIONS[0], Variant::Default);
    let (sum, count, count_true) = (dir.join("s.json"), dir.join("count"), dir.join("true"));
    let script = format!(
        r#"E={bin}; n=0; t=0; end=$(( $(date +%s) + {LOOP_SECS} ))
while [ "$(date +%s)" -lt "$end" ]; do
  "$E" -child -workers 2 >/dev/null &
  "$E" -child -workers 2 >/dev/null &
  "$E" -child -workers 2 >/dev/null &
  for k in 1 2 3 4 5 6; do /bin/true & /bin/true; done
  "$E" -child -workers 2 >/dev/null
  wait
  n=$((n + 4)); t=$((t + 12))
done
echo "$n" > {count}
echo "$t" > {count_true}
exit 7"#,
        bin = bin.display(),
        count = count.display(),
        count_true = count_true.display()
    );
    let started = Instant::now();
    let mut gmp = Command::new(gmp_trace_bin())
        .args(["-f", "-q", "--level", "lifecycle", "--summary-json"])
        .arg(&sum)
        .args(["--", "/bin/sh", "-c", &script])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let gpid = gmp.id();
    let stderr = std::thread::spawn({
        let mut e = gmp.stderr.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        }
    });

    // Watched from outside while it runs: stopped processes, gmp-trace's RSS, its links.
    let mut stopped_since: HashMap<(u32, u64), Instant> = HashMap::new();
    let mut ever: HashSet<(u32, u64)> = HashSet::new();
    let mut longest_stopped = Duration::ZERO;
    let mut rss: Vec<(f64, u64)> = Vec::new();
    let mut links = HashSet::new();
    let mut last_links = Instant::now() - Duration::from_secs(10);
    let status = loop {
        if let Some(st) = gmp.try_wait().unwrap() {
            break st;
        }
        let now = Instant::now();
        let seen = descendants(gpid);
        stopped_since.retain(|k, _| seen.iter().any(|(p, s, t)| (*p, *t) == *k && *s == 'T'));
        for (pid, st, start) in seen {
            ever.insert((pid, start));
            if st == 'T' {
                let since = *stopped_since.entry((pid, start)).or_insert(now);
                longest_stopped = longest_stopped.max(now - since);
            }
        }
        assert!(
            longest_stopped < MAX_STOPPED,
            "a process of the tree was left stopped: {stopped_since:?}"
        );
        if let Some(kib) = vm_rss_kib(gpid) {
            rss.push((started.elapsed().as_secs_f64(), kib));
        }
        if now - last_links > Duration::from_secs(3) {
            links.extend(links_held_by(gpid).into_iter().map(|l| l.id));
            last_links = now;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let stderr = stderr.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(7), "the shell's exit code: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    // Every Go exec is in processes[] or not_traced[] with a reason.
    let n: usize = std::fs::read_to_string(&count)
        .unwrap_or_else(|e| panic!("the loop wrote no count ({e}): {stderr}"))
        .trim()
        .parse()
        .unwrap();
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&sum).unwrap()).unwrap();
    let exe = bin.to_str().unwrap();
    let traced = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["exe"] == exe)
        .count();
    let nt = s["not_traced"].as_array().unwrap();
    let go_not_traced: Vec<&Value> = nt
        .iter()
        .filter(|p| p["reason"] != "not Go, not traced")
        .collect();
    for p in &go_not_traced {
        assert!(!p["reason"].as_str().unwrap().is_empty(), "{p}");
    }
    assert_eq!(
        traced + go_not_traced.len(),
        n,
        "{n} Go execs: {traced} traced, not traced: {go_not_traced:?}"
    );
    assert!(
        traced * 10 >= n * 9,
        "most Go execs traced: {traced} of {n}: {go_not_traced:?}"
    );
    let root = nt.iter().find(|p| {
        p["reason"] == "not Go, not traced" && p["exe"].as_str().is_some_and(|e| e.ends_with("sh"))
    });
    assert!(root.is_some(), "the shell is listed as not Go: {nt:?}");
    // Every non-Go exec (stopped and continued at once) is counted, in one entry per program.
    let t: u64 = std::fs::read_to_string(&count_true)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let trues: Vec<&Value> = nt
        .iter()
        .filter(|p| {
            p["reason"] == "not Go, not traced"
                && p["exe"].as_str().is_some_and(|e| e.ends_with("/true"))
        })
        .collect();
    assert_eq!(trues.len(), 1, "one entry for /bin/true: {trues:?}");
    assert_eq!(trues[0]["count"], t, "/bin/true runs counted as not Go");
    let held: Vec<u64> = s["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["exec_held_ns"].as_u64())
        .collect();

    // Nothing of the tree is left, stopped or otherwise; nothing gmp-trace attached remains.
    let left: Vec<_> = ever
        .iter()
        .filter(|(pid, start)| stat(*pid).is_some_and(|(_, _, t)| t == *start))
        .collect();
    assert!(left.is_empty(), "processes of the tree left: {left:?}");
    // The watch looks every 100 ms: it sees the held and the longer-lived members, not every
    // short one (more of them slip between looks the faster execs are let go).
    assert!(
        ever.len() * 2 > n,
        "the tree was watched ({} processes seen, {n} Go execs)",
        ever.len()
    );
    let all = all_link_ids();
    let stayed: Vec<_> = links.iter().filter(|l| all.contains(l)).collect();
    assert!(!links.is_empty(), "no link of gmp-trace was seen");
    assert!(
        stayed.is_empty(),
        "links left after gmp-trace exited: {stayed:?}"
    );

    // Memory follows what is alive: the last quarter's peak is not far above the first's.
    let quarter = |from: f64, to: f64| {
        let span = elapsed.as_secs_f64();
        rss.iter()
            .filter(|(t, _)| *t >= span * from && *t < span * to)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0)
    };
    let (early, late) = (quarter(0.1, 0.35), quarter(0.75, 1.0));
    let mut sorted = held.clone();
    sorted.sort_unstable();
    eprintln!(
        "{n} Go execs and {t} /bin/true in {elapsed:?}: {traced} traced; held at exec: median {} ms, max {} ms; \
         longest seen stopped {longest_stopped:?}; RSS early {early} KiB, late {late} KiB; \
         root listed as {root:?}",
        sorted.get(sorted.len() / 2).copied().unwrap_or(0) / 1_000_000,
        sorted.last().copied().unwrap_or(0) / 1_000_000,
    );
    assert!(n >= 40, "the loop ran only {n} Go execs");
    assert!(early > 0 && late > 0, "{rss:?}");
    assert!(
        late <= early + early / 2 + 20 * 1024,
        "gmp-trace's RSS grew from {early} KiB to {late} KiB: {rss:?}"
    );
}
