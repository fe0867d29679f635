//! What this kernel's BPF can do for gmp-trace, asked of the kernel itself (each a small
//! BPF_PROG_LOAD, BPF_MAP_CREATE or BPF_LINK_CREATE): for `gmp-trace --version` and
//! `gmp-trace doctor`, so a bug report says which paths the tracer takes on the reporter's
//! machine. The trace command does not use this module (it detects links in `loader`).
use std::time::Instant;

use aya::maps::MapType;
use aya::programs::{ProgramType, UProbe};
use aya::sys::{
    is_map_supported, is_perf_link_supported, is_program_supported, is_uprobe_multi_supported,
    UProbeMultiFeature,
};
use gmp_trace_common::Offsets;

use super::loader::{Links, Tracer};

/// A feature's answer: supported or not, or why the kernel would not say (usually EPERM:
/// no CAP_BPF).
pub type Answer = Result<bool, String>;

/// The BPF features the tracer's choices depend on.
#[derive(Debug)]
pub struct Features {
    /// A trivial kprobe-type program (what uprobes are) passes BPF_PROG_LOAD.
    pub uprobe_program: Answer,
    /// BPF_MAP_TYPE_RINGBUF (5.8+): the only event channel the probes have.
    pub ring_buffer: Answer,
    /// uprobe_multi links with a process-wide pid filter (6.6+ and the fix): `--uprobe-links
    /// multi`, the default where present.
    pub uprobe_multi: Answer,
    /// BPF links for perf events (5.15+): how the perf-event uprobes are held.
    pub perf_link: Answer,
}

/// An error with its sources (aya's say "`bpf_map_create` failed" and keep the errno below).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(&format!(": {inner}"));
        source = inner.source();
    }
    s
}

impl Features {
    /// Asks the kernel (a few ms; each probe loads and frees a tiny object).
    pub fn detect() -> Features {
        Features {
            uprobe_program: is_program_supported(ProgramType::KProbe).map_err(|e| chain(&e)),
            ring_buffer: is_map_supported(MapType::RingBuf).map_err(|e| chain(&e)),
            uprobe_multi: is_uprobe_multi_supported(UProbeMultiFeature::ProcessScopedPidFilter)
                .map_err(|e| chain(&e)),
            perf_link: is_perf_link_supported().map_err(|e| chain(&e)),
        }
    }

    /// How uprobes would be linked here without `--uprobe-links`, as `Links::detect` decides
    /// (None when the kernel would not say).
    pub fn default_links(&self) -> Option<Links> {
        match self.uprobe_multi {
            Ok(true) => Some(Links::Multi),
            Ok(false) => Some(Links::PerfEvent),
            Err(_) => None,
        }
    }
}

/// Loads the embedded BPF object (its maps created) with placeholder offsets and puts every
/// perf-event uprobe program (the variant any kernel with uprobes can take) through this
/// kernel's verifier, attaching nothing: (programs loaded, ms taken).
pub fn load_embedded_object() -> Result<(usize, f64), String> {
    let started = Instant::now();
    let mut tracer = Tracer::load(&Offsets::default(), 4096, false, Links::PerfEvent, 0)
        .map_err(|e| format!("{e:#}"))?;
    let mut loaded = 0;
    for (name, prog) in tracer.ebpf.programs_mut() {
        if !name.ends_with("_pe") {
            continue;
        }
        if let Ok(p) = <&mut UProbe>::try_from(prog) {
            p.load()
                .map_err(|e| format!("the kernel rejected BPF program {name}: {e}"))?;
            loaded += 1;
        }
    }
    Ok((loaded, started.elapsed().as_secs_f64() * 1e3))
}

/// One answer as a word for humans: "yes", "no", or "unknown (why)".
pub fn say(a: &Answer) -> String {
    match a {
        Ok(true) => "yes".into(),
        Ok(false) => "no".into(),
        Err(e) => format!("unknown ({e})"),
    }
}
