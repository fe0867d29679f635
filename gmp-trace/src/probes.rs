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
use aya::programs::links::FdLink;
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{RawTracePoint, UProbe};
use aya::{Ebpf, EbpfLoader};
use gmp_trace_common::{agg, counter, Offsets};

use crate::binary::{GoBinary, ProbeSite};
use crate::export::summary::ProbeInfo;
use crate::model::hist::Histogram;

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

/// Where in the function a probe goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Once per call, after the stack-check prologue (arguments still in their registers).
    Body,
    /// The first instruction: for assembly (ABI0) functions, which have no Go prologue.
    Entry,
    /// On every RET instruction (return values in RAX); never a uretprobe, which crashes Go.
    Returns,
    /// Where the function has returned, with its result: in each caller, right after the call
    /// (one trap), else on its RETs (a trap and a single step each). The attach cookie says
    /// where the result is (`gmp_trace_common::result_loc`), so the spec's cookie must be 0.
    Returned,
}

pub struct ProbeSpec {
    /// The BPF program (function name in gmp-trace-ebpf).
    pub program: &'static str,
    /// The Go runtime function it is attached to.
    pub function: &'static str,
    pub placement: Placement,
    /// Handed to the program as its attach cookie (a phase id, a flag).
    pub cookie: u64,
    /// Without it the scheduler picture is wrong: a missing function is an error, not a warning.
    pub required: bool,
    /// Go versions (major.minor) the probe applies to: `since <= v < until`.
    pub since: (u32, u32),
    pub until: (u32, u32),
}

const ALL_VERSIONS: ((u32, u32), (u32, u32)) = ((1, 0), (u32::MAX, 0));

const fn probe(program: &'static str, function: &'static str, placement: Placement) -> ProbeSpec {
    ProbeSpec {
        program,
        function,
        placement,
        cookie: 0,
        required: true,
        since: ALL_VERSIONS.0,
        until: ALL_VERSIONS.1,
    }
}

const fn optional(mut p: ProbeSpec, cookie: u64) -> ProbeSpec {
    p.required = false;
    with_cookie(p, cookie)
}

const fn with_cookie(mut p: ProbeSpec, cookie: u64) -> ProbeSpec {
    p.cookie = cookie;
    p
}

const fn versions(mut p: ProbeSpec, since: (u32, u32), until: (u32, u32)) -> ProbeSpec {
    p.since = since;
    p.until = until;
    p
}

use gmp_trace_common::phase;
use Placement::{Body, Entry, Returned, Returns};

