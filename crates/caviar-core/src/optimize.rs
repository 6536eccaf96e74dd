//! A small box-constrained quasi-Newton minimiser (projected L-BFGS with a backtracking line
//! search), enough for fitting a Gaussian process's hyperparameters and for climbing an
//! acquisition function. Not a general-purpose solver.

/// Minimises `f` over the box `[lo, hi]` from `x0`. `f(x, grad)` returns the value and writes
/// the gradient. Stops after `max_iter` iterations, when the projected gradient is below `tol`,
/// or when a step no longer makes progress. Returns the best point and its value.
pub(crate) fn minimize_box(
    mut f: impl FnMut(&[f64], &mut [f64]) -> f64,
    x0: &[f64],
    lo: &[f64],
    hi: &[f64],
    max_iter: usize,
    tol: f64,
) -> (Vec<f64>, f64) {
    const MEMORY: usize = 8;
    let n = x0.len();
    let project = |x: &mut [f64]| {
        for i in 0..n {
            x[i] = x[i].clamp(lo[i], hi[i]);
        }
    };
    let mut x = x0.to_vec();
    project(&mut x);
    let mut g = vec![0.0; n];
    let mut fx = f(&x, &mut g);
    if !fx.is_finite() || g.iter().any(|v| !v.is_finite()) {
        return (x, fx);
    }
    let mut pairs: Vec<(Vec<f64>, Vec<f64>, f64)> = Vec::new();
    let mut xn = vec![0.0; n];
    let mut gn = vec![0.0; n];
    for _ in 0..max_iter {
        // Coordinates held at a bound by a gradient that pushes outward do not move.
        let fixed: Vec<bool> = (0..n)
            .map(|i| (x[i] <= lo[i] && g[i] > 0.0) || (x[i] >= hi[i] && g[i] < 0.0))
            .collect();
        let free_norm = (0..n)
            .filter(|&i| !fixed[i])
            .map(|i| g[i].abs())
            .fold(0.0, f64::max);
        if free_norm < tol {
            break;
        }
        let mut d: Vec<f64> = (0..n).map(|i| if fixed[i] { 0.0 } else { -g[i] }).collect();
        two_loop(&pairs, &mut d);
        for i in 0..n {
            if fixed[i] {
                d[i] = 0.0;
            }
        }
        let slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        if slope >= 0.0 || slope.is_nan() {
            pairs.clear();
            for i in 0..n {
                d[i] = if fixed[i] { 0.0 } else { -g[i] };
            }
        }
        // Without curvature information, the first step moves at most 0.1 in any coordinate.
        let mut t = if pairs.is_empty() {
            let big = d.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            (0.1 / big).min(1.0)
        } else {
            1.0
        };
        let mut accepted = None;
        for _ in 0..30 {
            for i in 0..n {
                xn[i] = x[i] + t * d[i];
            }
            project(&mut xn);
            let fnew = f(&xn, &mut gn);
            let moved: f64 = (0..n).map(|i| g[i] * (xn[i] - x[i])).sum();
            if fnew.is_finite()
                && gn.iter().all(|v| v.is_finite())
                && fnew <= fx + 1e-4 * moved.min(0.0)
            {
                accepted = Some(fnew);
                break;
            }
            t *= 0.5;
        }
        let Some(fnew) = accepted else { break };
        let s: Vec<f64> = (0..n).map(|i| xn[i] - x[i]).collect();
        let y: Vec<f64> = (0..n).map(|i| gn[i] - g[i]).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        let yy: f64 = y.iter().map(|v| v * v).sum();
        let progress = fx - fnew;
        x.copy_from_slice(&xn);
        g.copy_from_slice(&gn);
        fx = fnew;
        if sy > 1e-12 * yy.max(1e-300) && sy > 0.0 {
            if pairs.len() == MEMORY {
                pairs.remove(0);
            }
            pairs.push((s, y, 1.0 / sy));
        }
        if progress <= 1e-10 * fx.abs().max(1.0) {
            break;
        }
    }
    (x, fx)
}

/// The L-BFGS two-loop recursion: turns `q` (the negative gradient) into a search direction.
fn two_loop(pairs: &[(Vec<f64>, Vec<f64>, f64)], q: &mut [f64]) {
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let mut alphas = vec![0.0; pairs.len()];
    for (k, (s, y, rho)) in pairs.iter().enumerate().rev() {
        let a = rho * dot(s, q);
        alphas[k] = a;
        for (qi, yi) in q.iter_mut().zip(y) {
            *qi -= a * yi;
        }
    }
    if let Some((s, y, _)) = pairs.last() {
        let gamma = dot(s, y) / dot(y, y);
        for qi in q.iter_mut() {
            *qi *= gamma;
        }
    }
    for (k, (s, y, rho)) in pairs.iter().enumerate() {
        let b = rho * dot(y, q);
        for (qi, si) in q.iter_mut().zip(s) {
            *qi += (alphas[k] - b) * si;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_minimum_of_rosenbrock_inside_a_box() {
        let f = |x: &[f64], g: &mut [f64]| {
            let (a, b) = (x[0], x[1]);
            g[0] = -2.0 * (1.0 - a) - 400.0 * a * (b - a * a);
            g[1] = 200.0 * (b - a * a);
            (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2)
        };
        let (x, fx) = minimize_box(f, &[-1.2, 1.0], &[-2.0, -2.0], &[2.0, 2.0], 500, 1e-9);
        assert!(fx < 1e-8, "f = {fx} at {x:?}");
        assert!((x[0] - 1.0).abs() < 1e-3 && (x[1] - 1.0).abs() < 1e-3);
    }

    #[test]
    fn stops_on_the_bound_when_the_minimum_lies_outside() {
        // Minimum at (3, -3); the box is [0, 1]².
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * (x[0] - 3.0);
            g[1] = 2.0 * (x[1] + 3.0);
            (x[0] - 3.0).powi(2) + (x[1] + 3.0).powi(2)
        };
        let (x, _) = minimize_box(f, &[0.5, 0.5], &[0.0, 0.0], &[1.0, 1.0], 100, 1e-9);
        assert_eq!(x, vec![1.0, 0.0]);
    }

    #[test]
    fn a_coordinate_with_equal_bounds_never_moves() {
        let f = |x: &[f64], g: &mut [f64]| {
            g[0] = 2.0 * x[0];
            g[1] = 2.0 * (x[1] - 5.0);
            x[0] * x[0] + (x[1] - 5.0).powi(2)
        };
        let (x, _) = minimize_box(f, &[0.7, 0.0], &[0.7, -10.0], &[0.7, 10.0], 100, 1e-9);
        assert_eq!(x[0], 0.7);
        assert!((x[1] - 5.0).abs() < 1e-6);
    }
}
