//! Version 2 recordings (`GMPTREC2`): the events in checksummed blocks, so a flipped byte is
//! found and reported where it is instead of being replayed as a real event, and a recording cut
//! short replays up to its last whole, verified block.
//!
//! Block: `GMPB`, u32 LE event count, u32 LE CRC32 of the events' bytes, u32 LE CRC32 of the
//! block header's first 12 bytes followed by the block's index (u64 LE, from 0); then the
//! events. The header's own checksum means a damaged count is caught before it is trusted (so a
//! block whose data runs past the end of the file is a recording cut short, not a guess), and
//! the index in it catches a block lost or repeated. CRC32 (crc32fast: SSE4.2/PCLMUL) costs a
//! replay a few ms per 100 MB.
use std::io::{self, Read, Write};
use std::path::Path;

use gmp_trace_common::{Event, EVENT_SIZE};

use super::{io_err, read_full, Footer, RecordingError, ReplayEnd, Sink, RELEASE_BYTES};

pub const MAGIC: &[u8; 8] = b"GMPTREC2";
pub const END: &[u8; 8] = b"GMPTEND2";
const TAG: &[u8; 4] = b"GMPB";
pub const BLOCK_HEADER: usize = 16;
/// Events per block as written: 64 KiB of events, so a crash loses at most that much more
/// than the write buffer already would, for 16 bytes of header.
pub const BLOCK_EVENTS: usize = 1024;
/// The most a reader accepts (a count above it is damage, whatever its checksum says).
const MAX_BLOCK_EVENTS: usize = 1 << 16;

/// CRC32 of `parts`, in order.
fn crc(parts: &[&[u8]]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for p in parts {
        h.update(p);
    }
    h.finalize()
}

/// The header of block `index` holding `events` (whole events' bytes).
pub fn block_header(events: &[u8], index: u64) -> [u8; BLOCK_HEADER] {
    let mut h = [0u8; BLOCK_HEADER];
    h[..4].copy_from_slice(TAG);
    h[4..8].copy_from_slice(&((events.len() / EVENT_SIZE) as u32).to_le_bytes());
    h[8..12].copy_from_slice(&crc(&[events]).to_le_bytes());
    let own = crc(&[&h[..12], &index.to_le_bytes()]);
    h[12..].copy_from_slice(&own.to_le_bytes());
    h
}

/// A JSON header or footer: `magic`, u32 LE length, u32 LE CRC32 of the JSON, the JSON.
pub fn write_framed(out: &mut impl Write, magic: &[u8; 8], json: &[u8]) -> io::Result<()> {
    out.write_all(magic)?;
    out.write_all(&(json.len() as u32).to_le_bytes())?;
    out.write_all(&crc(&[json]).to_le_bytes())?;
    out.write_all(json)
}

/// Checks a framed JSON body against its checksum (`len_crc`: the 8 bytes after the magic).
pub fn check_framed<'a>(len_crc: &[u8; 8], body: &'a [u8]) -> Result<&'a [u8], String> {
    let (len, sum) = split_u32s(len_crc);
    let body = body.get(..len as usize).ok_or("cut short")?;
    if crc(&[body]) != sum {
        return Err("checksum mismatch".into());
    }
    Ok(body)
}

fn split_u32s(b: &[u8; 8]) -> (u32, u32) {
    let (a, c) = b.split_at(4);
    let u = |s: &[u8]| u32::from_le_bytes([s[0], s[1], s[2], s[3]]);
    (u(a), u(c))
}

/// What a block header says: how many events follow and their checksum.
struct Block {
    events: usize,
    crc: u32,
}

/// Reads the header of block `index`; `Err` says what is wrong with it.
fn parse_block_header(h: &[u8; BLOCK_HEADER], index: u64) -> Result<Block, String> {
    if &h[..4] != TAG {
        return Err("no block header where one should start".into());
    }
    let u = |o: usize| u32::from_le_bytes([h[o], h[o + 1], h[o + 2], h[o + 3]]);
    if crc(&[&h[..12], &index.to_le_bytes()]) != u(12) {
        return Err("block header checksum mismatch (damaged, or a block lost or repeated)".into());
    }
    let events = u(4) as usize;
    if events == 0 || events > MAX_BLOCK_EVENTS {
        return Err(format!("block of {events} events"));
    }
    Ok(Block { events, crc: u(8) })
}

/// Where a replay is in the file: the bytes before the events, the blocks and events so far.
struct Walk {
    offset: u64,
    block: u64,
    events: u64,
}

