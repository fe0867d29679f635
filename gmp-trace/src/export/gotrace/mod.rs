//! `--format go`: our events as a Go execution trace (the format of `runtime/trace`, version
//! go 1.26), for `go tool trace` and gotraceui, whatever Go version the target runs.
//!
//! Fed like the other event writers, one event at a time, plus the goroutine transitions the
//! model made of it (the model already knows which casgstatus is a block, a start or a
//! syscall's end, and the summary counts the same transitions). `wire` lays out the bytes,
//! `state` mirrors what Go's reader believes and keeps every event legal to it, `translate`
//! maps our transitions and events onto Go's, `reasons` gives Go's block-reason strings.
//!
//! One wrinkle: from Go 1.26 the model may take back a syscall exit it logged (the P turned
//! out lost, see `Model::undo_syscall_exit`) within the same exitsyscall call. Such an exit is
//! held here until that can no longer happen, and dropped if it is taken back.
use std::collections::{BTreeMap, VecDeque};
use std::io::{self, Write};

use gmp_trace_common::{Event, EventKind};

use crate::binary::Symbolize;
use crate::export::stacks::StackFrame;
use crate::fasthash::FastMap;
use crate::model::{GoState, Model, Transition};
use crate::process::unwind::RawFrame;
use crate::source::sampler::CpuSample;
use crate::source::stacks::StackUse;

mod reasons;
mod state;
#[cfg(test)]
mod tests;
mod translate;
mod wire;

pub use state::Synth;

use reasons::Reasons;
use state::{GSt, State};
use translate::Runtime;

/// How long (in event time) a syscall exit is held for the model to take it back (the
/// take-back happens within the same exitsyscall call, microseconds later), and how long
/// seeded goroutines wait for their first transition.
const HOLD_NS: u64 = 10_000_000;

enum Item {
    Raw(Event),
    /// A transition and the Go-table id of the stack its event carried (0: none).
    Trans(Transition, u64),
}

/// What existed before the first event (`--pid` mode): the Ps are written at the first event,
/// the goroutines when first touched or, for those that do nothing, `HOLD_NS` into the trace.
/// The wait is for creations in flight at attach: the runtime's list already had them when we
/// read it, the creation event comes after, and is then written as the creation it is.
#[derive(Default)]
struct Seeds {
    /// Goroutines and their states.
    gs: BTreeMap<u64, GSt>,
    /// Of them, those running or in a system call, on the thread (and its P, -1 none) whose
    /// m.curg they were; one whose thread is unknown waits for its first transition.
    on: BTreeMap<u64, (u32, i32)>,
    /// Threads holding a P.
    held: Vec<(u32, i32)>,
    procs: Vec<i32>,
    /// Every thread the runtime had (the first writes the seeds when no event ever comes).
    threads: Vec<u32>,
}

pub struct GoTraceWriter<W: Write> {
    st: State<W>,
    rt: Runtime,
    reasons: Reasons,
    queue: VecDeque<Item>,
    seeds: Option<Seeds>,
    seeded: bool,
    latest: u64,
    /// Seeded goroutines not written yet, and when they are written at the latest.
    pending_seeds: BTreeMap<u64, GSt>,
    /// Their threads, for those running or in a system call ([`Seeds::on`]).
    pending_on: BTreeMap<u64, (u32, i32)>,
    seed_deadline: u64,
    /// Syscall exits that may still be taken back (goroutine -> the exit's time): until the
    /// goroutine's next transition.
    held: FastMap<u64, u64>,
    /// The model's Syscall->Running count after the last event.
    exits_counted: u64,
    /// When the load bias was announced: in `--pid` mode, about when the runtime's lists were
    /// read for the seeds (events from before can be in the ring buffer already).
    bias_ts: u64,
    /// Our stack ids (`--stacks`) -> the Go stack table's.
    stack_ids: FastMap<u32, u64>,
    /// The target release's funcID of compiler-generated wrappers, whose frames Go's tracer
    /// leaves out of its stacks as tracebacks do (`names::wrapper_hidden`).
    wrapper_id: u8,
    /// Go stack ids of stacks with frames -> the GoStop reason a stop with that stack has.
    stop_reasons: FastMap<u64, &'static str>,
    /// The stack entersyscall's event carried, per thread, until the casgstatus that makes the
    /// goroutine's Running->Syscall (Go <= 1.25, where that transition is casgstatus's).
    syscall_stacks: FastMap<u32, u64>,
    /// The acquireps (thread, time) by which procresize moved its caller to another P: the
    /// stop written for it is Go's "runtime.Gosched" (procresize's "pretend that we were
    /// descheduled"), not a stop made up to make room.
    resize_moves: FastMap<(u32, u64), ()>,
}

