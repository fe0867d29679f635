//! A log-linear latency histogram: constant memory, ~3% relative error on quantiles, exact
//! count, sum and max. Values are nanoseconds.

const SUB: usize = 32; // sub-buckets per power of two
const BUCKETS: usize = 64 * SUB;

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

fn bucket(v: u64) -> usize {
    if v < SUB as u64 {
        return v as usize;
    }
    let exp = 63 - v.leading_zeros() as usize; // >= 5
    let shift = exp - 5; // keep the top 5 bits below the leading one: 32 sub-buckets
    let sub = ((v >> shift) as usize) & (SUB - 1);
    (exp - 4) * SUB + sub
}

/// The smallest value in bucket `b` (quantiles report the bucket's lower bound).
fn lower(b: usize) -> u64 {
    if b < SUB {
        return b as u64;
    }
    let exp = b / SUB + 4;
    let sub = (b % SUB) as u64;
    (1u64 << exp) | (sub << (exp - 5))
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
