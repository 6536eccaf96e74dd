//! Many objectives: dominance, non-dominated fronts, crowding and hypervolume.
//!
//! Points are compared in *loss space*: each objective turned so that lower is better
//! (maximised ones negated). A point dominates another when it is no worse in every objective
//! and better in one; the Pareto front is the set no point dominates.
//!
//! ```
//! use caviar_core::pareto::{hypervolume, non_dominated_fronts};
//! let points = vec![vec![1.0, 4.0], vec![2.0, 2.0], vec![3.0, 3.0], vec![4.0, 1.0]];
//! let fronts = non_dominated_fronts(&points);
//! assert_eq!(fronts[0], vec![0, 1, 3]);
//! assert_eq!(fronts[1], vec![2]);
//! // The area the front dominates up to the reference point (5, 5).
//! assert_eq!(hypervolume(&[vec![1.0, 4.0], vec![2.0, 2.0], vec![4.0, 1.0]], &[5.0, 5.0]), 11.0);
//! ```

use std::collections::HashMap;

use crate::trial::{Direction, FrozenTrial, TrialId, TrialState};

/// Whether `a` dominates `b` (both in loss space).
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut better = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        better |= x < y;
    }
    better
}

/// The points sorted into fronts: the first holds the points nothing dominates, the next those
/// only the first dominates, and so on. Indices ascend within a front.
pub fn non_dominated_fronts(points: &[Vec<f64>]) -> Vec<Vec<usize>> {
    let n = points.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in i + 1..n {
            if dominates(&points[i], &points[j]) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            } else if dominates(&points[j], &points[i]) {
                dominating[j].push(i);
                dominated_by[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// NSGA-II's crowding distance of each point of one front (same order as `front`): the
/// normalised size of the box its neighbours span, summed over objectives; the ends of each
/// objective get infinity, so they are always kept.
pub fn crowding_distance(points: &[Vec<f64>], front: &[usize]) -> Vec<f64> {
    let m = front.len();
    let mut distance = vec![0.0; m];
    if m <= 2 {
        return vec![f64::INFINITY; m];
    }
    // The objective's values along the front, sorted, for each objective in turn (`k` picks
    // the objective inside each point, which clippy takes for an index into `points`).
    let objectives = points[front[0]].len();
    #[allow(clippy::needless_range_loop)]
    for k in 0..objectives {
        let mut sorted: Vec<(f64, usize)> = front
            .iter()
            .enumerate()
            .map(|(w, &i)| (points[i][k], w))
            .collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        distance[sorted[0].1] = f64::INFINITY;
        distance[sorted[m - 1].1] = f64::INFINITY;
        let span = sorted[m - 1].0 - sorted[0].0;
        if span <= 0.0 || !span.is_finite() {
            continue;
        }
        for w in 1..m - 1 {
            distance[sorted[w].1] += (sorted[w + 1].0 - sorted[w - 1].0) / span;
        }
    }
    distance
}

/// The hypervolume that `points` (loss space) dominate up to `reference`: the area (volume)
/// of the union of the boxes between each point and the reference. Points not better than
/// the reference in every objective add nothing. Exact: a sweep in two objectives, slicing
/// along the last objective in more.
pub fn hypervolume(points: &[Vec<f64>], reference: &[f64]) -> f64 {
    let inside: Vec<&[f64]> = points
        .iter()
        .map(Vec::as_slice)
        .filter(|p| p.iter().zip(reference).all(|(x, r)| x < r))
        .collect();
    volume(inside, reference)
}

fn volume(mut points: Vec<&[f64]>, reference: &[f64]) -> f64 {
    let d = reference.len();
    if points.is_empty() {
        return 0.0;
    }
    if d == 1 {
        let best = points.iter().map(|p| p[0]).fold(f64::INFINITY, f64::min);
        return reference[0] - best;
    }
    if d == 2 {
        points.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
        let mut area = 0.0;
        let mut ceiling = reference[1];
        for p in points {
            if p[1] < ceiling {
                area += (reference[0] - p[0]) * (ceiling - p[1]);
                ceiling = p[1];
            }
        }
        return area;
    }
    // Slice along the last objective: between consecutive values, the points at or below the
    // slice dominate a (d-1)-dimensional set.
    points.sort_by(|a, b| a[d - 1].total_cmp(&b[d - 1]));
    let mut total = 0.0;
    for i in 0..points.len() {
        let bottom = points[i][d - 1];
        let top = if i + 1 < points.len() {
            points[i + 1][d - 1]
        } else {
            reference[d - 1]
        };
        if top <= bottom {
            continue;
        }
        let slice: Vec<&[f64]> = points[..=i].iter().map(|p| &p[..d - 1]).collect();
        let slice = non_dominated(slice);
        total += volume(slice, &reference[..d - 1]) * (top - bottom);
    }
    total
}

fn non_dominated(points: Vec<&[f64]>) -> Vec<&[f64]> {
    points
        .iter()
        .enumerate()
        .filter(|(i, p)| {
            !points
                .iter()
                .enumerate()
                .any(|(j, q)| dominates(q, p) || (j < *i && q == *p))
        })
        .map(|(_, p)| *p)
        .collect()
}

/// A trial's objective values in loss space, if it completed with all of them, finite, and
/// meets its constraints.
pub fn losses(t: &FrozenTrial, directions: &[Direction]) -> Option<Vec<f64>> {
    if t.state != TrialState::Complete || !t.is_feasible() || t.values.len() != directions.len() {
        return None;
    }
    t.values
        .iter()
        .zip(directions)
        .map(|(&v, d)| {
            v.is_finite().then_some(match d {
                Direction::Minimize => v,
                Direction::Maximize => -v,
            })
        })
        .collect()
}

/// The feasible complete trials no other dominates, by number.
pub fn pareto_front<'a>(
    trials: &'a [FrozenTrial],
    directions: &[Direction],
) -> Vec<&'a FrozenTrial> {
    let (kept, points): (Vec<&FrozenTrial>, Vec<Vec<f64>>) = trials
        .iter()
        .filter_map(|t| Some((t, losses(t, directions)?)))
        .unzip();
    let mut front: Vec<&FrozenTrial> = non_dominated_fronts(&points)
        .into_iter()
        .next()
        .unwrap_or_default()
        .into_iter()
        .map(|i| kept[i])
        .collect();
    front.sort_by_key(|t| t.number);
    front
}

/// A reference point for the hypervolume of a study's trials (loss space): the worst value of
/// each objective among them, pushed out by a tenth of its range (or by 1 where all agree).
pub fn reference_point(points: &[Vec<f64>]) -> Option<Vec<f64>> {
    let d = points.first()?.len();
    Some(
        (0..d)
            .map(|k| {
                let (lo, hi) = points
                    .iter()
                    .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
                        (lo.min(p[k]), hi.max(p[k]))
                    });
                let span = hi - lo;
                hi + if span > 0.0 { 0.1 * span } else { 1.0 }
            })
            .collect(),
    )
}

