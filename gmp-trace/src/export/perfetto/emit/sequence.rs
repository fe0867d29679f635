//! The one trusted packet sequence a writer owns: framing each packet, the delta clock its
//! timestamps are written on, and the interned entries that ride on the next packet. The
//! emitter hands it whole packets, or a track event as its fields encoded ahead plus the rest.
use prost::Message;

use super::super::proto::{
    InternedData, TracePacket, TrackEvent, CLOCK_MONOTONIC, SEQ_INCREMENTAL_STATE_CLEARED,
    SEQ_NEEDS_INCREMENTAL_STATE,
};
use super::encoding::{encode_event, event_len, varint_field, Field, Fields, Slot, FIELD_MAX};

/// `TracePacket.track_event`'s field number.
const TRACK_EVENT_FIELD: u32 = 11;

/// The packet sequence's state, apart from the packet being filled in.
pub(super) struct Sequence {
    /// Framed packets not yet handed to the output (see [`super::CHUNK`]): the first `used` bytes.
    /// The rest is room, zeroed once, to encode into.
    pub(super) buf: Vec<u8>,
    pub(super) used: usize,
    pub(super) started: bool,
    /// Entries interned since the last packet: they ride on the next packet, which is the one
    /// that first uses them.
    pub(super) pending: InternedData,
    /// The delta clock's value: the last timestamp written as a delta.
    pub(super) clock: u64,
    /// The sequence id and flags of every packet after the first, encoded once.
    pub(super) header: Field,
    /// This sequence's `trusted_packet_sequence_id`.
    pub(super) id: u32,
}

impl Sequence {
    /// Frames a packet other than a track event's. The first packet declares the incremental
    /// state cleared; every one says it needs that state (interned names, the clock
    /// defaults), as the trace processor expects. Returns the framed size.
    pub(super) fn frame(&mut self, p: &mut TracePacket) -> usize {
        // After the first packet, the sequence id and flags are the same on every packet:
        // encoded once.
        let header = if self.started {
            p.trusted_packet_sequence_id = None;
            p.sequence_flags = None;
            self.header
        } else {
            p.trusted_packet_sequence_id = Some(self.id);
            p.sequence_flags = Some(SEQ_INCREMENTAL_STATE_CLEARED | SEQ_NEEDS_INCREMENTAL_STATE);
            p.first_packet_on_sequence = Some(true);
            self.started = true;
            Field::EMPTY
        };
        if let Some(t) = p.timestamp {
            let (ts, clock_id) = self.stamp(t);
            (p.timestamp, p.timestamp_clock_id) = (Some(ts), clock_id);
        }
        if self.has_pending() {
            p.interned_data = Some(std::mem::take(&mut self.pending));
        }
        self.put(&header, p)
    }

    /// Frames a track event's packet at `ts`: `fixed` holds the event's fields encoded ahead.
    /// The packet's own fields (timestamp, interned data, clock) are written with prost's
    /// field encoders rather than through a message of them: a message's `encoded_len` and
    /// `encode_raw` look at every field, where a packet has one or two.
    pub(super) fn frame_event(
        &mut self,
        ts: u64,
        ev: Option<&TrackEvent>,
        fixed: &Fields,
    ) -> usize {
        use prost::encoding::{encode_varint, encoded_len_varint, message, uint32, uint64};
        debug_assert!(self.started, "the emitter writes a first packet");
        let (timestamp, clock_id) = self.stamp(ts);
        let interned = self
            .has_pending()
            .then(|| std::mem::take(&mut self.pending));
        // The track event is encoded after the packet's other fields, as a field of its own
        // (protobuf fields may come in any order), starting with its fields encoded ahead:
        // its length, needed twice, is computed once.
        let te_len = fixed.len + ev.map_or(0, event_len);
        let len = usize::from(self.header.len)
            + uint64::encoded_len(PACKET_TIMESTAMP, &timestamp)
            + interned
                .as_ref()
                .map_or(0, |d| message::encoded_len(PACKET_INTERNED_DATA, d))
            + clock_id.map_or(0, |c| uint32::encoded_len(PACKET_TIMESTAMP_CLOCK_ID, &c))
            + prost::encoding::key_len(TRACK_EVENT_FIELD)
            + encoded_len_varint(te_len as u64)
            + te_len;
        let header = self.header;
        let mut slot = self.slot(len);
        slot.frame(len);
        slot.put_field(&header);
        // In tag order, as prost writes a message's fields.
        slot.scalar(|r| varint_field(PACKET_TIMESTAMP, timestamp, r));
        if let Some(d) = &interned {
            message::encode(PACKET_INTERNED_DATA, d, &mut slot);
        }
        if let Some(c) = clock_id {
            slot.scalar(|r| varint_field(PACKET_TIMESTAMP_CLOCK_ID, u64::from(c), r));
        }
        slot.scalar(|r| {
            prost::encoding::encode_key(
                TRACK_EVENT_FIELD,
                prost::encoding::WireType::LengthDelimited,
                r,
            );
            encode_varint(te_len as u64, r);
        });
        slot.put_fields(fixed);
        if let Some(ev) = ev {
            encode_event(ev, &mut slot);
        }
        let n = slot.finish();
        self.close(n)
    }

