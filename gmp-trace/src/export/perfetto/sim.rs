//! A toy Go scheduler that emits the wire events the probes would: startup phases, Ms and Ps,
//! goroutines that block, unblock each other, make syscalls, yield, create children and exit,
//! GC cycles with STW, GOMAXPROCS changes, lost events, and the odd pair of events arriving out
//! of timestamp order. Deterministic (seeded), endless, and small in memory, so it can feed
//! 10M events to the writer as well as a few thousand to a trace processor.
use std::collections::VecDeque;

use gmp_trace_common::{phase, Event, EventKind};

use crate::export::Symbolize;

pub const PID: u32 = 4242;
/// Runtime wait reason "chan receive" in Go 1.21..1.25 numbering.
pub const CHAN_RECEIVE_1_21: u64 = 14;

pub const PC_RUNTIME_MAIN: u64 = 0x1000;
pub const PC_WORKER: u64 = 0x2000;
pub const PC_CHILD: u64 = 0x3000;
pub const PC_MAIN_MAIN: u64 = 0x1100;
pub const PC_IN_WORKER: u64 = 0x2100;
pub const PC_MSTART: u64 = 0x5000;

/// Names for the simulator's pcs.
pub struct SimSymbols;

impl Symbolize for SimSymbols {
    fn func_name(&self, pc: u64) -> Option<&str> {
        Some(match pc {
            PC_RUNTIME_MAIN => "runtime.main",
            PC_WORKER => "main.worker",
            PC_CHILD => "main.child",
            PC_MAIN_MAIN => "main.main",
            PC_IN_WORKER => "main.worker",
            PC_MSTART => "runtime.mstart",
            _ => return None,
        })
    }
}

pub struct Sim {
    rng: u64,
    ts: u64,
    nprocs: usize,
    /// Per M (index = m.id): tid, the P it holds and the G it runs.
    ms: Vec<(u32, i32, Option<u64>)>,
    runq: VecDeque<u64>,
    waiting: VecDeque<u64>,
    live: usize,
    max_live: usize,
    next_goid: u64,
    steps: u64,
    out: VecDeque<Event>,
    /// Emit the startup sequence first.
    started: bool,
}

impl Sim {
    /// `max_live` bounds the goroutines alive at once (creation waits when reached).
    pub fn new(seed: u64, max_live: usize) -> Sim {
        Sim {
            rng: seed | 1,
            ts: 1_000_000_000,
            nprocs: 4,
            ms: Vec::new(),
            runq: VecDeque::new(),
            waiting: VecDeque::new(),
            live: 0,
            max_live,
            next_goid: 2,
            steps: 0,
            out: VecDeque::new(),
            started: false,
        }
    }

