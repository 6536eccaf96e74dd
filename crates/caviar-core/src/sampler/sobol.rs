use std::sync::Mutex;

use super::random::RandomSampler;
use super::{SampleContext, Sampler, SamplerError};
use crate::rng::Rng;
use crate::space::{Distribution, ParamValue, SearchSpace};

const BITS: usize = 32;

/// Initial direction numbers (degree s, coefficients a, m_1..m_s) of the Joe-Kuo construction
/// for dimensions 2..=21; later dimensions use further primitive polynomials with seeded odd
/// initial values, which still give a valid digital sequence.
const JOE_KUO: &[(u32, u32, &[u32])] = &[
    (1, 0, &[1]),
    (2, 1, &[1, 3]),
    (3, 1, &[1, 3, 1]),
    (3, 2, &[1, 1, 1]),
    (4, 1, &[1, 1, 3, 3]),
    (4, 4, &[1, 3, 5, 13]),
    (5, 2, &[1, 1, 5, 5, 17]),
    (5, 4, &[1, 1, 5, 5, 5]),
    (5, 7, &[1, 1, 7, 11, 19]),
    (5, 11, &[1, 1, 5, 1, 1]),
    (5, 13, &[1, 1, 1, 3, 11]),
    (5, 14, &[1, 3, 5, 5, 31]),
    (6, 1, &[1, 3, 3, 9, 7, 49]),
    (6, 13, &[1, 1, 1, 15, 21, 21]),
    (6, 16, &[1, 3, 1, 13, 27, 49]),
    (6, 19, &[1, 1, 1, 15, 7, 5]),
    (6, 22, &[1, 3, 1, 15, 13, 25]),
    (6, 25, &[1, 1, 5, 5, 19, 61]),
    (7, 1, &[1, 3, 7, 11, 23, 15, 103]),
    (7, 4, &[1, 3, 7, 13, 13, 15, 69]),
];

/// Primitive polynomials over GF(2) as (degree, middle coefficients), by degree then value:
/// the first `count` of them, found once and kept. Degrees up to 31 give millions, so any
/// space a study can hold gets its own polynomial per dimension.
fn primitive_polynomials(count: usize) -> Vec<(u32, u32)> {
    struct Found {
        polys: Vec<(u32, u32)>,
        // Where the search resumes.
        degree: u32,
        next_a: u32,
    }
    static FOUND: Mutex<Found> = Mutex::new(Found {
        polys: Vec::new(),
        degree: 1,
        next_a: 0,
    });
    let mut found = FOUND.lock().unwrap_or_else(|p| p.into_inner());
    while found.polys.len() < count && found.degree < BITS as u32 {
        let degree = found.degree;
        let a = found.next_a;
        if a >= 1u32 << (degree - 1) {
            found.degree += 1;
            found.next_a = 0;
            continue;
        }
        found.next_a += 1;
        let poly = (1u64 << degree) | (u64::from(a) << 1) | 1;
        // An even number of terms means x + 1 divides it (degree 1 is x + 1 itself).
        let even_terms = (a.count_ones() + 2) % 2 == 0;
        if (degree == 1 || !even_terms) && is_primitive(poly, degree) {
            found.polys.push((degree, a));
        }
    }
    found.polys[..count.min(found.polys.len())].to_vec()
}

fn mul_mod(a: u64, b: u64, poly: u64, degree: u32) -> u64 {
    let mut result = 0;
    let (mut a, mut b) = (a, b);
    while b != 0 {
        if b & 1 == 1 {
            result ^= a;
        }
        b >>= 1;
        a <<= 1;
        if a >> degree & 1 == 1 {
            a ^= poly;
        }
    }
    result
}

fn pow_x(exp: u64, poly: u64, degree: u32) -> u64 {
    let (mut result, mut base, mut e) = (1u64, 2u64 % poly, exp);
    if degree == 1 {
        base = 1; // x = 1 mod (x + 1)
    }
    while e > 0 {
        if e & 1 == 1 {
            result = mul_mod(result, base, poly, degree);
        }
        base = mul_mod(base, base, poly, degree);
        e >>= 1;
    }
    result
}

/// x has order 2^degree - 1 modulo `poly`.
fn is_primitive(poly: u64, degree: u32) -> bool {
    let order = (1u64 << degree) - 1;
    if pow_x(order, poly, degree) != 1 {
        return false;
    }
    prime_factors(order)
        .into_iter()
        .all(|p| pow_x(order / p, poly, degree) != 1)
}

