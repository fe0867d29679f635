//! A hand-written encoder for the packets written once or more per event (a TrackEvent with a
//! timestamp on the trusted sequence), which is where a replay spends its time: prost recomputes
//! nested lengths at every level and goes through generic field code. The bytes are exactly
//! prost's (fields in tag order, proto2 unpacked flow ids); the tests check that against prost
//! itself. Every other packet (descriptors, the clock snapshot, the first packet) goes to prost.
use prost::Message as _;

use super::proto::{DebugAnnotation, TracePacket, TrackEvent};

const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

fn varint_len(v: u64) -> usize {
    // 1 byte per started group of 7 bits; 0 takes one byte.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Writes into a region sized beforehand: plain stores with a bounds check, no growth checks and
/// no memmove calls for a few bytes at a time.
struct Out<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl Out<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.pos] = b;
        self.pos += 1;
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.byte((v as u8) | 0x80);
            v >>= 7;
        }
        self.byte(v as u8);
    }

    fn key(&mut self, tag: u32, wire_type: u32) {
        self.varint(u64::from((tag << 3) | wire_type));
    }

    fn opt_varint(&mut self, tag: u32, v: Option<u64>) {
        if let Some(v) = v {
            self.key(tag, VARINT);
            self.varint(v);
        }
    }

    fn bytes(&mut self, b: &[u8]) {
        self.buf[self.pos..self.pos + b.len()].copy_from_slice(b);
        self.pos += b.len();
    }
}

fn key_len(tag: u32) -> usize {
    varint_len(u64::from(tag) << 3)
}

fn opt_varint_len(tag: u32, v: Option<u64>) -> usize {
    v.map_or(0, |v| key_len(tag) + varint_len(v))
}

fn annotation_len(a: &DebugAnnotation) -> usize {
    opt_varint_len(1, a.name_iid)
        + opt_varint_len(3, a.uint_value)
        + opt_varint_len(4, a.int_value.map(|i| i as u64))
        + a.string_value
            .as_ref()
            .map_or(0, |s| key_len(6) + varint_len(s.len() as u64) + s.len())
}

