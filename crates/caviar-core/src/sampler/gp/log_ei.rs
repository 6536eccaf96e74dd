//! Logarithm of expected improvement, accurate far into the tail where EI itself underflows
//! (Ament et al., "Unexpected improvements to expected improvement", 2023).

use crate::sampler::LN_SQRT_2PI;

/// For the standardised improvement `z`, returns `ln h(z)` with `h(z) = φ(z) + zΦ(z)`, and the
/// ratios `Φ(z)/h(z)` and `φ(z)/h(z)` that its derivatives need. EI = σ·h(z).
pub(crate) fn log_h(z: f64) -> (f64, f64, f64) {
    if z >= -1.0 {
        let phi = (-0.5 * z * z - LN_SQRT_2PI).exp();
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        let h = phi + z * cdf;
        return (h.ln(), cdf / h, phi / h);
    }
    let t = -z;
    // With the Mills ratio m = Φ(-t)/φ(t), h(z) = φ(t)·q where q = 1 - t·m.
    let (m, q) = if t <= 5.0 {
        let m = 0.5 * libm::erfc(t / std::f64::consts::SQRT_2) / (-0.5 * t * t - LN_SQRT_2PI).exp();
        (m, 1.0 - t * m)
    } else {
        // Laplace's continued fraction m = 1/(t + c), c = 1/(t + 2/(t + 3/(t + ...))), which
        // also gives q = c/(t + c) without cancellation.
        let mut acc = 0.0;
        for k in (2..=60).rev() {
            acc = k as f64 / (t + acc);
        }
        let c = 1.0 / (t + acc);
        (1.0 / (t + c), c / (t + c))
    };
    (-0.5 * t * t - LN_SQRT_2PI + q.ln(), m / q, 1.0 / q)
}

/// log EI of a Gaussian prediction (`mean`, `sd`) below the incumbent `best` (minimisation),
/// with its derivatives with respect to the mean and the standard deviation.
pub(crate) fn log_ei(mean: f64, sd: f64, best: f64) -> (f64, f64, f64) {
    let z = (best - mean) / sd;
    let (lh, cdf_over_h, phi_over_h) = log_h(z);
    (sd.ln() + lh, -cdf_over_h / sd, phi_over_h / sd)
}

/// `ln Φ(z)` of the standard normal distribution, accurate deep in the lower tail, with its
/// derivative `φ(z)/Φ(z)`: the log-probability that a constraint holds.
pub(crate) fn log_cdf(z: f64) -> (f64, f64) {
    if z >= -5.0 {
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        let phi = (-0.5 * z * z - LN_SQRT_2PI).exp();
        return (cdf.ln(), phi / cdf);
    }
    // Φ(z) = φ(z)·m with the Mills ratio m of t = -z, from Laplace's continued fraction.
    let t = -z;
    let mut acc = 0.0;
    for k in (1..=60).rev() {
        acc = k as f64 / (t + acc);
    }
    let m = 1.0 / (t + acc);
    (-0.5 * t * t - LN_SQRT_2PI + m.ln(), 1.0 / m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ei_direct(z: f64) -> f64 {
        let phi = (-0.5 * z * z).exp() / (2.0 * std::f64::consts::PI).sqrt();
        let cdf = 0.5 * libm::erfc(-z / std::f64::consts::SQRT_2);
        phi + z * cdf
    }

    #[test]
    fn matches_the_direct_formula_where_that_is_accurate() {
        for z in [-4.0, -2.5, -1.0, -0.3, 0.0, 0.7, 2.0, 6.0] {
            let (lh, _, _) = log_h(z);
            let want = ei_direct(z).ln();
            assert!((lh - want).abs() < 1e-9, "z={z}: {lh} vs {want}");
        }
    }

    #[test]
    fn is_finite_smooth_and_increasing_deep_in_the_tail() {
        let mut last = f64::NEG_INFINITY;
        let mut z = -1e4;
        while z < 10.0 {
            let (lh, a, b) = log_h(z);
            assert!(lh.is_finite() && a.is_finite() && b.is_finite(), "z={z}");
            assert!(lh > last, "not increasing at z={z}");
            last = lh;
            z = if z < -100.0 { z * 0.9 } else { z + 0.01 };
        }
        // The two tail formulas meet at t = 5.
        let (a, _, _) = log_h(-5.0);
        let (b, _, _) = log_h(-5.0 - 1e-12);
        assert!((a - b).abs() < 1e-8, "{a} vs {b}");
        // Asymptotically h(z) ~ φ(z)/z².
        let z: f64 = -1e3;
        let want = -0.5 * z * z - LN_SQRT_2PI - 2.0 * z.abs().ln();
        assert!((log_h(z).0 - want).abs() < 1e-5);
    }

    #[test]
    fn log_cdf_is_accurate_smooth_and_has_its_derivative() {
        for z in [-4.9, -2.0, 0.0, 1.5, 6.0] {
            let want = (0.5 * libm::erfc(-z / std::f64::consts::SQRT_2)).ln();
            assert!(
                (log_cdf(z).0 - want).abs() < 1e-9 * (1.0 + want.abs()),
                "z={z}"
            );
        }
        // The tail formula meets the direct one at -5 and follows ln φ(z) - ln(-z) far out.
        assert!((log_cdf(-5.0).0 - log_cdf(-5.0 - 1e-12).0).abs() < 1e-8);
        let z: f64 = -200.0;
        let want = -0.5 * z * z - LN_SQRT_2PI - z.abs().ln();
        assert!((log_cdf(z).0 - want).abs() < 1e-4);
        for z in [-30.0, -5.5, -1.0, 0.5, 3.0] {
            let e = 1e-6;
            let fd = (log_cdf(z + e).0 - log_cdf(z - e).0) / (2.0 * e);
            let d = log_cdf(z).1;
            assert!(
                (d - fd).abs() < 1e-4 * (1.0 + fd.abs()),
                "z={z}: {d} vs {fd}"
            );
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        for (mean, sd) in [(0.3, 0.2), (3.0, 0.1), (-1.0, 2.0), (40.0, 0.5)] {
            let best = 0.0;
            let (f, dm, ds) = log_ei(mean, sd, best);
            let e = 1e-6;
            let fm = (log_ei(mean + e, sd, best).0 - log_ei(mean - e, sd, best).0) / (2.0 * e);
            let fs = (log_ei(mean, sd + e, best).0 - log_ei(mean, sd - e, best).0) / (2.0 * e);
            assert!(f.is_finite());
            assert!(
                (dm - fm).abs() < 1e-4 * (1.0 + fm.abs()),
                "d/dmean {dm} vs {fm}"
            );
            assert!(
                (ds - fs).abs() < 1e-4 * (1.0 + fs.abs()),
                "d/dsd {ds} vs {fs}"
            );
        }
    }
}
