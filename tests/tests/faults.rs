//! Faults (issue 18's reliability suite): the tracer SIGKILLed mid-trace in both modes, the
//! target SIGKILLed, the target stopped and continued, two tracers on one target, and attach and
//! detach in a loop on a program that checks its own results (tests/go/checksum). Each case
//! asserts what users rely on (the target unharmed and its text restored, every BPF object of
//! ours gone, outputs written, nothing lost) and prints its figures on lines starting `faults:`
//! (`cargo xtask reliability --only faults` runs these with the full loop count and collects
//! them; docs/reliability.md keeps them). Needs root and BPF (skips with the reason otherwise).
use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use gmp_trace_tests::pid::{attach, Attached};
use gmp_trace_tests::{
    require_bpf, require_perfetto_tools, scratch_dir, trace_processor, PERFETTO_IMPORT_PROBLEMS_SQL,
};
use serde_json::Value;

#[path = "faults/attach_loop.rs"]
mod attach_loop;
#[path = "faults/kernel.rs"]
mod kernel;
#[path = "faults/procs.rs"]
mod procs;
use kernel::{held_by, still_alive, text_vs_file, wait_gone, BpfIds};
use procs::*;

/// How long the kernel may take to drop a dead tracer's probes and objects. Measured: ~1.3 s for
/// the default uprobe_multi links (one RCU tasks-trace grace period per link, released one
/// after another as the dead process's fds close); the bound leaves room for a loaded machine.
const GRACE: Duration = Duration::from_secs(15);