impl<W: Write> GoTraceWriter<W> {
    /// Writes the header; `go_version` is the target's (it numbers the wait reasons).
    pub fn new(out: W, go_version: &str) -> io::Result<Self> {
        Ok(GoTraceWriter {
            st: State::new(wire::Wire::new(out)?),
            rt: Runtime::default(),
            reasons: Reasons::for_version(go_version),
            queue: VecDeque::new(),
            seeds: None,
            seeded: false,
            latest: 0,
            pending_seeds: BTreeMap::new(),
            pending_on: BTreeMap::new(),
            seed_deadline: 0,
            bias_ts: 0,
            held: FastMap::default(),
            exits_counted: 0,
            stack_ids: FastMap::default(),
            stop_reasons: FastMap::default(),
            syscall_stacks: FastMap::default(),
            resize_moves: FastMap::default(),
            wrapper_id: crate::binary::names::func_id_wrapper(
                crate::export::perfetto::waitreason::major_minor(go_version).map_or(27, |v| v.1),
            ),
        })
    }

    /// Whether `seed` has been called.
    pub fn seeded(&self) -> bool {
        self.seeded
    }

    /// Takes what the model knew before the first event (the goroutines, threads and Ps read
    /// from a running process); written with the first event.
    pub fn seed(&mut self, model: &Model, sym: &dyn Symbolize) {
        self.seeded = true;
        let mut s = Seeds::default();
        let on: FastMap<u64, (u32, i32)> = model
            .threads
            .values()
            .filter_map(|th| Some((th.curg_at_seed?, (th.tid, th.p.unwrap_or(-1)))))
            .collect();
        for (&goid, g) in model.goroutines.iter() {
            let st = match g.state {
                GoState::Runnable => GSt::Runnable,
                GoState::Waiting => GSt::Waiting,
                GoState::Running | GoState::Syscall if on.contains_key(&goid) => {
                    s.on.insert(goid, on[&goid]);
                    if g.state == GoState::Running {
                        GSt::Running
                    } else {
                        GSt::Syscall
                    }
                }
                _ => continue,
            };
            if g.seeded {
                s.gs.insert(goid, st);
                self.note_start(goid, g.start_pc, sym);
            }
        }
        for th in model.threads.values() {
            if let Some(p) = th.p {
                s.held.push((th.tid, p));
            }
        }
        s.held.sort_unstable();
        // tid 0: an M whose thread id the runtime had not set yet.
        s.threads = model.threads.keys().filter(|t| *t != 0).collect();
        s.threads.sort_unstable();
        s.procs = model.procs.values().map(|p| p.id).collect();
        s.procs.sort_unstable();
        self.seeds = Some(s);
    }

    /// One event and the transitions the model made of it; `stack`, the user stack the probes
    /// took with it (`--stacks`), goes on the Go event those transitions become.
    pub fn event(
        &mut self,
        e: &Event,
        trans: Vec<Transition>,
        stack: Option<&StackUse>,
        model: &Model,
        sym: &dyn Symbolize,
    ) -> io::Result<()> {
        let stack_id = stack.map_or(0, |u| self.stack_id(u, sym));
        match EventKind::from_u32(e.kind) {
            // Made by userspace when it reads the ring buffer: stamped later than events
            // still in flight, so they do not say how far the probes' clock has got.
            Some(EventKind::Lost | EventKind::StealFailed) => {}
            Some(EventKind::LoadBias) => self.bias_ts = e.ts,
            _ => self.latest = self.latest.max(e.ts),
        }
        if matches!(
            EventKind::from_u32(e.kind),
            Some(
                EventKind::AcquireP
                    | EventKind::ReleaseP
                    | EventKind::ProcResize
                    | EventKind::GcStart
                    | EventKind::GcDone
                    | EventKind::StwStart
                    | EventKind::StwDone
                    | EventKind::Phase
            )
        ) {
            self.queue.push_back(Item::Raw(*e));
        }
        // The model takes an exit back by lowering its Syscall->Running count (and logging
        // Syscall->Runnable instead, below).
        let exits = trans
            .iter()
            .filter(|t| t.from == GoState::Syscall && t.to == GoState::Running)
            .count() as u64;
        let now = model
            .transitions
            .get(&(GoState::Syscall, GoState::Running))
            .copied()
            .unwrap_or(0);
        let undone = (self.exits_counted + exits).saturating_sub(now);
        self.exits_counted = now;
        self.note_context(e, &trans, stack_id);
        for t in trans {
            let stack_id = self.stack_for(&t, stack_id);
            let created = t.from == GoState::NotExist && t.to == GoState::Runnable;
            if created || !self.st.gs.contains_key(&t.goid) {
                if let Some(g) = model.goroutines.get(&t.goid) {
                    self.note_start(t.goid, g.start_pc, sym);
                }
            }
            let held = self.held.remove(&t.goid);
            if undone > 0 && t.from == GoState::Syscall && t.to == GoState::Runnable {
                if let Some(ts) = held {
                    self.take_back_exit(t.goid, ts);
                }
            }
            if t.from == GoState::Syscall && t.to == GoState::Running {
                self.held.insert(t.goid, t.ts);
            }
            self.queue.push_back(Item::Trans(t, stack_id));
        }
        self.release(Some(model))
    }

