//! fANOVA (Hutter, Hoos and Leyton-Brown, 2014) over a bagged forest of regression trees.
//!
//! Each tree is fitted to a bootstrap sample of the trials in the scaled space, where sampling
//! is uniform. A tree is piecewise constant over boxes, so the variance of its prediction under
//! the uniform measure of the whole box, and the part of it that one parameter explains alone
//! (the variance of the prediction averaged over every other parameter), are exact sums over
//! its leaves. Because the measure is the box's and not the trials', the answer does not depend
//! on where a sampler chose to put its trials, only on how well the trees fit them.

use crate::rng::Rng;

/// A node of a regression tree: a split (`feature < threshold` goes left) or a leaf.
#[derive(Clone, Copy, Debug)]
struct Node {
    /// `u32::MAX` for a leaf.
    feature: u32,
    threshold: f64,
    left: u32,
    right: u32,
    value: f64,
}

const LEAF: u32 = u32::MAX;
/// Deeper trees add nothing but time on the studies this serves.
const MAX_DEPTH: usize = 64;

/// The trials as columns: `x[f][i]` is feature `f` of trial `i`, inside `[low[f], 1]`.
pub(super) struct Columns<'a> {
    pub x: &'a [Vec<f64>],
    pub low: &'a [f64],
    pub y: &'a [f64],
}

/// Per tree, the share of the variance of its prediction that each feature explains alone
/// (its main effect). Trees whose prediction is constant are left out.
pub(super) fn main_effects(
    data: &Columns<'_>,
    trees: usize,
    max_samples: usize,
    seed: u64,
) -> Vec<Vec<f64>> {
    let n = data.y.len();
    if n == 0 || data.x.is_empty() {
        return Vec::new();
    }
    let m = n.min(max_samples.max(2));
    let mut grower = Grower::new(data.x.len(), m);
    let set = |f: usize| data.x[f].iter().filter(|&&v| v >= 0.0).count();
    grower
        .by_presence
        .sort_by_key(|&f| std::cmp::Reverse(set(f)));
    let mut sample = vec![0usize; m];
    let mut out = Vec::with_capacity(trees);
    for t in 0..trees {
        let mut rng = Rng::keyed(seed, &[t as u64]);
        for s in sample.iter_mut() {
            *s = rng.below(n as u64) as usize;
        }
        let tree = grower.grow(data, &sample);
        if let Some(effects) = decompose(&tree, data.low) {
            out.push(effects);
        }
    }
    out
}

/// Buffers for growing trees, reused from tree to tree.
struct Grower {
    /// Per feature, the sample's positions sorted by that feature; a node owns one range of
    /// every list.
    order: Vec<Vec<u32>>,
    goes_left: Vec<bool>,
    scratch: Vec<u32>,
    xs: Vec<Vec<f64>>,
    ys: Vec<f64>,
    /// Features by how many trials set them, most first (set: not below 0).
    by_presence: Vec<usize>,
}

impl Grower {
    fn new(features: usize, m: usize) -> Self {
        Grower {
            order: vec![Vec::with_capacity(m); features],
            goes_left: vec![false; m],
            scratch: Vec::with_capacity(m),
            xs: vec![Vec::with_capacity(m); features],
            ys: Vec::with_capacity(m),
            by_presence: (0..features).collect(),
        }
    }