fn event_len(ev: &TrackEvent) -> usize {
    let anns: usize = ev
        .debug_annotations
        .iter()
        .map(|a| {
            let l = annotation_len(a);
            key_len(4) + varint_len(l as u64) + l
        })
        .sum();
    anns + opt_varint_len(9, ev.r#type.map(|t| t as i64 as u64))
        + opt_varint_len(10, ev.name_iid)
        + opt_varint_len(11, ev.track_uuid)
        + opt_varint_len(30, ev.counter_value.map(|v| v as u64))
        + (key_len(47) + 8) * ev.flow_ids.len()
        + (key_len(48) + 8) * ev.terminating_flow_ids.len()
}

fn put_event(ev: &TrackEvent, out: &mut Out) {
    for a in &ev.debug_annotations {
        out.key(4, LEN);
        out.varint(annotation_len(a) as u64);
        out.opt_varint(1, a.name_iid);
        out.opt_varint(3, a.uint_value);
        out.opt_varint(4, a.int_value.map(|i| i as u64));
        if let Some(s) = &a.string_value {
            out.key(6, LEN);
            out.varint(s.len() as u64);
            out.bytes(s.as_bytes());
        }
    }
    out.opt_varint(9, ev.r#type.map(|t| t as i64 as u64));
    out.opt_varint(10, ev.name_iid);
    out.opt_varint(11, ev.track_uuid);
    out.opt_varint(30, ev.counter_value.map(|v| v as u64));
    for f in &ev.flow_ids {
        out.key(47, FIXED64);
        out.bytes(&f.to_le_bytes());
    }
    for f in &ev.terminating_flow_ids {
        out.key(48, FIXED64);
        out.bytes(&f.to_le_bytes());
    }
}

/// Appends `p` framed as a one-packet `Trace` (0x0A, length, the packet exactly as prost
/// encodes it) and returns true, if it is an event packet (timestamp, track event, sequence id
/// and flags, maybe interned data); returns false, writing nothing, for any other packet.
pub fn encode_framed_event_packet(p: &TracePacket, out: &mut Vec<u8>) -> bool {
    let Some(ev) = &p.track_event else {
        return false;
    };
    if p.clock_snapshot.is_some()
        || p.timestamp_clock_id.is_some()
        || p.trace_packet_defaults.is_some()
        || p.track_descriptor.is_some()
        || p.first_packet_on_sequence.is_some()
    {
        return false;
    }
    let ev_len = event_len(ev);
    let interned_len = p.interned_data.as_ref().map(|i| i.encoded_len());
    let seq = p.trusted_packet_sequence_id.map(u64::from);
    let flags = p.sequence_flags.map(u64::from);
    let len = opt_varint_len(8, p.timestamp)
        + opt_varint_len(10, seq)
        + key_len(11)
        + varint_len(ev_len as u64)
        + ev_len
        + interned_len.map_or(0, |l| key_len(12) + varint_len(l as u64) + l)
        + opt_varint_len(13, flags);
    let start = out.len();
    let framed = 1 + varint_len(len as u64) + len;
    out.resize(start + framed, 0);
    let mut o = Out {
        buf: &mut out[start..],
        pos: 0,
    };
    o.byte(0x0a); // Trace.packet, length-delimited
    o.varint(len as u64);
    // Tag order: 8 timestamp, 10 sequence id, 11 track event, 12 interned data, 13 flags.
    o.opt_varint(8, p.timestamp);
    o.opt_varint(10, seq);
    o.key(11, LEN);
    o.varint(ev_len as u64);
    put_event(ev, &mut o);
    if let (Some(i), Some(l)) = (&p.interned_data, interned_len) {
        o.key(12, LEN);
        o.varint(l as u64);
        let at = start + o.pos;
        let flags_len = opt_varint_len(13, flags);
        // prost writes the interned data (rare: once per new name) into the Vec itself.
        out.truncate(at);
        i.encode_raw(out);
        let mut tail = [0u8; 16];
        let mut t = Out {
            buf: &mut tail,
            pos: 0,
        };
        t.opt_varint(13, flags);
        out.extend_from_slice(&tail[..flags_len]);
        debug_assert_eq!(out.len(), start + framed);
        return true;
    }
    o.opt_varint(13, flags);
    debug_assert_eq!(o.pos, framed);
    true
}

#[cfg(test)]
mod tests {
    use super::super::proto::{InternedData, InternedString, TrackDescriptor};
    use super::*;

    /// A small deterministic generator (no dependency for one test).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        /// Values of every varint length, and some edge cases.
        fn value(&mut self) -> u64 {
            match self.next() % 6 {
                0 => 0,
                1 => u64::MAX,
                2 => self.next() >> (self.next() % 64),
                3 => 127 + (self.next() % 3),
                _ => self.next() % 300,
            }
        }
        fn opt(&mut self) -> Option<u64> {
            (!self.next().is_multiple_of(3)).then(|| self.value())
        }
    }

    #[test]
    fn same_bytes_as_prost() {
        let mut r = Rng(7);
        for i in 0..20_000 {
            let anns = (0..r.next() % 3)
                .map(|_| DebugAnnotation {
                    name_iid: r.opt(),
                    uint_value: r.opt(),
                    int_value: r.opt().map(|v| v as i64),
                    string_value: r
                        .next()
                        .is_multiple_of(4)
                        .then(|| "x".repeat((r.next() % 200) as usize)),
                })
                .collect();
            let ev = TrackEvent {
                r#type: r.opt().map(|v| v as i32),
                track_uuid: r.opt(),
                name_iid: r.opt(),
                counter_value: r.opt().map(|v| v as i64),
                debug_annotations: anns,
                flow_ids: (0..r.next() % 3).map(|_| r.value()).collect(),
                terminating_flow_ids: (0..r.next() % 3).map(|_| r.value()).collect(),
            };
            let p = TracePacket {
                timestamp: r.opt(),
                trusted_packet_sequence_id: r.opt().map(|v| v as u32),
                sequence_flags: r.opt().map(|v| v as u32),
                interned_data: r.next().is_multiple_of(5).then(|| InternedData {
                    event_names: vec![InternedString {
                        iid: Some(i),
                        name: Some(format!("G{i}")),
                    }],
                    debug_annotation_names: Vec::new(),
                }),
                track_event: Some(ev),
                ..TracePacket::default()
            };
            let mut ours = vec![0xee]; // appends after what is there
            assert!(encode_framed_event_packet(&p, &mut ours));
            let body = p.encode_to_vec();
            let mut want = vec![0xee, 0x0a];
            prost::encoding::encode_varint(body.len() as u64, &mut want);
            want.extend_from_slice(&body);
            assert_eq!(ours, want, "packet {i}: {p:?}");
        }
    }

    #[test]
    fn other_packets_go_to_prost() {
        let p = TracePacket {
            track_descriptor: Some(TrackDescriptor::default()),
            track_event: Some(TrackEvent::default()),
            ..TracePacket::default()
        };
        let mut out = Vec::new();
        assert!(!encode_framed_event_packet(&p, &mut out));
        assert!(out.is_empty());
        assert!(!encode_framed_event_packet(
            &TracePacket::default(),
            &mut out
        ));
    }
}
