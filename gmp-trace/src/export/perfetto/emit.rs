//! Packet emission: framing, the one trusted packet sequence and its interned names, and
//! stable track UUIDs. Knows nothing about Go; the layout in `mod.rs` decides what to emit.
//!
//! Every packet goes out as a one-packet `Trace` message (0x0A, varint length, packet), so the
//! output is a valid trace at every packet boundary: a file cut short, or a pipe read while the
//! target still runs, loads up to the last whole packet.
//!
//! Cost per event is the point (a busy program makes millions a second), prost doing all the
//! encoding: the last track event is held unframed so that the counter values of its time can
//! ride on it; timestamps are deltas on a sequence clock; the fields that repeat (sequence id
//! and flags, a track's uuid, an event type, a P slice's `m` and `tid` args) are encoded once
//! and copied; a track event's packet and the event's other fields are sized and written with
//! prost's field encoders, only the fields present (a slice end has none beyond the timestamp).
//!
//! Split by what a reader looks for: `emit/sequence.rs` frames packets on the sequence,
//! `emit/encoding.rs` holds the hand-written field encoding that makes a packet cheap, and
//! `emit/ids.rs` derives track UUIDs and flow ids; this file is the emitter that ties them
//! together (the held event, counters riding on it, the chunked output).
mod encoding;
mod ids;
mod sequence;

use std::io::{self, Write};

use super::proto::{
    Clock, ClockSnapshot, DebugAnnotation, InternedData, InternedString, TracePacket,
    TracePacketDefaults, TrackDescriptor, TrackEvent, CLOCK_MONOTONIC, CLOCK_SEQUENCE_FIRST,
    MAX_EXTRA_COUNTERS, TYPE_COUNTER, TYPE_INSTANT, TYPE_SLICE_BEGIN, TYPE_SLICE_END,
};
pub use encoding::{CounterTrack, EncodedArg, Track};
use encoding::{Field, Fields, MAX_ENCODED_ARGS};
pub use ids::{flow_base, track_uuid, Owner, TrackKind};
use sequence::{header, Sequence};

/// The writer's packet sequence when it writes the only one in its file. Interned names are
/// scoped to it; several writers sharing one file (one per traced process) each take their own.
pub const SEQUENCE_ID: u32 = 1;

/// Framed packets are gathered here and written out in chunks of about this size: one write
/// per packet costs more than encoding it (the output is often a `BufWriter` behind a `dyn`).
const CHUNK: usize = 1 << 16;

/// The sequence's own clock: MONOTONIC nanoseconds written as the delta from the sequence's
/// previous timestamp (1-3 bytes instead of 7). Defined, at 0 = MONOTONIC 0, before any other
/// clock snapshot: snapshots must not go back in time, and a replay's events are older than
/// the snapshot of the time the trace was written.
const DELTA_CLOCK: u32 = CLOCK_SEQUENCE_FIRST;

pub struct Emitter<W: Write> {
    /// Always there until `finish` hands it back (an Option so that `Drop` can write the rest).
    out: Option<W>,
    seq: Sequence,
    /// The packet of a track event and the event, reused for every event (and never moved:
    /// the event is large), so that its vectors keep their capacity: an event without string
    /// args allocates nothing.
    event_ts: u64,
    ev: TrackEvent,
    /// The event's fields encoded ahead: its track, the tracks of its extra counter values.
    fixed: Fields,
    /// The `type` field of each `TrackEvent.Type` (indexed by it), encoded once.
    types: [Field; 5],
    /// `event` and `ev` are filled in but not framed yet: counter values of the same time can still
    /// ride on it (see [`Emitter::counters`]). Framed before anything else is.
    held: bool,
    /// The held event is a bare slice end (track and type only): `ev` is stale and not
    /// encoded. Half the packets are these.
    bare: bool,
    /// Emptied annotation vectors, handed out again by `args`.
    spare_args: Vec<DebugAnnotation>,
    next_name_iid: u64,
    pub packets: u64,
    pub bytes: u64,
}

impl<W: Write> Emitter<W> {
    /// Starts the sequence: its first packet defines the delta clock, makes it the default
    /// clock of every later timestamp, and interns the fixed vocabulary (`names[i]` and
    /// `annotation_names[i]` get iid `i + 1`).
    #[cfg(test)]
    pub fn new(out: W, names: &[&str], annotation_names: &[&str]) -> io::Result<Emitter<W>> {
        Emitter::on_sequence(out, names, annotation_names, SEQUENCE_ID)
    }

