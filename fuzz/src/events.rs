//! The event path as the daemon runs it, from raw bytes: 64-byte records decoded (and encoded
//! back, which must give the same bytes), the derived events added (`source::Derive`), and
//! everything applied to a model, which must not panic whatever the sequence.
use gmp_trace_common::{Event, EVENT_SIZE};

use crate::model::Model;
use crate::source::{Derive, Sink};

/// The daemon's path: derive, then apply (as `Pipeline::event` and compare's sink do).
pub struct ModelSink {
    pub model: Model,
    derive: Derive,
}

impl ModelSink {
    pub fn new(pid: u32, go: (u32, u32)) -> ModelSink {
        ModelSink {
            model: Model::for_target(pid, go),
            derive: Derive::default(),
        }
    }
}

impl Sink for ModelSink {
    fn event(&mut self, e: &Event) {
        if let Some(d) = self.derive.before(e) {
            self.model.apply(&d);
        }
        self.model.apply(e);
    }
    fn malformed(&mut self, _len: usize) {}
}

/// Raw records: each 64 bytes decoded exactly as the ring buffer's are.
pub fn raw(data: &[u8]) -> u64 {
    let mut sink = ModelSink::new(1, (1, 27));
    for chunk in data.chunks(EVENT_SIZE) {
        match Event::from_bytes(chunk) {
            Some(e) => {
                assert_eq!(&e.to_bytes()[..], chunk, "decode/encode round trip");
                sink.event(&e);
            }
            None => assert!(chunk.len() < EVENT_SIZE, "a whole record refused"),
        }
    }
    sink.model.events
}

/// Events shaped from a few bytes each so the model's state machine is reached (random
/// 64-byte records are almost all unknown kinds and unrelated ids): 8 bytes per event pick
/// the kind, small ids (tid, goid, P, M), status values and arguments, over a target whose
/// Go version the first byte picks.
pub fn shaped(data: &[u8]) -> u64 {
    let Some((&first, rest)) = data.split_first() else {
        return 0;
    };
    let go = [(1, 19), (1, 21), (1, 24), (1, 26), (1, 27)][first as usize % 5];
    let mut sink = ModelSink::new(100, go);
    let mut ts = 1_000u64;
    for b in rest.chunks_exact(8) {
        ts += u64::from(b[7]) * 97;
        let small = |x: u8, n: u8| u64::from(x % n);
        let e = Event {
            ts,
            kind: u32::from(b[0] % 30),
            tid: 100 + u32::from(b[1] % 6),
            pid: 100,
            p: i32::from(b[2] % 6) - 1,
            goid: small(b[3], 12),
            m: i64::from(b[4] % 8) - 1,
            arg0: if b[6] & 0x80 != 0 { u64::from(b[5]) << 24 } else { small(b[5], 10) },
            arg1: small(b[6], 10),
            arg2: u64::from(b[5] ^ b[6]) << 8 | small(b[3], 12),
        };
        sink.event(&e);
    }
    sink.model.events
}
