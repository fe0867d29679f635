//! The loader: loads the BPF object with the target's offsets, attaches the planned uprobes to
//! one process and detaches them; the kernel links are owned here.
use std::num::NonZeroU32;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use aya::maps::{MapData, RingBuf};
use aya::programs::links::FdLink;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{RawTracePoint, UProbe};
use aya::Ebpf;
use gmp_trace_bpf_object::BPF_OBJECT;
use gmp_trace_common::Offsets;

use super::plan::Attachment;
use crate::run::ProbeInfo;

/// How each program is linked to its sites.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Links {
    /// One `uprobe_multi` link per program for all of its sites, each with its cookie (kernel
    /// 6.6+ with the process-wide pid filter). Detaching one is one RCU grace period.
    #[value(name = "multi")]
    Multi,
    /// One perf-event uprobe per site (any kernel with uprobes; the kernel removes them one
    /// after another, a grace period each).
    #[value(name = "perf-event")]
    PerfEvent,
}

impl Links {
    /// What this kernel supports: multi links where a pid filter covers the whole process
    /// (the first kernels with uprobe_multi filtered on one thread only).
    pub fn detect() -> Links {
        use aya::sys::{is_uprobe_multi_supported, UProbeMultiFeature};
        match is_uprobe_multi_supported(UProbeMultiFeature::ProcessScopedPidFilter) {
            Ok(true) => Links::Multi,
            Ok(false) => {
                log::info!("this kernel has no process-wide uprobe_multi links: one perf-event link per probe site");
                Links::PerfEvent
            }
            Err(e) => {
                log::warn!("probing for uprobe_multi links failed ({e}): one perf-event link per probe site");
                Links::PerfEvent
            }
        }
    }

    /// The name used in the summary and logs.
    pub fn name(self) -> &'static str {
        match self {
            Links::Multi => "uprobe_multi",
            Links::PerfEvent => "perf_event",
        }
    }

    /// The object's program for `probe` (gmp-trace-ebpf builds each body both ways).
    fn program_name(self, probe: &str) -> String {
        match self {
            Links::Multi => probe.to_string(),
            Links::PerfEvent => format!("{probe}_pe"),
        }
    }
}

pub struct Tracer {
    pub(super) ebpf: Ebpf,
    links_kind: Links,
    /// Owned here (not by the programs) so they can be detached in parallel, see `detach`.
    links: Vec<FdLink>,
    pub probes: Vec<ProbeInfo>,
}

impl Tracer {
    /// Loads the BPF object with the target's struct offsets and a ring buffer of `ring_bytes`
    /// (a power of two, see [`ring_bytes`]); its uprobes will be linked as `links` says.
    /// In aggregate mode the frequent events only update the probes' counter maps.
    /// `launch_execs`: execs of the target that start the traced image (1 in launch mode); the
    /// probes go quiet at the next one (see [`Tracer::attach_exec`]).
    pub fn load(
        offsets: &Offsets,
        ring_bytes: u32,
        aggregate: bool,
        links: Links,
        launch_execs: u32,
    ) -> anyhow::Result<Tracer> {
        Self::load_with_stacks(offsets, ring_bytes, aggregate, links, launch_execs, false)
    }

    /// [`Tracer::load`]; with `stacks` (`--stacks`, never with `aggregate`) the probes of
    /// blocking, unblocking, creation and system calls also send user stacks.
    pub fn load_with_stacks(
        offsets: &Offsets,
        ring_bytes: u32,
        aggregate: bool,
        links: Links,
        launch_execs: u32,
        stacks: bool,
    ) -> anyhow::Result<Tracer> {
        let size = ring_bytes;
        let stacks = stacks && !aggregate;
        // The probes use no CO-RE relocations (kernel offsets come from kernel.rs), so aya
        // does not parse the kernel's BTF (it reads it only for objects that need it).
        let ebpf = super::trimmed_loader(&["GOIDS", "STEAL_ARGS"])
            .override_global("OFFSETS", offsets, true)
            .override_global("AGGREGATE", &u32::from(aggregate), true)
            .override_global("LAUNCH_EXECS", &launch_execs, true)
            .override_global("STACKS", &u32::from(stacks), true)
            // Stack ids already sent (probes' stacks.rs): room only when stacks are on.
            .map_max_entries("SEEN_STACKS", if stacks { 1 << 16 } else { 1 })
            // An LRU map is allocated whole at creation: only aggregate mode needs room in it.
            .map_max_entries("RUNNABLE_SINCE", if aggregate { 1 << 16 } else { 1 })
            .map_max_entries("EVENTS", size)
            .load(BPF_OBJECT)
            .map_err(|e| anyhow!("loading the BPF probes into the kernel failed: {e}"))?;
        Ok(Tracer {
            ebpf,
            links_kind: links,
            links: Vec::new(),
            probes: Vec::new(),
        })
    }

    /// How the uprobes are linked.
    pub fn links_kind(&self) -> Links {
        self.links_kind
    }

