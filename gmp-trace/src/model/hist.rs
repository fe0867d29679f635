//! A log-linear latency histogram: constant memory, ~3% relative error on quantiles, exact
//! count, sum and max. Values are nanoseconds.

use gmp_trace_common::agg::{lat_bucket as bucket, lat_lower as lower, LAT_BUCKETS as BUCKETS};

#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64]>,
    pub count: u64,
    pub sum: u128,
    pub max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            sum: 0,
            max: 0,
        }
    }
}

impl Histogram {
    pub fn record(&mut self, v: u64) {
        self.counts[bucket(v).min(BUCKETS - 1)] += 1;
        self.count += 1;
        self.sum += v as u128;
        self.max = self.max.max(v);
    }

    /// The q-quantile (0..=1), or 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (b, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return lower(b).min(self.max);
            }
        }
        self.max
    }

    /// A histogram the probes kept (aggregate mode): bucket counts in the same buckets.
    pub fn from_buckets(counts: &[u64], sum: u64, max: u64) -> Histogram {
        let mut h = Histogram::default();
        for (a, b) in h.counts.iter_mut().zip(counts) {
            *a = *b;
        }
        h.count = counts.iter().sum();
        h.sum = sum as u128;
        h.max = max;
        h
    }

    pub fn merge(&mut self, o: &Histogram) {
        for (a, b) in self.counts.iter_mut().zip(o.counts.iter()) {
            *a += b;
        }
        self.count += o.count;
        self.sum += o.sum;
        self.max = self.max.max(o.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_bucket_error() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v * 10);
        }
        let close = |got: u64, want: f64| (got as f64 - want).abs() / want < 0.04;
        assert!(close(h.quantile(0.5), 500_000.0), "{}", h.quantile(0.5));
        assert!(close(h.quantile(0.99), 990_000.0), "{}", h.quantile(0.99));
        assert_eq!(h.max, 1_000_000);
        assert_eq!(h.count, 100_000);
        assert_eq!(Histogram::default().quantile(0.5), 0);
        for v in [0u64, 1, 31, 32, 33, 1000, 1 << 40, u64::MAX] {
            assert!(lower(bucket(v).min(BUCKETS - 1)) <= v, "{v}");
        }
    }
}
