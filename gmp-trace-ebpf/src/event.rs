//! Building an event: the fields every event shares (clock, thread, process filter) and the M,
//! P and goid of the current g, read as little as the caches allow. [`Cur`] hands what those
//! reads learned to the probes, so that none reads the same field twice.
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    programs::ProbeContext,
};
use gmp_trace_common::{agg, Event, EventKind, Offsets};

use crate::{
    cache::{known_thread, p_id, remember_thread},
    maps::AGGREGATE,
    read::{fetch, read, regs, Block},
};

/// Fills the parts every event shares: time, thread, and the M and P of the current g (R14).
/// Returns None when the event is for another process.
#[inline(always)]
pub(crate) fn base_event(ctx: &ProbeContext, kind: EventKind, o: &Offsets) -> Option<Event> {
    base_event_m(ctx, kind, o, NEED_P).map(|(e, _)| e)
}

/// [`base_event`] with `goid` set to the current goroutine's (0 on a g0).
#[inline(always)]
pub(crate) fn base_event_g(ctx: &ProbeContext, kind: EventKind, o: &Offsets) -> Option<Event> {
    base_event_m(ctx, kind, o, NEED_P).map(|(mut e, cur)| {
        e.goid = cur.goid(regs(ctx).r14, o);
        e
    })
}

/// What the base reads learned about the current g and its M, so probes that need more of it
/// do not read it again: every user read costs ~100 ns on the hot path.
///
/// Plain fields and flags rather than `Option`s: a `None` leaves its payload undefined, and
/// the verifier rejects the program when the compiler copies that undefined register.
#[derive(Clone, Copy)]
pub(crate) struct Cur {
    /// g.m, 0 when unreadable.
    pub(crate) m: u64,
    /// The current g's goid, valid when `have_goid` (the g block read brought it along).
    pub(crate) goid: u64,
    /// m.curg, valid when `have_curg`.
    pub(crate) curg: u64,
    /// m.spinning, valid when `have_spinning`.
    pub(crate) spinning: u8,
    pub(crate) have_goid: bool,
    pub(crate) have_curg: bool,
    pub(crate) have_spinning: bool,
}

impl Cur {
    /// Nothing read, and nothing to read later: every accessor gives 0.
    #[inline(always)]
    fn known_nothing() -> Cur {
        Cur {
            m: 0,
            goid: 0,
            curg: 0,
            spinning: 0,
            have_goid: true,
            have_curg: true,
            have_spinning: true,
        }
    }

    #[inline(always)]
    pub(crate) fn goid(&self, g: u64, o: &Offsets) -> u64 {
        if self.have_goid {
            self.goid
        } else {
            read::<u64>(g, o.g_goid).unwrap_or(0)
        }
    }

    #[inline(always)]
    pub(crate) fn curg(&self, o: &Offsets) -> u64 {
        if self.have_curg {
            self.curg
        } else {
            read::<u64>(self.m, o.m_curg).unwrap_or(0)
        }
    }

    #[inline(always)]
    pub(crate) fn spinning(&self, o: &Offsets) -> u8 {
        if self.have_spinning {
            self.spinning
        } else {
            read::<u8>(self.m, o.m_spinning).unwrap_or(0)
        }
    }
}

/// What a probe needs of its M besides id and P (the hot path on a known M reads only these):
/// nothing more, m.curg too, or also m.spinning.
pub(crate) const NEED_P: u8 = 0;
pub(crate) const NEED_CURG: u8 = 1;
pub(crate) const NEED_ALL: u8 = 2;

/// [`base_event`], also returning what it learned about the current g and M (at least what
/// `need` asks for; the rest is read on demand through [`Cur`]).
#[inline(always)]
pub(crate) fn base_event_m(
    ctx: &ProbeContext,
    kind: EventKind,
    o: &Offsets,
    need: u8,
) -> Option<(Event, Cur)> {
    let mut e = bare_event(kind, o)?;
    // Aggregate mode counts the frequent kinds without their M and P: skip those reads.
    let cur = if lean(kind) {
        Cur::known_nothing()
    } else {
        fill_m_p(&mut e, regs(ctx).r14, o, need)
    };
    Some((e, cur))
}

