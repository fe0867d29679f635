//! Recordings: the raw event stream on disk, so every output can be made again offline
//! (`gmp-trace replay`) and models can be tested on real traces without root.
//!
//! Written as version 2 (`v2`): `GMPTREC2`, u32 LE header length, u32 LE CRC32 of the header,
//! a JSON header; then blocks of 64-byte events exactly as the probes wrote them (native
//! endian, x86_64 little endian), each with a checksummed block header; then `GMPTEND2`, u32
//! LE length, CRC32 and a JSON footer with what is known only at the end. Version 1 (`v1`,
//! no checksums) is still read. docs/formats.md has the layout.
//!
//! Replay stops at the first block that fails its check: events before it were verified and
//! replayed, none from it on is fed to the model (after damage the model's state could only be
//! guessed), and `ReplayEnd::corrupt` says where, for the caller to report and fail with. A
//! recording cut short (crash, disk full) replays up to its last whole verified block.
//!
//! Kept free of crate-level items but `run::ProbeInfo` and `source::Sink`, so the fuzz target
//! (fuzz/src/lib.rs) compiles it.
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use gmp_trace_common::{Event, EVENT_SIZE};
use serde::{Deserialize, Serialize};

use super::Sink;
use crate::run::ProbeInfo;

mod v1;
pub mod v2;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Header {
    pub go_version: String,
    pub binary: String,
    pub main_module: Option<String>,
    /// The traced executable's Go build id (its identity; replay reports this one, not the
    /// build id of whatever binary is passed for symbols).
    #[serde(default)]
    pub build_id: Option<String>,
    pub mode: String,
    pub pid: u32,
    pub gmp_trace_version: String,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Footer {
    pub exit_code: Option<i32>,
    pub read_failures: u64,
    pub malformed_records: u64,
    pub probes: Vec<ProbeInfo>,
}

/// Writes a version 2 recording.
pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
    /// The block being filled: whole events' bytes, up to `v2::BLOCK_EVENTS`.
    block: Vec<u8>,
    blocks: u64,
}

impl Recorder {
    pub fn create(file: File, path: &Path, header: &Header) -> io::Result<Recorder> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        v2::write_framed(&mut out, v2::MAGIC, &serde_json::to_vec(header)?)?;
        Ok(Recorder {
            out,
            path: path.to_path_buf(),
            block: Vec::with_capacity(v2::BLOCK_EVENTS * EVENT_SIZE),
            blocks: 0,
        })
    }

    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        self.block.extend_from_slice(&e.to_bytes());
        if self.block.len() >= v2::BLOCK_EVENTS * EVENT_SIZE {
            self.write_block()?;
        }
        Ok(())
    }

    fn write_block(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        self.out
            .write_all(&v2::block_header(&self.block, self.blocks))?;
        self.out.write_all(&self.block)?;
        self.block.clear();
        self.blocks += 1;
        Ok(())
    }

    pub fn finish(mut self, footer: &Footer) -> io::Result<()> {
        self.write_block()?;
        v2::write_framed(&mut self.out, v2::END, &serde_json::to_vec(footer)?)?;
        self.out.flush()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot read recording {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("{0} is not a gmp-trace recording (made with `gmp-trace --record FILE`)")]
    NotRecording(PathBuf),
    #[error("recording {path} is corrupt: {what}")]
    Corrupt { path: PathBuf, what: String },
    /// Damage found by a version 2 block's (or the footer's) checksum.
    #[error(
        "recording {path} is corrupt at byte {offset} ({}): {what}; replay stopped there, \
         after the {first_event} events before it, all verified",
        block_range(*block, *first_event, *last_event)
    )]
    CorruptBlock {
        path: PathBuf,
        /// Where the bad block (or the footer) starts in the file.
        offset: u64,
        block: u64,
        /// Index of the block's first event in the recording, and its last when known (not
        /// when the block header itself is damaged).
        first_event: u64,
        last_event: Option<u64>,
        what: String,
    },
}

