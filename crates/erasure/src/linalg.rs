//! Dense f64 linear algebra for the closed-form edits, on top of `nalgebra`.
//!
//! The edits are ridge regressions `W' = (λW + Σ s v cᵀ)(λI + Σ s c cᵀ)⁻¹`. They are solved in
//! f64 with an LU factorisation that reports a singular system instead of returning garbage, or a
//! blocked Cholesky factorisation for the symmetric positive-definite systems (falling back to LU
//! when it breaks down). Products go through nalgebra's `gemm` (`matrixmultiply`, threaded on
//! native targets when the workspace enables its `threading` feature); transposes are strided
//! views rather than copies, and Gram matrices compute their lower blocks only.

use crate::error::EraseError;
use nalgebra::{DMatrix, DVector, Dyn, Matrix, MatrixView, Storage, StorageMut};

pub type Mat = DMatrix<f64>;
pub type Vector = DVector<f64>;

/// A row-major `[rows, cols]` f32 buffer (PyTorch layout) as an f64 matrix.
pub fn from_row_major(rows: usize, cols: usize, data: &[f32]) -> Mat {
    Mat::from_fn(rows, cols, |r, c| data[r * cols + c] as f64)
}

/// An f64 matrix back to a row-major f32 buffer.
pub fn to_row_major(m: &Mat) -> Vec<f32> {
    let (rows, cols) = (m.nrows(), m.ncols());
    let src = m.as_slice();
    let mut out = vec![0f32; rows * cols];
    if rows == 0 || cols == 0 {
        return out;
    }
    // Eight columns at a time: eight sequential read streams, one contiguous write per row (a
    // plain row-by-row walk strides through the whole column-major matrix per element).
    const CB: usize = 8;
    let full = cols / CB * CB;
    for c0 in (0..full).step_by(CB) {
        let src_cols: [&[f64]; CB] = std::array::from_fn(|k| &src[(c0 + k) * rows..(c0 + k + 1) * rows]);
        for (r, row) in out.chunks_exact_mut(cols).enumerate() {
            let row = &mut row[c0..c0 + CB];
            for k in 0..CB {
                row[k] = src_cols[k][r] as f32;
            }
        }
    }
    for c in full..cols {
        for r in 0..rows {
            out[r * cols + c] = src[c * rows + r] as f32;
        }
    }
    out
}

/// Solves `X A = B` for `X` (`A` square), i.e. `X = B A⁻¹`, through `Aᵀ Xᵀ = Bᵀ`.
/// A pivot below `1e-12 · max|A|` counts as singular.
pub fn solve_right(b: &Mat, a: &Mat, method: &'static str) -> Result<Mat, EraseError> {
    let at = a.transpose();
    let xt = solve_left(&at, &b.transpose(), method)?;
    Ok(xt.transpose())
}

/// Solves `A X = B` for `X` (`A` square) with partial-pivoting LU.
pub fn solve_left(a: &Mat, b: &Mat, method: &'static str) -> Result<Mat, EraseError> {
    check_finite(a, method, "system matrix")?;
    let scale = a.amax().max(f64::MIN_POSITIVE);
    let lu = a.clone().lu();
    let u = lu.u();
    let min_pivot = u.diagonal().iter().fold(f64::INFINITY, |m, v| m.min(v.abs()));
    if !(min_pivot > 1e-12 * scale) {
        return Err(EraseError::Singular {
            method,
            detail: format!("smallest pivot {min_pivot:.3e} against a largest entry {scale:.3e}"),
        });
    }
    lu.solve(b).ok_or_else(|| EraseError::Singular { method, detail: "LU solve failed".into() })
}

pub fn check_finite(m: &Mat, method: &'static str, what: &str) -> Result<(), EraseError> {
    if m.iter().all(|v| v.is_finite()) { Ok(()) } else { Err(EraseError::NotFinite { method, tensor: what.into() }) }
}

/// Stacks column vectors into a `[d, n]` matrix.
pub fn columns(cols: &[Vector], d: usize) -> Mat {
    let mut m = Mat::zeros(d, cols.len());
    for (j, c) in cols.iter().enumerate() {
        m.set_column(j, c);
    }
    m
}

/// `aᵀ` as a strided view of `a`'s storage (no copy): `matrixmultiply`, which nalgebra's `gemm`
/// calls for dynamic matrices, reads any strides, so `aᵀ b` costs one packed GEMM instead of a
/// transposed copy plus a GEMM (or nalgebra's `tr_mul`, which runs column dot products). Only
/// for [`gemm`]: nalgebra's own loop for small products mishandles such views.
fn t(a: &Mat) -> MatrixView<'_, f64, Dyn, Dyn, Dyn, Dyn> {
    MatrixView::from_slice_with_strides_generic(a.as_slice(), Dyn(a.ncols()), Dyn(a.nrows()), Dyn(a.nrows()), Dyn(1))
}

