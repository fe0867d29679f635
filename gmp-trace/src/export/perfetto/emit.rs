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
use std::io::{self, Write};

use prost::bytes::buf::UninitSlice;
use prost::bytes::BufMut;
use prost::Message;

use super::proto::{
    Clock, ClockSnapshot, DebugAnnotation, InternedData, InternedString, TracePacket,
    TracePacketDefaults, TrackDescriptor, TrackEvent, CLOCK_MONOTONIC, CLOCK_SEQUENCE_FIRST,
    MAX_EXTRA_COUNTERS, SEQ_INCREMENTAL_STATE_CLEARED, SEQ_NEEDS_INCREMENTAL_STATE, TYPE_COUNTER,
    TYPE_INSTANT, TYPE_SLICE_BEGIN, TYPE_SLICE_END,
};

/// `TracePacket.track_event`'s field number.
const TRACK_EVENT_FIELD: u32 = 11;

/// The writer's packet sequence when it writes the only one in its file. Interned names are
/// scoped to it; several writers sharing one file (one per traced process) each take their own.
pub const SEQUENCE_ID: u32 = 1;

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

/// Whose tracks: a process's pid and which of its images in the run (0 the first; a process
/// that exec'd and is traced again in its new image, under `-f` or `--all`, gets 1, 2, ...:
/// goroutine and thread ids start over there, so the new image's tracks must not be the old
/// one's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    pub pid: u32,
    pub image: u32,
}

impl Owner {
    fn bits(self) -> u64 {
        u64::from(self.pid) | (u64::from(self.image) << 32)
    }
}

/// A stable UUID: the same (owner, kind, id) gives the same track in every run; never 0 (the
/// implicit global track). A first image's uuids depend on its pid alone.
pub fn track_uuid(owner: Owner, kind: TrackKind, id: u64) -> u64 {
    let h = mix(mix(mix(SEED ^ owner.bits()) ^ kind as u64) ^ id);
    h.max(1)
}

/// A prost-encoded field of a `TrackEvent`, copied into each packet that has it: the field of
/// a track uuid (a 64-bit hash, a 10-byte varint) costs more to encode than the rest of most
/// events.
#[derive(Clone, Copy, Debug)]
struct Field {
    /// Copied whole (one 16-byte move), `len` of them used.
    bytes: [u8; FIELD_MAX],
    len: u8,
}

/// Room for a field: a key and one varint take at most 12 bytes.
const FIELD_MAX: usize = 16;

impl Field {
    const EMPTY: Field = Field {
        bytes: [0; FIELD_MAX],
        len: 0,
    };

    /// Panics beyond `FIELD_MAX` bytes.
    fn of(m: &impl Message) -> Field {
        let mut f = Field {
            bytes: [0; FIELD_MAX],
            len: m.encoded_len() as u8,
        };
        m.encode_raw(&mut &mut f.bytes[..usize::from(f.len)]);
        f
    }
}

/// A track that events are written on, as its `track_uuid` field encoded once (the uuid
/// alone would be smaller, but this is kept per live goroutine and used on every event).
#[derive(Clone, Copy, Debug)]
pub struct Track {
    field: Field,
}

impl Track {
    pub fn new(uuid: u64) -> Track {
        Track {
            field: Field::of(&TrackEvent {
                track_uuid: Some(uuid),
                ..TrackEvent::default()
            }),
        }
    }
}

/// A counter track: also its `extra_counter_track_uuids` element, encoded once.
#[derive(Clone, Copy, Debug)]
pub struct CounterTrack {
    pub track: Track,
    extra: Field,
}

impl CounterTrack {
    pub fn new(uuid: u64) -> CounterTrack {
        CounterTrack {
            track: Track::new(uuid),
            extra: Field::of(&TrackEvent {
                extra_counter_track_uuids: vec![uuid],
                ..TrackEvent::default()
            }),
        }
    }
}

/// A debug annotation with an integer value, encoded once as a `debug_annotations` element for
/// events that repeat it (a P slice's `m` and `tid` are the same every time that thread runs a
/// goroutine there).
#[derive(Clone, Copy, Debug)]
pub struct EncodedArg {
    field: Field,
}

/// Encoded args an event can carry (room is kept for them next to its counters).
pub const MAX_ENCODED_ARGS: usize = 2;

