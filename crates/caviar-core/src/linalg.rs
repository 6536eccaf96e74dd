//! The little dense linear algebra the Gaussian process needs: a Cholesky factorisation that
//! adds jitter until the matrix is numerically positive definite, and triangular solves.
//! Matrices are row-major `Vec<f64>` of size n × n.

/// Dot product with eight independent accumulators, so the compiler can vectorise it.
#[inline]
pub(crate) fn dot(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 8];
    let chunks = n / 8;
    for c in 0..chunks {
        let (x, y) = (&a[c * 8..c * 8 + 8], &b[c * 8..c * 8 + 8]);
        for k in 0..8 {
            acc[k] += x[k] * y[k];
        }
    }
    let mut tail = 0.0;
    for i in chunks * 8..n {
        tail += a[i] * b[i];
    }
    (acc[0] + acc[4]) + (acc[1] + acc[5]) + (acc[2] + acc[6]) + (acc[3] + acc[7]) + tail
}

/// A lower-triangular Cholesky factor `L` with `L Lᵀ = A + jitter·I`.
#[derive(Clone, Debug)]
pub(crate) struct Cholesky {
    pub n: usize,
    /// Row-major; entries above the diagonal are zero.
    pub l: Vec<f64>,
    /// The jitter that made the factorisation succeed (read by tests).
    #[cfg_attr(not(test), allow(dead_code))]
    pub jitter: f64,
}

/// The matrix stayed indefinite even with the largest jitter tried.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct NotPositiveDefinite;

impl Cholesky {
    /// Factorises the symmetric matrix `a` (only its lower triangle is read), first as given,
    /// then with jitter growing tenfold from 1e-10 times the mean diagonal up to 1e-2 times it.
    pub fn new(a: &[f64], n: usize) -> Result<Self, NotPositiveDefinite> {
        assert_eq!(a.len(), n * n);
        let mean_diag = (0..n).map(|i| a[i * n + i]).sum::<f64>() / n.max(1) as f64;
        let scale = if mean_diag.is_finite() && mean_diag > 0.0 {
            mean_diag
        } else {
            1.0
        };
        let mut l = vec![0.0; n * n];
        let mut jitter = 0.0;
        for attempt in 0..10 {
            if Self::factor(a, n, jitter, &mut l) {
                return Ok(Cholesky { n, l, jitter });
            }
            jitter = scale * 1e-10 * 10f64.powi(attempt);
        }
        Err(NotPositiveDefinite)
    }

    fn factor(a: &[f64], n: usize, jitter: f64, l: &mut [f64]) -> bool {
        // Column by column; entries above the diagonal are never written, so stay zero.
        for j in 0..n {
            let row_j = &l[j * n..j * n + j];
            let s = a[j * n + j] + jitter - dot(row_j, row_j);
            if !(s > 0.0 && s.is_finite()) {
                return false;
            }
            let d = s.sqrt();
            l[j * n + j] = d;
            for i in j + 1..n {
                let (upper, lower) = l.split_at_mut(i * n);
                let row_j = &upper[j * n..j * n + j];
                let row_i = &mut lower[..n];
                row_i[j] = (a[i * n + j] - dot(&row_i[..j], row_j)) / d;
            }
        }
        true
    }

    /// Solves `L v = b` in place.
    pub fn solve_lower(&self, b: &mut [f64]) {
        let n = self.n;
        for i in 0..n {
            let row = &self.l[i * n..i * n + i];
            b[i] = (b[i] - dot(row, &b[..i])) / self.l[i * n + i];
        }
    }

    /// Solves `Lᵀ w = v` in place.
    pub fn solve_upper(&self, v: &mut [f64]) {
        let n = self.n;
        for i in (0..n).rev() {
            let wi = v[i] / self.l[i * n + i];
            v[i] = wi;
            let row = &self.l[i * n..i * n + i];
            for (vk, lk) in v[..i].iter_mut().zip(row) {
                *vk -= lk * wi;
            }
        }
    }

    /// Solves `A x = b` in place.
    pub fn solve(&self, b: &mut [f64]) {
        self.solve_lower(b);
        self.solve_upper(b);
    }

