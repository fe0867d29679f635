//! --pid mode: attach to a Go program that is already running, see it work, detach cleanly.
use std::collections::BTreeMap;
use std::io::Read;
use std::process::Stdio;
use std::time::Duration;

use gmp_trace_tests::pid::{
    all_link_ids, attach, links_held_by, start_parker, text_snapshot, HeldLink, Target,
};
use gmp_trace_tests::{of_kind, read_jsonl, require_bpf, scratch_dir};
use serde_json::Value;

/// The start address and bytes of a target's text ([`text_snapshot`]).
type Text = (u64, Vec<u8>);

/// Traces parker in --pid mode for 1.5 s with uprobes linked as `links` says (`multi` or
/// `perf-event`), checking the kernel's links and the target's code before, during and after.
fn attach_and_detach_cleanly(links: &str) {
    let (target, pid) = start_parker();
    let before = text_snapshot(pid);

    let dir = scratch_dir(&format!("attach-pid-{links}"));
    let events = dir.join("events.jsonl");
    let summary = dir.join("summary.json");
    let tracer = attach(
        pid,
        [
            "--duration",
            "1500ms",
            "-o",
            events.to_str().unwrap(),
            "--summary-json",
            summary.to_str().unwrap(),
            "--uprobe-links",
            links,
        ],
        Stdio::inherit(),
    );
    // The probes are in: look at the target's code and links.
    let during = text_snapshot(pid);
    let links_during = links_held_by(tracer.id());
    let (status, stderr) = tracer.finish();
    assert!(status.success(), "gmp-trace --pid failed: {stderr}");
    // The target runs on: the probes come out before the report, and the pause is announced.
    assert!(
        stderr.contains(&format!("detaching from pid {pid}")),
        "no word of the detach: {stderr}"
    );
    let after = text_snapshot(pid);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();

    assert_probes_in_and_out(&s, &before, &during, &after);
    assert_links_of_the_kind_asked(&s, links, pid, &links_during);
    // The human summary says which kind of link the probes used.
    let kind = if links == "multi" {
        "uprobe_multi"
    } else {
        "perf_event"
    };
    assert!(
        stderr.contains(&format!("programs, {kind} links")),
        "the summary names no {kind} links: {stderr}"
    );
    assert_no_link_left(&links_during);
    assert_pid_mode_summary(&s, pid);
    assert_parker_seen_working(&read_jsonl(&events), pid);
    assert_target_runs_on(target, pid);
}

/// Probes went in where the summary says, as int3s, and came out again leaving the code as it
/// was.
fn assert_probes_in_and_out(s: &Value, before: &Text, during: &Text, after: &Text) {
    let sites: Vec<u64> = s["probes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["vaddr"].as_u64().unwrap())
        .collect();
    assert!(sites.len() >= 10, "probes: {sites:?}");
    let at = |snap: &Text, va: u64| snap.1[(va - snap.0) as usize];
    for &va in &sites {
        assert_ne!(
            at(before, va),
            0xcc,
            "{va:#x} already trapped before attach"
        );
        // An int3, or a call (E8) into the kernel's uprobe trampoline where Linux 6.18+ has
        // optimized a probe on a 5-byte NOP after its first hit.
        assert!(
            matches!(at(during, va), 0xcc | 0xe8),
            "no uprobe at {va:#x} while attached"
        );
        assert_eq!(
            at(after, va),
            at(before, va),
            "{va:#x} not restored after detach"
        );
    }
    assert_eq!(before.1, after.1, "the target's code changed after detach");
}

/// The kernel's links were of the kind asked for: one uprobe_multi link per program for all of
/// its sites, filtered on the target's pid, or one perf-event link per site.
fn assert_links_of_the_kind_asked(s: &Value, links: &str, pid: u32, links_during: &[HeldLink]) {
    let (kind, link_type, suffix) = match links {
        "multi" => ("uprobe_multi", "uprobe_multi", ""),
        _ => ("perf_event", "perf", "_pe"),
    };
    // Program -> sites, from the summary's probe list. The kernel keeps 15 characters of a
    // name (bpftool may print the whole name from BTF): compare those.
    let mut want = BTreeMap::<String, usize>::new();
    for p in s["probes"].as_array().unwrap() {
        assert_eq!(p["link"], kind, "{p}");
        let name = format!("{}{suffix}", p["program"].as_str().unwrap());
        *want.entry(name.chars().take(15).collect()).or_default() += 1;
    }
    // Besides the uprobes, one raw tracepoint watches for an exec of a new image.
    let (exec, uprobes): (Vec<&HeldLink>, Vec<&HeldLink>) = links_during
        .iter()
        .partition(|l| l.kind == "raw_tracepoint");
    assert!(
        exec.len() == 1 && exec[0].program == "exec",
        "one exec watch: {links_during:?}"
    );
    let mut seen = BTreeMap::<String, usize>::new();
    for l in uprobes {
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
}

/// None of the links gmp-trace held survives it.
fn assert_no_link_left(links_during: &[HeldLink]) {
    let left = all_link_ids();
    let stayed: Vec<_> = links_during
        .iter()
        .filter(|l| left.contains(&l.id))
        .collect();
    assert!(
        stayed.is_empty(),
        "BPF links left behind after gmp-trace exited: {stayed:?}"
    );
}

fn assert_pid_mode_summary(s: &Value, pid: u32) {
    assert_eq!(s["mode"], "pid");
    assert_eq!(s["pid"], pid);
    assert_eq!(s["lost_events"], 0);
    assert!(s["exit_code"].is_null());
    assert_eq!(
        s["startup_observed"], false,
        "no made-up startup in --pid mode"
    );
    assert_eq!(s["startup"].as_array().unwrap().len(), 0);
}

/// parker's rounds: goroutines created by round() on the main goroutine, and blocking (channel
/// receive, sleep, mutex, syscall).
fn assert_parker_seen_working(ev: &[Value], pid: u32) {
    let creates = of_kind(ev, "go_create");
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
    let to = |state: &str| {
        ev.iter()
            .filter(|e| e["kind"] == "go_status" && e["to"] == state)
            .count()
    };
    assert!(to("Waiting") > 0 && to("Runnable") > 0 && to("Running") > 0);
}

/// Detached: the target keeps running unharmed, then dies of our SIGTERM, not a trap.
fn assert_target_runs_on(mut target: Target, pid: u32) {
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
    let mut tracer = attach(
        pid,
        [
            "--duration",
            "4s",
            "--level",
            "lifecycle",
            "--format",
            "perfetto",
            "-o",
            "-",
        ],
        Stdio::piped(),
    );
    let attached = std::time::Instant::now();
    let mut out = tracer.child.stdout.take().unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let n = out.read(&mut buf).unwrap();
    let waited = attached.elapsed();
    assert!(n > 0, "the stream ended without a packet");
    assert!(
        tracer.child.try_wait().unwrap().is_none() && waited < Duration::from_secs(2),
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
    out.read_to_end(&mut rest).unwrap();
    assert!(tracer.finish().0.success());
}
