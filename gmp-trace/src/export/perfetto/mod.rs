//! Native Perfetto output (`.pftrace`): the scheduler laid out the way `go tool trace` shows it,
//! streamed as events arrive.
//!
//! Layout (docs/perfetto.md has the picture and example queries):
//! - the process track; under it one thread track per M (thread name "M3", tid 1234: the UI
//!   shows "M3 1234") whose slices ("G7 main.worker") say which goroutine runs on that thread;
//! - a "Procs" group with one track per P, the same slices seen from the P;
//! - a "Goroutines" group with one track per G, its states as back-to-back slices ("Running",
//!   "Runnable", "Waiting (chan receive)", "Syscall");
//! - a "Go runtime" group: "Startup", "GC" and "STW" lanes and counters (goroutines by state,
//!   threads, Ps in use, GOMAXPROCS, lost events);
//! - "spinning" slices on an M's track while it spins (looks for work to steal, holding a P)
//!   and a "steal" instant there when it takes goroutines from another P;
//! - flows "go" (creation), "unblock", "newm" and "steal" (from the steal to the stolen
//!   goroutine's next Running slice).
//!
//! Timestamps are CLOCK_MONOTONIC, the clock of the events and of Go's own execution traces; a
//! clock snapshot makes MONOTONIC the trace's clock.
//!
//! The writer keeps up with the probes on one core, so packets are few and cheap (`emit.rs` and
//! `emit/`): counter values ride on the event packet of their time, timestamps are deltas, names
//! are interned up front, and the fields every packet repeats are encoded once.
//!
//! Memory stays bounded: state is kept per live goroutine, thread and P only. Interned
//! per-goroutine names are forgotten with the goroutine.
mod callstacks;
mod emit;
mod lanes;
mod layout;
mod proto;
pub mod waitreason;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
mod vocab;

use std::collections::BTreeMap;
use std::io::{self, Write};

use gmp_trace_common::Event;

use super::Symbolize;
pub use emit::SEQUENCE_ID;
use emit::{track_uuid, CounterTrack, Emitter, EncodedArg, Owner, Track, TrackKind};
use proto::{
    Clock, ClockSnapshot, CounterDescriptor, ProcessDescriptor, TracePacket, TrackDescriptor,
    CLOCK_BOOTTIME, CLOCK_MONOTONIC, ORDER_CHRONOLOGICAL, ORDER_EXPLICIT,
};
use vocab::{ArgName, Name};

/// What the trace says about the traced process.
#[derive(Default)]
pub struct TraceMeta {
    pub pid: u32,
    /// Which image of the process this is in the run (0 the first; see `Owner`).
    pub image: u32,
    /// Shown on the process track (e.g. the binary's file name).
    pub process_name: String,
    /// The target's Go version ("go1.27.3"): picks the table that names wait reasons.
    pub go_version: String,
    /// Names the package of an init task from the task's address (startup phase `init_task`),
    /// e.g. "net/http" from the binary's data symbols. Without it the package comes from the
    /// task's first init function (the event's arg2) through the symbolizer, else the phase
    /// reads "init task 0x...".
    pub init_task_name: Option<Box<dyn Fn(u64) -> Option<String> + Send>>,
}

impl TraceMeta {
    fn owner(&self) -> Owner {
        Owner {
            pid: self.pid,
            image: self.image,
        }
    }
}

/// What the writer emitted, to compare with what a trace processor reads back.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PerfettoStats {
    pub packets: u64,
    pub bytes: u64,
    /// Events handed to [`PerfettoWriter::event`].
    pub events: u64,
    /// Events of a kind this build does not know (ignored).
    pub unknown_events: u64,
    pub thread_tracks: u64,
    pub proc_tracks: u64,
    pub goroutine_tracks: u64,
    /// "G<id> <fn>" slices on each M's thread track, by tid.
    pub m_slices: BTreeMap<u32, u64>,
    /// The same slices on each P's track, by P id.
    pub p_slices: BTreeMap<i32, u64>,
    /// State slices on goroutine tracks, all goroutines.
    pub g_state_slices: u64,
    /// State slices by goid; filled only after [`PerfettoWriter::keep_goroutine_stats`] (it grows
    /// with the number of goroutines).
    pub g_slices: BTreeMap<u64, u64>,
    pub instants: u64,
    /// Flows completed (source and target written), by kind.
    pub flows_go: u64,
    pub flows_unblock: u64,
    pub flows_newm: u64,
    pub flows_steal: u64,
    /// "spinning" slices on M tracks, all threads.
    pub spin_slices: u64,
    pub counter_values: u64,
    pub startup_slices: u64,
    pub gc_slices: u64,
    pub stw_slices: u64,
    /// Total of `Lost` events' counts.
    pub lost_events: u64,
    /// Event timestamps moved forward to keep a track's slices ordered (events from different
    /// CPUs reach the ring buffer slightly out of order).
    pub clamped_timestamps: u64,
    /// Goroutines the writer currently holds state for, and the most it ever held.
    pub live_goroutines: usize,
    pub max_live_goroutines: usize,
}

