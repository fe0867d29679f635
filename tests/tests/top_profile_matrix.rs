//! `gmp-trace top` and `gmp-trace profile` on every Go toolchain of the matrix (ALL_GO_VERSIONS)
//! crossed with every build variant (default, stripped, PIE, cgo, and the cgo PIE builds
//! `-buildmode=pie` gives a cgo program, stripped or not: their C linker puts `.gopclntab`
//! inside `.data.rel.ro` before Go 1.26), against tests/go/leaky run
//! with SPIN=1 LEAK_EVERY_MS=0: a pool of POOL goroutines parked for good (created in
//! main.startPool), one goroutine main.spin burning a CPU (created in main.main), and a count
//! that stays as it is. leaky prints the spinner's goid and runtime.NumGoroutine() once ready.
//!
//! What is held:
//! - `top --pid N --batch -n 2 --interval 300ms`: each frame's goroutine total is the program's
//!   runtime.NumGoroutine() plus the runtime's own goroutines. top counts every goroutine that
//!   is not dead, the runtime's included (bgsweep, the scavenger, forcegc, the finalizer
//!   goroutine, GC mark workers); NumGoroutine leaves those out. The runtime's own are the ones
//!   created by a `runtime.` function (Go's isSystemGoroutine: a start function in package
//!   runtime, runtime.main aside, and runtime.main has no creation site), so the frame's
//!   creation sites tell them apart. The pool and the spinner are named at their sites, and
//!   the CPU panel has samples, the spinner's start function first.
//! - `profile --pid N -d 1s`: read back by `go tool pprof`, the function with the most flat time
//!   is main.spin, and the goid and start_function labels put most samples on the spinner's
//!   goid and main.spin.
//!
//! The combinations run a few at a time in threads (each builds its sample, once per source
//! change, then starts a process and a sampler of its own); every combination is tried and all
//! failures are reported together, with a line per combination.
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Mutex;

use gmp_trace_tests::pid::Target;
use gmp_trace_tests::pprof::{go_pprof, parse_tags, parse_top};
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, require_bpf, scratch_dir, Variant, ALL_GO_VERSIONS,
};

const POOL: usize = 8;

/// Every variant of the matrix, and the cgo PIE builds.
const VARIANTS: [Variant; 6] = [
    Variant::Default,
    Variant::Stripped,
    Variant::Pie,
    Variant::Cgo,
    Variant::CgoPie,
    Variant::CgoPieStripped,
];

/// Combinations at once: 2 vCPUs, each combination a spinning target plus gmp-trace; more
/// would only starve the spinners of the samples the tests count on.
const THREADS: usize = 3;

/// The two tests are not run side by side (the harness would): each already fills the machine.
static ONE_MATRIX_AT_A_TIME: Mutex<()> = Mutex::new(());

/// leaky running with its count steady, and what it said of itself.
struct Leaky {
    target: Target,
    pid: u32,
    spin_goid: u64,
    /// runtime.NumGoroutine() once everything was started.
    num_goroutine: usize,
}

fn start_leaky(version: &str, variant: Variant) -> Leaky {
    let bin = build_sample("leaky", version, variant);
    let mut target = Target(
        Command::new(&bin)
            .env("POOL", POOL.to_string())
            .env("LEAK_EVERY_MS", "0")
            .env("SPIN", "1")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start leaky"),
    );
    let pid = target.0.id();
    let out = target.0.stdout.take().expect("leaky's stdout");
    let mut lines = BufReader::new(out).lines().map_while(Result::ok);
    let mut next = |prefix: &str| -> String {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("leaky ended before its {prefix:?} line"));
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?}..., leaky said {line:?}"))
            .trim()
            .to_string()
    };
    assert_eq!(next("ready "), POOL.to_string());
    let spin_goid = next("spin ").parse().expect("the spinner's goid");
    let num_goroutine = next("goroutines ").parse().expect("NumGoroutine");
    Leaky {
        target,
        pid,
        spin_goid,
        num_goroutine,
    }
}

