//! Emission: an event goes to the ring buffer, or to the aggregate maps in aggregate mode for
//! the kinds that are only counted; and the wakeup policy that keeps the reader from being
//! woken (a context switch) per record.
use gmp_trace_common::{agg, counter, Event};

use crate::{
    aggregate::aggregate,
    maps::{bump, image_gone, AGGREGATE, EMITTED, EVENTS},
};

/// Wake the reader only once this much is waiting (or on its own timer): a wakeup per event
/// costs a context switch per event on the traced program's CPUs.
const WAKEUP_BYTES: u64 = 256 * 1024;
const BPF_RB_NO_WAKEUP: u64 = 1;
const BPF_RB_FORCE_WAKEUP: u64 = 2;
const BPF_RB_AVAIL_DATA: u64 = 0;

#[inline(always)]
pub(crate) fn emit(e: &Event) {
    emit_checked(e);
}

/// [`emit`], saying whether the event went out (false: dropped, or not streamed).
#[inline(always)]
pub(crate) fn emit_checked(e: &Event) -> bool {
    if image_gone() {
        return false;
    }
    // SAFETY: a plain global in .rodata; volatile for the same reason as OFFSETS.
    if unsafe { core::ptr::read_volatile(&AGGREGATE) } != 0 && !agg::streamed(e.kind) {
        aggregate(e);
        return false;
    }
    match EVENTS.reserve::<Event>(0) {
        Some(mut slot) => {
            // Word by word: a struct copy turned constant zero fields into a call to a memset
            // subprogram.
            let src = (e as *const Event).cast::<u64>();
            let dst = slot.as_mut_ptr().cast::<u64>();
            for i in 0..EVENT_WORDS {
                // SAFETY: both point at an Event (64 bytes, 8-aligned: EVENT_WORDS words); the
                // reserved slot is ours until submit.
                unsafe { core::ptr::write_volatile(dst.add(i), src.add(i).read()) };
            }
            slot.submit(wake_flags());
            true
        }
        None => {
            bump(counter::RINGBUF_FULL);
            false
        }
    }
}

const EVENT_WORDS: usize = core::mem::size_of::<Event>() / 8;
const _: () = assert!(core::mem::size_of::<Event>() == EVENT_WORDS * 8);
const _: () = assert!(core::mem::align_of::<Event>() == 8);

/// Asking the ring how much is waiting reads the reader's position, a cache line the reader
/// keeps writing: ~65 ns a record. Asked every 16 records per CPU instead, the reader is still
/// woken within 16 records of [`WAKEUP_BYTES`], and its timer drains the rest.
pub(crate) const QUERY_EVERY: u64 = 16;

#[inline(always)]
fn wake_flags() -> u64 {
    if let Some(n) = EMITTED.get_ptr_mut(0) {
        // SAFETY: this CPU's slot from the lookup; per-CPU values are not shared.
        let k = unsafe {
            let k = *n;
            *n = k.wrapping_add(1);
            k
        };
        if k % QUERY_EVERY != 0 {
            return BPF_RB_NO_WAKEUP;
        }
    }
    if EVENTS.query(BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}
