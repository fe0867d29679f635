//! The protobuf encoding the emitter does by hand, with prost's field encoders: fields encoded
//! once and copied into every packet that has them (a track's uuid, an event type, a repeated
//! arg), and the exactly sized slot of the output buffer a packet is written into. Kept apart
//! from the emitter's state because each piece here is tuned for the writer's hot path (see
//! the notes on `Slot` and `Room`).
use prost::bytes::buf::UninitSlice;
use prost::bytes::BufMut;
use prost::Message;

use super::super::proto::{TrackEvent, MAX_EXTRA_COUNTERS};

/// A prost-encoded field of a `TrackEvent`, copied into each packet that has it: the field of
/// a track uuid (a 64-bit hash, a 10-byte varint) costs more to encode than the rest of most
/// events.
#[derive(Clone, Copy, Debug)]
pub(super) struct Field {
    /// Copied whole (one 16-byte move), `len` of them used.
    pub(super) bytes: [u8; FIELD_MAX],
    pub(super) len: u8,
}

/// Room for a field: a key and one varint take at most 12 bytes.
pub(super) const FIELD_MAX: usize = 16;

impl Field {
    pub(super) const EMPTY: Field = Field {
        bytes: [0; FIELD_MAX],
        len: 0,
    };

    /// Panics beyond `FIELD_MAX` bytes.
    pub(super) fn of(m: &impl Message) -> Field {
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
    pub(super) field: Field,
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
    pub(super) extra: Field,
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
    pub(super) field: Field,
}

/// Encoded args an event can carry (room is kept for them next to its counters).
pub(super) const MAX_ENCODED_ARGS: usize = 2;

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
pub(super) fn event_len(ev: &TrackEvent) -> usize {
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
pub(super) fn encode_event(ev: &TrackEvent, buf: &mut Slot) {
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

/// The exactly sized piece of the buffer a packet is encoded into. Like `&mut [u8]` as a
/// `BufMut`, but its `put_u8`, the only write of the varints that make up most of a packet,
/// is one store (the slice's goes through `put_slice` and splits the slice for each byte).
pub(super) struct Slot<'a> {
    pub(super) buf: &'a mut [u8],
    pub(super) pos: usize,
    /// The framed packet's size: `pos` once it is all encoded.
    pub(super) end: usize,
}

impl Slot<'_> {
    /// Starts the framed packet: the `Trace.packet` key and the packet's length.
    #[inline]
    pub(super) fn frame(&mut self, len: usize) {
        self.scalar(|r| {
            r.put_u8(0x0a); // Trace.packet, length-delimited
            prost::encoding::encode_varint(len as u64, r);
        });
    }

    /// Writes what `f` encodes into a [`Room`] at the current position: a scalar field, or
    /// a key and a length, at most `FIELD_MAX` bytes. Checked once, not for each byte.
    #[inline(always)]
    pub(super) fn scalar(&mut self, f: impl FnOnce(&mut Room)) {
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
    pub(super) fn finish(self) -> usize {
        debug_assert_eq!(
            self.pos, self.end,
            "the packet's length and its encoding disagree"
        );
        self.pos
    }

    /// Writes a field encoded ahead: a fixed-size copy (the slot has `FIELD_MAX` bytes to
    /// spare), then only its length counts.
    #[inline]
    pub(super) fn put_field(&mut self, f: &Field) {
        self.buf[self.pos..self.pos + FIELD_MAX].copy_from_slice(&f.bytes);
        self.pos += usize::from(f.len);
    }

    /// Writes the fields encoded ahead, in whole `FIELD_MAX` pieces (the last one spills
    /// into the slot's spare room, to be overwritten or ignored).
    #[inline]
    pub(super) fn put_fields(&mut self, f: &Fields) {
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
pub(super) fn varint_field(tag: u32, v: u64, r: &mut Room) {
    prost::encoding::encode_key(tag, prost::encoding::WireType::Varint, r);
    prost::encoding::encode_varint(v, r);
}

/// Where prost writes one scalar field: a window of `FIELD_MAX` bytes of a slot. Its `put_u8`
/// is one store and no bounds check (the index is masked into the window), small enough for
/// prost's `encode_varint`, a loop of them, to be inlined: through the slot, whose every byte
/// is bounds-checked, it was a call per varint and a tenth of the writer's time.
pub(super) struct Room<'a> {
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
pub(super) struct Fields {
    bytes: [u8; FIELDS_MAX * FIELD_MAX],
    pub(super) len: usize,
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
    pub(super) fn push(&mut self, f: &Field) {
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
