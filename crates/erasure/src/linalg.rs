//! Dense f64 linear algebra for the closed-form edits, on top of `nalgebra`.
//!
//! The edits are ridge regressions `W' = (λW + Σ s v cᵀ)(λI + Σ s c cᵀ)⁻¹`. They are solved in
//! f64 with an LU factorisation that reports a singular system instead of returning garbage.

use crate::error::EraseError;
use nalgebra::{DMatrix, DVector};

pub type Mat = DMatrix<f64>;
pub type Vector = DVector<f64>;

/// A row-major `[rows, cols]` f32 buffer (PyTorch layout) as an f64 matrix.
pub fn from_row_major(rows: usize, cols: usize, data: &[f32]) -> Mat {
    Mat::from_fn(rows, cols, |r, c| data[r * cols + c] as f64)
}

/// An f64 matrix back to a row-major f32 buffer.
pub fn to_row_major(m: &Mat) -> Vec<f32> {
    let mut out = Vec::with_capacity(m.nrows() * m.ncols());
    for r in 0..m.nrows() {
        for c in 0..m.ncols() {
            out.push(m[(r, c)] as f32);
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
    let min_pivot = u
        .diagonal()
        .iter()
        .fold(f64::INFINITY, |m, v| m.min(v.abs()));
    if !(min_pivot > 1e-12 * scale) {
        return Err(EraseError::Singular {
            method,
            detail: format!("smallest pivot {min_pivot:.3e} against a largest entry {scale:.3e}"),
        });
    }
    lu.solve(b).ok_or_else(|| EraseError::Singular {
        method,
        detail: "LU solve failed".into(),
    })
}

pub fn check_finite(m: &Mat, method: &'static str, what: &str) -> Result<(), EraseError> {
    if m.iter().all(|v| v.is_finite()) {
        Ok(())
    } else {
        Err(EraseError::NotFinite {
            method,
            tensor: what.into(),
        })
    }
}

/// Stacks column vectors into a `[d, n]` matrix.
pub fn columns(cols: &[Vector], d: usize) -> Mat {
    let mut m = Mat::zeros(d, cols.len());
    for (j, c) in cols.iter().enumerate() {
        m.set_column(j, c);
    }
    m
}