    fn grow(&mut self, data: &Columns<'_>, sample: &[usize]) -> Vec<Node> {
        let m = sample.len();
        self.ys.clear();
        self.ys.extend(sample.iter().map(|&i| data.y[i]));
        // Standardised: splits then compare the same way whatever the values' offset and
        // scale (1e6 ± 1 or 1e-7), and the shares, ratios of variances, do not change.
        let mean = self.ys.iter().sum::<f64>() / m as f64;
        let sd = (self.ys.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / m as f64).sqrt();
        if sd.is_finite() && sd > 0.0 {
            for y in self.ys.iter_mut() {
                *y = (*y - mean) / sd;
            }
        } else {
            self.ys.iter_mut().for_each(|y| *y = 0.0);
        }
        for (f, column) in data.x.iter().enumerate() {
            let xs = &mut self.xs[f];
            xs.clear();
            xs.extend(sample.iter().map(|&i| column[i]));
            let order = &mut self.order[f];
            order.clear();
            order.extend(0..m as u32);
            order.sort_by(|&a, &b| xs[a as usize].total_cmp(&xs[b as usize]));
        }
        let mut nodes = vec![Node {
            feature: LEAF,
            threshold: 0.0,
            left: 0,
            right: 0,
            value: 0.0,
        }];
        // (node, first position, end, depth)
        let mut stack = vec![(0usize, 0usize, m, 0usize)];
        while let Some((id, lo, hi, depth)) = stack.pop() {
            let positions = &self.order[0][lo..hi];
            let sum: f64 = positions.iter().map(|&p| self.ys[p as usize]).sum();
            nodes[id].value = sum / (hi - lo) as f64;
            if depth >= MAX_DEPTH || hi - lo < 2 {
                continue;
            }
            let Some((feature, threshold)) = self.best_split(lo, hi, sum) else {
                continue;
            };
            let xs = &self.xs[feature];
            for &p in &self.order[feature][lo..hi] {
                self.goes_left[p as usize] = xs[p as usize] < threshold;
            }
            let mut mid = lo;
            for order in self.order.iter_mut() {
                // A stable partition keeps each range sorted.
                self.scratch.clear();
                let mut at = lo;
                for k in lo..hi {
                    let p = order[k];
                    if self.goes_left[p as usize] {
                        order[at] = p;
                        at += 1;
                    } else {
                        self.scratch.push(p);
                    }
                }
                order[at..hi].copy_from_slice(&self.scratch);
                mid = at;
            }
            let left = nodes.len();
            for _ in 0..2 {
                nodes.push(Node {
                    feature: LEAF,
                    threshold: 0.0,
                    left: 0,
                    right: 0,
                    value: 0.0,
                });
            }
            nodes[id].feature = feature as u32;
            nodes[id].threshold = threshold;
            nodes[id].left = left as u32;
            nodes[id].right = left as u32 + 1;
            stack.push((left, lo, mid, depth + 1));
            stack.push((left + 1, mid, hi, depth + 1));
        }
        nodes
    }

    /// The split of positions `lo..hi` that most reduces the squared error, if any does.
    fn best_split(&self, lo: usize, hi: usize, sum: f64) -> Option<(usize, f64)> {
        let n = (hi - lo) as f64;
        // The drop in squared error, n_l n_r / n (mean_l - mean_r)^2, on standardised values:
        // anything below 1e-12 is rounding.
        let mut best_gain = 1e-12;
        let mut best = None;
        // Features come most-often-set first, and a later one must do clearly better: a split
        // on a conditional parameter's "not set" that only repeats its parent's split (Adam or
        // not, by `beta1` set or not) is credited to the parent.
        for &f in &self.by_presence {
            let order = &self.order[f];
            let xs = &self.xs[f];
            let range = &order[lo..hi];
            let (first, last) = (xs[range[0] as usize], xs[range[range.len() - 1] as usize]);
            if first == last {
                continue;
            }
            let mut left_sum = 0.0;
            for k in 0..range.len() - 1 {
                let p = range[k] as usize;
                left_sum += self.ys[p];
                let (a, b) = (xs[p], xs[range[k + 1] as usize]);
                if a == b {
                    continue;
                }
                let n_left = (k + 1) as f64;
                let n_right = n - n_left;
                let gap = left_sum / n_left - (sum - left_sum) / n_right;
                let gain = n_left * n_right / n * gap * gap;
                if gain > best_gain * (1.0 + 1e-9) {
                    best_gain = gain;
                    best = Some((f, threshold_between(a, b)));
                }
            }
        }
        best
    }
}

/// A threshold strictly between two values; between "not set" (negative) and a set value it is
/// 0, where the set range begins, so each side's volume is what it stands for.
fn threshold_between(a: f64, b: f64) -> f64 {
    if a < 0.0 && b >= 0.0 {
        return 0.0;
    }
    let mid = 0.5 * (a + b);
    if mid > a {
        mid
    } else {
        b
    }
}