    /// Attaches every planned probe to `target` (the executable's path) for process `pid` only.
    /// Each program is loaded once and attached to all of its sites in one call: one
    /// uprobe_multi link, or one perf-event link per site.
    pub fn attach(&mut self, plan: &[Attachment], target: &Path, pid: u32) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        let scope = UProbeScope::OneProcess(
            NonZeroU32::new(pid).ok_or_else(|| anyhow!("cannot attach to pid 0"))?,
        );
        let kind = self.links_kind;
        let wanted: std::collections::BTreeMap<String, &str> = plan
            .iter()
            .map(|a| (kind.program_name(a.program), a.program))
            .collect();
        let programs: Vec<(&str, &mut aya::programs::Program)> = self
            .ebpf
            .programs_mut()
            .filter_map(|(name, prog)| wanted.get(name).map(|probe| (*probe, prog)))
            .collect();
        if let Some((missing, _)) = wanted
            .iter()
            .find(|(_, probe)| !programs.iter().any(|(p, _)| p == *probe))
        {
            bail!("BPF program {missing} missing from the object");
        }
        // One thread per program: the kernel's verifier (most of the attach time) and the
        // uprobe registrations run side by side.
        let results: Vec<anyhow::Result<Vec<FdLink>>> = std::thread::scope(|s| {
            let handles: Vec<_> = programs
                .into_iter()
                .map(|(name, prog)| {
                    s.spawn(move || attach_program(name, prog, plan, target, scope))
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("attaching a BPF program panicked")))
                })
                .collect()
        });
        for r in results {
            // On an error the links made so far are dropped with `self`: detached.
            self.links.extend(r?);
        }
        let link = kind.name();
        self.probes.extend(plan.iter().map(|a| ProbeInfo {
            program: a.program.to_string(),
            function: a.site.func.clone(),
            vaddr: a.site.vaddr,
            insn: a.site.insn.clone(),
            one_trap: a.site.one_trap,
            link: link.to_string(),
        }));
        log::info!(
            "{} uprobes ({} programs, {} {} links) loaded and attached in {:?}",
            plan.len(),
            wanted.len(),
            self.links.len(),
            link,
            started.elapsed()
        );
        Ok(())
    }

    /// Removes every uprobe, each link from its own thread so that the kernel's waits overlap
    /// where they can: a uprobe_multi link waits out one RCU grace period for all its sites;
    /// perf-event uprobes are torn down one after another (the kernel's event_mutex), a grace
    /// period each (~2.5 s for the default plan here).
    pub fn detach(&mut self) {
        let links = std::mem::take(&mut self.links);
        std::thread::scope(|s| {
            for l in links {
                s.spawn(move || drop(l));
            }
        });
    }

    /// Watches the kernel's exec of the traced pid (the first startup milestone). Raw
    /// tracepoints need neither tracefs nor kprobes.
    pub fn attach_exec(&mut self) -> anyhow::Result<()> {
        let prog: &mut RawTracePoint = self
            .ebpf
            .program_mut("exec")
            .ok_or_else(|| anyhow!("BPF program exec missing from the object"))?
            .try_into()?;
        prog.load()
            .context("the kernel rejected BPF program exec")?;
        prog.attach("sched_process_exec")
            .context("attaching to sched_process_exec")?;
        Ok(())
    }

    pub fn take_ring(&mut self) -> anyhow::Result<RingBuf<MapData>> {
        let map = self
            .ebpf
            .take_map("EVENTS")
            .ok_or_else(|| anyhow!("EVENTS map missing"))?;
        Ok(RingBuf::try_from(map)?)
    }
}

/// Loads `prog` (the object's program for `probe`) and attaches it to every site the plan has
/// for that probe, in one call. The links come back as fd links, one per kernel link, so the
/// tracer can drop them from separate threads.
fn attach_program(
    probe: &str,
    prog: &mut aya::programs::Program,
    plan: &[Attachment],
    target: &Path,
    scope: UProbeScope,
) -> anyhow::Result<Vec<FdLink>> {
    let prog: &mut UProbe = prog
        .try_into()
        .with_context(|| format!("BPF program {probe} is not a uprobe"))?;
    if prog.fd().is_err() {
        prog.load()
            .with_context(|| format!("the kernel rejected BPF program {probe}"))?;
    }
    let sites: Vec<&Attachment> = plan.iter().filter(|a| a.program == probe).collect();
    let points = sites.iter().map(|a| UProbeAttachPoint {
        location: UProbeAttachLocation::AbsoluteOffset(a.site.file_offset),
        cookie: Some(a.cookie),
    });
    let id = prog.attach(points, target, scope).with_context(|| {
        let at: Vec<String> = sites
            .iter()
            .map(|a| {
                format!(
                    "{}+{:#x} (file offset {:#x})",
                    a.site.func, a.site.vaddr, a.site.file_offset
                )
            })
            .collect();
        format!(
            "attaching {probe} at {} of {}",
            at.join(", "),
            target.display()
        )
    })?;
    let link = prog.take_link(id)?;
    link.into_fd_links()
        .map_err(|_| anyhow!("the links of {probe} are not fd links"))
}

impl Drop for Tracer {
    fn drop(&mut self) {
        self.detach();
    }
}
