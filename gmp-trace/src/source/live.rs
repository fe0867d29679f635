//! The live source: the BPF ring buffer, emptied by a reader thread of its own, plus the
//! per-CPU failure counters, turned into `Lost` events in the stream the moment they move (and
//! the failed-steal counter into `StealFailed` events the same way).
//!
//! Why a thread: the ring is what the probes write into, and whatever does not fit is lost. When
//! the daemon read it itself, between building the model and writing the outputs, a burst
//! (a million goroutines released at once, on a target that saturates every CPU) outran it: the
//! ring emptied only as fast as events were processed, and only when the daemon got a CPU. The
//! reader does nothing but move records from the ring into memory (~10 ns an event), wakes when
//! the probes say a lot is waiting (and every few ms regardless), and asks for a real-time
//! priority so that a busy target cannot keep it off a CPU (dropped, with a log line, where that
//! is not permitted). What it reads waits in memory for the pipeline, up to [`QUEUE_LIMIT`]
//! events; past that it stops reading and the ring's own loss counters say what was lost.
use std::os::fd::{AsFd as _, AsRawFd as _};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use aya::maps::{MapData, RingBuf};
use gmp_trace_common::{Event, EventKind};
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver, UnboundedSender};

use super::Sink;
use crate::probes::Tracer;

/// Events read from the ring and not yet handed to the pipeline, at most: 16M events, 1 GiB.
/// A pipeline that far behind is not catching up; the ring's loss counters take over.
pub const QUEUE_LIMIT: usize = 1 << 24;

/// Events per message from the reader (fewer when the ring runs dry first).
const BATCH: usize = 4096;

/// How long the reader sleeps when no wakeup comes: the longest an event waits in the ring (the
/// probes wake it once 256 KiB wait, long before the ring fills).
const POLL_MS: i32 = 20;

/// One message from the reader.
struct Batch {
    events: Vec<Event>,
    /// Lengths of records too short to be events.
    malformed: Vec<usize>,
}

/// What the reader thread shares with the source.
struct Shared {
    stop: AtomicBool,
    /// Events sent and not yet taken out of the channel.
    queued: AtomicUsize,
}

pub struct LiveSource {
    batches: UnboundedReceiver<Batch>,
    shared: Arc<Shared>,
    reader: Option<JoinHandle<RingBuf<MapData>>>,
    pid: u32,
    lost_total: u64,
    read_failures: u64,
    steal_failed_total: u64,
    ring_bytes: u32,
}

/// CLOCK_MONOTONIC now, in ns: the clock the probes stamp events with.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec for clock_gettime to fill.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

impl LiveSource {
    pub fn new(tracer: &mut Tracer, pid: u32, ring_bytes: u32) -> anyhow::Result<LiveSource> {
        let ring = tracer.take_ring()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
        });
        let (tx, batches) = unbounded_channel();
        let reader = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("gmp-trace-ring".into())
                .spawn(move || read_ring(ring, &tx, &shared))
                .map_err(|e| anyhow::anyhow!("starting the ring buffer's reader: {e}"))?
        };
        Ok(LiveSource {
            batches,
            shared,
            reader: Some(reader),
            pid,
            lost_total: 0,
            read_failures: 0,
            steal_failed_total: 0,
            ring_bytes,
        })
    }

    /// Waits until the reader has events, then hands them (and whatever else is waiting) to
    /// `sink`.
    pub async fn readable(&mut self, sink: &mut dyn Sink) -> anyhow::Result<()> {
        match self.batches.recv().await {
            Some(b) => self.deliver(b, sink),
            // The reader is gone: nothing comes any more (`drain` and `finish` say why).
            None => std::future::pending::<()>().await,
        }
        self.drain(sink);
        Ok(())
    }

    /// Hands what the reader has read so far to `sink`, without waiting.
    pub fn drain(&mut self, sink: &mut dyn Sink) {
        while let Ok(b) = self.batches.try_recv() {
            self.deliver(b, sink);
        }
    }

    /// Stops the reader and hands `sink` everything the probes wrote: what the reader had
    /// read, then what is still in the ring.
    pub fn finish(&mut self, sink: &mut dyn Sink) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let ring = self.reader.take().and_then(|r| r.join().ok());
        self.drain(sink);
        if let Some(mut ring) = ring {
            while let Some(item) = ring.next() {
                match Event::from_bytes(&item) {
                    Some(e) => sink.event(&e),
                    None => sink.malformed(item.len()),
                }
            }
        }
    }

    fn deliver(&mut self, b: Batch, sink: &mut dyn Sink) {
        self.shared
            .queued
            .fetch_sub(b.events.len(), Ordering::Relaxed);
        for e in &b.events {
            sink.event(e);
        }
        for len in b.malformed {
            sink.malformed(len);
        }
    }

    /// Checks the probes' failure counters; a rise in dropped events becomes a `Lost` event.
    pub fn check_losses(&mut self, tracer: &Tracer, sink: &mut dyn Sink) -> anyhow::Result<()> {
        let (lost, read_failed, steal_failed) = tracer.counters()?;
        self.read_failures = read_failed;
        if lost > self.lost_total {
            if self.lost_total == 0 {
                // Once, at the first loss; the count itself travels in the stream.
                log::warn!(
                    "the ring buffer ({} bytes) was full: events are being lost; give a larger \
                     --buffer-size or --event-rate",
                    self.ring_bytes
                );
            }
            sink.event(&self.counter_event(EventKind::Lost, lost - self.lost_total, lost));
            self.lost_total = lost;
        }
        if steal_failed > self.steal_failed_total {
            let rise = steal_failed - self.steal_failed_total;
            sink.event(&self.counter_event(EventKind::StealFailed, rise, steal_failed));
            self.steal_failed_total = steal_failed;
        }
        Ok(())
    }

    /// A synthetic event reporting a probe counter's rise (`arg0`) and its total (`arg1`).
    fn counter_event(&self, kind: EventKind, rise: u64, total: u64) -> Event {
        Event {
            ts: monotonic_ns(),
            kind: kind as u32,
            pid: self.pid,
            p: -1,
            m: -1,
            arg0: rise,
            arg1: total,
            ..Event::default()
        }
    }

    pub fn read_failures(&self) -> u64 {
        self.read_failures
    }
}

