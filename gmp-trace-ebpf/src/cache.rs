//! The per-CPU caches that spare the hot path its user-memory reads (each ~100 ns): the thread
//! on this CPU (its g0, M and m.id), the P it last saw (p.id), and goids by g pointer; and the
//! generations that retire cached threads and Ps when Ms are born or Ps resized. The maps and
//! their value types are in maps.rs.
use gmp_trace_common::Offsets;

use crate::{
    maps::{
        GoidSlot, PCache, ThreadCache, CUR_P, CUR_THREAD, GENERATION, GEN_PS, GEN_THREADS, GOIDS,
        GOID_SLOTS,
    },
    read::read,
};

impl ThreadCache {
    #[inline(always)]
    fn sum(pid_tgid: u64, gen: u64, g0: u64, m: u64, m_id: u64) -> u64 {
        pid_tgid ^ gen ^ g0 ^ m ^ m_id.rotate_left(32) ^ 0x6a09_e667_f3bc_c908
    }

    /// No entry: `g0` 0 never matches a g.
    pub(crate) const NONE: ThreadCache = ThreadCache {
        pid_tgid: 0,
        gen: 0,
        g0: 0,
        m: 0,
        m_id: 0,
        check: 0,
    };
}

/// This CPU's entry for this thread on its g0 `g`, if it holds one from the current generation
/// ([`ThreadCache::NONE`] otherwise). The thread is part of the key, not just the g0: a cgo
/// extra M (and its g0) serves whichever C thread calls into Go next, without an mstart.
#[inline(always)]
pub(crate) fn known_thread(g: u64, pid_tgid: u64) -> ThreadCache {
    let Some(c) = CUR_THREAD.get_ptr(0) else {
        return ThreadCache::NONE;
    };
    // SAFETY: this CPU's slot from the lookup, valid for the program run; a torn copy fails
    // `check`.
    let c = unsafe { *c };
    let gen = generation(GEN_THREADS);
    if g != 0
        && c.g0 == g
        && c.pid_tgid == pid_tgid
        && c.gen == gen
        && c.check == ThreadCache::sum(c.pid_tgid, gen, g, c.m, c.m_id)
    {
        c
    } else {
        ThreadCache::NONE
    }
}

/// Makes `g0` this CPU's known thread (`pid_tgid`, on M `m` with id `m_id`) in the current
/// generation.
#[inline(always)]
pub(crate) fn remember_thread(pid_tgid: u64, g0: u64, m: u64, m_id: u64) {
    if let Some(c) = CUR_THREAD.get_ptr_mut(0) {
        let gen = generation(GEN_THREADS);
        // SAFETY: this CPU's slot from the lookup, valid for the program run; every field is
        // rewritten, `check` last.
        unsafe {
            *c = ThreadCache {
                pid_tgid,
                gen,
                g0,
                m,
                m_id,
                check: ThreadCache::sum(pid_tgid, gen, g0, m, m_id),
            }
        };
    }
}

#[inline(always)]
pub(crate) fn generation(which: u32) -> u64 {
    // SAFETY: array element pointers stay valid for the program run; a racing increment at
    // worst yields the old value, which only costs a miss later.
    GENERATION
        .get(which)
        .map_or(0, |v| unsafe { core::ptr::read_volatile(v) })
}

#[inline(always)]
pub(crate) fn bump_generation(which: u32) {
    if let Some(p) = GENERATION.get_ptr_mut(which) {
        // SAFETY: the pointer comes from the lookup. Not atomic: two CPUs racing here may both
        // store the same new value, which still moves the generation, all that is needed.
        unsafe { core::ptr::write_volatile(p, core::ptr::read_volatile(p).wrapping_add(1)) };
    }
}

#[inline(always)]
fn goid_slot(g: u64) -> u32 {
    // g structs are a few hundred bytes apart: skip the low bits that barely vary.
    ((g >> 6) ^ (g >> 18)) as u32 & (GOID_SLOTS - 1)
}

#[inline(always)]
fn goid_check(g: u64, goid: u64) -> u64 {
    g ^ goid.rotate_left(32) ^ 0x9e37_79b9_7f4a_7c15
}

#[inline(always)]
pub(crate) fn remember_goid(g: u64, goid: u64) {
    if g == 0 {
        return;
    }
    if let Some(p) = GOIDS.get_ptr_mut(goid_slot(g)) {
        // SAFETY: the pointer comes from the lookup and stays valid for the program run; a
        // racing writer at worst leaves a slot whose check fails.
        unsafe {
            *p = GoidSlot {
                g,
                goid,
                check: goid_check(g, goid),
            }
        };
    }
}

#[inline(always)]
pub(crate) fn forget_goid(g: u64) {
    if let Some(p) = GOIDS.get_ptr_mut(goid_slot(g)) {
        // SAFETY: as in `remember_goid`.
        unsafe {
            if (*p).g == g {
                (*p).check = 0;
            }
        }
    }
}

/// g.goid, from the cache when it knows g, else read (and remembered).
#[inline(always)]
pub(crate) fn goid_of(g: u64, o: &Offsets) -> u64 {
    if g == 0 {
        return 0;
    }
    if let Some(p) = GOIDS.get_ptr(goid_slot(g)) {
        // SAFETY: as in `remember_goid`.
        let slot = unsafe { *p };
        if slot.g == g && slot.check == goid_check(g, slot.goid) {
            return slot.goid;
        }
    }
    match read::<u64>(g, o.g_goid) {
        Some(goid) => {
            remember_goid(g, goid);
            goid
        }
        None => 0,
    }
}

/// p.id, from this CPU's cache when it holds `p` in the current generation.
#[inline(always)]
pub(crate) fn p_id(p: u64, o: &Offsets) -> i32 {
    let gen = generation(GEN_PS);
    let cached = CUR_P.get_ptr_mut(0);
    if let Some(c) = cached {
        // SAFETY: this CPU's slot from the lookup, valid for the program run.
        let c = unsafe { &*c };
        if c.p == p && c.gen == gen && c.check == (gen ^ p ^ c.id) {
            return c.id as u32 as i32;
        }
    }
    match read::<i32>(p, o.p_id) {
        Some(id) => {
            if let Some(c) = cached {
                let id = id as u32 as u64;
                // SAFETY: as above; every field is rewritten, `check` last.
                unsafe {
                    *c = PCache {
                        gen,
                        p,
                        id,
                        check: gen ^ p ^ id,
                    }
                };
            }
            id
        }
        None => -1,
    }
}
