//! Aggregate mode (`--aggregate`): instead of streaming them, count the frequent events per
//! kind, status change and wait reason, and build the Runnable -> Running latency histogram, in
//! per-CPU maps the daemon reads at the end.
use aya_ebpf::maps::PerCpuArray;
use gmp_trace_common::{agg, gstatus, Event, EventKind};

use crate::maps::{AGG_KINDS, AGG_LATENCY, AGG_STATUS, AGG_WAIT, RUNNABLE_SINCE};

#[inline(always)]
fn add(map: &PerCpuArray<u64>, idx: u32, v: u64) {
    if let Some(p) = map.get_ptr_mut(idx) {
        // SAFETY: this CPU's slot from the map lookup; per-CPU values are not shared.
        unsafe { *p += v };
    }
}

/// Aggregate mode: count the event, and for scheduling latency remember when a goroutine
/// became runnable (created, or casgstatus to _Grunnable) until casgstatus(_Grunnable ->
/// _Grunning), which execute does when it runs it: the execute probe itself is not needed.
#[inline(always)]
pub(crate) fn aggregate(e: &Event) {
    add(&AGG_KINDS, e.kind, 1);
    if e.kind == EventKind::GoStatus as u32 {
        let (old, new) = ((e.arg0 & 0xf) as u32, (e.arg1 & 0xf) as u32);
        add(&AGG_STATUS, (old << 4) | new, 1);
        if new == gstatus::WAITING as u32 {
            add(&AGG_WAIT, (e.arg2 & 0xff) as u32, 1);
        } else if new == gstatus::RUNNABLE as u32 {
            let _ = RUNNABLE_SINCE.insert(&e.goid, &e.ts, 0);
        } else if new == gstatus::RUNNING as u32 && old == gstatus::RUNNABLE as u32 {
            ran(e);
        }
    } else if e.kind == EventKind::GoCreate as u32 {
        let _ = RUNNABLE_SINCE.insert(&e.goid, &e.ts, 0);
    }
}

/// A runnable goroutine starts running: one latency sample since it became runnable.
#[inline(always)]
fn ran(e: &Event) {
    let Some(since) = RUNNABLE_SINCE.get_ptr(&e.goid) else {
        return;
    };
    // SAFETY: the pointer comes from the lookup; a concurrent delete at worst yields a stale
    // timestamp (the element memory stays valid for this program run).
    let d = e.ts.saturating_sub(unsafe { *since });
    let _ = RUNNABLE_SINCE.remove(&e.goid);
    let b = agg::lat_bucket(d);
    add(
        &AGG_LATENCY,
        if b < agg::LAT_BUCKETS {
            b as u32
        } else {
            agg::LAT_BUCKETS as u32 - 1
        },
        1,
    );
    add(&AGG_LATENCY, agg::LAT_SUM, d);
    if let Some(p) = AGG_LATENCY.get_ptr_mut(agg::LAT_MAX) {
        // SAFETY: as in `add`.
        unsafe {
            if d > *p {
                *p = d
            }
        };
    }
}