/// `c ← β c + α a b` for any views. nalgebra hands products whose dimensions all exceed 5 to
/// `matrixmultiply` (any strides); its fallback loop for smaller ones indexes strided views
/// wrongly, so those get contiguous copies (they are small or thin).
fn gemm<SC, SA, SB>(
    c: &mut Matrix<f64, Dyn, Dyn, SC>,
    alpha: f64,
    a: &Matrix<f64, Dyn, Dyn, SA>,
    b: &Matrix<f64, Dyn, Dyn, SB>,
    beta: f64,
) where
    SC: StorageMut<f64, Dyn, Dyn>,
    SA: Storage<f64, Dyn, Dyn>,
    SB: Storage<f64, Dyn, Dyn>,
{
    const SMALL: usize = 5;
    let large = c.nrows() > SMALL && c.ncols() > SMALL && a.nrows() > SMALL && a.ncols() > SMALL;
    if large || (a.strides().0 == 1 && b.strides().0 == 1) {
        c.gemm(alpha, a, b, beta);
    } else {
        c.gemm(alpha, &a.clone_owned(), &b.clone_owned(), beta);
    }
}

/// `aᵀ b`.
pub fn mul_tn(a: &Mat, b: &Mat) -> Mat {
    let mut c = Mat::zeros(a.ncols(), b.ncols());
    gemm(&mut c, 1.0, &t(a), b, 0.0);
    c
}

/// `a bᵀ`.
pub fn mul_nt(a: &Mat, b: &Mat) -> Mat {
    let mut c = Mat::zeros(a.nrows(), b.nrows());
    gemm(&mut c, 1.0, a, &t(b), 0.0);
    c
}

/// `c ← β c + α a bᵀ`.
pub fn gemm_nt(c: &mut Mat, alpha: f64, a: &Mat, b: &Mat, beta: f64) {
    gemm(c, alpha, a, &t(b), beta);
}

/// `c ← β c + α aᵀ b`.
pub fn gemm_tn(c: &mut Mat, alpha: f64, a: &Mat, b: &Mat, beta: f64) {
    gemm(c, alpha, &t(a), b, beta);
}

/// Column blocks of the symmetric kernels below: small enough that skipping the blocks above
/// the diagonal saves ~40 % of a Gram matrix, large enough for `matrixmultiply` to run at speed.
const BLOCK: usize = 128;

/// `c += alpha · aᵀ a`, written to the lower triangle (and the diagonal blocks) only; call
/// [`Mat::fill_upper_triangle_with_lower_triangle`] once the sum is complete.
pub fn gram_lower_acc(c: &mut Mat, alpha: f64, a: &Mat) {
    let n = a.ncols();
    assert_eq!((c.nrows(), c.ncols()), (n, n), "gram: shape");
    let at = t(a);
    for j0 in (0..n).step_by(BLOCK) {
        let jb = BLOCK.min(n - j0);
        // Rows j0.. of column block j0..j0+jb: a[:, j0..]ᵀ a[:, j0..j0+jb].
        let lhs = at.rows(j0, n - j0);
        let rhs = a.columns(j0, jb);
        gemm(&mut c.view_mut((j0, j0), (n - j0, jb)), alpha, &lhs, &rhs, 1.0);
    }
}

/// `aᵀ a` (symmetric), computing the lower blocks only.
pub fn gram(a: &Mat) -> Mat {
    let mut c = Mat::zeros(a.ncols(), a.ncols());
    gram_lower_acc(&mut c, 1.0, a);
    c.fill_upper_triangle_with_lower_triangle();
    c
}

