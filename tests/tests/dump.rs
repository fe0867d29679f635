//! `gmp-trace dump --pid N` held against the ground truth: tests/go/parked parks goroutines in
//! every way a dump has to show and writes `runtime.Stack(buf, true)` of itself; the dump read
//! from its memory afterwards must name the same goroutines, states, `created by` and frames, on
//! every installed toolchain and build variant. Also: `--group`, the JSON form, and bad input.
//!
//! `parked_sample_parks_every_way` checks the sample and the parser on Go's own output alone
//! (it needs no gmp-trace); the others need the `dump` command.
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gmp_trace_tests::godump::{self, Agreement, GoCreatedBy, GoDump, GoFrame, GoGoroutine};
use gmp_trace_tests::pid::Target;
use gmp_trace_tests::{
    build_sample, gmp_trace_bin, go_binary_path, scratch_dir, with_go_version, Variant,
    ALL_GO_VERSIONS, GO_VERSIONS,
};
use serde_json::Value;

/// The toolchains installed here (every one `cargo xtask bootstrap` installs, normally).
fn installed_toolchains() -> Vec<&'static str> {
    let v: Vec<_> = ALL_GO_VERSIONS
        .iter()
        .copied()
        .filter(|v| go_binary_path(v).exists())
        .collect();
    assert!(
        !v.is_empty(),
        "no Go toolchain: run `cargo xtask bootstrap`"
    );
    v
}

/// 27 for "1.27.3".
fn minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap()
}

/// tests/go/parked running, every goroutine parked, Go's dump of itself read back.
struct Parked {
    target: Target,
    pid: u32,
    /// The goroutine that wrote Go's dump (gone by now): left out of every comparison.
    writer: u64,
    go: GoDump,
    dir: PathBuf,
}

/// Starts parked (built with `version`, `variant`; `extra` identical chan-receive goroutines
/// more) and waits for its dump and its "writer GOID" line.
fn start_parked(version: &str, variant: Variant, extra: usize, scratch: &str) -> Parked {
    let bin = build_sample("parked", version, variant);
    start_parked_bin(&bin, version, variant, extra, scratch, |_| {})
}

/// [`start_parked`] of the binary at `bin`; `started` runs once the process is up (before it
/// wrote its dump), e.g. to delete the file.
fn start_parked_bin(
    bin: &Path,
    version: &str,
    variant: Variant,
    extra: usize,
    scratch: &str,
    started: impl FnOnce(&Path),
) -> Parked {
    let dir = scratch_dir(scratch);
    let path = dir.join("go-dump.txt");
    let mut target = Target(
        Command::new(bin)
            .arg(&path)
            .env("PARKED_EXTRA", extra.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parked"),
    );
    let pid = target.0.id();
    started(bin);
    let stdout = target.0.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("parked (Go {version}, {variant:?}) wrote no dump in 60 s"));
    let writer = line
        .trim()
        .strip_prefix("writer ")
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("parked said {line:?}, not \"writer GOID\""));
    let text = std::fs::read_to_string(&path).expect("parked's dump file");
    let go = godump::parse(&text)
        .unwrap_or_else(|e| panic!("Go's dump at {} does not parse: {e}", path.display()));
    Parked {
        target,
        pid,
        writer,
        go,
        dir,
    }
}

fn gmp_trace_dump(pid: u32, args: &[&str]) -> Output {
    Command::new(gmp_trace_bin())
        .args(["dump", "--pid", &pid.to_string()])
        .args(args)
        .output()
        .expect("run gmp-trace")
}

/// A successful dump's stdout; panics with gmp-trace's stderr otherwise.
fn dump_ok(pid: u32, args: &[&str]) -> String {
    let o = gmp_trace_dump(pid, args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.success() && !err.contains("panicked"),
        "gmp-trace dump --pid {pid} {args:?} failed ({}):\n{err}",
        o.status
    );
    String::from_utf8(o.stdout).expect("dump text is UTF-8")
}