fn block_range(block: u64, first: u64, last: Option<u64>) -> String {
    match last {
        Some(last) => format!("block {block}, events {first}..={last}"),
        None => format!("block {block} or the footer, events from {first} on"),
    }
}

/// A recording opened for replay.
pub struct Replay {
    input: Input,
    version: u8,
    path: PathBuf,
    pub header: Header,
}

/// Where a replay's events come from.
enum Input {
    /// The file mapped, and where its events start: decoded in place, without the copy through
    /// read() that cost a replay a sixth of its time.
    Mapped(memmap2::Mmap, usize),
    /// Read through a buffer, and where the events start: files that cannot be mapped (a pipe,
    /// some file systems).
    Stream(BufReader<File>, usize),
}

/// What reading the events found besides them.
#[derive(Debug, Default)]
pub struct ReplayEnd {
    pub footer: Option<Footer>,
    /// Events handed to the sink (all verified, in a version 2 recording).
    pub events: u64,
    /// Bytes at the end that did not make a whole event (version 1) or a whole block (version
    /// 2): a recording cut short.
    pub truncated_bytes: usize,
    /// Where replay stopped on damage (version 2); the caller reports it and fails.
    pub corrupt: Option<RecordingError>,
}

fn io_err(path: &Path, source: io::Error) -> RecordingError {
    RecordingError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Replay {
    pub fn open(path: &Path) -> Result<Replay, RecordingError> {
        let file = File::open(path).map_err(|e| io_err(path, e))?;
        // SAFETY: the map is read-only and nothing here writes through it. The hazard is another
        // process shrinking the file while it is mapped (a read past the new end faults): a
        // recording only grows while it is written (the map sees the length it had here), and
        // one replaced on disk is a new inode that leaves this mapping intact, which is also
        // what recording again to the same path does (`export::files::open_recording` unlinks
        // the old file rather than truncating it); only another program truncating it in place
        // during the replay would be caught out.
        let (input, (header, version)) = match unsafe { memmap2::Mmap::map(&file) } {
            Ok(map) => {
                // Only a read-ahead hint: nothing depends on it being taken.
                let _ = map.advise(memmap2::Advice::Sequential);
                let mut rest: &[u8] = &map;
                let header = read_header(&mut rest, path)?;
                let start = map.len() - rest.len();
                (Input::Mapped(map, start), header)
            }
            Err(_) => {
                let mut input = BufReader::with_capacity(1 << 20, file);
                let mut counted = Counted(&mut input, 0);
                let header = read_header(&mut counted, path)?;
                let start = counted.1;
                (Input::Stream(input, start), header)
            }
        };
        Ok(Replay {
            input,
            version,
            path: path.to_path_buf(),
            header,
        })
    }

    /// The format's version: 1 (no checksums) or 2 (checksummed blocks).
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Feeds every event to `sink`; returns the footer (None when the recording was cut short)
    /// and, for a damaged version 2 recording, where replay stopped.
    pub fn run(self, sink: &mut dyn Sink) -> Result<ReplayEnd, RecordingError> {
        match (self.input, self.version) {
            (Input::Mapped(map, start), 1) => {
                v1::run_mapped(&map, Some(&map), start, sink, &self.path)
            }
            (Input::Stream(input, _), 1) => v1::run_stream(input, sink, &self.path),
            (Input::Mapped(map, start), _) => {
                Ok(v2::run_mapped(&map, Some(&map), start, sink, &self.path))
            }
            (Input::Stream(input, start), _) => v2::run_stream(input, start, sink, &self.path),
        }
    }
}

/// A whole recording in memory, through both readers (the mapped one and the read() one),
/// which must agree: the fuzz target's entry (fuzz/fuzz_targets/recording.rs), and the tests'.
#[allow(
    dead_code,
    reason = "called by the fuzz target and the tests; the tracer itself replays files"
)]
pub fn replay_bytes(
    bytes: &[u8],
    sink: &mut dyn Sink,
) -> Result<(Header, ReplayEnd), RecordingError> {
    let path = Path::new("<memory>");
    let mut rest = bytes;
    let (header, version) = read_header(&mut rest, path)?;
    let start = bytes.len() - rest.len();
    let mut mapped = Keep(Vec::new(), Some(sink));
    let end = match version {
        1 => v1::run_mapped(bytes, None, start, &mut mapped, path)?,
        _ => v2::run_mapped(bytes, None, start, &mut mapped, path),
    };
    // The read() path, from a reader that hands out a few bytes at a time (short reads).
    let input = BufReader::with_capacity(7, Trickle(rest));
    let mut streamed = Keep(Vec::new(), None);
    let stream = match version {
        1 => v1::run_stream(input, &mut streamed, path)?,
        _ => v2::run_stream(input, start, &mut streamed, path)?,
    };
    let same = mapped.0 == streamed.0
        && stream.events == end.events
        && mapped.0.len() as u64 == end.events
        && stream.footer == end.footer
        && stream.truncated_bytes == end.truncated_bytes
        && stream.corrupt.as_ref().map(ToString::to_string)
            == end.corrupt.as_ref().map(ToString::to_string);
    assert!(
        same,
        "the two readers disagree: mapped {end:?}, read() {stream:?}"
    );
    Ok((header, end))
}