impl EncodedArg {
    /// A signed value; `name_iid` below 16384 (the vocabulary's), so that it fits a `Field`.
    #[inline]
    pub fn int(name_iid: u64, value: i64) -> EncodedArg {
        use prost::encoding::int64;
        EncodedArg::of(
            name_iid,
            int64::encoded_len(ANNOTATION_INT_VALUE, &value),
            |b| int64::encode(ANNOTATION_INT_VALUE, &value, b),
        )
    }

    /// An unsigned value; `name_iid` below 16384.
    #[inline]
    pub fn uint(name_iid: u64, value: u64) -> EncodedArg {
        use prost::encoding::uint64;
        EncodedArg::of(
            name_iid,
            uint64::encoded_len(ANNOTATION_UINT_VALUE, &value),
            |b| uint64::encode(ANNOTATION_UINT_VALUE, &value, b),
        )
    }

    /// A `TrackEvent.debug_annotations` element: its key and length, then the annotation's
    /// name iid and its value (`value_len` bytes, written by `value`), by prost's field
    /// encoders, in tag order as prost writes the message. Not through a `DebugAnnotation` in
    /// a `TrackEvent`: the wakeups' args are made per event. Panics beyond `FIELD_MAX` bytes.
    #[inline(always)]
    fn of(name_iid: u64, value_len: usize, value: impl FnOnce(&mut Room)) -> EncodedArg {
        use prost::encoding::{encode_key, encode_varint, uint64, WireType};
        let inner = uint64::encoded_len(ANNOTATION_NAME_IID, &name_iid) + value_len;
        let mut field = Field::EMPTY;
        let mut r = Room {
            window: &mut field.bytes,
            n: 0,
        };
        encode_key(EVENT_DEBUG_ANNOTATIONS, WireType::LengthDelimited, &mut r);
        encode_varint(inner as u64, &mut r);
        uint64::encode(ANNOTATION_NAME_IID, &name_iid, &mut r);
        value(&mut r);
        assert!(r.n <= FIELD_MAX, "an encoded arg fits a field");
        field.len = r.n as u8;
        EncodedArg { field }
    }
}

/// `DebugAnnotation` field numbers.
const ANNOTATION_NAME_IID: u32 = 1;
const ANNOTATION_UINT_VALUE: u32 = 3;
const ANNOTATION_INT_VALUE: u32 = 4;

/// Trace-global flow ids: a per-owner base plus a counter.
pub fn flow_base(owner: Owner) -> u64 {
    let image = u64::from(owner.image).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    mix(SEED ^ 0xf10 ^ (u64::from(owner.pid) << 32) ^ image)
}

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

/// The packet sequence's state, apart from the packet being filled in.
struct Sequence {
    /// Framed packets not yet handed to the output (see [`CHUNK`]): the first `used` bytes.
    /// The rest is room, zeroed once, to encode into.
    buf: Vec<u8>,
    used: usize,
    started: bool,
    /// Entries interned since the last packet: they ride on the next packet, which is the one
    /// that first uses them.
    pending: InternedData,
    /// The delta clock's value: the last timestamp written as a delta.
    clock: u64,
    /// The sequence id and flags of every packet after the first, encoded once.
    header: Field,
    /// This sequence's `trusted_packet_sequence_id`.
    id: u32,
}

