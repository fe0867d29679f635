//! Event sequences shaped to reach the model's state machine (small ids, real kinds): the
//! model must take any of them without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(gmp_trace_fuzz::events::shaped(data));
});