fn parse_ours(text: &str, what: &str) -> GoDump {
    godump::parse(text).unwrap_or_else(|e| panic!("{what}: our dump does not parse: {e}\n{text}"))
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// Our JSON's goroutines in the shape of a parsed text dump, with Go's print rules applied to
/// what the text would hide: system goroutines left out, the state is the wait reason of a
/// waiting goroutine, `created by` is not shown for goroutine 1 or a runtime creator.
fn dump_from_json(v: &Value) -> GoDump {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let goroutines = v["goroutines"]
        .as_array()
        .expect("goroutines is an array")
        .iter()
        .filter(|g| g["system"] != Value::Bool(true))
        .map(|g| {
            let goid = g["goid"].as_u64().expect("goid");
            let status = text(&g["status"]);
            let state = match g["wait_reason"].as_str() {
                Some(r) if status == "waiting" => r.to_string(),
                _ => status,
            };
            let created_by = Some(&g["created_by"])
                .filter(|c| !c.is_null() && goid != 1)
                .map(|c| GoCreatedBy {
                    function: text(&c["function"]),
                    goid: c["goid"].as_u64(),
                    file: text(&c["file"]),
                    line: c["line"].as_u64().unwrap_or_default() as u32,
                })
                .filter(|c| !c.function.starts_with("runtime."));
            let frames = g["frames"].as_array().map_or(Vec::new(), |fs| {
                fs.iter()
                    // Wrappers (method and `go` statement wrappers) are in the JSON, marked;
                    // the text hides them as Go does.
                    .filter(|f| f["wrapper"] != Value::Bool(true))
                    .map(|f| GoFrame {
                        function: text(&f["function"]),
                        file: text(&f["file"]),
                        line: f["line"].as_u64().unwrap_or_default() as u32,
                        has_offset: !f["offset"].is_null(),
                    })
                    .collect()
            });
            GoGoroutine {
                goid,
                state,
                minutes: None,
                locked: g["locked_to_thread"] == Value::Bool(true),
                frames,
                elided: None,
                created_by,
                unavailable: g["stack"] == "running",
            }
        })
        .collect();
    GoDump { goroutines }
}

/// The JSON's header fields, for a dump of `pid` (Go `version`) taken between `before` and
/// `after` (ns since the epoch).
fn check_json_header(v: &Value, pid: u32, version: &str, before: u64, after: u64) {
    assert_eq!(v["pid"].as_u64(), Some(u64::from(pid)), "pid");
    let go_version = v["go_version"].as_str().expect("go_version");
    let release = format!("go1.{}", minor(version));
    assert!(
        go_version == release || go_version.starts_with(&format!("{release}.")),
        "go_version {go_version:?} for Go {version}"
    );
    let taken = v["taken_at_ns"].as_u64().expect("taken_at_ns");
    assert!(
        (before..=after).contains(&taken),
        "taken_at_ns {taken} outside the run"
    );
    let took = v["duration_ns"].as_u64().expect("duration_ns");
    assert!(took > 0 && took <= after - before, "duration_ns {took}");
    for list in ["threads", "procs", "goroutines"] {
        let n = v[list].as_array().map_or(0, |a| a.len());
        assert!(n > 0, "{list}: none in {v}");
    }
    assert_eq!(
        v["torn_reads"].as_u64(),
        Some(0),
        "torn_reads of a parked process"
    );
    assert!(v["incomplete"].is_null(), "incomplete: {}", v["incomplete"]);
}

/// One toolchain and variant: our text against Go's, our JSON against our text.
fn agree_once(version: &str, variant: Variant) -> (Agreement, Agreement) {
    let name = format!("Go {version} {}", variant.name());
    let p = start_parked(
        version,
        variant,
        0,
        &format!("dump-agree-{version}-{}", variant.name()),
    );
    let ours = parse_ours(&dump_ok(p.pid, &[]), &name);
    let text = godump::compare(&p.go, &ours, p.writer);
    let json_path = p.dir.join("dump.json");
    let before = now_ns();
    dump_ok(
        p.pid,
        &["--format", "json", "-o", json_path.to_str().unwrap()],
    );
    let after = now_ns();
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json_path).expect("-o file"))
        .expect("the JSON dump is JSON");
    check_json_header(&v, p.pid, version, before, after);
    let json = godump::compare_with_complete(&ours, &dump_from_json(&v), p.writer);
    println!("{name:<22} text vs Go's: {text}");
    println!("{name:<22} JSON vs text: {json}");
    for d in text.differences.iter().chain(&json.differences) {
        println!("    {d}");
    }
    for n in text.notes.iter().chain(&json.notes) {
        println!("    note: {n}");
    }
    drop(p.target);
    (text, json)
}

