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

/// Framed packets are gathered here and written out in chunks of about this size: one write
/// per packet costs more than encoding it (the output is often a `BufWriter` behind a `dyn`).
const CHUNK: usize = 1 << 16;

pub struct Emitter<W: Write> {
    /// Always there until `finish` hands it back (an Option so that `Drop` can write the rest).
    out: Option<W>,
    seq: Sequence,
    /// The track-event packet, reused for every event (and never moved: it is large), so that
    /// its flow id vectors keep their capacity: an event without string args allocates nothing.
    event: TracePacket,
    /// Emptied annotation vectors, handed out again by `args`.
    spare_args: Vec<DebugAnnotation>,
    /// Interned event names for the fixed vocabulary ("Running", "go", ...).
    names: Vocabulary,
    annotation_names: Vocabulary,
    next_name_iid: u64,
    next_annotation_iid: u64,
    pub packets: u64,
    pub bytes: u64,
}

/// The packet sequence's state, apart from the packet being filled in.
struct Sequence {
    /// Framed packets not yet handed to the output (see [`CHUNK`]).
    buf: Vec<u8>,
    started: bool,
    /// Entries interned since the last packet: they ride on the next packet, which is the one
    /// that first uses them.
    pending: InternedData,
}

impl Sequence {
    /// Frames `p` into the buffer. The first packet declares the incremental state cleared;
    /// every one says it needs that state (interned names), as the trace processor expects.
    /// Returns the framed size.
    fn frame(&mut self, p: &mut TracePacket) -> usize {
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
        // Encoded into a slice of the exact size rather than pushed onto the Vec, whose every
        // byte of every varint reloads and grow-checks the length (a few percent faster).
        let len = p.encoded_len();
        let n = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        let start = self.buf.len();
        self.buf.resize(start + n, 0);
        let mut slot = &mut self.buf[start..];
        slot[0] = 0x0a; // Trace.packet, length-delimited
        slot = &mut slot[1..];
        prost::encoding::encode_varint(len as u64, &mut slot);
        p.encode_raw(&mut slot);
        debug_assert!(slot.is_empty(), "encoded_len and encode_raw disagree");
        // Interned data rides on one packet only (the reused event packet must not repeat it).
        p.interned_data = None;
        n
    }
}

impl<W: Write> Emitter<W> {
    pub fn new(out: W) -> Emitter<W> {
        Emitter {
            out: Some(out),
            seq: Sequence {
                buf: Vec::with_capacity(CHUNK + 1024),
                started: false,
                pending: InternedData::default(),
            },
            event: TracePacket {
                track_event: Some(TrackEvent::default()),
                ..TracePacket::default()
            },
            spare_args: Vec::new(),
            names: Vocabulary::default(),
            annotation_names: Vocabulary::default(),
            next_name_iid: 1,
            next_annotation_iid: 1,
            packets: 0,
            bytes: 0,
        }
    }

    /// Writes one packet on the sequence.
    pub fn packet(&mut self, mut p: TracePacket) -> io::Result<()> {
        let n = self.seq.frame(&mut p);
        self.framed(n)
    }

