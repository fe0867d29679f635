//! Packet emission: framing, the one trusted packet sequence with its interning tables, and
//! stable track UUIDs. Knows nothing about Go; the layout in `mod.rs` decides what to emit.
//!
//! Every packet goes out as a one-packet `Trace` message (0x0A, varint length, packet), so the
//! output is a valid trace at every packet boundary: a file cut short, or a pipe read while the
//! target still runs, loads up to the last whole packet.
use std::io::{self, Write};

use prost::Message as _;

use super::proto::{
    DebugAnnotation, InternedData, InternedString, TracePacket, TrackDescriptor, TrackEvent,
    SEQ_INCREMENTAL_STATE_CLEARED, SEQ_NEEDS_INCREMENTAL_STATE, TYPE_COUNTER, TYPE_INSTANT,
    TYPE_SLICE_BEGIN, TYPE_SLICE_END,
};
use super::FastMap;

/// The writer's only packet sequence. Interned names are scoped to it.
const SEQUENCE_ID: u32 = 1;

/// Seeds track UUIDs and flow ids so two traces (or this trace merged with another producer's)
/// do not collide by accident.
const SEED: u64 = 0x676d_702d_7472_6163; // "gmp-trac"

/// splitmix64's finaliser: a cheap, well-mixed, platform-independent 64-bit hash step.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What a track UUID is derived from, besides the pid.
#[derive(Clone, Copy, Debug)]
pub enum TrackKind {
    Process = 1,
    Thread = 2,
    Proc = 3,
    Goroutine = 4,
    /// Fixed tracks (groups, lanes, counters), `id` says which.
    Fixed = 5,
}

/// A stable UUID: the same (pid, kind, id) gives the same track in every run; never 0 (the
/// implicit global track).
pub fn track_uuid(pid: u32, kind: TrackKind, id: u64) -> u64 {
    let h = mix(mix(mix(SEED ^ u64::from(pid)) ^ kind as u64) ^ id);
    h.max(1)
}

/// Trace-global flow ids: a per-pid base plus a counter.
pub fn flow_base(pid: u32) -> u64 {
    mix(SEED ^ 0xf10 ^ (u64::from(pid) << 32))
}

pub struct Emitter<W: Write> {
    out: W,
    /// The packet being written, and its frame header.
    body: Vec<u8>,
    buf: Vec<u8>,
    started: bool,
    /// Interned event names for the fixed vocabulary ("Running", "go", ...).
    names: FastMap<&'static str, u64>,
    annotation_names: FastMap<&'static str, u64>,
    next_name_iid: u64,
    next_annotation_iid: u64,
    /// Entries interned since the last packet: they ride on the next packet, which is the one
    /// that first uses them.
    pending: InternedData,
    pub packets: u64,
    pub bytes: u64,
}

impl<W: Write> Emitter<W> {
    pub fn new(out: W) -> Emitter<W> {
        Emitter {
            out,
            body: Vec::with_capacity(256),
            buf: Vec::with_capacity(16),
            started: false,
            names: FastMap::default(),
            annotation_names: FastMap::default(),
            next_name_iid: 1,
            next_annotation_iid: 1,
            pending: InternedData::default(),
            packets: 0,
            bytes: 0,
        }
    }

    /// Writes one packet on the sequence. The first one declares the incremental state cleared;
    /// every one says it needs that state (interned names), as the trace processor expects.
    pub fn packet(&mut self, mut p: TracePacket) -> io::Result<()> {
        p.trusted_packet_sequence_id = Some(SEQUENCE_ID);
        p.sequence_flags = Some(if self.started {
            SEQ_NEEDS_INCREMENTAL_STATE
        } else {
            p.first_packet_on_sequence = Some(true);
            SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE
        });
        self.started = true;
        if !self.pending.event_names.is_empty() || !self.pending.debug_annotation_names.is_empty() {
            p.interned_data = Some(std::mem::take(&mut self.pending));
        }
        self.body.clear();
        // Body first (one length computation), then the frame header in front of it.
        p.encode(&mut self.body)
            .map_err(|e| io::Error::other(format!("encoding a trace packet: {e}")))?;
        self.buf.clear();
        self.buf.push(0x0a); // Trace.packet, length-delimited
        prost::encoding::encode_varint(self.body.len() as u64, &mut self.buf);
        self.out.write_all(&self.buf)?;
        self.out.write_all(&self.body)?;
        self.packets += 1;
        self.bytes += (self.buf.len() + self.body.len()) as u64;
        Ok(())
    }

    /// The iid of a name from the fixed vocabulary, interning it on first use.
    pub fn name(&mut self, s: &'static str) -> u64 {
        if let Some(&iid) = self.names.get(s) {
            return iid;
        }
        let iid = self.intern_name(s.to_owned());
        self.names.insert(s, iid);
        iid
    }

    /// A fresh iid for a name the caller keeps track of (per-goroutine names: the caller holds
    /// the iid as long as the goroutine lives, so nothing here grows with the number of Gs).
    pub fn intern_name(&mut self, s: String) -> u64 {
        let iid = self.next_name_iid;
        self.next_name_iid += 1;
        self.pending.event_names.push(InternedString {
            iid: Some(iid),
            name: Some(s),
        });
        iid
    }

