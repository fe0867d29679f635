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

pub struct JsonlWriter<W: Write> {
    out: W,
}

/// A JSON string literal for a function name (names are plain ASCII in practice, but a name
/// from a corrupt symbol table must not break the line).
fn json_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl<W: Write> JsonlWriter<W> {
    pub fn new(out: W) -> JsonlWriter<W> {
        JsonlWriter { out }
    }

    fn func(&self, sym: &dyn Symbolize, pc: u64) -> String {
        match sym.func_name(pc) {
            Some(n) => json_str(n),
            None => "null".to_string(),
        }
    }

    pub fn write(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        let kind = EventKind::from_u32(e.kind);
        let name = kind.map_or("unknown", |k| k.name());
        let mut line = format!(
            "{{\"ts\":{},\"kind\":\"{}\",\"tid\":{},\"pid\":{},\"goid\":{},\"m\":{},\"p\":{}",
            e.ts, name, e.tid, e.pid, e.goid, e.m, e.p
        );
        match kind {
            Some(EventKind::NewProc) => {
                line += &format!(",\"fn_pc\":{},\"fn\":{}", e.arg0, self.func(sym, e.arg0));
            }
            Some(EventKind::GoCreate) => {
                line += &format!(
                    ",\"parent_goid\":{},\"start_pc\":{},\"start_fn\":{},\"create_pc\":{},\"create_fn\":{}",
                    e.arg0,
                    e.arg1,
                    self.func(sym, e.arg1),
                    e.arg2,
                    self.func(sym, e.arg2)
                );
            }
            Some(EventKind::MStart) => line += &format!(",\"procid\":{}", e.arg0),
            Some(EventKind::Execute) => line += &format!(",\"inherit_time\":{}", e.arg0 != 0),
            Some(EventKind::GoStatus) => {
                line += &format!(
                    ",\"from\":\"{}\",\"to\":\"{}\",\"from_raw\":{},\"to_raw\":{},\"waitreason\":{}",
                    GoState::from_runtime(e.arg0).name(),
                    GoState::from_runtime(e.arg1).name(),
                    e.arg0,
                    e.arg1,
                    e.arg2 & 0xff
                );
                line += &format!(",\"by_goid\":{}", e.arg2 >> 8);
            }
            Some(EventKind::AcquireP) => {
                line += &format!(
                    ",\"acquired_p\":{},\"spinning\":{}",
                    e.arg0 as i64,
                    e.arg1 & 1 != 0
                )
            }
            Some(EventKind::Steal) => {
                line += &format!(
                    ",\"thief_p\":{},\"victim_p\":{},\"goroutines\":{},\"runnext\":{}",
                    e.p,
                    e.arg0 as i64,
                    e.arg1,
                    e.arg2 & 1 != 0
                )
            }
            Some(EventKind::StealFailed) => {
                line += &format!(",\"failed\":{},\"failed_total\":{}", e.arg0, e.arg1)
            }
            Some(EventKind::Lost) => {
                line += &format!(",\"lost\":{},\"lost_total\":{}", e.arg0, e.arg1)
            }
            Some(EventKind::NewM) => {
                line += &format!(
                    ",\"new_m\":{},\"new_m_p\":{},\"fn\":{}",
                    e.arg0 as i64,
                    e.arg1 as i64,
                    self.func(sym, e.arg2)
                );
            }
            Some(EventKind::ProcResize) => line += &format!(",\"nprocs\":{}", e.arg0),
            Some(EventKind::StwStart) => line += &format!(",\"reason\":{}", e.arg0),
            Some(EventKind::GcStart) => line += &format!(",\"trigger\":{}", e.arg0),
            Some(EventKind::SyscallEnter) => line += &format!(",\"blocking\":{}", e.arg0 != 0),
            Some(EventKind::Phase) => {
                line += &format!(
                    ",\"phase\":\"{}\",\"detail\":{}",
                    phase_name(e.arg0),
                    e.arg1
                );
                if e.arg0 == gmp_trace_common::phase::INIT_TASK {
                    line += &format!(",\"init_fn\":{}", self.func(sym, e.arg2));
                }
            }
            Some(EventKind::LoadBias) => line += &format!(",\"bias\":{}", e.arg0),
            Some(EventKind::MIdle)
            | Some(EventKind::SpinStart)
            | Some(EventKind::SpinEnd)
            | Some(EventKind::StwDone)
            | Some(EventKind::GcDone)
            | Some(EventKind::SyscallExit)
            | Some(EventKind::Schedule)
            | Some(EventKind::GoExit)
            | Some(EventKind::ReleaseP)
            | Some(EventKind::RuntimeMain) => {}
            None => line += &format!(",\"raw_kind\":{}", e.kind),
        }
        line += "}\n";
        self.out.write_all(line.as_bytes())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::NoSymbols;

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
}
