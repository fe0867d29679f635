//! Whole recordings (header, blocks or bare events, footer), replayed into a model through both
//! readers, which must agree; damage must be reported, never replayed.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut sink = gmp_trace_fuzz::events::ModelSink::new(1, (1, 27));
    if let Ok((_, end)) = gmp_trace_fuzz::source::recording::replay_bytes(data, &mut sink) {
        std::hint::black_box(end.events + sink.model.events);
    }
});
