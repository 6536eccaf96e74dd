use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::random::RandomSampler;
use super::tpe_cells::Cells;
use super::tpe_multi::{Intersection, Settings};
use super::{JointSample, SampleContext, Sampler, SamplerError, LN_SQRT_2PI};
use crate::rng::{stable_hash, Rng};
use crate::space::{Distribution, ParamValue};
use crate::trial::FrozenTrial;

/// Tree-structured Parzen estimator (Bergstra et al., 2011) in each parameter's unit space, so
/// log and reverse-log scales are modelled on their own scale. Univariate by default;
/// [`TpeSampler::multivariate`] models the parameters that all complete trials share jointly,
/// with product kernels (Scott's-rule bandwidth), and the rest one at a time.
///
/// After `n_startup` complete trials it splits them by objective into the best `γ(n)` ("below",
/// γ(n) = min(⌈fraction·n⌉, cap)) and the rest ("above"), fits a Parzen estimator l(x) to the
/// first and g(x) to the second, draws `n_candidates` points from l and keeps the one with the
/// largest l(x)/g(x). Running trials count as bad observations (a constant liar), so parallel
/// workers do not all propose the same point.
///
/// ```
/// use caviar_core::prelude::*;
/// use caviar_core::sampler::TpeSampler;
/// let study = Study::builder("tpe").sampler(TpeSampler::new(0)).build().unwrap();
/// study.optimize(60, |t| {
///     let x = t.suggest_float("x", -10.0, 10.0, Scale::Linear)?;
///     Ok((x - 3.0).powi(2))
/// }).unwrap();
/// assert!(study.best_trial().unwrap().unwrap().value.unwrap() < 0.5);
/// ```
#[derive(Debug)]
pub struct TpeSampler {
    seed: u64,
    /// Complete trials drawn at random before the model takes over.
    pub n_startup: usize,
    /// Candidates drawn from l(x) per suggestion.
    pub n_candidates: usize,
    /// Share of complete trials that counts as good.
    pub gamma_fraction: f64,
    /// Most trials that count as good.
    pub gamma_cap: usize,
    /// Weight of the uniform prior component in each estimator.
    pub prior_weight: f64,
    /// Treat running trials as bad observations.
    pub constant_liar: bool,
    /// Model all parameters jointly (product kernels over the parameters every complete trial
    /// has) instead of one at a time.
    pub multivariate: bool,
    /// Per parameter, what has been read from the finished trials so far, and whether pruned
    /// trials counted.
    cache: Arc<Mutex<TpeCache>>,
    /// The parameters common to all complete trials (multivariate only).
    intersection: Arc<Mutex<Intersection>>,
}

impl Clone for TpeSampler {
    /// A copy with the same settings and a fresh cache (a clone may serve another study).
    fn clone(&self) -> Self {
        TpeSampler {
            cache: Default::default(),
            intersection: Default::default(),
            ..*self
        }
    }
}

/// Whether pruned trials counted, and each parameter's observations.
type TpeCache = (bool, HashMap<String, Observed>);

/// The complete observations of one parameter, kept sorted two ways so that an ask costs a
/// merge, not a sort.
#[derive(Debug, Default)]
struct Observed {
    dist: Option<Distribution>,
    /// How many finished trials have been read.
    consumed: usize,
    /// (loss, x), by loss.
    by_loss: Vec<(f64, f64)>,
    /// (x, loss, age), by x; age counts complete observations in the order they were read.
    by_x: Vec<(f64, f64, u32)>,
}

impl Observed {
    fn insert(&mut self, x: f64, loss: f64) {
        let age = self.by_loss.len() as u32;
        let i = self.by_loss.partition_point(|o| o.0 <= loss);
        self.by_loss.insert(i, (loss, x));
        let j = self.by_x.partition_point(|o| o.0 <= x);
        self.by_x.insert(j, (x, loss, age));
    }
}

