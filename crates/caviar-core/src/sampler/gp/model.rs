//! A Gaussian-process regression model with a Matérn-5/2 ARD kernel, its hyperparameters fitted
//! by maximising the marginal likelihood times weak priors (MAP).

use crate::linalg::{dot, Cholesky};
use crate::optimize::minimize_box;

const SQRT5: f64 = 2.236_067_977_499_79;
const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// Lengthscale bounds in the unit cube; the signal variance and noise are relative to the
/// standardised objective.
const LN_LS_BOUNDS: (f64, f64) = (-5.3, 5.3); // 0.005 .. 200
const LN_SCALE_BOUNDS: (f64, f64) = (-4.6, 4.6); // 0.01 .. 100
const LN_NOISE_BOUNDS: (f64, f64) = (-13.8, 0.7); // 1e-6 .. 2
/// Bounds of ln a and ln b of each column's Kumaraswamy warping (a, b in 0.22 .. 4.5).
const LN_WARP_BOUNDS: (f64, f64) = (-1.5, 1.5);
/// Inputs are kept this far inside (0, 1), where the warping's slope is finite.
const EDGE: f64 = 1e-6;

/// Input warping by the Kumaraswamy CDF, 1 - (1 - x^a)^b, one (a, b) per column (as HEBO warps
/// its inputs): a and b near 1 leave x as it is; other values stretch the region where the
/// objective changes fast. `theta` holds [.., ln a_1..ln a_d, ln b_1..ln b_d] after the
/// lengthscales, signal and noise, or nothing (no warping).
#[derive(Clone, Debug)]
pub(crate) struct Warp {
    a: Vec<f64>,
    b: Vec<f64>,
}

impl Warp {
    /// The warping in `theta`, if it has one.
    pub fn of(theta: &[f64], d: usize) -> Option<Warp> {
        (theta.len() == 3 * d + 2).then(|| Warp {
            a: theta[d + 2..2 * d + 2].iter().map(|v| v.exp()).collect(),
            b: theta[2 * d + 2..].iter().map(|v| v.exp()).collect(),
        })
    }

    /// The warped point, column by column.
    pub fn apply(&self, x: &[f64]) -> Vec<f64> {
        let d = self.a.len();
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                // The ends stay where they are (and one-hot columns with them).
                if v <= 0.0 || v >= 1.0 {
                    return v.clamp(0.0, 1.0);
                }
                let q = i % d;
                let v = v.clamp(EDGE, 1.0 - EDGE);
                1.0 - (1.0 - v.powf(self.a[q])).powf(self.b[q])
            })
            .collect()
    }

    /// dw/dx at `v` in column `q` (just inside the ends at the ends, so a climb can leave them).
    fn slope(&self, v: f64, q: usize) -> f64 {
        let v = v.clamp(EDGE, 1.0 - EDGE);
        let (a, b) = (self.a[q], self.b[q]);
        let va = v.powf(a);
        a * b * v.powf(a - 1.0) * (1.0 - va).powf(b - 1.0)
    }

    /// dw/d ln a and dw/d ln b at `v` in column `q`.
    fn parameter_slopes(&self, v: f64, q: usize) -> (f64, f64) {
        if v <= 0.0 || v >= 1.0 {
            return (0.0, 0.0);
        }
        let v = v.clamp(EDGE, 1.0 - EDGE);
        let (a, b) = (self.a[q], self.b[q]);
        let va = v.powf(a);
        let rest = 1.0 - va;
        let d_ln_a = a * b * rest.powf(b - 1.0) * va * v.ln();
        let d_ln_b = -b * rest.powf(b) * rest.ln();
        (d_ln_a, d_ln_b)
    }
}