/// The lower Cholesky factor `L` (`A = L Lᵀ`) of a symmetric positive-definite matrix (only its
/// lower triangle is read), blocked so that the `O(n³)` trailing updates are GEMMs. `None` when
/// a pivot falls below `1e-12 · max|A|` (the threshold [`solve_left`] uses), so the caller can
/// fall back to LU, which reports a singular system as such.
pub fn cholesky(a: &Mat) -> Option<Mat> {
    let n = a.nrows();
    assert_eq!(n, a.ncols(), "cholesky: square");
    if a.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let tol = 1e-12 * a.amax().max(f64::MIN_POSITIVE);
    let mut l = a.clone();
    const NB: usize = 64;
    for k0 in (0..n).step_by(NB) {
        let kb = NB.min(n - k0);
        let k1 = k0 + kb;
        // Diagonal block, left-looking within the block.
        for j in k0..k1 {
            for p in k0..j {
                let f = l[(j, p)];
                for i in j..k1 {
                    l[(i, j)] -= f * l[(i, p)];
                }
            }
            let d = l[(j, j)];
            if !(d > tol) {
                return None;
            }
            let d = d.sqrt();
            l[(j, j)] = d;
            for i in j + 1..k1 {
                l[(i, j)] /= d;
            }
        }
        if k1 == n {
            break;
        }
        // Panel below: A21 ← A21 L11⁻ᵀ, column by column.
        for j in k0..k1 {
            for p in k0..j {
                let f = l[(j, p)];
                for i in k1..n {
                    l[(i, j)] -= f * l[(i, p)];
                }
            }
            let d = l[(j, j)];
            for i in k1..n {
                l[(i, j)] /= d;
            }
        }
        // Trailing update A22 −= A21 A21ᵀ (lower blocks only).
        let panel = l.view((k1, k0), (n - k1, kb)).into_owned();
        let pt = t(&panel);
        let m = n - k1;
        for j0 in (0..m).step_by(BLOCK) {
            let jb = BLOCK.min(m - j0);
            gemm(
                &mut l.view_mut((k1 + j0, k1 + j0), (m - j0, jb)),
                -1.0,
                &panel.rows(j0, m - j0),
                &pt.columns(j0, jb),
                1.0,
            );
        }
    }
    // Zero the strict upper triangle so `l` is the factor itself.
    for j in 1..n {
        for i in 0..j {
            l[(i, j)] = 0.0;
        }
    }
    Some(l)
}

/// `Σ a_i b_i` with four partial sums (a plain float sum does not vectorise).
fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let (ac, bc) = (a.chunks_exact(4), b.chunks_exact(4));
    let tail: f64 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..4 {
            acc[k] += x[k] * y[k];
        }
    }
    (acc[0] + acc[1]) + (acc[2] + acc[3]) + tail
}

/// Solves `L Lᵀ X = B` in place (`L` from [`cholesky`]): blocked substitutions whose updates
/// are GEMMs.
pub fn cholesky_solve_mut(l: &Mat, b: &mut Mat) {
    let n = l.nrows();
    if b.ncols() <= 4 {
        // A few vectors: plain substitutions over contiguous columns of L.
        let ls = l.as_slice();
        for c in 0..b.ncols() {
            let mut col = b.column_mut(c);
            let x = col.as_mut_slice();
            for j in 0..n {
                let lj = &ls[j * n..(j + 1) * n];
                let xj = x[j] / lj[j];
                x[j] = xj;
                for (xi, lij) in x[j + 1..].iter_mut().zip(&lj[j + 1..]) {
                    *xi -= lij * xj;
                }
            }
            for j in (0..n).rev() {
                let lj = &ls[j * n..(j + 1) * n];
                let s = dot(&x[j + 1..], &lj[j + 1..]);
                x[j] = (x[j] - s) / lj[j];
            }
        }
        return;
    }
    const NB: usize = 64;
    // Forward: L Y = B.
    for i0 in (0..n).step_by(NB) {
        let i1 = (i0 + NB).min(n);
        for i in i0..i1 {
            let d = l[(i, i)];
            for c in 0..b.ncols() {
                let y = b[(i, c)] / d;
                b[(i, c)] = y;
                for r in i + 1..i1 {
                    b[(r, c)] -= l[(r, i)] * y;
                }
            }
        }
        if i1 < n {
            let yi = b.rows(i0, i1 - i0).into_owned();
            gemm(&mut b.rows_mut(i1, n - i1), -1.0, &l.view((i1, i0), (n - i1, i1 - i0)), &yi, 1.0);
        }
    }
    // Backward: Lᵀ X = Y.
    let starts: Vec<usize> = (0..n).step_by(NB).collect();
    for &i0 in starts.iter().rev() {
        let i1 = (i0 + NB).min(n);
        for i in (i0..i1).rev() {
            let d = l[(i, i)];
            for c in 0..b.ncols() {
                let mut s = b[(i, c)];
                for r in i + 1..i1 {
                    s -= l[(r, i)] * b[(r, c)];
                }
                b[(i, c)] = s / d;
            }
        }
        if i0 > 0 {
            let xi = b.rows(i0, i1 - i0).into_owned();
            let li = l.view((i0, 0), (i1 - i0, i0)).into_owned();
            gemm(&mut b.rows_mut(0, i0), -1.0, &t(&li), &xi, 1.0);
        }
    }
}