    /// log det(A + jitter·I).
    pub fn log_det(&self) -> f64 {
        2.0 * (0..self.n)
            .map(|i| self.l[i * self.n + i].ln())
            .sum::<f64>()
    }

    /// The full inverse of A + jitter·I (row-major).
    pub fn inverse(&self) -> Vec<f64> {
        let n = self.n;
        // Rows of L⁻¹ (lower triangular), by forward substitution on the identity, stored
        // row-major; then A⁻¹ = L⁻ᵀ L⁻¹, (A⁻¹)_ij = Σ_k (L⁻¹)_ki (L⁻¹)_kj over k ≥ max(i, j).
        let mut linv = vec![0.0; n * n];
        for col in 0..n {
            // Column `col` of L⁻¹: solve L x = e_col; x is zero above `col`.
            let mut x = vec![0.0; n];
            x[col] = 1.0 / self.l[col * n + col];
            for i in col + 1..n {
                let row = &self.l[i * n + col..i * n + i];
                x[i] = -dot(row, &x[col..i]) / self.l[i * n + i];
            }
            for i in col..n {
                linv[i * n + col] = x[i];
            }
        }
        // Transpose so that column j of L⁻¹ is a contiguous row: lt[j] = (L⁻¹)_{·j}.
        let mut lt = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                lt[j * n + i] = linv[i * n + j];
            }
        }
        let mut inv = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..=i {
                let v = dot(&lt[i * n + i..i * n + n], &lt[j * n + i..j * n + n]);
                inv[i * n + j] = v;
                inv[j * n + i] = v;
            }
        }
        inv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn spd(n: usize, seed: u64) -> Vec<f64> {
        let mut rng = Rng::new(seed);
        let b: Vec<f64> = (0..n * n).map(|_| rng.normal()).collect();
        let mut a = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = (0..n).map(|k| b[i * n + k] * b[j * n + k]).sum::<f64>();
            }
            a[i * n + i] += 0.1;
        }
        a
    }

    #[test]
    fn factor_solve_and_inverse_agree_with_the_matrix() {
        for n in [1, 2, 7, 33] {
            let a = spd(n, n as u64);
            let c = Cholesky::new(&a, n).unwrap();
            assert_eq!(c.jitter, 0.0);
            for i in 0..n {
                for j in 0..n {
                    let v: f64 = (0..n).map(|k| c.l[i * n + k] * c.l[j * n + k]).sum();
                    assert!((v - a[i * n + j]).abs() < 1e-9 * (1.0 + a[i * n + j].abs()));
                }
            }
            let b: Vec<f64> = (0..n).map(|i| i as f64 - 3.0).collect();
            let mut x = b.clone();
            c.solve(&mut x);
            for i in 0..n {
                let ax: f64 = (0..n).map(|k| a[i * n + k] * x[k]).sum();
                assert!((ax - b[i]).abs() < 1e-7, "n={n} row {i}: {ax} vs {}", b[i]);
            }
            let inv = c.inverse();
            for i in 0..n {
                for j in 0..n {
                    let v: f64 = (0..n).map(|k| a[i * n + k] * inv[k * n + j]).sum();
                    let want = if i == j { 1.0 } else { 0.0 };
                    assert!((v - want).abs() < 1e-7, "n={n} ({i},{j}) = {v}");
                }
            }
            let det: f64 = c.log_det();
            assert!(det.is_finite());
        }
    }

    #[test]
    fn a_singular_matrix_gets_jitter_and_a_negative_one_fails() {
        let n = 3;
        // Rank one: every row equal.
        let a = vec![1.0; n * n];
        let c = Cholesky::new(&a, n).unwrap();
        assert!(c.jitter > 0.0 && c.jitter < 1e-2);
        let neg = vec![-1.0, 0.0, 0.0, -1.0];
        assert_eq!(Cholesky::new(&neg, 2).unwrap_err(), NotPositiveDefinite);
        let nan = vec![f64::NAN; 4];
        assert!(Cholesky::new(&nan, 2).is_err());
    }
}
