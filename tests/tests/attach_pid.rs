//! --pid mode: attach to a Go program that is already running, see it work, detach cleanly.
use std::io::{BufRead, BufReader};
use std::os::unix::fs::FileExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use gmp_trace_tests::{
    build_sample, gmp_trace_bin, of_kind, read_jsonl, require_bpf, scratch_dir, Variant,
    GO_VERSIONS,
};

/// The executable mapping (start, bytes) of `pid`'s text, as the process sees it now: an
/// attached uprobe shows as an int3 (0xcc) at its address. (Not the kernel's `[uprobes]`
/// trampoline page, also r-xp, which Linux 6.18+ maps below the text once it has turned a
/// probed 5-byte NOP into a call to it.)
fn text_snapshot(pid: u32) -> (u64, Vec<u8>) {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
    let line = maps
        .lines()
        .find(|l| {
            l.split_whitespace().nth(1) == Some("r-xp")
                && l.split_whitespace().nth(5) == exe.to_str()
        })
        .expect("a text mapping");
    let range = line.split_whitespace().next().unwrap();
    let (a, b) = range.split_once('-').unwrap();
    let (a, b) = (
        u64::from_str_radix(a, 16).unwrap(),
        u64::from_str_radix(b, 16).unwrap(),
    );
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut buf = vec![0u8; (b - a) as usize];
    mem.read_exact_at(&mut buf, a).unwrap();
    (a, buf)
}

/// Kills the target when a test ends, passing or failing: a parker left running would hold the
/// test's stderr open (whoever reads it would wait forever).
struct Target(std::process::Child);

impl Drop for Target {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `parker -loop` (Go 1.27) and waits for its first line; returns it and its pid.
fn start_parker() -> (Target, u32) {
    let bin = build_sample("parker", GO_VERSIONS[0], Variant::Default);
    let mut target = Target(
        Command::new(&bin)
            .arg("-loop")
            .stdout(Stdio::piped())
            .spawn()
            .expect("start parker"),
    );
    let pid = target.0.id();
    let mut line = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("parker pid {pid}"));
    (target, pid)
}

/// Reads gmp-trace's stderr until it says the probes are in.
fn wait_attached(err: &mut impl BufRead) {
    let mut said = String::new();
    while !said.contains("attached to pid") {
        said.clear();
        if err.read_line(&mut said).unwrap() == 0 {
            panic!("gmp-trace ended without attaching");
        }
    }
}

/// A BPF link held by a process, as its fdinfo describes it.
#[derive(Debug)]
struct HeldLink {
    id: u64,
    /// The program's name (the kernel keeps 15 characters).
    program: String,
    /// `uprobe_multi` or `perf` (a perf-event uprobe).
    kind: String,
    /// Sites the link covers (`uprobe_cnt` of a multi link; 1 for a perf-event uprobe).
    sites: usize,
    /// The pid a multi link is filtered on.
    pid: Option<u32>,
}

/// The BPF links process `holder` holds (its fds' /proc fdinfo), with their programs' names
/// from bpftool.
fn links_held_by(holder: u32) -> Vec<HeldLink> {
    let progs: serde_json::Value = {
        let out = Command::new("bpftool")
            .args(["-j", "prog", "show"])
            .output()
            .expect("bpftool is missing: run `cargo xtask bootstrap`");
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let name_of = |id: u64| -> String {
        progs
            .as_array()
            .and_then(|ps| ps.iter().find(|p| p["id"] == id))
            .and_then(|p| p["name"].as_str())
            .unwrap_or("?")
            .to_string()
    };
    let mut out = Vec::new();
    for fd in std::fs::read_dir(format!("/proc/{holder}/fdinfo")).unwrap() {
        let Ok(text) = std::fs::read_to_string(fd.unwrap().path()) else {
            continue;
        };
        let field = |k: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(k)?.strip_prefix(':'))
                .map(|v| v.trim().to_string())
        };
        let Some(kind) = field("link_type") else {
            continue;
        };
        let num = |k: &str| field(k).and_then(|v| v.parse::<u64>().ok());
        out.push(HeldLink {
            id: num("link_id").unwrap(),
            program: name_of(num("prog_id").unwrap()),
            sites: num("uprobe_cnt").map_or(1, |n| n as usize),
            pid: num("pid").map(|p| p as u32),
            kind,
        });
    }
    out
}