    /// A timestamp as written: a delta on the sequence's clock, or, when earlier than the
    /// previous one (another track's), as it is on MONOTONIC.
    fn stamp(&mut self, ts: u64) -> (u64, Option<u32>) {
        if ts >= self.clock {
            let delta = ts - self.clock;
            self.clock = ts;
            (delta, None)
        } else {
            (ts, Some(CLOCK_MONOTONIC))
        }
    }

    /// Entries interned since the last packet: they ride on the next packet, which is the
    /// one that first uses them.
    fn has_pending(&self) -> bool {
        // A new callstack is interned with whatever new frames and strings it brings, so its
        // list stands for the other stack tables.
        !self.pending.event_names.is_empty()
            || !self.pending.debug_annotation_names.is_empty()
            || !self.pending.callstacks.is_empty()
    }

    /// Encodes a framed packet into the buffer: the header fields, then `p`. Returns the
    /// framed size.
    fn put(&mut self, header: &Field, p: &impl Message) -> usize {
        let len = usize::from(header.len) + p.encoded_len();
        let mut slot = self.slot(len);
        slot.frame(len);
        slot.put_field(header);
        p.encode_raw(&mut slot);
        let n = slot.finish();
        self.close(n)
    }

    /// The slot for a framed packet of `len` bytes: a piece of the buffer of the exact size,
    /// rather than pushing onto the Vec, whose every byte of every varint reloads and
    /// grow-checks the length; with room for a whole `Field` past the end, so that fields are
    /// copied whole. The caller starts it with [`Slot::frame`]: a slot moved after a write
    /// (returned from here) is reloaded from the stack and stalls on the stores just made.
    #[inline(always)]
    fn slot(&mut self, len: usize) -> Slot<'_> {
        let n = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
        let start = self.used;
        if self.buf.len() < start + n + FIELD_MAX {
            self.buf.resize(start + n + FIELD_MAX, 0);
        }
        Slot {
            buf: &mut self.buf[start..start + n + FIELD_MAX],
            pos: 0,
            end: n,
        }
    }

    /// Counts a packet of `n` bytes, just encoded by a slot, as framed. Returns `n`.
    #[inline]
    fn close(&mut self, n: usize) -> usize {
        self.used += n;
        n
    }
}

/// `TracePacket` field numbers of a track event's packet.
const PACKET_TIMESTAMP: u32 = 8;
const PACKET_INTERNED_DATA: u32 = 12;
const PACKET_TIMESTAMP_CLOCK_ID: u32 = 58;

/// The sequence id and flags that every packet after the first carries.
pub(super) fn header(id: u32) -> Field {
    Field::of(&TracePacket {
        trusted_packet_sequence_id: Some(id),
        sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
        ..TracePacket::default()
    })
}