    /// What an event says about the transitions of later ones: entersyscall's stack (for the
    /// casgstatus that follows on Go <= 1.25), and an acquirep by which procresize moved its
    /// caller to another P (`Model::resized_away`).
    fn note_context(&mut self, e: &Event, trans: &[Transition], stack_id: u64) {
        let kind = EventKind::from_u32(e.kind);
        if stack_id != 0 && trans.is_empty() && kind == Some(EventKind::SyscallEnter) {
            self.syscall_stacks.insert(e.tid, stack_id);
        }
        let stopped = trans
            .iter()
            .any(|t| t.from == GoState::Running && t.to == GoState::Runnable);
        if kind == Some(EventKind::AcquireP) && stopped {
            self.resize_moves.insert((e.tid, e.ts), ());
        }
    }

    /// The stack `t`'s event carries: its own, or for a Running->Syscall without one, the
    /// stack entersyscall's event took on that thread.
    fn stack_for(&mut self, t: &Transition, stack_id: u64) -> u64 {
        let entering = t.from == GoState::Running && t.to == GoState::Syscall;
        match self.syscall_stacks.remove(&t.tid) {
            Some(s) if entering && stack_id == 0 => s,
            _ => stack_id,
        }
    }

    /// The Go stack table's id for a stack the probes took (symbolized once per stack).
    fn stack_id(&mut self, u: &StackUse, sym: &dyn Symbolize) -> u64 {
        if let Some(&id) = self.stack_ids.get(&u.id) {
            return id;
        }
        let visible = match &u.pcs {
            Some(pcs) => go_visible(
                crate::export::stacks::frames(pcs, sym),
                pcs,
                sym,
                self.wrapper_id,
            ),
            None => Vec::new(),
        };
        let names: Vec<&str> = visible.iter().map(|f| f.function.as_str()).collect();
        let reason = (!names.is_empty()).then(|| stop_reason(&names));
        let id = self.intern_frames(&visible);
        self.stack_ids.insert(u.id, id);
        if let Some(r) = reason {
            self.stop_reasons.insert(id, r);
        }
        id
    }

    /// The stack table's id of `frames`, their names and files in the string table.
    fn intern_frames(&mut self, frames: &[StackFrame]) -> u64 {
        let frames: Vec<wire::Frame> = frames
            .iter()
            .map(|f| wire::Frame {
                pc: f.pc,
                func: self.st.wire.strings.id(&f.function),
                file: self.st.wire.strings.id(&f.file),
                line: f.line as u64,
            })
            .collect();
        self.st.wire.stacks.intern(&frames)
    }

    /// CPU samples (`--sample-rate`), after the last event: each with its thread, P, goroutine
    /// and stack, as the runtime's own CPU profile writes them into its trace. Samples from
    /// before the first event are left out (the trace starts there); returns how many were
    /// written.
    pub fn cpu_samples(&mut self, samples: &[CpuSample], sym: &dyn Symbolize) -> io::Result<u64> {
        let Some(first) = self.st.wire.first() else {
            return Ok(0);
        };
        let mut written = 0;
        for s in samples.iter().filter(|s| s.ts >= first) {
            let stack = self.intern_frames(&sample_frames(&s.frames, sym));
            let p = u64::try_from(s.p).unwrap_or(wire::NO_THREAD);
            self.st
                .wire
                .cpu_sample(s.ts, u64::from(s.tid), p, s.goid, stack)?;
            written += 1;
        }
        Ok(written)
    }