#[test]
fn dump_agrees_with_runtime_stack_on_every_toolchain_and_variant() {
    let (mut text, mut json) = (Agreement::default(), Agreement::default());
    for version in installed_toolchains() {
        for variant in Variant::ALL {
            let (t, j) = agree_once(version, variant);
            text.add(&t);
            json.add(&j);
        }
    }
    println!("total text vs Go's: {text}");
    println!("total JSON vs text: {json}");
    assert!(
        text.in_both > 0 && text.frames_compared > 0,
        "nothing compared"
    );
    assert!(text.full(), "our dump disagrees with Go's: {text}");
    assert!(json.full(), "our JSON disagrees with our text: {json}");
}

/// `--group` text: each group starts with a line at column 0 that begins with the group's size
/// (e.g. `100 [chan receive]:` or `100 @ 0x...`); the lines under it, up to the next such line,
/// describe it.
fn groups(text: &str) -> Vec<(u64, String)> {
    let mut out: Vec<(u64, String)> = Vec::new();
    for line in text.lines() {
        let digits: String = line.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(n) = digits.parse() {
            out.push((n, String::new()));
        }
        if let Some((_, block)) = out.last_mut() {
            block.push_str(line);
            block.push('\n');
        }
    }
    out
}

#[test]
fn dump_group_counts() {
    const EXTRA: u64 = 100;
    let p = start_parked(
        GO_VERSIONS[0],
        Variant::Default,
        EXTRA as usize,
        "dump-group",
    );
    // The writer may still be on its way out: wait until a plain dump no longer shows it, so
    // the plain and the grouped dump see the same goroutines.
    let mut plain = parse_ours(&dump_ok(p.pid, &[]), "plain");
    for _ in 0..50 {
        if plain.get(p.writer).is_none() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        plain = parse_ours(&dump_ok(p.pid, &[]), "plain");
    }
    let grouped = dump_ok(p.pid, &["--group"]);
    let gs = groups(&grouped);
    assert!(
        !gs.is_empty(),
        "no group header (a line starting with a count):\n{grouped}"
    );
    let total: u64 = gs.iter().map(|(n, _)| n).sum();
    assert_eq!(
        total,
        plain.goroutines.len() as u64,
        "group sizes must add up to the plain dump's goroutines:\n{grouped}"
    );
    let extra: Vec<_> = gs
        .iter()
        .filter(|(_, block)| block.contains("main.extraWaiter"))
        .collect();
    assert_eq!(
        extra.len(),
        1,
        "the identical goroutines in one group:\n{grouped}"
    );
    assert_eq!(
        extra[0].0, EXTRA,
        "group of the identical goroutines:\n{}",
        extra[0].1
    );
    let extra_plain = plain
        .goroutines
        .iter()
        .filter(|g| g.has_frame("main.extraWaiter"))
        .count() as u64;
    assert_eq!(
        extra_plain, EXTRA,
        "the plain dump shows every extra goroutine"
    );
}

/// A failed run: non-zero, no panic, one error line (plus at most a usage hint) mentioning
/// every one of `needles`.
fn assert_clear_failure(o: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "expected failure; stderr: {err}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    let lines: Vec<_> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        !lines.is_empty() && lines.len() <= 3 && lines[0].contains("error"),
        "one clear error line: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "error should mention {n:?}: {err}");
    }
}

