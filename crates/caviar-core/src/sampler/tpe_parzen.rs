//! The univariate Parzen estimator of TPE: a mixture of Gaussians truncated to [0, 1] plus a
//! wide prior component, built into buffers that are kept from ask to ask.
//!
//! Components whose bandwidth is the smallest allowed ("narrow": most of them once trials are
//! many) are summed only within 7 bandwidths of the point, since one farther away adds under
//! 1e-8 of what the prior alone adds (at the default prior weight); when they are dense (two or
//! more per bandwidth) they are summed by cells ([`Cells`]), one polynomial per cell instead of
//! one exponential per component. The other components ("wide") are summed whole: a gap wider
//! than the smallest bandwidth can occur fewer than 1/σ times in [0, 1], so they are few.

use super::tpe_cells::Cells;
use super::LN_SQRT_2PI;
use crate::rng::Rng;

/// Half-width of a narrow component's window, in bandwidths.
const WINDOW_SIGMAS: f64 = 7.0;

/// A mixture of truncated Gaussians and the prior; see the module's documentation.
#[derive(Default)]
pub(super) struct Parzen {
    /// Centres and bandwidths in component order, the prior last (kept only when sampled from).
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    cumulative_weights: Vec<f64>,
    log_total: f64,
    /// An upper bound on every component's ln normalising factor: -ln(σ√2π) is largest at the
    /// smallest σ, and a centre inside [0, 1] keeps at least Φ(1) - Φ(0) > e^-1.1 of its mass.
    /// Sums are taken relative to it, so no term overflows.
    ceiling: f64,
    min_sigma: f64,
    narrow: Components,
    wide: Components,
    /// The narrow components by cells, when `use_cells`.
    cells: Cells,
    use_cells: bool,
}

/// Components in centre order: each adds amplitude·e^(-z²/2), z = (x - centre)·inverse σ,
/// where the amplitude is weight·e^(ln normalising factor - ceiling). Once finished, the arrays
/// run on for [`LANES`] padding entries of no amplitude, so that every sum takes whole blocks.
#[derive(Default)]
struct Components {
    centres: Vec<f64>,
    inv_sigmas: Vec<f64>,
    amplitudes: Vec<f64>,
    /// The real components (the rest is padding).
    len: usize,
}

impl Components {
    /// Keeps the first `len` components and pads the arrays (past 1, so they stay sorted).
    fn finish(&mut self, len: usize) {
        self.len = len;
        for part in [
            &mut self.centres,
            &mut self.inv_sigmas,
            &mut self.amplitudes,
        ] {
            part.truncate(len);
        }
        for _ in 0..LANES {
            self.centres.push(2.0);
            self.inv_sigmas.push(0.0);
            self.amplitudes.push(0.0);
        }
    }

    /// The real components' centres.
    fn real_centres(&self) -> &[f64] {
        &self.centres[..self.len]
    }

    /// The sum over `window` and up to [`LANES`] - 1 components after it (whole blocks: the
    /// more components a sum takes, the closer it is to the full sum).
    fn sum_from(&self, window: std::ops::Range<usize>, x: f64) -> f64 {
        let end = window.start + window.len().div_ceil(LANES) * LANES;
        self.sum(window.start..end, x)
    }

    fn sum(&self, window: std::ops::Range<usize>, x: f64) -> f64 {
        gauss_sum(
            &self.centres[window.clone()],
            &self.inv_sigmas[window.clone()],
            &self.amplitudes[window],
            x,
        )
    }
}