impl Sequence {
    /// Frames a packet other than a track event's. The first packet declares the incremental
    /// state cleared; every one says it needs that state (interned names, the clock
    /// defaults), as the trace processor expects. Returns the framed size.
    fn frame(&mut self, p: &mut TracePacket) -> usize {
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
    fn frame_event(&mut self, ts: u64, ev: Option<&TrackEvent>, fixed: &Fields) -> usize {
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

/// `TrackEvent` field numbers of the fields not encoded ahead.
const EVENT_DEBUG_ANNOTATIONS: u32 = 4;
const EVENT_NAME_IID: u32 = 10;
const EVENT_EXTRA_COUNTER_VALUES: u32 = 12;
const EVENT_COUNTER_VALUE: u32 = 30;
const EVENT_FLOW_IDS: u32 = 47;
const EVENT_TERMINATING_FLOW_IDS: u32 = 48;

/// Checks, in debug builds, that the event has none of the fields the emitter encodes ahead
/// (they are in `Fields`).
fn debug_check(ev: &TrackEvent) {
    debug_assert!(
        ev.r#type.is_none() && ev.track_uuid.is_none() && ev.extra_counter_track_uuids.is_empty(),
        "fields encoded ahead are not set on the event"
    );
}

/// The event's encoded length, apart from its fields encoded ahead: the fields an event kind
/// sets, each with prost's field encoder (the message's `encoded_len` would look at all
/// nine). A slice end (half the packets) has none.
#[inline]
fn event_len(ev: &TrackEvent) -> usize {
    use prost::encoding::{fixed64, int64, message, uint64};
    debug_check(ev);
    let mut n = 0;
    if !ev.debug_annotations.is_empty() {
        n += message::encoded_len_repeated(EVENT_DEBUG_ANNOTATIONS, &ev.debug_annotations);
    }
    if let Some(v) = &ev.name_iid {
        n += uint64::encoded_len(EVENT_NAME_IID, v);
    }
    if !ev.extra_counter_values.is_empty() {
        n += int64::encoded_len_repeated(EVENT_EXTRA_COUNTER_VALUES, &ev.extra_counter_values);
    }
    if let Some(v) = &ev.counter_value {
        n += int64::encoded_len(EVENT_COUNTER_VALUE, v);
    }
    if !ev.flow_ids.is_empty() {
        n += fixed64::encoded_len_repeated(EVENT_FLOW_IDS, &ev.flow_ids);
    }
    if !ev.terminating_flow_ids.is_empty() {
        n += fixed64::encoded_len_repeated(EVENT_TERMINATING_FLOW_IDS, &ev.terminating_flow_ids);
    }
    n
}

/// Encodes the event's fields not encoded ahead, in tag order (as prost's `encode_raw`).
#[inline]
fn encode_event(ev: &TrackEvent, buf: &mut Slot) {
    use prost::encoding::{fixed64, message};
    if !ev.debug_annotations.is_empty() {
        message::encode_repeated(EVENT_DEBUG_ANNOTATIONS, &ev.debug_annotations, buf);
    }
    if let Some(v) = &ev.name_iid {
        buf.scalar(|r| varint_field(EVENT_NAME_IID, *v, r));
    }
    if !ev.extra_counter_values.is_empty() {
        // Not packed (proto2): a field per value, as `encode_repeated` writes them.
        for v in &ev.extra_counter_values {
            buf.scalar(|r| varint_field(EVENT_EXTRA_COUNTER_VALUES, *v as u64, r));
        }
    }
    if let Some(v) = &ev.counter_value {
        buf.scalar(|r| varint_field(EVENT_COUNTER_VALUE, *v as u64, r));
    }
    if !ev.flow_ids.is_empty() {
        fixed64::encode_repeated(EVENT_FLOW_IDS, &ev.flow_ids, buf);
    }
    if !ev.terminating_flow_ids.is_empty() {
        fixed64::encode_repeated(EVENT_TERMINATING_FLOW_IDS, &ev.terminating_flow_ids, buf);
    }
}

/// The sequence id and flags that every packet after the first carries.
fn header(id: u32) -> Field {
    Field::of(&TracePacket {
        trusted_packet_sequence_id: Some(id),
        sequence_flags: Some(SEQ_NEEDS_INCREMENTAL_STATE),
        ..TracePacket::default()
    })
}

/// The exactly sized piece of the buffer a packet is encoded into. Like `&mut [u8]` as a
/// `BufMut`, but its `put_u8`, the only write of the varints that make up most of a packet,
/// is one store (the slice's goes through `put_slice` and splits the slice for each byte).
struct Slot<'a> {
    buf: &'a mut [u8],
    pos: usize,
    /// The framed packet's size: `pos` once it is all encoded.
    end: usize,
}

impl Slot<'_> {
    /// Starts the framed packet: the `Trace.packet` key and the packet's length.
    #[inline]
    fn frame(&mut self, len: usize) {
        self.scalar(|r| {
            r.put_u8(0x0a); // Trace.packet, length-delimited
            prost::encoding::encode_varint(len as u64, r);
        });
    }

    /// Writes what `f` encodes into a [`Room`] at the current position: a scalar field, or
    /// a key and a length, at most `FIELD_MAX` bytes. Checked once, not for each byte.
    #[inline(always)]
    fn scalar(&mut self, f: impl FnOnce(&mut Room)) {
        let window = self.buf[self.pos..]
            .first_chunk_mut::<FIELD_MAX>()
            .expect("a slot has a field's room to spare past its packet");
        let mut room = Room { window, n: 0 };
        f(&mut room);
        assert!(room.n <= FIELD_MAX, "a scalar field fits in a field's room");
        self.pos += room.n;
    }

    /// The framed size, once the packet is all encoded.
    #[inline]
    fn finish(self) -> usize {
        debug_assert_eq!(
            self.pos, self.end,
            "the packet's length and its encoding disagree"
        );
        self.pos
    }

    /// Writes a field encoded ahead: a fixed-size copy (the slot has `FIELD_MAX` bytes to
    /// spare), then only its length counts.
    #[inline]
    fn put_field(&mut self, f: &Field) {
        self.buf[self.pos..self.pos + FIELD_MAX].copy_from_slice(&f.bytes);
        self.pos += usize::from(f.len);
    }

    /// Writes the fields encoded ahead, in whole `FIELD_MAX` pieces (the last one spills
    /// into the slot's spare room, to be overwritten or ignored).
    #[inline]
    fn put_fields(&mut self, f: &Fields) {
        for (i, piece) in f.bytes.as_chunks::<FIELD_MAX>().0.iter().enumerate() {
            if i * FIELD_MAX >= f.len {
                break;
            }
            let at = self.pos + i * FIELD_MAX;
            self.buf[at..at + FIELD_MAX].copy_from_slice(piece);
        }
        self.pos += f.len;
    }
}

/// A varint field (uint64, uint32, int64: a negative int64 as its two's complement, as prost
/// writes it), by prost's key and varint encoders: what `prost::encoding::uint64::encode`
/// does, but inlined (prost's is not, and it costs a call per field).
#[inline(always)]
fn varint_field(tag: u32, v: u64, r: &mut Room) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, r);
    prost::encoding::encode_varint(v, r);
}

