//! What the probes counted in their per-CPU maps: aggregate mode's counters and histogram, and
//! the failure counters the live source turns into `Lost` events.
use anyhow::anyhow;
use aya::maps::{MapData, PerCpuArray};
use gmp_trace_common::{agg, counter};

use super::Tracer;
use crate::model::hist::Histogram;
use crate::run::Aggregates;

impl Tracer {
    /// What the probes counted in aggregate mode, summed over CPUs.
    pub fn aggregates(&self) -> anyhow::Result<Aggregates> {
        let read = |name: &str, n: u32| -> anyhow::Result<Vec<u64>> {
            let map = self
                .ebpf
                .map(name)
                .ok_or_else(|| anyhow!("{name} map missing"))?;
            let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
            (0..n).map(|i| Ok(arr.get(&i, 0)?.iter().sum())).collect()
        };
        let lat_map = self
            .ebpf
            .map("AGG_LATENCY")
            .ok_or_else(|| anyhow!("AGG_LATENCY map missing"))?;
        let lat: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(lat_map)?;
        let mut buckets = Vec::with_capacity(agg::LAT_BUCKETS);
        for i in 0..agg::LAT_BUCKETS as u32 {
            buckets.push(lat.get(&i, 0)?.iter().sum());
        }
        let sum = lat.get(&agg::LAT_SUM, 0)?.iter().sum();
        let max = lat
            .get(&agg::LAT_MAX, 0)?
            .iter()
            .copied()
            .max()
            .unwrap_or(0);
        Ok(Aggregates {
            kinds: read("AGG_KINDS", agg::KINDS)?,
            status: read("AGG_STATUS", agg::STATUS)?,
            wait: read("AGG_WAIT", agg::WAIT)?,
            latency: Histogram::from_buckets(&buckets, sum, max),
        })
    }

    /// Sums the per-CPU counters: (events dropped for a full ring, failed user reads, steal
    /// attempts that found nothing).
    pub fn counters(&self) -> anyhow::Result<(u64, u64, u64)> {
        let map = self
            .ebpf
            .map("COUNTERS")
            .ok_or_else(|| anyhow!("COUNTERS map missing"))?;
        let arr: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map)?;
        let sum = |i: u32| -> anyhow::Result<u64> { Ok(arr.get(&i, 0)?.iter().sum()) };
        Ok((
            sum(counter::RINGBUF_FULL)?,
            sum(counter::READ_FAILED)?,
            sum(counter::STEAL_FAILED)?,
        ))
    }
}

/// A BPF program's own run time as the kernel accounts it (bpf_stats: counted only while
/// someone holds `BPF_ENABLE_STATS` or kernel.bpf_stats_enabled is set), summed over the
/// programs of one probe name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProgramStats {
    pub run_time_ns: u64,
    pub run_cnt: u64,
}

impl Tracer {
    /// The run time and run count of every loaded program, summed: what the probes cost the
    /// traced program beyond their traps.
    pub fn program_stats(&self) -> ProgramStats {
        let mut s = ProgramStats::default();
        for (_, prog) in self.ebpf.programs() {
            // Programs of the object that were never loaded have no info: they never ran.
            if let Ok(info) = prog.info() {
                s.run_time_ns += info.run_time().as_nanos() as u64;
                s.run_cnt += info.run_count();
            }
        }
        s
    }
}