    /// Keeps `goid`'s start function as the stack its creation or first status carries: for a
    /// `go` statement's wrapper, the function it calls, as Go's tracer writes it
    /// (runtime.startPCForTrace), so that `go tool trace` groups the goroutines by it.
    fn note_start(&mut self, goid: u64, pc: u64, sym: &dyn Symbolize) {
        if pc == 0 || self.st.start_stack.contains_key(&goid) {
            return;
        }
        let pc = sym.wrapped(pc).unwrap_or(pc);
        let name = match sym.func_name(pc) {
            Some(n) => n.to_string(),
            None => format!("0x{pc:x}"),
        };
        let func = self.st.wire.strings.id(&name);
        let frame = wire::Frame {
            pc,
            func,
            file: 0,
            line: 0,
        };
        let stack = self.st.wire.stacks.intern(&[frame]);
        self.st.start_stack.insert(goid, stack);
    }

    /// Drops a held Syscall -> Running of `goid` the model replaced by Syscall -> Runnable.
    fn take_back_exit(&mut self, goid: u64, ts: u64) {
        let held = self.queue.iter().rposition(|i| {
            matches!(i, Item::Trans(h, _) if h.goid == goid && h.ts == ts
                && h.from == GoState::Syscall && h.to == GoState::Running)
        });
        if let Some(i) = held {
            self.queue.remove(i);
        }
    }

    /// Writes queued items up to the first one still held (all of them without a model).
    fn release(&mut self, model: Option<&Model>) -> io::Result<()> {
        while let Some(front) = self.queue.front() {
            if let (Some(m), Item::Trans(t, _)) = (model, front) {
                let undoable = t.from == GoState::Syscall
                    && t.to == GoState::Running
                    && self.held.get(&t.goid) == Some(&t.ts)
                    && self.latest.saturating_sub(t.ts) < HOLD_NS
                    && m.threads.get(&t.tid).and_then(|th| th.exit_with_p) == Some((t.goid, t.ts));
                if undoable {
                    break;
                }
            }
            let Some(item) = self.queue.pop_front() else {
                break;
            };
            if let Item::Trans(t, _) = &item {
                if self.held.get(&t.goid) == Some(&t.ts) {
                    self.held.remove(&t.goid);
                }
            }
            let (tid, ts) = match &item {
                Item::Raw(e) => (e.tid, e.ts),
                Item::Trans(t, _) => (t.tid, t.ts),
            };
            self.write_seeds(tid, ts)?;
            match item {
                Item::Raw(e) => {
                    if self.resize_moves.contains_key(&(e.tid, e.ts)) {
                        self.st.room_stop_reason = "runtime.Gosched";
                    }
                    let r = self.st.raw(&e, &mut self.rt, &self.reasons);
                    self.st.room_stop_reason = "unspecified";
                    r?
                }
                Item::Trans(t, stack) => {
                    // A seeded goroutine's first transition says where it is (or that it is
                    // being created): written from there.
                    self.pending_seeds.remove(&t.goid);
                    self.st.cur_stack = stack;
                    let moved = t.from == GoState::Running
                        && t.to == GoState::Runnable
                        && self.resize_moves.remove(&(t.tid, t.ts)).is_some();
                    self.st.stop_reason = if moved {
                        "runtime.Gosched"
                    } else {
                        self.stop_reasons
                            .get(&stack)
                            .copied()
                            .unwrap_or("unspecified")
                    };
                    let r = self.st.transition(&t, &self.reasons);
                    self.st.cur_stack = 0;
                    self.st.stop_reason = "unspecified";
                    r?
                }
            }
            if ts >= self.seed_deadline {
                self.seed_statuses(tid, ts)?;
            }
            self.st.pending(tid, &mut self.rt)?;
        }
        Ok(())
    }

    /// The seeded goroutines that did nothing so far, as statuses.
    fn seed_statuses(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        for (g, st) in std::mem::take(&mut self.pending_seeds) {
            if self.st.gs.contains_key(&g) {
                continue;
            }
            match self.pending_on.remove(&g) {
                // Still on its thread as far as our events go (none ran anything else there).
                Some((t, p)) if self.st.cur_g(t).is_none() => self.st.status(t, ts, g, st, p)?,
                Some(_) => {}
                None => self.st.status(tid, ts, g, st, -1)?,
            }
        }
        Ok(())
    }

