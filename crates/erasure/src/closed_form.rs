//! The ridge solve shared by the closed-form edits (UCE eq. 7, TIME eq. 5, RECE, MACE eq. 8):
//!
//! `W' = (λW + W P + Σ_i s_i v_i c_iᵀ)(λI + P + Σ_i s_i c_i c_iᵀ)⁻¹`
//!
//! with `v_i = W e_i` (the value the edited layer should give context `c_i`: `e_i` is the guide
//! token for an erased concept, `c_i` itself for a preserved one) and an optional prior
//! covariance `P` (MACE's cached covariance of general prompts; zero for the others).
//!
//! Writing `C = [c_i]`, `E = [e_i]` (`[d, n]`), `S = diag(s_i)`, `A = λI + P + C S Cᵀ`, the
//! numerator is `W A + W (E − C) S Cᵀ`, so `W' = W + W (E − C) Yᵀ` with `Y = A⁻¹ C S`
//! (`A` is symmetric). `Y` depends only on the text embeddings, not on the layer: it is solved
//! once in f64 and every `to_k`/`to_v` costs two thin products. Without a prior and with fewer
//! pairs than text dimensions, `A⁻¹ C = C (λI + S CᵀC)⁻¹` (push-through identity) turns the
//! `d × d` solve into an `n × n` one. λ = 0 without a prior and with `n < d` is rank-deficient by
//! construction and is reported as such.
//!
//! Numerics (the equations are unchanged): identical pairs (same `c_i` and `e_i`, e.g. RECE's
//! retained "" once per concept) enter every sum as one pair with the summed scale; with many
//! pairs (`2n ≥ d`) the change is kept as the dense `[d, d]` matrix `(E − C) S Cᵀ A⁻¹` (one
//! `d × d` product per layer instead of two rank-`n` ones); the symmetric `A` is factorised by
//! Cholesky (LU when that breaks down, which reports a singular system).

use crate::error::EraseError;
use crate::linalg::{Mat, Vector, columns, gemm_nt, gram, solve_left, solve_spd};
use std::collections::HashMap;

/// One constraint of the regression: the edited layer should map `context` to `W · value_from`.
#[derive(Debug, Clone)]
pub struct Pair {
    pub context: Vector,
    pub value_from: Vector,
    pub scale: f64,
}

/// The change `W' − W = W Δ` of the solve, shared by every layer with the same text width.
#[derive(Debug, Clone)]
pub enum Delta {
    /// `Δ = (E − C) Yᵀ`, both `[d, n]`.
    LowRank { shift: Mat, y: Mat },
    /// `Δ` itself, `[d, d]`.
    Dense(Mat),
}

/// The solved system, shared by every layer with the same text width.
#[derive(Debug, Clone)]
pub struct RidgeSolve {
    delta: Delta,
}