impl PerfettoStats {
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn flows(&self) -> u64 {
        self.flows_go + self.flows_unblock + self.flows_newm + self.flows_steal
    }
}

/// A goroutine state as drawn on its track.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum St {
    Running,
    Runnable,
    Waiting(u8),
    Syscall,
}

impl St {
    /// Index into the per-state counters.
    fn counter(self) -> usize {
        match self {
            St::Running => 0,
            St::Runnable => 1,
            St::Waiting(_) => 2,
            St::Syscall => 3,
        }
    }

    /// Whether the goroutine holds its M in this state (a syscall keeps it).
    fn on_cpu(self) -> bool {
        matches!(self, St::Running | St::Syscall)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FlowKind {
    Go,
    Unblock,
    Steal,
}

/// A live goroutine.
struct G {
    /// Its track, once created (a goroutine first seen through `casgstatus(_Gdead -> ...)`
    /// waits for its go_create, which names it).
    track: Option<Track>,
    /// Interned "G7 main.worker": the track's name and the M/P slices' name.
    name_iid: u64,
    state: St,
    /// When `state` began (the slice starts there once the track exists).
    since: u64,
    slice_open: bool,
    last_ts: u64,
    /// The thread and P whose tracks show it running now.
    on_m: Option<u32>,
    on_p: Option<i32>,
    /// Flows that end at its next Running slice.
    flows: Vec<(u64, FlowKind)>,
}

/// A thread (M).
struct M {
    track: Track,
    /// `m.id` once an event carried it.
    id: Option<i64>,
    last_ts: u64,
    running: Option<u64>,
    /// A "spinning" slice is open (never together with a goroutine slice).
    spinning: bool,
    /// Goroutine slices drawn on its track ([`PerfettoStats::m_slices`]).
    slices: u64,
    /// The args of its goroutine slices on P tracks (`m`, `tid`), encoded for the `m` they
    /// were last written with (an event's `m` can still be unknown, -1).
    p_args: Option<(i64, [EncodedArg; 2])>,
}

/// A processor (P).
struct P {
    track: Track,
    last_ts: u64,
    running: Option<u64>,
    /// The thread holding it.
    holder: Option<u32>,
    /// Goroutine slices drawn on its track ([`PerfettoStats::p_slices`]).
    slices: u64,
}

/// A process-wide lane with at most one open slice (Startup, GC, STW).
struct Lane {
    track: Track,
    last_ts: u64,
    open: bool,
}

/// Fixed track ids (`TrackKind::Fixed`); also the counters' order.
const FIXED_PROCS: u64 = 1;
const FIXED_GOROUTINES: u64 = 2;
const FIXED_STARTUP: u64 = 3;
const FIXED_GC: u64 = 4;
const FIXED_STW: u64 = 5;
const FIXED_RUNTIME: u64 = 6;
const FIXED_COUNTER_BASE: u64 = 16;

/// Counter tracks: goroutines by state (in `St::counter` order), then the rest.
const COUNTERS: [&str; 10] = [
    "Goroutines Running",
    "Goroutines Runnable",
    "Goroutines Waiting",
    "Goroutines Syscall",
    "Threads",
    "Ps in use",
    "GOMAXPROCS",
    "Lost events",
    "Spinning Ms",
    "Failed steal attempts",
];
/// Every counter's bit in `counter_dirty`.
const ALL_COUNTERS: u16 = (1 << COUNTERS.len()) - 1;
const _: () = assert!(COUNTERS.len() <= 16, "a dirty bit per counter");
const C_THREADS: usize = 4;
const C_PS: usize = 5;
const C_GOMAXPROCS: usize = 6;
const C_LOST: usize = 7;
const C_SPINNING: usize = 8;
const C_STEAL_FAILED: usize = 9;

pub struct PerfettoWriter<W: Write> {
    em: Emitter<W>,
    meta: TraceMeta,
    process_uuid: u64,
    process_track: Track,
    procs_group: u64,
    goroutines_group: u64,
    gs: FastMap<u64, G>,
    ms: ByTid<M>,
    ps: ByP<P>,
    startup: Lane,
    gc: Lane,
    stw: Lane,
    counters: [(CounterTrack, i64); COUNTERS.len()],
    /// Counter values not yet written (written when they change, once per event): bit i for
    /// `counters[i]`.
    counter_dirty: u16,
    /// New Ms announced by newm, by m.id, waiting for their mstart to end the flow.
    newm_flows: FastMap<i64, u64>,
    next_flow: u64,
    flow_base: u64,
    /// Init tasks started so far (one per package of the binary, at most).
    init_tasks: FastSet<u64>,
    /// Go 1.19/1.20: the open doInit calls.
    init_stack: crate::model::startup::InitStack<()>,
    wait_names: FastMap<u8, u64>,
    stw_names: FastMap<u64, u64>,
    last_ts: u64,
    /// Flow ids a Running slice ends, reused between slices.
    flow_ends: Vec<u64>,
    /// `--stacks`: the stack of the event being laid out (`set_stack`), for the slice or
    /// instant it makes: the goroutine's Waiting, Runnable or Syscall slice, the `go` or
    /// `unblock` instant.
    stack: Option<callstacks::EventStack>,
    callstacks: callstacks::Callstacks,
    keep_g_stats: bool,
    stats: PerfettoStats,
}

/// Reads a clock; 0 if it cannot be read (then the snapshot only lacks that clock).
fn clock_ns(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec through a valid pointer to a local.
    let r = unsafe { libc::clock_gettime(id, &mut ts) };
    if r != 0 {
        return 0;
    }
    (ts.tv_sec as u64).saturating_mul(1_000_000_000) + ts.tv_nsec as u64
}

impl<W: Write> PerfettoWriter<W> {
    /// Starts a trace: the clock snapshot (MONOTONIC and BOOTTIME read now, MONOTONIC the trace
    /// clock), the process track, the group and lane tracks and the counters.
    #[cfg(test)]
    pub fn new(out: W, meta: TraceMeta) -> io::Result<Self> {
        Self::on_sequence(out, meta, SEQUENCE_ID)
    }

    /// As [`PerfettoWriter::new`], on packet sequence `sequence_id`: writers whose packets share
    /// one file (one per traced process) each need their own, since interned names and the
    /// delta clock are scoped to a sequence. Track uuids and flow ids differ already by owner
    /// (pid, and image for a process traced again after an exec).
    // Long (~105 lines) on purpose: the trace's preamble is one sequence of packets (clock
    // snapshot, process, group, lanes, counters); it reads top to bottom as the file does.
    pub fn on_sequence(out: W, meta: TraceMeta, sequence_id: u32) -> io::Result<Self> {
        let owner = meta.owner();
        let fixed = |id| track_uuid(owner, TrackKind::Fixed, id);
        let lane = |id| Lane {
            track: Track::new(fixed(id)),
            last_ts: 0,
            open: false,
        };
        let mut w = PerfettoWriter {
            em: Emitter::on_sequence(out, Name::TEXT, ArgName::TEXT, sequence_id)?,
            process_uuid: track_uuid(owner, TrackKind::Process, 0),
            process_track: Track::new(track_uuid(owner, TrackKind::Process, 0)),
            procs_group: fixed(FIXED_PROCS),
            goroutines_group: fixed(FIXED_GOROUTINES),
            gs: FastMap::default(),
            ms: ByTid::default(),
            ps: ByP::default(),
            startup: lane(FIXED_STARTUP),
            gc: lane(FIXED_GC),
            stw: lane(FIXED_STW),
            counters: [(CounterTrack::new(0), 0); COUNTERS.len()],
            counter_dirty: 0,
            newm_flows: FastMap::default(),
            next_flow: 0,
            flow_base: emit::flow_base(owner),
            init_tasks: FastSet::default(),
            init_stack: Default::default(),
            wait_names: FastMap::default(),
            stw_names: FastMap::default(),
            last_ts: 0,
            flow_ends: Vec::new(),
            stack: None,
            callstacks: Default::default(),
            keep_g_stats: false,
            stats: PerfettoStats::default(),
            meta,
        };
        let boottime = clock_ns(libc::CLOCK_BOOTTIME);
        let monotonic = clock_ns(libc::CLOCK_MONOTONIC);
        w.em.packet(TracePacket {
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    Clock {
                        clock_id: Some(CLOCK_BOOTTIME),
                        timestamp: Some(boottime),
                        is_incremental: None,
                    },
                    Clock {
                        clock_id: Some(CLOCK_MONOTONIC),
                        timestamp: Some(monotonic),
                        is_incremental: None,
                    },
                ],
                primary_trace_clock: Some(CLOCK_MONOTONIC),
            }),
            ..TracePacket::default()
        })?;
        w.em.track(TrackDescriptor {
            uuid: Some(w.process_uuid),
            process: Some(ProcessDescriptor {
                pid: Some(owner.pid as i32),
                process_name: Some(w.meta.process_name.clone()),
            }),
            child_ordering: Some(ORDER_EXPLICIT),
            ..TrackDescriptor::default()
        })?;
        // The UI orders a process's own children by name whatever their ranks, so the lanes and
        // counters sit in a "Go runtime" group whose explicit order it does follow.
        let runtime_group = fixed(FIXED_RUNTIME);
        let child = |parent, uuid, name: &str, rank| TrackDescriptor {
            uuid: Some(uuid),
            parent_uuid: Some(parent),
            name: Some(name.to_owned()),
            sibling_order_rank: Some(rank),
            ..TrackDescriptor::default()
        };
        let process = w.process_uuid;
        let lanes = [
            TrackDescriptor {
                child_ordering: Some(ORDER_EXPLICIT),
                ..child(process, runtime_group, "Go runtime", 0)
            },
            TrackDescriptor {
                child_ordering: Some(ORDER_EXPLICIT),
                ..child(process, w.procs_group, "Procs", 1)
            },
            TrackDescriptor {
                child_ordering: Some(ORDER_CHRONOLOGICAL),
                ..child(process, w.goroutines_group, "Goroutines", 2)
            },
            child(runtime_group, fixed(FIXED_STARTUP), "Startup", 0),
            child(runtime_group, fixed(FIXED_GC), "GC", 1),
            child(runtime_group, fixed(FIXED_STW), "STW", 2),
        ];
        for d in lanes {
            w.em.track(d)?;
        }
        for (i, name) in COUNTERS.iter().enumerate() {
            let uuid = fixed(FIXED_COUNTER_BASE + i as u64);
            w.counters[i].0 = CounterTrack::new(uuid);
            w.em.track(TrackDescriptor {
                counter: Some(CounterDescriptor {
                    unit_name: Some("count".to_owned()),
                }),
                ..child(runtime_group, uuid, name, 3 + i as i32)
            })?;
        }
        Ok(w)
    }

    /// Also count state slices per goroutine in [`PerfettoStats::g_slices`] (tests; this map
    /// grows with every goroutine ever seen).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn keep_goroutine_stats(mut self) -> Self {
        self.keep_g_stats = true;
        self
    }

    /// Lays out one event, writing the packets it produces.
    pub fn event(&mut self, e: &Event, sym: &dyn Symbolize) -> io::Result<()> {
        self.stats.events += 1;
        self.last_ts = self.last_ts.max(e.ts);
        let r = self.apply(e, sym);
        // A stack belongs to its one event: never to a later one.
        self.stack = None;
        r?;
        self.write_counters(e.ts)
    }

    /// `--stacks`: the next event's stack (`id` as the pipeline numbers them; `frames`, innermost
    /// first, asked for at its first use only), shown on what that event draws as a callstack
    /// and as the `stack` argument (text, a frame a line).
    pub fn set_stack(
        &mut self,
        id: u32,
        frames: impl FnOnce() -> Option<Vec<crate::export::stacks::StackFrame>>,
    ) {
        let exe = &self.meta.process_name;
        let s = self.callstacks.get(id, exe, frames, self.em.pending());
        self.stack = Some(s);
    }

    /// Pushes written packets to the output (call after each ring-buffer drain).
    pub fn flush(&mut self) -> io::Result<()> {
        self.em.flush()
    }

    /// Ends every open slice at the last event's time, writes the final counter values, flushes
    /// and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        let ts = self.last_ts;
        // Closing the slices is bookkeeping, not the goroutines exiting: the counters keep the
        // values they had at the last event.
        let at_end = self.counters.map(|(_, v)| v);
        let mut goids: Vec<u64> = self.gs.keys().copied().collect();
        goids.sort_unstable();
        for goid in goids {
            self.finish_g(goid, ts)?;
        }
        let mut tids: Vec<u32> = self.ms.keys().collect();
        tids.sort_unstable();
        for tid in tids {
            self.stop_m(tid, ts)?;
            self.spin_end(tid, ts)?;
        }
        let mut pids: Vec<i32> = self.ps.keys().collect();
        pids.sort_unstable();
        for p in pids {
            self.stop_p(p, ts)?;
        }
        for lane in [Lanes::Startup, Lanes::Gc, Lanes::Stw] {
            self.lane_end(lane, ts)?;
        }
        for (c, v) in self.counters.iter_mut().zip(at_end) {
            c.1 = v;
        }
        self.counter_dirty = ALL_COUNTERS;
        self.write_counters(ts)?;
        self.em.finish()
    }

    #[cfg_attr(not(test), allow(dead_code))]
    pub fn stats(&self) -> PerfettoStats {
        let mut s = self.stats.clone();
        s.packets = self.em.packets;
        s.bytes = self.em.bytes;
        s.live_goroutines = self.gs.len();
        // Counted per thread and P (no map lookup per slice); Ms and Ps are never forgotten.
        s.m_slices = (self.ms.iter())
            .filter(|(_, m)| m.slices > 0)
            .map(|(tid, m)| (tid, m.slices))
            .collect();
        s.p_slices = (self.ps.iter())
            .filter(|(_, p)| p.slices > 0)
            .map(|(id, p)| (id, p.slices))
            .collect();
        s
    }

    fn write_counters(&mut self, ts: u64) -> io::Result<()> {
        // Most events change no counter.
        if self.counter_dirty == 0 {
            return Ok(());
        }
        let mut dirty = std::mem::take(&mut self.counter_dirty);
        let mut values = [(&self.counters[0].0, 0); COUNTERS.len()];
        let mut n = 0;
        while dirty != 0 {
            let (track, v) = &self.counters[dirty.trailing_zeros() as usize];
            dirty &= dirty - 1;
            values[n] = (track, *v);
            n += 1;
        }
        self.stats.counter_values += n as u64;
        self.em.counters(ts, &mut values[..n])
    }

    fn add_counter(&mut self, i: usize, delta: i64) {
        if delta != 0 {
            self.counters[i].1 += delta;
            self.counter_dirty |= 1 << i;
        }
    }

    fn set_counter(&mut self, i: usize, v: i64) {
        if self.counters[i].1 != v {
            self.counters[i].1 = v;
            self.counter_dirty |= 1 << i;
        }
    }

    fn new_flow(&mut self) -> u64 {
        self.next_flow += 1;
        self.flow_base.wrapping_add(self.next_flow)
    }
}

/// Which process-wide lane.
#[derive(Clone, Copy)]
enum Lanes {
    Startup,
    Gc,
    Stw,
}

/// Moves `ts` forward to the track's last timestamp if it is earlier, so that slices on one
/// track stay ordered and strictly nested whatever order the CPUs' events arrived in.
fn clamp(last: &mut u64, ts: u64, clamped: &mut u64) -> u64 {
    if ts < *last {
        *clamped += 1;
        *last
    } else {
        *last = ts;
        ts
    }
}

pub(crate) use crate::fasthash::{ByP, ByTid, FastMap, FastSet};
