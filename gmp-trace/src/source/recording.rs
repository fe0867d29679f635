//! Recordings: the raw event stream on disk, so every output can be made again offline
//! (`gmp-trace replay`) and models can be tested on real traces without root.
//!
//! Layout: `GMPTREC1`, u32 LE header length, a JSON header; then 64-byte events exactly as the
//! probes wrote them (native endian, x86_64 little endian); then `GMPTEND1`, u32 LE length and a
//! JSON footer with what is known only at the end. A recording cut short (crash, disk full)
//! still replays up to its last whole event.
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use gmp_trace_common::{Event, EVENT_SIZE};
use serde::{Deserialize, Serialize};

use super::Sink;
use crate::run::ProbeInfo;

const MAGIC: &[u8; 8] = b"GMPTREC1";
const END: &[u8; 8] = b"GMPTEND1";

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

pub struct Recorder {
    out: BufWriter<File>,
    path: PathBuf,
}

impl Recorder {
    pub fn create(file: File, path: &Path, header: &Header) -> io::Result<Recorder> {
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let h = serde_json::to_vec(header)?;
        out.write_all(MAGIC)?;
        out.write_all(&(h.len() as u32).to_le_bytes())?;
        out.write_all(&h)?;
        Ok(Recorder {
            out,
            path: path.to_path_buf(),
        })
    }

    pub fn event(&mut self, e: &Event) -> io::Result<()> {
        self.out.write_all(&e.to_bytes())
    }

    pub fn finish(mut self, footer: &Footer) -> io::Result<()> {
        let f = serde_json::to_vec(footer)?;
        self.out.write_all(END)?;
        self.out.write_all(&(f.len() as u32).to_le_bytes())?;
        self.out.write_all(&f)?;
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
    #[error("recording {path} has a corrupt header: {what}")]
    Corrupt { path: PathBuf, what: String },
}

/// A recording opened for replay.
pub struct Replay {
    input: Input,
    path: PathBuf,
    pub header: Header,
}

/// Where a replay's events come from.
enum Input {
    /// The file mapped, and where its events start: decoded in place, without the copy through
    /// read() that cost a replay a sixth of its time.
    Mapped(memmap2::Mmap, usize),
    /// Read through a buffer: files that cannot be mapped (a pipe, some file systems).
    Stream(BufReader<File>),
}

/// What reading the events found besides them.
#[derive(Debug, Default)]
pub struct ReplayEnd {
    pub footer: Option<Footer>,
    /// Bytes at the end that did not make a whole event (a recording cut short).
    pub truncated_bytes: usize,
}

impl Replay {
    pub fn open(path: &Path) -> Result<Replay, RecordingError> {
        let io_err = |source| RecordingError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        // SAFETY: the map is read-only and nothing here writes through it. The hazard is another
        // process shrinking the file while it is mapped (a read past the new end faults): a
        // recording only grows while it is written (the map sees the length it had here), and
        // one replaced on disk is a new inode that leaves this mapping intact, which is also
        // what recording again to the same path does (`preflight::open_recording` unlinks the
        // old file rather than truncating it); only another program truncating it in place
        // during the replay would be caught out.
        let (input, header) = match unsafe { memmap2::Mmap::map(&file) } {
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
                let header = read_header(&mut input, path)?;
                (Input::Stream(input), header)
            }
        };
        Ok(Replay {
            input,
            path: path.to_path_buf(),
            header,
        })
    }

    /// Feeds every event to `sink`; returns the footer (None when the recording was cut short).
    pub fn run(self, sink: &mut dyn Sink) -> Result<ReplayEnd, RecordingError> {
        match self.input {
            Input::Mapped(map, start) => run_mapped(&map, start, sink, &self.path),
            Input::Stream(input) => run_stream(input, sink, &self.path),
        }
    }
}

fn read_header(input: &mut impl Read, path: &Path) -> Result<Header, RecordingError> {
    let io_err = |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut magic = [0u8; 8];
    if input.read_exact(&mut magic).is_err() || &magic != MAGIC {
        return Err(RecordingError::NotRecording(path.to_path_buf()));
    }
    let mut len = [0u8; 4];
    input.read_exact(&mut len).map_err(io_err)?;
    let len = u32::from_le_bytes(len) as usize;
    if len > 1 << 20 {
        return Err(RecordingError::Corrupt {
            path: path.to_path_buf(),
            what: format!("header length {len}"),
        });
    }
    let mut h = vec![0u8; len];
    input.read_exact(&mut h).map_err(io_err)?;
    serde_json::from_slice(&h).map_err(|e| RecordingError::Corrupt {
        path: path.to_path_buf(),
        what: e.to_string(),
    })
}

/// How much of a mapped recording is read before its pages are handed back.
const RELEASE_BYTES: usize = 4 << 20;

