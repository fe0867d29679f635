//! The bytes of Go's execution trace, version `go 1.26` (internal/trace/tracev2): the header,
//! per-thread event batches, the string and stack tables, the sync batch (frequency and clock
//! snapshot) and the end-of-generation marker. Knows nothing about goroutines: `state.rs`
//! decides what to write, this file how it is laid out.
//!
//! Everything is one generation: a reader of version 1.26 takes a generation's batches in any
//! order until the EndOfGeneration byte, so per-thread batches are written as they fill (64 KiB
//! at most each, the reader's limit) and the tables, the sync batch and the end marker at the
//! end. Timestamps are CLOCK_MONOTONIC nanoseconds (frequency 1e9): the clock of our probes
//! and of Go's own tracer (which divides it by 64).
use std::collections::BTreeMap;
use std::io::{self, Write};

use crate::fasthash::FastMap;

/// The trace version written: the newest Go 1.27's `go tool trace` reads (version.Current).
pub const VERSION_MINOR: u32 = 26;

/// A generation's number (the reader rejects 0).
const GENERATION: u64 = 1;

/// The batch size we cut at: below the reader's 64 KiB `MaxBatchSize` with room for the
/// largest event (a handful of varints).
const BATCH_CUT: usize = 60 << 10;

/// The reader's limit on one string (MaxEventTrailerDataSize).
const MAX_STRING: usize = 1 << 10;

/// "No thread" (ThreadID -1) as the wire's unsigned varint.
pub const NO_THREAD: u64 = u64::MAX;

/// Event types (tracev2 EventType): the numbers are the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Ev {
    EventBatch = 1,
    Stacks = 2,
    Stack = 3,
    Strings = 4,
    String = 5,
    CpuSamples = 6,
    CpuSample = 7,
    Frequency = 8,
    ProcsChange = 9,
    ProcStart = 10,
    ProcStop = 11,
    ProcSteal = 12,
    ProcStatus = 13,
    GoCreate = 14,
    GoStart = 16,
    GoDestroy = 17,
    GoDestroySyscall = 18,
    GoStop = 19,
    GoBlock = 20,
    GoUnblock = 21,
    GoSyscallBegin = 22,
    GoSyscallEnd = 23,
    GoSyscallEndBlocked = 24,
    GoStatus = 25,
    StwBegin = 26,
    StwEnd = 27,
    GcBegin = 29,
    GcEnd = 30,
    UserLog = 44,
    GoStatusStack = 48,
    Sync = 50,
    ClockSnapshot = 51,
    EndOfGeneration = 52,
}

pub fn uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

/// One thread's open batch.
#[derive(Default)]
struct Batch {
    /// When the batch began (its first event), and the time of its last event: events carry
    /// the difference to the previous one.
    start: u64,
    last: u64,
    data: Vec<u8>,
}

/// The string table: ids from 1 (0 is the empty string to the reader).
#[derive(Default)]
pub struct Strings {
    ids: FastMap<String, u64>,
    order: Vec<String>,
}

impl Strings {
    pub fn id(&mut self, s: &str) -> u64 {
        if s.is_empty() {
            return 0;
        }
        if let Some(&id) = self.ids.get(s) {
            return id;
        }
        let mut s = s.to_string();
        if s.len() > MAX_STRING {
            let mut cut = MAX_STRING;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        self.order.push(s.clone());
        let id = self.order.len() as u64;
        self.ids.insert(s, id);
        id
    }
}

/// One frame of a stack as the table stores it (string ids for the function and file).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Frame {
    pub pc: u64,
    pub func: u64,
    pub file: u64,
    pub line: u64,
}

/// The stack table: id 0 is "no stack", which is what every event carries until stacks are
/// captured; `intern` is the hook for them (a stack used twice gets one id).
#[derive(Default)]
pub struct Stacks {
    ids: FastMap<Vec<Frame>, u64>,
    order: Vec<Vec<Frame>>,
}

impl Stacks {
    /// The id of a stack (innermost frame first); the empty stack is 0.
    pub fn intern(&mut self, frames: &[Frame]) -> u64 {
        if frames.is_empty() {
            return 0;
        }
        if let Some(&id) = self.ids.get(frames) {
            return id;
        }
        self.order.push(frames.to_vec());
        let id = self.order.len() as u64;
        self.ids.insert(frames.to_vec(), id);
        id
    }
}

/// The file being written: batches per thread, tables, and the output.
pub struct Wire<W: Write> {
    out: W,
    batches: BTreeMap<u32, Batch>,
    pub strings: Strings,
    pub stacks: Stacks,
    /// The open batch of CPU samples (after its CpuSamples header byte), and its first time.
    samples: Vec<u8>,
    samples_start: u64,
    /// The earliest event time (the sync batch's time).
    first: Option<u64>,
}

impl<W: Write> Wire<W> {
    /// Writes the header.
    pub fn new(mut out: W) -> io::Result<Self> {
        write!(out, "go 1.{VERSION_MINOR} trace\x00\x00\x00")?;
        Ok(Wire {
            out,
            batches: BTreeMap::new(),
            strings: Strings::default(),
            stacks: Stacks::default(),
            samples: Vec::new(),
            samples_start: 0,
            first: None,
        })
    }

