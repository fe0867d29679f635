//! JSONL event output: one object per line, flushed as events arrive so `tail -f` and pipes see
//! them. Common keys: ts (CLOCK_MONOTONIC ns), kind, tid, pid, goid, m, p (-1: none/unknown);
//! the rest depends on the kind (docs/formats.md).
use std::io::{self, Write};

use gmp_trace_common::{Event, EventKind};

use super::Symbolize;
use crate::model::GoState;

/// The JSONL name of a startup phase id.
pub fn phase_name(id: u64) -> &'static str {
    use gmp_trace_common::phase;
    match id {
        phase::RT0_GO => "rt0_go",
        phase::SCHEDINIT => "schedinit",
        phase::MSTART_M0 => "mstart_m0",
        phase::INIT_TASK => "init_task",
        phase::INIT_DONE => "init_done",
        phase::GCENABLE => "gcenable",
        phase::MAIN_MAIN => "main.main",
        phase::EXIT => "exit",
        phase::EXEC => "exec",
        _ => "unknown",
    }
}

/// Lines are gathered here and handed to the output in chunks of about this size: a write
/// per line (through the caller's `dyn Write`) costs as much as formatting the line.
const CHUNK: usize = 1 << 16;

pub struct JsonlWriter<W: Write> {
    out: W,
    /// Whole lines not yet written to `out`; `flush` (after every ring-buffer drain) empties it.
    buf: Vec<u8>,
    /// `--stacks`: the stack id the next event carries (`set_stack`).
    next_stack: Option<u32>,
}

/// "00".."99": integers are written two digits at a time.
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// Appends `v` in decimal, as `Display` prints it: every line holds ten or so integers, and
/// `fmt`'s machinery (arguments, padding) was most of the writer's time. The digits go straight
/// into the line (a fixed-size extend, then cut to length), two at a time.
fn push_u64(buf: &mut Vec<u8>, mut v: u64) {
    let n = v.checked_ilog10().map_or(1, |l| l as usize + 1);
    let start = buf.len();
    buf.extend_from_slice(&[b'0'; 20]);
    buf.truncate(start + n);
    let d = &mut buf[start..];
    let mut i = n;
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        d[i..i + 2].copy_from_slice(&DIGIT_PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        d[i - 2..i].copy_from_slice(&DIGIT_PAIRS[v as usize * 2..v as usize * 2 + 2]);
    } else {
        d[i - 1] = b'0' + v as u8;
    }
}

fn push_i64(buf: &mut Vec<u8>, v: i64) {
    if v < 0 {
        buf.push(b'-');
    }
    push_u64(buf, v.unsigned_abs());
}

/// `,"name":`, the text before a value: one copy per key.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// One line being written: `,"key":value` appenders, in the order the keys are documented.
struct Line<'a> {
    buf: &'a mut Vec<u8>,
    sym: &'a dyn Symbolize,
}

