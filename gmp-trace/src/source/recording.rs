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
use crate::export::summary::ProbeInfo;

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
    input: BufReader<File>,
    path: PathBuf,
    pub header: Header,
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
        let mut input = BufReader::with_capacity(1 << 20, File::open(path).map_err(io_err)?);
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
        let header = serde_json::from_slice(&h).map_err(|e| RecordingError::Corrupt {
            path: path.to_path_buf(),
            what: e.to_string(),
        })?;
        Ok(Replay {
            input,
            path: path.to_path_buf(),
            header,
        })
    }

    /// Feeds every event to `sink`; returns the footer (None when the recording was cut short).
    pub fn run(mut self, sink: &mut dyn Sink) -> Result<ReplayEnd, RecordingError> {
        let path = self.path.clone();
        let io_err = |source| RecordingError::Io {
            path: path.clone(),
            source,
        };
        let mut buf = [0u8; EVENT_SIZE];
        loop {
            let n = read_full(&mut self.input, &mut buf).map_err(io_err)?;
            if n < EVENT_SIZE {
                if n >= 8 && &buf[..8] == END {
                    return self.footer(&buf[8..n]).map(|f| ReplayEnd {
                        footer: Some(f),
                        truncated_bytes: 0,
                    });
                }
                return Ok(ReplayEnd {
                    footer: None,
                    truncated_bytes: n,
                });
            }
            if &buf[..8] == END {
                return self.footer(&buf[8..]).map(|f| ReplayEnd {
                    footer: Some(f),
                    truncated_bytes: 0,
                });
            }
            match Event::from_bytes(&buf) {
                Some(e) => sink.event(&e),
                None => sink.malformed(n),
            }
        }
    }

    fn footer(mut self, already: &[u8]) -> Result<Footer, RecordingError> {
        let mut rest = already.to_vec();
        self.input
            .read_to_end(&mut rest)
            .map_err(|source| RecordingError::Io {
                path: self.path.clone(),
                source,
            })?;
        let corrupt = |what: String| RecordingError::Corrupt {
            path: self.path.clone(),
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
        assert_eq!(end.footer, Some(footer));
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
        // Not a recording.
        std::fs::write(&cut, b"hello").unwrap();
        assert!(matches!(
            Replay::open(&cut),
            Err(RecordingError::NotRecording(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
