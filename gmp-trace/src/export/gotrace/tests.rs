//! The encoder on hand-made transitions: the bytes parse as the format's batches (header,
//! batches, tables, sync, end marker), and the moves the reader needs are written (a P
//! before a start, a status before the first transition of an unknown goroutine), while what
//! it would reject is not.
use gmp_trace_common::{Event, EventKind};

use super::wire::Ev;
use super::GoTraceWriter;
use crate::binary::NoSymbols;
use crate::model::{GoState, Model, Transition};

fn tr(ts: u64, goid: u64, from: GoState, to: GoState, tid: u32, p: i32) -> Transition {
    Transition {
        ts,
        goid,
        from,
        to,
        tid,
        p,
        by: 1,
        reason: 14, // "chan receive" in Go 1.21..1.25 numbering
    }
}

fn ev(ts: u64, kind: EventKind, tid: u32, arg0: u64) -> Event {
    Event {
        ts,
        kind: kind as u32,
        tid,
        pid: 1,
        p: -1,
        m: -1,
        arg0,
        ..Event::default()
    }
}

fn uvarint(b: &[u8], at: &mut usize) -> u64 {
    let (mut v, mut shift) = (0u64, 0);
    loop {
        let byte = b[*at];
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return v;
        }
        shift += 7;
    }
}

/// Splits a file into (thread, batch bytes), checking the framing.
fn batches(file: &[u8]) -> Vec<(u64, Vec<u8>)> {
    assert!(file.starts_with(b"go 1.26 trace\0\0\0"));
    let mut at = 16;
    let mut out = Vec::new();
    while file[at] != Ev::EndOfGeneration as u8 {
        assert_eq!(file[at], Ev::EventBatch as u8, "batch at {at}");
        at += 1;
        assert_eq!(uvarint(file, &mut at), 1, "generation");
        let m = uvarint(file, &mut at);
        let _ts = uvarint(file, &mut at);
        let len = uvarint(file, &mut at) as usize;
        out.push((m, file[at..at + len].to_vec()));
        at += len;
    }
    assert_eq!(at + 1, file.len(), "bytes after the end of the generation");
    out
}

/// The event types of one thread's batches, in order.
fn types(bs: &[(u64, Vec<u8>)], tid: u64) -> Vec<u8> {
    // Timed events: type, then varints; arguments per type as the writer emits them.
    let nargs = |t: u8| match t {
        t if t == Ev::ProcStatus as u8 || t == Ev::GoStart as u8 => 3,
        t if t == Ev::ProcStart as u8 || t == Ev::GoBlock as u8 => 3,
        t if t == Ev::GoStatus as u8 || t == Ev::GoCreate as u8 => 4,
        t if t == Ev::GoUnblock as u8 || t == Ev::ProcSteal as u8 => 4,
        t if t == Ev::ProcsChange as u8 || t == Ev::GoStop as u8 => 3,
        _ => 1,
    };
    let mut out = Vec::new();
    for (_, data) in bs.iter().filter(|(m, _)| *m == tid) {
        let mut at = 0;
        while at < data.len() {
            let t = data[at];
            at += 1;
            for _ in 0..nargs(t) {
                uvarint(data, &mut at);
            }
            out.push(t);
        }
    }
    out
}

#[test]
fn a_start_gets_its_p_and_an_unknown_goroutine_its_status() {
    let model = Model::new();
    let mut w = GoTraceWriter::new(Vec::new(), "go1.24.1").unwrap();
    w.seed(&model, &NoSymbols);
    w.event(
        &ev(100, EventKind::AcquireP, 7, 0),
        vec![],
        None,
        &model,
        &NoSymbols,
    )
    .unwrap();
    let t = vec![
        tr(110, 5, GoState::NotExist, GoState::Runnable, 7, 0),
        tr(120, 5, GoState::Runnable, GoState::Running, 8, 1),
        tr(130, 5, GoState::Running, GoState::Waiting, 8, 1),
        // An unknown goroutine: a status first. Then a change Go's format has no event for.
        tr(140, 9, GoState::Waiting, GoState::Runnable, 7, 0),
        tr(150, 9, GoState::Runnable, GoState::Waiting, 7, 0),
    ];
    w.event(
        &ev(150, EventKind::Schedule, 7, 0),
        t,
        None,
        &model,
        &NoSymbols,
    )
    .unwrap();
    let (file, synth) = w.finish().unwrap();
    assert_eq!(synth.unmapped, 1, "{synth:?}");
    let bs = batches(&file);
    let on7 = types(&bs, 7);
    let want7 = [
        Ev::ProcStatus,
        Ev::ProcStart,
        Ev::GoCreate,
        Ev::GoStatus,
        Ev::GoUnblock,
    ];
    assert_eq!(on7, want7.map(|e| e as u8).to_vec());
    let on8 = types(&bs, 8);
    let want8 = [Ev::ProcStatus, Ev::ProcStart, Ev::GoStart, Ev::GoBlock];
    assert_eq!(on8, want8.map(|e| e as u8).to_vec());
    // The block reason is in the string table, in Go's words.
    assert!(file.windows(12).any(|w| w == b"chan receive"));
}

