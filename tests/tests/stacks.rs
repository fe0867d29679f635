//! `--stacks` (issue 19): the stacks on blocking, unblocking, creation and system-call events
//! are where the program really was, frame by frame with file:line, as the program's own
//! runtime.Callers sees it. The `blockspots` sample prints, right before each operation, its
//! goroutine id and its frames (`SPOT name goid fn:line...`, the operation on the line after
//! the first frame's); the trace must hold an event of that goroutine at that spot whose stack
//! has those frames in that order. A recording replays with the same stacks. Needs root and BPF.
use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use gmp_trace_tests::pid::{attach, Target};
use gmp_trace_tests::{
    read_jsonl, replay, require_bpf, require_perfetto_tools, scratch_dir, trace_processor, Sample,
    Variant, ALL_GO_VERSIONS, GO_VERSIONS, PERFETTO_IMPORT_PROBLEMS_SQL,
};
use serde_json::Value;

/// One spot the sample printed.
struct Spot {
    goid: u64,
    /// (function, line) from the spot's function outwards; the first line is the operation's.
    frames: Vec<(String, u64)>,
}

fn spots(stdout: &str) -> HashMap<String, Spot> {
    let mut out = HashMap::new();
    for line in stdout.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.first() != Some(&"SPOT") {
            continue;
        }
        let mut frames: Vec<(String, u64)> = f[3..]
            .iter()
            .filter_map(|s| s.rsplit_once(':'))
            .map(|(func, l)| (func.to_string(), l.parse().unwrap()))
            .filter(|(func, _)| func != "runtime.goexit")
            .collect();
        // The spot() call's line; the operation is on the next.
        frames[0].1 += 1;
        out.insert(
            f[1].to_string(),
            Spot {
                goid: f[2].parse().unwrap(),
                frames,
            },
        );
    }
    out
}

/// Stack definitions by id; each must come before its first use.
fn stack_defs(events: &[Value]) -> HashMap<u64, Value> {
    let mut defs = HashMap::new();
    for e in events {
        if e["kind"] == "stack" {
            let id = e["id"].as_u64().unwrap();
            assert!(
                defs.insert(id, e.clone()).is_none(),
                "stack {id} defined twice"
            );
        } else if let Some(id) = e.get("stack") {
            let id = id.as_u64().unwrap();
            assert!(
                defs.contains_key(&id),
                "stack {id} used before it is defined: {e}"
            );
        }
    }
    defs
}