/// The pairs with identical `(context, value_from)` merged (their scales summed): the sums
/// `Σ s c cᵀ` and `Σ s (e − c) cᵀ` are the same, with fewer terms.
fn merge_duplicates(pairs: &[Pair]) -> Vec<(&Vector, &Vector, f64)> {
    let key = |p: &Pair| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in p.context.iter().chain(p.value_from.iter()) {
            h = (h ^ v.to_bits()).wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let same =
        |a: &Vector, b: &Vector| a.len() == b.len() && a.iter().zip(b.iter()).all(|(x, y)| x.to_bits() == y.to_bits());
    let mut out: Vec<(&Vector, &Vector, f64)> = Vec::with_capacity(pairs.len());
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    for p in pairs {
        let slot = seen.entry(key(p)).or_default();
        match slot.iter().find(|&&i| same(out[i].0, &p.context) && same(out[i].1, &p.value_from)) {
            Some(&i) => out[i].2 += p.scale,
            None => {
                slot.push(out.len());
                out.push((&p.context, &p.value_from, p.scale));
            }
        }
    }
    out
}

/// Indices of the merged pairs grouped by identical `value_from` (bit for bit).
fn group_values(merged: &[(&Vector, &Vector, f64)]) -> Vec<Vec<usize>> {
    let mut groups: Vec<Vec<usize>> = vec![];
    let mut seen: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, p) in merged.iter().enumerate() {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in p.1.iter() {
            h = (h ^ v.to_bits()).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let slot = seen.entry(h).or_default();
        let found = slot.iter().copied().find(|&g| {
            let e = merged[groups[g][0]].1;
            e.iter().zip(p.1.iter()).all(|(x, y)| x.to_bits() == y.to_bits())
        });
        match found {
            Some(g) => groups[g].push(i),
            None => {
                slot.push(groups.len());
                groups.push(vec![i]);
            }
        }
    }
    groups
}

impl RidgeSolve {
    /// Factorises the system for `pairs` with ridge `lamb` and optional prior covariance `[d, d]`.
    pub fn new(
        method: &'static str,
        d: usize,
        lamb: f64,
        pairs: &[Pair],
        prior: Option<&Mat>,
    ) -> Result<Self, EraseError> {
        if !(lamb >= 0.0) || !lamb.is_finite() {
            return Err(EraseError::Param(format!("λ must be a finite number ≥ 0 (got {lamb})")));
        }
        if let Some(p) = prior
            && (p.nrows() != d || p.ncols() != d)
        {
            return Err(EraseError::Param(format!(
                "prior covariance is {}×{}, the text width is {d}",
                p.nrows(),
                p.ncols()
            )));
        }
        let merged = merge_duplicates(pairs);
        let n = merged.len();
        let c = columns(&merged.iter().map(|p| p.0.clone()).collect::<Vec<_>>(), d);
        let e = columns(&merged.iter().map(|p| p.1.clone()).collect::<Vec<_>>(), d);
        let s = Vector::from_iterator(n, merged.iter().map(|p| p.2));
        let mut cs = c.clone();
        for (j, sj) in s.iter().enumerate() {
            cs.column_mut(j).scale_mut(*sj);
        }
        let shift = e - &c;
        if prior.is_none() && n < d {
            if lamb == 0.0 {
                return Err(EraseError::Singular {
                    method,
                    detail: format!(
                        "λ = 0 with {n} constraint(s) in a {d}-dimensional text space leaves the system rank-deficient"
                    ),
                });
            }
            // A⁻¹ C S = C (λI + S CᵀC)⁻¹ S.
            let mut k = gram(&c);
            for (i, si) in s.iter().enumerate() {
                k.row_mut(i).scale_mut(*si);
            }
            for i in 0..n {
                k[(i, i)] += lamb;
            }
            let mut sdiag = Mat::zeros(n, n);
            for i in 0..n {
                sdiag[(i, i)] = s[i];
            }
            let inner = solve_left(&k, &sdiag, method)?;
            let y = &c * inner;
            return Ok(Self { delta: Delta::LowRank { shift, y } });
        }
        // A = λI + P + C S Cᵀ is symmetric: its lower blocks from (C √S)ᵀ when every scale is
        // ≥ 0, else one full product.
        let mut a = if s.iter().all(|v| *v >= 0.0) {
            let mut half = c.transpose();
            for (i, si) in s.iter().enumerate() {
                half.row_mut(i).scale_mut(si.sqrt());
            }
            gram(&half)
        } else {
            let mut a = Mat::zeros(d, d);
            gemm_nt(&mut a, 1.0, &cs, &c, 0.0);
            a
        };
        // C S (E − C)ᵀ for the dense change: with few distinct values e (RECE's 77·n erase pairs
        // and its retained "" share the guide's 77 tokens) it is Σ_e (Σ_{i: e_i = e} s_i c_i) eᵀ
        // − C S Cᵀ, a thin product and the C S Cᵀ already in A.
        let dense_rhs = (2 * n >= d).then(|| {
            let groups = group_values(&merged);
            if 2 * groups.len() < n {
                let mut csum = Mat::zeros(d, groups.len());
                let mut ev = Mat::zeros(d, groups.len());
                for (k, members) in groups.iter().enumerate() {
                    for &i in members {
                        csum.column_mut(k).axpy(1.0, &cs.column(i), 1.0);
                    }
                    ev.set_column(k, merged[members[0]].1);
                }
                let mut rhs = a.clone();
                gemm_nt(&mut rhs, 1.0, &csum, &ev, -1.0);
                rhs
            } else {
                let mut rhs = Mat::zeros(d, d);
                gemm_nt(&mut rhs, 1.0, &cs, &shift, 0.0);
                rhs
            }
        });
        if let Some(p) = prior {
            a += p;
        }
        for i in 0..d {
            a[(i, i)] += lamb;
        }
        if let Some(rhs) = dense_rhs {
            // Δ = (E − C) S Cᵀ A⁻¹ = (A⁻¹ C S (E − C)ᵀ)ᵀ.
            let delta = solve_spd(&a, &rhs, method)?.transpose();
            Ok(Self { delta: Delta::Dense(delta) })
        } else {
            let y = solve_spd(&a, &cs, method)?;
            Ok(Self { delta: Delta::LowRank { shift, y } })
        }
    }

    /// `W' − W = W Δ`, the same for every layer.
    pub fn delta(&self) -> &Delta {
        &self.delta
    }

    /// `W' = W + W (E − C) Yᵀ` for one layer `[d_out, d]`.
    pub fn apply(&self, w: &Mat) -> Mat {
        let mut out = w.clone();
        match &self.delta {
            Delta::LowRank { shift, y } => {
                let z = w * shift;
                gemm_nt(&mut out, 1.0, &z, y, 1.0);
            }
            Delta::Dense(delta) => out.gemm(1.0, w, delta, 1.0),
        }
        out
    }
}

use crate::edit::{Edit, EditMeta, EditTensor, fingerprint};
use crate::linalg::to_row_major;
use crate::text::CrossAttn;

/// Builds an [`Edit`] from the new weight of each layer; any non-finite value is an error and
/// nothing is returned (the model is never touched by a failed solve).
pub fn edit_from_layers(
    method: &'static str,
    layers: &[CrossAttn],
    mut new_weight: impl FnMut(usize, &CrossAttn) -> Result<Mat, EraseError>,
    mut meta: EditMeta,
) -> Result<Edit, EraseError> {
    let mut tensors = Vec::with_capacity(layers.len());
    let mut originals = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let w = new_weight(i, layer)?;
        if w.iter().any(|v| !v.is_finite()) {
            return Err(EraseError::NotFinite { method, tensor: layer.tensor_name() });
        }
        let shape = vec![w.nrows(), w.ncols()];
        originals.push((layer.tensor_name(), shape.clone(), to_row_major(&layer.weight)));
        tensors.push(EditTensor { name: layer.tensor_name(), shape, data: to_row_major(&w) });
    }
    meta.method = method.to_owned();
    meta.base_model = fingerprint(&originals);
    Ok(Edit { tensors, meta })
}

