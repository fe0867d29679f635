//! The CPU sampler's kernel side: loads the `cpu_sample` perf-event program from the object
//! gmp-trace embeds, attaches it to the software CPU clock of every online CPU (all processes
//! there: the program itself keeps only the target's samples), hands out the raw records of the
//! `SAMPLES` ring, reports what was taken and dropped, and detaches on drop.
use aya::maps::{MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{
    PerfEventConfig, PerfEventLink, PerfEventScope, SamplePolicy, SoftwareEvent,
};
use aya::programs::PerfEvent;
use aya::Ebpf;
use gmp_trace_common::sample::{stat, SampleHeader, SampleStacks, SAMPLE_SIZE};
use gmp_trace_common::Offsets;

use gmp_trace_bpf_object::BPF_OBJECT;

/// The program's name in the object: samples in the kernel carry the user stack the thread
/// entered it from (bpf_task_pt_regs: kernel 5.15+ with BTF)...
const PROGRAM: &str = "cpu_sample";
/// ...and the same without that, for kernels that refuse it: such samples have no stack.
const PROGRAM_BASIC: &str = "cpu_sample_basic";

/// What went wrong setting the sampler up.
#[derive(Debug, thiserror::Error)]
pub enum SamplerError {
    #[error("the sampler needs the target's pid in the offsets (target_pid is 0)")]
    NoTarget,
    #[error("a sample rate of 0 Hz samples nothing: give --sample-rate a positive frequency")]
    NoRate,
    #[error("loading the BPF object for the CPU sampler failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("BPF {0} missing from the object (a gmp-trace built without the sampler?)")]
    Missing(&'static str),
    #[error("the kernel rejected the CPU sampler's program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    #[error("the sampler's map {0}: {1}")]
    Map(&'static str, aya::maps::MapError),
    #[error("listing the online CPUs failed ({0}: {1})")]
    Cpus(&'static str, std::io::Error),
}

/// Samples counted by the program, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SamplerStats {
    /// Samples of the target recorded into the ring.
    pub taken: u64,
    /// Samples of the target lost to a full ring.
    pub dropped: u64,
}

/// The sampler, attached. Dropping it detaches every CPU's link.
pub struct Sampler {
    // Declared first so they are dropped (detached) before the object that holds the program.
    links: Vec<PerfEventLink>,
    ring: RingBuf<MapData>,
    ebpf: Ebpf,
    kernel_stacks: bool,
    /// The CPUs attached to (still known once detached).
    cpus: usize,
}

/// Loads the perf-event program `name` of the object.
fn load_program(ebpf: &mut Ebpf, name: &'static str) -> Result<(), SamplerError> {
    let prog: &mut PerfEvent = ebpf
        .program_mut(name)
        .ok_or(SamplerError::Missing(name))?
        .try_into()?;
    prog.load()?;
    Ok(())
}

/// Ring bytes for `rate` samples/s on `cpus` CPUs: room for a quarter of a second of every CPU
/// sampling the target (the reader drains it every few tens of ms), a power of two as the
/// kernel wants, at least 64 KiB.
pub fn sample_ring_bytes(rate: u64, cpus: usize) -> u32 {
    let record = SAMPLE_SIZE as u64 + 8;
    let want = rate.saturating_mul(cpus as u64).saturating_mul(record) / 4;
    want.clamp(64 * 1024, 1 << 30).next_power_of_two() as u32
}

impl Sampler {
    /// Loads the program with `offsets` (whose `target_pid` selects the process) and attaches
    /// it to every online CPU's clock at `rate_hz` samples per second.
    pub fn start(offsets: &Offsets, rate_hz: u64) -> Result<Sampler, SamplerError> {
        if offsets.target_pid == 0 {
            return Err(SamplerError::NoTarget);
        }
        if rate_hz == 0 {
            return Err(SamplerError::NoRate);
        }
        let cpus = aya::util::online_cpus().map_err(|(what, e)| SamplerError::Cpus(what, e))?;
        // Only SAMPLES and SAMPLE_STATS are used here.
        let mut ebpf = super::trimmed_loader(&[])
            .override_global("OFFSETS", offsets, true)
            .map_max_entries("SAMPLES", sample_ring_bytes(rate_hz, cpus.len()))
            .load(BPF_OBJECT)?;
        let kernel_stacks = load_program(&mut ebpf, PROGRAM).is_ok();
        let name = if kernel_stacks {
            PROGRAM
        } else {
            log::info!("the kernel refused {PROGRAM}: samples in the kernel will have no stack");
            load_program(&mut ebpf, PROGRAM_BASIC)?;
            PROGRAM_BASIC
        };
        let prog: &mut PerfEvent = ebpf
            .program_mut(name)
            .ok_or(SamplerError::Missing("program cpu_sample"))?
            .try_into()?;
        let mut links = Vec::with_capacity(cpus.len());
        for cpu in cpus {
            let id = prog.attach(
                PerfEventConfig::Software(SoftwareEvent::CpuClock),
                PerfEventScope::AllProcessesOneCpu { cpu },
                SamplePolicy::Frequency(rate_hz),
                false,
            )?;
            // On an error the links so far are dropped: detached.
            links.push(prog.take_link(id)?);
        }
        let map = ebpf
            .take_map("SAMPLES")
            .ok_or(SamplerError::Missing("map SAMPLES"))?;
        let ring = RingBuf::try_from(map).map_err(|e| SamplerError::Map("SAMPLES", e))?;
        log::info!(
            "CPU sampler attached to {} CPUs at {rate_hz} Hz for pid {}",
            links.len(),
            offsets.target_pid
        );
        Ok(Sampler {
            cpus: links.len(),
            links,
            ring,
            ebpf,
            kernel_stacks,
        })
    }

    /// Samples taken in the kernel carry the user stack they entered it from.
    pub fn kernel_stacks(&self) -> bool {
        self.kernel_stacks
    }

    /// Detaches from every CPU (the ring can still be drained); also done on drop.
    pub fn detach(&mut self) {
        self.links.clear();
    }

    /// The CPUs sampled (attached to, also after [`Sampler::detach`]).
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Hands every record waiting in the ring to `f` (header and stack copy); returns how many
    /// there were, and counts records too short to be samples in `malformed`.
    pub fn drain(
        &mut self,
        malformed: &mut u64,
        mut f: impl FnMut(&SampleHeader, SampleStacks<'_>),
    ) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            match SampleHeader::parse(&item) {
                Some((h, stack)) => {
                    f(&h, stack);
                    n += 1;
                }
                None => *malformed += 1,
            }
        }
        n
    }

    /// What the program counted so far.
    pub fn stats(&self) -> Result<SamplerStats, SamplerError> {
        let map = self
            .ebpf
            .map("SAMPLE_STATS")
            .ok_or(SamplerError::Missing("map SAMPLE_STATS"))?;
        let arr: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| SamplerError::Map("SAMPLE_STATS", e))?;
        let sum = |i: u32| -> Result<u64, SamplerError> {
            Ok(arr
                .get(&i, 0)
                .map_err(|e| SamplerError::Map("SAMPLE_STATS", e))?
                .iter()
                .sum())
        };
        Ok(SamplerStats {
            taken: sum(stat::TAKEN)?,
            dropped: sum(stat::DROPPED)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampler_ring_sizes() {
        // 99 Hz on 2 CPUs, 8,336-byte records: ~413 KB a quarter second -> 512 KiB.
        assert_eq!(sample_ring_bytes(99, 2), 512 * 1024);
        assert_eq!(sample_ring_bytes(1, 1), 64 * 1024);
        assert_eq!(sample_ring_bytes(u64::MAX, 4096), 1 << 30);
    }
}