    /// As [`Emitter::new`], on packet sequence `id` (distinct per writer sharing a file).
    pub fn on_sequence(
        out: W,
        names: &[&str],
        annotation_names: &[&str],
        id: u32,
    ) -> io::Result<Emitter<W>> {
        let interned = |names: &[&str]| -> Vec<InternedString> {
            (1..)
                .zip(names)
                .map(|(iid, &name)| InternedString {
                    iid: Some(iid),
                    name: Some(name.to_owned()),
                })
                .collect()
        };
        let mut em = Emitter {
            out: Some(out),
            seq: Sequence {
                buf: vec![0; CHUNK + 1024],
                used: 0,
                started: false,
                pending: InternedData {
                    event_names: interned(names),
                    debug_annotation_names: interned(annotation_names),
                    ..InternedData::default()
                },
                clock: 0,
                header: header(id),
                id,
            },
            event_ts: 0,
            ev: TrackEvent::default(),
            fixed: Fields::default(),
            types: [
                0,
                TYPE_SLICE_BEGIN,
                TYPE_SLICE_END,
                TYPE_INSTANT,
                TYPE_COUNTER,
            ]
            .map(|t| {
                Field::of(&TrackEvent {
                    r#type: Some(t),
                    ..TrackEvent::default()
                })
            }),
            held: false,
            bare: false,
            spare_args: Vec::new(),
            next_name_iid: names.len() as u64 + 1,
            packets: 0,
            bytes: 0,
        };
        let at_zero = |clock_id, is_incremental| Clock {
            clock_id: Some(clock_id),
            timestamp: Some(0),
            is_incremental,
        };
        em.packet(TracePacket {
            clock_snapshot: Some(ClockSnapshot {
                clocks: vec![
                    at_zero(DELTA_CLOCK, Some(true)),
                    at_zero(CLOCK_MONOTONIC, None),
                ],
                primary_trace_clock: Some(CLOCK_MONOTONIC),
            }),
            trace_packet_defaults: Some(TracePacketDefaults {
                timestamp_clock_id: Some(DELTA_CLOCK),
            }),
            ..TracePacket::default()
        })?;
        Ok(em)
    }

    /// Writes one packet on the sequence.
    pub fn packet(&mut self, mut p: TracePacket) -> io::Result<()> {
        self.release()?;
        let n = self.seq.frame(&mut p);
        self.framed(n)
    }

    /// Frames the held event packet, if any.
    fn release(&mut self) -> io::Result<()> {
        if !std::mem::take(&mut self.held) {
            return Ok(());
        }
        if self.bare {
            let n = self.seq.frame_event(self.event_ts, None, &self.fixed);
            return self.framed(n);
        }
        let n = self
            .seq
            .frame_event(self.event_ts, Some(&self.ev), &self.fixed);
        let args = &mut self.ev.debug_annotations;
        if args.capacity() > self.spare_args.capacity() {
            args.clear();
            self.spare_args = std::mem::take(args);
        }
        self.framed(n)
    }

    /// Counts a framed packet; writes the buffer out once it holds a chunk.
    fn framed(&mut self, n: usize) -> io::Result<()> {
        self.packets += 1;
        self.bytes += n as u64;
        if self.seq.used >= CHUNK {
            self.write_buffered()?;
        }
        Ok(())
    }