/// A reader that returns at most 5 bytes per read.
struct Trickle<'a>(&'a [u8]);

impl Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(5).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Keeps the events, passing them on to a sink if given.
struct Keep<'a>(Vec<Event>, Option<&'a mut dyn Sink>);

impl Sink for Keep<'_> {
    fn event(&mut self, e: &Event) {
        self.0.push(*e);
        if let Some(s) = &mut self.1 {
            s.event(e);
        }
    }
    fn malformed(&mut self, len: usize) {
        if let Some(s) = &mut self.1 {
            s.malformed(len);
        }
    }
}

/// A reader that counts the bytes read through it (where the stream's events start).
struct Counted<R>(R, usize);

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.0.read(buf)?;
        self.1 += n;
        Ok(n)
    }
}

/// The header and the format's version (1 or 2).
fn read_header(input: &mut impl Read, path: &Path) -> Result<(Header, u8), RecordingError> {
    let corrupt = |what: String| RecordingError::Corrupt {
        path: path.to_path_buf(),
        what: format!("header: {what}"),
    };
    let mut magic = [0u8; 8];
    if input.read_exact(&mut magic).is_err() {
        return Err(RecordingError::NotRecording(path.to_path_buf()));
    }
    let version = match &magic {
        m if m == v1::MAGIC => 1,
        m if m == v2::MAGIC => 2,
        _ => return Err(RecordingError::NotRecording(path.to_path_buf())),
    };
    let mut len_crc = [0u8; 8];
    let fixed = if version == 1 { 4 } else { 8 };
    input
        .read_exact(&mut len_crc[..fixed])
        .map_err(|e| corrupt(e.to_string()))?;
    let len = u32::from_le_bytes([len_crc[0], len_crc[1], len_crc[2], len_crc[3]]) as usize;
    if len > 1 << 20 {
        return Err(corrupt(format!("length {len}")));
    }
    let mut h = vec![0u8; len];
    input
        .read_exact(&mut h)
        .map_err(|e| corrupt(e.to_string()))?;
    let json = if version == 1 {
        &h[..]
    } else {
        v2::check_framed(&len_crc, &h).map_err(corrupt)?
    };
    let header = serde_json::from_slice(json).map_err(|e| corrupt(e.to_string()))?;
    Ok((header, version))
}

/// How much of a mapped recording is read before its pages are handed back.
const RELEASE_BYTES: usize = 4 << 20;

/// Hands back the pages of `map[from..to]`, already read: a replay's memory does not grow with
/// the recording (the kernel keeps them in its page cache either way).
fn release(map: Option<&memmap2::Mmap>, from: usize, to: usize) {
    let Some(map) = map else { return };
    // SAFETY: the mapping is a read-only view of a file: dropped pages read the file again if
    // touched, so no data is lost (DONTNEED only discards private changes, and there are none).
    // Nothing holds a reference into the range: readers are past it.
    let _ =
        unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, from, to - from) };
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests;