impl TpeSampler {
    /// TPE with Optuna's defaults: 10 start-up trials, 24 candidates, γ = min(⌈0.1 n⌉, 25).
    pub fn new(seed: u64) -> Self {
        TpeSampler {
            seed,
            n_startup: 10,
            n_candidates: 24,
            gamma_fraction: 0.1,
            gamma_cap: 25,
            prior_weight: 1.0,
            constant_liar: true,
            multivariate: false,
            cache: Default::default(),
            intersection: Default::default(),
        }
    }

    /// Multivariate TPE with Optuna's defaults otherwise.
    pub fn multivariate(seed: u64) -> Self {
        TpeSampler {
            multivariate: true,
            ..Self::new(seed)
        }
    }
}

/// The coordinate of a trial's value: unit space, or the category index.
fn coordinate(t: &FrozenTrial, name: &str, dist: &Distribution) -> Option<f64> {
    if t.distributions.get(name) != Some(dist) {
        return None;
    }
    let value = t.params.get(name)?;
    match dist {
        Distribution::Categorical { choices } => {
            choices.iter().position(|c| c == value).map(|i| i as f64)
        }
        _ => dist.to_unit(value),
    }
}

/// A mixture of Gaussians truncated to [0, 1], plus a wide prior component.
///
/// Components are kept sorted by centre and grouped into bands by bandwidth (up to 1, 2 and 4
/// times the smallest allowed). A density is summed over every wide component but, in each band,
/// only over components within 7 of the band's largest bandwidths of the point: one farther away
/// adds under 1e-8 of what the prior alone adds (at the default prior weight), so the sum is
/// exact for choosing candidates and costs a few windows instead of all n components. Each
/// window is summed in two parts, the near one first: it bounds the density from below, which
/// lets a candidate that cannot win be dropped early. When the smallest-bandwidth band is dense
/// (two components or more per bandwidth on average), its windows are summed by cells
/// ([`Cells`]): one polynomial per cell instead of one exponential per component.
struct Parzen {
    /// Centres and bandwidths in component order, the prior last (kept only when sampled from).
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    log_total: f64,
    /// The smallest bandwidth and its ln, which most components have once trials are many.
    min_sigma: (f64, f64),
    /// An upper bound on every component's offset: -ln(σ√2π) is largest at the smallest σ and a
    /// centre inside [0, 1] keeps at least Φ(1) - Φ(0) > e^-1.1 of its mass. Densities are summed
    /// relative to it; the prior's term alone keeps the sum far from underflow.
    ceiling: f64,
    cumulative_weights: Vec<f64>,
    /// Components grouped by bandwidth, each group in centre order; the last group holds the
    /// wide components and has an infinite window.
    bands: Vec<Band>,
}

/// Offsets are filled in blocks this long: checking one flag per block is cheaper than one per
/// component, and the few extra offsets computed at a window's ends cost less than the checks.
const OFFSET_BLOCK: usize = 16;

/// Components with similar bandwidths, stored contiguously so a window is a slice.
struct Band {
    centres: Vec<f64>,
    sigmas: Vec<f64>,
    inv_sigmas: Vec<f64>,
    /// Raw weights (the estimator divides by their total once per density).
    weights: Vec<f64>,
    /// -log(σ√2π) - log(truncation mass); computed a block of [`OFFSET_BLOCK`] at a
    /// time when a density first needs one of them, since most components never fall in a window.
    offsets: Vec<f64>,
    /// Which blocks of `offsets` hold values.
    filled: Vec<bool>,
    half_width: f64,
    /// The components by cells, when they share one bandwidth and are dense enough for a cell's
    /// expansion to cost less than its components; windows then count cells, not components.
    cells: Option<Cells>,
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

/// Where a band's components near a point lie: `near` within [`NEAR_SIGMAS`] of its widest
/// bandwidth, `far` within 7 (the whole window), `near` inside `far`.
#[derive(Clone, Default)]
struct Reach {
    near: std::ops::Range<usize>,
    far: std::ops::Range<usize>,
}

/// Half-width of the near window in bandwidths: it holds ~99% of a locally even density, so its
/// sum is a tight lower bound that rules most candidates out before the rest is summed.
const NEAR_SIGMAS: f64 = 2.5;

impl Band {
    fn with_capacity(size: usize, half_width: f64) -> Self {
        Band {
            centres: Vec::with_capacity(size),
            sigmas: Vec::with_capacity(size),
            inv_sigmas: Vec::with_capacity(size),
            weights: Vec::with_capacity(size),
            offsets: Vec::new(),
            filled: Vec::new(),
            half_width,
            cells: None,
        }
    }

