//! Densities of many equal-bandwidth Gaussians by cells (a fast Gauss transform in one
//! dimension).
//!
//! Once trials number in the hundreds, TPE's "above" estimator has hundreds of components with
//! the same, smallest bandwidth σ, and they crowd where the search has converged, which is where
//! candidates are drawn: a window of 7σ around a candidate then holds hundreds of components, one
//! exponential each. Grouping the components into cells one bandwidth wide and expanding each
//! cell's sum in a Taylor series about its centre c turns that into one short polynomial per cell:
//! with u = (x - c)/σ and v = (m - c)/σ,
//!
//! Σ a·e^(-(u - v)²/2) = e^(-u²/2) · Σₙ uⁿ · Σ a·e^(-v²/2)·vⁿ/n!
//!
//! The inner sums (the cell's moments) do not depend on x, so they are computed once per
//! estimator and cell, and only for cells a candidate comes near. |v| ≤ 1/2, so the terms past
//! [`TERMS`] add under 1e-11 of the cell's own mass at any distance.

use super::tpe_parzen::{exp_nonpositive, load, per_lane, sum_lanes, LANES};

/// Taylor terms kept per cell.
pub(super) const TERMS: usize = 16;

/// 1/n! for n below TERMS, so building moments needs no division.
const INVERSE_FACTORIALS: [f64; TERMS] = {
    let mut table = [1.0; TERMS];
    let mut n = 1;
    while n < TERMS {
        table[n] = table[n - 1] / n as f64;
        n += 1;
    }
    table
};

/// Narrow components grouped into cells of width at most σ over [0, 1]; the buffers are kept
/// from one estimator to the next.
#[derive(Default)]
pub(super) struct Cells {
    inv_sigma: f64,
    width: f64,
    /// First component of each cell; one past the last component at the end.
    starts: Vec<usize>,
    /// How many cells cover [0, 1].
    count: usize,
    /// Cell centres, [`LANES`] past `count` so that sums run over whole blocks of cells.
    centres: Vec<f64>,
    /// `moments[n * (count + LANES) + j]`: Σ over cell j's components of a·e^(-v²/2)·vⁿ/n!,
    /// n-major so that a run of cells is contiguous for each n; the padding cells hold zeros.
    moments: Vec<f64>,
    filled: Vec<bool>,
}

/// Lane by lane products, written on whole arrays so that they stay in vector registers.
#[inline(always)]
fn times(a: [f64; LANES], b: [f64; LANES]) -> [f64; LANES] {
    per_lane(|l| a[l] * b[l])
}

/// `row += term·c`, lane by lane.
#[inline(always)]
fn add_scaled(row: &mut [f64; LANES], term: [f64; LANES], c: f64) {
    for l in 0..LANES {
        row[l] += term[l] * c;
    }
}

/// One cell's moments, by term.
type Moments = [f64; TERMS];

impl Cells {
    /// Regroups `centres` (sorted, in [0, 1]), which all have bandwidth `sigma`, into cells;
    /// false (and nothing to use) when there are too few components per cell for the expansion
    /// to cost less than summing them.
    pub(super) fn rebuild(&mut self, centres: &[f64], sigma: f64) -> bool {
        let count = (1.0 / sigma).ceil().max(1.0) as usize;
        if centres.len() < 2 * count {
            return false;
        }
        let width = 1.0 / count as f64;
        self.starts.clear();
        self.starts.push(0);
        let mut k = 0;
        for j in 1..count {
            let edge = j as f64 * width;
            while k < centres.len() && centres[k] < edge {
                k += 1;
            }
            self.starts.push(k);
        }
        self.starts.push(centres.len());
        self.inv_sigma = 1.0 / sigma;
        self.width = width;
        self.centres.clear();
        self.centres
            .extend((0..count + LANES).map(|j| (j as f64 + 0.5) * width));
        self.count = count;
        self.moments.clear();
        self.moments.resize(TERMS * (count + LANES), 0.0);
        self.filled.clear();
        self.filled.resize(count, false);
        true
    }