/// What a study with several objectives has found: its front, and the hypervolume that front
/// dominates from a reference point taken from the study's own feasible trials.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct FrontSummary {
    /// Complete trials.
    pub complete: usize,
    /// Complete trials that broke a constraint.
    pub infeasible: usize,
    /// Numbers of the trials on the Pareto front.
    pub front: Vec<u64>,
    /// The reference point, in the objectives' own units and directions: each objective's
    /// worst value among feasible trials, a tenth of its range further (see
    /// [`reference_point`]).
    pub reference: Option<Vec<f64>>,
    /// The hypervolume the front dominates up to the reference point.
    pub hypervolume: Option<f64>,
}

/// The front, reference point and hypervolume of a study's trials.
pub fn summarize(trials: &[FrozenTrial], directions: &[Direction]) -> FrontSummary {
    let complete = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete)
        .count();
    let infeasible = trials
        .iter()
        .filter(|t| t.state == TrialState::Complete && !t.is_feasible())
        .count();
    let points: Vec<Vec<f64>> = trials
        .iter()
        .filter_map(|t| losses(t, directions))
        .collect();
    let reference = reference_point(&points);
    let hypervolume = reference.as_ref().map(|r| hypervolume(&points, r));
    let to_units = |r: Vec<f64>| -> Vec<f64> {
        r.into_iter()
            .zip(directions)
            .map(|(x, d)| if *d == Direction::Maximize { -x } else { x })
            .collect()
    };
    FrontSummary {
        complete,
        infeasible,
        front: pareto_front(trials, directions)
            .iter()
            .map(|t| t.number)
            .collect(),
        reference: reference.map(to_units),
        hypervolume,
    }
}

/// How model-based samplers rank the trials of a study with several objectives: by front,
/// then by crowding within it (the ends and sparse regions first), packed into one loss per
/// trial so that a single-objective model (TPE) can split good from bad.
#[derive(Clone, Debug, Default)]
pub struct ObjectiveRanks {
    /// The study's directions, one per objective.
    pub directions: Vec<Direction>,
    /// Each ranked trial's loss: its front's index plus a fraction below 1 for its crowding.
    pub loss: HashMap<TrialId, f64>,
}