/// Each feature's main-effect variance over the tree's total variance, under the uniform
/// measure of the box `[low[f], 1]`; `None` when the tree predicts a constant.
fn decompose(tree: &[Node], low: &[f64]) -> Option<Vec<f64>> {
    let d = low.len();
    let width: Vec<f64> = low.iter().map(|l| 1.0 - l).collect();
    // Leaves as (value, bounds): bounds[2f] and bounds[2f + 1] are the leaf's side on f.
    let mut leaves: Vec<(f64, Vec<f64>)> = Vec::new();
    let root: Vec<f64> = low.iter().flat_map(|&l| [l, 1.0]).collect();
    let mut stack = vec![(0usize, root)];
    while let Some((id, bounds)) = stack.pop() {
        let node = tree[id];
        if node.feature == LEAF {
            leaves.push((node.value, bounds));
            continue;
        }
        let f = node.feature as usize;
        let mut left = bounds.clone();
        let mut right = bounds;
        left[2 * f + 1] = node.threshold.min(left[2 * f + 1]);
        right[2 * f] = node.threshold.max(right[2 * f]);
        stack.push((node.left as usize, left));
        stack.push((node.right as usize, right));
    }
    // Each side as a share of the box's side.
    let share = |bounds: &[f64], f: usize| (bounds[2 * f + 1] - bounds[2 * f]).max(0.0) / width[f];
    let volumes: Vec<f64> = leaves
        .iter()
        .map(|(_, b)| (0..d).map(|f| share(b, f)).product())
        .collect();
    let mean: f64 = leaves.iter().zip(&volumes).map(|((v, _), w)| v * w).sum();
    let total: f64 = leaves
        .iter()
        .zip(&volumes)
        .map(|((v, _), w)| w * (v - mean).powi(2))
        .sum();
    if total.is_nan() || total <= 1e-300 {
        return None;
    }
    // Each leaf's volume in every feature but f, from prefix and suffix products: O(d) a leaf.
    let mut others_of: Vec<Vec<f64>> = vec![Vec::with_capacity(leaves.len()); d];
    for (_, b) in &leaves {
        let sides: Vec<f64> = (0..d).map(|f| share(b, f)).collect();
        let mut prefix = 1.0;
        let mut suffix = vec![1.0; d + 1];
        for f in (0..d).rev() {
            suffix[f] = suffix[f + 1] * sides[f];
        }
        for f in 0..d {
            others_of[f].push(prefix * suffix[f + 1]);
            prefix *= sides[f];
        }
    }
    let mut effects = Vec::with_capacity(d);
    let mut cuts: Vec<f64> = Vec::new();
    for f in 0..d {
        cuts.clear();
        for (_, b) in &leaves {
            cuts.push(b[2 * f]);
            cuts.push(b[2 * f + 1]);
        }
        cuts.sort_by(f64::total_cmp);
        cuts.dedup();
        if cuts.len() <= 2 {
            // Never split on: the feature explains nothing alone.
            effects.push(0.0);
            continue;
        }
        // The prediction averaged over every other feature is constant between cuts: each leaf
        // adds its value times its volume in the other features over its own interval.
        let mut step = vec![0.0; cuts.len()];
        for ((v, b), others) in leaves.iter().zip(&others_of[f]) {
            let others = *others;
            let from = cuts.partition_point(|&c| c < b[2 * f]);
            let to = cuts.partition_point(|&c| c < b[2 * f + 1]);
            step[from] += v * others;
            step[to] -= v * others;
        }
        let mut marginal = 0.0;
        let mut variance = 0.0;
        for k in 0..cuts.len() - 1 {
            marginal += step[k];
            variance += (cuts[k + 1] - cuts[k]) / width[f] * (marginal - mean).powi(2);
        }
        effects.push((variance / total).clamp(0.0, 1.0));
    }
    Some(effects)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// y = 3 x0 + x1 on the unit square, no interaction: main effects 9:1 of the variance.
    #[test]
    fn additive_functions_split_their_variance_by_the_coefficients() {
        let mut rng = Rng::new(1);
        let n = 2000;
        let x0: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let x1: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let y: Vec<f64> = x0.iter().zip(&x1).map(|(a, b)| 3.0 * a + b).collect();
        let x = vec![x0, x1];
        let low = [0.0, 0.0];
        let per_tree = main_effects(
            &Columns {
                x: &x,
                low: &low,
                y: &y,
            },
            16,
            4096,
            7,
        );
        assert_eq!(per_tree.len(), 16);
        for effects in &per_tree {
            assert!((effects[0] - 0.9).abs() < 0.03, "{effects:?}");
            assert!((effects[1] - 0.1).abs() < 0.03, "{effects:?}");
        }
    }

    /// The same function shifted to 1e6 and shrunk to 1e-7: the same shares.
    #[test]
    fn offset_and_scale_of_the_values_change_nothing() {
        let mut rng = Rng::new(6);
        let n = 1000;
        let x0: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let x1: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let base: Vec<f64> = x0.iter().zip(&x1).map(|(a, b)| 3.0 * a + b).collect();
        let x = vec![x0, x1];
        let shares = |y: &[f64]| {
            main_effects(
                &Columns {
                    x: &x,
                    low: &[0.0, 0.0],
                    y,
                },
                4,
                4096,
                1,
            )
        };
        let plain = shares(&base);
        assert_eq!(plain.len(), 4);
        for y in [
            base.iter().map(|v| 1e6 + v).collect::<Vec<f64>>(),
            base.iter().map(|v| 1e-7 * v).collect(),
        ] {
            let moved = shares(&y);
            assert_eq!(moved.len(), 4);
            for (a, b) in plain.iter().zip(&moved) {
                assert!(
                    (a[0] - b[0]).abs() < 1e-6 && (a[1] - b[1]).abs() < 1e-6,
                    "{a:?} {b:?}"
                );
            }
        }
    }

    /// y = x0 * x1 centred: a pure interaction leaves no main effect.
    #[test]
    fn a_pure_interaction_has_no_main_effect() {
        let mut rng = Rng::new(2);
        let n = 3000;
        let x0: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let x1: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let y: Vec<f64> = x0
            .iter()
            .zip(&x1)
            .map(|(a, b)| (a - 0.5) * (b - 0.5))
            .collect();
        let x = vec![x0, x1];
        let per_tree = main_effects(
            &Columns {
                x: &x,
                low: &[0.0, 0.0],
                y: &y,
            },
            8,
            4096,
            3,
        );
        for effects in &per_tree {
            assert!(effects[0] < 0.05 && effects[1] < 0.05, "{effects:?}");
        }
    }

    /// The measure is the box's: trials crowded into one corner of x0 still show that x0
    /// explains all of a function of x0 alone.
    #[test]
    fn crowded_samples_do_not_change_the_measure() {
        let mut rng = Rng::new(4);
        let n = 500;
        // 90% of the trials in x0 < 0.1, as a sampler that found the optimum would put them.
        let x0: Vec<f64> = (0..n)
            .map(|i| {
                if i % 10 == 0 {
                    rng.next_f64()
                } else {
                    0.1 * rng.next_f64()
                }
            })
            .collect();
        let x1: Vec<f64> = (0..n).map(|_| rng.next_f64()).collect();
        let y: Vec<f64> = x0.iter().map(|a| a * a).collect();
        let x = vec![x0, x1];
        let per_tree = main_effects(
            &Columns {
                x: &x,
                low: &[0.0, 0.0],
                y: &y,
            },
            8,
            4096,
            5,
        );
        for effects in &per_tree {
            assert!(effects[0] > 0.99 && effects[1] < 0.01, "{effects:?}");
        }
    }

    #[test]
    fn thresholds_sit_strictly_between_and_at_zero_after_not_set() {
        assert_eq!(threshold_between(0.2, 0.4), 0.30000000000000004);
        assert_eq!(threshold_between(-0.5, 0.0), 0.0);
        assert_eq!(threshold_between(-0.5, 0.7), 0.0);
        let a = 1.0_f64;
        let b = f64::from_bits(a.to_bits() + 1);
        let t = threshold_between(a, b);
        assert!(a < t && t <= b);
    }
}