/// k/s² and c/s² of the Matérn-5/2 kernel at squared scaled distance `r2`, where
/// c = (5/3)(1 + √5 r) e^{-√5 r} is the factor shared by all its derivatives:
/// ∂k/∂x_d = -s²·c·Δ_d/ℓ_d² and ∂k/∂ln ℓ_d = s²·c·Δ_d²/ℓ_d².
#[inline]
fn matern52(r2: f64) -> (f64, f64) {
    let r = r2.sqrt();
    let e = (-SQRT5 * r).exp();
    (
        (1.0 + SQRT5 * r + 5.0 / 3.0 * r2) * e,
        5.0 / 3.0 * (1.0 + SQRT5 * r) * e,
    )
}

/// Weak priors (in log space) that keep the fit sensible with few points: lengthscales
/// log-normal around a median that grows with √d (Hvarfner et al., 2024), signal variance
/// around 1, noise small.
fn log_prior(theta: &[f64], d: usize, grad: &mut [f64]) -> f64 {
    let ls_mean = std::f64::consts::SQRT_2 + 0.5 * (d as f64).ln();
    let ls_var = 3.0;
    let mut nlp = 0.0;
    for i in 0..d {
        let z = theta[i] - ls_mean;
        nlp += 0.5 * z * z / ls_var;
        grad[i] += z / ls_var;
    }
    let (scale_mean, scale_var) = (0.0, 2.0);
    let z = theta[d] - scale_mean;
    nlp += 0.5 * z * z / scale_var;
    grad[d] += z / scale_var;
    let (noise_mean, noise_var) = (-8.0, 4.0);
    let z = theta[d + 1] - noise_mean;
    nlp += 0.5 * z * z / noise_var;
    grad[d + 1] += z / noise_var;
    // Warpings near the identity unless the data say otherwise.
    let warp_var = 0.5;
    for k in d + 2..theta.len() {
        nlp += 0.5 * theta[k] * theta[k] / warp_var;
        grad[k] += theta[k] / warp_var;
    }
    nlp
}

/// Negative log posterior of the hyperparameters `theta` = [ln ℓ_1..ln ℓ_d, ln s², ln σ²] for
/// points `x` (n × d, row-major) and standardised targets `y`; writes its gradient.
fn neg_log_posterior(raw: &[f64], y: &[f64], d: usize, theta: &[f64], grad: &mut [f64]) -> f64 {
    let n = y.len();
    grad.iter_mut().for_each(|g| *g = 0.0);
    let warp = Warp::of(theta, d);
    let warped;
    let x = match &warp {
        Some(w) => {
            warped = w.apply(raw);
            &warped[..]
        }
        None => raw,
    };
    // ∂nll/∂x of each warped input, for the warping's gradient.
    let mut input_grad = vec![0.0; if warp.is_some() { n * d } else { 0 }];
    let inv_ls2: Vec<f64> = theta[..d].iter().map(|l| (-2.0 * l).exp()).collect();
    let (s2, noise) = (theta[d].exp(), theta[d + 1].exp());
    let mut k = vec![0.0; n * n];
    let mut c = vec![0.0; n * n];
    for i in 0..n {
        for j in 0..i {
            let r2 = scaled_distance2(&x[i * d..i * d + d], &x[j * d..j * d + d], &inv_ls2);
            let (m, cc) = matern52(r2);
            k[i * n + j] = s2 * m;
            k[j * n + i] = s2 * m;
            c[i * n + j] = s2 * cc;
        }
        k[i * n + i] = s2 + noise;
    }
    let Ok(chol) = Cholesky::new(&k, n) else {
        return f64::INFINITY;
    };
    let mut alpha = y.to_vec();
    chol.solve(&mut alpha);
    let nll = 0.5 * dot(y, &alpha) + 0.5 * chol.log_det() + 0.5 * n as f64 * LN_2PI;
    // ∂nll/∂θ = ½ tr(W ∂K/∂θ) with W = K⁻¹ - ααᵀ.
    let mut w = chol.inverse();
    for i in 0..n {
        for j in 0..n {
            w[i * n + j] -= alpha[i] * alpha[j];
        }
    }
    let mut diag_w = 0.0;
    let mut scale_grad = 0.0;
    for i in 0..n {
        diag_w += w[i * n + i];
        scale_grad += w[i * n + i] * s2;
        let xi = &x[i * d..i * d + d];
        for j in 0..i {
            let wij = w[i * n + j];
            scale_grad += 2.0 * wij * k[i * n + j];
            let coef = wij * c[i * n + j];
            let xj = &x[j * d..j * d + d];
            for q in 0..d {
                let delta = xi[q] - xj[q];
                grad[q] += coef * delta * delta;
                if warp.is_some() {
                    // ∂K_ij/∂x_iq = -c_ij Δ/ℓ², counted for (i, j) and (j, i): ½ · 2.
                    let g = -coef * delta * inv_ls2[q];
                    input_grad[i * d + q] += g;
                    input_grad[j * d + q] -= g;
                }
            }
        }
    }
    for q in 0..d {
        grad[q] *= inv_ls2[q];
    }
    grad[d] = 0.5 * scale_grad;
    grad[d + 1] = 0.5 * noise * diag_w;
    if let Some(w) = &warp {
        for i in 0..n {
            for q in 0..d {
                let (da, db) = w.parameter_slopes(raw[i * d + q], q);
                grad[d + 2 + q] += input_grad[i * d + q] * da;
                grad[2 * d + 2 + q] += input_grad[i * d + q] * db;
            }
        }
    }
    nll + log_prior(theta, d, grad)
}

