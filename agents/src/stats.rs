//! Robust statistics used to tell an anomaly from noise.

/// Median of `values` (NaNs must be filtered out by the caller); `None` when empty.
pub fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len().is_multiple_of(2) {
        (values[mid - 1] + values[mid]) / 2.0
    } else {
        values[mid]
    })
}

/// The `q` quantile (0–1) of `values`, nearest rank; `values` sorted ascending, not empty.
pub fn quantile_of_sorted(values: &[f64], q: f64) -> f64 {
    values[((values.len() - 1) as f64 * q).round() as usize]
}

/// Median and median absolute deviation of `values`; `None` when empty.
pub fn median_mad(values: &[f64]) -> Option<(f64, f64)> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    let med = median(&mut v)?;
    let mut dev: Vec<f64> = v.iter().map(|x| (x - med).abs()).collect();
    let mad = median(&mut dev)?;
    Some((med, mad))
}

/// A robust baseline: the typical value and the scale of ordinary variation around it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Baseline {
    pub median: f64,
    /// Median absolute deviation of the baseline samples; zero for a flat baseline.
    pub mad: f64,
    /// Noise scale: 1.4826·MAD (the standard deviation for normal data), floored at a
    /// share of the median so a flat baseline does not turn every wiggle into a huge score.
    pub sigma: f64,
}

/// Smallest noise scale as a share of the baseline's magnitude (10 %, the same floor the
/// dataset alert rules use): a change smaller than this is never an anomaly by itself.
const RELATIVE_SIGMA_FLOOR: f64 = 0.10;
/// Absolute floor for series whose baseline is zero.
const ABSOLUTE_SIGMA_FLOOR: f64 = 1e-9;

impl Baseline {
    /// Baseline of `values`; `None` when there are no finite values.
    pub fn of(values: &[f64]) -> Option<Self> {
        let (median, mad) = median_mad(values)?;
        // A sparse series (mostly one value, now and then another) has no MAD; the range
        // its baseline already covered is then the scale of its noise.
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        sorted.sort_by(f64::total_cmp);
        let q95 = quantile_of_sorted(&sorted, 0.95);
        // Only then: a range floor would let a fault that began just before the cut
        // inflate the noise of a well-behaved series.
        let range_floor = if mad == 0.0 {
            (q95 - median).abs() / 3.0
        } else {
            0.0
        };
        let sigma = (1.4826 * mad)
            .max(RELATIVE_SIGMA_FLOOR * median.abs())
            .max(range_floor)
            .max(ABSOLUTE_SIGMA_FLOOR);
        Some(Self { median, mad, sigma })
    }

    /// Signed distance of `x` from the baseline in units of noise.
    pub fn z(&self, x: f64) -> f64 {
        (x - self.median) / self.sigma
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&mut []), None);
    }

    #[test]
    fn baseline_floors_sigma_on_flat_series() {
        let b = Baseline::of(&[10.0, 10.0, 10.0]).unwrap();
        assert_eq!(b.median, 10.0);
        assert!((b.sigma - 1.0).abs() < 1e-12);
        assert!((b.z(13.0) - 3.0).abs() < 1e-12);
    }

    #[test]
    fn baseline_ignores_non_finite() {
        let b = Baseline::of(&[1.0, f64::NAN, 3.0, f64::INFINITY, 2.0]).unwrap();
        assert_eq!(b.median, 2.0);
    }
}
