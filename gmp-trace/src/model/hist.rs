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

    /// What was recorded after `earlier` (a reading of the same, growing histogram): the
    /// interval between two reads of the probes' maps. The interval's max is exact when it set
    /// a new overall max, else the top of its highest bucket (within the bucket's ~3%).
    pub fn since(&self, earlier: &Histogram) -> Histogram {
        let mut h = Histogram::default();
        for ((d, a), b) in h
            .counts
            .iter_mut()
            .zip(self.counts.iter())
            .zip(earlier.counts.iter())
        {
            *d = a.saturating_sub(*b);
        }
        h.count = h.counts.iter().sum();
        h.sum = self.sum.saturating_sub(earlier.sum);
        let top = h.counts.iter().rposition(|&c| c > 0);
        h.max = match top {
            None => 0,
            Some(_) if self.max > earlier.max => self.max,
            Some(b) if b + 1 < BUCKETS => (lower(b + 1) - 1).min(self.max),
            Some(_) => self.max,
        };
        h
    }

    /// Values recorded below `ns` for sure: the buckets that end at or before `ns`'s bucket
    /// starts (a cumulative bucket of a Prometheus histogram, low by at most the ~3% bucket
    /// `ns` falls in).
    pub fn count_below(&self, ns: u64) -> u64 {
        let b = bucket(ns).min(BUCKETS);
        self.counts[..b].iter().sum()
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

    #[test]
    fn since_is_the_interval_between_two_reads() {
        let mut h = Histogram::default();
        for v in [100u64, 200, 5_000] {
            h.record(v);
        }
        let before = h.clone();
        for v in [300u64, 400] {
            h.record(v);
        }
        let d = h.since(&before);
        assert_eq!((d.count, d.sum), (2, 700));
        // No new overall max: the top of the highest bucket (400's), not the old 5000.
        assert!((400..=420).contains(&d.max), "{}", d.max);
        assert!(
            (290..=300).contains(&d.quantile(0.5)),
            "{}",
            d.quantile(0.5)
        );
        h.record(9_000);
        assert_eq!(h.since(&before).max, 9_000);
        assert_eq!(h.since(&h).count, 0);
        assert_eq!(h.since(&h).max, 0);
    }
}
