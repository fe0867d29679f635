//! `--stacks` on the daemon side: reassembles the PCs the probes send in `StackPcs` pieces,
//! and pairs each `Stack` record with the event it belongs to (the next one from the same
//! thread, same time and kind: the probe sends the stack right before its event). The probes'
//! ids are 64-bit hashes; outputs get short ids (1, 2, ...) in order of first use, the same in
//! a replay. A stack whose PCs never arrived (a ring buffer that was full) is still given an id,
//! marked missing, and counted.
use gmp_trace_common::{gstatus, Event, EventKind, STACK_MAX_FRAMES, STACK_PCS_CHUNK};

use crate::fasthash::FastMap;

/// A `Stack` record waiting for its event.
#[derive(Clone, Copy, Debug)]
struct Pending {
    ts: u64,
    kind: u32,
    id: u64,
    whose: u64,
}

/// PCs of one stack, as its pieces arrive.
#[derive(Clone, Debug, Default)]
struct Partial {
    frames: usize,
    pcs: Vec<u64>,
    /// Bit k: piece k arrived.
    got: u32,
}

/// The stack an event carries.
#[derive(Clone, Debug, PartialEq)]
pub struct StackUse {
    /// The output id (1, 2, ... in order of first use).
    pub id: u32,
    /// First use of this id: outputs define the stack now, before the event.
    pub first: bool,
    /// The PCs (return addresses, innermost first); None when they were lost.
    pub pcs: Option<Vec<u64>>,
    /// The goroutine whose stack it is (the creator for a creation, the waker for an unblock).
    pub goid: u64,
}

#[derive(Debug, Default)]
pub struct StackTable {
    complete: FastMap<u64, Vec<u64>>,
    partial: FastMap<u64, Partial>,
    pending: FastMap<u32, Pending>,
    short: FastMap<u64, u32>,
    /// PCs by output id (None: lost).
    by_id: FastMap<u32, Option<Vec<u64>>>,
    /// Goroutines blocked now, with the stack they blocked with.
    blocked: FastMap<u64, u32>,
    /// Stacks first used without their PCs.
    pub missing: u64,
    /// `Stack` records whose event never came (it was lost).
    pub orphans: u64,
}

/// Whether `kind` is one of the stack records the table takes.
pub fn is_stack_record(kind: u32) -> bool {
    kind == EventKind::Stack as u32 || kind == EventKind::StackPcs as u32
}

impl StackTable {
    /// Takes a `Stack` or `StackPcs` record.
    pub fn see(&mut self, e: &Event) {
        if e.kind == EventKind::StackPcs as u32 {
            self.piece(e);
        } else if e.kind == EventKind::Stack as u32 {
            let p = Pending {
                ts: e.ts,
                kind: e.arg0 as u32,
                id: e.goid,
                whose: e.arg2,
            };
            if self.pending.insert(e.tid, p).is_some() {
                self.orphans += 1;
            }
        }
    }

    fn piece(&mut self, e: &Event) {
        let frames = ((e.p as u32) >> 8) as usize;
        let at = (e.p as u32 & 0xff) as usize;
        if frames == 0
            || frames > STACK_MAX_FRAMES
            || at >= frames
            || !at.is_multiple_of(STACK_PCS_CHUNK)
        {
            return;
        }
        if self.complete.contains_key(&e.goid) {
            return;
        }
        let p = self.partial.entry(e.goid).or_default();
        if p.frames != frames {
            *p = Partial {
                frames,
                pcs: vec![0; frames],
                got: 0,
            };
        }
        for (i, pc) in [e.m as u64, e.arg0, e.arg1, e.arg2].into_iter().enumerate() {
            if let Some(slot) = p.pcs.get_mut(at + i) {
                *slot = pc;
            }
        }
        p.got |= 1 << (at / STACK_PCS_CHUNK);
        let pieces = frames.div_ceil(STACK_PCS_CHUNK);
        if p.got.count_ones() as usize == pieces {
            if let Some(done) = self.partial.remove(&e.goid) {
                self.complete.insert(e.goid, done.pcs);
            }
        }
    }

    /// The stack sent for `e`, if its probe sent one (and `e` is the event it was for).
    pub fn take(&mut self, e: &Event) -> Option<StackUse> {
        if self.pending.is_empty() {
            return None;
        }
        let p = *self.pending.get(&e.tid)?;
        if p.ts != e.ts || p.kind != e.kind {
            if p.ts < e.ts {
                // A later event on this thread: the stack's own event was lost.
                self.pending.remove(&e.tid);
                self.orphans += 1;
            }
            return None;
        }
        self.pending.remove(&e.tid);
        let next = self.short.len() as u32 + 1;
        let mut first = false;
        let id = *self.short.entry(p.id).or_insert_with(|| {
            first = true;
            next
        });
        let pcs = self.complete.get(&p.id).cloned();
        if first {
            if pcs.is_none() {
                self.missing += 1;
            }
            self.by_id.insert(id, pcs.clone());
        }
        Some(StackUse {
            id,
            first,
            pcs,
            goid: p.whose,
        })
    }

