//! The parser on text Go printed (runtime.Stack of tests/go/parked, Go 1.27 and 1.19) and the
//! comparison rule on small hand-made differences.
use super::*;

/// Go 1.27.3, shortened: a writer, a lock wait with runtime-named frames, inlined frames, a
/// method, a generic function, a locked thread and an elided deep stack.
const GO127: &str = "goroutine 38 [running]:
main.stackAll()
\texample.com/parked/main.go:247 +0x65
main.writer({0x7ffcd4c18a35, 0xd})
\texample.com/parked/main.go:232 +0x75
created by main.main in goroutine 1
\texample.com/parked/main.go:51 +0xff

goroutine 1 [chan receive, 12 minutes]:
main.main()
\texample.com/parked/main.go:53 +0x10d

goroutine 25 [sync.Mutex.Lock]:
internal/sync.runtime_SemacquireMutex(0x0?, 0x0?, 0x2c33769bfb0?)
\truntime/sema.go:95 +0x25
internal/sync.(*Mutex).Lock(...)
\tinternal/sync/mutex.go:70
sync.(*Mutex).Lock(...)
\tsync/mutex.go:46
main.parkMutex()
\texample.com/parked/main.go:106 +0x4b
created by main.startLocks in goroutine 1
\texample.com/parked/main.go:106 +0x45

goroutine 14 [chan receive, locked to thread]:
main.(*parker).wait(0x0?)
\texample.com/parked/main.go:216 +0x18
main.parkOn[...](0x0?)
\texample.com/parked/main.go:207 +0x25
created by main.startAll in goroutine 1
\texample.com/parked/main.go:61 +0x1a

goroutine 15 [chan receive]:
main.recurse(0x0?)
\texample.com/parked/main.go:176 +0x25
main.recurse(0x0?)
\texample.com/parked/main.go:179 +0x35
...101 frames elided...
main.recurse(0x0?)
\texample.com/parked/main.go:179 +0x35
main.parkDeep()
\texample.com/parked/main.go:86 +0x34
created by main.startAll in goroutine 1
\texample.com/parked/main.go:61 +0x1a
";

/// Go 1.19: no goroutine in `created by`, the old marker, a syscall stack.
const GO119: &str = "goroutine 34 [syscall]:
syscall.Syscall(0xc0000bff88?, 0x4074fd?, 0xc0000a4120?, 0x530030?)
\tsyscall/syscall_linux.go:68 +0x27
syscall.Read(...)
\tsyscall/syscall_unix.go:183
main.pipeRead()
\texample.com/parked/main.go:160 +0x65
...additional frames elided...
created by main.startAll
\texample.com/parked/main.go:61 +0x25

goroutine 9 [running]:
\tgoroutine running on other thread; stack unavailable
created by main.startAll
\texample.com/parked/main.go:61 +0x25
";

fn frame(function: &str, file: &str, line: u32, has_offset: bool) -> GoFrame {
    GoFrame {
        function: function.into(),
        file: file.into(),
        line,
        has_offset,
    }
}

#[test]
fn parses_every_part_of_a_go_127_dump() {
    let d = parse(GO127).unwrap();
    let ids: Vec<u64> = d.goroutines.iter().map(|g| g.goid).collect();
    assert_eq!(ids, [38, 1, 25, 14, 15]);
    let main = d.get(1).unwrap();
    assert_eq!(
        (main.state.as_str(), main.minutes),
        ("chan receive", Some(12))
    );
    assert!(main.created_by.is_none());
    let writer = d.get(38).unwrap();
    assert_eq!(writer.frames[1].function, "main.writer");
    assert_eq!(
        writer.created_by,
        Some(GoCreatedBy {
            function: "main.main".into(),
            goid: Some(1),
            file: "example.com/parked/main.go".into(),
            line: 51,
        })
    );
    let m = d.get(25).unwrap();
    assert_eq!(m.state, "sync.Mutex.Lock");
    assert_eq!(
        m.frames[1],
        frame(
            "internal/sync.(*Mutex).Lock",
            "internal/sync/mutex.go",
            70,
            false
        )
    );
    assert_eq!(m.frames[3].function, "main.parkMutex");
    assert!(m.frames[3].has_offset);
    let locked = d.get(14).unwrap();
    assert!(locked.locked && locked.minutes.is_none());
    assert_eq!(locked.state, "chan receive");
    assert_eq!(locked.frames[0].function, "main.(*parker).wait");
    assert!(locked.has_frame("main.parkOn[...]"));
    let deep = d.get(15).unwrap();
    assert_eq!(
        deep.elided,
        Some(Elision {
            at: 2,
            count: Some(101)
        })
    );
    assert_eq!(deep.frames.len(), 4);
}

#[test]
fn parses_go_119_forms_and_unavailable_stacks() {
    let d = parse(GO119).unwrap();
    let s = d.get(34).unwrap();
    assert_eq!(s.state, "syscall");
    assert_eq!(s.elided, Some(Elision { at: 3, count: None }));
    assert_eq!(s.created_by.as_ref().unwrap().goid, None);
    assert_eq!(s.created_by.as_ref().unwrap().function, "main.startAll");
    let r = d.get(9).unwrap();
    assert!(r.unavailable && r.frames.is_empty());
    assert_eq!(r.state, "running");
}

#[test]
fn header_extras_are_skipped() {
    let d = parse(
        "goroutine 5 gp=0xc000007c00 m=nil [select, 2 minutes, locked to thread] {a: b}:\n\
         main.f()\n\t/src/x.go:3 +0x1 fp=0xc sp=0xc pc=0x4\n",
    )
    .unwrap();
    let g = &d.goroutines[0];
    assert_eq!(
        (g.goid, g.state.as_str(), g.minutes, g.locked),
        (5, "select", Some(2), true)
    );
    assert_eq!(g.frames, [frame("main.f", "/src/x.go", 3, true)]);
}