fn prime_factors(mut n: u64) -> Vec<u64> {
    let mut out = Vec::new();
    let mut p = 2;
    while p * p <= n {
        if n % p == 0 {
            out.push(p);
            while n % p == 0 {
                n /= p;
            }
        }
        p += 1;
    }
    if n > 1 {
        out.push(n);
    }
    out
}

/// Direction numbers of one dimension, most significant bit first; `polys` holds at least `dim`
/// primitive polynomials.
fn direction_numbers(dim: usize, polys: &[(u32, u32)]) -> [u32; BITS] {
    let mut v = [0u32; BITS];
    if dim == 0 {
        for (k, slot) in v.iter_mut().enumerate() {
            *slot = 1 << (31 - k);
        }
        return v;
    }
    let (s, a) = polys[dim - 1];
    let s = s as usize;
    let m: Vec<u32> = match JOE_KUO.get(dim - 1) {
        Some(&(_, _, m)) => m.to_vec(),
        None => {
            let mut rng = Rng::keyed(0x0005_0b01, &[dim as u64]);
            (0..s)
                .map(|k| (rng.below(1 << k) as u32) * 2 + 1) // odd, below 2^(k+1)
                .collect()
        }
    };
    for k in 0..s.min(BITS) {
        v[k] = m[k] << (31 - k);
    }
    for k in s..BITS {
        let mut x = v[k - s] ^ (v[k - s] >> s);
        for j in 1..s {
            if (a >> (s - 1 - j)) & 1 == 1 {
                x ^= v[k - j];
            }
        }
        v[k] = x;
    }
    v
}

/// A scrambled Sobol sequence: Joe-Kuo direction numbers, a random linear matrix scramble and a
/// random digital shift per dimension (both seeded). Scrambling keeps the net's balance: among
/// the first 2^k points each dimension has exactly one point in every interval of width 2^-k.
///
/// ```
/// use caviar_core::sampler::SobolSequence;
/// let seq = SobolSequence::new(3, 0);
/// let p = seq.point(5);
/// assert_eq!(p.len(), 3);
/// assert!(p.iter().all(|u| (0.0..1.0).contains(u)));
/// ```
#[derive(Clone, Debug)]
pub struct SobolSequence {
    directions: Vec<[u32; BITS]>,
    shifts: Vec<u32>,
}

impl SobolSequence {
    /// A sequence of `dims` dimensions (any number).
    pub fn new(dims: usize, seed: u64) -> Self {
        let dims = dims.max(1);
        let polys = primitive_polynomials(dims - 1);
        let mut directions = Vec::with_capacity(dims);
        let mut shifts = Vec::with_capacity(dims);
        for d in 0..dims {
            let mut rng = Rng::keyed(seed, &[0x0073_6f62_6f6c, d as u64]);
            let raw = direction_numbers(d, &polys);
            // Lower-triangular scramble with a unit diagonal: output bit i mixes input bits
            // at least as significant as i.
            let rows: Vec<u32> = (0..BITS)
                .map(|i| {
                    let own = 1u32 << (31 - i);
                    let higher = !((own << 1).wrapping_sub(1)) & !own;
                    let higher = if i == 0 { 0 } else { higher };
                    own | (rng.next_u64() as u32 & higher)
                })
                .collect();
            let mut scrambled = [0u32; BITS];
            for (k, out) in scrambled.iter_mut().enumerate() {
                for (i, row) in rows.iter().enumerate() {
                    if (row & raw[k]).count_ones() % 2 == 1 {
                        *out |= 1 << (31 - i);
                    }
                }
            }
            directions.push(scrambled);
            shifts.push(rng.next_u64() as u32);
        }
        SobolSequence { directions, shifts }
    }

    /// Coordinate `dim` of point `index`, in (0, 1).
    pub fn coordinate(&self, index: u64, dim: usize) -> f64 {
        let v = &self.directions[dim];
        let mut x = self.shifts[dim];
        let mut i = index;
        let mut k = 0;
        while i != 0 && k < BITS {
            if i & 1 == 1 {
                x ^= v[k];
            }
            i >>= 1;
            k += 1;
        }
        (f64::from(x) + 0.5) / 4_294_967_296.0
    }

