//! The plan: the registry's probes that apply to one binary, resolved to file offsets.
use anyhow::anyhow;
use gmp_trace_common::Offsets;

use super::registry::{level_of, Level, Placement, ProbeSpec, PROBES};
use crate::binary::{GoBinary, ProbeSite};
use Placement::{Body, Entry, Returned, Returns};

/// One uprobe to attach: a program at a file offset, with its cookie.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub program: &'static str,
    pub cookie: u64,
    pub site: ProbeSite,
}

/// Resolves the probes that apply to this binary's Go version to file offsets. A required
/// probe that cannot be placed is an error naming the function; an optional one is skipped
/// with a warning.
pub fn plan(
    bin: &GoBinary,
    level: Level,
    entry_placement: bool,
) -> anyhow::Result<Vec<Attachment>> {
    let v = bin.go_version();
    let ver = (v.major, v.minor);
    let mut out = Vec::new();
    let wanted = |s: &&ProbeSpec| s.since <= ver && ver < s.until && level_of(s.program) <= level;
    for spec in PROBES.iter().filter(wanted) {
        let with_cookie =
            |sites: Vec<ProbeSite>| sites.into_iter().map(|s| (s, spec.cookie)).collect();
        let sites: std::result::Result<Vec<(ProbeSite, u64)>, _> = match spec.placement {
            Body if entry_placement => bin
                .entry_site(spec.function)
                .map(|s| vec![(s, spec.cookie)]),
            Body => bin
                .probe_site(spec.function)
                .map(|s| vec![(s, spec.cookie)]),
            Entry => bin
                .entry_site(spec.function)
                .map(|s| vec![(s, spec.cookie)]),
            Returns => bin.ret_sites(spec.function).map(with_cookie),
            // The floor and entry measurements compare like with like: RETs for both.
            Returned if entry_placement => bin.ret_sites(spec.function).map(with_cookie),
            Returned => bin
                .return_sites(spec.function)
                .map(|r| r.into_iter().map(|r| (r.site, r.result.cookie())).collect()),
        };
        let sites = match sites {
            Ok(s) if s.is_empty() => Err(anyhow!("found no RET instruction in {}", spec.function)),
            Ok(s) => Ok(s),
            Err(e) => Err(anyhow!(e)),
        };
        match sites {
            Ok(sites) => out.extend(sites.into_iter().map(|(site, cookie)| Attachment {
                program: spec.program,
                cookie: match spec.program {
                    "preempt_park" => super::registry::wait_reason_preempted(ver),
                    _ => cookie,
                },
                site,
            })),
            Err(e) if spec.required => {
                return Err(e.context(format!("placing the {} probe", spec.program)))
            }
            Err(e) => log::warn!("skipping optional probe on {}: {e:#}", spec.function),
        }
    }
    Ok(out)
}

/// Leaves out the probes whose events the daemon derives from others in the plan (see
/// `source::Derive`): `goexit1` where `casgstatus` is attached, whose change from running to
/// dead stands for it. Not for aggregate mode, whose counters come from the probes themselves.
pub fn without_derived(plan: &mut Vec<Attachment>) {
    if plan.iter().any(|a| a.program == "casgstatus") {
        plan.retain(|a| a.program != "goexit1");
    }
}

/// The struct offsets the probes read runtime and kernel memory with, for this binary on this
/// kernel (the target's pid is filled in once it exists).
pub fn offsets(bin: &GoBinary) -> anyhow::Result<Offsets> {
    let mut offsets = bin.offsets()?;
    offsets.plan_blocks();
    // The sampler's fields (the probes do not read them): without them its samples simply
    // carry no stack bounds or g0 mark.
    match bin.runtime_layout() {
        Ok(l) => offsets.m_g0 = l.m_g0,
        Err(e) => log::warn!("no m.g0 offset for the CPU sampler: {e}"),
    }
    match bin.stack_layout() {
        Ok(l) => {
            offsets.g_stack = l.g_stack_lo;
            offsets.g_sched_sp = l.g_sched_sp;
            offsets.g_sched_pc = l.g_sched_pc;
            offsets.g_sched_bp = l.g_sched_bp;
        }
        Err(e) => log::warn!("no g.stack/g.sched offsets for the CPU sampler: {e}"),
    }
    // g in assembly entry points (mstart, exit) comes from the thread's TLS slot: the slot's
    // place is in the binary, the fs base's in the kernel. Without either, those events simply
    // carry no G/M.
    match super::kernel::kernel_offsets() {
        Ok(k) => {
            offsets.task_mm = k.task_mm;
            offsets.mm_start_code = k.mm_start_code;
            offsets.binprm_filename = k.binprm_filename;
            match bin.tls_g_offset() {
                Ok(slot) => {
                    offsets.tls_g = slot;
                    offsets.task_fsbase = k.task_fsbase;
                }
                Err(e) => log::warn!("no TLS g for assembly entry points: {e}"),
            }
        }
        Err(e) => log::warn!("no TLS g for assembly entry points: {e:#}"),
    }
    Ok(offsets)
}