    /// Hands the buffer to the output; emptied even on failure (never written twice).
    fn write_buffered(&mut self) -> io::Result<()> {
        let r = match &mut self.out {
            Some(out) if self.seq.used > 0 => out.write_all(&self.seq.buf[..self.seq.used]),
            _ => Ok(()),
        };
        self.seq.used = 0;
        r
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

    /// Entries to intern with the next packet (callstacks.rs adds the stack tables' here).
    pub fn pending(&mut self) -> &mut InternedData {
        &mut self.seq.pending
    }

    /// Puts an interned callstack on the event just begun (a slice begin or an instant).
    pub fn callstack(&mut self, iid: u64) {
        debug_assert!(
            self.held && !self.bare,
            "a begun event to put the callstack on"
        );
        self.fixed.push(&Field::of(&TrackEvent {
            callstack_iid: Some(iid),
            ..TrackEvent::default()
        }));
    }

    /// Debug annotations (they land in `args` as `debug.<name>`), named by the iids of the
    /// vocabulary interned at the start.
    pub fn args(&mut self, args: &[(u64, Arg)]) -> Vec<DebugAnnotation> {
        let mut out = std::mem::take(&mut self.spare_args);
        out.extend(args.iter().map(|(k, v)| {
            let mut a = DebugAnnotation {
                name_iid: Some(*k),
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

    /// Fills in the reused packet for a track event and holds it: only the fields an event
    /// kind sets differ between packets.
    #[expect(
        clippy::too_many_arguments,
        reason = "one field each; the public begin/end/instant/counters are the readable API"
    )]
    fn event(
        &mut self,
        ts: u64,
        kind: i32,
        track: Track,
        name_iid: Option<u64>,
        counter_value: Option<i64>,
        args: Vec<DebugAnnotation>,
        flows: &[u64],
        terminating_flows: &[u64],
    ) -> io::Result<()> {
        self.release()?;
        self.event_ts = ts;
        let ev = &mut self.ev;
        self.fixed.len = 0;
        self.fixed.push(&track.field);
        self.fixed.push(&self.types[kind as usize]);
        ev.name_iid = name_iid;
        ev.counter_value = counter_value;
        ev.extra_counter_values.clear();
        ev.debug_annotations = args;
        ev.flow_ids.clear();
        ev.flow_ids.extend_from_slice(flows);
        ev.terminating_flow_ids.clear();
        ev.terminating_flow_ids.extend_from_slice(terminating_flows);
        self.held = true;
        self.bare = false;
        Ok(())
    }

    pub fn begin(
        &mut self,
        ts: u64,
        track: Track,
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

    /// A slice begin whose args were encoded ahead ([`EncodedArg`], at most
    /// `MAX_ENCODED_ARGS`).
    pub fn begin_encoded(
        &mut self,
        ts: u64,
        track: Track,
        name_iid: u64,
        args: &[EncodedArg],
    ) -> io::Result<()> {
        self.begin(ts, track, name_iid, Vec::new(), &[])?;
        assert!(args.len() <= MAX_ENCODED_ARGS, "room for the encoded args");
        for a in args {
            self.fixed.push(&a.field);
        }
        Ok(())
    }

    /// An instant whose args were encoded ahead ([`EncodedArg`], at most
    /// `MAX_ENCODED_ARGS`).
    pub fn instant_encoded(
        &mut self,
        ts: u64,
        track: Track,
        name_iid: u64,
        args: &[EncodedArg],
        flows: &[u64],
    ) -> io::Result<()> {
        self.instant(ts, track, name_iid, Vec::new(), flows, &[])?;
        assert!(args.len() <= MAX_ENCODED_ARGS, "room for the encoded args");
        for a in args {
            self.fixed.push(&a.field);
        }
        Ok(())
    }

    /// A slice end: only its track and type, encoded ahead (`ev` is left as it is).
    pub fn end(&mut self, ts: u64, track: Track) -> io::Result<()> {
        self.release()?;
        self.event_ts = ts;
        self.fixed.len = 0;
        self.fixed.push(&track.field);
        self.fixed.push(&self.types[TYPE_SLICE_END as usize]);
        self.held = true;
        self.bare = true;
        Ok(())
    }

    /// Makes the held bare end a full event, so fields can be added to it.
    fn unbare(&mut self) {
        if std::mem::take(&mut self.bare) {
            let ev = &mut self.ev;
            ev.name_iid = None;
            ev.counter_value = None;
            ev.extra_counter_values.clear();
            ev.debug_annotations.clear();
            ev.flow_ids.clear();
            ev.terminating_flow_ids.clear();
        }
    }

    pub fn instant(
        &mut self,
        ts: u64,
        track: Track,
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

    /// Counter values at `ts`, as (counter track, value), each track at most once. They ride
    /// on the last event packet as its `extra_counter_values` when that packet has the same
    /// time and no counter value yet (the trace processor files them as counter rows at the
    /// packet's time, the same rows counter events give); otherwise they go in counter events
    /// of their own, a few values each.
    ///
    /// Zero values are put last: the trace processor's sorter keeps a packet's extra values
    /// only up to the first zero (v52 reads the ones after it as 0).
    pub fn counters(&mut self, ts: u64, values: &mut [(&CounterTrack, i64)]) -> io::Result<()> {
        if values.windows(2).any(|w| w[0].1 == 0 && w[1].1 != 0) {
            values.sort_by_key(|&(_, v)| v == 0);
        }
        let mut rest = &values[..];
        if self.held && self.event_ts == ts {
            self.unbare();
            let ev = &mut self.ev;
            if ev.counter_value.is_none() && ev.extra_counter_values.is_empty() {
                let n = rest.len().min(MAX_EXTRA_COUNTERS);
                self.extra_counters(&rest[..n]);
                rest = &rest[n..];
            }
        }
        // A counter event's own value may be 0: it is not an extra value.
        while let Some((&(track, value), more)) = rest.split_last() {
            let n = more.len().min(MAX_EXTRA_COUNTERS);
            self.event(
                ts,
                TYPE_COUNTER,
                track.track,
                None,
                Some(value),
                Vec::new(),
                &[],
                &[],
            )?;
            self.extra_counters(&more[..n]);
            rest = &more[n..];
        }
        Ok(())
    }

    /// Adds extra counter values to the held event: uuids and values pair up in order.
    fn extra_counters(&mut self, values: &[(&CounterTrack, i64)]) {
        for (track, v) in values {
            self.fixed.push(&track.extra);
            self.ev.extra_counter_values.push(*v);
        }
    }

    /// Interned names the emitter holds (only those not written yet: the fixed vocabulary has
    /// no table, per-goroutine names are held by the caller). Tests check it stays small.
    #[cfg(test)]
    pub fn names_len(&self) -> usize {
        self.seq.pending.event_names.len() + self.seq.pending.debug_annotation_names.len()
    }

    /// Writes out the buffered packets and flushes the output.
    pub fn flush(&mut self) -> io::Result<()> {
        self.release()?;
        self.write_buffered()?;
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
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
        let _ = self.release();
        let _ = self.write_buffered();
    }
}

/// A debug annotation value.
pub enum Arg {
    Int(i64),
    Uint(u64),
    Str(String),
}

#[cfg(test)]
#[path = "emit_tests.rs"]
mod tests;