/// SIGKILLs a tracer that has been tracing `pid` for a while, then measures how long the kernel
/// takes to restore the target's text and drop every BPF object the tracer held.
fn kill_tracer_and_measure(mode: &str, tracer: &mut Child, pid: u32) {
    std::thread::sleep(Duration::from_millis(500));
    let held = held_by(tracer.id());
    assert!(!held.links.is_empty(), "the tracer holds no link: {held:?}");
    let during = text_vs_file(pid);
    assert!(
        !during.differing.is_empty(),
        "no probe in the target's text while attached"
    );
    let killed = Instant::now();
    signal(tracer.id(), libc::SIGKILL);
    let (mut text_clean, mut gone) = (None, None);
    while (text_clean.is_none() || gone.is_none()) && killed.elapsed() < GRACE {
        if text_clean.is_none() && text_vs_file(pid).differing.is_empty() {
            text_clean = Some(killed.elapsed());
        }
        if gone.is_none() && still_alive(&held).is_empty() {
            gone = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let st = tracer.wait().expect("wait for the tracer");
    assert_eq!(st.signal(), Some(libc::SIGKILL), "tracer ended with {st}");
    let after = text_vs_file(pid);
    assert!(
        after.differing.is_empty(),
        "{} bytes of the target's text ({:#x}, {} bytes) still differ from the file {GRACE:?} \
         after the kill, first at {:x?}",
        after.differing.len(),
        after.start,
        after.len,
        &after.differing[..after.differing.len().min(8)]
    );
    let gone =
        gone.unwrap_or_else(|| panic!("left {GRACE:?} after the kill: {:?}", still_alive(&held)));
    let text_clean = text_clean.expect("checked above");
    println!(
        "faults: SIGKILL of the tracer ({mode}): held {}; {} probed bytes in {} bytes of text; \
         text identical to the file {:.0} ms after the kill, every BPF object gone after {:.0} ms",
        held.describe(),
        during.differing.len(),
        during.len,
        text_clean.as_secs_f64() * 1e3,
        gone.as_secs_f64() * 1e3,
    );
}

#[test]
fn sigkill_of_the_tracer_in_pid_mode_leaves_the_target_running_and_clean() {
    require_bpf!();
    let dir = scratch_dir("faults-kill-tracer-pid");
    let target = start_checksum(&dir, &["-until-stdin"]);
    let events = dir.join("events.jsonl");
    let Attached { mut child, stderr } = attach(target.pid, ["-o", s(&events)], Stdio::null());
    kill_tracer_and_measure("--pid", &mut child, target.pid);
    drop(stderr);
    assert_still_running(target.pid, &target.out, 200);
    let n = target.finish_ok();
    println!(
        "faults: SIGKILL of the tracer (--pid): the target ran on and finished {n} rounds, all OK"
    );
}

/// Launch mode: checksum is the tracer's child. Killed, the tracer leaves it running: it is
/// reparented (here to this test, a subreaper; normally to init), keeps its stdin, stdout and
/// process group, gets no signal, and ends as it would have.
#[test]
fn sigkill_of_the_tracer_in_launch_mode_leaves_the_child_running_and_clean() {
    require_bpf!();
    become_subreaper();
    let dir = scratch_dir("faults-kill-tracer-launch");
    let events = dir.join("events.jsonl");
    let mut l = launch(&dir, &["-o", s(&events)], &["-until-stdin"]);
    kill_tracer_and_measure("launch", &mut l.tracer, l.target);
    assert_still_running(l.target, &l.out, 200);
    let ppid = std::fs::read_to_string(format!("/proc/{}/stat", l.target))
        .ok()
        .and_then(|t| {
            t.rsplit(')')
                .next()?
                .split_whitespace()
                .nth(1)?
                .parse::<u32>()
                .ok()
        });
    assert_eq!(
        ppid,
        Some(std::process::id()),
        "reparented to the subreaper"
    );
    let stdin = l.stdin.as_mut().expect("piped");
    stdin.write_all(b"go\n").expect("write");
    let st = wait_pid(l.target, Duration::from_secs(30)).expect("checksum ended");
    let n = assert_target_finished_ok(st, &l.out);
    println!(
        "faults: SIGKILL of the tracer (launch): the child was reparented, ran on and finished \
         {n} rounds, all OK, exit 0"
    );
}

/// The trace file is valid for Perfetto's trace processor: parses without import problems, one
/// goroutine track per goroutine the summary counts.
fn assert_pftrace_valid(trace: &Path, sum: &Value) {
    let q = trace_processor(
        trace,
        &[
            PERFETTO_IMPORT_PROBLEMS_SQL,
            "SELECT COUNT(*) AS n FROM track t JOIN track grp ON t.parent_id = grp.id \
             WHERE grp.name = 'Goroutines'",
        ],
    );
    assert!(q[0].is_empty(), "import problems: {:?}", q[0]);
    let tracks = q[1][0]["n"].as_i64().expect("a count");
    assert!(tracks > 0, "no goroutine track");
    assert!(
        tracks >= sum["goroutines_created"].as_i64().expect("created"),
        "{tracks} goroutine tracks for {} created",
        sum["goroutines_created"]
    );
}

/// The tracer noticed the target's death by itself, wrote both outputs and exited with
/// `want_code`; nothing of it stays in the kernel.
fn after_target_killed(
    mode: &str,
    tracer: &mut Child,
    held: &BpfIds,
    dir: &Path,
    want_code: i32,
    mut stderr: impl FnMut() -> String,
) -> String {
    let killed = Instant::now();
    let st = wait_child(tracer, Duration::from_secs(30))
        .unwrap_or_else(|| panic!("the tracer did not end after its target was killed"));
    let noticed = killed.elapsed();
    let err = stderr();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(st.code(), Some(want_code), "tracer ended with {st}: {err}");
    let gone = wait_gone(held, killed, GRACE).unwrap_or_else(|left| panic!("left: {left:?}"));
    let sum = summary(&dir.join("summary.json"), &err);
    assert_eq!(sum["lost_events"], 0, "{err}");
    assert!(sum["goroutines_created"].as_u64() > Some(10), "{sum}");
    assert_pftrace_valid(&dir.join("trace.pftrace"), &sum);
    println!(
        "faults: SIGKILL of the target ({mode}): tracer ended {:.0} ms later with status \
         {want_code}, summary ({} goroutines created, 0 lost) and Perfetto trace valid, every \
         BPF object gone {:.0} ms after the kill",
        noticed.as_secs_f64() * 1e3,
        sum["goroutines_created"],
        gone.as_secs_f64() * 1e3
    );
    err
}

fn outputs(dir: &Path) -> [String; 4] {
    [
        "-o".into(),
        s(&dir.join("trace.pftrace")).into(),
        "--summary-json".into(),
        s(&dir.join("summary.json")).into(),
    ]
}

/// --pid: the target's exit ends the trace (its pidfd); gmp-trace exits 0 (it is not the
/// target's parent, so it has no exit status to pass on).
#[test]
fn sigkill_of_the_target_in_pid_mode_ends_the_trace_with_outputs() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("faults-kill-target-pid");
    let mut target = start_checksum(&dir, &["-loop"]);
    let Attached { mut child, stderr } = attach(target.pid, outputs(&dir), Stdio::null());
    std::thread::sleep(Duration::from_millis(800));
    let held = held_by(child.id());
    signal(target.pid, libc::SIGKILL);
    let st = target.target.0.wait().expect("wait");
    assert_eq!(st.signal(), Some(libc::SIGKILL));
    // What gmp-trace says after attaching, read as it comes (a full pipe would block it).
    let mut rest = Some(std::thread::spawn(move || {
        let mut said = String::new();
        let _ = { stderr }.read_to_string(&mut said);
        said
    }));
    let err = after_target_killed("--pid", &mut child, &held, &dir, 0, || {
        rest.take().and_then(|h| h.join().ok()).unwrap_or_default()
    });
    // Said, as strace says it: the trace ended with the process, not cut short.
    let said = format!("gmp-trace: pid {} exited; tracing stopped", target.pid);
    assert!(err.contains(&said), "no {said:?} in: {err}");
    assert!(!err.contains("goroutines still alive"), "{err}");
    let sum = summary(&dir.join("summary.json"), &err);
    assert_eq!(sum["mode"], "pid");
    assert!(sum["exit_code"].is_null());
}

/// Launch: the killed child's status is gmp-trace's exit code, as a shell gives it (128 + 9).
#[test]
fn sigkill_of_the_target_in_launch_mode_ends_the_trace_with_outputs() {
    require_perfetto_tools();
    require_bpf!();
    let dir = scratch_dir("faults-kill-target-launch");
    let mut l = launch(
        &dir,
        &outputs(&dir).each_ref().map(|x| x.as_str()),
        &["-loop"],
    );
    std::thread::sleep(Duration::from_millis(800));
    let held = held_by(l.tracer.id());
    signal(l.target, libc::SIGKILL);
    let err = l.err.clone();
    after_target_killed(
        "launch",
        &mut l.tracer,
        &held,
        &dir,
        128 + libc::SIGKILL,
        || std::fs::read_to_string(&err).unwrap_or_default(),
    );
    let sum = summary(&dir.join("summary.json"), &l.stderr());
    assert_eq!(sum["mode"], "launch");
    assert_eq!(sum["exit_code"], 128 + libc::SIGKILL);
}

/// A stopped target is not an exited one: the trace runs its full `-d`, nothing is lost, and the
/// events resume after SIGCONT.
#[test]
fn sigstop_and_sigcont_of_the_target_in_pid_mode_lose_nothing() {
    require_bpf!();
    let dir = scratch_dir("faults-stop-pid");
    let target = start_checksum(&dir, &["-until-stdin"]);
    let (events, sj) = (dir.join("events.jsonl"), dir.join("summary.json"));
    let args = ["-d", "3s", "-o", s(&events), "--summary-json", s(&sj)];
    let mut tracer = attach(target.pid, args, Stdio::null());
    let attached = Instant::now();
    std::thread::sleep(Duration::from_millis(700));
    stop(target.pid);
    std::thread::sleep(Duration::from_millis(300));
    let at_stop = events_so_far(&events);
    std::thread::sleep(Duration::from_millis(1000));
    let stopped = events_so_far(&events);
    assert!(
        tracer.child.try_wait().expect("try_wait").is_none(),
        "the tracer ended while its target was stopped"
    );
    signal(target.pid, libc::SIGCONT);
    let (st, err) = finish_within(tracer, Duration::from_secs(20));
    let took = attached.elapsed();
    assert!(st.success(), "{st}: {err}");
    assert!(
        took >= Duration::from_millis(2900),
        "the 3 s trace ended after {took:?}: {err}"
    );
    // Ended by -d, not by the target's exit: the goroutines alive at the end are read.
    assert!(err.contains("goroutines still alive"), "{err}");
    let sum = summary(&sj, &err);
    assert_eq!(sum["lost_events"], 0, "{err}");
    let end = events_so_far(&events);
    assert!(
        end.1 > stopped.1,
        "no goroutine created after SIGCONT: {stopped:?} -> {end:?}"
    );
    let n = target.finish_ok();
    println!(
        "faults: SIGSTOP/SIGCONT (--pid): {} events before the stop, {} more while stopped 1 s, \
         {} after SIGCONT ({} goroutine creations); the 3 s trace took {:.2} s with 0 lost; the \
         target finished {n} rounds OK",
        at_stop.0,
        stopped.0 - at_stop.0,
        end.0 - stopped.0,
        end.1 - stopped.1,
        took.as_secs_f64()
    );
}

/// `-d` ends the trace of a target that stays stopped: the probes come out of a stopped process
/// and its text is restored before it runs again.
#[test]
fn duration_is_honoured_while_the_target_is_stopped() {
    require_bpf!();
    let dir = scratch_dir("faults-stop-duration");
    let target = start_checksum(&dir, &["-until-stdin"]);
    let sj = dir.join("summary.json");
    let args = [
        "-d",
        "1s",
        "--format",
        "jsonl",
        "-o",
        "/dev/null",
        "--summary-json",
        s(&sj),
    ];
    let tracer = attach(target.pid, args, Stdio::null());
    let attached = Instant::now();
    stop(target.pid);
    let held = held_by(tracer.id());
    let (st, err) = finish_within(tracer, Duration::from_secs(20));
    let took = attached.elapsed();
    assert!(st.success(), "{st}: {err}");
    assert!(took < Duration::from_secs(10), "-d 1s took {took:?}");
    assert!(err.contains("goroutines still alive"), "{err}");
    assert_eq!(state(target.pid), 'T', "still stopped");
    let text = text_vs_file(target.pid);
    assert!(
        text.differing.is_empty(),
        "text differs at {:x?}",
        text.differing
    );
    let gone = wait_gone(&held, Instant::now(), GRACE).unwrap_or_else(|l| panic!("left: {l:?}"));
    signal(target.pid, libc::SIGCONT);
    let n = target.finish_ok();
    println!(
        "faults: -d 1s on a stopped target (--pid): tracer ended {:.2} s after attaching, text \
         restored while the target was still stopped, BPF objects gone {:.0} ms after; {n} \
         rounds OK after SIGCONT",
        took.as_secs_f64(),
        gone.as_secs_f64() * 1e3
    );
}

/// Launch mode: a stopped child is waited for, not taken for exited; every goroutine of every
/// round is seen.
#[test]
fn sigstop_and_sigcont_of_the_target_in_launch_mode_lose_nothing() {
    require_bpf!();
    let dir = scratch_dir("faults-stop-launch");
    let sj = dir.join("summary.json");
    let rounds_n = 300;
    let mut l = launch(
        &dir,
        &["--summary-json", s(&sj)],
        &["-rounds", &rounds_n.to_string()],
    );
    std::thread::sleep(Duration::from_millis(300));
    stop(l.target);
    let at_stop = rounds(&l.out).ok;
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        l.tracer.try_wait().expect("try_wait").is_none(),
        "tracer ended: {}",
        l.stderr()
    );
    assert_eq!(rounds(&l.out).ok, at_stop, "rounds while stopped");
    signal(l.target, libc::SIGCONT);
    let st = wait_child(&mut l.tracer, Duration::from_secs(60)).expect("tracer ended");
    let err = l.stderr();
    assert!(st.success(), "{st}: {err}");
    assert!(at_stop < rounds_n, "all rounds ran before the stop");
    assert_eq!(rounds(&l.out).done, Some(rounds_n), "{:?}", rounds(&l.out));
    let sum = summary(&sj, &err);
    assert_eq!(sum["lost_events"], 0, "{err}");
    let by = &sum["goroutines_by_start_fn"];
    assert_eq!(by["main.round.func1"], 4 * rounds_n, "workers: {by}");
    assert_eq!(by["main.round.func2"], rounds_n, "feeders: {by}");
    println!(
        "faults: SIGSTOP/SIGCONT (launch): stopped 1 s after round {at_stop} of {rounds_n}; \
         every one of the {} workers and {rounds_n} feeders seen, 0 lost, exit 0",
        4 * rounds_n
    );
}

