//! The end-of-run summary: a JSON document with stable keys (`--summary-json`) and the human text
//! printed on stderr.
use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::Symbolize;
use crate::model::Model;

/// Where each probe went, for the record (and for spotting two-trap placements).
#[derive(Clone, Debug, Serialize)]
pub struct ProbeInfo {
    pub program: String,
    pub function: String,
    pub vaddr: u64,
    pub insn: String,
    pub one_trap: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct RuntimeMainInfo {
    pub goid: u64,
    pub tid: u32,
    pub m: i64,
    pub ts: u64,
}

/// Stable keys: scripts and CI smoke tests read these. Add keys, never rename or remove.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub go_version: String,
    pub binary: String,
    pub main_module: Option<String>,
    pub mode: &'static str,
    pub pid: u32,
    pub events: u64,
    pub lost_events: u64,
    pub goroutines_created: u64,
    pub goroutines_exited: u64,
    pub goroutines_live_at_end: usize,
    pub threads: usize,
    pub procs: usize,
    pub duration_ns: u64,
    pub exit_code: Option<i32>,
    /// Probe reads of runtime memory that failed (fields of those events are missing).
    pub read_failures: u64,
    /// Ring-buffer records too short to decode.
    pub malformed_records: u64,
    pub events_by_kind: BTreeMap<String, u64>,
    pub runtime_main: Vec<RuntimeMainInfo>,
    pub goroutines_by_start_fn: BTreeMap<String, u64>,
    pub mstart_threads: usize,
    pub probes: Vec<ProbeInfo>,
}

pub struct RunInfo {
    pub go_version: String,
    pub binary: String,
    pub main_module: Option<String>,
    pub mode: &'static str,
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub read_failures: u64,
    pub malformed_records: u64,
    pub probes: Vec<ProbeInfo>,
}

impl Summary {
    pub fn build(model: &Model, run: RunInfo, sym: &dyn Symbolize) -> Summary {
        let mut by_fn = BTreeMap::new();
        for g in model.goroutines.values().filter(|g| g.created_ts.is_some()) {
            let name = sym
                .func_name(g.start_pc)
                .map(str::to_owned)
                .unwrap_or_else(|| format!("{:#x}", g.start_pc));
            *by_fn.entry(name).or_insert(0u64) += 1;
        }
        Summary {
            go_version: run.go_version,
            binary: run.binary,
            main_module: run.main_module,
            mode: run.mode,
            pid: run.pid,
            events: model.events,
            lost_events: model.lost,
            goroutines_created: model.created,
            goroutines_exited: model.exited,
            goroutines_live_at_end: model.live_goroutines(),
            threads: model.threads.len(),
            procs: model.procs.len(),
            duration_ns: model.duration_ns(),
            exit_code: run.exit_code,
            read_failures: run.read_failures,
            malformed_records: run.malformed_records,
            events_by_kind: model
                .by_kind
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            runtime_main: model
                .runtime_main
                .iter()
                .map(|r| RuntimeMainInfo {
                    goid: r.goid,
                    tid: r.tid,
                    m: r.m,
                    ts: r.ts,
                })
                .collect(),
            goroutines_by_start_fn: by_fn,
            mstart_threads: model
                .threads
                .values()
                .filter(|t| t.mstart_ts.is_some())
                .count(),
            probes: run.probes,
        }
    }

    /// The human summary (stderr).
    pub fn text(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "── gmp-trace summary ─────────────────────────────────────────"
        );
        let _ = writeln!(
            s,
            "  target     {} (pid {}, {}, {})",
            self.binary,
            self.pid,
            self.go_version,
            self.main_module.as_deref().unwrap_or("unknown module")
        );
        let _ = writeln!(
            s,
            "  traced     {:.3} ms, {} events, {} lost{}",
            self.duration_ns as f64 / 1e6,
            self.events,
            self.lost_events,
            if self.lost_events > 0 {
                "  (!) increase --buffer-size"
            } else {
                ""
            }
        );
        let _ = writeln!(
            s,
            "  goroutines {} created, {} exited, {} live at end",
            self.goroutines_created, self.goroutines_exited, self.goroutines_live_at_end
        );
        let _ = writeln!(
            s,
            "  threads    {} Ms seen ({} seen starting), {} Ps",
            self.threads, self.mstart_threads, self.procs
        );
        for r in &self.runtime_main {
            let _ = writeln!(s, "  runtime.main on g{} (M{} tid {})", r.goid, r.m, r.tid);
        }
        if !self.goroutines_by_start_fn.is_empty() {
            let _ = writeln!(s, "  created by start function:");
            let mut v: Vec<_> = self.goroutines_by_start_fn.iter().collect();
            v.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            for (name, n) in v.iter().take(10) {
                let _ = writeln!(s, "    {n:>8}  {name}");
            }
            if v.len() > 10 {
                let _ = writeln!(s, "    ... {} more", v.len() - 10);
            }
        }
        let _ = writeln!(s, "  events by kind:");
        for (k, v) in &self.events_by_kind {
            let _ = writeln!(s, "    {v:>8}  {k}");
        }
        let two_trap: Vec<_> = self.probes.iter().filter(|p| !p.one_trap).collect();
        if !two_trap.is_empty() {
            let names: Vec<_> = two_trap.iter().map(|p| p.function.as_str()).collect();
            let _ = writeln!(
                s,
                "  note: single-stepped probe sites (slower): {}",
                names.join(", ")
            );
        }
        if let Some(c) = self.exit_code {
            let _ = writeln!(s, "  exit code  {c}");
        }
        s
    }
}