fn frames(def: &Value) -> Vec<(String, u64)> {
    def["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["fn"].as_str().unwrap().to_string(),
                f["line"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// `got`'s first frame of package main is `want`'s first, and the rest of `want` follows in
/// order (Go's Callers hides wrapper frames the stack keeps).
fn in_order(got: &[(String, u64)], want: &[(String, u64)]) -> bool {
    let Some(start) = got.iter().position(|(f, _)| f.starts_with("main.")) else {
        return false;
    };
    let mut it = got[start..].iter();
    it.next() == want.first() && want[1..].iter().all(|w| it.any(|g| g == w))
}

/// Some event `pick` accepts has a stack with the spot's frames, belonging to `whose`.
fn check(
    events: &[Value],
    defs: &HashMap<u64, Value>,
    spot: &Spot,
    whose: u64,
    what: &str,
    pick: impl Fn(&Value) -> bool,
) {
    let candidates: Vec<&Value> = events.iter().filter(|e| pick(e)).collect();
    assert!(!candidates.is_empty(), "{what}: no such event");
    let mut seen = Vec::new();
    for e in &candidates {
        let Some(id) = e.get("stack").and_then(Value::as_u64) else {
            continue;
        };
        let def = &defs[&id];
        let got = frames(def);
        if in_order(&got, &spot.frames) {
            assert_eq!(
                def["goid"].as_u64(),
                Some(whose),
                "{what}: whose stack: {def}"
            );
            return;
        }
        seen.push(got);
    }
    panic!(
        "{what}: no stack with {:?} among {} events; stacks: {seen:#?}",
        spot.frames,
        candidates.len()
    );
}

fn status(e: &Value, goid: u64, from: &str, to: &str) -> bool {
    e["kind"] == "go_status" && e["goid"] == goid && e["from"] == from && e["to"] == to
}

fn check_run(events: &[Value], stdout: &str, go: &str) {
    let s = spots(stdout);
    assert_eq!(s.len(), 7, "the sample's spots ({go}): {stdout}");
    let defs = stack_defs(events);
    assert!(
        defs.values().all(|d| d.get("missing").is_none()),
        "no stack lost its PCs in so small a run"
    );
    let (recv, mutex, read) = (&s["chanrecv"], &s["mutex"], &s["read"]);
    check(events, &defs, recv, recv.goid, "block on chan", |e| {
        status(e, recv.goid, "Running", "Waiting")
    });
    check(events, &defs, mutex, mutex.goid, "block on mutex", |e| {
        status(e, mutex.goid, "Running", "Waiting")
    });
    let send = &s["chansend"];
    check(events, &defs, send, send.goid, "chan receiver woken", |e| {
        status(e, recv.goid, "Waiting", "Runnable") && e["by_goid"] == send.goid
    });
    let unlock = &s["unlock"];
    check(
        events,
        &defs,
        unlock,
        unlock.goid,
        "mutex waiter woken",
        |e| status(e, mutex.goid, "Waiting", "Runnable") && e["by_goid"] == unlock.goid,
    );
    check(events, &defs, read, read.goid, "read(2)", |e| {
        e["kind"] == "syscall_enter" && e["goid"] == read.goid
    });
    let yield_ = &s["yield"];
    check(events, &defs, yield_, yield_.goid, "Gosched", |e| {
        status(e, yield_.goid, "Running", "Runnable")
    });
    let create = &s["create"];
    check(events, &defs, create, create.goid, "go statement", |e| {
        e["kind"] == "go_create" && e["parent_goid"] == create.goid
    });
}

#[test]
fn stacks_name_the_call_sites_as_the_program_sees_them_and_replay_agrees() {
    require_bpf!();
    for go in ALL_GO_VERSIONS {
        let s = Sample::build("blockspots", go, Variant::Default);
        let trace = s.trace(&format!("stacks-{go}"));
        let rec = trace.file("run.gmpt");
        let replayed = trace.file("replay.jsonl");
        let run = trace
            .opts(["--stacks", "--record", rec.to_str().unwrap()])
            .run();
        assert!(run.status.success(), "{go}: {}", run.stderr);
        check_run(&run.events, &run.stdout, go);

        let out = replay(&rec, &s.bin, &[("-o", &replayed)]);
        assert!(out.status.success(), "{go}: replay: {out:?}");
        let again = read_jsonl(&replayed);
        let stacked = |ev: &[Value]| -> Vec<Value> {
            ev.iter()
                .filter(|e| e["kind"] == "stack" || e.get("stack").is_some())
                .cloned()
                .collect()
        };
        assert_eq!(
            stacked(&again),
            stacked(&run.events),
            "{go}: replay gives the same stacks on the same events"
        );
    }
}

/// Without `--stacks` nothing changes: no stack records, no stack keys.
#[test]
fn no_stacks_without_the_flag() {
    require_bpf!();
    let s = Sample::build("blockspots", ALL_GO_VERSIONS[0], Variant::Default);
    let run = s.trace("stacks-off").run();
    assert!(run.status.success(), "{}", run.stderr);
    assert!(run.events.len() > 100);
    assert!(run
        .events
        .iter()
        .all(|e| e["kind"] != "stack" && e.get("stack").is_none()));
}

/// Position-independent (the load bias applies to every PC) and stripped (.gopclntab only)
/// builds name the same sites.
#[test]
fn stacks_in_pie_and_stripped_builds() {
    require_bpf!();
    for variant in [Variant::Pie, Variant::Stripped] {
        let go = ALL_GO_VERSIONS[0];
        let s = Sample::build("blockspots", go, variant);
        let run = s
            .trace(&format!("stacks-{go}-{}", variant.name()))
            .opts(["--stacks"])
            .run();
        assert!(
            run.status.success(),
            "{go} {}: {}",
            variant.name(),
            run.stderr
        );
        check_run(
            &run.events,
            &run.stdout,
            &format!("{go} {}", variant.name()),
        );
    }
}

/// Perfetto: the stacks ride on what the event draws (the blocked goroutine's Waiting slice,
/// the `unblock` instant (the waker's), the `go` instant (the creator's) and the Syscall slice)
/// twice: as a `stack` argument (a frame a line, `fn file:line`), which the v52 trace
/// processor here reads back, and as Perfetto's own callstack (`callstack_iid` into the
/// sequence's interned frames: v53+ UIs show it on the slice and as flamegraphs), read with
/// Perfetto's own v59 schema: every event with a stack has a callstack, resolving to the same
/// frames, and as many events carry them as the trace processor has slices with a stack.
#[test]
fn perfetto_slices_and_instants_carry_the_stacks() {
    require_perfetto_tools();
    require_bpf!();
    for go in GO_VERSIONS {
        let s = Sample::build("blockspots", go, Variant::Default);
        let run = s
            .trace(&format!("stacks-perfetto-{go}"))
            .output("trace.pftrace")
            .opts(["--stacks"])
            .run();
        assert!(run.status.success(), "{go}: {}", run.stderr);
        let spots = spots(&run.stdout);
        let line = |name: &str| {
            let (f, l) = &spots[name].frames[0];
            format!("{f} %blockspots/main.go:{l}")
        };
        let q = trace_processor(
            &run.dir.join("trace.pftrace"),
            &[
                PERFETTO_IMPORT_PROBLEMS_SQL,
                "SELECT name, EXTRACT_ARG(arg_set_id, 'debug.stack') AS stack FROM slice \
                 WHERE EXTRACT_ARG(arg_set_id, 'debug.stack') IS NOT NULL",
            ],
        );
        // The v52 trace processor counts each callstack (a TrackEvent field of v53) as an
        // unknown extension field, and nothing else may be wrong.
        let unknown_fields = q[0]
            .iter()
            .map(|r| match r["name"].as_str() {
                Some("unknown_extension_fields") => r["value"].as_u64().unwrap(),
                _ => panic!("{go}: import problems: {:?}", q[0]),
            })
            .sum::<u64>();
        let has = |slice: &str, spot: &str| {
            let pat = line(spot);
            let (head, tail) = pat.split_once('%').unwrap();
            q[1].iter().any(|r| {
                let name = r["name"].as_str().unwrap_or("");
                let stack = r["stack"].as_str().unwrap_or("");
                name.starts_with(slice)
                    && stack
                        .lines()
                        .any(|l| l.starts_with(head) && l.ends_with(tail))
            })
        };
        assert!(has("Waiting", "chanrecv"), "{go}: {:#?}", q[1]);
        assert!(has("Waiting", "mutex"), "{go}");
        assert!(has("unblock", "chansend"), "{go}");
        assert!(has("unblock", "unlock"), "{go}");
        assert!(has("go", "create"), "{go}");
        assert!(has("Syscall", "read"), "{go}");
        let with_callstack = check_callstacks(&run.dir.join("trace.pftrace"), q[1].len(), go);
        assert_eq!(unknown_fields, with_callstack, "{go}: v52's unknown fields");
    }
}

/// The trace's callstacks (Perfetto's schema) against its `stack` arguments; `slices` is how
/// many slices and instants the trace processor found with a stack. Returns how many events
/// carry a callstack.
fn check_callstacks(trace: &std::path::Path, slices: usize, go: &str) -> u64 {
    let cs = gmp_trace_tests::callstacks(trace);
    assert_eq!(cs["problems"], serde_json::json!([]), "{go}");
    let events = cs["events"].as_array().unwrap();
    assert_eq!(events.len(), slices, "{go}: events with a stack");
    for e in events {
        let text = e["stack"]
            .as_str()
            .expect("a stack argument beside the callstack");
        let Some(frames) = e["callstack"].as_array() else {
            assert_eq!(text, "(stack lost)", "{go}: no callstack for {e}");
            continue;
        };
        // The text is innermost first, the callstack outermost first.
        let lines: Vec<String> = frames
            .iter()
            .rev()
            .map(|f| match f[1].as_str().unwrap() {
                "" => f[0].as_str().unwrap().to_string(),
                file => format!("{} {file}:{}", f[0].as_str().unwrap(), f[2]),
            })
            .collect();
        let text: Vec<&str> = text
            .lines()
            .map(|l| l.trim_end_matches(" [inlined]"))
            .collect();
        assert_eq!(lines, text, "{go}: {}", e["name"]);
    }
    let with = |name: &str| {
        events
            .iter()
            .filter(|e| e["name"].as_str().unwrap().starts_with(name))
            .count()
    };
    for name in ["Waiting", "unblock", "go", "Syscall"] {
        assert!(with(name) > 0, "{go}: no {name} event with a callstack");
    }
    events.iter().filter(|e| e["callstack"].is_array()).count() as u64
}

/// The summary names where leaked goroutines block, with file:line: `leaky` starts a goroutine
/// blocked for good in main.leaked every 20 ms; traced with `--pid` for a second, the summary's
/// `blocked_at` puts them at main.leaked's channel receive, the site with the most.
#[test]
fn summary_names_where_goroutines_are_blocked() {
    require_bpf!();
    let go = ALL_GO_VERSIONS[0];
    let s = Sample::build("leaky", go, Variant::Default);
    let src =
        std::fs::read_to_string(gmp_trace_tests::workspace_root().join("tests/go/leaky/main.go"))
            .unwrap();
    // The receive in main.leaked: the line after `func leaked`.
    let line = src
        .lines()
        .position(|l| l.starts_with("func leaked("))
        .unwrap()
        + 2;
    let mut target = Target(
        Command::new(&s.bin)
            .env("LEAK_EVERY_MS", "20")
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    BufReader::new(target.0.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    assert!(ready.starts_with("ready"), "{ready}");
    let dir = scratch_dir("stacks-leaky");
    let summary = dir.join("summary.json");
    let run = attach(
        target.0.id(),
        [
            "--stacks",
            "-d",
            "1s",
            "--summary-json",
            summary.to_str().unwrap(),
        ],
        Stdio::null(),
    );
    let (status, err) = run.finish();
    assert!(status.success(), "{err}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let top = &v["blocked_at"][0];
    let site = top["site"].as_str().unwrap_or("");
    assert!(
        site.starts_with("main.leaked ") && site.ends_with(&format!("leaky/main.go:{line}")),
        "{:#}",
        v["blocked_at"]
    );
    assert!(top["count"].as_u64().unwrap() >= 10, "{top}");
    // The leak tree names the `go` statement that made them, by file:line.
    let go_line = 1 + src
        .lines()
        .position(|l| l.trim_start().starts_with("go leaked("))
        .unwrap();
    let group = v["leak_tree"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["create_site"] == "main.leak")
        .unwrap_or_else(|| panic!("no group made in main.leak: {:#}", v["leak_tree"]));
    assert!(
        group["create_at"]
            .as_str()
            .unwrap()
            .ends_with(&format!("leaky/main.go:{go_line}")),
        "{group}"
    );
}

/// The stacks go into Go's own trace format too (`--format go`): Go's trace reader gives the
/// blocks at the chan receive, the mutex and the creation of the waiters the program's own
/// frames, file:line, and names each inlined frame (one pc per frame, as Go's stacks have).
#[test]
fn stacks_in_go_trace_format_match_the_program() {
    require_bpf!();
    for go in GO_VERSIONS {
        let s = Sample::build("blockspots", go, Variant::Default);
        let run = s
            .trace(&format!("stacks-gotrace-{go}"))
            .output("x.gotrace")
            .opts(["--stacks"])
            .run();
        assert!(run.status.success(), "{go}: {}", run.stderr);
        let spots = spots(&run.stdout);
        let o = Command::new(gmp_trace_tests::go_binary(GO_VERSIONS[0]))
            .args(["tool", "trace", "-d=parsed"])
            .arg(run.dir.join("x.gotrace"))
            .env("GOTOOLCHAIN", "local")
            .output()
            .expect("run go tool trace");
        let parsed = String::from_utf8_lossy(&o.stdout);
        assert!(
            o.status.success(),
            "{go}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for name in ["chanrecv", "mutex"] {
            let spot = &spots[name];
            let want = format!("GoID={} Running->Waiting", spot.goid);
            let stacks = transition_stacks(&parsed, &want);
            let hit = stacks.iter().any(|frames| {
                let user: Vec<_> = frames
                    .iter()
                    .skip_while(|f| !f.0.starts_with("main."))
                    .filter(|f| f.0 != "runtime.goexit")
                    .cloned()
                    .collect();
                // The program's runtime.Callers leaves out the go statement's wrapper
                // (main.main.gowrap1) that the frame-pointer walk sees: compare up to it.
                user.starts_with(&spot.frames)
            });
            assert!(
                hit,
                "{go} {name}: no block of g{} at {:?} in Go's reading; its blocks: {stacks:?}",
                spot.goid, spot.frames
            );
        }
        // No two frames of a stack share a pc (the reader would name both after the first).
        for frames in transition_stacks(&parsed, "Running->Waiting") {
            for w in frames.windows(2) {
                assert!(w[0] != w[1], "{go}: a frame repeated: {frames:?}");
            }
        }
    }
}

/// The TransitionStack frames (function, line) of every parsed transition line containing
/// `what`.
fn transition_stacks(parsed: &str, what: &str) -> Vec<Vec<(String, u64)>> {
    let mut out = Vec::new();
    let mut lines = parsed.lines().peekable();
    while let Some(l) = lines.next() {
        if !(l.contains("StateTransition") && l.contains(what)) {
            continue;
        }
        if lines.peek() != Some(&"TransitionStack=") {
            continue;
        }
        lines.next();
        let mut frames = Vec::new();
        while let Some(f) = lines.peek().filter(|f| f.starts_with('\t')).copied() {
            lines.next();
            let (Some(func), Some(pos)) = (f.trim().split(" @ ").next(), lines.next()) else {
                break;
            };
            let line = pos.trim().rsplit(':').next().and_then(|n| n.parse().ok());
            frames.push((func.to_string(), line.unwrap_or(0)));
        }
        out.push(frames);
    }
    out
}
