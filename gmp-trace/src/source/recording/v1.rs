//! Version 1 recordings (`GMPTREC1`): bare 64-byte events up to `GMPTEND1`, no checksums. Still
//! read (the golden recordings under tests/data are version 1, and so is every recording made
//! before version 2); no longer written. A flipped byte inside an event cannot be told from a
//! real event here: that is what version 2's blocks are for.
use std::io::Read;
use std::path::Path;

use gmp_trace_common::{Event, EVENT_SIZE};

use super::{io_err, read_full, Footer, RecordingError, ReplayEnd, Sink, RELEASE_BYTES};

pub const MAGIC: &[u8; 8] = b"GMPTREC1";
pub const END: &[u8; 8] = b"GMPTEND1";

/// The events and footer of a mapped recording, from the first event (at `start`) on. Pages
/// already read are dropped from the mapping as it goes, so a replay's memory does not grow
/// with the recording (the kernel keeps them in its page cache either way).
pub fn run_mapped(
    map: &[u8],
    mapping: Option<&memmap2::Mmap>,
    start: usize,
    sink: &mut dyn Sink,
    path: &Path,
) -> Result<ReplayEnd, RecordingError> {
    let mut rest = &map[start..];
    let mut released = 0;
    let mut events = 0;
    loop {
        let pos = map.len() - rest.len();
        if pos - released >= RELEASE_BYTES {
            super::release(mapping, released, pos);
            released = pos;
        }
        if rest.starts_with(END) {
            return parse_footer(&rest[END.len()..], path).map(|f| ReplayEnd {
                footer: Some(f),
                events,
                ..ReplayEnd::default()
            });
        }
        let Some((bytes, tail)) = rest.split_first_chunk::<EVENT_SIZE>() else {
            return Ok(ReplayEnd {
                truncated_bytes: rest.len(),
                events,
                ..ReplayEnd::default()
            });
        };
        match Event::from_bytes(bytes) {
            Some(e) => sink.event(&e),
            None => sink.malformed(EVENT_SIZE),
        }
        events += 1;
        rest = tail;
    }
}

/// The same through read(), for files that cannot be mapped.
pub fn run_stream(
    mut input: impl Read,
    sink: &mut dyn Sink,
    path: &Path,
) -> Result<ReplayEnd, RecordingError> {
    let mut buf = [0u8; EVENT_SIZE];
    let mut events = 0;
    loop {
        let n = read_full(&mut input, &mut buf).map_err(|e| io_err(path, e))?;
        if n >= END.len() && &buf[..END.len()] == END {
            let mut rest = buf[END.len()..n].to_vec();
            input.read_to_end(&mut rest).map_err(|e| io_err(path, e))?;
            return parse_footer(&rest, path).map(|f| ReplayEnd {
                footer: Some(f),
                events,
                ..ReplayEnd::default()
            });
        }
        if n < EVENT_SIZE {
            return Ok(ReplayEnd {
                truncated_bytes: n,
                events,
                ..ReplayEnd::default()
            });
        }
        match Event::from_bytes(&buf) {
            Some(e) => sink.event(&e),
            None => sink.malformed(n),
        }
        events += 1;
    }
}

/// The footer after `GMPTEND1`: its u32 LE length, then JSON.
fn parse_footer(rest: &[u8], path: &Path) -> Result<Footer, RecordingError> {
    let corrupt = |what: String| RecordingError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return Err(corrupt("footer too short".into()));
    };
    let len = u32::from_le_bytes(*len) as usize;
    let body = rest
        .get(..len)
        .ok_or_else(|| corrupt("footer cut short".into()))?;
    serde_json::from_slice(body).map_err(|e| corrupt(format!("footer: {e}")))
}