    /// Counts a framed packet; writes the buffer out once it holds a chunk.
    fn framed(&mut self, n: usize) -> io::Result<()> {
        self.packets += 1;
        self.bytes += n as u64;
        if self.seq.buf.len() >= CHUNK {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Hands the buffer to the output; emptied even on failure (never written twice).
    fn write_buffered(&mut self) -> io::Result<()> {
        let r = match &mut self.out {
            Some(out) if !self.seq.buf.is_empty() => out.write_all(&self.seq.buf),
            _ => Ok(()),
        };
        self.seq.buf.clear();
        r
    }

    /// The iid of a name from the fixed vocabulary, interning it on first use.
    pub fn name(&mut self, s: &'static str) -> u64 {
        if let Some(iid) = self.names.get(s) {
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
        self.seq.pending.event_names.push(InternedString {
            iid: Some(iid),
            name: Some(s),
        });
        iid
    }

    fn annotation_name(&mut self, s: &'static str) -> u64 {
        if let Some(iid) = self.annotation_names.get(s) {
            return iid;
        }
        let iid = self.next_annotation_iid;
        self.next_annotation_iid += 1;
        self.seq
            .pending
            .debug_annotation_names
            .push(InternedString {
                iid: Some(iid),
                name: Some(s.to_owned()),
            });
        self.annotation_names.insert(s, iid);
        iid
    }

    /// Debug annotations (they land in `args` as `debug.<name>`). Their names are interned
    /// here, so they ride on the next packet even if that is not the one carrying these args.
    pub fn args(&mut self, args: &[(&'static str, Arg)]) -> Vec<DebugAnnotation> {
        let mut out = std::mem::take(&mut self.spare_args);
        out.extend(args.iter().map(|(k, v)| {
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
        }));
        out
    }

    pub fn track(&mut self, d: TrackDescriptor) -> io::Result<()> {
        self.packet(TracePacket {
            track_descriptor: Some(d),
            ..TracePacket::default()
        })
    }

    /// Writes a track event through the reused packet: only the fields an event kind sets
    /// differ between packets.
    #[expect(
        clippy::too_many_arguments,
        reason = "one field each; the public begin/end/instant/counter are the readable API"
    )]
    fn event(
        &mut self,
        ts: u64,
        kind: i32,
        track: u64,
        name_iid: Option<u64>,
        counter_value: Option<i64>,
        args: Vec<DebugAnnotation>,
        flows: &[u64],
        terminating_flows: &[u64],
    ) -> io::Result<()> {
        let p = &mut self.event;
        p.timestamp = Some(ts);
        let ev = ev_of(p);
        ev.r#type = Some(kind);
        ev.track_uuid = Some(track);
        ev.name_iid = name_iid;
        ev.counter_value = counter_value;
        ev.debug_annotations = args;
        ev.flow_ids.clear();
        ev.flow_ids.extend_from_slice(flows);
        ev.terminating_flow_ids.clear();
        ev.terminating_flow_ids.extend_from_slice(terminating_flows);
        let r = self.seq.frame(p);
        let mut args = std::mem::take(&mut ev_of(p).debug_annotations);
        if args.capacity() > self.spare_args.capacity() {
            args.clear();
            self.spare_args = args;
        }
        self.framed(r)
    }

    pub fn begin(
        &mut self,
        ts: u64,
        track: u64,
        name_iid: u64,
        args: Vec<DebugAnnotation>,
        terminating_flows: &[u64],
    ) -> io::Result<()> {
        self.event(
            ts,
            TYPE_SLICE_BEGIN,
            track,
            Some(name_iid),
            None,
            args,
            &[],
            terminating_flows,
        )
    }

    pub fn end(&mut self, ts: u64, track: u64) -> io::Result<()> {
        self.event(ts, TYPE_SLICE_END, track, None, None, Vec::new(), &[], &[])
    }

    pub fn instant(
        &mut self,
        ts: u64,
        track: u64,
        name_iid: u64,
        args: Vec<DebugAnnotation>,
        flows: &[u64],
        terminating_flows: &[u64],
    ) -> io::Result<()> {
        self.event(
            ts,
            TYPE_INSTANT,
            track,
            Some(name_iid),
            None,
            args,
            flows,
            terminating_flows,
        )
    }

    pub fn counter(&mut self, ts: u64, track: u64, value: i64) -> io::Result<()> {
        self.event(
            ts,
            TYPE_COUNTER,
            track,
            None,
            Some(value),
            Vec::new(),
            &[],
            &[],
        )
    }

    /// Writes out the buffered packets and flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.write_buffered()?;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }

    /// Size of the fixed-vocabulary intern tables (tests check they stay small).
    #[cfg(test)]
    pub fn names_len(&self) -> usize {
        self.names.len() + self.annotation_names.len()
    }

    /// Writes what is buffered and hands back the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush()?;
        self.out
            .take()
            .ok_or_else(|| io::Error::other("the trace output was handed back already"))
    }
}

/// Like a `BufWriter`, packets still buffered go out when the emitter is dropped without
/// `finish` (a session ending in an error keeps the trace it had written).
impl<W: Write> Drop for Emitter<W> {
    fn drop(&mut self) {
        let _ = self.write_buffered();
    }
}

/// iids of the fixed vocabulary. Looked up several times per event: by the literal's address
/// first (a hash of two words, the text never read), by the text when that literal is new (the same
/// name written at two places in the code may be two literals).
#[derive(Default)]
struct Vocabulary {
    by_text: FastMap<&'static str, u64>,
    by_addr: FastMap<(usize, usize), u64>,
}

impl Vocabulary {
    fn get(&mut self, s: &'static str) -> Option<u64> {
        let addr = (s.as_ptr() as usize, s.len());
        if let Some(&iid) = self.by_addr.get(&addr) {
            return Some(iid);
        }
        let iid = *self.by_text.get(s)?;
        self.by_addr.insert(addr, iid);
        Some(iid)
    }

    fn insert(&mut self, s: &'static str, iid: u64) {
        self.by_text.insert(s, iid);
        self.by_addr.insert((s.as_ptr() as usize, s.len()), iid);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_text.len()
    }
}

/// The track event of the reused event packet (always there).
fn ev_of(p: &mut TracePacket) -> &mut TrackEvent {
    p.track_event.get_or_insert_with(TrackEvent::default)
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
        em.begin(5, 9, iid, Vec::new(), &[]).unwrap();
        em.end(6, 9).unwrap();
        let bytes = em.finish().unwrap();
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