    /// All coordinates of point `index`.
    pub fn point(&self, index: u64) -> Vec<f64> {
        (0..self.directions.len())
            .map(|d| self.coordinate(index, d))
            .collect()
    }

    /// Number of dimensions.
    pub fn dims(&self) -> usize {
        self.directions.len()
    }
}

/// Quasi-random, space-filling draws: trial `n` gets point `n` of a scrambled Sobol sequence,
/// one dimension per parameter of the declared space (in name order). Parameters outside the
/// declared space are drawn at random.
#[derive(Clone, Debug)]
pub struct SobolSampler {
    space: SearchSpace,
    sequence: SobolSequence,
    seed: u64,
}

impl SobolSampler {
    /// A sampler over the parameters of `space`.
    pub fn new(space: &SearchSpace, seed: u64) -> Self {
        SobolSampler {
            space: space.clone(),
            sequence: SobolSequence::new(space.len(), seed),
            seed,
        }
    }
}

impl Sampler for SobolSampler {
    fn sample(
        &self,
        ctx: &SampleContext<'_>,
        name: &str,
        dist: &Distribution,
    ) -> Result<ParamValue, SamplerError> {
        let u = match self.space.index_of(name) {
            Some(dim) if dim < self.sequence.dims() => {
                self.sequence.coordinate(ctx.trial_number, dim)
            }
            _ => RandomSampler::unit(self.seed, ctx.trial_number, name),
        };
        Ok(dist.from_unit(u))
    }

    fn name(&self) -> &'static str {
        "sobol"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polynomial_table_matches_generated_primitives() {
        let polys = primitive_polynomials(300);
        for (i, (s, a, m)) in JOE_KUO.iter().enumerate() {
            assert_eq!(polys[i], (*s, *a), "dimension {}", i + 2);
            for (k, mk) in m.iter().enumerate() {
                assert!(
                    mk % 2 == 1 && *mk < (1 << (k + 1)),
                    "m out of range in dim {}",
                    i + 2
                );
            }
        }
        assert!(polys.len() >= 200);
    }

    #[test]
    fn first_power_of_two_points_are_stratified_in_every_dimension() {
        let seq = SobolSequence::new(40, 7);
        for k in [4u32, 8, 10] {
            let n = 1u64 << k;
            for d in 0..seq.dims() {
                let mut cells = vec![0u32; n as usize];
                for i in 0..n {
                    cells[(seq.coordinate(i, d) * n as f64) as usize] += 1;
                }
                assert!(cells.iter().all(|&c| c == 1), "dim {d}, 2^{k} points");
            }
        }
    }

    #[test]
    fn thousands_of_dimensions_each_get_their_own_polynomial_and_stay_stratified() {
        // 1,024 was once a hard cap: dimension 1,025 indexed past the table and panicked.
        let dims = 5000;
        let polys = primitive_polynomials(dims - 1);
        assert_eq!(polys.len(), dims - 1);
        let distinct: std::collections::HashSet<_> = polys.iter().collect();
        assert_eq!(distinct.len(), dims - 1);
        assert!(polys.windows(2).all(|w| w[0] < w[1]));
        let seq = SobolSequence::new(dims, 11);
        assert_eq!(seq.dims(), dims);
        let n = 256u64;
        for d in [1023, 1024, 2500, dims - 1] {
            let mut cells = vec![0u32; n as usize];
            for i in 0..n {
                cells[(seq.coordinate(i, d) * n as f64) as usize] += 1;
            }
            assert!(cells.iter().all(|&c| c == 1), "dim {d}");
        }
    }

    #[test]
    fn two_dimensional_projections_are_balanced() {
        // For dims 0 and 1 the first 2^(2k) points put one point in each 2^-k by 2^-k box.
        let seq = SobolSequence::new(2, 3);
        let k = 4;
        let side = 1usize << k;
        let mut boxes = vec![0u32; side * side];
        for i in 0..(side * side) as u64 {
            let x = (seq.coordinate(i, 0) * side as f64) as usize;
            let y = (seq.coordinate(i, 1) * side as f64) as usize;
            boxes[x * side + y] += 1;
        }
        assert!(boxes.iter().all(|&c| c == 1));
    }

    #[test]
    fn seeds_change_the_scramble() {
        let a = SobolSequence::new(3, 1).point(1);
        let b = SobolSequence::new(3, 2).point(1);
        assert_ne!(a, b);
        assert_eq!(a, SobolSequence::new(3, 1).point(1));
    }
}