/// The events and footer of a mapped recording, from the first event (at `start`) on. Pages
/// already read are dropped from the mapping as it goes, so a replay's memory does not grow
/// with the recording (the kernel keeps them in its page cache either way).
fn run_mapped(
    map: &memmap2::Mmap,
    start: usize,
    sink: &mut dyn Sink,
    path: &Path,
) -> Result<ReplayEnd, RecordingError> {
    let mut rest = &map[start..];
    let mut released = 0;
    loop {
        let pos = map.len() - rest.len();
        if pos - released >= RELEASE_BYTES {
            // SAFETY: the mapping is a read-only view of a file: dropped pages read the file
            // again if touched, so no data is lost (DONTNEED only discards private changes,
            // and there are none). Nothing holds a reference into the range: `rest` is past it.
            let _ = unsafe {
                map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    released,
                    pos - released,
                )
            };
            released = pos;
        }
        if rest.starts_with(END) {
            return parse_footer(&rest[END.len()..], path).map(|f| ReplayEnd {
                footer: Some(f),
                truncated_bytes: 0,
            });
        }
        let Some((bytes, tail)) = rest.split_first_chunk::<EVENT_SIZE>() else {
            return Ok(ReplayEnd {
                footer: None,
                truncated_bytes: rest.len(),
            });
        };
        match Event::from_bytes(bytes) {
            Some(e) => sink.event(&e),
            None => sink.malformed(EVENT_SIZE),
        }
        rest = tail;
    }
}

fn run_stream(
    mut input: BufReader<File>,
    sink: &mut dyn Sink,
    path: &Path,
) -> Result<ReplayEnd, RecordingError> {
    let io_err = |source| RecordingError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = [0u8; EVENT_SIZE];
    loop {
        let n = read_full(&mut input, &mut buf).map_err(io_err)?;
        if n >= END.len() && &buf[..END.len()] == END {
            let mut rest = buf[END.len()..n].to_vec();
            input.read_to_end(&mut rest).map_err(io_err)?;
            return parse_footer(&rest, path).map(|f| ReplayEnd {
                footer: Some(f),
                truncated_bytes: 0,
            });
        }
        if n < EVENT_SIZE {
            return Ok(ReplayEnd {
                footer: None,
                truncated_bytes: n,
            });
        }
        match Event::from_bytes(&buf) {
            Some(e) => sink.event(&e),
            None => sink.malformed(n),
        }
    }
}

/// The footer after `GMPTEND1`: its u32 LE length, then JSON.
fn parse_footer(rest: &[u8], path: &Path) -> Result<Footer, RecordingError> {
    let corrupt = |what: String| RecordingError::Corrupt {
        path: path.to_path_buf(),
        what,
    };
    if rest.len() < 4 {
        return Err(corrupt("footer too short".into()));
    }
    let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let body = rest
        .get(4..4 + len)
        .ok_or_else(|| corrupt("footer cut short".into()))?;
    serde_json::from_slice(body).map_err(|e| corrupt(e.to_string()))
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
mod tests {
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

    #[test]
    fn round_trip_and_truncation() {
        let dir = std::env::temp_dir().join(format!("gmpt-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.gmpt");
        let mut r = Recorder::create(File::create(&p).unwrap(), &p, &header()).unwrap();
        let evs: Vec<Event> = (0..1000u64)
            .map(|i| Event {
                ts: i,
                kind: 5,
                goid: i * 3,
                ..Event::default()
            })
            .collect();
        for e in &evs {
            r.event(e).unwrap();
        }
        let footer = Footer {
            exit_code: Some(3),
            read_failures: 1,
            ..Footer::default()
        };
        r.finish(&footer).unwrap();
        let rp = Replay::open(&p).unwrap();
        assert_eq!(rp.header, header());
        let mut c = Collect(Vec::new());
        let end = rp.run(&mut c).unwrap();
        assert_eq!(c.0, evs);
        assert_eq!(end.footer, Some(footer.clone()));
        // Cut mid-event: all whole events replay, no footer.
        let bytes = std::fs::read(&p).unwrap();
        let cut = dir.join("cut.gmpt");
        let hdr = 12 + serde_json::to_vec(&header()).unwrap().len();
        std::fs::write(&cut, &bytes[..hdr + 64 * 500 + 10]).unwrap();
        let mut c = Collect(Vec::new());
        let end = Replay::open(&cut).unwrap().run(&mut c).unwrap();
        assert_eq!(c.0.len(), 500);
        assert_eq!(end.truncated_bytes, 10);
        assert!(end.footer.is_none());
        // Through the read() path too (files that cannot be mapped): the same events.
        let mut input = BufReader::new(File::open(&cut).unwrap());
        assert_eq!(read_header(&mut input, &cut).unwrap(), header());
        let mut c = Collect(Vec::new());
        let end = run_stream(input, &mut c, &cut).unwrap();
        assert_eq!(c.0.len(), 500);
        assert_eq!(end.truncated_bytes, 10);
        let mut input = BufReader::new(File::open(&p).unwrap());
        read_header(&mut input, &p).unwrap();
        let mut c = Collect(Vec::new());
        let end = run_stream(input, &mut c, &p).unwrap();
        assert_eq!(c.0, evs);
        assert_eq!(end.footer, Some(footer));
        // Not a recording.
        std::fs::write(&cut, b"hello").unwrap();
        assert!(matches!(
            Replay::open(&cut),
            Err(RecordingError::NotRecording(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