    /// The time of the first event written, if any.
    pub fn first(&self) -> Option<u64> {
        self.first
    }

    /// Appends a CPU sample: thread `m`, P `p` (`NO_THREAD`'s all-ones for none), goroutine `g`
    /// (0: none), stack `stack`. Samples go in batches of their own (no thread), with absolute
    /// times, as the runtime writes them.
    pub fn cpu_sample(&mut self, ts: u64, m: u64, p: u64, g: u64, stack: u64) -> io::Result<()> {
        if self.samples.is_empty() {
            self.samples.push(Ev::CpuSamples as u8);
            self.samples_start = ts;
        }
        self.samples.push(Ev::CpuSample as u8);
        for v in [ts, m, p, g, stack] {
            uvarint(&mut self.samples, v);
        }
        if self.samples.len() >= BATCH_CUT {
            let data = std::mem::take(&mut self.samples);
            write_batch(&mut self.out, NO_THREAD, self.samples_start, &data)?;
        }
        Ok(())
    }

    /// Appends a timed event on thread `m` at `ts` (callers keep `ts` non-decreasing).
    pub fn event(&mut self, m: u32, ts: u64, ev: Ev, args: &[u64]) -> io::Result<()> {
        self.first.get_or_insert(ts);
        let b = self.batches.entry(m).or_default();
        if b.data.is_empty() {
            b.start = ts;
            b.last = ts;
        }
        b.data.push(ev as u8);
        uvarint(&mut b.data, ts.saturating_sub(b.last));
        b.last = ts;
        for &a in args {
            uvarint(&mut b.data, a);
        }
        if b.data.len() >= BATCH_CUT {
            let data = std::mem::take(&mut b.data);
            let start = b.start;
            write_batch(&mut self.out, m as u64, start, &data)?;
        }
        Ok(())
    }

    /// Writes what is left: the open batches, the tables, the sync batch, the generation's end.
    pub fn finish(mut self) -> io::Result<W> {
        let first = self.first.unwrap_or(0);
        for (m, b) in std::mem::take(&mut self.batches) {
            if !b.data.is_empty() {
                write_batch(&mut self.out, m as u64, b.start, &b.data)?;
            }
        }
        if !self.samples.is_empty() {
            let data = std::mem::take(&mut self.samples);
            write_batch(&mut self.out, NO_THREAD, self.samples_start, &data)?;
        }
        self.write_strings(first)?;
        self.write_stacks(first)?;
        self.write_sync(first)?;
        self.out.write_all(&[Ev::EndOfGeneration as u8])?;
        Ok(self.out)
    }

    fn write_strings(&mut self, ts: u64) -> io::Result<()> {
        let mut data = vec![Ev::Strings as u8];
        for (i, s) in self.strings.order.iter().enumerate() {
            if data.len() + s.len() + 24 > BATCH_CUT {
                write_batch(&mut self.out, NO_THREAD, ts, &data)?;
                data = vec![Ev::Strings as u8];
            }
            data.push(Ev::String as u8);
            uvarint(&mut data, i as u64 + 1);
            uvarint(&mut data, s.len() as u64);
            data.extend_from_slice(s.as_bytes());
        }
        if data.len() > 1 {
            write_batch(&mut self.out, NO_THREAD, ts, &data)?;
        }
        Ok(())
    }

    fn write_stacks(&mut self, ts: u64) -> io::Result<()> {
        let mut data = vec![Ev::Stacks as u8];
        for (i, frames) in self.stacks.order.iter().enumerate() {
            if data.len() + frames.len() * 40 + 24 > BATCH_CUT {
                write_batch(&mut self.out, NO_THREAD, ts, &data)?;
                data = vec![Ev::Stacks as u8];
            }
            data.push(Ev::Stack as u8);
            uvarint(&mut data, i as u64 + 1);
            uvarint(&mut data, frames.len() as u64);
            for f in frames {
                for v in [f.pc, f.func, f.file, f.line] {
                    uvarint(&mut data, v);
                }
            }
        }
        if data.len() > 1 {
            write_batch(&mut self.out, NO_THREAD, ts, &data)?;
        }
        Ok(())
    }

    /// The frequency (ns) and a clock snapshot at the first event: our clock is the monotonic
    /// one; the wall clock is not in the event stream (recordings replay byte for byte), so the
    /// snapshot's wall time is the Unix epoch.
    fn write_sync(&mut self, ts: u64) -> io::Result<()> {
        let mut data = vec![Ev::Sync as u8, Ev::Frequency as u8];
        uvarint(&mut data, 1_000_000_000);
        data.push(Ev::ClockSnapshot as u8);
        for v in [0, ts, 0, 0] {
            uvarint(&mut data, v);
        }
        write_batch(&mut self.out, NO_THREAD, ts, &data)
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

fn write_batch<W: Write>(out: &mut W, m: u64, ts: u64, data: &[u8]) -> io::Result<()> {
    let mut head = vec![Ev::EventBatch as u8];
    for v in [GENERATION, m, ts, data.len() as u64] {
        uvarint(&mut head, v);
    }
    out.write_all(&head)?;
    out.write_all(data)
}