#[inline]
fn scaled_distance2(a: &[f64], b: &[f64], inv_ls2: &[f64]) -> f64 {
    let mut r2 = 0.0;
    for q in 0..a.len() {
        let delta = a[q] - b[q];
        r2 += delta * delta * inv_ls2[q];
    }
    r2
}

/// Fits the hyperparameters to (x, y) from each start and returns the best (or `None` when no
/// start gives a finite posterior).
pub(crate) fn fit_hyperparameters(
    x: &[f64],
    y: &[f64],
    d: usize,
    starts: &[Vec<f64>],
) -> Option<Vec<f64>> {
    let mut lo = vec![LN_LS_BOUNDS.0; d];
    let mut hi = vec![LN_LS_BOUNDS.1; d];
    lo.extend([LN_SCALE_BOUNDS.0, LN_NOISE_BOUNDS.0]);
    hi.extend([LN_SCALE_BOUNDS.1, LN_NOISE_BOUNDS.1]);
    let size = starts.first().map_or(d + 2, Vec::len);
    lo.resize(size, LN_WARP_BOUNDS.0);
    hi.resize(size, LN_WARP_BOUNDS.1);
    let mut best: Option<(Vec<f64>, f64)> = None;
    for start in starts {
        let (theta, value) = minimize_box(
            |t, g| neg_log_posterior(x, y, d, t, g),
            start,
            &lo,
            &hi,
            60,
            1e-4,
        );
        if value.is_finite() && best.as_ref().is_none_or(|(_, b)| value < *b) {
            best = Some((theta, value));
        }
    }
    best.map(|(t, _)| t)
}

/// The default starting hyperparameters: lengthscale 1 in the unit cube, unit signal, small
/// noise, and with `warp` the identity warping of every column.
pub(crate) fn default_theta(d: usize, warp: bool) -> Vec<f64> {
    let mut t = vec![0.0; d];
    t.extend([0.0, -6.9]);
    if warp {
        t.extend(vec![0.0; 2 * d]);
    }
    t
}

/// A fitted Gaussian process, ready to predict.
pub(crate) struct Gp {
    d: usize,
    warp: Option<Warp>,
    /// The training inputs, warped.
    x: Vec<f64>,
    inv_ls2: Vec<f64>,
    s2: f64,
    chol: Cholesky,
    alpha: Vec<f64>,
}

