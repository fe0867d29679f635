//! The probe registry and loader: which runtime function each BPF program watches, where in
//! that function the uprobe goes, and the code that loads the object and attaches it to one
//! process.
//!
//! The probes are placed after each function's stack-check prologue (one trap, ~1 us) rather than
//! on its first instruction (single-stepped, ~10x the cost); `binary::placement` finds the spot.
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeScope};
use aya::programs::UProbe;
use aya::{Ebpf, EbpfLoader};
use gmp_trace_common::{counter, Offsets};

use crate::binary::{GoBinary, ProbeSite};
use crate::export::summary::ProbeInfo;

/// Where in the function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Once per call, after the stack-check prologue (arguments still in their registers).
    Body,
    /// On every RET instruction (return values in RAX); never a uretprobe, which crashes Go.
    Returns,
}

pub struct ProbeSpec {
    /// The BPF program (function name in gmp-trace-ebpf).
    pub program: &'static str,
    /// The Go runtime function it is attached to.
    pub function: &'static str,
    pub placement: Placement,
}

/// Every probe gmp-trace attaches. All are required: the scheduler picture is wrong without any
/// one of them.
pub const PROBES: &[ProbeSpec] = &[
    ProbeSpec {
        program: "newproc",
        function: "runtime.newproc",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "newproc1_ret",
        function: "runtime.newproc1",
        placement: Placement::Returns,
    },
    // runtime.mstart is assembly (ABI0, R14 not yet g); it calls mstart0, which calls mstart1:
    // the first point on a new M where R14 is its g0 and m is fully set up.
    ProbeSpec {
        program: "mstart",
        function: "runtime.mstart1",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "schedule",
        function: "runtime.schedule",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "execute",
        function: "runtime.execute",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "goexit1",
        function: "runtime.goexit1",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "casgstatus",
        function: "runtime.casgstatus",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "acquirep",
        function: "runtime.acquirep",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "releasep",
        function: "runtime.releasep",
        placement: Placement::Body,
    },
    ProbeSpec {
        program: "runtime_main",
        function: "runtime.main",
        placement: Placement::Body,
    },
];

/// The BPF object built from gmp-trace-ebpf by build.rs.
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gmp-trace"));

/// One uprobe to attach: a program at a file offset.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub program: &'static str,
    pub site: ProbeSite,
}

/// Resolves every probe in [`PROBES`] to file offsets in `bin`. Errors name the function.
pub fn plan(bin: &GoBinary, entry_placement: bool) -> anyhow::Result<Vec<Attachment>> {
    let mut out = Vec::new();
    for spec in PROBES {
        let sites = match spec.placement {
            Placement::Body if entry_placement => vec![bin.entry_site(spec.function)?],
            Placement::Body => vec![bin.probe_site(spec.function)?],
            Placement::Returns => bin.ret_sites(spec.function)?,
        };
        if sites.is_empty() {
            bail!(
                "found no RET instruction in {}: cannot observe its result",
                spec.function
            );
        }
        out.extend(sites.into_iter().map(|site| Attachment {
            program: spec.program,
            site,
        }));
    }
    Ok(out)
}

pub struct Tracer {
    ebpf: Ebpf,
    pub probes: Vec<ProbeInfo>,
}

impl Tracer {
    /// Loads the BPF object with the target's struct offsets and a ring buffer of `buffer_size`.
    pub fn load(offsets: &Offsets, buffer_size: u32) -> anyhow::Result<Tracer> {
        let size = buffer_size
            .max(4096)
            .checked_next_power_of_two()
            .unwrap_or(1 << 31);
        let ebpf = EbpfLoader::new()
            .override_global("OFFSETS", offsets, true)
            .map_max_entries("EVENTS", size)
            .load(BPF_OBJECT)
            .map_err(|e| anyhow!("loading the BPF probes into the kernel failed: {e}"))?;
        Ok(Tracer {
            ebpf,
            probes: Vec::new(),
        })
    }

    /// Attaches every planned probe to `target` (the executable's path) for process `pid` only.
    /// Each program is loaded once and attached at each of its sites.
    pub fn attach(&mut self, plan: &[Attachment], target: &Path, pid: u32) -> anyhow::Result<()> {
        let scope = UProbeScope::OneProcess(
            NonZeroU32::new(pid).ok_or_else(|| anyhow!("cannot attach to pid 0"))?,
        );
        for a in plan {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(a.program)
                .ok_or_else(|| anyhow!("BPF program {} missing from the object", a.program))?
                .try_into()
                .with_context(|| format!("BPF program {} is not a uprobe", a.program))?;
            if prog.fd().is_err() {
                prog.load()
                    .with_context(|| format!("the kernel rejected BPF program {}", a.program))?;
            }
            prog.attach(
                UProbeAttachLocation::AbsoluteOffset(a.site.file_offset),
                target,
                scope,
            )
            .with_context(|| {
                format!(
                    "attaching {} at {}+{:#x} (file offset {:#x}) of {}",
                    a.program,
                    a.site.func,
                    a.site.vaddr,
                    a.site.file_offset,
                    target.display()
                )
            })?;
            self.probes.push(ProbeInfo {
                program: a.program.to_string(),
                function: a.site.func.clone(),
                vaddr: a.site.vaddr,
                insn: a.site.insn.clone(),
                one_trap: a.site.one_trap,
            });
        }
        Ok(())
    }

    pub fn take_ring(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("EVENTS map missing"))?;
        Ok(RingBuf::try_from(map)?)
    }

    /// Sums the per-CPU failure counters: (events dropped for a full ring, failed user reads).
    pub fn counters(&self) -> anyhow::Result<(u64, u64)> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("COUNTERS map missing"))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let sum = |i: u32| -> anyhow::Result<u64> { Ok(arr.get(&i, 0)?.iter().sum()) };
        Ok((sum(counter::RINGBUF_FULL)?, sum(counter::READ_FAILED)?))
    }
}
