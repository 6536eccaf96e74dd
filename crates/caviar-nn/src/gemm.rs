//! Row-major matrix products on top of `matrixmultiply` (transposes are stride tricks, no copies).

/// `out (m×n) = beta·out + a (m×k) · b (k×n)`.
pub fn ab(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, out: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && out.len() >= m * n);
    // SAFETY: the asserts above keep every index the kernel touches inside the slices.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            n as isize,
            1,
            beta,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out (m×n) = beta·out + aᵀ · b`, where `a` is stored k×m and `b` is k×n.
pub fn at_b(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], beta: f32, out: &mut [f32]) {
    assert!(a.len() >= k * m && b.len() >= k * n && out.len() >= m * n);
    // SAFETY: as above; element (i, p) of aᵀ is a[p * m + i].
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            1,
            m as isize,
            b.as_ptr(),
            n as isize,
            1,
            beta,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

/// `out (m×n) = a (m×k) · bᵀ`, where `b` is stored n×k.
pub fn a_bt(m: usize, k: usize, n: usize, a: &[f32], b: &[f32], out: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= n * k && out.len() >= m * n);
    // SAFETY: as above; element (p, j) of bᵀ is b[j * k + p].
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            k as isize,
            1,
            b.as_ptr(),
            1,
            k as isize,
            0.0,
            out.as_mut_ptr(),
            n as isize,
            1,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(
        m: usize,
        k: usize,
        n: usize,
        a: impl Fn(usize, usize) -> f32,
        b: impl Fn(usize, usize) -> f32,
    ) -> Vec<f32> {
        let mut out = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a(i, p) * b(p, j)).sum();
            }
        }
        out
    }

    fn close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        for (x, y) in got.iter().zip(want) {
            assert!(
                (x - y).abs() < 1e-4 * (1.0 + y.abs()),
                "{got:?} vs {want:?}"
            );
        }
    }

    #[test]
    fn products_match_naive_loops() {
        let (m, k, n) = (3, 4, 5);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 2.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let mut out = vec![0.0; m * n];
        ab(m, k, n, &a, &b, 0.0, &mut out);
        close(
            &out,
            &naive(m, k, n, |i, p| a[i * k + p], |p, j| b[p * n + j]),
        );

        // aᵀ·b with a stored k×m
        let at: Vec<f32> = (0..k * m).map(|i| i as f32 - 3.0).collect();
        let mut out2 = vec![1.0; m * n];
        at_b(m, k, n, &at, &b, 1.0, &mut out2);
        let want: Vec<f32> = naive(m, k, n, |i, p| at[p * m + i], |p, j| b[p * n + j])
            .iter()
            .map(|v| v + 1.0)
            .collect();
        close(&out2, &want);

        // a·bᵀ with b stored n×k
        let bt: Vec<f32> = (0..n * k).map(|i| (i as f32).cos()).collect();
        let mut out3 = vec![0.0; m * n];
        a_bt(m, k, n, &a, &bt, &mut out3);
        close(
            &out3,
            &naive(m, k, n, |i, p| a[i * k + p], |p, j| bt[j * k + p]),
        );
    }
}
