//! What one run was: where the probes went, what the kernel side counted, how the target ended.
//! The probes fill these in, recordings keep them, replay reads them back and the summary reports
//! them; they live apart from all four so each can import them without importing the others.
use serde::{Deserialize, Serialize};

use crate::model::hist::Histogram;

/// Where each probe went, for the record (and for spotting two-trap placements).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ProbeInfo {
    pub program: String,
    pub function: String,
    pub vaddr: u64,
    pub insn: String,
    pub one_trap: bool,
    /// How the program is linked to this site: `uprobe_multi` (one link per program) or
    /// `perf_event` (one per site). Empty in recordings made before it was kept.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link: String,
}

/// Aggregate mode's counters, summed over CPUs (see `gmp_trace_common::agg` for the layout).
#[derive(Clone, Debug)]
pub struct Aggregates {
    /// Events by kind number.
    pub kinds: Vec<u64>,
    /// casgstatus changes, indexed `old << 4 | new`.
    pub status: Vec<u64>,
    /// Changes to _Gwaiting by wait reason.
    pub wait: Vec<u64>,
    /// Runnable -> Running latency (creation or casgstatus to runnable, until execute).
    pub latency: Histogram,
}

/// The run's facts the summary reports besides the model.
pub struct RunInfo {
    pub go_version: String,
    pub binary: String,
    pub main_module: Option<String>,
    pub build_id: Option<String>,
    pub mode: &'static str,
    pub pid: u32,
    pub exit_code: Option<i32>,
    pub read_failures: u64,
    pub malformed_records: u64,
    pub probes: Vec<ProbeInfo>,
    /// Live sessions only: from start to every probe attached, and the ring buffer's size.
    pub attach_ms: Option<f64>,
    pub ring_buffer_bytes: Option<u64>,
    pub aggregate: Option<Aggregates>,
    /// `--sample-rate`: the CPU sampler's counts (live sessions only).
    pub cpu_samples: Option<CpuSampleCounts>,
}

/// What the CPU sampler (`--sample-rate`) took and where it went.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct CpuSampleCounts {
    pub rate_hz: u64,
    /// Samples of the target the sampler recorded.
    pub taken: u64,
    /// Samples lost to a full sampler ring.
    pub dropped: u64,
    /// Records too short to be samples.
    pub malformed: u64,
    /// Samples beyond what gmp-trace keeps in memory, or taken before the binary could be read.
    pub not_kept: u64,
    /// Samples whose stack walk stopped early (kept up to there).
    pub unwind_failed: u64,
    /// Samples written to the Go trace (those from before its first event are not).
    pub written: u64,
}