/// Every probe gmp-trace knows, in the order they are attached.
pub const PROBES: &[ProbeSpec] = &[
    // Goroutine lifecycle and scheduling.
    probe("newproc", "runtime.newproc", Body),
    probe("newproc1_ret", "runtime.newproc1", Returned),
    // runtime.execute is not probed: its casgstatus(_Grunnable -> _Grunning) stands for it
    // (source::Derive), one trap fewer per goroutine switch.
    probe("casgstatus", "runtime.casgstatus", Body),
    probe("goexit1", "runtime.goexit1", Body),
    probe("schedule", "runtime.schedule", Body),
    probe("runtime_main", "runtime.main", Body),
    // Threads and processors. runtime.mstart is assembly (R14 not yet g); it calls mstart0,
    // which calls mstart1: the first point on a new M where R14 is its g0.
    probe("mstart", "runtime.mstart1", Body),
    probe("newm", "runtime.newm1", Body),
    probe("stopm", "runtime.stopm", Body),
    // Go 1.26+ exitsyscall takes a P with acquirepNoTrace (which acquirep calls too).
    versions(probe("acquirep", "runtime.acquirep", Body), (1, 0), (1, 26)),
    versions(
        probe("acquirep", "runtime.acquirepNoTrace", Body),
        (1, 26),
        (u32::MAX, 0),
    ),
    probe("releasep", "runtime.releasep", Body),
    probe("procresize", "runtime.procresize", Body),
    // Spinning Ms and work stealing (Go 1.19-1.27 all keep these out of line: stealWork calls
    // runqsteal, schedule calls resetspinning; checked per toolchain in binary/tests.rs). An M
    // spins from stealWork's entry (findRunnable sets m.spinning right before, if not already)
    // or from acquirep when it was handed its P as a spinning M (startm(pp, true), read from
    // m.spinning there), until resetspinning (found work), releasep (findRunnable drops its P
    // and clears m.spinning; gcstopm likewise), stopm or execute.
    // Optional: profile-guided builds (the Go toolchain's own compile, for one) inline
    // stealWork into findRunnable; the spinning/steal picture is then partial, not wrong.
    optional(probe("steal_work", "runtime.stealWork", Body), 0),
    optional(probe("resetspinning", "runtime.resetspinning", Body), 0),
    // runqsteal's result is the stolen g; its entry keeps the victim P for the return.
    optional(probe("runqsteal", "runtime.runqsteal", Body), 0),
    optional(probe("runqsteal_ret", "runtime.runqsteal", Returned), 0),
    // Stop-the-world, GC, syscalls.
    probe("stw_start", "runtime.stopTheWorldWithSema", Body),
    probe("stw_done", "runtime.startTheWorldWithSema", Body),
    probe("gc_start", "runtime.gcStart", Body),
    probe("gc_done", "runtime.gcMarkTermination", Body),
    probe("syscall_enter", "runtime.entersyscall", Body),
    optional(probe("syscall_enter", "runtime.entersyscallblock", Body), 1),
    probe("syscall_exit", "runtime.exitsyscall", Body),
    // Go 1.26+: the slow path of exitsyscall, taken when the P was gone by the time it looked
    // (after the exitsyscall probe had seen it): the exit was blocked after all.
    versions(
        optional(
            probe("syscall_lost_p", "runtime.exitsyscallTryGetP", Body),
            0,
        ),
        (1, 26),
        (u32::MAX, 0),
    ),
    // Startup milestones (cheap: each fires about once).
    optional(probe("phase_abi0", "runtime.rt0_go", Entry), phase::RT0_GO),
    optional(probe("phase", "runtime.schedinit", Body), phase::SCHEDINIT),
    optional(
        probe("phase_abi0", "runtime.mstart", Entry),
        phase::MSTART_M0,
    ),
    versions(
        probe("init_task", "runtime.doInit1", Body),
        (1, 21),
        (u32::MAX, 0),
    ),
    // Before 1.21 doInit recurses through the task's dependencies: its RETs close tasks.
    versions(
        with_cookie(probe("init_task", "runtime.doInit", Body), 1),
        (1, 0),
        (1, 21),
    ),
    versions(
        with_cookie(probe("phase", "runtime.doInit", Returns), phase::INIT_DONE),
        (1, 0),
        (1, 21),
    ),
    optional(probe("phase", "runtime.gcenable", Body), phase::GCENABLE),
    optional(probe("phase", "main.main", Body), phase::MAIN_MAIN),
    optional(probe("phase_abi0", "runtime.exit", Entry), phase::EXIT),
];

#[cfg(test)]
mod sizing_tests {
    use super::*;

    #[test]
    fn ring_sizes() {
        // 1M events/s: 50k events per drain x 72 B x 2 = 7.2 MB -> 8 MiB.
        assert_eq!(ring_bytes(None, 1_000_000), 8 << 20);
        assert_eq!(ring_bytes(None, 10), 4096);
        assert_eq!(ring_bytes(Some(5000), 1), 8192);
        assert_eq!(ring_bytes(Some(u64::MAX), 1), 1 << 30);
        assert_eq!(ring_bytes(None, u64::MAX), 1 << 30);
    }
}

/// The BPF object built from gmp-trace-ebpf by build.rs.
static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/gmp-trace"));

/// How much to trace: each level includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Level {
    /// Goroutine creation and exit, threads, GOMAXPROCS, GC, STW and startup: rare events only.
    Lifecycle,
    /// Plus every goroutine state change and which M and P run it (casgstatus, which also
    /// stands for execute and, from here on, goexit1; acquirep/releasep, stopm).
    Sched,
    /// Plus the scheduler loop, spinning Ms, run-queue steals and system calls (schedule,
    /// stealWork, resetspinning, runqsteal, entersyscall, exitsyscall), and newproc's entry.
    Full,
}

/// The least level at which a program is attached.
pub fn level_of(program: &str) -> Level {
    match program {
        "casgstatus" | "acquirep" | "releasep" | "stopm" => Level::Sched,
        "schedule" | "syscall_enter" | "syscall_exit" | "syscall_lost_p" => Level::Full,
        // newproc's entry tells nothing go_create (newproc1's return) does not: the creator
        // (m.curg there) and the function (startpc). Below full it would be one trap more per
        // goroutine for a duplicate.
        "newproc" => Level::Full,
        // Every findRunnable of an M without local work: scheduler hot path.
        "steal_work" | "resetspinning" | "runqsteal" | "runqsteal_ret" => Level::Full,
        _ => Level::Lifecycle,
    }
}