impl ObjectiveRanks {
    /// Ranks the feasible complete trials among `finished`.
    pub fn new<'a>(
        directions: &[Direction],
        finished: impl IntoIterator<Item = &'a FrozenTrial>,
    ) -> Self {
        let (ids, points): (Vec<TrialId>, Vec<Vec<f64>>) = finished
            .into_iter()
            .filter_map(|t| Some((t.id, losses(t, directions)?)))
            .unzip();
        let mut loss = HashMap::with_capacity(ids.len());
        for (rank, front) in non_dominated_fronts(&points).into_iter().enumerate() {
            let crowding = crowding_distance(&points, &front);
            for (i, c) in front.iter().zip(crowding) {
                // 0 for an end (infinite crowding), towards 1 for a crowded point.
                let within = if c.is_finite() { 1.0 / (1.0 + c) } else { 0.0 };
                loss.insert(ids[*i], rank as f64 + 0.5 * within);
            }
        }
        ObjectiveRanks {
            directions: directions.to_vec(),
            loss,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fronts_of_a_hand_made_set() {
        // (1,5) (2,3) (4,1) are the front; (3,4) is dominated by (2,3); (5,5) by all; (2,3)
        // twice: equal points do not dominate each other.
        let points = vec![
            vec![1.0, 5.0],
            vec![3.0, 4.0],
            vec![2.0, 3.0],
            vec![5.0, 5.0],
            vec![4.0, 1.0],
            vec![2.0, 3.0],
        ];
        let fronts = non_dominated_fronts(&points);
        assert_eq!(fronts, vec![vec![0, 2, 4, 5], vec![1], vec![3]]);
        assert!(dominates(&[1.0, 1.0], &[1.0, 2.0]));
        assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]));
        assert!(!dominates(&[0.0, 3.0], &[1.0, 2.0]));
    }

    #[test]
    fn crowding_keeps_the_ends_and_measures_the_gaps() {
        let points = vec![
            vec![0.0, 4.0],
            vec![1.0, 3.0],
            vec![3.0, 1.0],
            vec![4.0, 0.0],
        ];
        let d = crowding_distance(&points, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // Point 1: neighbours span 3 of 4 in each objective.
        assert!((d[1] - 1.5).abs() < 1e-12, "{d:?}");
        assert!((d[2] - 1.5).abs() < 1e-12, "{d:?}");
    }

    #[test]
    fn hypervolume_matches_hand_computed_volumes() {
        let r2 = [4.0, 4.0];
        // One point: a box.
        assert_eq!(hypervolume(&[vec![1.0, 2.0]], &r2), 6.0);
        // Staircase: 3x1 + 2x1 + 1x1 (points (1,3) (2,2) (3,1)).
        let stairs = vec![vec![1.0, 3.0], vec![2.0, 2.0], vec![3.0, 1.0]];
        assert_eq!(hypervolume(&stairs, &r2), 6.0);
        // Dominated points and points outside the reference add nothing.
        let mut more = stairs.clone();
        more.push(vec![3.0, 3.0]);
        more.push(vec![5.0, 0.0]);
        assert_eq!(hypervolume(&more, &r2), 6.0);
        // Three objectives: two unit-offset boxes, their union by inclusion-exclusion.
        let r3 = [2.0, 2.0, 2.0];
        let a = vec![0.0, 1.0, 1.0]; // box 2x1x1 = 2
        let b = vec![1.0, 0.0, 0.0]; // box 1x2x2 = 4; overlap 1x1x1 = 1
        assert_eq!(hypervolume(&[a.clone(), b.clone()], &r3), 5.0);
        assert_eq!(hypervolume(&[b, a], &r3), 5.0);
        // A random 3-objective set against a Monte Carlo estimate.
        let mut rng = crate::rng::Rng::new(7);
        let set: Vec<Vec<f64>> = (0..12)
            .map(|_| (0..3).map(|_| rng.next_f64()).collect())
            .collect();
        let exact = hypervolume(&set, &[1.0, 1.0, 1.0]);
        let samples = 200_000;
        let hits = (0..samples)
            .filter(|_| {
                let q: Vec<f64> = (0..3).map(|_| rng.next_f64()).collect();
                set.iter().any(|p| p.iter().zip(&q).all(|(a, b)| a <= b))
            })
            .count();
        let estimate = hits as f64 / samples as f64;
        assert!((exact - estimate).abs() < 0.005, "{exact} vs {estimate}");
    }

    #[test]
    fn ranks_put_the_front_first_and_its_ends_before_its_middle() {
        let directions = [Direction::Minimize, Direction::Maximize];
        let make = |id: i64, values: Vec<f64>| FrozenTrial {
            id: TrialId(id),
            number: id as u64,
            state: TrialState::Complete,
            params: Default::default(),
            distributions: Default::default(),
            value: values.first().copied(),
            intermediate: Vec::new(),
            error: None,
            worker: None,
            started_ms: None,
            finished_ms: None,
            constraints: Vec::new(),
            values,
        };
        let trials = vec![
            make(0, vec![1.0, 1.0]), // front: an end
            make(1, vec![2.0, 2.0]), // front: the middle
            make(2, vec![3.0, 3.0]), // front: an end
            make(3, vec![3.0, 1.0]), // dominated by 0 and 2
        ];
        let ranks = ObjectiveRanks::new(&directions, &trials);
        assert_eq!(ranks.loss[&TrialId(0)], 0.0);
        assert_eq!(ranks.loss[&TrialId(2)], 0.0);
        assert!(ranks.loss[&TrialId(1)] > 0.0 && ranks.loss[&TrialId(1)] < 1.0);
        assert!(ranks.loss[&TrialId(3)] >= 1.0);
        let front: Vec<u64> = pareto_front(&trials, &directions)
            .iter()
            .map(|t| t.number)
            .collect();
        assert_eq!(front, [0, 1, 2]);
    }
}