/// Where prost writes one scalar field: a window of `FIELD_MAX` bytes of a slot. Its `put_u8`
/// is one store and no bounds check (the index is masked into the window), small enough for
/// prost's `encode_varint`, a loop of them, to be inlined: through the slot, whose every byte
/// is bounds-checked, it was a call per varint and a tenth of the writer's time.
struct Room<'a> {
    window: &'a mut [u8; FIELD_MAX],
    n: usize,
}

// SAFETY: `remaining_mut` is the length of `chunk_mut`, initialised memory of `window`;
// `advance_mut` moves `n` only within the window (it panics past its end).
unsafe impl BufMut for Room<'_> {
    #[inline]
    fn remaining_mut(&self) -> usize {
        FIELD_MAX.saturating_sub(self.n)
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(
            cnt <= self.remaining_mut(),
            "advanced past the field's room"
        );
        self.n += cnt;
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let at = self.n.min(FIELD_MAX);
        UninitSlice::new(&mut self.window[at..])
    }

    #[inline]
    fn put_u8(&mut self, b: u8) {
        // Masked: past the window (never, for a scalar field) it wraps, and `Slot::scalar`
        // fails on the count.
        self.window[self.n % FIELD_MAX] = b;
        self.n += 1;
    }
}

/// The fields of the held event encoded ahead, one after the other (its track, its type and
/// up to `MAX_ENCODED_ARGS` args encoded ahead, up to `MAX_EXTRA_COUNTERS` extra counter
/// tracks).
struct Fields {
    bytes: [u8; FIELDS_MAX * FIELD_MAX],
    len: usize,
}

impl Default for Fields {
    fn default() -> Fields {
        Fields {
            bytes: [0; FIELDS_MAX * FIELD_MAX],
            len: 0,
        }
    }
}

/// Fields of one event (track, type, callstack, args, counters), plus one piece of room for
/// the last copy.
const FIELDS_MAX: usize = MAX_EXTRA_COUNTERS + MAX_ENCODED_ARGS + 4;

