//! Latency summaries: percentiles and CDF points read from an HDR histogram (microseconds).

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency a histogram records (60 s in microseconds); longer values are clamped.
pub const MAX_MICROS: u64 = 60_000_000;

/// A fresh histogram of microseconds with three significant digits.
pub fn histogram() -> Histogram<u64> {
    // Bounds 1..=60 s with 3 digits are always valid for hdrhistogram.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds are valid")
}

/// Records one value in microseconds, clamped into the histogram's range.
pub fn record(histogram: &mut Histogram<u64>, micros: u64) {
    let value = micros.clamp(1, MAX_MICROS);
    // In range by construction, so recording cannot fail.
    let _ = histogram.record(value);
}

/// The usual percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    /// Reads the percentiles of `histogram` (zeros when it is empty).
    pub fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |micros: u64| micros as f64 / 1000.0;
        Self {
            count: histogram.len(),
            mean_ms: histogram.mean() / 1000.0,
            p50_ms: ms(histogram.value_at_quantile(0.50)),
            p90_ms: ms(histogram.value_at_quantile(0.90)),
            p99_ms: ms(histogram.value_at_quantile(0.99)),
            p999_ms: ms(histogram.value_at_quantile(0.999)),
            max_ms: ms(histogram.max()),
        }
    }
}

/// Points of the latency CDF (quantile, milliseconds), dense towards the tail, for plots.
pub fn cdf(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    if histogram.is_empty() {
        return Vec::new();
    }
    let mut points = Vec::new();
    for step in 0..=90 {
        points.push(f64::from(step) / 100.0);
    }
    for tail in [0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 0.9995, 0.9999, 1.0] {
        points.push(tail);
    }
    points
        .into_iter()
        .map(|q| (q, histogram.value_at_quantile(q) as f64 / 1000.0))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_follow_the_recorded_values() {
        let mut h = histogram();
        for micros in 1..=1000 {
            record(&mut h, micros * 1000);
        }
        let p = Percentiles::of(&h);
        assert_eq!(p.count, 1000);
        assert!((p.p50_ms - 500.0).abs() < 1.0, "{p:?}");
        assert!((p.p99_ms - 990.0).abs() < 1.0, "{p:?}");
        assert!(p.max_ms >= 999.0);
        let points = cdf(&h);
        assert!(points.windows(2).all(|w| w[0].1 <= w[1].1));
    }

    #[test]
    fn out_of_range_values_are_clamped() {
        let mut h = histogram();
        record(&mut h, 0);
        record(&mut h, MAX_MICROS * 10);
        assert_eq!(h.len(), 2);
        assert!(h.max() >= MAX_MICROS);
    }
}
