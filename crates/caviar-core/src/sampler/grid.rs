use std::collections::BTreeMap;

use super::{SampleContext, Sampler, SamplerError};
use crate::rng::{derive_seed, splitmix64};
use crate::space::{Distribution, ParamValue, SearchSpace};

/// Every combination of a few values per parameter, visited once each in a seeded shuffled
/// order; the study stops when the grid is exhausted.
///
/// The shuffle is a keyed bijection on the grid's indices (a Feistel network), so a grid of
/// billions of points costs no memory and trial `n` always gets the same point.
///
/// ```
/// use caviar_core::sampler::{GridSampler, SampleContext, Sampler};
/// use caviar_core::space::ParamValue;
/// use caviar_core::trial::Direction;
/// let grid = GridSampler::new(
///     vec![("layers".into(), vec![ParamValue::Int(2), ParamValue::Int(3)])], 0).unwrap();
/// assert_eq!(grid.max_trials(), Some(2));
/// ```
#[derive(Clone, Debug)]
pub struct GridSampler {
    axes: Vec<(String, Vec<ParamValue>)>,
    /// For a conditional space, its valid points (a value index per axis, `None` where the
    /// parameter is absent); a full product of the axes otherwise.
    points: Option<std::sync::Arc<Vec<Vec<Option<u32>>>>>,
    size: u64,
    half_bits: u32,
    keys: [u64; 4],
}

impl GridSampler {
    /// A grid over explicit values per parameter.
    pub fn new(axes: Vec<(String, Vec<ParamValue>)>, seed: u64) -> Result<Self, SamplerError> {
        let mut size: u64 = 1;
        for (name, values) in &axes {
            if values.is_empty() {
                return Err(SamplerError::Unsupported {
                    name: name.clone(),
                    reason: "has no grid values; list at least one".into(),
                });
            }
            size = size
                .checked_mul(values.len() as u64)
                .ok_or_else(|| SamplerError::Unsupported {
                    name: name.clone(),
                    reason: "the grid has more than 2^64 points; use fewer points per axis or the random sampler".into(),
                })?;
        }
        let bits = 64 - (size.max(2) - 1).leading_zeros();
        let half_bits = bits.div_ceil(2);
        let keys = [0, 1, 2, 3].map(|i| derive_seed(seed, &[0x6772_6964, i]));
        Ok(GridSampler {
            axes,
            points: None,
            size,
            half_bits,
            keys,
        })
    }

    /// A grid over a search space: the values in `explicit` where given, else `points_per_axis`
    /// points spread on each parameter's own scale (every value of small discrete ranges).
    pub fn from_space(
        space: &SearchSpace,
        points_per_axis: usize,
        explicit: &BTreeMap<String, Vec<ParamValue>>,
        seed: u64,
    ) -> Result<Self, SamplerError> {
        for name in explicit.keys() {
            if space.get(name).is_none() {
                return Err(SamplerError::Unsupported {
                    name: name.clone(),
                    reason: "has grid values but is not a parameter of the study".into(),
                });
            }
        }
        let mut axes = Vec::with_capacity(space.len());
        for (name, dist) in space.iter() {
            let values = match explicit.get(name) {
                Some(values) => {
                    if let Some(bad) = values.iter().find(|v| !dist.contains(v)) {
                        return Err(SamplerError::Unsupported {
                            name: name.clone(),
                            reason: format!(
                                "grid value {bad} lies outside {}; fix the value or the range",
                                dist.describe()
                            ),
                        });
                    }
                    values.clone()
                }
                None => dist.grid_points(points_per_axis),
            };
            axes.push((name.clone(), values));
        }
        if !space.is_conditional() {
            return Self::new(axes, seed);
        }
        let points = valid_points(space, &axes)?;
        let mut grid = Self::new(axes, seed)?;
        grid.size = points.len() as u64;
        let bits = 64 - (grid.size.max(2) - 1).leading_zeros();
        grid.half_bits = bits.div_ceil(2);
        grid.points = Some(std::sync::Arc::new(points));
        Ok(grid)
    }

    /// Number of points.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The grid point (one value per axis) that trial `number` visits.
    pub fn point(&self, number: u64) -> Option<Vec<(&str, &ParamValue)>> {
        if number >= self.size {
            return None;
        }
        let mut index = self.permute(number);
        if let Some(points) = &self.points {
            let point = &points[index as usize];
            return Some(
                self.axes
                    .iter()
                    .zip(point)
                    .filter_map(|((name, values), at)| {
                        Some((name.as_str(), &values[(*at)? as usize]))
                    })
                    .collect(),
            );
        }
        let mut out = Vec::with_capacity(self.axes.len());
        for (name, values) in &self.axes {
            let n = values.len() as u64;
            out.push((name.as_str(), &values[(index % n) as usize]));
            index /= n;
        }
        Some(out)
    }

    fn permute(&self, x: u64) -> u64 {
        if self.size <= 1 {
            return 0;
        }
        // Cycle-walking keeps the bijection inside [0, size).
        let mut y = self.feistel(x);
        while y >= self.size {
            y = self.feistel(y);
        }
        y
    }

    fn feistel(&self, x: u64) -> u64 {
        let mask = (1u64 << self.half_bits) - 1;
        let (mut left, mut right) = (x >> self.half_bits, x & mask);
        for key in self.keys {
            let next = left ^ (splitmix64(right ^ key) & mask);
            left = right;
            right = next;
        }
        (left << self.half_bits) | right
    }
}

/// Most points a conditional grid lists (it holds them, unlike a plain product).
pub const MAX_CONDITIONAL_POINTS: usize = 1_000_000;

