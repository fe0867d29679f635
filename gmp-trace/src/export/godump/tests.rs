//! Exact text for hand-made dumps. The expected layouts are those Go printed for the same
//! situations (runtime.Stack of parked goroutines and a 200-deep recursion, Go 1.19/1.21/1.27).
use super::group::group;
use super::*;
use crate::model::dump::{CreatedBy, Dump, Frame, Goroutine, Stack};

fn frame(function: &str, file: &str, line: u32, offset: Option<u64>) -> Frame {
    Frame {
        function: function.into(),
        file: file.into(),
        line,
        inlined: offset.is_none(),
        wrapper: false,
        pc: 0x40_0000 + offset.unwrap_or(0),
        offset,
    }
}

/// The frames of a goroutine parked in a channel receive at main.go:`line`, in `function`.
fn parked(function: &str, line: u32) -> Vec<Frame> {
    vec![
        frame("runtime.gopark", "/go/src/runtime/proc.go", 435, Some(0xce)),
        frame(
            "runtime.chanrecv",
            "/go/src/runtime/chan.go",
            664,
            Some(0x445),
        ),
        frame(
            "runtime.chanrecv1",
            "/go/src/runtime/chan.go",
            506,
            Some(0x12),
        ),
        frame(function, "/app/main.go", line, Some(0x25)),
        frame(
            "runtime.goexit",
            "/go/src/runtime/asm_amd64.s",
            1700,
            Some(0x1),
        ),
    ]
}

fn created(goid: Option<u64>, line: u32) -> Option<CreatedBy> {
    Some(CreatedBy {
        function: "main.main".into(),
        file: "/app/main.go".into(),
        line,
        goid,
        offset: 0x58,
    })
}

fn waiting(goid: u64, reason: &'static str, frames: Vec<Frame>) -> Goroutine {
    Goroutine {
        goid,
        status: "waiting",
        status_raw: 4,
        wait_reason: Some(reason),
        start_function: Some("main.main.func1".into()),
        created_by: created(Some(1), 30),
        stack: Stack::Frames {
            frames: frames.into(),
        },
        ..Goroutine::default()
    }
}

fn dump(minor: u32, goroutines: Vec<Goroutine>) -> Dump {
    Dump {
        pid: 4242,
        go_version: format!("go1.{minor}.1"),
        go_minor: minor,
        goroutines,
        ..Dump::default()
    }
}

fn text(d: &Dump, opts: TextOptions) -> String {
    let mut out = Vec::new();
    write_text(d, &opts, &mut out).expect("write to a Vec");
    String::from_utf8(out).expect("utf-8")
}