/// Whether aggregate mode attaches `program`: what its counters and latency histogram need
/// (creation, exit, every status change, which includes execute's Runnable -> Running), the
/// run-queue steals, and the rare events it still streams. The scheduler loop, P hand-offs,
/// syscalls and spinning are left out: every probe hit costs about a microsecond whatever the
/// program does with it.
///
/// The steal probes stay although they fire in the scheduler's search loop: on the net/http
/// bench (2k requests, 2 vCPUs, untraced ~68 ms) the program took ~103 ms with them and
/// ~160 ms without them (less CPU, more wall time). Our guess, not verified: a trap in
/// runqsteal slows the spinning Ms' stealing, and they then get in the way of the Ms doing the
/// work less often.
pub fn in_aggregate(program: &str) -> bool {
    !matches!(
        program,
        "newproc"
            | "schedule"
            | "acquirep"
            | "releasep"
            | "stopm"
            | "syscall_enter"
            | "syscall_exit"
            | "syscall_lost_p"
            | "steal_work"
            | "resetspinning"
    )
}

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
                cookie,
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

/// How often the session drains the ring buffer besides the probes' wakeups (which come only
/// when a lot is waiting: `WAKEUP_BYTES` in the probes).
pub const DRAIN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

/// Bytes one event takes in the ring buffer: the event and the kernel's 8-byte record header.
pub const RING_RECORD_BYTES: u64 = gmp_trace_common::EVENT_SIZE as u64 + 8;

/// The ring buffer size: `requested` bytes, or enough for `rate` events/s over two drain
/// intervals (the probes wake the reader long before: every `WAKEUP_BYTES`); a power of two
/// from one page to 1 GiB, as the kernel wants. Every page counts twice in gmp-trace's RSS (the
/// kernel maps the data area twice), so no bigger than that: measured, 4 MiB already loses
/// nothing at 1.3M events/s.
pub fn ring_bytes(requested: Option<u64>, rate: u64) -> u32 {
    let want = requested.unwrap_or_else(|| {
        let per_drain = rate.saturating_mul(DRAIN_INTERVAL.as_millis() as u64) / 1000;
        per_drain
            .saturating_mul(RING_RECORD_BYTES)
            .saturating_mul(2)
    });
    want.clamp(4096, 1 << 30).next_power_of_two() as u32
}

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
    ebpf: Ebpf,
    links_kind: Links,
    /// Owned here (not by the programs) so they can be detached in parallel, see `detach`.
    links: Vec<FdLink>,
    pub probes: Vec<ProbeInfo>,
}

impl Tracer {
    /// Loads the BPF object with the target's struct offsets and a ring buffer of `ring_bytes`
    /// (a power of two, see [`ring_bytes`]); its uprobes will be linked as `links` says.
    /// In aggregate mode the frequent events only update the probes' counter maps.
    pub fn load(
        offsets: &Offsets,
        ring_bytes: u32,
        aggregate: bool,
        links: Links,
    ) -> anyhow::Result<Tracer> {
        let size = ring_bytes;
        // The probes use no CO-RE relocations (kernel offsets come from kernel.rs), so aya
        // does not parse the kernel's BTF (it reads it only for objects that need it).
        let ebpf = EbpfLoader::new()
            .override_global("OFFSETS", offsets, true)
            .override_global("AGGREGATE", &u32::from(aggregate), true)
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

    /// What the probes counted in aggregate mode, summed over CPUs.
    pub fn aggregates(&self) -> anyhow::Result<Aggregates> {
        let read = |name: &str, n: u32| -> anyhow::Result<Vec<u64>> {
            let map = self
                .ebpf
                .map(name)
                .ok_or_else(|| anyhow!("{name} map missing"))?;
            let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
            (0..n).map(|i| Ok(arr.get(&i, 0)?.iter().sum())).collect()
        };
        let lat_map = self
            .ebpf
            .map("AGG_LATENCY")
            .ok_or_else(|| anyhow!("AGG_LATENCY map missing"))?;
        let lat: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(lat_map)?;
        let mut buckets = Vec::with_capacity(agg::LAT_BUCKETS);
        for i in 0..agg::LAT_BUCKETS as u32 {
            buckets.push(lat.get(&i, 0)?.iter().sum());
        }
        let sum = lat.get(&agg::LAT_SUM, 0)?.iter().sum();
        let max = lat
            .get(&agg::LAT_MAX, 0)?
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        Ok(Aggregates {
            kinds: read("AGG_KINDS", agg::KINDS)?,
            status: read("AGG_STATUS", agg::STATUS)?,
            wait: read("AGG_WAIT", agg::WAIT)?,
            latency: Histogram::from_buckets(&buckets, sum, max),
        })
    }

    /// Sums the per-CPU counters: (events dropped for a full ring, failed user reads, steal
    /// attempts that found nothing).
    pub fn counters(&self) -> anyhow::Result<(u64, u64, u64)> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("COUNTERS map missing"))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let sum = |i: u32| -> anyhow::Result<u64> { Ok(arr.get(&i, 0)?.iter().sum()) };
        Ok((
            sum(counter::RINGBUF_FULL)?,
            sum(counter::READ_FAILED)?,
            sum(counter::STEAL_FAILED)?,
        ))
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