    /// Follows which goroutines are blocked where: `e` (any event) with the stack it carried.
    pub fn follow(&mut self, e: &Event, stack: Option<&StackUse>) {
        if self.short.is_empty() {
            return;
        }
        if e.kind == EventKind::GoStatus as u32 {
            if e.arg1 == gstatus::WAITING {
                match stack {
                    Some(u) => self.blocked.insert(e.goid, u.id),
                    None => self.blocked.remove(&e.goid),
                };
            } else {
                self.blocked.remove(&e.goid);
            }
        } else if e.kind == EventKind::GoExit as u32 {
            self.blocked.remove(&e.goid);
        }
    }

    /// Goroutines still blocked, by stack: (id, PCs, how many), largest first.
    pub fn blocked_now(&self) -> Vec<(u32, Option<&[u64]>, u64)> {
        let mut n: FastMap<u32, u64> = FastMap::default();
        for id in self.blocked.values() {
            *n.entry(*id).or_default() += 1;
        }
        let mut out: Vec<_> = n
            .into_iter()
            .map(|(id, c)| (id, self.by_id.get(&id).and_then(|p| p.as_deref()), c))
            .collect();
        out.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));
        out
    }

    /// How many distinct stacks were used.
    pub fn distinct(&self) -> usize {
        self.short.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, ts: u64, tid: u32) -> Event {
        Event {
            ts,
            kind: kind as u32,
            tid,
            ..Event::default()
        }
    }

    fn pieces(id: u64, pcs: &[u64], ts: u64, tid: u32) -> Vec<Event> {
        pcs.chunks(STACK_PCS_CHUNK)
            .enumerate()
            .map(|(k, c)| {
                let at = k * STACK_PCS_CHUNK;
                let w = |i: usize| c.get(i).copied().unwrap_or(0);
                Event {
                    p: ((pcs.len() << 8) | at) as i32,
                    goid: id,
                    m: w(0) as i64,
                    arg0: w(1),
                    arg1: w(2),
                    arg2: w(3),
                    ..ev(EventKind::StackPcs, ts, tid)
                }
            })
            .collect()
    }

    fn reference(id: u64, of: EventKind, ts: u64, tid: u32, frames: usize) -> Event {
        Event {
            goid: id,
            arg0: of as u64,
            arg1: frames as u64,
            arg2: 7,
            ..ev(EventKind::Stack, ts, tid)
        }
    }

    #[test]
    fn pieces_assemble_and_ids_are_short_and_stable() {
        let mut t = StackTable::default();
        let pcs: Vec<u64> = (1..=10).map(|i| 0x1000 + i).collect();
        for p in pieces(0xdead_beef, &pcs, 5, 1) {
            t.see(&p);
        }
        t.see(&reference(0xdead_beef, EventKind::GoStatus, 5, 1, 10));
        // Another thread's event at the same time is not it.
        assert_eq!(t.take(&ev(EventKind::GoStatus, 5, 2)), None);
        let u = t.take(&ev(EventKind::GoStatus, 5, 1)).unwrap();
        assert_eq!((u.id, u.first, u.goid), (1, true, 7));
        assert_eq!(u.pcs.as_deref(), Some(&pcs[..]));
        // Seen again: only the reference comes; same id, not first.
        t.see(&reference(0xdead_beef, EventKind::GoCreate, 9, 3, 10));
        let u = t.take(&ev(EventKind::GoCreate, 9, 3)).unwrap();
        assert_eq!((u.id, u.first), (1, false));
        assert_eq!(t.missing, 0);
    }

    #[test]
    fn lost_pieces_make_a_missing_stack_not_a_wrong_one() {
        let mut t = StackTable::default();
        let pcs: Vec<u64> = (1..=9).collect();
        let ps = pieces(42, &pcs, 5, 1);
        t.see(&ps[0]);
        t.see(&ps[2]); // the middle piece was lost
        t.see(&reference(42, EventKind::SyscallEnter, 5, 1, 9));
        let u = t.take(&ev(EventKind::SyscallEnter, 5, 1)).unwrap();
        assert_eq!((u.id, u.first, u.pcs), (1, true, None));
        assert_eq!(t.missing, 1);
        // An unknown id: the same.
        t.see(&reference(43, EventKind::SyscallEnter, 6, 1, 3));
        assert_eq!(
            t.take(&ev(EventKind::SyscallEnter, 6, 1)).unwrap().pcs,
            None
        );
        assert_eq!(t.missing, 2);
    }

    #[test]
    fn a_reference_whose_event_was_lost_is_not_given_to_the_next() {
        let mut t = StackTable::default();
        t.see(&reference(1, EventKind::GoStatus, 5, 1, 1));
        // The status event was lost; the next event on the thread comes later.
        assert_eq!(t.take(&ev(EventKind::GoStatus, 8, 1)), None);
        assert_eq!(t.orphans, 1);
        assert_eq!(t.take(&ev(EventKind::GoStatus, 8, 1)), None);
    }

    #[test]
    fn corrupt_pieces_are_ignored() {
        let mut t = StackTable::default();
        for p in [0, (40 << 8), (4 << 8) | 5, (4 << 8) | 4] {
            t.see(&Event {
                p,
                goid: 1,
                ..ev(EventKind::StackPcs, 1, 1)
            });
        }
        t.see(&reference(1, EventKind::GoStatus, 1, 1, 4));
        assert_eq!(t.take(&ev(EventKind::GoStatus, 1, 1)).unwrap().pcs, None);
    }
}