/// Every valid combination of a conditional space's axes: parents first, a child's values
/// only where its conditions hold, absent otherwise (so no point is listed twice).
fn valid_points(
    space: &SearchSpace,
    axes: &[(String, Vec<ParamValue>)],
) -> Result<Vec<Vec<Option<u32>>>, SamplerError> {
    let order: Vec<usize> = space
        .in_order()
        .iter()
        .filter_map(|(name, _)| axes.iter().position(|(a, _)| a == *name))
        .collect();
    let mut points = Vec::new();
    let mut current = vec![None; axes.len()];
    let mut assigned = BTreeMap::new();
    fn walk(
        depth: usize,
        order: &[usize],
        space: &SearchSpace,
        axes: &[(String, Vec<ParamValue>)],
        current: &mut Vec<Option<u32>>,
        assigned: &mut BTreeMap<String, ParamValue>,
        points: &mut Vec<Vec<Option<u32>>>,
    ) -> Result<(), SamplerError> {
        let Some(&axis) = order.get(depth) else {
            if points.len() == MAX_CONDITIONAL_POINTS {
                return Err(SamplerError::Unsupported {
                    name: axes[0].0.clone(),
                    reason: format!(
                        "the conditional grid has more than {MAX_CONDITIONAL_POINTS} points; use \
                         fewer points per axis or the random sampler"
                    ),
                });
            }
            points.push(current.clone());
            return Ok(());
        };
        let (name, values) = &axes[axis];
        if !space.is_active(name, assigned) {
            current[axis] = None;
            return walk(depth + 1, order, space, axes, current, assigned, points);
        }
        for (i, value) in values.iter().enumerate() {
            current[axis] = Some(i as u32);
            assigned.insert(name.clone(), value.clone());
            walk(depth + 1, order, space, axes, current, assigned, points)?;
        }
        assigned.remove(name);
        current[axis] = None;
        Ok(())
    }
    walk(
        0,
        &order,
        space,
        axes,
        &mut current,
        &mut assigned,
        &mut points,
    )?;
    Ok(points)
}

impl Sampler for GridSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let point = self
            .point(ctx.trial_number)
            .ok_or(SamplerError::Exhausted(self.size))?;
        let value = point
            .into_iter()
            .find(|(n, _)| *n == name)
            // A whole number listed for a float parameter (`[0, 0.5, 1]`) is that float.
            .map(|(_, v)| dist.as_own_type(v))
            .ok_or_else(|| SamplerError::Unsupported {
                name: name.into(),
                reason: "is not on the grid; add it to the grid's parameters".into(),
            })?;
        if !dist.contains(&value) {
            return Err(SamplerError::Unsupported {
                name: name.into(),
                reason: format!("grid value {value} lies outside {}", dist.describe()),
            });
        }
        Ok(value)
    }

    fn max_trials(&self) -> Option<u64> {
        Some(self.size)
    }

    fn name(&self) -> &'static str {
        "grid"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn permutation_is_a_bijection_for_odd_sizes() {
        for size in [1u64, 2, 3, 7, 100, 1000, 4097] {
            let axes = vec![(
                "x".to_string(),
                (0..size as i64).map(ParamValue::Int).collect(),
            )];
            let g = GridSampler::new(axes, 9).unwrap();
            let seen: HashSet<u64> = (0..size).map(|i| g.permute(i)).collect();
            assert_eq!(seen.len() as u64, size);
            assert!(seen.iter().all(|&v| v < size));
        }
    }

    #[test]
    fn order_is_shuffled_and_seeded() {
        let axes = vec![("x".to_string(), (0..50).map(ParamValue::Int).collect())];
        let a = GridSampler::new(axes.clone(), 1).unwrap();
        let b = GridSampler::new(axes.clone(), 2).unwrap();
        let order_a: Vec<u64> = (0..50).map(|i| a.permute(i)).collect();
        let order_b: Vec<u64> = (0..50).map(|i| b.permute(i)).collect();
        assert_ne!(order_a, (0..50).collect::<Vec<_>>());
        assert_ne!(order_a, order_b);
    }

    #[test]
    fn a_conditional_grid_lists_each_valid_point_once() {
        use crate::space::{Condition, Scale};
        let mut space = SearchSpace::new();
        space
            .add(
                "optimizer",
                Distribution::categorical(["adam", "sgd"]).unwrap(),
            )
            .unwrap();
        space
            .add(
                "beta1",
                Distribution::float(0.8, 0.99, Scale::Linear).unwrap(),
            )
            .unwrap();
        space
            .add("lr", Distribution::float(1e-3, 1e-1, Scale::Log).unwrap())
            .unwrap();
        space
            .set_conditions(
                "beta1",
                vec![Condition {
                    parent: "optimizer".into(),
                    allowed: vec![ParamValue::Str("adam".into())],
                }],
            )
            .unwrap();
        let grid = GridSampler::from_space(&space, 3, &BTreeMap::new(), 4).unwrap();
        // adam: 3 beta1 x 3 lr; sgd: 3 lr.
        assert_eq!(grid.max_trials(), Some(12));
        let mut seen = HashSet::new();
        for n in 0..12 {
            let point: BTreeMap<String, ParamValue> = grid
                .point(n)
                .unwrap()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect();
            assert!(space.is_valid_assignment(&point), "{point:?}");
            assert!(seen.insert(format!("{point:?}")), "twice: {point:?}");
        }
        assert!(grid.point(12).is_none());
    }

    #[test]
    fn huge_grids_are_rejected_with_the_axis() {
        let axes: Vec<_> = (0..70)
            .map(|i| {
                (
                    format!("p{i}"),
                    vec![ParamValue::Int(0), ParamValue::Int(1), ParamValue::Int(2)],
                )
            })
            .collect();
        let err = GridSampler::new(axes, 0).unwrap_err();
        assert!(err.to_string().contains("2^64"));
    }
}