/// Builds an [`Edit`] from the change `W'_l = W_l + W_l Δ_l` of each layer, computed in f32 on
/// the PyTorch-layout weights themselves: a row-major `[d_out, d]` buffer is the column-major
/// `Wᵀ`, so `W'ᵀ = Wᵀ + Δᵀ Wᵀ` (or `Wᵀ + Y ((E − C)ᵀ Wᵀ)` for a low-rank `Δ`) is written straight
/// into the edit's tensor by f32 GEMMs, with no f64 copy of `W'` and no transposition. Δ itself
/// is solved in f64; the f32 products add an error of order 1e-6 of the change, below the f32
/// rounding of the stored `W'` relative to that change. Non-finite values are an error, as in
/// [`edit_from_layers`].
pub fn edit_from_deltas(
    method: &'static str,
    layers: &[CrossAttn],
    mut delta: impl FnMut(usize, &CrossAttn) -> Result<Delta, EraseError>,
    mut meta: EditMeta,
) -> Result<Edit, EraseError> {
    type Mat32 = nalgebra::DMatrix<f32>;
    let f32_of = |m: &Mat| -> Mat32 { m.map(|v| v as f32) };
    let mut tensors = Vec::with_capacity(layers.len());
    let mut originals = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let (rows, d) = (layer.weight.nrows(), layer.weight.ncols());
        let data = to_row_major(&layer.weight);
        let w_t = Mat32::from_column_slice(d, rows, &data);
        let mut out = w_t.clone();
        match delta(i, layer)? {
            Delta::LowRank { shift, y } => {
                let tmp = f32_of(&shift.transpose()) * &w_t;
                out.gemm(1.0, &f32_of(&y), &tmp, 1.0);
            }
            Delta::Dense(dm) => out.gemm(1.0, &f32_of(&dm.transpose()), &w_t, 1.0),
        }
        if out.iter().any(|v| !v.is_finite()) {
            return Err(EraseError::NotFinite { method, tensor: layer.tensor_name() });
        }
        let shape = vec![rows, d];
        originals.push((layer.tensor_name(), shape.clone(), data));
        tensors.push(EditTensor { name: layer.tensor_name(), shape, data: out.data.into() });
    }
    meta.method = method.to_owned();
    meta.base_model = fingerprint(&originals);
    Ok(Edit { tensors, meta })
}

/// Splits `"a; b;c"` into trimmed, non-empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(';').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()
}

/// One guide per concept: none → `default` for all, one → repeated, else the counts must match.
pub fn guides_for(concepts: &[String], guides: &[String], default: &str) -> Result<Vec<String>, EraseError> {
    if concepts.is_empty() {
        return Err(EraseError::NoConcepts);
    }
    match guides.len() {
        0 => Ok(vec![default.to_owned(); concepts.len()]),
        1 => Ok(vec![guides[0].clone(); concepts.len()]),
        n if n == concepts.len() => Ok(guides.to_vec()),
        n => Err(EraseError::GuideCount { concepts: concepts.len(), guides: n }),
    }
}