/// True for events that aggregate mode only counts (see [`aggregate`](crate::aggregate::aggregate)): their probes read
/// just what the counters and the latency histogram need.
#[inline(always)]
pub(crate) fn lean(kind: EventKind) -> bool {
    // SAFETY: a plain global in .rodata; volatile for the same reason as OFFSETS.
    let on = unsafe { core::ptr::read_volatile(&AGGREGATE) };
    on != 0 && !agg::streamed(kind as u32)
}

/// Sets the event's M and P from g.m and m.p, and returns what else the reads brought. On an M
/// this CPU knows (the thread's g0 in R14, where most scheduler events fire) g is not read and
/// m.id comes from the cache: only m.p is read, with m.curg when `need` asks for it. Otherwise
/// one read of g's window and one of m's. p.id comes from this CPU's P cache when it can.
#[inline(always)]
pub(crate) fn fill_m_p(e: &mut Event, g: u64, o: &Offsets, need: u8) -> Cur {
    let mut cur = Cur {
        m: 0,
        goid: 0,
        curg: 0,
        spinning: 0,
        have_goid: false,
        have_curg: false,
        have_spinning: false,
    };
    if g == 0 {
        return cur;
    }
    let pid_tgid = (u64::from(e.pid) << 32) | u64::from(e.tid);
    let known = known_thread(g, pid_tgid);
    let hit = known.g0 != 0;
    if hit {
        cur.m = known.m;
        cur.have_goid = true; // a g0's goid is 0
        e.m = known.m_id as i64;
    }
    let mut buf = core::mem::MaybeUninit::<Block>::uninit();
    if !hit {
        match fetch(&mut buf, g, o.g_block, o.g_block_len) {
            Some(w) => {
                cur.m = w.field(o.g_m, 8).unwrap_or(0);
                cur.goid = w.field(o.g_goid, 8).unwrap_or(0);
                cur.have_goid = true;
            }
            None => cur.m = read::<u64>(g, o.g_m).unwrap_or(0),
        }
    }
    if cur.m == 0 {
        return cur;
    }
    let p = if hit && need == NEED_P {
        read::<u64>(cur.m, o.m_p).unwrap_or(0)
    } else if hit && need == NEED_CURG {
        match fetch(&mut buf, cur.m, o.m_hot_block, o.m_hot_len) {
            Some(w) => {
                cur.curg = w.field(o.m_curg, 8).unwrap_or(0);
                cur.have_curg = true;
                w.field(o.m_p, 8).unwrap_or(0)
            }
            None => read::<u64>(cur.m, o.m_p).unwrap_or(0),
        }
    } else {
        let p = match fetch(&mut buf, cur.m, o.m_block, o.m_block_len) {
            Some(w) => {
                e.m = w.field(o.m_id, 8).map_or(-1, |v| v as i64);
                cur.curg = w.field(o.m_curg, 8).unwrap_or(0);
                cur.spinning = w.field(o.m_spinning, 1).unwrap_or(0) as u8;
                cur.have_curg = true;
                cur.have_spinning = true;
                w.field(o.m_p, 8).unwrap_or(0)
            }
            None => {
                e.m = read::<i64>(cur.m, o.m_id).unwrap_or(-1);
                read::<u64>(cur.m, o.m_p).unwrap_or(0)
            }
        };
        // Only g0s (and gsignal, on the same M) have goid 0: remember this thread's.
        if !hit && cur.have_goid && cur.goid == 0 && e.m >= 0 {
            remember_thread(pid_tgid, g, cur.m, e.m as u64);
        }
        p
    };
    if p != 0 {
        e.p = p_id(p, o);
    }
    cur
}

/// An event with no register-derived context (ABI0 code or kernel context).
#[inline(always)]
pub(crate) fn bare_event(kind: EventKind, o: &Offsets) -> Option<Event> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    if o.target_pid != 0 && tgid != o.target_pid {
        return None;
    }
    Some(Event {
        // SAFETY: bpf_ktime_get_ns has no preconditions.
        ts: unsafe { bpf_ktime_get_ns() },
        kind: kind as u32,
        tid: pid_tgid as u32,
        pid: tgid,
        p: -1,
        goid: 0,
        m: -1,
        arg0: 0,
        arg1: 0,
        arg2: 0,
    })
}