/// A prediction of the latent function at one point.
pub(crate) struct Prediction {
    pub mean: f64,
    pub var: f64,
    /// ∂mean/∂x and ∂var/∂x, when asked for.
    pub grad: Option<(Vec<f64>, Vec<f64>)>,
}

impl Gp {
    /// Conditions the process with hyperparameters `theta` on (x, y).
    pub fn new(x: Vec<f64>, y: &[f64], d: usize, theta: &[f64]) -> Option<Gp> {
        let n = y.len();
        let warp = Warp::of(theta, d);
        let x = match &warp {
            Some(w) => w.apply(&x),
            None => x,
        };
        let inv_ls2: Vec<f64> = theta[..d].iter().map(|l| (-2.0 * l).exp()).collect();
        let (s2, noise) = (theta[d].exp(), theta[d + 1].exp());
        let mut k = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..i {
                let r2 = scaled_distance2(&x[i * d..i * d + d], &x[j * d..j * d + d], &inv_ls2);
                let v = s2 * matern52(r2).0;
                k[i * n + j] = v;
                k[j * n + i] = v;
            }
            k[i * n + i] = s2 + noise;
        }
        let chol = Cholesky::new(&k, n).ok()?;
        let mut alpha = y.to_vec();
        chol.solve(&mut alpha);
        Some(Gp {
            d,
            warp,
            x,
            inv_ls2,
            s2,
            chol,
            alpha,
        })
    }

    /// Mean and variance of the latent function at `q`, and their gradients if `with_grad`.
    pub fn predict(&self, raw: &[f64], with_grad: bool) -> Prediction {
        let (n, d) = (self.alpha.len(), self.d);
        let warped;
        let q = match &self.warp {
            Some(w) => {
                warped = w.apply(raw);
                &warped[..]
            }
            None => raw,
        };
        let mut kv = vec![0.0; n];
        let mut cv = vec![0.0; n];
        for i in 0..n {
            let r2 = scaled_distance2(q, &self.x[i * d..i * d + d], &self.inv_ls2);
            let (m, c) = matern52(r2);
            kv[i] = self.s2 * m;
            cv[i] = self.s2 * c;
        }
        let mean = dot(&kv, &self.alpha);
        let mut v = kv;
        self.chol.solve_lower(&mut v);
        let floor = 1e-10 * self.s2;
        let raw_var = self.s2 - dot(&v, &v);
        let var = raw_var.max(floor);
        if !with_grad {
            return Prediction {
                mean,
                var,
                grad: None,
            };
        }
        let mut w = v;
        self.chol.solve_upper(&mut w);
        let mut dmean = vec![0.0; d];
        let mut dvar = vec![0.0; d];
        for i in 0..n {
            let (a, b) = (self.alpha[i] * cv[i], w[i] * cv[i]);
            let xi = &self.x[i * d..i * d + d];
            for k in 0..d {
                let delta = q[k] - xi[k];
                dmean[k] -= a * delta;
                dvar[k] -= b * delta;
            }
        }
        let clamped = raw_var < floor;
        for k in 0..d {
            dmean[k] *= self.inv_ls2[k];
            // var = s² - kᵀK⁻¹k, so ∂var = -2 wᵀ∂k, and ∂k_i/∂q_k = -c_i Δ_k/ℓ_k².
            dvar[k] = if clamped {
                0.0
            } else {
                -2.0 * dvar[k] * self.inv_ls2[k]
            };
            if let Some(w) = &self.warp {
                let slope = w.slope(raw[k], k);
                dmean[k] *= slope;
                dvar[k] *= slope;
            }
        }
        Prediction {
            mean,
            var,
            grad: Some((dmean, dvar)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::Rng;

    fn data(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = Rng::new(seed);
        let x: Vec<f64> = (0..n * d).map(|_| rng.next_f64()).collect();
        let y: Vec<f64> = (0..n)
            .map(|i| (6.0 * x[i * d]).sin() + 0.3 * x[i * d + d - 1])
            .collect();
        (x, y)
    }

    #[test]
    fn hyperparameter_gradient_matches_finite_differences() {
        let (d, n) = (3, 12);
        let (x, y) = data(n, d, 1);
        let plain = vec![-0.5, 0.3, 1.0, 0.2, -3.0];
        let mut warped = plain.clone();
        warped.extend([0.4, -0.3, 0.1, -0.6, 0.2, 0.5]);
        for theta in [plain, warped] {
            gradient_matches(&x, &y, d, &theta);
        }
    }

    fn gradient_matches(x: &[f64], y: &[f64], d: usize, theta: &[f64]) {
        let (x, y, theta) = (x.to_vec(), y.to_vec(), theta.to_vec());
        let mut g = vec![0.0; theta.len()];
        let f0 = neg_log_posterior(&x, &y, d, &theta, &mut g);
        assert!(f0.is_finite());
        for k in 0..theta.len() {
            let e = 1e-5;
            let mut tp = theta.clone();
            tp[k] += e;
            let mut tm = theta.clone();
            tm[k] -= e;
            let mut scratch = vec![0.0; theta.len()];
            let num = (neg_log_posterior(&x, &y, d, &tp, &mut scratch)
                - neg_log_posterior(&x, &y, d, &tm, &mut scratch))
                / (2.0 * e);
            assert!(
                (num - g[k]).abs() < 1e-4 * (1.0 + num.abs()),
                "θ{k}: analytic {} vs numeric {num}",
                g[k]
            );
        }
    }

    #[test]
    fn prediction_gradients_match_finite_differences() {
        let (d, n) = (2, 15);
        let (x, y) = data(n, d, 2);
        let plain = Gp::new(x.clone(), &y, d, &[-1.0, 0.5, 0.1, -6.0]).unwrap();
        let warped = [-1.0, 0.5, 0.1, -6.0, 0.3, -0.4, -0.2, 0.6];
        let warped = Gp::new(x, &y, d, &warped).unwrap();
        for gp in [plain, warped] {
            prediction_gradient_matches(&gp, d);
        }
    }

    fn prediction_gradient_matches(gp: &Gp, d: usize) {
        let q = [0.37, 0.61];
        let p = gp.predict(&q, true);
        let (dm, dv) = p.grad.unwrap();
        for k in 0..d {
            let e = 1e-6;
            let mut qp = q;
            qp[k] += e;
            let mut qm = q;
            qm[k] -= e;
            let (a, b) = (gp.predict(&qp, false), gp.predict(&qm, false));
            let nm = (a.mean - b.mean) / (2.0 * e);
            let nv = (a.var - b.var) / (2.0 * e);
            assert!(
                (nm - dm[k]).abs() < 1e-5 * (1.0 + nm.abs()),
                "mean {nm} vs {}",
                dm[k]
            );
            assert!(
                (nv - dv[k]).abs() < 1e-5 * (1.0 + nv.abs()),
                "var {nv} vs {}",
                dv[k]
            );
        }
    }

    #[test]
    fn fitted_model_interpolates_and_knows_what_it_has_not_seen() {
        let (d, n) = (1, 20);
        let x: Vec<f64> = (0..n).map(|i| i as f64 / (n - 1) as f64 * 0.5).collect();
        let y: Vec<f64> = x.iter().map(|v| (8.0 * v).sin()).collect();
        let theta = fit_hyperparameters(&x, &y, d, &[default_theta(d, false)]).unwrap();
        let gp = Gp::new(x.clone(), &y, d, &theta).unwrap();
        let near = gp.predict(&[0.26], false);
        assert!(
            (near.mean - (8.0f64 * 0.26).sin()).abs() < 0.01,
            "{}",
            near.mean
        );
        let far = gp.predict(&[0.95], false);
        assert!(far.var > 100.0 * near.var, "{} vs {}", far.var, near.var);
    }
}
