//! `gmptrace_sched_latency_seconds`: the probes' latency histogram (model/hist.rs's log-linear
//! buckets, ~3% wide) exported at fixed Prometheus bounds. prometheus-client's own histogram
//! observes values one by one; this one is made from counts already kept in BPF maps, so it is
//! a metric type of its own, encoded as a histogram family.
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::{MetricType, TypedMetric};

use crate::model::hist::Histogram;

/// Upper bounds, seconds: 1us to 1s.
pub const BOUNDS: [f64; 16] = [
    1e-6, 2.5e-6, 5e-6, 1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 1e-2, 0.1,
    0.25, 1.0,
];

/// One process's histogram at fixed bounds: (upper bound, count in that bucket only).
#[derive(Clone, Debug, Default)]
pub struct Buckets {
    pub sum: f64,
    pub count: u64,
    pub buckets: Vec<(f64, u64)>,
}

impl Buckets {
    pub fn of(h: &Histogram) -> Buckets {
        let mut buckets = Vec::with_capacity(BOUNDS.len() + 1);
        let mut below = 0;
        for b in BOUNDS {
            let c = h.count_below((b * 1e9) as u64).max(below);
            buckets.push((b, c - below));
            below = c;
        }
        buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
        Buckets {
            sum: h.sum as f64 / 1e9,
            count: h.count,
            buckets,
        }
    }
}

/// Every process's histogram, by label set.
#[derive(Debug, Default)]
pub struct HistFamily(pub Vec<(Vec<(String, String)>, Buckets)>);

impl TypedMetric for HistFamily {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for HistFamily {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        for (labels, b) in &self.0 {
            encoder
                .encode_family(labels)?
                .encode_histogram::<NoLabelSet>(b.sum, b.count, &b.buckets, None)?;
        }
        Ok(())
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Histogram
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_add_up_and_place_values() {
        let mut h = Histogram::default();
        for v in [500, 3_000, 3_000, 80_000, 2_000_000_000] {
            h.record(v);
        }
        let b = Buckets::of(&h);
        assert_eq!(b.count, 5);
        assert_eq!(b.buckets.iter().map(|(_, c)| c).sum::<u64>(), 5);
        assert_eq!(b.buckets[0], (1e-6, 1), "500ns is below 1us");
        let at = |s: f64| b.buckets.iter().find(|(u, _)| *u == s).unwrap().1;
        assert_eq!(at(5e-6), 2);
        assert_eq!(at(1e-4), 1);
        assert_eq!(at(f64::INFINITY), 1, "2s is above every bound");
        assert!((b.sum - 2.000_086_5).abs() < 1e-9, "{}", b.sum);
    }
}