impl Fields {
    /// Appends a field (a fixed-size copy); panics past `FIELDS_MAX - 1` fields.
    #[inline]
    fn push(&mut self, f: &Field) {
        self.bytes[self.len..self.len + FIELD_MAX].copy_from_slice(&f.bytes);
        self.len += usize::from(f.len);
    }
}

// SAFETY: `remaining_mut` is the length of `chunk_mut`, every byte of which is initialised
// memory of `buf`; `advance_mut` and the writes move `pos` only within `buf` (indexing
// panics past its end, as `BufMut` requires).
unsafe impl BufMut for Slot<'_> {
    #[inline]
    fn remaining_mut(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining_mut(), "advanced past the slot");
        self.pos += cnt;
    }

    #[inline]
    fn chunk_mut(&mut self) -> &mut UninitSlice {
        UninitSlice::new(&mut self.buf[self.pos..])
    }

    #[inline]
    fn put_u8(&mut self, n: u8) {
        self.buf[self.pos] = n;
        self.pos += 1;
    }

    #[inline]
    fn put_slice(&mut self, src: &[u8]) {
        self.buf[self.pos..self.pos + src.len()].copy_from_slice(src);
        self.pos += src.len();
    }
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
mod tests {
    use super::*;

    const PINNED: u64 = 6_360_201_204_807_905_919;

    /// The args encoded field by field are what prost makes of the same annotation in a
    /// `TrackEvent`, for values of every varint length and both signs.
    #[test]
    fn encoded_args_are_prosts_encoding() {
        let by_prost = |a: DebugAnnotation| {
            TrackEvent {
                debug_annotations: vec![a],
                ..TrackEvent::default()
            }
            .encode_to_vec()
        };
        let used = |e: &EncodedArg| e.field.bytes[..usize::from(e.field.len)].to_vec();
        for iid in [1, 127, 128, 16383] {
            for v in [0u64, 1, 127, 128, 1 << 35, u64::MAX] {
                let want = by_prost(DebugAnnotation {
                    name_iid: Some(iid),
                    uint_value: Some(v),
                    ..DebugAnnotation::default()
                });
                assert_eq!(used(&EncodedArg::uint(iid, v)), want, "uint {iid} {v}");
            }
            for v in [0i64, 1, -1, 300, i64::MIN, i64::MAX] {
                let want = by_prost(DebugAnnotation {
                    name_iid: Some(iid),
                    int_value: Some(v),
                    ..DebugAnnotation::default()
                });
                assert_eq!(used(&EncodedArg::int(iid, v)), want, "int {iid} {v}");
            }
        }
    }

    #[test]
    fn uuids_are_stable_and_distinct() {
        let o = |pid, image| Owner { pid, image };
        let a = track_uuid(o(10, 0), TrackKind::Goroutine, 7);
        assert_eq!(a, track_uuid(o(10, 0), TrackKind::Goroutine, 7));
        assert_ne!(a, track_uuid(o(10, 0), TrackKind::Thread, 7));
        assert_ne!(a, track_uuid(o(11, 0), TrackKind::Goroutine, 7));
        assert_ne!(a, track_uuid(o(10, 0), TrackKind::Goroutine, 8));
        assert_ne!(a, track_uuid(o(10, 1), TrackKind::Goroutine, 7));
        assert_ne!(flow_base(o(10, 0)), flow_base(o(10, 1)));
        // Pinned: a change here changes every trace's track ids between versions.
        assert_eq!(
            track_uuid(Owner { pid: 1, image: 0 }, TrackKind::Process, 0),
            PINNED
        );
    }

    /// Decodes framed packets (each 0x0A + length + a packet).
    fn unframe(bytes: &[u8]) -> Vec<TracePacket> {
        let mut rest = bytes;
        let mut out = Vec::new();
        while !rest.is_empty() {
            assert_eq!(rest[0], 0x0a);
            rest = &rest[1..];
            let len = prost::encoding::decode_varint(&mut rest).unwrap() as usize;
            out.push(TracePacket::decode(&rest[..len]).unwrap());
            rest = &rest[len..];
        }
        out
    }