#[test]
fn waits_the_tracer_hides_write_nothing() {
    let model = Model::new();
    let mut w = GoTraceWriter::new(Vec::new(), "go1.27.3").unwrap();
    let mut hidden = tr(120, 5, GoState::Running, GoState::Waiting, 7, 0);
    hidden.reason = 33; // "stopping the world" in Go 1.26+
    let t = vec![
        tr(110, 5, GoState::Runnable, GoState::Running, 7, 0),
        hidden,
        tr(130, 5, GoState::Waiting, GoState::Running, 7, 0),
    ];
    w.event(
        &ev(130, EventKind::Schedule, 7, 0),
        t,
        None,
        &model,
        &NoSymbols,
    )
    .unwrap();
    let (file, synth) = w.finish().unwrap();
    assert_eq!(synth.hidden_waits, 1);
    assert_eq!(synth.note(), None);
    let on7 = types(&batches(&file), 7);
    // The status (Runnable), its P, the start; nothing for the hidden wait.
    let want = [Ev::GoStatus, Ev::ProcStatus, Ev::ProcStart, Ev::GoStart];
    assert_eq!(on7, want.map(|e| e as u8).to_vec());
}

#[test]
fn time_only_moves_forward_across_threads() {
    let model = Model::new();
    let mut w = GoTraceWriter::new(Vec::new(), "go1.22.1").unwrap();
    // Thread 8's event came in later but is stamped earlier (another CPU's clock read).
    w.event(
        &ev(200, EventKind::AcquireP, 7, 0),
        vec![],
        None,
        &model,
        &NoSymbols,
    )
    .unwrap();
    w.event(
        &ev(150, EventKind::AcquireP, 8, 1),
        vec![],
        None,
        &model,
        &NoSymbols,
    )
    .unwrap();
    let (file, _) = w.finish().unwrap();
    // Both batches' times: strictly increasing in the order written.
    let mut at = 16;
    let mut times = Vec::new();
    while file[at] == Ev::EventBatch as u8 {
        at += 1;
        let _gen = uvarint(&file, &mut at);
        let m = uvarint(&file, &mut at);
        let ts = uvarint(&file, &mut at);
        let len = uvarint(&file, &mut at) as usize;
        at += len;
        if m != super::wire::NO_THREAD {
            times.push((m, ts));
        }
    }
    let t7 = times.iter().find(|(m, _)| *m == 7).unwrap().1;
    let t8 = times.iter().find(|(m, _)| *m == 8).unwrap().1;
    assert!(t8 > t7, "{times:?}");
}

/// Symbols for [`go_visible`]'s test: pc 0x100 is a wrapper (funcID 23, Go 1.25+'s) of
/// main.f.func1, 0x200 its closure, 0x300 main.main; 0x400 a wrapper that called gopanic.
struct Wrappers;

impl crate::binary::Symbolize for Wrappers {
    fn func_name(&self, _pc: u64) -> Option<&str> {
        None
    }
    fn source_frames(&self, pc: u64) -> Vec<crate::binary::SourceFrame> {
        let (function, func_id) = match pc + 1 {
            0x100 => ("main.f.gowrap1", 23),
            0x200 => ("main.f.func1", 0),
            0x300 => ("main.main", 0),
            0x400 => ("main.T.M", 23),
            0x500 => ("runtime.gopanic", 0),
            _ => return Vec::new(),
        };
        vec![crate::binary::SourceFrame {
            function: function.to_string(),
            file: "x.go".to_string(),
            line: 1,
            inlined: false,
            func_id,
            pc,
        }]
    }
}

#[test]
fn stacks_leave_out_wrappers_as_go_does() {
    let names = |pcs: &[u64]| -> Vec<String> {
        let frames = crate::export::stacks::frames(pcs, &Wrappers);
        super::go_visible(frames, pcs, &Wrappers, 23)
            .into_iter()
            .map(|f| f.function)
            .collect()
    };
    assert_eq!(names(&[0x200, 0x100]), ["main.f.func1"]);
    assert_eq!(names(&[0x100, 0x300]), ["main.main"]);
    // A wrapper that called a panic function stays: the panic's cause.
    assert_eq!(names(&[0x500, 0x400]), ["runtime.gopanic", "main.T.M"]);
    // With another release's numbering nothing is a wrapper.
    let frames = crate::export::stacks::frames(&[0x200, 0x100], &Wrappers);
    assert_eq!(
        super::go_visible(frames, &[0x200, 0x100], &Wrappers, 22).len(),
        2
    );
}

#[test]
fn stop_reason_follows_the_stack() {
    use super::stop_reason;
    assert_eq!(
        stop_reason(&["runtime.Gosched", "main.spin"]),
        "runtime.Gosched"
    );
    assert_eq!(
        stop_reason(&["runtime.goschedIfBusy", "main.f"]),
        "runtime.Gosched"
    );
    // Preempted in user code, or goyield (which Go's tracer calls a preemption too).
    assert_eq!(stop_reason(&["main.spin", "main.main"]), "preempted");
    assert_eq!(
        stop_reason(&["runtime.goyield", "runtime.semrelease1"]),
        "preempted"
    );
}
