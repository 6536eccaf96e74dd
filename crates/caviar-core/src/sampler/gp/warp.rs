//! Output warping. Losses of hyperparameter searches are skewed: a few diverged runs score far
//! worse than the rest, and a Gaussian process fitted to plain standardised values then sees
//! every ordinary trial as equally good. Values are centred on their median and scaled by their
//! interquartile range, values worse than the median are compressed logarithmically, and the
//! result is standardised. The map is increasing, so the order of trials (and the best) stays.

/// The warped, standardised losses (lower is better, as given).
pub(crate) fn compress_bad_tail(values: &[f64]) -> Vec<f64> {
    let z = robust_scale(values);
    let w: Vec<f64> = z
        .iter()
        .map(|&v| if v > 0.0 { v.ln_1p() } else { v })
        .collect();
    standardise(&w)
}

fn robust_scale(values: &[f64]) -> Vec<f64> {
    if values.is_empty() {
        return Vec::new();
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let quantile = |q: f64| {
        let at = q * (sorted.len() - 1) as f64;
        let (i, frac) = (at.floor() as usize, at.fract());
        let next = sorted[(i + 1).min(sorted.len() - 1)];
        sorted[i] + frac * (next - sorted[i])
    };
    let median = quantile(0.5);
    let iqr = quantile(0.75) - quantile(0.25);
    if iqr <= 1e-12 * median.abs().max(1e-300) || !iqr.is_finite() {
        return standardise(values);
    }
    // IQR / 1.349 is the standard deviation of a normal sample.
    values.iter().map(|v| (v - median) * 1.349 / iqr).collect()
}

fn standardise(values: &[f64]) -> Vec<f64> {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    let sd = var.sqrt();
    // All equal (or nearly): nothing to learn from the values, keep them centred.
    let sd = if sd > 1e-12 * mean.abs().max(1e-300) && sd.is_finite() {
        sd
    } else {
        1.0
    };
    values.iter().map(|v| (v - mean) / sd).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_order_and_tames_a_heavy_tail() {
        let values: Vec<f64> = (0..50)
            .map(|i| {
                if i % 10 == 0 {
                    1e6 + i as f64
                } else {
                    i as f64
                }
            })
            .collect();
        let warped = compress_bad_tail(&values);
        for i in 0..values.len() {
            for j in 0..values.len() {
                if values[i] < values[j] {
                    assert!(warped[i] < warped[j], "{i} {j}");
                }
            }
        }
        // Plain standardisation squeezes the 45 ordinary values into a sliver; warping spreads
        // them out.
        let plain = standardise(&values);
        let spread = |v: &[f64]| {
            let ordinary: Vec<f64> = (0..50).filter(|i| i % 10 != 0).map(|i| v[i]).collect();
            ordinary.iter().copied().fold(f64::MIN, f64::max)
                - ordinary.iter().copied().fold(f64::MAX, f64::min)
        };
        assert!(spread(&warped) > 100.0 * spread(&plain));
        let mean = warped.iter().sum::<f64>() / 50.0;
        assert!(mean.abs() < 1e-9);
    }

    #[test]
    fn constant_or_tiny_inputs_stay_finite() {
        for values in [vec![3.0; 7], vec![1.0], vec![1.0, 1.0, 1.0, 5.0]] {
            let w = compress_bad_tail(&values);
            assert!(w.iter().all(|v| v.is_finite()), "{values:?} -> {w:?}");
        }
    }
}