impl Line<'_> {
    fn u(&mut self, key: &str, v: u64) {
        self.buf.extend_from_slice(key.as_bytes());
        push_u64(self.buf, v);
    }

    fn i(&mut self, key: &str, v: i64) {
        self.buf.extend_from_slice(key.as_bytes());
        push_i64(self.buf, v);
    }

    fn b(&mut self, key: &str, v: bool) {
        self.buf.extend_from_slice(key.as_bytes());
        self.buf
            .extend_from_slice(if v { b"true" } else { b"false" });
    }

    /// A name from our own vocabulary (states, phases): nothing to escape.
    fn name(&mut self, key: &str, v: &str) {
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.push(b'"');
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(b'"');
    }

    /// A function name as a JSON string (serde_json escapes it: names are plain ASCII in
    /// practice, but a name from a corrupt symbol table must not break the line), or null.
    fn func(&mut self, key: &str, pc: u64) -> io::Result<()> {
        let name = self.sym.func_name(pc);
        self.name_or_null(key, name)
    }

    /// A start function's name as Go's tools give it ([`Symbolize::start_name`]).
    fn start_func(&mut self, key: &str, pc: u64) -> io::Result<()> {
        let name = self.sym.start_name(pc);
        self.name_or_null(key, name)
    }

    fn name_or_null(&mut self, key: &str, name: Option<&str>) -> io::Result<()> {
        self.buf.extend_from_slice(key.as_bytes());
        match name {
            Some(n) => serde_json::to_writer(&mut *self.buf, n).map_err(io::Error::from),
            None => {
                self.buf.extend_from_slice(b"null");
                Ok(())
            }
        }
    }
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> JsonlWriter<W> {
        JsonlWriter {
            out,
            buf: Vec::with_capacity(CHUNK + 1024),
            next_stack: None,
        }
    }

    /// The next event written carries `"stack": id` (defined before by [`JsonlWriter::stack`]).
    pub fn set_stack(&mut self, id: u32) {
        self.next_stack = Some(id);
    }

    /// A stack definition, written once before its first use: `{"ts", "kind": "stack", "id",
    /// "goid" (whose stack), "frames": [{"fn", "file", "line", "inlined"}...]}` innermost
    /// first, plus `"missing": true` when its PCs were lost (frames then empty).
    pub fn stack(
        &mut self,
        ts: u64,
        id: u32,
        goid: u64,
        frames: Option<&[super::stacks::StackFrame]>,
    ) -> io::Result<()> {
        let buf = &mut self.buf;
        buf.extend_from_slice(b"{\"ts\":");
        push_u64(buf, ts);
        buf.extend_from_slice(b",\"kind\":\"stack\",\"id\":");
        push_u64(buf, u64::from(id));
        buf.extend_from_slice(key!("goid").as_bytes());
        push_u64(buf, goid);
        buf.extend_from_slice(b",\"frames\":[");
        for (i, f) in frames.unwrap_or_default().iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            buf.extend_from_slice(b"{\"fn\":");
            serde_json::to_writer(&mut *buf, &f.function).map_err(io::Error::from)?;
            buf.extend_from_slice(key!("file").as_bytes());
            serde_json::to_writer(&mut *buf, &f.file).map_err(io::Error::from)?;
            buf.extend_from_slice(key!("line").as_bytes());
            push_u64(buf, u64::from(f.line));
            if f.inlined {
                buf.extend_from_slice(b",\"inlined\":true");
            }
            buf.push(b'}');
        }
        buf.push(b']');
        if frames.is_none() {
            buf.extend_from_slice(b",\"missing\":true");
        }
        buf.extend_from_slice(b"}\n");
        Ok(())
    }

    pub fn write(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let kind = EventKind::from_u32(e.kind);
        let name = kind.map_or("unknown", |k| k.name());
        let start = self.buf.len();
        let r = Self::line(&mut self.buf, e, kind, name, sym);
        if r.is_err() {
            // No half line in the output.
            self.buf.truncate(start);
            return r;
        }
        if let Some(id) = self.next_stack.take() {
            // In place of the line's closing "}\n".
            self.buf.truncate(self.buf.len() - 2);
            self.buf.extend_from_slice(key!("stack").as_bytes());
            push_u64(&mut self.buf, u64::from(id));
            self.buf.extend_from_slice(b"}\n");
        }
        if self.buf.len() >= CHUNK {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Hands the buffer to the output; emptied even on failure (never written twice).
    fn write_buffered(&mut self) -> io::Result<()> {
        let r = if self.buf.is_empty() {
            Ok(())
        } else {
            self.out.write_all(&self.buf)
        };
        self.buf.clear();
        r
    }

    // Long (~90 lines) on purpose: one arm per event kind on the per-event path, so every
    // kind's fields read side by side and the hot path stays one call.
    fn line(
        buf: &mut Vec<u8>,
        e: &Event,
        kind: Option<EventKind>,
        name: &str,
        sym: &dyn Symbolize,
    ) -> io::Result<()> {
        buf.extend_from_slice(b"{\"ts\":");
        push_u64(buf, e.ts);
        let mut l = Line { buf, sym };
        l.name(key!("kind"), name);
        l.u(key!("tid"), u64::from(e.tid));
        l.u(key!("pid"), u64::from(e.pid));
        l.u(key!("goid"), e.goid);
        l.i(key!("m"), e.m);
        l.i(key!("p"), i64::from(e.p));
        match kind {
            Some(EventKind::NewProc) => {
                l.u(key!("fn_pc"), e.arg0);
                l.func(key!("fn"), e.arg0)?;
            }
            Some(EventKind::GoCreate) => {
                l.u(key!("parent_goid"), e.arg0);
                l.u(key!("start_pc"), e.arg1);
                l.start_func(key!("start_fn"), e.arg1)?;
                l.u(key!("create_pc"), e.arg2);
                l.func(key!("create_fn"), e.arg2)?;
            }
            Some(EventKind::MStart) => l.u(key!("procid"), e.arg0),
            // Derived from casgstatus (see source::Derive); a derived execute's inheritTime is
            // not known.
            Some(EventKind::Execute | EventKind::GoExit) if e.arg1 == crate::source::DERIVED => {
                l.b(key!("derived"), true)
            }
            Some(EventKind::Execute) => l.b(key!("inherit_time"), e.arg0 != 0),
            Some(EventKind::GoStatus) => {
                l.name(key!("from"), GoState::from_runtime(e.arg0).name());
                l.name(key!("to"), GoState::from_runtime(e.arg1).name());
                l.u(key!("from_raw"), e.arg0);
                l.u(key!("to_raw"), e.arg1);
                l.u(key!("waitreason"), e.arg2 & 0xff);
                l.u(key!("by_goid"), e.arg2 >> 8);
            }
            Some(EventKind::AcquireP) => {
                l.i(key!("acquired_p"), e.arg0 as i64);
                l.b(key!("spinning"), e.arg1 & 1 != 0);
            }
            Some(EventKind::Steal) => {
                l.i(key!("thief_p"), i64::from(e.p));
                l.i(key!("victim_p"), e.arg0 as i64);
                l.u(key!("goroutines"), e.arg1);
                l.b(key!("runnext"), e.arg2 & 1 != 0);
            }
            Some(EventKind::StealFailed) => {
                l.u(key!("failed"), e.arg0);
                l.u(key!("failed_total"), e.arg1);
            }
            Some(EventKind::Lost) => {
                l.u(key!("lost"), e.arg0);
                l.u(key!("lost_total"), e.arg1);
            }
            Some(EventKind::NewM) => {
                l.i(key!("new_m"), e.arg0 as i64);
                l.i(key!("new_m_p"), e.arg1 as i64);
                l.func(key!("fn"), e.arg2)?;
            }
            Some(EventKind::ProcResize) => l.u(key!("nprocs"), e.arg0),
            Some(EventKind::StwStart) => l.u(key!("reason"), e.arg0),
            Some(EventKind::GcStart) => l.u(key!("trigger"), e.arg0),
            Some(EventKind::SyscallEnter) => l.b(key!("blocking"), e.arg0 != 0),
            Some(EventKind::Phase) => {
                l.name(key!("phase"), phase_name(e.arg0));
                l.u(key!("detail"), e.arg1);
                if e.arg0 == gmp_trace_common::phase::INIT_TASK {
                    l.func(key!("init_fn"), e.arg2)?;
                }
            }
            Some(EventKind::LoadBias) => l.u(key!("bias"), e.arg0),
            Some(EventKind::MIdle)
            | Some(EventKind::SpinStart)
            | Some(EventKind::SpinEnd)
            | Some(EventKind::StwDone)
            | Some(EventKind::GcDone)
            | Some(EventKind::SyscallExit)
            | Some(EventKind::SyscallLostP)
            | Some(EventKind::Schedule)
            | Some(EventKind::GoExit)
            | Some(EventKind::ReleaseP)
            | Some(EventKind::RuntimeMain)
            | Some(EventKind::ExecPath)
            | Some(EventKind::Stack)
            | Some(EventKind::StackPcs) => {}
            None => l.u(key!("raw_kind"), u64::from(e.kind)),
        }
        l.buf.extend_from_slice(b"}\n");
        Ok(())
    }

    /// Writes out the buffered lines and flushes the output.
    /// The traced program exec'd a new image: `{"ts", "kind": "exec", "tid", "pid", "goid": 0,
    /// "m": -1, "p": -1, "path": new executable or null}`, the stream's last event.
    pub fn exec(&mut self, r: &crate::source::exec::Replacement) -> io::Result<()> {
        let buf = &mut self.buf;
        buf.extend_from_slice(b"{\"ts\":");
        push_u64(buf, r.ts);
        let mut l = Line {
            buf,
            sym: &crate::binary::NoSymbols,
        };
        l.name(key!("kind"), "exec");
        l.u(key!("tid"), u64::from(r.tid));
        l.u(key!("pid"), u64::from(r.pid));
        l.u(key!("goid"), 0);
        l.i(key!("m"), -1);
        l.i(key!("p"), -1);
        l.buf.extend_from_slice(key!("path").as_bytes());
        serde_json::to_writer(&mut *l.buf, &r.path).map_err(io::Error::from)?;
        l.buf.extend_from_slice(b"}\n");
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        self.out.flush()
    }
}

/// Like a `BufWriter`, lines still buffered go out when the writer is dropped without a last
/// `flush` (a session ending in an error keeps what it had written).
impl<W: Write> Drop for JsonlWriter<W> {
    fn drop(&mut self) {
        let _ = self.write_buffered();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binary::NoSymbols;

    struct OneSym;
    impl Symbolize for OneSym {
        fn func_name(&self, pc: u64) -> Option<&str> {
            (pc == 0x10).then_some("main.worker")
        }
    }

    #[test]
    fn go_create_line_parses_and_has_parent() {
        let mut buf = Vec::new();
        let mut w = JsonlWriter::new(&mut buf);
        let e = Event {
            ts: 5,
            kind: EventKind::GoCreate as u32,
            tid: 9,
            pid: 8,
            p: 1,
            goid: 20,
            m: 2,
            arg0: 1,
            arg1: 0x10,
            arg2: 0x99,
        };
        w.write(&e, &OneSym).unwrap();
        w.write(&Event { kind: 999, ..e }, &NoSymbols).unwrap();
        w.flush().unwrap();
        drop(w);
        let text = String::from_utf8(buf).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines[0]["kind"], "go_create");
        assert_eq!(lines[0]["goid"], 20);
        assert_eq!(lines[0]["parent_goid"], 1);
        assert_eq!(lines[0]["start_fn"], "main.worker");
        assert!(lines[0]["create_fn"].is_null());
        assert_eq!(lines[1]["kind"], "unknown");
        assert_eq!(lines[1]["raw_kind"], 999);
    }

    #[test]
    fn integers_read_as_display_prints_them() {
        let mut buf = Vec::new();
        let mut want = String::new();
        let mut u = vec![
            0,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12345,
            u64::MAX,
            u64::MAX / 10,
        ];
        u.extend((0..64).map(|b| 1u64 << b));
        u.extend((1..20).map(|d| 10u64.pow(d) - 1));
        for v in u {
            push_u64(&mut buf, v);
            want += &format!("{v} ");
            buf.push(b' ');
        }
        for v in [
            0,
            -1,
            -10,
            -99,
            -100,
            i64::MIN,
            i64::MAX,
            i64::from(i32::MIN),
        ] {
            push_i64(&mut buf, v);
            want += &format!("{v} ");
            buf.push(b' ');
        }
        assert_eq!(String::from_utf8(buf).unwrap(), want);
    }

    #[test]
    fn function_names_are_escaped() {
        struct Odd;
        impl Symbolize for Odd {
            fn func_name(&self, _pc: u64) -> Option<&str> {
                Some("a\"b\\c\n\u{1}é")
            }
        }
        let mut buf = Vec::new();
        let mut w = JsonlWriter::new(&mut buf);
        let e = Event {
            kind: EventKind::NewProc as u32,
            m: -1,
            p: -1,
            ..Event::default()
        };
        w.write(&e, &Odd).unwrap();
        drop(w);
        let line: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(line["fn"], "a\"b\\c\n\u{1}é");
        assert_eq!(
            (line["m"].as_i64(), line["p"].as_i64()),
            (Some(-1), Some(-1))
        );
    }
}