#[test]
fn dump_refuses_a_command() {
    let o = Command::new(gmp_trace_bin())
        .args(["dump", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_clear_failure(&o, &["--pid"]);
}

#[test]
fn dump_of_a_pid_that_does_not_exist() {
    let mut pid = 4_000_000;
    while Path::new(&format!("/proc/{pid}")).exists() {
        pid += 1;
    }
    assert_clear_failure(&gmp_trace_dump(pid, &[]), &[&pid.to_string()]);
}

#[test]
fn dump_of_a_process_that_is_not_go() {
    let sleep = Target(Command::new("sleep").arg("100").spawn().unwrap());
    let o = gmp_trace_dump(sleep.0.id(), &[]);
    assert_clear_failure(&o, &["Go"]);
}

#[test]
fn dump_to_an_unwritable_path() {
    let mut p = start_parked(GO_VERSIONS[0], Variant::Default, 0, "dump-unwritable");
    let path = "/nonexistent-gmp-trace-dir/sub/dump.txt";
    assert_clear_failure(&gmp_trace_dump(p.pid, &["-o", path]), &[path]);
    assert!(
        p.target.0.try_wait().unwrap().is_none(),
        "the target must outlive a failed dump"
    );
}

/// How each way of parking shows in Go's dump: the function that identifies its goroutine, and
/// the state that release prints.
struct Way {
    name: &'static str,
    function: &'static str,
    state: fn(u32) -> &'static str,
}

/// Go 1.19 prints every sync wait as "semacquire"; 1.21 names the Mutex and RWMutex waits
/// (1.20 has no toolchain here to tell), 1.24 the WaitGroup one (runtime2.go's
/// waitReasonStrings of each release, and real runs).
fn sema(named: &'static str, since: u32) -> impl Fn(u32) -> &'static str {
    move |minor| if minor >= since { named } else { "semacquire" }
}

const WAYS: &[Way] = &[
    way("chan send", "main.parkChanSend", |_| "chan send"),
    way("chan receive", "main.parkChanReceive", |_| "chan receive"),
    way("select", "main.parkSelect", |_| "select"),
    way("nil chan", "main.parkNilChan", |_| {
        "chan receive (nil chan)"
    }),
    way("select {}", "main.parkSelectNoCases", |_| {
        "select (no cases)"
    }),
    way("sync.Mutex", "main.parkMutex", |m| {
        sema("sync.Mutex.Lock", 21)(m)
    }),
    way("RWMutex writer", "main.parkRWMutexWriter", |m| {
        sema("sync.RWMutex.Lock", 21)(m)
    }),
    way("RWMutex reader", "main.parkRWMutexReader", |m| {
        sema("sync.RWMutex.RLock", 21)(m)
    }),
    way("WaitGroup", "main.parkWaitGroup", |m| {
        sema("sync.WaitGroup.Wait", 24)(m)
    }),
    way("sync.Cond", "main.parkCond", |_| "sync.Cond.Wait"),
    way("time.Sleep", "main.parkSleep", |_| "sleep"),
    way("<-time.After", "main.parkTimeAfter", |_| "chan receive"),
    way("<-timer.C", "main.parkTimer", |_| "chan receive"),
    way("net Accept", "main.parkAccept", |_| "IO wait"),
    way("conn Read", "main.parkConnRead", |_| "IO wait"),
    way("syscall.Read", "main.pipeRead", |_| "syscall"),
    way("LockOSThread", "main.lockedThread", |_| "chan receive"),
    way("recursion", "main.recurse", |_| "chan receive"),
    way("inlined", "main.inlinedPark", |_| "chan receive"),
    way("closures", "main.closures", |_| "chan receive"),
    way("generic", "main.parkOn[...]", |_| "chan receive"),
    way("method", "main.(*parker).wait", |_| "chan receive"),
    way("cgo (C sleep)", "main.cgoBlock", |_| "syscall"),
    way("main", "main.main", |_| "chan receive"),
];

const fn way(name: &'static str, function: &'static str, state: fn(u32) -> &'static str) -> Way {
    Way {
        name,
        function,
        state,
    }
}

/// Go's dump of parked on one toolchain and variant checked way by way; returns what each way
/// printed.
fn check_parks(version: &str, variant: Variant) -> BTreeMap<&'static str, String> {
    let m = minor(version);
    let p = start_parked(
        version,
        variant,
        0,
        &format!("parked-{version}-{}", variant.name()),
    );
    let go = &p.go;
    let cgo = variant == Variant::Cgo;
    // main, the writer and 22 ways (23 with cgo): nothing else, nothing missing.
    assert_eq!(
        go.goroutines.len(),
        24 + usize::from(cgo),
        "Go {version}: {go:#?}"
    );
    let writer = go.get(p.writer).expect("the writer is in its own dump");
    assert!(writer.state == "running" && writer.has_frame("main.writer"));
    let mut seen = BTreeMap::new();
    for w in WAYS.iter().filter(|w| cgo || w.function != "main.cgoBlock") {
        let g = go
            .goroutines
            .iter()
            .find(|g| g.has_frame(w.function))
            .unwrap_or_else(|| panic!("Go {version}: no goroutine in {}: {go:#?}", w.function));
        let want = (w.state)(m);
        assert_eq!(g.state, want, "Go {version} {}: state", w.name);
        assert_eq!(
            g.locked,
            w.name == "LockOSThread",
            "Go {version} {}: lock",
            w.name
        );
        if g.goid != 1 {
            let c = g.created_by.as_ref().expect("created by");
            assert!(c.function.starts_with("main.start"), "{c:?}");
            // Go 1.21 added "in goroutine N".
            assert_eq!(c.goid, (m >= 21).then_some(1), "Go {version} {}", w.name);
        }
        let shown = if g.locked {
            format!("{}, locked to thread", g.state)
        } else {
            g.state.clone()
        };
        seen.insert(w.name, shown);
    }
    check_frame_shapes(go, version);
    seen
}

/// The deep stack's elision, inlined frames, closures and the cgo frame.
fn check_frame_shapes(go: &GoDump, version: &str) {
    let m = minor(version);
    let find = |f: &str| go.goroutines.iter().find(|g| g.has_frame(f)).unwrap();
    let deep = find("main.recurse");
    if m >= 21 {
        // 200 frames of recurse and parkDeep: 50 printed, 101 elided, 50 printed.
        let e = deep.elided.expect("Go 1.21+ marks elided frames");
        assert_eq!(
            (e.at, e.count, deep.frames.len()),
            (50, Some(101), 100),
            "Go {version}"
        );
        assert_eq!(deep.frames.last().unwrap().function, "main.parkDeep");
    } else {
        // Go 1.19 stops at 100 frames, the 3 hidden runtime ones included, and prints no marker.
        assert_eq!(deep.elided, None, "Go {version}");
        assert_eq!(deep.frames.len(), 97, "Go {version}");
        assert!(deep.frames.iter().all(|f| f.function == "main.recurse"));
    }
    let inl = find("main.inlinedPark");
    let shape: Vec<_> = inl
        .frames
        .iter()
        .map(|f| (f.function.as_str(), f.has_offset))
        .collect();
    assert_eq!(
        shape,
        [
            ("main.recvInner", false),
            ("main.recvOuter", false),
            ("main.inlinedPark", true)
        ],
        "Go {version}"
    );
    let cl = find("main.closures");
    assert!(
        cl.frames[0].function.starts_with("main.closures."),
        "Go {version}: {:?}",
        cl.frames
    );
    if let Some(c) = go.goroutines.iter().find(|g| g.has_frame("main.cgoBlock")) {
        assert!(
            c.frames[0]
                .function
                .starts_with("main._Cfunc_parked_block_in_c"),
            "{c:?}"
        );
    }
}

#[test]
fn parked_sample_parks_every_way() {
    let mut table: BTreeMap<&str, Vec<(String, String)>> = BTreeMap::new();
    for version in installed_toolchains() {
        for variant in [Variant::Default, Variant::Cgo] {
            for (way, state) in check_parks(version, variant) {
                let row = table.entry(way).or_default();
                if !row.iter().any(|(v, _)| v == version) {
                    row.push((version.to_string(), state));
                }
            }
        }
    }
    println!("wait reasons Go printed, per way of parking:");
    for (way, row) in &table {
        let cells: Vec<_> = row.iter().map(|(v, s)| format!("{v}: {s}")).collect();
        println!("  {way:<15} {}", cells.join("; "));
    }
}

/// The reads race with a process whose goroutines switch all the time (two goroutines ping-pong
/// on channels, others are created and exit): every dump still completes, every stack it prints
/// is whole (from the innermost frame to runtime.goexit), and what it could not read whole is
/// counted in `torn_reads`, never printed half.
#[test]
fn dumps_of_a_busy_process_are_whole_or_counted_torn() {
    let version = GO_VERSIONS[0];
    let bin = build_sample("bench", version, Variant::Default);
    let mut ping = Target(
        Command::new(&bin)
            .args(["-work", "pingpong", "-n", "2000000000"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start bench pingpong"),
    );
    let mut spawn = Target(
        Command::new(&bin)
            .args(["-work", "spawn", "-n", "2000000000"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start bench spawn"),
    );
    std::thread::sleep(Duration::from_millis(300));
    let dir = scratch_dir("dump-busy");
    let (mut whole, mut torn, mut running) = (0usize, 0u64, 0usize);
    for round in 0..10 {
        for t in [&mut ping, &mut spawn] {
            let pid = t.0.id();
            let path = dir.join(format!("busy-{pid}-{round}.json"));
            dump_ok(pid, &["--format", "json", "-o", path.to_str().unwrap()]);
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert!(v["incomplete"].is_null(), "{}", v["incomplete"]);
            let gs = v["goroutines"].as_array().unwrap();
            let mut torn_here = 0;
            for g in gs {
                match g["stack"].as_str() {
                    Some("frames") => {
                        let fs = g["frames"].as_array().unwrap();
                        let names: Vec<&str> =
                            fs.iter().map(|f| f["function"].as_str().unwrap()).collect();
                        assert_eq!(
                            names.last().copied(),
                            Some("runtime.goexit"),
                            "goroutine {} of pid {pid}: a stack that does not end in goexit: {names:?}",
                            g["goid"]
                        );
                        assert!(!names.contains(&"?"), "{names:?}");
                        whole += 1;
                    }
                    Some("torn") => {
                        assert!(g["reason"].as_str().is_some_and(|r| !r.is_empty()));
                        torn_here += 1;
                    }
                    Some("running") => running += 1,
                    other => assert!(
                        other == Some("unavailable"),
                        "goroutine {}: stack {other:?}",
                        g["goid"]
                    ),
                }
            }
            let counted = v["torn_reads"].as_u64().unwrap();
            assert!(
                counted >= torn_here,
                "torn_reads {counted} < {torn_here} torn stacks"
            );
            torn += counted;
        }
    }
    println!("busy dumps: {whole} whole stacks, {running} running, {torn} torn reads");
    assert!(whole > 0 && running > 0, "the busy targets were not busy");
}

/// A process that exits while it is read: what was read so far, marked incomplete, and a
/// non-zero exit with a clear line.
#[test]
fn a_pid_that_exits_mid_dump_gives_a_partial_dump_and_fails() {
    let p = start_parked(GO_VERSIONS[0], Variant::Default, 400_000, "dump-exits");
    let out = p.dir.join("partial.json");
    let dump = Command::new(gmp_trace_bin())
        .args([
            "dump",
            "--pid",
            &p.pid.to_string(),
            "--format",
            "json",
            "-o",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .expect("run gmp-trace dump");
    std::thread::sleep(Duration::from_millis(150));
    let mut target = p.target;
    let _ = target.0.kill();
    let _ = target.0.wait();
    let o = dump.wait_with_output().expect("gmp-trace dump ends");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success(),
        "a dump of a process that died succeeded:\n{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains("exited during the dump"), "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let why = v["incomplete"].as_str().expect("incomplete says why");
    assert!(why.contains("exited"), "{why}");
    let n = v["goroutines"].as_array().unwrap().len();
    assert!(
        n < 400_000,
        "{n} goroutines read from a process killed mid-dump"
    );
}

/// `--pid` tracing ends its summary with the goroutines still alive, grouped, with the stacks
/// read from the process (the leak tree with real stacks).
#[test]
fn trace_pid_summary_ends_with_the_goroutines_still_alive() {
    let p = start_parked(GO_VERSIONS[0], Variant::Default, 50, "dump-trace-end");
    let o = Command::new(gmp_trace_bin())
        .args(["--pid", &p.pid.to_string(), "-d", "500ms", "-o"])
        .arg(p.dir.join("events.jsonl"))
        .output()
        .expect("run gmp-trace --pid");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    let tail = err
        .split("goroutines still alive (read from the process's memory):")
        .nth(1)
        .unwrap_or_else(|| panic!("no goroutines at the end of the summary:\n{err}"));
    let gs = groups(tail);
    assert!(
        gs.iter().any(|(n, _)| *n >= 50),
        "the 50 identical goroutines are not one group: {gs:?}\n{tail}"
    );
    // Real stacks, read from the process. (Only the 10 largest groups are shown, ties in goid
    // order, and goids follow the Ps the creator ran on: which single goroutines make the cut
    // varies from run to run, so the check is on the big group's own frames.)
    assert!(tail.contains("main.extraWaiter(...)"), "{tail}");
    assert!(tail.contains("created by main.startAll"), "{tail}");
}

/// A copy of parked's binary with every `go1.X.Y` of its build info and runtime replaced by a
/// release gmp-trace does not know (same length), as a file in `dir`.
fn future_go_copy(version: &str, dir: &Path) -> PathBuf {
    let bin = build_sample("parked", version, Variant::Default);
    let old = format!("go{version}");
    with_go_version(
        &bin,
        &old,
        &old.replacen("go1.", "go9.", 1),
        &dir.join("futurego"),
    )
}

/// A Go release gmp-trace does not know: wait reasons and layouts change in every release, so
/// a dump refuses it with a clear line rather than print wrong names.
#[test]
fn dump_refuses_a_go_release_it_does_not_know() {
    let version = GO_VERSIONS[0];
    let dir = scratch_dir("dump-future-go");
    let bin = future_go_copy(version, &dir);
    let p = start_parked_bin(
        &bin,
        version,
        Variant::Default,
        0,
        "dump-future-go-run",
        |_| {},
    );
    let o = gmp_trace_dump(p.pid, &[]);
    assert_clear_failure(&o, &["go9.", "1.19 to 1.27"]);
}

/// Without privilege over the target (another user, no root): a clear line, no panic.
#[test]
fn dump_without_privilege() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root to drop to an unprivileged user");
        return;
    }
    let p = start_parked(GO_VERSIONS[0], Variant::Default, 0, "dump-no-privilege");
    let o = Command::new(gmp_trace_bin())
        .args(["dump", "--pid", &p.pid.to_string()])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run gmp-trace dump as nobody");
    assert_clear_failure(&o, &["root"]);
}

/// The binary was deleted (or replaced) after the process started: the dump reads it through
/// /proc/PID/exe, as the tracer does, and still agrees with Go's own dump.
#[test]
fn dump_of_a_process_whose_binary_was_deleted() {
    let version = GO_VERSIONS[0];
    let dir = scratch_dir("dump-deleted");
    let src = build_sample("parked", version, Variant::Pie);
    let bin = dir.join("parked-deleted");
    std::fs::copy(&src, &bin).unwrap();
    let p = start_parked_bin(&bin, version, Variant::Pie, 0, "dump-deleted-run", |b| {
        std::fs::remove_file(b).unwrap();
    });
    assert!(!bin.exists());
    let ours = parse_ours(&dump_ok(p.pid, &[]), "deleted binary");
    let a = godump::compare(&p.go, &ours, p.writer);
    println!("deleted binary: {a}");
    assert!(
        a.differences.is_empty() && a.in_both > 20,
        "{a}\n{:#?}",
        a.differences
    );
}
