//! Raw 64-byte event records, decoded as the ring buffer's are and applied to a model.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(gmp_trace_fuzz::events::raw(data));
});