impl Walk {
    fn corrupt(&self, path: &Path, block_events: Option<usize>, what: String) -> ReplayEnd {
        ReplayEnd {
            events: self.events,
            corrupt: Some(RecordingError::CorruptBlock {
                path: path.to_path_buf(),
                offset: self.offset,
                block: self.block,
                first_event: self.events,
                last_event: block_events.map(|n| self.events + n as u64 - 1),
                what,
            }),
            ..ReplayEnd::default()
        }
    }

    fn truncated(&self, bytes: usize) -> ReplayEnd {
        ReplayEnd {
            events: self.events,
            truncated_bytes: bytes,
            ..ReplayEnd::default()
        }
    }

    /// Checks block data against its header and hands its events to `sink`.
    fn feed(
        &mut self,
        b: &Block,
        data: &[u8],
        sink: &mut dyn Sink,
        path: &Path,
    ) -> Result<(), Box<ReplayEnd>> {
        if crc(&[data]) != b.crc {
            return Err(Box::new(self.corrupt(
                path,
                Some(b.events),
                "event checksum mismatch".into(),
            )));
        }
        for bytes in data.as_chunks::<EVENT_SIZE>().0 {
            match Event::from_bytes(bytes) {
                Some(e) => sink.event(&e),
                None => sink.malformed(EVENT_SIZE),
            }
        }
        self.offset += (BLOCK_HEADER + data.len()) as u64;
        self.block += 1;
        self.events += b.events as u64;
        Ok(())
    }

    /// The footer at the current offset (`rest` starts with [`END`]).
    fn footer(&self, rest: &[u8], path: &Path) -> ReplayEnd {
        let Some((len_crc, body)) = rest[END.len()..].split_first_chunk::<8>() else {
            return self.truncated(rest.len());
        };
        match check_framed(len_crc, body) {
            Ok(json) => match serde_json::from_slice::<Footer>(json) {
                Ok(f) => ReplayEnd {
                    footer: Some(f),
                    events: self.events,
                    ..ReplayEnd::default()
                },
                Err(e) => self.corrupt(path, None, format!("footer: {e}")),
            },
            Err(what) if what == "cut short" => self.truncated(rest.len()),
            Err(what) => self.corrupt(path, None, format!("footer: {what}")),
        }
    }
}

/// The blocks and footer of a mapped recording, from the first block (at `start`) on; pages
/// already read are handed back as in version 1.
pub fn run_mapped(
    map: &[u8],
    mapping: Option<&memmap2::Mmap>,
    start: usize,
    sink: &mut dyn Sink,
    path: &Path,
) -> ReplayEnd {
    let mut w = Walk {
        offset: start as u64,
        block: 0,
        events: 0,
    };
    let mut released = 0;
    loop {
        let pos = w.offset as usize;
        if pos - released >= RELEASE_BYTES {
            super::release(mapping, released, pos);
            released = pos;
        }
        let rest = &map[pos..];
        if rest.starts_with(END) {
            return w.footer(rest, path);
        }
        let Some((head, data)) = rest.split_first_chunk::<BLOCK_HEADER>() else {
            return w.truncated(rest.len());
        };
        let b = match parse_block_header(head, w.block) {
            Ok(b) => b,
            Err(what) => return w.corrupt(path, None, what),
        };
        let Some(data) = data.get(..b.events * EVENT_SIZE) else {
            return w.truncated(rest.len());
        };
        if let Err(end) = w.feed(&b, data, sink, path) {
            return *end;
        }
    }
}

/// The same through read(), for files that cannot be mapped; `start` is where the blocks begin.
pub fn run_stream(
    mut input: impl Read,
    start: usize,
    sink: &mut dyn Sink,
    path: &Path,
) -> Result<ReplayEnd, RecordingError> {
    let mut w = Walk {
        offset: start as u64,
        block: 0,
        events: 0,
    };
    let mut data = Vec::with_capacity(BLOCK_EVENTS * EVENT_SIZE);
    loop {
        let mut head = [0u8; BLOCK_HEADER];
        let n = read_full(&mut input, &mut head).map_err(|e| io_err(path, e))?;
        if n >= END.len() && head.starts_with(END) {
            let mut rest = head[..n].to_vec();
            input.read_to_end(&mut rest).map_err(|e| io_err(path, e))?;
            return Ok(w.footer(&rest, path));
        }
        if n < BLOCK_HEADER {
            return Ok(w.truncated(n));
        }
        let b = match parse_block_header(&head, w.block) {
            Ok(b) => b,
            Err(what) => return Ok(w.corrupt(path, None, what)),
        };
        data.resize(b.events * EVENT_SIZE, 0);
        let got = read_full(&mut input, &mut data).map_err(|e| io_err(path, e))?;
        if got < data.len() {
            return Ok(w.truncated(BLOCK_HEADER + got));
        }
        if let Err(end) = w.feed(&b, &data, sink, path) {
            return Ok(*end);
        }
    }
}