    /// The cells whose centres lie within `sigmas` bandwidths of `x` plus half a cell, which
    /// holds every component within `sigmas` bandwidths.
    pub(super) fn within(&self, x: f64, sigmas: f64) -> std::ops::Range<usize> {
        let reach = sigmas / self.inv_sigma + 0.5 * self.width;
        // Cell j's centre is (j + 1/2)·width: the first at or past x - reach and the last at or
        // before x + reach, by arithmetic rather than a search.
        let first = ((x - reach) / self.width - 0.5).ceil().max(0.0) as usize;
        let end = (((x + reach) / self.width - 0.5).floor() + 1.0).max(0.0) as usize;
        let end = end.min(self.count);
        first.min(end)..end
    }

    /// The components of the cells in `cells`.
    #[cfg(test)]
    pub(super) fn components(&self, cells: std::ops::Range<usize>) -> std::ops::Range<usize> {
        self.starts[cells.start.min(self.count)]..self.starts[cells.end.min(self.count)]
    }

    /// Computes the moments of the cells in `cells` that lack them, from the components'
    /// `centres` and `amplitudes` (each adds amplitude·e^(-z²/2)), which run on for at least
    /// [`LANES`] entries past the last component.
    pub(super) fn prepare(
        &mut self,
        cells: std::ops::Range<usize>,
        centres: &[f64],
        amplitudes: &[f64],
    ) {
        for j in cells.start..cells.end.min(self.count) {
            if self.filled[j] {
                continue;
            }
            let acc = {
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: the CPU was just checked for the feature the function enables.
                        unsafe { self.moments_avx512(j, centres, amplitudes) }
                    } else if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: as above.
                        unsafe { self.moments_avx2(j, centres, amplitudes) }
                    } else {
                        self.moments_portable(j, centres, amplitudes)
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    self.moments_portable(j, centres, amplitudes)
                }
            };
            let stride = self.count + LANES;
            for (n, a) in acc.into_iter().enumerate() {
                self.moments[n * stride + j] = a;
            }
            self.filled[j] = true;
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn moments_avx512(&self, j: usize, centres: &[f64], amplitudes: &[f64]) -> Moments {
        self.moments_portable(j, centres, amplitudes)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn moments_avx2(&self, j: usize, centres: &[f64], amplitudes: &[f64]) -> Moments {
        self.moments_portable(j, centres, amplitudes)
    }

    /// Cell `j`'s moments, [`LANES`] components at a time, the lanes added in a fixed order.
    /// The powers vⁿ come from v², v⁴ and v⁸ (a tree three products deep, not a chain of
    /// sixteen), so the multiplications overlap.
    #[inline(always)]
    fn moments_portable(&self, j: usize, centres: &[f64], amplitudes: &[f64]) -> Moments {
        let mut acc = [[0.0f64; LANES]; TERMS];
        let (start, end) = (self.starts[j], self.starts[j + 1]);
        let mut k = start;
        while k < end {
            let used = (end - k).min(LANES);
            // Unused lanes sit at the cell's centre and weigh nothing; whole blocks keep the
            // exponentials in vector lanes.
            let block = |s: &[f64]| -> [f64; LANES] { load(s, k) };
            let (loaded_m, loaded_a) = (block(centres), block(amplitudes));
            let m: [f64; LANES] = per_lane(|l| {
                if l < used {
                    loaded_m[l]
                } else {
                    self.centres[j]
                }
            });
            let a: [f64; LANES] = per_lane(|l| if l < used { loaded_a[l] } else { 0.0 });
            let v: [f64; LANES] = per_lane(|l| (m[l] - self.centres[j]) * self.inv_sigma);
            let t0: [f64; LANES] = per_lane(|l| a[l] * exp_nonpositive(-0.5 * v[l] * v[l]));
            let v2 = times(v, v);
            let v4 = times(v2, v2);
            let v8 = times(v4, v4);
            let (t1, t2) = (times(t0, v), times(t0, v2));
            let t3 = times(t1, v2);
            let (t4, t5, t6, t7) = (times(t0, v4), times(t1, v4), times(t2, v4), times(t3, v4));
            // Written out term by term: a loop over the terms lets the compiler vectorise
            // across terms instead of lanes, with gathers.
            macro_rules! add_term {
                ($n:literal, $t:expr) => {
                    add_scaled(&mut acc[$n], $t, INVERSE_FACTORIALS[$n]);
                    add_scaled(&mut acc[$n + 8], times($t, v8), INVERSE_FACTORIALS[$n + 8]);
                };
            }
            add_term!(0, t0);
            add_term!(1, t1);
            add_term!(2, t2);
            add_term!(3, t3);
            add_term!(4, t4);
            add_term!(5, t5);
            add_term!(6, t6);
            add_term!(7, t7);
            k += used;
        }
        let mut moments = [0.0; TERMS];
        for (m, row) in moments.iter_mut().zip(acc) {
            *m = sum_lanes(row);
        }
        moments
    }

    /// Σ over the components of `cells` (all filled) of weight·e^(offset - ceiling - z²/2),
    /// z = (x - m)/σ.
    pub(super) fn sum(&self, cells: std::ops::Range<usize>, x: f64) -> f64 {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU was just checked for the feature the function enables.
                return unsafe { self.sum_avx512(cells, x) };
            }
            if std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: as above.
                return unsafe { self.sum_avx2(cells, x) };
            }
        }
        self.sum_portable(cells, x)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    unsafe fn sum_avx512(&self, cells: std::ops::Range<usize>, x: f64) -> f64 {
        self.sum_portable(cells, x)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn sum_avx2(&self, cells: std::ops::Range<usize>, x: f64) -> f64 {
        self.sum_portable(cells, x)
    }

    /// Every path sums the same lanes in the same order without fused multiply-adds, so a seed
    /// gives the same suggestions on any machine.
    #[inline(always)]
    fn sum_portable(&self, cells: std::ops::Range<usize>, x: f64) -> f64 {
        let stride = self.count + LANES;
        let mut lanes = [0.0f64; LANES];
        // Whole blocks of cells; the lanes past the range count for nothing (their moments may
        // not have been computed).
        for j in cells.clone().step_by(LANES) {
            let coefficient = |n: usize| load(&self.moments, n * stride + j);
            let centre = load(&self.centres, j);
            let u: [f64; LANES] = per_lane(|k| (x - centre[k]) * self.inv_sigma);
            let inside: [f64; LANES] = per_lane(|k| if j + k < cells.end { 1.0 } else { 0.0 });
            let mut poly = coefficient(TERMS - 1);
            for n in (0..TERMS - 1).rev() {
                let row = coefficient(n);
                for k in 0..LANES {
                    poly[k] = poly[k] * u[k] + row[k];
                }
            }
            for k in 0..LANES {
                lanes[k] += inside[k] * (poly[k] * exp_nonpositive(-0.5 * u[k] * u[k]));
            }
        }
        sum_lanes(lanes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    /// Cells filled from random components, with the components' centres and amplitudes.
    fn filled(n: usize, sigma: f64, seed: u64) -> (Cells, Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let mut centres: Vec<f64> = (0..n).map(|_| rng.next_f64().powi(2)).collect();
        centres.sort_by(f64::total_cmp);
        let amplitudes: Vec<f64> = (0..n).map(|_| 0.1 + rng.next_f64()).collect();
        let mut cells = Cells::default();
        assert!(cells.rebuild(&centres, sigma), "dense enough for cells");
        let pad = |v: &[f64]| [v, &[0.0; LANES]].concat();
        cells.prepare(0..cells.count, &pad(&centres), &pad(&amplitudes));
        (cells, centres, amplitudes)
    }

    #[test]
    fn the_expansion_matches_the_direct_sum() {
        let sigma = 0.01;
        let (cells, centres, amplitudes) = filled(3000, sigma, 5);
        let mut rng = Rng::new(6);
        for _ in 0..500 {
            let x = rng.next_f64();
            let window = cells.within(x, 7.0);
            let fast = cells.sum(window.clone(), x);
            let direct: f64 = cells
                .components(window)
                .map(|k| {
                    let z = (x - centres[k]) / sigma;
                    amplitudes[k] * (-0.5 * z * z).exp()
                })
                .sum();
            assert!(
                (fast - direct).abs() <= 1e-10 * direct.max(1e-300),
                "x = {x}: {fast} vs {direct}"
            );
        }
    }

    #[test]
    fn windows_hold_every_component_in_reach() {
        let sigma = 0.013;
        let (cells, centres, ..) = filled(2000, sigma, 7);
        for i in 0..=100 {
            let x = i as f64 / 100.0;
            let held = cells.components(cells.within(x, 2.5));
            for (k, &m) in centres.iter().enumerate() {
                if (m - x).abs() <= 2.5 * sigma {
                    assert!(held.contains(&k), "x = {x}, centre {m}");
                }
            }
        }
    }

    #[test]
    fn sparse_components_get_no_cells() {
        assert!(!Cells::default().rebuild(&[0.1, 0.2, 0.3], 0.01));
    }

    #[test]
    fn every_vector_path_computes_moments_bit_for_bit_alike() {
        let mut rng = Rng::new(10);
        let n = 900;
        let mut centres: Vec<f64> = (0..n).map(|_| rng.next_f64().powi(2)).collect();
        centres.sort_by(f64::total_cmp);
        let amplitudes: Vec<f64> = (0..n).map(|_| 0.1 + rng.next_f64()).collect();
        let pad = |v: &[f64]| [v, &[0.0; LANES]].concat();
        let (centres, amplitudes) = (pad(&centres), pad(&amplitudes));
        let mut cells = Cells::default();
        assert!(cells.rebuild(&centres[..n], 0.01));
        for j in 0..cells.count {
            let portable = cells.moments_portable(j, &centres, &amplitudes);
            #[cfg(target_arch = "x86_64")]
            {
                if std::arch::is_x86_feature_detected!("avx2") {
                    // SAFETY: checked just above.
                    let avx2 = unsafe { cells.moments_avx2(j, &centres, &amplitudes) };
                    assert_eq!(
                        avx2.map(f64::to_bits),
                        portable.map(f64::to_bits),
                        "avx2 {j}"
                    );
                }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: checked just above.
                    let avx512 = unsafe { cells.moments_avx512(j, &centres, &amplitudes) };
                    assert_eq!(
                        avx512.map(f64::to_bits),
                        portable.map(f64::to_bits),
                        "avx512 {j}"
                    );
                }
            }
        }
    }

    #[test]
    fn every_vector_path_sums_bit_for_bit_alike() {
        let (cells, ..) = filled(1500, 0.01, 8);
        let mut rng = Rng::new(9);
        for start in 0..20 {
            for len in 0..20 {
                let x = rng.next_f64();
                let range = start..start + len;
                let portable = cells.sum_portable(range.clone(), x);
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: checked just above.
                        let avx2 = unsafe { cells.sum_avx2(range.clone(), x) };
                        assert_eq!(avx2.to_bits(), portable.to_bits(), "avx2");
                    }
                    if std::arch::is_x86_feature_detected!("avx512f") {
                        // SAFETY: checked just above.
                        let avx512 = unsafe { cells.sum_avx512(range.clone(), x) };
                        assert_eq!(avx512.to_bits(), portable.to_bits(), "avx512");
                    }
                }
            }
        }
    }
}