    fn annotation_name(&mut self, s: &'static str) -> u64 {
        if let Some(&iid) = self.annotation_names.get(s) {
            return iid;
        }
        let iid = self.next_annotation_iid;
        self.next_annotation_iid += 1;
        self.pending.debug_annotation_names.push(InternedString {
            iid: Some(iid),
            name: Some(s.to_owned()),
        });
        self.annotation_names.insert(s, iid);
        iid
    }

    /// Debug annotations (they land in `args` as `debug.<name>`).
    pub fn args(&mut self, args: &[(&'static str, Arg)]) -> Vec<DebugAnnotation> {
        args.iter()
            .map(|(k, v)| {
                let mut a = DebugAnnotation {
                    name_iid: Some(self.annotation_name(k)),
                    ..DebugAnnotation::default()
                };
                match v {
                    Arg::Int(i) => a.int_value = Some(*i),
                    Arg::Uint(u) => a.uint_value = Some(*u),
                    Arg::Str(s) => a.string_value = Some(s.clone()),
                }
                a
            })
            .collect()
    }

    pub fn track(&mut self, d: TrackDescriptor) -> io::Result<()> {
        self.packet(TracePacket {
            track_descriptor: Some(d),
            ..TracePacket::default()
        })
    }

    fn event(&mut self, ts: u64, ev: TrackEvent) -> io::Result<()> {
        self.packet(TracePacket {
            timestamp: Some(ts),
            track_event: Some(ev),
            ..TracePacket::default()
        })
    }

    pub fn begin(
        &mut self,
        ts: u64,
        track: u64,
        name_iid: u64,
        args: Vec<DebugAnnotation>,
        terminating_flows: Vec<u64>,
    ) -> io::Result<()> {
        self.event(
            ts,
            TrackEvent {
                r#type: Some(TYPE_SLICE_BEGIN),
                track_uuid: Some(track),
                name_iid: Some(name_iid),
                debug_annotations: args,
                terminating_flow_ids: terminating_flows,
                ..TrackEvent::default()
            },
        )
    }

    pub fn end(&mut self, ts: u64, track: u64) -> io::Result<()> {
        self.event(
            ts,
            TrackEvent {
                r#type: Some(TYPE_SLICE_END),
                track_uuid: Some(track),
                ..TrackEvent::default()
            },
        )
    }

    pub fn instant(
        &mut self,
        ts: u64,
        track: u64,
        name_iid: u64,
        args: Vec<DebugAnnotation>,
        flows: Vec<u64>,
        terminating_flows: Vec<u64>,
    ) -> io::Result<()> {
        self.event(
            ts,
            TrackEvent {
                r#type: Some(TYPE_INSTANT),
                track_uuid: Some(track),
                name_iid: Some(name_iid),
                debug_annotations: args,
                flow_ids: flows,
                terminating_flow_ids: terminating_flows,
                ..TrackEvent::default()
            },
        )
    }

    pub fn counter(&mut self, ts: u64, track: u64, value: i64) -> io::Result<()> {
        self.event(
            ts,
            TrackEvent {
                r#type: Some(TYPE_COUNTER),
                track_uuid: Some(track),
                counter_value: Some(value),
                ..TrackEvent::default()
            },
        )
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }

    /// Size of the fixed-vocabulary intern tables (tests check they stay small).
    #[cfg(test)]
    pub fn names_len(&self) -> usize {
        self.names.len() + self.annotation_names.len()
    }

    pub fn into_inner(self) -> W {
        self.out
    }
}

/// A debug annotation value.
pub enum Arg {
    Int(i64),
    Uint(u64),
    Str(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    const PINNED: u64 = 6_360_201_204_807_905_919;

    #[test]
    fn uuids_are_stable_and_distinct() {
        let a = track_uuid(10, TrackKind::Goroutine, 7);
        assert_eq!(a, track_uuid(10, TrackKind::Goroutine, 7));
        assert_ne!(a, track_uuid(10, TrackKind::Thread, 7));
        assert_ne!(a, track_uuid(11, TrackKind::Goroutine, 7));
        assert_ne!(a, track_uuid(10, TrackKind::Goroutine, 8));
        // Pinned: a change here changes every trace's track ids between versions.
        assert_eq!(track_uuid(1, TrackKind::Process, 0), PINNED);
    }

    #[test]
    fn packets_are_framed_as_one_packet_traces() {
        let mut em = Emitter::new(Vec::new());
        let iid = em.name("Running");
        assert_eq!(em.name("Running"), iid);
        em.begin(5, 9, iid, Vec::new(), Vec::new()).unwrap();
        em.end(6, 9).unwrap();
        let bytes = em.into_inner();
        // Two frames, each 0x0A + length + a packet that decodes.
        let mut rest = &bytes[..];
        let mut flags = Vec::new();
        while !rest.is_empty() {
            assert_eq!(rest[0], 0x0a);
            rest = &rest[1..];
            let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
            let p = TracePacket::decode(&rest[..len]).unwrap();
            flags.push((p.sequence_flags, p.interned_data.is_some()));
            rest = &rest[len..];
        }
        assert_eq!(flags, vec![(Some(3), true), (Some(2), false)]);
    }
}