/// Two tracers on one target at once: both attach (the kernel takes several consumers per
/// probe site) and both see the same goroutines, exactly.
#[test]
fn two_tracers_on_one_target_both_see_every_goroutine() {
    require_bpf!();
    let dir = scratch_dir("faults-two-tracers");
    let rounds_n = 100;
    let mut target = start_checksum(&dir, &["-wait", "-rounds", &rounds_n.to_string()]);
    let sj = |n: &str| dir.join(format!("summary-{n}.json"));
    let args = |n: &str| {
        ["--format", "jsonl", "-o", "/dev/null", "--summary-json"]
            .map(String::from)
            .into_iter()
            .chain([s(&sj(n)).to_string()])
    };
    let a = attach(target.pid, args("a"), Stdio::null());
    let b = attach(target.pid, args("b"), Stdio::null());
    let mut held = held_by(a.id());
    held.extend(&held_by(b.id()));
    target.go();
    let (sta, erra) = finish_within(a, Duration::from_secs(60));
    let (stb, errb) = finish_within(b, Duration::from_secs(60));
    let ended = Instant::now();
    let st = wait_child(&mut target.target.0, Duration::from_secs(10)).expect("checksum ended");
    assert_eq!(assert_target_finished_ok(st, &target.out), rounds_n);
    assert!(
        sta.success() && stb.success(),
        "{sta}: {erra}\n{stb}: {errb}"
    );
    let (sa, sb) = (summary(&sj("a"), &erra), summary(&sj("b"), &errb));
    for (sum, err) in [(&sa, &erra), (&sb, &errb)] {
        assert_eq!(sum["lost_events"], 0, "{err}");
        let by = &sum["goroutines_by_start_fn"];
        assert_eq!(by["main.round.func1"], 4 * rounds_n, "workers: {by}");
        assert_eq!(by["main.round.func2"], rounds_n, "feeders: {by}");
    }
    assert_eq!(sa["goroutines_created"], sb["goroutines_created"]);
    assert_eq!(sa["goroutines_exited"], sb["goroutines_exited"]);
    let gone = wait_gone(&held, ended, GRACE).unwrap_or_else(|l| panic!("left: {l:?}"));
    println!(
        "faults: two tracers on one target: both attached; each saw {} goroutines created, {} \
         exited ({} workers, {rounds_n} feeders), 0 lost, events {} and {}; both objects' sets \
         gone {:.0} ms after they ended",
        sa["goroutines_created"],
        sa["goroutines_exited"],
        4 * rounds_n,
        sa["events"],
        sb["events"],
        gone.as_secs_f64() * 1e3
    );
}

