//! Our side of the comparison: a recording replayed through the model with every goroutine
//! transition kept, in the same vocabulary as Go's side ([`Transition`]), with what the
//! matcher needs besides (our threads' m.ids, our first..last event) and what the report says
//! about the recording (events, losses, probes it lacks).
use std::collections::{HashMap, HashSet};
use std::path::Path;

use gmp_trace_common::Event;

use crate::model::{Model, Transition};
use crate::source::recording::Replay;
use crate::source::{Derive, Sink};

/// The probes whose events the compared transitions come from (`--level full`).
const NEEDED_PROBES: &[&str] = &[
    "newproc1_ret",
    "casgstatus",
    "acquirep",
    "syscall_enter",
    "syscall_exit",
];

/// What the recording says.
pub struct Ours {
    /// The traced program's Go version as the recording's header states it.
    pub go_version: String,
    /// The same, as (major, minor); (0, 0) when it cannot be read.
    pub version: (u32, u32),
    /// Every goroutine transition, in the order the model applied them.
    pub transitions: Vec<Transition>,
    /// Our threads' tids to m.id (old Go traces name threads by m.id).
    pub threads: HashMap<u32, i64>,
    /// Our first..last event.
    pub span: (u64, u64),
    pub events: u64,
    pub lost: u64,
    /// Of [`NEEDED_PROBES`], those the recording's footer does not list.
    pub probes_missing: Vec<String>,
}

struct ModelSink {
    model: Model,
    derive: Derive,
    malformed: u64,
}

impl Sink for ModelSink {
    fn event(&mut self, e: &Event) {
        if let Some(d) = self.derive.before(e) {
            self.model.apply(&d);
        }
        self.model.apply(e);
    }
    fn malformed(&mut self, _len: usize) {
        self.malformed += 1;
    }
}

/// Replays `recording` through a model that logs every transition.
pub fn replay(recording: &Path) -> anyhow::Result<Ours> {
    let rec = Replay::open(recording)?;
    let h = rec.header.clone();
    let version = crate::binary::GoVersion::parse(&h.go_version)
        .map(|v| (v.major, v.minor))
        .unwrap_or((0, 0));
    let mut model = Model::for_target(h.pid, version);
    model.log_transitions();
    let mut sink = ModelSink {
        model,
        derive: Derive::default(),
        malformed: 0,
    };
    let mut end = rec.run(&mut sink)?;
    // A comparison of a damaged recording would report the damage as disagreement.
    if let Some(e) = end.corrupt.take() {
        return Err(e.into());
    }
    let probes_missing = match &end.footer {
        None => {
            // The command's log target, as before the split (RUST_LOG filters name it).
            log::warn!(
                target: "gmp_trace::compare",
                "{} was cut short: compared every whole event",
                recording.display()
            );
            Vec::new()
        }
        Some(f) => {
            let attached: HashSet<&str> = f.probes.iter().map(|p| p.program.as_str()).collect();
            NEEDED_PROBES
                .iter()
                .filter(|p| !attached.contains(*p))
                .map(|p| p.to_string())
                .collect()
        }
    };
    let mut model = sink.model;
    Ok(Ours {
        go_version: h.go_version,
        version,
        threads: model
            .threads
            .values()
            .filter_map(|t| Some((t.tid, t.m?)))
            .collect(),
        transitions: model.transition_log.take().unwrap_or_default(),
        span: (model.first_ts.unwrap_or(0), model.last_ts.unwrap_or(0)),
        events: model.events,
        lost: model.lost,
        probes_missing,
    })
}