    fn push(&mut self, centre: f64, sigma: f64, inv_sigma: f64, weight: f64) {
        self.centres.push(centre);
        self.sigmas.push(sigma);
        self.inv_sigmas.push(inv_sigma);
        self.weights.push(weight);
    }

    fn reach(&self, x: f64) -> Reach {
        if self.half_width.is_infinite() {
            return Reach {
                near: 0..self.centres.len(),
                far: 0..self.centres.len(),
            };
        }
        if let Some(cells) = &self.cells {
            return Reach {
                near: cells.within(x, NEAR_SIGMAS),
                far: cells.within(x, 7.0),
            };
        }
        let far_width = self.half_width;
        let near_width = far_width * (NEAR_SIGMAS / 7.0);
        let c = &self.centres;
        let near_start = c.partition_point(|&m| m < x - near_width);
        let near_end = near_start + c[near_start..].partition_point(|&m| m <= x + near_width);
        let far_start = c[..near_start].partition_point(|&m| m < x - far_width);
        let far_end = near_end + c[near_end..].partition_point(|&m| m <= x + far_width);
        Reach {
            near: near_start..near_end,
            far: far_start..far_end,
        }
    }

    /// Σ weight·e^(offset - z²/2 - ceiling) over the components in `window`. `ceiling` bounds
    /// every offset, so no term overflows and one pass suffices (no maximum to find first).
    fn window_sum(&self, window: std::ops::Range<usize>, x: f64, ceiling: f64) -> f64 {
        if let Some(cells) = &self.cells {
            return cells.sum(window, x);
        }
        let parts = WindowParts {
            centres: &self.centres[window.clone()],
            inv_sigmas: &self.inv_sigmas[window.clone()],
            offsets: &self.offsets[window.clone()],
            weights: &self.weights[window],
        };
        // The widest vectors this CPU has; every path sums the same lanes in the same order
        // without fused multiply-adds, so a seed gives the same suggestions on any machine.
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU was just checked for the feature the function enables.
                return unsafe { parts.sum_avx512(x, ceiling) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { parts.sum_avx2(x, ceiling) };
            }
        }
        parts.sum(x, ceiling)
    }
}

/// The slices of one window, summed [`LANES`] components at a time.
struct WindowParts<'a> {
    centres: &'a [f64],
    inv_sigmas: &'a [f64],
    offsets: &'a [f64],
    weights: &'a [f64],
}

/// Lanes of the window sums: eight f64 fill an AVX-512 register (two AVX2 ones).
pub(super) const LANES: usize = 8;

