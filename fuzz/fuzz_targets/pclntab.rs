//! `.gopclntab` contents: header checks and the function table walk.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    std::hint::black_box(gmp_trace_fuzz::binary::fuzz::pclntab(data));
});