/// Ids of every BPF link in the kernel.
fn all_link_ids() -> Vec<u64> {
    let out = Command::new("bpftool")
        .args(["-j", "link", "show"])
        .output()
        .expect("bpftool is missing: run `cargo xtask bootstrap`");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .filter_map(|l| l["id"].as_u64())
        .collect()
}

/// Traces parker in --pid mode for 1.5 s with uprobes linked as `links` says (`multi` or
/// `perf-event`), checking the kernel's links and the target's code before, during and after.
fn attach_and_detach_cleanly(links: &str) {
    let (mut target, pid) = start_parker();
    let before = text_snapshot(pid);

    let dir = scratch_dir(&format!("attach-pid-{links}"));
    let events = dir.join("events.jsonl");
    let summary = dir.join("summary.json");
    let mut tracer = Command::new(gmp_trace_bin())
        .args(["--pid", &pid.to_string(), "--duration", "1500ms", "-o"])
        .arg(&events)
        .arg("--summary-json")
        .arg(&summary)
        .args(["--uprobe-links", links])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gmp-trace");
    // Wait until gmp-trace says the probes are in, then look at the target's code and links.
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    wait_attached(&mut err);
    let during = text_snapshot(pid);
    let links_during = links_held_by(tracer.id());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let out = tracer.wait_with_output().unwrap();
    let stderr = rest;
    assert!(out.status.success(), "gmp-trace --pid failed: {stderr}");
    // The target runs on: the probes come out before the report, and the pause is announced.
    assert!(
        stderr.contains(&format!("detaching from pid {pid}")),
        "no word of the detach: {stderr}"
    );
    let after = text_snapshot(pid);
    let s: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();

    // Probes went in where the summary says, as int3s, and came out again leaving the code as
    // it was.
    let probes = s["probes"].as_array().unwrap();
    let sites: Vec<u64> = probes
        .iter()
        .map(|p| p["vaddr"].as_u64().unwrap())
        .collect();
    assert!(sites.len() >= 10, "probes: {sites:?}");
    let at = |snap: &(u64, Vec<u8>), va: u64| snap.1[(va - snap.0) as usize];
    for &va in &sites {
        assert_ne!(
            at(&before, va),
            0xcc,
            "{va:#x} already trapped before attach"
        );
        // An int3, or a call (E8) into the kernel's uprobe trampoline where Linux 6.18+ has
        // optimized a probe on a 5-byte NOP after its first hit.
        assert!(
            matches!(at(&during, va), 0xcc | 0xe8),
            "no uprobe at {va:#x} while attached"
        );
        assert_eq!(
            at(&after, va),
            at(&before, va),
            "{va:#x} not restored after detach"
        );
    }
    assert_eq!(before.1, after.1, "the target's code changed after detach");

    // The kernel's links were of the kind asked for: one uprobe_multi link per program for
    // all of its sites, filtered on the target's pid, or one perf-event link per site; none
    // survives gmp-trace.
    let (kind, link_type, suffix) = match links {
        "multi" => ("uprobe_multi", "uprobe_multi", ""),
        _ => ("perf_event", "perf", "_pe"),
    };
    // Program -> sites, from the summary's probe list. The kernel keeps 15 characters of a
    // name (bpftool may print the whole name from BTF): compare those.
    let mut want = std::collections::BTreeMap::<String, usize>::new();
    for p in probes {
        assert_eq!(p["link"], kind, "{p}");
        let name = format!("{}{suffix}", p["program"].as_str().unwrap());
        *want.entry(name.chars().take(15).collect()).or_default() += 1;
    }
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for l in &links_during {
        assert_eq!(l.kind, link_type, "{l:?}");
        if links == "multi" {
            assert_eq!(
                l.pid,
                Some(pid),
                "a multi link filtered on the target: {l:?}"
            );
            assert!(
                !seen.contains_key(&l.program.chars().take(15).collect::<String>()),
                "one link per program: {links_during:?}"
            );
        }
        *seen
            .entry(l.program.chars().take(15).collect())
            .or_default() += l.sites;
    }
    assert_eq!(seen, want, "links while attached: {links_during:?}");
    let left = all_link_ids();
    let stayed: Vec<_> = links_during
        .iter()
        .filter(|l| left.contains(&l.id))
        .collect();
    assert!(
        stayed.is_empty(),
        "BPF links left behind after gmp-trace exited: {stayed:?}"
    );

    assert_eq!(s["mode"], "pid");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["lost_events"], 0);
    assert!(s["exit_code"].is_null());
    assert_eq!(
        s["startup_observed"], false,
        "no made-up startup in --pid mode"
    );
    assert_eq!(s["startup"].as_array().unwrap().len(), 0);
    let ev = read_jsonl(&events);
    let creates = of_kind(&ev, "go_create");
    assert!(
        creates.len() >= 8,
        "parker starts 4 goroutines a round; saw {}",
        creates.len()
    );
    for c in &creates {
        assert!(
            c["start_fn"].as_str().unwrap().starts_with("main.round"),
            "{c}"
        );
        assert_eq!(
            c["parent_goid"], 1,
            "round() runs on the main goroutine: {c}"
        );
        assert_eq!(c["pid"], pid);
    }
    // Blocking shows up: channel receive, sleep, mutex, syscall.
    let to = |state: &str| {
        ev.iter()
            .filter(|e| e["kind"] == "go_status" && e["to"] == state)
            .count()
    };
    assert!(to("Waiting") > 0 && to("Runnable") > 0 && to("Running") > 0);

    // Detached: the target keeps running unharmed, then dies of our SIGTERM, not a trap.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        target.0.try_wait().unwrap().is_none(),
        "the target died after detach"
    );
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let st = target.0.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(st.signal(), Some(libc::SIGTERM), "target ended with {st}");
}