impl WindowParts<'_> {
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn sum_avx512(&self, x: f64, ceiling: f64) -> f64 {
        self.sum(x, ceiling)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sum_avx2(&self, x: f64, ceiling: f64) -> f64 {
        self.sum(x, ceiling)
    }

    #[inline(always)]
    fn sum(&self, x: f64, ceiling: f64) -> f64 {
        #[inline(always)]
        fn block(
            lanes: &mut [f64; LANES],
            (m, inv, off, w): (&[f64; LANES], &[f64; LANES], &[f64; LANES], &[f64; LANES]),
            x: f64,
            ceiling: f64,
        ) {
            for k in 0..LANES {
                let z = (x - m[k]) * inv[k];
                lanes[k] += w[k] * exp_nonpositive(off[k] - 0.5 * z * z - ceiling);
            }
        }
        let as_block = |s: &[f64]| -> [f64; LANES] { s.try_into().expect("a block of LANES") };
        let mut lanes = [0.0f64; LANES];
        let n = self.centres.len();
        let whole = n / LANES * LANES;
        for i in (0..whole).step_by(LANES) {
            let r = i..i + LANES;
            block(
                &mut lanes,
                (
                    &as_block(&self.centres[r.clone()]),
                    &as_block(&self.inv_sigmas[r.clone()]),
                    &as_block(&self.offsets[r.clone()]),
                    &as_block(&self.weights[r]),
                ),
                x,
                ceiling,
            );
        }
        if whole < n {
            // The rest as one more block, padded with weightless components.
            let mut tail = [[0.0f64; LANES]; 4];
            let rest = n - whole;
            for (t, s) in
                tail.iter_mut()
                    .zip([self.centres, self.inv_sigmas, self.offsets, self.weights])
            {
                t[..rest].copy_from_slice(&s[whole..]);
            }
            block(
                &mut lanes,
                (&tail[0], &tail[1], &tail[2], &tail[3]),
                x,
                ceiling,
            );
        }
        sum_lanes(lanes)
    }
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

/// Optuna's univariate bandwidths for sorted `centers`: the larger gap to a neighbour, counting
/// the prior's centre 0.5 as one and, at either end, only the inner gap; clipped to
/// [`min_sigma`, 1].
fn bandwidths(centers: &[f64], min_sigma: f64) -> Vec<f64> {
    let n = centers.len();
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
    if n == 0 {
        return Vec::new();
    }
    let mut sigmas = Vec::with_capacity(n + 1);
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
    sigmas
}

impl Parzen {
    fn new(mut centers: Vec<f64>, prior_weight: f64) -> Self {
        centers.sort_by(f64::total_cmp);
        Self::from_sorted(centers, None, prior_weight, true)
    }

    /// An estimator over `centers` (sorted), each weighted by `weights` (1 when absent), plus
    /// the prior. Bandwidths follow Optuna's univariate rule: the larger gap to a neighbour,
    /// counting the prior's centre 0.5 as a neighbour and, at either end, only the inner gap;
    /// clipped to [1 / min(100, n + 2), 1].
    /// `sampled`: whether candidates will be drawn from it (only then are cumulative weights
    /// needed).
    fn from_sorted(
        centers: Vec<f64>,
        weights: Option<Vec<f64>>,
        prior_weight: f64,
        sampled: bool,
    ) -> Self {
        let n = centers.len();
        let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
        let inv_min_sigma = 1.0 / min_sigma;
        let limits = [min_sigma, 2.0 * min_sigma, 4.0 * min_sigma];
        let total = weights.as_ref().map_or(n as f64, |w| w.iter().sum()) + prior_weight;
        let sigmas = bandwidths(&centers, min_sigma);
        let band_of = |s: f64| -> usize {
            usize::from(s > limits[0]) + usize::from(s > limits[1]) + usize::from(s > limits[2])
        };
        let mut sizes = [0usize; 4];
        for &s in &sigmas {
            sizes[band_of(s)] += 1;
        }
        let mut bands: Vec<Band> = limits
            .iter()
            .map(|l| 7.0 * l)
            .chain([f64::INFINITY])
            .zip(sizes)
            .map(|(half_width, size)| Band::with_capacity(size, half_width))
            .collect();
        if sizes[0] == n {
            // Common once trials are many: every component has the smallest bandwidth, so the
            // arrays move in whole.
            let band = &mut bands[0];
            band.centres.extend_from_slice(&centers);
            band.sigmas.extend_from_slice(&sigmas);
            band.inv_sigmas.resize(n, inv_min_sigma);
            match &weights {
                Some(w) => band.weights.extend_from_slice(w),
                None => band.weights.resize(n, 1.0),
            }
        } else {
            for (i, (&mu, &sigma)) in centers.iter().zip(&sigmas).enumerate() {
                let b = band_of(sigma);
                let inv = if b == 0 { inv_min_sigma } else { 1.0 / sigma };
                let w = weights.as_ref().map_or(1.0, |w| w[i]);
                bands[b].push(mu, sigma, inv, w);
            }
        }
        bands[3].push(0.5, 1.0, 1.0, prior_weight);
        let (mus, sigmas, cumulative_weights) = if sampled {
            let mut acc = 0.0;
            let cumulative = (0..=n)
                .map(|i| {
                    acc += if i == n {
                        prior_weight
                    } else {
                        weights.as_ref().map_or(1.0, |w| w[i])
                    } / total;
                    acc
                })
                .collect();
            let (mut mus, mut sigmas) = (centers, sigmas);
            mus.push(0.5);
            sigmas.push(1.0);
            (mus, sigmas, cumulative)
        } else {
            Default::default()
        };
        for band in &mut bands {
            band.offsets = vec![0.0; band.centres.len()];
            band.filled = vec![false; band.centres.len().div_ceil(OFFSET_BLOCK)];
        }
        // Every component of the first band has the smallest bandwidth.
        bands[0].cells = Cells::new(&bands[0].centres, min_sigma);
        Parzen {
            mus,
            sigmas,
            log_total: total.ln(),
            min_sigma: (min_sigma, min_sigma.ln()),
            ceiling: -LN_SQRT_2PI - min_sigma.ln() + 1.1,
            cumulative_weights,
            bands,
        }
    }

    fn sample(&self, rng: &mut Rng) -> f64 {
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

    /// ln of the normalising factor 1 / (σ√2π · truncation mass) of a component at `m` with
    /// bandwidth `s`; its weight multiplies the exponential instead, which spares a logarithm.
    fn offset(&self, m: f64, s: f64) -> f64 {
        // Only a tail within 9σ of the box loses mass worth counting (and a farther one would
        // underflow inside erfc's exponential, a slow path in libm).
        let tail = |distance: f64| {
            if distance < 9.0 * s {
                normal_cdf(-distance / s)
            } else {
                0.0
            }
        };
        let (low, high) = (tail(m), tail(1.0 - m));
        let log_mass = if low == 0.0 && high == 0.0 {
            0.0
        } else {
            (1.0 - low - high).max(1e-300).ln()
        };
        let log_s = if s == self.min_sigma.0 {
            self.min_sigma.1
        } else {
            s.ln()
        };
        -LN_SQRT_2PI - log_s - log_mass
    }

    fn fill_offsets(&mut self, band: usize, block: usize) {
        let start = block * OFFSET_BLOCK;
        let end = (start + OFFSET_BLOCK).min(self.bands[band].centres.len());
        for k in start..end {
            let v = self.offset(self.bands[band].centres[k], self.bands[band].sigmas[k]);
            self.bands[band].offsets[k] = v;
        }
        self.bands[band].filled[block] = true;
    }

    fn log_pdf(&mut self, x: f64) -> f64 {
        let (near, reach) = self.near_sum(x);
        let far = self.far_sum(x, &reach);
        self.to_log(near + far)
    }

    /// ln of the density whose `sum` the window sums gave.
    fn to_log(&self, sum: f64) -> f64 {
        self.ceiling + sum.ln() - self.log_total
    }

    /// The sum over the components within [`NEAR_SIGMAS`] bandwidths of `x` (all of the wide
    /// band): a lower bound on the density, and what each band's windows are.
    fn near_sum(&mut self, x: f64) -> (f64, [Reach; 4]) {
        let mut reach: [Reach; 4] = Default::default();
        let mut sum = 0.0;
        for (b, r) in reach.iter_mut().enumerate() {
            *r = self.bands[b].reach(x);
            if r.near.is_empty() {
                continue;
            }
            self.prepare(b, r.near.clone());
            sum += self.bands[b].window_sum(r.near.clone(), x, self.ceiling);
        }
        (sum, reach)
    }

    /// The sum over the rest of each band's window (between the near and the far edge).
    fn far_sum(&mut self, x: f64, reach: &[Reach; 4]) -> f64 {
        let mut sum = 0.0;
        for (b, r) in reach.iter().enumerate() {
            for part in [r.far.start..r.near.start, r.near.end..r.far.end] {
                if part.is_empty() {
                    continue;
                }
                self.prepare(b, part.clone());
                sum += self.bands[b].window_sum(part, x, self.ceiling);
            }
        }
        sum
    }

    /// Makes what a band's window sums read ready: the offsets of its components and, for a
    /// band with cells, the moments of its cells.
    fn prepare(&mut self, band: usize, window: std::ops::Range<usize>) {
        let Some(cells) = &self.bands[band].cells else {
            self.fill_offsets_in(band, window);
            return;
        };
        let ready = window.clone().all(|j| cells.is_filled(j));
        if ready {
            return;
        }
        for j in window {
            let b = &mut self.bands[band];
            let Some(cells) = &b.cells else { return };
            if cells.is_filled(j) {
                continue;
            }
            let components = cells.components(j..j + 1);
            self.fill_offsets_in(band, components);
            let ceiling = self.ceiling;
            let b = &mut self.bands[band];
            if let Some(cells) = &mut b.cells {
                cells.fill(j, (&b.centres, &b.weights, &b.offsets), ceiling);
            }
        }
    }

    fn fill_offsets_in(&mut self, band: usize, window: std::ops::Range<usize>) {
        if !window.is_empty() {
            for block in window.start / OFFSET_BLOCK..=(window.end - 1) / OFFSET_BLOCK {
                if !self.bands[band].filled[block] {
                    self.fill_offsets(band, block);
                }
            }
        }
    }

    /// The density summed over every component (the reference for the windowed one).
    #[cfg(test)]
    fn log_pdf_exact(&self, x: f64) -> f64 {
        let mut terms = Vec::new();
        for band in &self.bands {
            for k in 0..band.centres.len() {
                let (m, s, w) = (band.centres[k], band.sigmas[k], band.weights[k]);
                let z = (x - m) / s;
                terms.push(w.ln() - self.log_total + self.offset(m, s) - 0.5 * z * z);
            }
        }
        log_sum_exp(&terms)
    }
}

#[cfg(test)]
fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

impl TpeSampler {
    /// `above` with its observations' weights (the age ramp; all 1 when absent), as for
    /// numbers: old bad observations weigh less, so a choice that only looked bad in the
    /// random start-up (say, an optimizer tried with a poor learning rate) gets tried again.
    fn sample_categorical(
        &self,
        rng: &mut Rng,
        k: usize,
        below: &[f64],
        above: (&[f64], Option<&[f64]>),
    ) -> usize {
        let masses = |xs: &[f64], weights: Option<&[f64]>| {
            let mut w = vec![self.prior_weight / k as f64; k];
            for (i, &x) in xs.iter().enumerate() {
                w[x as usize] += weights.map_or(1.0, |ws| ws[i]);
            }
            let total: f64 = w.iter().sum();
            w.iter().map(|v| v / total).collect::<Vec<f64>>()
        };
        let (l, g) = (masses(below, None), masses(above.0, above.1));
        let mut best = (0, f64::NEG_INFINITY);
        for _ in 0..self.n_candidates {
            let u = rng.next_f64();
            let mut acc = 0.0;
            let mut c = k - 1;
            for (i, p) in l.iter().enumerate() {
                acc += p;
                if u < acc {
                    c = i;
                    break;
                }
            }
            let score = l[c].ln() - g[c].ln();
            if score > best.1 {
                best = (c, score);
            }
        }
        best.0
    }
}

impl Sampler for TpeSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let mut guard = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (learn_from_pruned, cache) = &mut *guard;
        if *learn_from_pruned != ctx.learn_from_pruned {
            // Losses read another way (another study): read everything again.
            cache.clear();
            *learn_from_pruned = ctx.learn_from_pruned;
        }
        let seen = cache.entry(name.to_string()).or_default();
        if seen.dist.as_ref() != Some(dist) || seen.consumed > ctx.finished.len() {
            // A new parameter definition or another study: start over.
            *seen = Observed {
                dist: Some(dist.clone()),
                ..Default::default()
            };
        }
        let fresh: Vec<(f64, f64)> = ctx.finished[seen.consumed..]
            .iter()
            .filter_map(|t| Some((coordinate(t, name, dist)?, ctx.loss(t)?)))
            .collect();
        if fresh.len() > 32 {
            // A first read (or a big catch-up): sorting once beats inserting one by one.
            let first_age = seen.by_loss.len() as u32;
            seen.by_loss
                .extend(fresh.iter().map(|&(x, loss)| (loss, x)));
            seen.by_x.extend(
                fresh
                    .iter()
                    .enumerate()
                    .map(|(k, &(x, loss))| (x, loss, first_age + k as u32)),
            );
            seen.by_loss.sort_by(|a, b| a.0.total_cmp(&b.0));
            seen.by_x.sort_by(|a, b| a.0.total_cmp(&b.0));
        } else {
            for (x, loss) in fresh {
                seen.insert(x, loss);
            }
        }
        seen.consumed = ctx.finished.len();
        let complete = seen.by_loss.len();
        if complete < self.n_startup.max(1) {
            return Ok(dist.from_unit(RandomSampler::unit(self.seed, ctx.trial_number, name)));
        }
        let liars: Vec<f64> = if self.constant_liar {
            ctx.running
                .iter()
                .filter(|t| t.number != ctx.trial_number)
                .filter_map(|t| coordinate(t, name, dist))
                .collect()
        } else {
            Vec::new()
        };
        let n_below = ((self.gamma_fraction * complete as f64).ceil() as usize)
            .clamp(1, self.gamma_cap.max(1))
            .min(complete);
        let threshold = seen.by_loss[n_below - 1].0;
        let below_count = seen.by_loss.partition_point(|o| o.0 <= threshold);
        let below: Vec<f64> = seen.by_loss[..below_count].iter().map(|o| o.1).collect();
        let mut rng = Rng::keyed(
            self.seed,
            &[ctx.trial_number, stable_hash(name), 0x0074_7065],
        );
        // Above: everything worse than the threshold, already in x order, plus the liars.
        // Older observations weigh less (Optuna's ramp: the newest 25 weigh 1, older ones
        // linearly less, down to 1/n for the oldest), so the model follows the search.
        let mut above: Vec<f64> = Vec::with_capacity(complete - below_count + liars.len());
        let mut ages: Vec<u32> = Vec::with_capacity(complete - below_count);
        for &(x, loss, age) in &seen.by_x {
            if loss > threshold {
                above.push(x);
                ages.push(age);
            }
        }
        let n_above = above.len() + liars.len();
        let weights = if n_above >= 25 {
            // Rank of each age among the above ages, oldest first.
            let mut is_above = vec![false; complete];
            for &a in &ages {
                if let Some(slot) = is_above.get_mut(a as usize) {
                    *slot = true;
                }
            }
            let mut rank_of = vec![0u32; complete];
            let mut r = 0;
            for (a, &flag) in is_above.iter().enumerate() {
                rank_of[a] = r;
                r += u32::from(flag);
            }
            let ramped = n_above - 25;
            let lo = 1.0 / n_above as f64;
            let slope = if ramped > 1 {
                (1.0 - lo) / (ramped - 1) as f64
            } else {
                0.0
            };
            let ramp = |rank: usize| {
                if rank >= ramped {
                    1.0
                } else {
                    lo + slope * rank as f64
                }
            };
            let mut w: Vec<f64> = ages
                .iter()
                .map(|&a| ramp(rank_of.get(a as usize).copied().unwrap_or(0) as usize))
                .collect();
            for x in &liars {
                let at = above.partition_point(|&a| a <= *x);
                above.insert(at, *x);
                w.insert(at, 1.0);
            }
            Some(w)
        } else {
            for x in liars {
                let at = above.partition_point(|&a| a <= x);
                above.insert(at, x);
            }
            None
        };
        drop(guard);
        if let Distribution::Categorical { choices } = dist {
            let c = self.sample_categorical(
                &mut rng,
                choices.len(),
                &below,
                (&above, weights.as_deref()),
            );
            return Ok(choices[c].clone());
        }
        let (mut l, mut g) = (
            Parzen::new(below, self.prior_weight),
            Parzen::from_sorted(above, weights, self.prior_weight, false),
        );
        let mut best = (0.5, f64::NEG_INFINITY);
        for _ in 0..self.n_candidates {
            let x = l.sample(&mut rng);
            let log_l = l.log_pdf(x);
            // The near components alone bound g from below, so the score from above: a
            // candidate that cannot beat the best so far is dropped before the rest is summed.
            let (near, reach) = g.near_sum(x);
            if log_l - g.to_log(near) <= best.1 {
                continue;
            }
            let far = g.far_sum(x, &reach);
            let score = log_l - g.to_log(near + far);
            if score > best.1 {
                best = (x, score);
            }
        }
        Ok(dist.from_unit(best.0))
    }

    fn sample_joint(&self, ctx: &SampleContext<'_>) -> Result<JointSample, SamplerError> {
        if !self.multivariate {
            return Ok(JointSample::new());
        }
        let space = self
            .intersection
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .update(ctx.finished);
        let settings = Settings {
            seed: self.seed,
            n_startup: self.n_startup,
            n_candidates: self.n_candidates,
            gamma_fraction: self.gamma_fraction,
            gamma_cap: self.gamma_cap,
            prior_weight: self.prior_weight,
            constant_liar: self.constant_liar,
        };
        Ok(super::tpe_multi::sample_joint(&settings, ctx, &space))
    }

    fn needs_history(&self) -> bool {
        true
    }

    fn learns_from_prior(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        if self.multivariate {
            "tpe-mv"
        } else {
            "tpe"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        // window agree to the last bit, at every length (whole blocks and padded tails).
        let mut rng = Rng::new(9);
        let n = 67;
        let centres: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let inv_sigmas: Vec<f64> = (0..n).map(|_| 1.0 / (0.01 + rng.next_f64())).collect();
        let offsets: Vec<f64> = (0..n).map(|_| -rng.next_f64() * 3.0).collect();
        let weights: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        for len in 0..=n {
            let parts = WindowParts {
                centres: &centres[..len],
                inv_sigmas: &inv_sigmas[..len],
                offsets: &offsets[..len],
                weights: &weights[..len],
            };
            let x = rng.next_f64();
            let portable = parts.sum(x, 2.0);
            let by_term: f64 = (0..len)
                .map(|k| {
                    let z = (x - centres[k]) * inv_sigmas[k];
                    weights[k] * (offsets[k] - 0.5 * z * z - 2.0).exp()
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
                    let avx2 = unsafe { parts.sum_avx2(x, 2.0) };
                    assert_eq!(avx2.to_bits(), portable.to_bits(), "avx2, {len}");
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    let avx512 = unsafe { parts.sum_avx512(x, 2.0) };
                    assert_eq!(avx512.to_bits(), portable.to_bits(), "avx512, {len}");
                }
            }
        }
    }

    #[test]
    fn windowed_density_matches_the_full_sum() {
        let mut rng = Rng::new(4);
        let centers: Vec<f64> = (0..2000).map(|_| rng.next_f64().powi(3)).collect();
        let mut p = Parzen::new(centers, 1.0);
        assert!(
            p.bands[..3].iter().map(|b| b.centres.len()).sum::<usize>() > 1000,
            "most components are narrow at this size"
        );
        for i in 0..=200 {
            let x = i as f64 / 200.0;
            let (fast, exact) = (p.log_pdf(x), p.log_pdf_exact(x));
            assert!((fast - exact).abs() < 1e-9, "x = {x}: {fast} vs {exact}");
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
        for n in 0..40 {
            for _ in 0..20 {
                let mut centers: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
                if n > 3 && rng.next_f64() < 0.3 {
                    centers[1] = 0.5;
                }
                centers.sort_by(f64::total_cmp);
                let min_sigma = 1.0 / (100.0f64).min(n as f64 + 2.0);
                assert_eq!(
                    bandwidths(&centers, min_sigma),
                    bandwidths_by_definition(&centers, min_sigma),
                    "{centers:?}"
                );
            }
        }
    }

    #[test]
    fn parzen_density_integrates_to_one() {
        let mut p = Parzen::new(vec![0.1, 0.15, 0.8, 0.95], 1.0);
        let n = 20_000;
        let integral: f64 = (0..n)
            .map(|i| p.log_pdf((i as f64 + 0.5) / n as f64).exp())
            .sum::<f64>()
            / n as f64;
        assert!((integral - 1.0).abs() < 1e-3, "{integral}");
    }
}
