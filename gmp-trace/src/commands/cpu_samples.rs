//! `--sample-rate HZ` on the trace command: the CPU sampler of `profile` and `top` running
//! beside the probes, its samples unwound on a thread of their own while the trace runs (the
//! sampler's ring holds a quarter of a second) and handed to the Go trace at the end, where
//! they become the CPU samples Go's own runtime writes into its traces when a CPU profile runs.
//! The sampler costs no trap per scheduling event (docs/benchmarks.md: ~17 µs per sample).
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use gmp_trace_common::Offsets;

use crate::binary::GoBinary;
use crate::probes::Sampler;
use crate::process::maps::load_bias;
use crate::run::CpuSampleCounts;
use crate::source::sampler::{CpuSample, Unwinder};

/// Samples kept at most (~100 MB of frames); the rest are counted, not kept. At 99 Hz on every
/// CPU of a 64-CPU machine that is more than two minutes of a saturated target.
const MAX_SAMPLES: usize = 1 << 20;

/// How often the thread empties the sampler's ring.
const DRAIN_EVERY: Duration = Duration::from_millis(50);

/// The sampler and the thread collecting its samples.
pub struct CpuSampling {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<anyhow::Result<Collected>>,
}

/// What the sampler gave.
pub struct Collected {
    pub samples: Vec<CpuSample>,
    pub counts: CpuSampleCounts,
}

impl CpuSampling {
    /// Attaches the sampler to the pid in `offsets` at `rate_hz` and starts collecting. The
    /// thread reads the executable at `exe` itself, and the load bias once the first sample
    /// shows the program runs (a launched program is still held before its exec here).
    pub fn start(offsets: &Offsets, rate_hz: u64, exe: &Path) -> anyhow::Result<CpuSampling> {
        let sampler = Sampler::start(offsets, rate_hz).context("starting the CPU sampler")?;
        let stop = Arc::new(AtomicBool::new(false));
        let pid = offsets.target_pid;
        let exe: PathBuf = exe.to_path_buf();
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("gmp-cpu-samples".into())
            .spawn(move || collect(sampler, pid, &exe, rate_hz, &flag))
            .context("starting the CPU sample thread")?;
        Ok(CpuSampling { stop, handle })
    }

    /// Detaches the sampler, takes what is left in its ring and returns every sample.
    pub fn finish(self) -> anyhow::Result<Collected> {
        self.stop.store(true, Ordering::Release);
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("the CPU sample thread panicked"))?
    }
}

fn collect(
    mut sampler: Sampler,
    pid: u32,
    exe: &Path,
    rate_hz: u64,
    stop: &AtomicBool,
) -> anyhow::Result<Collected> {
    let bin = GoBinary::open(exe)?;
    let mut unwinder: Option<Unwinder<'_>> = None;
    let mut samples = Vec::new();
    let mut counts = CpuSampleCounts {
        rate_hz,
        ..CpuSampleCounts::default()
    };
    let mut malformed = 0;
    loop {
        let last = stop.load(Ordering::Acquire);
        if last {
            sampler.detach();
        }
        sampler.drain(&mut malformed, |h, st| {
            if unwinder.is_none() {
                // The first sample means the program runs: its text is mapped by now.
                let bias = load_bias(pid, &bin).unwrap_or(0);
                unwinder = Unwinder::new(&bin, bias).ok();
            }
            match unwinder.as_mut() {
                Some(u) if samples.len() < MAX_SAMPLES => samples.push(u.sample(h, st)),
                _ => counts.not_kept += 1,
            }
        });
        if last {
            break;
        }
        std::thread::sleep(DRAIN_EVERY);
    }
    let stats = sampler
        .stats()
        .context("reading the CPU sampler's counters")?;
    counts.taken = stats.taken;
    counts.dropped = stats.dropped;
    counts.malformed = malformed;
    counts.unwind_failed = unwinder.map_or(0, |u| u.unwind_failed);
    Ok(Collected { samples, counts })
}
