//! The anatomy of a weight edit: what a closed-form erasure (UCE, TIME, RECE, SPEED, MACE) did to
//! each cross-attention projection it rewrote. For every tensor of the edit, with `W` the original
//! and `W'` the edit's value, `ΔW = W' − W`:
//! - `‖ΔW‖_F`, `‖W‖_F` and their ratio (how hard the layer was changed);
//! - the numerical rank of `ΔW`: the singular values above 10⁻³ of the largest. UCE's change is
//!   `W (E − C) Yᵀ` (`closed_form.rs`), of rank at most the number of edited token embeddings, so
//!   the rank says how many directions of the text space the edit moved;
//! - the largest singular value `σ₁(ΔW)` (the spectral norm of the change).
//!
//! Pure f64 on values already read back (the CLI reads them synchronously, the page
//! asynchronously), so both give the same numbers.

use crate::linalg::from_row_major;
use serde::Serialize;

/// Singular values below this fraction of the largest do not count towards the rank: the edit
/// file is f32, so `W' − W` carries rounding noise of ~1e-7 relative to `W`.
pub const RANK_TOLERANCE: f64 = 1e-3;

/// One edited tensor.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorAnatomy {
    /// diffusers key, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight`.
    pub tensor: String,
    /// The transformer it sits in: `down_blocks.1.attentions.0`, `mid_block.attentions.0`.
    pub block: String,
    /// `to_k`, `to_v`, or the projection's name for other tensors.
    pub projection: String,
    pub shape: Vec<usize>,
    pub delta_norm: f64,
    pub weight_norm: f64,
    /// `‖ΔW‖_F / ‖W‖_F`.
    pub relative: f64,
    pub rank: usize,
    pub spectral_norm: f64,
}

/// `tensor`'s block and projection names from its diffusers key.
fn names(tensor: &str) -> (String, String) {
    let parts: Vec<&str> = tensor.split('.').collect();
    let block = tensor.split(".transformer_blocks.").next().unwrap_or(tensor).to_owned();
    let projection =
        parts.iter().rev().find(|p| **p != "weight" && **p != "bias").copied().unwrap_or(tensor).to_owned();
    (block, projection)
}

/// The anatomy of one tensor: `original` and `edited` are `[rows, cols]` row-major.
pub fn tensor_anatomy(tensor: &str, shape: &[usize], original: &[f32], edited: &[f32]) -> TensorAnatomy {
    let (rows, cols) = match shape {
        [r, c] => (*r, *c),
        _ => (1, original.len()),
    };
    let (block, projection) = names(tensor);
    let w = from_row_major(rows, cols, original);
    let delta = from_row_major(rows, cols, edited) - &w;
    let delta_norm = delta.norm();
    let weight_norm = w.norm();
    let sv = delta.singular_values();
    let top = sv.iter().copied().fold(0f64, f64::max);
    let rank = if top > 0.0 { sv.iter().filter(|s| **s > top * RANK_TOLERANCE).count() } else { 0 };
    TensorAnatomy {
        tensor: tensor.to_owned(),
        block,
        projection,
        shape: vec![rows, cols],
        delta_norm,
        weight_norm,
        relative: if weight_norm > 0.0 { delta_norm / weight_norm } else { 0.0 },
        rank,
        spectral_norm: top,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rank_two_change_has_rank_two_and_its_norms() {
        // W = I (3×4 padded), ΔW = u₁v₁ᵀ + 0.5 u₂v₂ᵀ with orthonormal u, v: ‖ΔW‖_F = √1.25, σ₁ = 1.
        let w: Vec<f32> = (0..12).map(|i| if i % 5 == 0 { 1.0 } else { 0.0 }).collect();
        let mut e = w.clone();
        e[0] += 1.0; // u₁ = e₀, v₁ = e₀
        e[4 + 2] += 0.5; // u₂ = e₁, v₂ = e₂
        let a = tensor_anatomy("down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight", &[3, 4], &w, &e);
        assert_eq!((a.block.as_str(), a.projection.as_str()), ("down_blocks.1.attentions.0", "to_v"));
        assert_eq!(a.rank, 2);
        assert!((a.delta_norm - 1.25f64.sqrt()).abs() < 1e-12);
        assert!((a.weight_norm - 3f64.sqrt()).abs() < 1e-12);
        assert!((a.spectral_norm - 1.0).abs() < 1e-12);
        assert!((a.relative - (1.25f64 / 3.0).sqrt()).abs() < 1e-12);
        let none = tensor_anatomy("mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight", &[3, 4], &w, &w);
        assert_eq!((none.rank, none.delta_norm, none.block.as_str()), (0, 0.0, "mid_block.attentions.0"));
    }
}