fn grouped(d: &Dump, opts: TextOptions) -> String {
    let mut out = Vec::new();
    write_grouped(d, &opts, &mut out).expect("write to a Vec");
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn header_minutes_locked_and_hidden_runtime_frames() {
    let mut g = waiting(18, "chan receive", parked("main.main.func1", 30));
    g.waiting_ns = Some(3 * 60_000_000_000 + 59_000_000_000);
    g.locked_to_thread = true;
    let mut short = waiting(19, "select", parked("main.main.func2", 31));
    short.waiting_ns = Some(59_000_000_000); // under a minute: not printed
    let d = dump(27, vec![g, short]);
    assert_eq!(
        text(&d, TextOptions::default()),
        "goroutine 18 [chan receive, 3 minutes, locked to thread]:\n\
         main.main.func1(...)\n\t/app/main.go:30 +0x25\n\
         created by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n\
         \n\
         goroutine 19 [select]:\n\
         main.main.func2(...)\n\t/app/main.go:31 +0x25\n\
         created by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n"
    );
    let all = text(
        &d,
        TextOptions {
            runtime_frames: true,
            system: false,
            ..TextOptions::default()
        },
    );
    assert!(all.starts_with(
        "goroutine 18 [chan receive, 3 minutes, locked to thread]:\n\
         runtime.gopark(...)\n\t/go/src/runtime/proc.go:435 +0xce\n\
         runtime.chanrecv(...)\n"
    ));
    assert!(all.contains("runtime.goexit(...)\n\t/go/src/runtime/asm_amd64.s:1700 +0x1\n"));
}

#[test]
fn created_by_names_the_parent_from_1_21() {
    let g = waiting(18, "chan receive", parked("main.main.func1", 30));
    let old = text(&dump(19, vec![g.clone()]), TextOptions::default());
    assert!(
        old.contains("\ncreated by main.main\n\t/app/main.go:30 +0x58\n"),
        "{old}"
    );
    let new = text(&dump(21, vec![g.clone()]), TextOptions::default());
    assert!(
        new.contains("\ncreated by main.main in goroutine 1\n"),
        "{new}"
    );
    // Goroutine 1 never shows `created by`; a runtime creator is hidden like its frames.
    let mut main = g.clone();
    main.goid = 1;
    let mut by_runtime = g;
    by_runtime.created_by.as_mut().expect("set").function = "runtime.gcenable".into();
    let t = text(&dump(27, vec![main, by_runtime]), TextOptions::default());
    assert!(!t.contains("created by"), "{t}");
}

#[test]
fn status_names_scan_syscall_and_inlined_frames() {
    let mut g = waiting(7, "sync.Mutex.Lock", Vec::new());
    g.status_raw = 0x1004;
    g.stack = Stack::Frames {
        frames: vec![
            frame(
                "sync.(*Mutex).lockSlow",
                "/go/src/sync/mutex.go",
                171,
                Some(0x165),
            ),
            frame("sync.(*Mutex).Lock", "/go/src/sync/mutex.go", 90, None),
            frame("main.main.func3", "/app/main.go", 32, Some(0x32)),
        ]
        .into(),
    };
    let mut sys = waiting(
        8,
        "",
        vec![frame("syscall.Syscall", "/s.go", 9, Some(0x10))],
    );
    sys.status = "syscall";
    sys.wait_reason = None;
    sys.waiting_ns = Some(120_000_000_000);
    sys.created_by = None;
    let t = text(&dump(27, vec![g, sys]), TextOptions::default());
    assert_eq!(
        t,
        "goroutine 7 [sync.Mutex.Lock (scan)]:\n\
         sync.(*Mutex).lockSlow(...)\n\t/go/src/sync/mutex.go:171 +0x165\n\
         sync.(*Mutex).Lock(...)\n\t/go/src/sync/mutex.go:90\n\
         main.main.func3(...)\n\t/app/main.go:32 +0x32\n\
         created by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n\
         \n\
         goroutine 8 [syscall, 2 minutes]:\n\
         syscall.Syscall(...)\n\t/s.go:9 +0x10\n"
    );
}

#[test]
fn running_torn_unavailable_and_trailer() {
    let mut run = waiting(3, "", Vec::new());
    run.status = "running";
    run.wait_reason = None;
    run.stack = Stack::Running;
    let mut torn = waiting(4, "chan receive", Vec::new());
    torn.stack = Stack::Torn {
        reason: "stack moved while reading".into(),
    };
    torn.created_by = None;
    let mut none = waiting(5, "chan receive", Vec::new());
    none.stack = Stack::Unavailable;
    none.created_by = None;
    let mut d = dump(27, vec![run, torn, none]);
    d.torn_reads = 3;
    d.incomplete = Some("the process exited".into());
    assert_eq!(
        text(&d, TextOptions::default()),
        "goroutine 3 [running]:\n\
         \tgoroutine running on other thread; stack unavailable\n\
         created by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n\
         \n\
         goroutine 4 [chan receive]:\n\t(stack not read: stack moved while reading)\n\
         \n\
         goroutine 5 [chan receive]:\n\t(stack not read)\n\
         \n\
         # gmp-trace: dump incomplete: the process exited\n\
         # gmp-trace: 3 goroutines with torn reads (stacks left out)\n"
    );
}

#[test]
fn system_goroutines_hidden_unless_asked() {
    let mut gc = waiting(
        2,
        "GC worker (idle)",
        vec![
            frame("runtime.gopark", "/go/src/runtime/proc.go", 435, Some(0xce)),
            frame(
                "runtime.gcBgMarkWorker",
                "/go/src/runtime/mgc.go",
                1423,
                Some(0x105),
            ),
        ],
    );
    gc.system = true;
    gc.created_by.as_mut().expect("set").function = "runtime.gcBgMarkStartWorkers".into();
    let user = waiting(18, "chan receive", parked("main.main.func1", 30));
    let d = dump(27, vec![gc, user]);
    assert!(text(&d, TextOptions::default()).starts_with("goroutine 18 [chan receive]:\n"));
    // Shown, with every frame runtime: Go prints them all when none would show.
    let t = text(
        &d,
        TextOptions {
            runtime_frames: false,
            system: true,
            ..TextOptions::default()
        },
    );
    assert!(
        t.starts_with(
            "goroutine 2 [GC worker (idle)]:\n\
         runtime.gopark(...)\n\t/go/src/runtime/proc.go:435 +0xce\n\
         runtime.gcBgMarkWorker(...)\n\t/go/src/runtime/mgc.go:1423 +0x105\n\
         \ngoroutine 18"
        ),
        "{t}"
    );
}

#[test]
fn wrappers_hidden_unless_they_called_panic() {
    let frames = vec![
        frame("runtime.gopark", "/go/src/runtime/proc.go", 435, Some(0xce)),
        frame("main.T.Wait", "/app/main.go", 23, Some(0x25)),
        frame("main.(*T).Wait", "<autogenerated>", 1, Some(0x2b)),
        frame(
            "runtime.goexit",
            "/go/src/runtime/asm_amd64.s",
            1700,
            Some(0x1),
        ),
    ];
    let t = text(
        &dump(19, vec![waiting(25, "chan receive", frames)]),
        TextOptions::default(),
    );
    assert!(
        t.contains("main.T.Wait(...)\n\t/app/main.go:23 +0x25\ncreated by"),
        "{t}"
    );
    let panicking = vec![
        frame(
            "runtime.gopanic",
            "/go/src/runtime/panic.go",
            838,
            Some(0x207),
        ),
        frame(
            "runtime.panicwrap",
            "/go/src/runtime/error.go",
            270,
            Some(0x10),
        ),
        frame("main.(*T).Wait", "<autogenerated>", 1, Some(0x2b)),
        frame("main.f", "/app/main.go", 40, Some(0x9)),
    ];
    let t = text(
        &dump(27, vec![waiting(26, "x", panicking)]),
        TextOptions::default(),
    );
    assert!(
        t.contains("main.(*T).Wait(...)\n\t<autogenerated>:1 +0x2b\nmain.f"),
        "{t}"
    );
    assert!(
        !t.contains("panic(...)"),
        "gopanic as the first frame stays hidden: {t}"
    );
}

/// A goroutine blocked 200 calls deep: 3 runtime frames, 201 main.deep frames, goexit.
fn deep_goroutine() -> Goroutine {
    let mut frames = parked("main.deep", 15);
    frames.truncate(3);
    frames.push(frame("main.deep", "/app/main.go", 15, Some(0x33)));
    for _ in 0..200 {
        frames.push(frame("main.deep", "/app/main.go", 17, Some(0x4b)));
    }
    frames.push(frame(
        "runtime.goexit",
        "/go/src/runtime/asm_amd64.s",
        1700,
        Some(0x1),
    ));
    waiting(23, "chan receive", frames)
}

#[test]
fn long_stacks_elided_per_release() {
    let count = |t: &str| t.matches("main.deep(...)").count();
    // 1.19: the first 100 physical frames are walked, 3 of them hidden: 97 printed and, as Go
    // prints exactly 100 only, no elision line.
    let old = text(&dump(19, vec![deep_goroutine()]), TextOptions::default());
    assert_eq!(count(&old), 97);
    assert!(!old.contains("elided"), "{old}");
    // ... but with runtime frames shown, 100 are printed and the line follows.
    let all = text(
        &dump(19, vec![deep_goroutine()]),
        TextOptions {
            runtime_frames: true,
            system: false,
            ..TextOptions::default()
        },
    );
    assert_eq!(count(&all), 97);
    assert!(all
        .contains("/app/main.go:17 +0x4b\n...additional frames elided...\ncreated by main.main\n"));
    // 1.21+: innermost 50, "...101 frames elided...", outermost 50.
    for minor in [21, 27] {
        let new = text(&dump(minor, vec![deep_goroutine()]), TextOptions::default());
        assert_eq!(count(&new), 100, "1.{minor}");
        let (inner, outer) = new
            .split_once("...101 frames elided...\n")
            .expect("elision line");
        assert_eq!(count(inner), 50);
        assert!(inner.starts_with(
            "goroutine 23 [chan receive]:\nmain.deep(...)\n\t/app/main.go:15 +0x33\n"
        ));
        assert_eq!(count(outer), 50);
        assert!(outer.ends_with("main.deep(...)\n\t/app/main.go:17 +0x4b\ncreated by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n"));
    }
    // 100 visible frames or fewer: all printed.
    let mut g = deep_goroutine();
    if let Stack::Frames { frames } = &mut g.stack {
        let mut v = frames.to_vec();
        v.drain(4..105);
        *frames = v.into();
    }
    let t = text(&dump(27, vec![g]), TextOptions::default());
    assert_eq!(count(&t), 100);
    assert!(!t.contains("elided"));
}

#[test]
fn groups_by_state_stack_and_creator() {
    let mut gs = Vec::new();
    for goid in 10..15 {
        gs.push(waiting(goid, "chan receive", parked("main.worker", 12)));
    }
    gs[1].waiting_ns = Some(5 * 60_000_000_000);
    gs[3].created_by = created(Some(9), 30); // another parent: same group, parent not named
    gs.push(waiting(3, "select", parked("main.loop", 40)));
    gs.push(waiting(4, "select", parked("main.loop", 40)));
    let mut locked = waiting(2, "select", parked("main.loop", 40));
    locked.locked_to_thread = true;
    gs.push(locked);
    let mut other_line = waiting(5, "chan receive", parked("main.worker", 13));
    other_line.created_by = created(Some(1), 31);
    gs.push(other_line);
    let mut sys = waiting(6, "GC worker (idle)", parked("runtime.gcBgMarkWorker", 1));
    sys.system = true;
    gs.push(sys);
    let d = dump(27, gs);
    let groups = group(&d, &TextOptions::default());
    let sizes: Vec<(usize, u64)> = groups.iter().map(|g| (g.goids.len(), g.goids[0])).collect();
    assert_eq!(sizes, vec![(5, 10), (2, 3), (1, 2), (1, 5)]);
    assert_eq!(groups[0].parent, None);
    assert_eq!(groups[1].parent, Some(1));
    let t = grouped(&d, TextOptions::default());
    assert!(t.starts_with(
        "goroutine dump of pid 4242 (go1.27.1): 9 goroutines in 4 groups, 1 system goroutine hidden\n\
         \n\
         5 goroutines [chan receive, 0~5 minutes]: 10, 11, 12, ... (and 2 more)\n\
         main.worker(...)\n\t/app/main.go:12 +0x25\n\
         created by main.main\n\t/app/main.go:30 +0x58\n\
         \n\
         2 goroutines [select]: 3, 4\n\
         main.loop(...)\n\t/app/main.go:40 +0x25\n\
         created by main.main in goroutine 1\n\t/app/main.go:30 +0x58\n\
         \n\
         1 goroutine [select, locked to thread]: 2\n"
    ), "{t}");
    let with_sys = group(
        &d,
        &TextOptions {
            runtime_frames: false,
            system: true,
            ..TextOptions::default()
        },
    );
    assert_eq!(with_sys.len(), 5);
    // A summary's short form: the largest groups, then how many are left out.
    let short = grouped(
        &d,
        TextOptions {
            max_groups: Some(2),
            ..TextOptions::default()
        },
    );
    assert!(short.contains("2 goroutines [select]: 3, 4\n"), "{short}");
    assert!(!short.contains("locked to thread"), "{short}");
    assert!(
        short.contains(
            "\n... 2 more groups of 2 goroutines (`gmp-trace dump --pid 4242 --group` shows every group)\n"
        ),
        "{short}"
    );
}

#[test]
fn a_million_goroutines_group_in_one_pass() {
    const N: u64 = 1_000_000;
    let stacks: Vec<Vec<Frame>> = (0..5)
        .map(|k| parked(&format!("main.worker{k}"), 10 + k))
        .collect();
    let goroutines = (0..N)
        .map(|goid| {
            // 5 stacks, spread unevenly: stack k gets goids with goid % 15 in a band of k+1.
            let k = match goid % 15 {
                0 => 0,
                1..=2 => 1,
                3..=5 => 2,
                6..=9 => 3,
                _ => 4,
            };
            waiting(goid + 100, "chan receive", stacks[k as usize].clone())
        })
        .collect();
    let d = dump(27, goroutines);
    let groups = group(&d, &TextOptions::default());
    let sizes: Vec<usize> = groups.iter().map(|g| g.goids.len()).collect();
    let expect = |band: u64| (0..N).filter(|g| (g % 15) < band).count();
    let bands = [
        expect(1),
        expect(3) - expect(1),
        expect(6) - expect(3),
        expect(10) - expect(6),
        N as usize - expect(10),
    ];
    let mut want = bands.to_vec();
    want.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(sizes, want);
    assert_eq!(sizes.iter().sum::<usize>(), N as usize);
    // The largest group is main.worker4 (goid % 15 in 10..15), lowest goid 100 + 10.
    let first = &d.goroutines[groups[0].first];
    assert_eq!(groups[0].goids[0], 110);
    match &first.stack {
        Stack::Frames { frames } => assert_eq!(&*frames[3].function, "main.worker4"),
        other => panic!("unexpected {other:?}"),
    }
}