/// Solves `A X = B` for a symmetric positive-definite `A` with [`cholesky`]; falls back to
/// [`solve_left`] (LU) when the factorisation breaks down, so a singular system is reported the
/// same way.
pub fn solve_spd(a: &Mat, b: &Mat, method: &'static str) -> Result<Mat, EraseError> {
    check_finite(a, method, "system matrix")?;
    match cholesky(a) {
        Some(l) => {
            let mut x = b.clone();
            cholesky_solve_mut(&l, &mut x);
            Ok(x)
        }
        None => solve_left(a, b, method),
    }
}

/// The unit eigenvector of a symmetric positive-definite `g` for its smallest eigenvalue, by
/// Lanczos iteration on `g⁻¹` (through [`cholesky`], full reorthogonalisation): its largest
/// eigenvalue is `1/λ_min`, well separated from the rest of `g⁻¹`'s spectrum even where `λ_min`
/// is not from `g`'s, so tens of iterations replace a dense eigen-decomposition. The sign is
/// arbitrary. `None` when `g` is not numerically positive definite or the Ritz vector does not
/// reach an eigenvector error of `1e-8` (residual of `g` / gap of its two smallest eigenvalues)
/// within the step budget, e.g. for a (near-)repeated smallest eigenvalue: callers fall back to
/// [`nalgebra::SymmetricEigen`].
pub fn smallest_eigenvector_spd(g: &Mat) -> Option<Vector> {
    let n = g.nrows();
    let l = cholesky(g)?;
    let steps = n.min(320);
    let mut q = Mat::zeros(n, steps + 1);
    // A fixed start vector with no special structure.
    let mut v = Vector::from_fn(n, |i, _| 1.0 + ((i * 7919) % 113) as f64 / 113.0);
    v /= v.norm();
    q.set_column(0, &v);
    let (mut alpha, mut beta) = (Vec::<f64>::new(), Vec::<f64>::new());
    for j in 0..steps {
        let mut w = Mat::from_column_slice(n, 1, q.column(j).as_slice());
        cholesky_solve_mut(&l, &mut w);
        let mut w = w.column(0).into_owned();
        let a = q.column(j).dot(&w);
        alpha.push(a);
        // Full reorthogonalisation, twice (Gram–Schmidt, "twice is enough").
        for _ in 0..2 {
            let basis = q.columns(0, j + 1);
            let c = basis.tr_mul(&w);
            w -= basis * c;
        }
        let b = w.norm();
        let m = j + 1;
        let check = m % 8 == 0 || m == steps || b <= 1e-14 * a.abs().max(f64::MIN_POSITIVE);
        if check {
            let mut tri = Mat::zeros(m, m);
            for i in 0..m {
                tri[(i, i)] = alpha[i];
                if i + 1 < m {
                    tri[(i, i + 1)] = beta[i];
                    tri[(i + 1, i)] = beta[i];
                }
            }
            let e = nalgebra::SymmetricEigen::new(tri);
            let top = e.eigenvalues.imax();
            let theta = e.eigenvalues[top];
            let second = e
                .eigenvalues
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != top)
                .map(|(_, x)| *x)
                .fold(f64::NEG_INFINITY, f64::max);
            let s = e.eigenvectors.column(top);
            let residual = (b * s[m - 1]).abs();
            let gap = if m == 1 { theta } else { theta - second };
            if b <= 1e-14 * theta.abs() && m < n {
                // An invariant subspace that misses the wanted eigenvector cannot be told from
                // one that holds it: let the dense path decide.
                return None;
            }
            if residual <= 1e-9 * gap && gap > 0.0 {
                let mut u = q.columns(0, m) * s;
                let nu = u.norm();
                if !(nu > 0.0) {
                    return None;
                }
                u /= nu;
                // Verify against g itself: ‖g u − ρ u‖ relative to the gap of g's two smallest
                // eigenvalues (1/θ, 1/θ₂).
                let gu = g * &u;
                let rho = u.dot(&gu);
                let res = (gu - &u * rho).norm();
                let gap_g = if second > 0.0 && m > 1 { 1.0 / second - 1.0 / theta } else { f64::INFINITY };
                if res <= 1e-8 * gap_g.min(g.amax()) {
                    return Some(u);
                }
                // The Ritz estimate was optimistic: keep iterating.
            }
        }
        if j + 1 == steps {
            break;
        }
        beta.push(b);
        q.set_column(j + 1, &(w / b));
    }
    None
}