impl Parzen {
    /// Rebuilds the estimator over `centers` (sorted), each weighted by `weights` (1 when
    /// absent), plus the prior. Bandwidths follow Optuna's univariate rule (see
    /// [`bandwidths_into`]), clipped to [1 / min(100, n + 2), 1]. `sampled`: whether candidates
    /// will be drawn from it (only then are the component lists for sampling kept).
    pub(super) fn rebuild(
        &mut self,
        centers: &[f64],
        weights: Option<&[f64]>,
        prior_weight: f64,
        sampled: bool,
    ) {
        let n = centers.len();
        let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
        let inv_min_sigma = 1.0 / min_sigma;
        let ceiling = -LN_SQRT_2PI - min_sigma.ln() + 1.1;
        let total = weights.map_or(n as f64, |w| w.iter().sum()) + prior_weight;
        bandwidths_into(centers, min_sigma, &mut self.sigmas);
        // Amplitudes are weight·factor·e^-ceiling; a narrow component farther than 9σ from both
        // ends keeps all its mass, so its factor is the plain one.
        let scale = (-ceiling).exp();
        let interior_amplitude = inv_min_sigma * INV_SQRT_2PI * scale;
        let (low_edge, high_edge) = (9.0 * min_sigma, 1.0 - 9.0 * min_sigma);
        // Each component is written to both lists and only the cursor of its own moves on (no
        // branch per component); the few that need a truncation mass are fixed up after.
        let (narrow, wide) = (&mut self.narrow, &mut self.wide);
        for part in [&mut *narrow, &mut *wide] {
            part.centres.resize(n + 1 + LANES, 0.0);
            part.inv_sigmas.resize(n + 1 + LANES, 0.0);
            part.amplitudes.resize(n + 1 + LANES, 0.0);
        }
        let (mut kn, mut kw) = (0, 0);
        {
            // Slices, so that the loop keeps their lengths in registers.
            let (n_centres, n_amplitudes) = (&mut narrow.centres[..n], &mut narrow.amplitudes[..n]);
            let (w_centres, w_sigmas, w_amplitudes) = (
                &mut wide.centres[..n],
                &mut wide.inv_sigmas[..n],
                &mut wide.amplitudes[..n],
            );
            let sigmas = &self.sigmas[..n];
            for i in 0..n {
                let (m, s) = (centers[i], sigmas[i]);
                let w = weights.map_or(1.0, |w| w[i]);
                n_centres[kn] = m;
                n_amplitudes[kn] = w * interior_amplitude;
                w_centres[kw] = m;
                w_sigmas[kw] = s;
                w_amplitudes[kw] = w;
                let is_narrow = s == min_sigma;
                kn += usize::from(is_narrow);
                kw += usize::from(!is_narrow);
            }
        }
        narrow.inv_sigmas[..kn].fill(inv_min_sigma);
        // Narrow components within 9σ of an end lose mass; sorted, they are the first and last.
        let low_end = narrow.centres[..kn].partition_point(|&m| m < low_edge);
        let high_start = low_end + narrow.centres[low_end..kn].partition_point(|&m| m <= high_edge);
        for k in (0..low_end).chain(high_start..kn) {
            narrow.amplitudes[k] *=
                factor(narrow.centres[k], min_sigma) * scale / interior_amplitude;
        }
        for k in 0..kw {
            let s = wide.inv_sigmas[k];
            wide.inv_sigmas[k] = 1.0 / s;
            wide.amplitudes[k] *= factor(wide.centres[k], s) * scale;
        }
        wide.centres[kw] = 0.5;
        wide.inv_sigmas[kw] = 1.0;
        wide.amplitudes[kw] = prior_weight * factor(0.5, 1.0) * scale;
        narrow.finish(kn);
        wide.finish(kw + 1);
        self.cumulative_weights.clear();
        if sampled {
            let mut acc = 0.0;
            for i in 0..=n {
                acc += if i == n {
                    prior_weight
                } else {
                    weights.map_or(1.0, |w| w[i])
                } / total;
                self.cumulative_weights.push(acc);
            }
            self.mus.clear();
            self.mus.extend_from_slice(centers);
            self.mus.push(0.5);
            self.sigmas.push(1.0);
        }
        self.use_cells = self.cells.rebuild(self.narrow.real_centres(), min_sigma);
        self.log_total = total.ln();
        self.ceiling = ceiling;
        self.min_sigma = min_sigma;
    }

    /// A point drawn from the mixture: a component by weight, then a normal draw redrawn until
    /// it falls inside [0, 1].
    pub(super) fn sample(&self, rng: &mut Rng) -> f64 {
        let u = rng.next_f64() * self.cumulative_weights.last().copied().unwrap_or(1.0);
        let k = self
            .cumulative_weights
            .partition_point(|&c| c <= u)
            .min(self.mus.len() - 1);
        for _ in 0..64 {
            let x = self.mus[k] + self.sigmas[k] * rng.normal();
            if (0.0..=1.0).contains(&x) {
                return x;
            }
        }
        self.mus[k].clamp(0.0, 1.0)
    }