#[test]
fn malformed_dumps_are_errors() {
    for (text, why) in [
        ("main.f()\n\tx.go:1\n", "text before the first goroutine"),
        (
            "goroutine 1 [select]:\nmain.f()\n",
            "ends where a file:line was due",
        ),
        (
            "goroutine 1 [select]:\nmain.f()\nmain.g()\n",
            "a function where a file:line was due",
        ),
        (
            "goroutine 1 [select]:\n\tx.go:1\n",
            "a file:line without a function",
        ),
        ("goroutine 1 [select]:\nmain.f\n", "no argument list"),
        ("goroutine x [select]:\n", "bad header"),
        ("goroutine 1 [select]:\nmain.f()\n\tx.go\n", "bad file:line"),
    ] {
        let e = parse(text).unwrap_err();
        assert_eq!(e.why, why, "{text:?}: {e}");
    }
}

#[test]
fn identical_dumps_agree_without_the_writer() {
    let go = parse(GO127).unwrap();
    let mut ours = go.clone();
    ours.goroutines.retain(|g| g.goid != 38);
    let a = compare(&go, &ours, 38);
    assert!(a.full(), "{a}: {:?}", a.differences);
    assert_eq!((a.in_both, a.only_go, a.only_ours), (4, 0, 0));
    assert_eq!((a.states_equal, a.created_by_equal), (4, 4));
    // Runtime frames are not compared: none here are in package runtime itself.
    assert_eq!((a.frames_compared, a.frames_equal), (11, 11));
    assert!(a.to_string().contains("frames 11/11"), "{a}");
}

#[test]
fn every_kind_of_difference_is_reported() {
    let go = parse(GO127).unwrap();
    let mut ours = go.clone();
    ours.goroutines.retain(|g| g.goid != 14);
    ours.goroutines[1].state = "select".into();
    ours.goroutines[2].created_by.as_mut().unwrap().goid = Some(7);
    ours.goroutines[3].elided.as_mut().unwrap().count = Some(100);
    ours.goroutines[3].frames[3].line = 87;
    ours.goroutines.push(GoGoroutine {
        goid: 99,
        state: "chan send".into(),
        ..GoGoroutine::default()
    });
    let a = compare(&go, &ours, 38);
    assert_eq!((a.in_both, a.only_go, a.only_ours), (3, 1, 1));
    assert_eq!((a.states_equal, a.created_by_equal), (2, 2));
    assert_eq!(a.frames_equal + 1, a.frames_compared);
    let all = a.differences.join("\n");
    for needle in [
        "goroutine 14 [chan receive]: only in Go's dump",
        "goroutine 99 [chan send]: only in ours",
        "goroutine 1: state Go [chan receive] ours [select]",
        "goroutine 25: created by",
        "goroutine 15: elision marker Go Some(Some(101)) ours Some(Some(100))",
        "goroutine 15: frame Go main.parkDeep example.com/parked/main.go:86 ours",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
    assert!(!a.full());
}

#[test]
fn runtime_frames_and_locks_count() {
    let text = "goroutine 3 [chan receive]:\nruntime.gopark(0x1)\n\truntime/proc.go:1 +0x1\n\
                main.f()\n\tm.go:2 +0x1\n";
    let go = parse(text).unwrap();
    let mut ours = go.clone();
    ours.goroutines[0].frames.remove(0);
    assert!(compare(&go, &ours, 0).full());
    ours.goroutines[0].locked = true;
    let a = compare(&go, &ours, 0);
    assert_eq!(a.states_equal, 0);
    assert!(a.differences[0].contains("ours [chan receive, locked to thread]"));
}

#[test]
fn old_go_silent_truncation_is_noted_not_failed() {
    let text = "goroutine 3 [chan receive]:\nmain.r()\n\tm.go:2 +0x1\nmain.r()\n\tm.go:3 +0x1\n";
    let go = parse(text).unwrap();
    let mut ours = go.clone();
    ours.goroutines[0].elided = Some(Elision { at: 2, count: None });
    let a = compare(&go, &ours, 0);
    assert!(a.full(), "{:?}", a.differences);
    assert_eq!(a.notes.len(), 1);
    // A marker that Go did not print, with frames after it, is a difference.
    ours.goroutines[0].elided = Some(Elision { at: 1, count: None });
    assert!(!compare(&go, &ours, 0).full());
}

#[test]
fn elided_text_against_a_complete_stack() {
    let go = parse(GO127).unwrap();
    let mut full = go.clone();
    let deep = full.goroutines.iter_mut().find(|g| g.goid == 15).unwrap();
    deep.elided = None;
    let mut frames = vec![deep.frames[0].clone()];
    frames.extend(std::iter::repeat_n(deep.frames[1].clone(), 199));
    frames.push(deep.frames[3].clone());
    deep.frames = frames;
    let a = compare_with_complete(&go, &full, 38);
    assert!(a.full(), "{a}: {:?}", a.differences);
    // The same pair is a difference for the text rule: ours must elide like Go.
    assert!(!compare(&go, &full, 38).full());
    // A complete stack that is wrong at its far end is caught.
    let deep = full.goroutines.iter_mut().find(|g| g.goid == 15).unwrap();
    deep.frames.last_mut().unwrap().function = "main.other".into();
    assert!(!compare_with_complete(&go, &full, 38).full());
}