    fn write_seeds(&mut self, tid: u32, ts: u64) -> io::Result<()> {
        let Some(s) = self.seeds.take() else {
            return Ok(());
        };
        for p in s.procs {
            if !s.held.iter().any(|&(_, q)| q == p) {
                self.st.know_p(tid, ts, p)?;
            }
        }
        for (m, p) in s.held {
            self.st.seed_p(m, ts, p)?;
        }
        self.pending_seeds = s.gs;
        self.pending_on = s.on;
        self.seed_deadline = ts.max(self.bias_ts).saturating_add(HOLD_NS);
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.st.wire.flush()
    }

    /// Writes everything still queued and the tables; returns the output and what had to be
    /// made up or left out.
    pub fn finish(mut self) -> io::Result<(W, Synth)> {
        self.release(None)?;
        // A process that did nothing while traced: what it had is all the trace says.
        let first_thread = self.seeds.as_ref().and_then(|s| s.threads.first().copied());
        if let Some(tid) = first_thread {
            self.write_seeds(tid, self.latest.max(self.bias_ts))?;
        }
        if let Some(tid) = self.st.ms.keys().min().copied().or(first_thread) {
            let ts = self.st.now();
            self.seed_statuses(tid, ts)?;
        }
        let synth = self.st.synth;
        Ok((self.st.wire.finish()?, synth))
    }
}

/// A sample's frames as source frames, innermost first: the interrupted instruction is
/// symbolized at itself, the callers at their call (return address - 1); inlined calls are
/// frames of their own, each with its own pc (the reader keys frames by pc).
fn sample_frames(raw: &[RawFrame], sym: &dyn Symbolize) -> Vec<StackFrame> {
    let mut out = Vec::with_capacity(raw.len() * 2);
    for r in raw {
        let at = if r.trap { r.pc } else { r.pc.wrapping_sub(1) };
        let src = sym.source_frames(at);
        if src.is_empty() {
            out.push(StackFrame {
                function: sym.func_name(at).unwrap_or("?").to_string(),
                file: String::new(),
                line: 0,
                inlined: false,
                pc: at,
            });
            continue;
        }
        for (i, f) in src.into_iter().enumerate() {
            // A marker frame, not a call: Go's tracebacks leave it out.
            if f.function == "runtime.systemstack_switch" {
                continue;
            }
            out.push(StackFrame {
                pc: if i == 0 { at } else { f.pc },
                function: f.function,
                file: f.file,
                line: f.line,
                inlined: f.inlined,
            });
        }
    }
    out
}

/// `frames` (of `pcs`, as `export::stacks::frames` made them) without the wrapper frames Go's
/// tracer hides (funcID `wrapper_id`, unless it called a panic function: its unwinder's
/// elideWrapperCalling), so our stacks name the frames Go's own trace names.
fn go_visible(
    frames: Vec<crate::export::stacks::StackFrame>,
    pcs: &[u64],
    sym: &dyn Symbolize,
    wrapper_id: u8,
) -> Vec<crate::export::stacks::StackFrame> {
    // Whether each frame is a wrapper, in the order and number `frames` has them.
    let mut wrapper = Vec::with_capacity(frames.len());
    for &pc in pcs {
        let src = sym.source_frames(pc.wrapping_sub(1));
        if src.is_empty() {
            wrapper.push(false);
        }
        for f in src {
            if f.function != "runtime.systemstack_switch" {
                wrapper.push(f.func_id == wrapper_id && wrapper_id != 0);
            }
        }
    }
    if wrapper.len() != frames.len() {
        return frames; // not the same walk: keep every frame rather than guess
    }
    let mut out: Vec<crate::export::stacks::StackFrame> = Vec::with_capacity(frames.len());
    let mut callee: Option<String> = None;
    for (f, w) in frames.into_iter().zip(wrapper) {
        let hidden = crate::binary::names::wrapper_hidden(w, callee.as_deref(), false);
        callee = Some(f.function.clone());
        if !hidden {
            out.push(f);
        }
    }
    out
}

/// The GoStop reason Go's tracer gives a Running->Runnable whose goroutine's stack names
/// `funcs` (leaf first). Every casgstatus(_Grunning, _Grunnable) is in goschedImpl, which
/// says "runtime.Gosched" when called through Gosched and its kin and "preempted" through
/// gopreempt_m, or in goyield_m ("preempted"): the stack tells which.
fn stop_reason(funcs: &[&str]) -> &'static str {
    let gosched = funcs.iter().any(|f| {
        matches!(
            *f,
            "runtime.Gosched" | "runtime.goschedguarded" | "runtime.goschedIfBusy"
        )
    });
    if gosched {
        "runtime.Gosched"
    } else {
        "preempted"
    }
}