/// One of two tracers detaching leaves the other's probes working: its uprobe consumers are
/// removed, the other's stay.
#[test]
fn two_tracers_on_one_target_detaching_one_leaves_the_other_working() {
    require_bpf!();
    let dir = scratch_dir("faults-two-tracers-detach");
    let target = start_checksum(&dir, &["-until-stdin"]);
    let (ea, sa) = (dir.join("a.jsonl"), dir.join("a.json"));
    let sb = dir.join("b.json");
    let a = attach(
        target.pid,
        ["-d", "5s", "-o", s(&ea), "--summary-json", s(&sa)],
        Stdio::null(),
    );
    let b_args = [
        "-d",
        "1s",
        "--format",
        "jsonl",
        "-o",
        "/dev/null",
        "--summary-json",
        s(&sb),
    ];
    let b = attach(target.pid, b_args, Stdio::null());
    let (held_a, held_b) = (held_by(a.id()), held_by(b.id()));
    let (stb, errb) = finish_within(b, Duration::from_secs(20));
    let b_ended = Instant::now();
    assert!(stb.success(), "{stb}: {errb}");
    let b_gone = wait_gone(&held_b, b_ended, GRACE).unwrap_or_else(|l| panic!("left: {l:?}"));
    assert!(
        still_alive(&held_a) == held_a,
        "the other tracer's objects went too"
    );
    let before = events_so_far(&ea);
    std::thread::sleep(Duration::from_millis(500));
    let after = events_so_far(&ea);
    assert!(
        after.1 > before.1,
        "no goroutine creation seen after the other detached"
    );
    let text = text_vs_file(target.pid);
    assert!(
        !text.differing.is_empty(),
        "the remaining tracer's probes are gone from the text"
    );
    let (sta, erra) = finish_within(a, Duration::from_secs(20));
    assert!(sta.success(), "{sta}: {erra}");
    assert_eq!(summary(&sa, &erra)["lost_events"], 0, "{erra}");
    assert_eq!(summary(&sb, &errb)["lost_events"], 0, "{errb}");
    let text = text_vs_file(target.pid);
    assert!(
        text.differing.is_empty(),
        "text differs at {:x?}",
        text.differing
    );
    let a_gone =
        wait_gone(&held_a, Instant::now(), GRACE).unwrap_or_else(|l| panic!("left: {l:?}"));
    let n = target.finish_ok();
    println!(
        "faults: two tracers, one detaching: the other saw {} goroutine creations in the 0.5 s \
         after (0 lost); first's objects gone {:.0} ms after it ended, the second's {:.0} ms; \
         text identical to the file; target {n} rounds OK",
        after.1 - before.1,
        b_gone.as_secs_f64() * 1e3,
        a_gone.as_secs_f64() * 1e3
    );
}