    #[test]
    fn packets_are_framed_as_one_packet_traces() {
        let mut em = Emitter::new(Vec::new(), &["Running"], &[]).unwrap();
        em.begin(5, Track::new(9), 1, Vec::new(), &[]).unwrap();
        em.end(6, Track::new(9)).unwrap();
        let pkts = unframe(&em.finish().unwrap());
        let flags: Vec<_> = pkts
            .iter()
            .map(|p| (p.sequence_flags, p.interned_data.is_some()))
            .collect();
        // The clock and vocabulary first, then the two events.
        assert_eq!(
            flags,
            vec![(Some(3), true), (Some(2), false), (Some(2), false)]
        );
    }

    #[test]
    fn timestamps_are_deltas_unless_they_go_back() {
        let mut em = Emitter::new(Vec::new(), &["Running"], &[]).unwrap();
        em.begin(1000, Track::new(9), 1, Vec::new(), &[]).unwrap();
        em.end(1300, Track::new(9)).unwrap();
        em.begin(1200, Track::new(8), 1, Vec::new(), &[]).unwrap();
        em.end(1400, Track::new(8)).unwrap();
        let pkts = unframe(&em.finish().unwrap());
        let ts: Vec<_> = pkts[1..]
            .iter()
            .map(|p| (p.timestamp, p.timestamp_clock_id))
            .collect();
        assert_eq!(
            ts,
            vec![
                (Some(1000), None),
                (Some(300), None),
                (Some(1200), Some(CLOCK_MONOTONIC)),
                (Some(100), None),
            ]
        );
    }

    #[test]
    fn event_fields_encode_as_prost_encodes_the_message() {
        let ev = TrackEvent {
            name_iid: Some(300),
            counter_value: Some(-5),
            extra_counter_values: vec![1, 0, 1 << 40],
            debug_annotations: vec![DebugAnnotation {
                name_iid: Some(2),
                string_value: Some("x".into()),
                ..DebugAnnotation::default()
            }],
            flow_ids: vec![7, 8],
            terminating_flow_ids: vec![9],
            ..TrackEvent::default()
        };
        let len = event_len(&ev);
        assert_eq!(len, ev.encoded_len());
        let mut buf = vec![0; len + FIELD_MAX];
        let mut slot = Slot {
            buf: &mut buf,
            pos: 0,
            end: len,
        };
        encode_event(&ev, &mut slot);
        assert_eq!(slot.finish(), len);
        assert_eq!(buf[..len], ev.encode_to_vec());
    }

    fn ct(uuid: u64) -> CounterTrack {
        CounterTrack::new(uuid)
    }

    #[test]
    fn counters_ride_on_the_last_event_of_their_time() {
        let mut em = Emitter::new(Vec::new(), &["Running"], &[]).unwrap();
        em.begin(1000, Track::new(9), 1, Vec::new(), &[]).unwrap();
        em.counters(1000, &mut [(&ct(20), 0), (&ct(21), 2), (&ct(22), 3)])
            .unwrap();
        // Another time: a counter event of its own.
        em.counters(1100, &mut [(&ct(20), 0)]).unwrap();
        // Ten values: eight ride along, the other two make one counter event.
        em.end(1200, Track::new(9)).unwrap();
        let tracks: Vec<CounterTrack> = (30..40).map(ct).collect();
        let mut ten: Vec<(&CounterTrack, i64)> = (1..).zip(&tracks).map(|(v, t)| (t, v)).collect();
        em.counters(1200, &mut ten).unwrap();
        let pkts = unframe(&em.finish().unwrap());
        let evs: Vec<_> = pkts[1..]
            .iter()
            .map(|p| {
                let te = p.track_event.as_ref().unwrap();
                (
                    te.r#type.unwrap(),
                    te.counter_value,
                    te.extra_counter_track_uuids.clone(),
                    te.extra_counter_values.clone(),
                )
            })
            .collect();
        assert_eq!(
            evs,
            vec![
                // Zeros last.
                (TYPE_SLICE_BEGIN, None, vec![21, 22, 20], vec![2, 3, 0]),
                (TYPE_COUNTER, Some(0), vec![], vec![]),
                (TYPE_SLICE_END, None, (30..38).collect(), (1..9).collect()),
                // The last value is the counter event's own.
                (TYPE_COUNTER, Some(10), vec![38], vec![9]),
            ]
        );
    }
}