impl Drop for LiveSource {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// The reader thread: empties the ring into batches until told to stop (or the source is
/// gone), then gives the ring back for the last records.
fn read_ring(
    mut ring: RingBuf<MapData>,
    tx: &UnboundedSender<Batch>,
    shared: &Shared,
) -> RingBuf<MapData> {
    raise_priority();
    let fd = ring.as_fd().as_raw_fd();
    while !shared.stop.load(Ordering::Relaxed) {
        if shared.queued.load(Ordering::Relaxed) >= QUEUE_LIMIT {
            // The pipeline is far behind. Waiting on the ring would return at once (it holds
            // data), a busy loop at real-time priority: sleep instead, and let the ring fill.
            std::thread::sleep(std::time::Duration::from_millis(POLL_MS as u64));
            continue;
        }
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the ring's fd, which the ring keeps open.
        unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        if !read_batches(&mut ring, tx, shared) {
            break;
        }
    }
    ring
}

/// Moves what the ring holds into batches; false when the source is gone.
fn read_batches(ring: &mut RingBuf<MapData>, tx: &UnboundedSender<Batch>, shared: &Shared) -> bool {
    loop {
        if shared.queued.load(Ordering::Relaxed) >= QUEUE_LIMIT {
            // The pipeline is far behind: leave the rest to the ring (and its loss counters);
            // `read_ring` sleeps until it catches up.
            return true;
        }
        let mut b = Batch {
            events: Vec::with_capacity(BATCH),
            malformed: Vec::new(),
        };
        while b.events.len() < BATCH {
            let Some(item) = ring.next() else { break };
            match Event::from_bytes(&item) {
                Some(e) => b.events.push(e),
                None => b.malformed.push(item.len()),
            }
        }
        let (n, dry) = (b.events.len(), b.events.len() < BATCH);
        if n == 0 && b.malformed.is_empty() {
            return true;
        }
        shared.queued.fetch_add(n, Ordering::Relaxed);
        if tx.send(b).is_err() {
            return false;
        }
        if dry {
            return true;
        }
    }
}

/// A real-time priority (SCHED_FIFO 1, the lowest) for the calling thread, else a nice of -10,
/// else none: said once in the log, never an error.
fn raise_priority() {
    // SAFETY: sched_param is plain integers, all zero is valid (musl's has more fields).
    let mut param: libc::sched_param = unsafe { std::mem::zeroed() };
    param.sched_priority = 1;
    // The system call itself: musl's sched_setscheduler() always fails (ENOSYS, the Linux call
    // being per thread), which would cost the static build its real-time ring reader.
    // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param that outlives the call.
    let set = unsafe {
        libc::syscall(
            libc::SYS_sched_setscheduler,
            0,
            libc::SCHED_FIFO,
            &param as *const libc::sched_param,
        )
    };
    if set == 0 {
        log::debug!("ring reader: SCHED_FIFO 1");
        return;
    }
    // SAFETY: gettid has no preconditions.
    let tid = unsafe { libc::gettid() };
    // SAFETY: setpriority on our own thread id.
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, -10) } == 0 {
        log::debug!("ring reader: nice -10 (no real-time priority here)");
    } else {
        log::info!("ring reader: normal priority (neither SCHED_FIFO nor a lower nice allowed)");
    }
}
