//! Round trips, truncation and damage, through both the mapped and the read() paths.
use super::*;

struct Collect(Vec<Event>);
impl Sink for Collect {
    fn event(&mut self, e: &Event) {
        self.0.push(*e);
    }
    fn malformed(&mut self, _len: usize) {}
}

fn header() -> Header {
    Header {
        go_version: "go1.27.3".into(),
        binary: "/x".into(),
        main_module: None,
        build_id: None,
        mode: "launch".into(),
        pid: 5,
        gmp_trace_version: "0".into(),
    }
}

fn footer() -> Footer {
    Footer {
        exit_code: Some(3),
        read_failures: 1,
        ..Footer::default()
    }
}

fn events(n: u64) -> Vec<Event> {
    (0..n)
        .map(|i| Event {
            ts: i,
            kind: 5,
            goid: i * 3,
            ..Event::default()
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("gmpt-rec-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Replays `p` through the mapped path and the read() path; both must agree.
fn replay_both(p: &Path) -> (Vec<Event>, ReplayEnd) {
    let mut c = Collect(Vec::new());
    let end = Replay::open(p).unwrap().run(&mut c).unwrap();
    let mut input = BufReader::new(File::open(p).unwrap());
    let mut counted = Counted(&mut input, 0);
    let (h, version) = read_header(&mut counted, p).unwrap();
    let start = counted.1;
    assert_eq!(h, header());
    let mut s = Collect(Vec::new());
    let send = match version {
        1 => v1::run_stream(input, &mut s, p).unwrap(),
        _ => v2::run_stream(input, start, &mut s, p).unwrap(),
    };
    assert_eq!(c.0, s.0, "mapped and read() replays differ");
    assert_eq!(end.footer, send.footer);
    assert_eq!(end.truncated_bytes, send.truncated_bytes);
    assert_eq!(end.events, send.events);
    assert_eq!(
        end.corrupt.as_ref().map(|e| e.to_string()),
        send.corrupt.as_ref().map(|e| e.to_string())
    );
    // And from memory (the fuzz target's way in), which checks the two readers again.
    let mut m = Collect(Vec::new());
    let (_, mend) = replay_bytes(&std::fs::read(p).unwrap(), &mut m).unwrap();
    assert_eq!(m.0, c.0);
    assert_eq!(mend.events, end.events);
    (c.0, end)
}

/// A version 2 recording of `n` events at `p`; returns where the first block starts.
fn record(p: &Path, n: u64) -> usize {
    let mut r = Recorder::create(File::create(p).unwrap(), p, &header()).unwrap();
    for e in &events(n) {
        r.event(e).unwrap();
    }
    r.finish(&footer()).unwrap();
    16 + serde_json::to_vec(&header()).unwrap().len()
}

const BLOCK: usize = v2::BLOCK_HEADER + v2::BLOCK_EVENTS * EVENT_SIZE;

#[test]
fn round_trip_and_truncation() {
    let dir = scratch("trunc");
    let p = dir.join("r.gmpt");
    let start = record(&p, 3000);
    let (evs, end) = replay_both(&p);
    assert_eq!(evs, events(3000));
    assert_eq!(end.footer, Some(footer()));
    assert!(end.corrupt.is_none());
    // Cut inside the second block: the first block replays, nothing of the second.
    let bytes = std::fs::read(&p).unwrap();
    let cut = dir.join("cut.gmpt");
    for extra in [0, 5, 16, 16 + 64 * 500 + 10] {
        std::fs::write(&cut, &bytes[..start + BLOCK + extra]).unwrap();
        let (evs, end) = replay_both(&cut);
        assert_eq!(
            evs.len(),
            v2::BLOCK_EVENTS,
            "cut {extra} bytes into block 1"
        );
        assert_eq!(end.truncated_bytes, extra);
        assert!(end.footer.is_none() && end.corrupt.is_none());
    }
    // Cut inside the footer: every event, no footer.
    std::fs::write(&cut, &bytes[..bytes.len() - 3]).unwrap();
    let (evs, end) = replay_both(&cut);
    assert_eq!(evs.len(), 3000);
    assert!(end.footer.is_none() && end.corrupt.is_none());
    // Not a recording.
    std::fs::write(&cut, b"hello").unwrap();
    assert!(matches!(
        Replay::open(&cut),
        Err(RecordingError::NotRecording(_))
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A flipped bit anywhere after the header is found, named by its block's offset, and no event
/// from that block on reaches the sink.
#[test]
fn flipped_bits_are_found_where_they_are() {
    let dir = scratch("flip");
    let p = dir.join("r.gmpt");
    let start = record(&p, 3000);
    let good = std::fs::read(&p).unwrap();
    let bad = dir.join("bad.gmpt");
    let footer_at = start + 2 * BLOCK + v2::BLOCK_HEADER + (3000 - 2048) * EVENT_SIZE;
    let cases = [
        (start + 16 + 7, 0, Some(1023)),              // an event in block 0
        (start + BLOCK + 16 + 64 * 9, 1, Some(2047)), // an event in block 1
        (start + BLOCK + 5, 1, None),                 // block 1's count
        (start + 2 * BLOCK + 1, 2, None),             // block 2's tag
        (good.len() - 2, 3, None),                    // the footer's JSON
    ];
    for (at, block, last) in cases {
        let mut b = good.clone();
        b[at] ^= 0x10;
        std::fs::write(&bad, &b).unwrap();
        let (evs, end) = replay_both(&bad);
        let Some(RecordingError::CorruptBlock {
            offset,
            block: blk,
            first_event,
            last_event,
            ..
        }) = &end.corrupt
        else {
            panic!("flip at {at} not found: {end:?}");
        };
        let block_start = if block == 3 {
            footer_at
        } else {
            start + block as usize * BLOCK
        };
        assert_eq!(*offset, block_start as u64, "flip at {at}");
        assert_eq!(*blk, block);
        assert_eq!(*first_event, (block.min(3) as u64 * 1024).min(3000));
        assert_eq!(*last_event, last);
        assert_eq!(evs, events(3000)[..evs.len()].to_vec());
        assert_eq!(evs.len() as u64, *first_event);
        let msg = end.corrupt.as_ref().unwrap().to_string();
        assert!(msg.contains(&format!("at byte {block_start}")), "{msg}");
    }
    // A flipped header is refused outright.
    let mut b = good.clone();
    b[start - 3] ^= 1;
    std::fs::write(&bad, &b).unwrap();
    assert!(matches!(
        Replay::open(&bad),
        Err(RecordingError::Corrupt { .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A block moved or repeated is caught by the index in its header checksum.
#[test]
fn repeated_block_is_found() {
    let dir = scratch("repeat");
    let p = dir.join("r.gmpt");
    let start = record(&p, 3000);
    let good = std::fs::read(&p).unwrap();
    let mut b = good[..start + BLOCK].to_vec();
    b.extend_from_slice(&good[start..]);
    std::fs::write(&p, &b).unwrap();
    let (evs, end) = replay_both(&p);
    assert_eq!(evs.len(), 1024);
    assert!(matches!(
        end.corrupt,
        Some(RecordingError::CorruptBlock { block: 1, .. })
    ));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Version 1 files (no checksums) still replay, whole or cut short.
#[test]
fn version_1_still_replays() {
    let dir = scratch("v1");
    let p = dir.join("r.gmpt");
    let h = serde_json::to_vec(&header()).unwrap();
    let f = serde_json::to_vec(&footer()).unwrap();
    let mut b = Vec::new();
    b.extend_from_slice(b"GMPTREC1");
    b.extend_from_slice(&(h.len() as u32).to_le_bytes());
    b.extend_from_slice(&h);
    for e in events(1000) {
        b.extend_from_slice(&e.to_bytes());
    }
    let body_end = b.len();
    b.extend_from_slice(b"GMPTEND1");
    b.extend_from_slice(&(f.len() as u32).to_le_bytes());
    b.extend_from_slice(&f);
    std::fs::write(&p, &b).unwrap();
    let (evs, end) = replay_both(&p);
    assert_eq!(evs, events(1000));
    assert_eq!(end.footer, Some(footer()));
    std::fs::write(&p, &b[..body_end - 54]).unwrap();
    let (evs, end) = replay_both(&p);
    assert_eq!(evs.len(), 999);
    assert_eq!(end.truncated_bytes, 10);
    assert!(end.footer.is_none());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The fuzz seeds (written by fuzz/seeds_events.py, a second writer of the format) replay
/// cleanly: whole ones with their footer, cut ones to their last whole block.
#[test]
fn committed_fuzz_seeds_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/recording");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let mut c = Collect(Vec::new());
        let (_, end) = replay_bytes(&std::fs::read(&p).unwrap(), &mut c).unwrap();
        assert!(end.corrupt.is_none(), "{name}: {:?}", end.corrupt);
        assert_eq!(end.footer.is_some(), !name.contains("-cut-"), "{name}");
        assert!(c.0.len() >= 64, "{name}: {} events", c.0.len());
        seen += 1;
    }
    assert!(seen >= 4, "seeds missing from {}", dir.display());
}
