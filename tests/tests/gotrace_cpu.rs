//! `--sample-rate` with `--format go` (issue 19): the CPU sampler's samples go into our Go trace
//! as Go's own CPU samples, and Go 1.27.3's trace reader (`go tool trace -d=parsed`) reads them
//! with their goroutine, thread, P and stack. Checked on `burn`, which spends CPU in main.burnA
//! and main.burnB at a known 3:1 on one P and prints both goroutines' ids: the samples split
//! 3:1 between those goroutines, each sample's stack has its goroutine's function under the
//! shared leaf main.spin, and the summary's counts match the file. Newest and oldest Go.
//! Needs root and BPF.
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use gmp_trace_tests::{go_binary, require_bpf, Sample, Variant, ALL_GO_VERSIONS, GO_VERSIONS};

/// One CPU sample as the reader gives it.
#[derive(Debug)]
struct Sampled {
    m: u64,
    p: i64,
    g: u64,
    /// Function names, innermost first.
    stack: Vec<String>,
}

/// The `StackSample` events of `go tool trace -d=parsed` (Go 1.27.3): a header line
/// `M=.. P=.. G=.. StackSample Time=..`, then `Stack=` and two lines per frame (a tab and the
/// function @ pc, two tabs and file:line).
fn go_samples(file: &Path) -> Vec<Sampled> {
    let o = Command::new(go_binary(GO_VERSIONS[0]))
        .args(["tool", "trace", "-d=parsed"])
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .output()
        .expect("run go tool trace");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "go tool trace rejected {}:\n{}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    let field = |line: &str, key: &str| -> i64 {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(-1)
    };
    let mut out: Vec<Sampled> = Vec::new();
    let mut in_sample = false;
    for line in text.lines() {
        if line.contains(" StackSample ") {
            out.push(Sampled {
                m: field(line, "M=") as u64,
                p: field(line, "P="),
                g: field(line, "G=").max(0) as u64,
                stack: Vec::new(),
            });
            in_sample = true;
        } else if in_sample && line.starts_with('\t') && !line.starts_with("\t\t") {
            let func = line.trim().split(" @ ").next().unwrap_or("").to_string();
            if let Some(s) = out.last_mut() {
                s.stack.push(func);
            }
        } else if !line.starts_with('\t') && line != "Stack=" {
            in_sample = false;
        }
    }
    out
}

fn cpu_samples_in_go_trace(go: &str) {
    let s = Sample::build("burn", go, Variant::Default);
    let run = s
        .trace(&format!("gotrace-cpu-{go}"))
        .output("burn.gotrace")
        .opts(["--sample-rate", "499"])
        .args(["-d", "2s"])
        .run();
    assert!(run.status.success(), "{}", run.stderr);
    let goid = |name: &str| -> u64 {
        run.stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|g| g.trim().parse().ok())
            .unwrap_or_else(|| panic!("burn printed no {name} goid: {}", run.stdout))
    };
    let (a, b) = (goid("burnA"), goid("burnB"));
    let counts = &run.summary["cpu_samples"];
    let samples = go_samples(&run.dir.join("burn.gotrace"));
    // Everything the summary says went in, the reader reads. The clock samples CPU time: ~1,000
    // for 2 s at 499 Hz of one busy thread on a quiet machine, a few hundred on a loaded one.
    assert_eq!(counts["written"], samples.len() as u64, "{counts}");
    assert!(samples.len() >= 60, "{} samples: {counts}", samples.len());
    assert_eq!(counts["dropped"], 0, "{counts}");

    let mut by_g: BTreeMap<u64, u64> = BTreeMap::new();
    for x in &samples {
        *by_g.entry(x.g).or_default() += 1;
    }
    let (na, nb) = (
        by_g.get(&a).copied().unwrap_or(0),
        by_g.get(&b).copied().unwrap_or(0),
    );
    let share = 100.0 * na as f64 / (na + nb).max(1) as f64;
    // 75% within 7 points, or three standard deviations of a binomial share when the samples
    // are few (a loaded machine gives burn less CPU time to sample).
    let sigma = 100.0 * (0.75f64 * 0.25 / (na + nb).max(1) as f64).sqrt();
    let tolerance = (3.0 * sigma).max(7.0);
    assert!(
        (share - 75.0).abs() <= tolerance,
        "burnA's goroutine has {share:.1}% of the two's samples ({na} vs {nb}; 75 +- \
         {tolerance:.1} wanted); by goroutine: {by_g:?}"
    );
    // Each goroutine's samples carry its own function (under the shared leaf, which most hit),
    // run on a thread (M = its tid) holding P 0 (burn runs with GOMAXPROCS 1).
    for (g, own, other) in [
        (a, "main.burnA", "main.burnB"),
        (b, "main.burnB", "main.burnA"),
    ] {
        let mine: Vec<&Sampled> = samples.iter().filter(|x| x.g == g).collect();
        let with_own = mine
            .iter()
            .filter(|x| x.stack.iter().any(|f| f == own))
            .count();
        let with_other = mine
            .iter()
            .filter(|x| x.stack.iter().any(|f| f == other))
            .count();
        assert!(
            with_own * 100 >= mine.len() * 95,
            "{own}: {with_own} of {} of its goroutine's samples name it; e.g. {:?}",
            mine.len(),
            mine.iter().find(|x| !x.stack.iter().any(|f| f == own))
        );
        assert_eq!(with_other, 0, "{other} in goroutine {g}'s samples");
        let spin = mine
            .iter()
            .filter(|x| x.stack.first().is_some_and(|f| f == "main.spin"))
            .count();
        assert!(
            spin * 2 >= mine.len(),
            "{spin} of {} in main.spin",
            mine.len()
        );
        assert!(
            mine.iter().all(|x| x.p == 0 && x.m > 0),
            "{:?}",
            mine.first()
        );
    }
    println!(
        "Go {go}: {} samples in the Go trace, burnA {share:.1}% ({na} vs {nb}); {counts}",
        samples.len()
    );
}

#[test]
fn cpu_samples_in_go_trace_newest_go() {
    require_bpf!();
    cpu_samples_in_go_trace(GO_VERSIONS[0]);
}

#[test]
fn cpu_samples_in_go_trace_oldest_go() {
    require_bpf!();
    cpu_samples_in_go_trace(ALL_GO_VERSIONS[ALL_GO_VERSIONS.len() - 1]);
}

/// Samples only have a home in the Go trace: asked for without it, a clear word before anything
/// runs.
#[test]
fn sample_rate_needs_the_go_format() {
    require_bpf!();
    let s = Sample::build("burn", GO_VERSIONS[0], Variant::Default);
    let run = s
        .trace("gotrace-cpu-refused")
        .output("x.pftrace")
        .no_summary()
        .opts(["--sample-rate", "99"])
        .args(["-d", "100ms"])
        .run();
    assert!(!run.status.success(), "{}", run.stderr);
    assert!(
        run.stderr.contains("--sample-rate") && run.stderr.contains("--format go"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty(), "burn ran: {}", run.stdout);
}