#[test]
fn attach_to_running_program_and_detach_cleanly_multi_links() {
    require_bpf!();
    attach_and_detach_cleanly("multi");
}

#[test]
fn attach_to_running_program_and_detach_cleanly_perf_event_links() {
    require_bpf!();
    attach_and_detach_cleanly("perf-event");
}

/// `--format perfetto -o -` streams: packets reach the pipe while gmp-trace is still tracing,
/// a drain at a time (the writer is flushed after every ring-buffer drain), not in 64 KiB
/// buffer-fulls or at the end.
#[test]
fn perfetto_streams_to_a_pipe_while_attached() {
    require_bpf!();
    let (_target, pid) = start_parker();
    // lifecycle: a few events per parker round (every ~10 ms), far below 64 KiB a second.
    let mut tracer = Command::new(gmp_trace_bin())
        .args([
            "--pid",
            &pid.to_string(),
            "--duration",
            "4s",
            "--level",
            "lifecycle",
        ])
        .args(["--format", "perfetto", "-o", "-"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start gmp-trace");
    let mut err = BufReader::new(tracer.stderr.take().unwrap());
    wait_attached(&mut err);
    let attached = std::time::Instant::now();
    let mut out = tracer.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = std::io::Read::read(&mut out, &mut buf).unwrap();
    let waited = attached.elapsed();
    assert!(n > 0, "the stream ended without a packet");
    assert!(
        tracer.try_wait().unwrap().is_none() && waited < Duration::from_secs(2),
        "the first {n} bytes came {waited:?} after attaching"
    );
    // One drain's worth (~6 KB measured), not a 64 KiB output buffer filling up.
    assert!(
        n < 32 << 10,
        "the first write was {n} bytes: a full buffer, not a drain"
    );
    // A TracePacket stream: field 1, length-delimited.
    assert_eq!(buf[0], 0x0a);
    let mut rest = Vec::new();
    std::io::Read::read_to_end(&mut out, &mut rest).unwrap();
    std::io::Read::read_to_end(&mut err, &mut Vec::new()).unwrap();
    assert!(tracer.wait().unwrap().success());
}
