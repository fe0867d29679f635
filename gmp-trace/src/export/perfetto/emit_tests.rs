//! The emitter's output checked against prost's own encoding of the same messages, and the
//! ids pinned: a change in either changes every trace written.
use prost::Message;

use super::encoding::{encode_event, event_len, Slot, FIELD_MAX};
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