    fn rand(&mut self, n: u64) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 33) % n.max(1)
    }

    fn ev(&mut self, kind: EventKind, m: usize, goid: u64, args: [u64; 3]) {
        self.ts += 50 + self.rand(400);
        let (tid, p, _) = self.ms.get(m).copied().unwrap_or((PID, -1, None));
        self.out.push_back(Event {
            ts: self.ts,
            kind: kind as u32,
            tid,
            pid: PID,
            p,
            goid,
            m: m as i64,
            arg0: args[0],
            arg1: args[1],
            arg2: args[2],
        });
    }

    fn status(&mut self, m: usize, goid: u64, from: u64, to: u64, reason: u64, by: u64) {
        self.ev(EventKind::GoStatus, m, goid, [from, to, reason | (by << 8)]);
    }

    fn create(&mut self, m: usize, parent: u64, start: u64, site: u64) -> u64 {
        let goid = self.next_goid;
        self.next_goid += 1;
        // Half the time the Go 1.24+ order: the status flip (with the goid) before go_create.
        if self.rand(2) == 0 {
            self.status(m, goid, 6, 1, 0, 0);
        }
        self.ev(EventKind::GoCreate, m, goid, [parent, start, site]);
        self.runq.push_back(goid);
        self.live += 1;
        goid
    }

    fn startup(&mut self) {
        self.ms.push((PID, -1, None));
        self.ev(EventKind::Phase, 0, 0, [phase::RT0_GO, 0, 0]);
        self.ev(EventKind::Phase, 0, 0, [phase::SCHEDINIT, 0, 0]);
        self.ev(EventKind::ProcResize, 0, 0, [self.nprocs as u64, 0, 0]);
        self.ev(EventKind::GoCreate, 0, 1, [0, PC_RUNTIME_MAIN, 0]);
        self.live += 1;
        self.ev(EventKind::Phase, 0, 0, [phase::MSTART_M0, 0, 0]);
        self.ev(EventKind::MStart, 0, 0, [u64::from(PID), 0, 0]);
        self.ev(EventKind::AcquireP, 0, 0, [0, 0, 0]);
        self.ms[0].1 = 0;
        self.ev(EventKind::Schedule, 0, 0, [0; 3]);
        self.ev(EventKind::Execute, 0, 1, [0; 3]);
        self.status(0, 1, 1, 2, 0, 0);
        self.ms[0].2 = Some(1);
        self.ev(EventKind::Phase, 0, 1, [phase::INIT_TASK, 0xa000, 0]);
        self.ev(EventKind::Phase, 0, 1, [phase::INIT_TASK, 0xa100, 0]);
        self.ev(EventKind::Phase, 0, 1, [phase::GCENABLE, 0, 0]);
        for i in 1..self.nprocs {
            // newm on m0, then the new thread starts and takes its P.
            self.ev(EventKind::NewM, 0, 1, [i as u64, i as u64, PC_MSTART]);
            self.ms.push((PID + i as u32, -1, None));
            self.ev(EventKind::MStart, i, 0, [u64::from(PID) + i as u64, 0, 0]);
            self.ev(EventKind::AcquireP, i, 0, [i as u64, 0, 0]);
            self.ms[i].1 = i as i32;
        }
        self.ev(EventKind::Phase, 0, 1, [phase::MAIN_MAIN, 0, 0]);
    }

    /// One scheduling decision on M `m`.
    fn step(&mut self, m: usize) {
        self.steps += 1;
        if self.steps.is_multiple_of(5000) {
            self.ev(EventKind::GcStart, m, 0, [0, 0, 0]);
            self.ev(EventKind::StwStart, m, 0, [1, 0, 0]);
            self.ev(EventKind::StwDone, m, 0, [0; 3]);
            self.ev(EventKind::GcDone, m, 0, [0; 3]);
        }
        if self.steps.is_multiple_of(100_000) {
            self.ev(EventKind::Lost, m, 0, [3, 3 * (self.steps / 100_000), 0]);
        }
        let Some(g) = self.ms[m].2 else {
            self.ev(EventKind::Schedule, m, 0, [0; 3]);
            let next = self.runq.pop_front().or_else(|| {
                // Nothing runnable: the netpoller (no goroutine) readies a waiter.
                let w = self.waiting.pop_front()?;
                self.status(m, w, 4, 1, 0, 0);
                Some(w)
            });
            if let Some(g) = next {
                self.ev(EventKind::Execute, m, g, [0; 3]);
                self.status(m, g, 1, 2, 0, 0);
                self.ms[m].2 = Some(g);
            } else if self.rand(4) == 0 {
                // Idle: the P goes back and is taken again.
                self.ev(EventKind::ReleaseP, m, 0, [0; 3]);
                let p = self.ms[m].1;
                self.ev(EventKind::AcquireP, m, 0, [p as u64, 0, 0]);
            }
            return;
        };
        match self.rand(100) {
            0..=24 => {
                self.status(m, g, 2, 4, CHAN_RECEIVE_1_21, 0);
                self.waiting.push_back(g);
                self.ms[m].2 = None;
            }
            25..=44 => {
                if let Some(w) = self.waiting.pop_front() {
                    self.status(m, w, 4, 1, 0, g);
                    self.runq.push_back(w);
                }
            }
            45..=59 if self.live < self.max_live => {
                let (start, site) = if g == 1 {
                    (PC_WORKER, PC_MAIN_MAIN)
                } else {
                    (PC_CHILD, PC_IN_WORKER)
                };
                self.create(m, g, start, site);
            }
            60..=69 => {
                let old_style = self.rand(2) == 0;
                self.ev(EventKind::SyscallEnter, m, g, [0; 3]);
                if old_style {
                    self.status(m, g, 2, 3, 0, 0);
                    self.status(m, g, 3, 2, 0, 0);
                }
                self.ev(EventKind::SyscallExit, m, g, [0; 3]);
            }
            70..=77 => {
                self.status(m, g, 2, 1, 0, 0);
                self.runq.push_back(g);
                self.ms[m].2 = None;
            }
            78..=87 if g != 1 => {
                self.ev(EventKind::GoExit, m, g, [0; 3]);
                self.status(m, g, 2, 6, 0, 0);
                self.ms[m].2 = None;
                self.live -= 1;
            }
            _ => {}
        }
    }

    /// Ends the run: main.main returns and the process exits.
    pub fn exit(&mut self) -> Vec<Event> {
        self.ev(EventKind::Phase, 0, 1, [phase::EXIT, 0, 0]);
        self.out.drain(..).collect()
    }
}

impl Iterator for Sim {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        if !self.started {
            self.started = true;
            self.startup();
        }
        while self.out.len() < 2 {
            let m = self.rand(self.ms.len() as u64) as usize;
            self.step(m);
        }
        // Now and then two events from different threads arrive swapped (ring buffer order).
        if self.rand(20) == 0 && self.out[0].tid != self.out[1].tid {
            self.out.swap(0, 1);
        }
        self.out.pop_front()
    }
}