    /// ln of the density at `x`.
    #[cfg(test)]
    pub(super) fn log_pdf(&mut self, x: f64) -> f64 {
        self.ceiling + self.scaled_density(x).ln() - self.log_total
    }

    /// The density at `x` times a factor the same for every point: ratios of two estimators'
    /// scaled densities order points as their density ratios do, without a logarithm each.
    pub(super) fn scaled_density(&mut self, x: f64) -> f64 {
        self.narrow_part(x) + self.wide_part(x)
    }

    /// The narrow components' share of [`Parzen::scaled_density`]: a lower bound on it.
    pub(super) fn narrow_part(&mut self, x: f64) -> f64 {
        let reach = WINDOW_SIGMAS * self.min_sigma;
        let narrow = if self.use_cells {
            let window = self.cells.within(x, WINDOW_SIGMAS);
            self.cells.prepare(
                window.clone(),
                &self.narrow.centres,
                &self.narrow.amplitudes,
            );
            self.cells.sum(window, x)
        } else {
            let c = self.narrow.real_centres();
            let start = c.partition_point(|&m| m < x - reach);
            let end = start + c[start..].partition_point(|&m| m <= x + reach);
            self.narrow.sum_from(start..end, x)
        };
        narrow
    }

    /// The wide components' and the prior's share of [`Parzen::scaled_density`].
    pub(super) fn wide_part(&self, x: f64) -> f64 {
        self.wide.sum_from(0..self.wide.len, x)
    }

    /// The density summed over every component (the reference for the windowed one).
    #[cfg(test)]
    fn log_pdf_exact(&self, x: f64) -> f64 {
        let mut total = 0.0;
        for part in [&self.narrow, &self.wide] {
            for k in 0..part.centres.len() {
                let z = (x - part.centres[k]) * part.inv_sigmas[k];
                total += part.amplitudes[k] * (-0.5 * z * z).exp();
            }
        }
        self.ceiling + total.ln() - self.log_total
    }
}

/// The normalising factor 1 / (σ√2π · truncation mass) of a component at `m` with bandwidth
/// `s`.
fn factor(m: f64, s: f64) -> f64 {
    // Only a tail within 9σ of the box loses mass worth counting (and a farther one would
    // underflow inside erfc's exponential, a slow path in libm).
    let tail = |distance: f64| {
        if distance < 9.0 * s {
            normal_cdf(-distance / s)
        } else {
            0.0
        }
    };
    let mass = (1.0 - tail(m) - tail(1.0 - m)).max(1e-300);
    INV_SQRT_2PI / (s * mass)
}

