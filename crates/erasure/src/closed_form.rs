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

use crate::error::EraseError;
use crate::linalg::{Mat, Vector, columns, solve_left};

/// One constraint of the regression: the edited layer should map `context` to `W · value_from`.
#[derive(Debug, Clone)]
pub struct Pair {
    pub context: Vector,
    pub value_from: Vector,
    pub scale: f64,
}

/// `Y` and `E − C` of the solve, shared by every layer with the same text width.
#[derive(Debug, Clone)]
pub struct RidgeSolve {
    /// `[d, n]`.
    y: Mat,
    /// `[d, n]`: `E − C`.
    shift: Mat,
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
            return Err(EraseError::Param(format!(
                "λ must be a finite number ≥ 0 (got {lamb})"
            )));
        }
        let n = pairs.len();
        let c = columns(
            &pairs.iter().map(|p| p.context.clone()).collect::<Vec<_>>(),
            d,
        );
        let e = columns(
            &pairs
                .iter()
                .map(|p| p.value_from.clone())
                .collect::<Vec<_>>(),
            d,
        );
        let s = Vector::from_iterator(n, pairs.iter().map(|p| p.scale));
        if let Some(p) = prior {
            if p.nrows() != d || p.ncols() != d {
                return Err(EraseError::Param(format!(
                    "prior covariance is {}×{}, the text width is {d}",
                    p.nrows(),
                    p.ncols()
                )));
            }
        }
        let mut cs = c.clone();
        for (j, sj) in s.iter().enumerate() {
            cs.column_mut(j).scale_mut(*sj);
        }
        let y = if prior.is_none() && n < d {
            if lamb == 0.0 {
                return Err(EraseError::Singular {
                    method,
                    detail: format!(
                        "λ = 0 with {n} constraint(s) in a {d}-dimensional text space leaves the system rank-deficient"
                    ),
                });
            }
            // A⁻¹ C S = C (λI + S CᵀC)⁻¹ S.
            let mut k = c.transpose() * &c;
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
            &c * inner
        } else {
            let mut a = &cs * c.transpose();
            if let Some(p) = prior {
                a += p;
            }
            for i in 0..d {
                a[(i, i)] += lamb;
            }
            solve_left(&a, &cs, method)?
        };
        Ok(Self { y, shift: e - c })
    }

    /// `W' = W + W (E − C) Yᵀ` for one layer `[d_out, d]`.
    pub fn apply(&self, w: &Mat) -> Mat {
        let z = w * &self.shift;
        w + z * self.y.transpose()
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
            return Err(EraseError::NotFinite {
                method,
                tensor: layer.tensor_name(),
            });
        }
        let shape = vec![w.nrows(), w.ncols()];
        originals.push((
            layer.tensor_name(),
            shape.clone(),
            to_row_major(&layer.weight),
        ));
        tensors.push(EditTensor {
            name: layer.tensor_name(),
            shape,
            data: to_row_major(&w),
        });
    }
    meta.method = method.to_owned();
    meta.base_model = fingerprint(&originals);
    Ok(Edit { tensors, meta })
}

/// Splits `"a; b;c"` into trimmed, non-empty items.
pub fn split_list(s: &str) -> Vec<String> {
    s.split(';')
        .map(|x| x.trim().to_owned())
        .filter(|x| !x.is_empty())
        .collect()
}

/// One guide per concept: none → `default` for all, one → repeated, else the counts must match.
pub fn guides_for(
    concepts: &[String],
    guides: &[String],
    default: &str,
) -> Result<Vec<String>, EraseError> {
    if concepts.is_empty() {
        return Err(EraseError::NoConcepts);
    }
    match guides.len() {
        0 => Ok(vec![default.to_owned(); concepts.len()]),
        1 => Ok(vec![guides[0].clone(); concepts.len()]),
        n if n == concepts.len() => Ok(guides.to_vec()),
        n => Err(EraseError::GuideCount {
            concepts: concepts.len(),
            guides: n,
        }),
    }
}