/// Runs `check` for every toolchain and variant, THREADS at a time; prints a line per
/// combination (its result or its failure) and fails with every failure at once.
fn for_every_combination(what: &str, check: impl Fn(&str, Variant) -> String + Sync) {
    let _one = ONE_MATRIX_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let todo: Mutex<Vec<(&str, Variant)>> = Mutex::new(
        ALL_GO_VERSIONS
            .iter()
            .flat_map(|&v| VARIANTS.map(|x| (v, x)))
            .rev()
            .collect(),
    );
    let results = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..THREADS {
            s.spawn(|| loop {
                let Some((version, variant)) = todo.lock().unwrap().pop() else {
                    return;
                };
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    check(version, variant)
                }))
                .map_err(|e| {
                    e.downcast_ref::<String>()
                        .cloned()
                        .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_else(|| "panicked".into())
                });
                results.lock().unwrap().push((version, variant, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    let order = |v: &str| ALL_GO_VERSIONS.iter().position(|x| *x == v);
    results.sort_by_key(|(v, x, _)| (order(v), VARIANTS.iter().position(|y| y == x)));
    let mut failed = Vec::new();
    for (version, variant, r) in &results {
        let name = format!("{what} Go {version} {}", variant.name());
        match r {
            Ok(line) => println!("{name:<36} ok: {line}"),
            Err(e) => {
                println!(
                    "{name:<36} FAILED: {}",
                    e.lines().next().unwrap_or_default()
                );
                failed.push(format!("{name}: {e}"));
            }
        }
    }
    assert_eq!(results.len(), ALL_GO_VERSIONS.len() * VARIANTS.len());
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// One `top --batch` frame, the parts this test reads.
#[derive(Debug, Default)]
struct Frame {
    goroutines: usize,
    /// (created by: function, live)
    sites: Vec<(String, usize)>,
    sites_cut: bool,
    cpu_samples: u64,
    /// "by start function" rows, most samples first: (function, samples).
    cpu_by_start: Vec<(String, u64)>,
}

impl Frame {
    fn live_at(&self, function: &str) -> usize {
        self.sites
            .iter()
            .filter(|s| s.0 == function)
            .map(|s| s.1)
            .sum()
    }
}

fn parse_frames(text: &str) -> Vec<Frame> {
    #[derive(PartialEq)]
    enum In {
        Other,
        Sites,
        CpuByStart,
    }
    let mut frames: Vec<Frame> = Vec::new();
    let mut at = In::Other;
    for line in text.lines() {
        if line.starts_with("gmp-trace top - ") {
            frames.push(Frame::default());
            at = In::Other;
            continue;
        }
        let f = frames
            .last_mut()
            .unwrap_or_else(|| panic!("text before the first frame title: {line:?}"));
        let words: Vec<&str> = line.split_whitespace().collect();
        if let Some(rest) = line.strip_prefix("Goroutines: ") {
            f.goroutines = rest.split_whitespace().next().unwrap().parse().unwrap();
        } else if line.starts_with("Creation sites") {
            at = In::Sites;
        } else if let Some(rest) = line.strip_prefix("CPU: ") {
            f.cpu_samples = rest.split_whitespace().next().unwrap().parse().unwrap();
            at = In::Other;
        } else if line.trim() == "by start function:" {
            at = In::CpuByStart;
        } else if line.trim() == "by function:" || line.starts_with("samples lost:") {
            at = In::Other;
        } else if at == In::Sites && line.trim_start().starts_with("...") {
            f.sites_cut = true;
        } else if at == In::Sites && words.len() >= 5 && words[0].parse::<usize>().is_ok() {
            // live attach recent [leak?] function file:line
            let function = if words[3] == "leak?" {
                words[4]
            } else {
                words[3]
            };
            f.sites
                .push((function.to_string(), words[0].parse().unwrap()));
        } else if at == In::CpuByStart && words.len() >= 3 {
            f.cpu_by_start
                .push((words[2..].join(" "), words[1].parse().unwrap()));
        }
    }
    frames
}

/// One combination of the top matrix; returns what it saw.
fn top_once(version: &str, variant: Variant) -> String {
    let l = start_leaky(version, variant);
    let o = Command::new(gmp_trace_bin())
        .args(["top", "--pid", &l.pid.to_string()])
        .args(["--batch", "-n", "2", "--interval", "300ms"])
        .stdin(Stdio::null())
        .output()
        .expect("run gmp-trace top");
    drop(l.target);
    let out = String::from_utf8_lossy(&o.stdout);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("panicked"),
        "top failed ({}): {err}\n{out}",
        o.status
    );
    let frames = parse_frames(&out);
    assert_eq!(frames.len(), 2, "expected 2 frames:\n{out}");
    let mut runtime_own = 0;
    for (i, f) in frames.iter().enumerate() {
        assert!(!f.sites_cut, "frame {i}: sites left out:\n{out}");
        // Only goroutine 1 (runtime.main) has no creation site.
        let by_site: usize = f.sites.iter().map(|s| s.1).sum();
        assert_eq!(
            f.goroutines,
            by_site + 1,
            "frame {i}: total vs sites:\n{out}"
        );
        runtime_own = f
            .sites
            .iter()
            .filter(|s| s.0.starts_with("runtime."))
            .map(|s| s.1)
            .sum::<usize>();
        assert_eq!(
            f.goroutines,
            l.num_goroutine + runtime_own,
            "frame {i}: {} goroutines, runtime.NumGoroutine() said {} and {runtime_own} are \
             the runtime's own:\n{out}",
            f.goroutines,
            l.num_goroutine
        );
        assert_eq!(
            f.live_at("main.startPool"),
            POOL,
            "frame {i}: the pool:\n{out}"
        );
        assert_eq!(
            f.live_at("main.main"),
            1,
            "frame {i}: the spinner's site:\n{out}"
        );
        assert!(f.cpu_samples > 0, "frame {i}: no CPU samples:\n{out}");
        // First, or tied for first: a frame on a loaded machine may hold two samples.
        let spin = f
            .cpu_by_start
            .iter()
            .find(|r| r.0 == "main.spin")
            .map(|r| r.1);
        let most = f.cpu_by_start.iter().map(|r| r.1).max();
        assert!(
            spin.is_some() && spin == most,
            "frame {i}: the spinner is not first by start function:\n{out}"
        );
    }
    let samples: u64 = frames.iter().map(|f| f.cpu_samples).sum();
    format!(
        "{} goroutines = NumGoroutine {} + {runtime_own} runtime's; {samples} samples, main.spin first",
        frames[1].goroutines, l.num_goroutine
    )
}

#[test]
fn top_counts_the_goroutines_on_every_toolchain_and_variant() {
    require_bpf!();
    for_every_combination("top", top_once);
}

/// One combination of the profile matrix; returns what it saw.
fn profile_once(version: &str, variant: Variant) -> String {
    let l = start_leaky(version, variant);
    let dir = scratch_dir(&format!("profile-matrix-{version}-{}", variant.name()));
    let file = dir.join("cpu.pb.gz");
    let o = Command::new(gmp_trace_bin())
        .args(["profile", "--pid", &l.pid.to_string(), "-d", "1s", "-o"])
        .arg(&file)
        .stdin(Stdio::null())
        .output()
        .expect("run gmp-trace profile");
    drop(l.target);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("panicked"),
        "profile failed ({}): {err}",
        o.status
    );
    check_spin_profile(&file, l.spin_goid)
}

/// The profile of a spinning leaky, read with `go tool pprof`.
fn check_spin_profile(file: &Path, spin_goid: u64) -> String {
    let run = go_pprof(&["-top"], file);
    let top = parse_top(&run.stdout);
    let (hot, row) = top
        .rows
        .iter()
        .max_by(|a, b| a.1.flat_ns.total_cmp(&b.1.flat_ns))
        .unwrap_or_else(|| panic!("an empty profile:\n{}", run.stdout));
    assert_eq!(hot, "main.spin", "the hottest function:\n{}", run.stdout);
    // Of the samples in user code. Samples in the kernel are ones Go's own SIGPROF profiler
    // never takes (it is charged on the way back to user mode), and on a loaded machine there
    // are more of them, most with no user stack under them (13% of one CI run, with sysmon
    // preempting the spinner; 0-3% on a quiet machine).
    let kernel_ns = top.rows.get("[kernel]").map_or(0.0, |r| r.flat_ns);
    let flat_pct = 100.0 * row.flat_ns / (top.total_ns - kernel_ns);
    assert!(
        flat_pct >= 80.0,
        "main.spin has {flat_pct:.1}% of the samples in user code:\n{}",
        run.stdout
    );
    let run = go_pprof(&["-tags"], file);
    let tags = parse_tags(&run.stdout);
    let share = |key: &str, value: &str| -> f64 {
        tags.get(key)
            .unwrap_or_else(|| panic!("no {key} label:\n{}", run.stdout))
            .get(value)
            .copied()
            .unwrap_or(0.0)
    };
    let goid = share("goid", &spin_goid.to_string());
    assert!(
        goid >= 80.0,
        "goid {spin_goid} (the spinner) has {goid}%:\n{}",
        run.stdout
    );
    let start = share("start_function", "main.spin");
    assert!(
        start >= 80.0,
        "start_function main.spin has {start}%:\n{}",
        run.stdout
    );
    format!(
        "main.spin {flat_pct:.0}% flat in user code, goid {spin_goid} {goid:.0}%, start_function main.spin {start:.0}%"
    )
}

#[test]
fn profile_names_the_spinner_on_every_toolchain_and_variant() {
    require_bpf!();
    for_every_combination("profile", profile_once);
}