/// 1/√(2π).
const INV_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Σ amplitude·e^(-z²/2), z = (x - centre)·inverse σ, [`LANES`] components at a time with the
/// widest vectors this CPU has. Every path sums the same lanes in the same order without fused
/// multiply-adds, so a seed gives the same suggestions on any machine.
fn gauss_sum(centres: &[f64], inv_sigmas: &[f64], amplitudes: &[f64], x: f64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU was just checked for the feature the function enables.
            return unsafe { gauss_sum_avx512(centres, inv_sigmas, amplitudes, x) };
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: as above.
            return unsafe { gauss_sum_avx2(centres, inv_sigmas, amplitudes, x) };
        }
    }
    gauss_sum_portable(centres, inv_sigmas, amplitudes, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn gauss_sum_avx512(centres: &[f64], inv: &[f64], amplitudes: &[f64], x: f64) -> f64 {
    gauss_sum_portable(centres, inv, amplitudes, x)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gauss_sum_avx2(centres: &[f64], inv: &[f64], amplitudes: &[f64], x: f64) -> f64 {
    gauss_sum_portable(centres, inv, amplitudes, x)
}

#[inline(always)]
fn gauss_sum_portable(centres: &[f64], inv: &[f64], amplitudes: &[f64], x: f64) -> f64 {
    #[inline(always)]
    fn block(
        lanes: &mut [f64; LANES],
        m: &[f64; LANES],
        i: &[f64; LANES],
        a: &[f64; LANES],
        x: f64,
    ) {
        for k in 0..LANES {
            let z = (x - m[k]) * i[k];
            lanes[k] += a[k] * exp_nonpositive(-0.5 * z * z);
        }
    }
    let mut lanes = [0.0f64; LANES];
    let n = centres.len();
    let whole = n / LANES * LANES;
    for i in (0..whole).step_by(LANES) {
        block(
            &mut lanes,
            &load(centres, i),
            &load(inv, i),
            &load(amplitudes, i),
            x,
        );
    }
    if whole < n {
        // The rest as one more block, padded with components of no amplitude.
        let mut tail = [[0.0f64; LANES]; 3];
        let rest = n - whole;
        for (t, s) in tail.iter_mut().zip([centres, inv, amplitudes]) {
            t[..rest].copy_from_slice(&s[whole..]);
        }
        block(&mut lanes, &tail[0], &tail[1], &tail[2], x);
    }
    sum_lanes(lanes)
}

/// Lanes of the density sums: eight f64 fill an AVX-512 register (two AVX2 ones).
pub(super) const LANES: usize = 8;

/// One value per lane. An explicit loop rather than `std::array::from_fn`, which the compiler
/// may leave out of line, and so without the caller's vector instructions.
#[inline(always)]
pub(super) fn per_lane(f: impl Fn(usize) -> f64) -> [f64; LANES] {
    let mut out = [0.0; LANES];
    for (l, slot) in out.iter_mut().enumerate() {
        *slot = f(l);
    }
    out
}

/// The block of [`LANES`] values of `s` from `at` on.
#[inline(always)]
pub(super) fn load(s: &[f64], at: usize) -> [f64; LANES] {
    let s = &s[at..at + LANES];
    per_lane(|l| s[l])
}

/// The lanes added pairwise in a fixed order (halves, then quarters, ...), so every vector path
/// gives the same bits.
#[inline(always)]
pub(super) fn sum_lanes(mut lanes: [f64; LANES]) -> f64 {
    let mut width = LANES / 2;
    while width > 0 {
        for k in 0..width {
            lanes[k] += lanes[k + width];
        }
        width /= 2;
    }
    lanes[0]
}

/// e^x for x ≤ 0, to about 1e-15 relative error, inlined: the density sums call it thousands of
/// times per ask and libm's general `exp` is a function call with special cases they never need.
/// Range reduction x = k·ln2 + r (ln2 split in two parts), a degree-12 Taylor polynomial for
/// e^r with |r| ≤ ln2/2, and 2^k put straight into the exponent bits.
#[inline]
pub(super) fn exp_nonpositive(x: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238e-1;
    const LN2_LO: f64 = 1.908_214_929_270_587_7e-10;
    // Clamped rather than branched on, so the caller's loop stays branch-free; e^-708 is below
    // anything a sum that contains e^0 can notice.
    let x = x.max(-708.0);
    // Round to nearest by adding 1.5·2^52: the sum's low mantissa bits then hold k, and the
    // whole computation stays in f64/u64 lanes that the compiler can vectorise.
    const SHIFTER: f64 = 6_755_399_441_055_744.0;
    let shifted = x * std::f64::consts::LOG2_E + SHIFTER;
    let kf = shifted - SHIFTER;
    let r = (x - kf * LN2_HI) - kf * LN2_LO;
    // Taylor coefficients 1/n! evaluated by Estrin's scheme: pairs, then pairs of pairs, so the
    // multiplications overlap instead of waiting on one another as in Horner's chain.
    const C: [f64; 13] = [
        1.0,
        1.0,
        0.5,
        1.666_666_666_666_666_6e-1,
        4.166_666_666_666_666_4e-2,
        8.333_333_333_333_333e-3,
        1.388_888_888_888_889e-3,
        1.984_126_984_126_984e-4,
        2.480_158_730_158_73e-5,
        2.755_731_922_398_589_3e-6,
        2.755_731_922_398_589e-7,
        2.505_210_838_544_172e-8,
        2.087_675_698_786_81e-9,
    ];
    let r2 = r * r;
    let r4 = r2 * r2;
    let r8 = r4 * r4;
    let p01 = C[0] + C[1] * r;
    let p23 = C[2] + C[3] * r;
    let p45 = C[4] + C[5] * r;
    let p67 = C[6] + C[7] * r;
    let p89 = C[8] + C[9] * r;
    let p1011 = C[10] + C[11] * r;
    let p0_3 = p01 + p23 * r2;
    let p4_7 = p45 + p67 * r2;
    let p8_11 = p89 + p1011 * r2;
    let p8_12 = p8_11 + C[12] * r4;
    let p = (p0_3 + p4_7 * r4) + p8_12 * r8;
    // k + 1023 lands in the exponent field; the shifter's own bits shift out.
    p * f64::from_bits(shifted.to_bits().wrapping_add(1023) << 52)
}

fn normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit, |error| < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Optuna's univariate bandwidths for sorted `centers`, written into `sigmas`: the larger gap to
/// a neighbour, counting the prior's centre 0.5 as one and, at either end, only the inner gap;
/// clipped to [`min_sigma`, 1].
fn bandwidths_into(centers: &[f64], min_sigma: f64, sigmas: &mut Vec<f64>) {
    let n = centers.len();
    sigmas.clear();
    if n == 0 {
        return;
    }
    let prior_at = centers.partition_point(|&c| c < 0.5);
    // The gap to the right of each centre, the prior counted as a neighbour.
    let right_gap = |i: usize| -> Option<f64> {
        if i + 1 == prior_at {
            Some(0.5 - centers[i])
        } else {
            centers.get(i + 1).map(|r| r - centers[i])
        }
    };
    let left_gap = |i: usize| -> Option<f64> {
        if i == prior_at {
            Some(centers[i] - 0.5)
        } else if i > 0 {
            Some(centers[i] - centers[i - 1])
        } else {
            None
        }
    };
    let pick = |left: Option<f64>, right: Option<f64>| {
        match (left, right) {
            (Some(l), Some(r)) => l.max(r),
            (Some(g), None) | (None, Some(g)) => g,
            (None, None) => 1.0,
        }
        .clamp(min_sigma, 1.0)
    };
    // Interior centres away from the prior use plain neighbour gaps (a loop without branches);
    // the ends and the two centres beside the prior are fixed up after.
    sigmas.resize(n, 0.0);
    for i in 1..n.saturating_sub(1) {
        let gap = (centers[i] - centers[i - 1]).max(centers[i + 1] - centers[i]);
        sigmas[i] = gap.max(min_sigma).min(1.0);
    }
    for i in [0, n.saturating_sub(1), prior_at.saturating_sub(1), prior_at] {
        if i < n {
            sigmas[i] = pick(left_gap(i), right_gap(i));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn estimator(mut centers: Vec<f64>) -> Parzen {
        centers.sort_by(f64::total_cmp);
        let mut p = Parzen::default();
        p.rebuild(&centers, None, 1.0, true);
        p
    }

    #[test]
    fn fast_exp_matches_libm() {
        let mut x = 0.0;
        while x > -750.0 {
            let (fast, exact) = (exp_nonpositive(x), x.exp());
            assert!(
                (fast - exact).abs() <= 4e-15 * exact || (exact < 1e-300 && fast < 1e-300),
                "exp({x}): {fast} vs {exact}"
            );
            x -= 0.0137;
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f64::NEG_INFINITY) < 1e-300);
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (-1.0, 1.842_700_793),
            (2.0, 0.004_677_735),
        ] {
            assert!((erfc(x) - want).abs() < 2e-7, "erfc({x})");
        }
    }

    #[test]
    fn every_vector_path_sums_bit_for_bit_alike() {
        // Seeds must reproduce across machines: the AVX-512, AVX2 and portable sums of the same
        // components agree to the last bit, at every length (whole blocks and padded tails).
        let mut rng = Rng::new(9);
        let n = 67;
        let centres: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let inv_sigmas: Vec<f64> = (0..n).map(|_| 1.0 / (0.01 + rng.next_f64())).collect();
        let amplitudes: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        for len in 0..=n {
            let (c, i, a) = (&centres[..len], &inv_sigmas[..len], &amplitudes[..len]);
            let x = rng.next_f64();
            let portable = gauss_sum_portable(c, i, a, x);
            let by_term: f64 = (0..len)
                .map(|k| {
                    let z = (x - c[k]) * i[k];
                    a[k] * (-0.5 * z * z).exp()
                })
                .sum();
            assert!(
                (portable - by_term).abs() <= 1e-13 * by_term.max(1e-300),
                "{len}"
            );
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: checked just above.
                    let avx2 = unsafe { gauss_sum_avx2(c, i, a, x) };
                    assert_eq!(avx2.to_bits(), portable.to_bits(), "avx2, {len}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    let avx512 = unsafe { gauss_sum_avx512(c, i, a, x) };
                    assert_eq!(avx512.to_bits(), portable.to_bits(), "avx512, {len}");
                }
            }
        }
    }

    #[test]
    fn windowed_density_matches_the_full_sum() {
        let mut rng = Rng::new(4);
        for (n, power) in [(2000, 3), (300, 1), (60, 2)] {
            let centers: Vec<f64> = (0..n).map(|_| rng.next_f64().powi(power)).collect();
            let mut p = estimator(centers);
            if n == 2000 {
                assert!(p.use_cells, "dense narrow components are summed by cells");
                assert!(p.narrow.len > 1000, "most are narrow at this size");
            }
            for i in 0..=200 {
                let x = i as f64 / 200.0;
                let (fast, exact) = (p.log_pdf(x), p.log_pdf_exact(x));
                assert!(
                    (fast - exact).abs() < 1e-9,
                    "n {n}, x = {x}: {fast} vs {exact}"
                );
            }
        }
    }

    #[test]
    fn a_rebuilt_estimator_forgets_the_last_one() {
        let mut rng = Rng::new(5);
        let big: Vec<f64> = (0..1500).map(|_| rng.next_f64()).collect();
        let small = vec![0.2, 0.3, 0.9];
        let mut reused = estimator(big);
        let _ = reused.log_pdf(0.4);
        reused.rebuild(&small, None, 1.0, true);
        let mut fresh = estimator(small);
        for x in [0.0, 0.25, 0.4, 0.91, 1.0] {
            assert_eq!(reused.log_pdf(x).to_bits(), fresh.log_pdf(x).to_bits());
        }
    }

    /// The bandwidth rule spelled out on the merged sequence (centres plus the prior's 0.5).
    fn bandwidths_by_definition(centers: &[f64], min_sigma: f64) -> Vec<f64> {
        let mut merged: Vec<(f64, bool)> = centers.iter().map(|&c| (c, false)).collect();
        let at = centers.partition_point(|&c| c < 0.5);
        merged.insert(at, (0.5, true));
        let last = merged.len() - 1;
        (0..merged.len())
            .filter(|&k| !merged[k].1)
            .map(|k| {
                let left = (k > 0).then(|| merged[k].0 - merged[k - 1].0);
                let right = (k < last).then(|| merged[k + 1].0 - merged[k].0);
                let gap = match (left, right) {
                    (Some(l), Some(r)) => l.max(r),
                    (Some(g), None) | (None, Some(g)) => g,
                    (None, None) => unreachable!("the prior is always there"),
                };
                gap.clamp(min_sigma, 1.0)
            })
            .collect()
    }

    #[test]
    fn bandwidths_follow_the_rule_with_the_prior_as_a_neighbour() {
        let mut rng = Rng::new(11);
        let mut sigmas = Vec::new();
        for n in 0..40 {
            for _ in 0..20 {
                let mut centers: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
                if n > 3 && rng.next_f64() < 0.3 {
                    centers[1] = 0.5;
                }
                centers.sort_by(f64::total_cmp);
                let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
                bandwidths_into(&centers, min_sigma, &mut sigmas);
                assert_eq!(
                    sigmas,
                    bandwidths_by_definition(&centers, min_sigma),
                    "{centers:?}"
                );
            }
        }
    }

    #[test]
    fn parzen_density_integrates_to_one() {
        let mut p = estimator(vec![0.1, 0.15, 0.8, 0.95]);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| p.log_pdf((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
