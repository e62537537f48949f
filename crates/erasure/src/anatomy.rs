//! The anatomy of a weight edit: what a closed-form erasure (UCE, TIME, RECE, SPEED, MACE) did to
//! each cross-attention projection it rewrote. For every tensor of the edit, with `W` the original
//! and `W'` the edit's value, `ΔW = W' − W`:
//! - `‖ΔW‖_F`, `‖W‖_F` and their ratio (how hard the layer was changed);
//! - the numerical rank of `ΔW`: the singular values above 10⁻³ of the largest. UCE's change is
//!   `W (E − C) Yᵀ` (`closed_form.rs`), of rank at most the number of edited token embeddings, so
//!   the rank says how many directions of the text space the edit moved;
//! - the largest singular value `σ₁(ΔW)` (the spectral norm of the change).
//!
//! - how the concept's keys and values move ([`key_movement`]): for a text embedding `c` (the
//!   last token before EOS, the token UCE's current code edits), the cosine of `W c` with the
//!   guide's `W g` before the edit and of `W' c` with it after (UCE's target is `v* = W g`,
//!   `uce.rs`, so it goes to ~1), the same with each preserved concept's
//!   `W p` / `W' p`, and how well each preserved concept kept its key, `cos(W' p, W p)`.
//!
//! Pure f64 on values already read back (the CLI reads them synchronously, the page
//! asynchronously), so both give the same numbers: [`edit_anatomy`] is the one entry point.

use crate::closed_form::guides_for;
use crate::edit::Edit;
use crate::error::EraseError;
use crate::linalg::{Mat, Vector, from_row_major};
use crate::text::PromptEncoder;
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

/// `original` and `edited` (`[rows, cols]` row-major; another shape as one row) as matrices.
fn matrices(shape: &[usize], original: &[f32], edited: &[f32]) -> (Mat, Mat) {
    let (rows, cols) = match shape {
        [r, c] => (*r, *c),
        _ => (1, original.len()),
    };
    (from_row_major(rows, cols, original), from_row_major(rows, cols, edited))
}

/// The anatomy of one tensor: `original` and `edited` are `[rows, cols]` row-major.
pub fn tensor_anatomy(tensor: &str, shape: &[usize], original: &[f32], edited: &[f32]) -> TensorAnatomy {
    let (w, e) = matrices(shape, original, edited);
    of_matrices(tensor, &w, &e)
}

/// The anatomy of one tensor, `w` the original and `e` the edit's value.
fn of_matrices(tensor: &str, w: &Mat, e: &Mat) -> TensorAnatomy {
    let (block, projection) = names(tensor);
    let delta = e - w;
    let delta_norm = delta.norm();
    let weight_norm = w.norm();
    let sv = delta.singular_values();
    let top = sv.iter().copied().fold(0f64, f64::max);
    let rank = if top > 0.0 { sv.iter().filter(|s| **s > top * RANK_TOLERANCE).count() } else { 0 };
    TensorAnatomy {
        tensor: tensor.to_owned(),
        block,
        projection,
        shape: vec![w.nrows(), w.ncols()],
        delta_norm,
        weight_norm,
        relative: if weight_norm > 0.0 { delta_norm / weight_norm } else { 0.0 },
        rank,
        spectral_norm: top,
    }
}

/// How one text embedding's projection moved in one kind of projection (`to_k` or `to_v`),
/// the cosines averaged over the edited tensors of that kind.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyMovement {
    /// `guide`: an erased concept against its guide; `preserve`: an erased concept against a
    /// preserved one; `kept`: a preserved concept against its own original key.
    pub kind: &'static str,
    pub concept: String,
    pub target: String,
    pub projection: String,
    /// `cos(W c, W t)`; 1 for `kept`.
    pub before: f64,
    /// `cos(W' c, W t)` for `guide` (the target the edit aims at), `cos(W' c, W' t)` for
    /// `preserve`, `cos(W' c, W c)` for `kept`.
    pub after: f64,
    /// Tensors averaged.
    pub tensors: usize,
}

/// Everything the page's anatomy view and `studio anatomy --json` show of an edit.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EditAnatomy {
    pub method: String,
    pub concepts: Vec<String>,
    pub guides: Vec<String>,
    pub preserve: Vec<String>,
    pub tensors: Vec<TensorAnatomy>,
    pub keys: Vec<KeyMovement>,
}

fn cosine(a: &Vector, b: &Vector) -> f64 {
    let d = a.norm() * b.norm();
    if d > 0.0 { a.dot(b) / d } else { 0.0 }
}

/// The key movements of `c` (one embedding per text) through the edited tensors
/// (`(name, W, W')`), per projection kind; see the module docs.
pub fn key_movement(
    layers: &[(String, Mat, Mat)],
    concepts: &[(String, Vector)],
    guides: &[(String, Vector)],
    preserve: &[(String, Vector)],
) -> Vec<KeyMovement> {
    let mut kinds: Vec<String> = vec![];
    for (name, _, _) in layers {
        let p = names(name).1;
        if !kinds.contains(&p) {
            kinds.push(p);
        }
    }
    let mut out = vec![];
    for kind in &kinds {
        let ls: Vec<&(String, Mat, Mat)> = layers.iter().filter(|l| names(&l.0).1 == *kind).collect();
        let n = ls.len() as f64;
        let mean = |f: &dyn Fn(&Mat, &Mat) -> f64| ls.iter().map(|(_, w, e)| f(w, e)).sum::<f64>() / n;
        let row = |kind_: &'static str, c: &str, t: &str, before: f64, after: f64| KeyMovement {
            kind: kind_,
            concept: c.to_owned(),
            target: t.to_owned(),
            projection: kind.clone(),
            before,
            after,
            tensors: ls.len(),
        };
        for ((c, cv), (g, gv)) in concepts.iter().zip(guides) {
            out.push(row(
                "guide",
                c,
                g,
                mean(&|w, _| cosine(&(w * cv), &(w * gv))),
                mean(&|w, e| cosine(&(e * cv), &(w * gv))),
            ));
            for (p, pv) in preserve {
                out.push(row(
                    "preserve",
                    c,
                    p,
                    mean(&|w, _| cosine(&(w * cv), &(w * pv))),
                    mean(&|_, e| cosine(&(e * cv), &(e * pv))),
                ));
            }
        }
        for (p, pv) in preserve {
            out.push(row("kept", p, p, 1.0, mean(&|w, e| cosine(&(e * pv), &(w * pv)))));
        }
    }
    out
}

/// Each concept's guide: the edit's guides, `""` (the unconditional prompt) where it names none.
fn guides(edit: &Edit) -> Vec<String> {
    guides_for(&edit.meta.concepts, &edit.meta.guides, "").unwrap_or_default()
}

/// The texts [`edit_anatomy`] encodes: the concepts, their guides and the preserved concepts (a
/// caller that must encode them ahead, as the page does asynchronously, asks for these).
pub fn texts(edit: &Edit) -> Vec<String> {
    let m = &edit.meta;
    m.concepts.iter().cloned().chain(guides(edit)).chain(m.preserve.iter().cloned()).collect()
}

/// The anatomy of `edit` against the original weights `originals` (`(name, values)` for each of
/// its tensors, in any order), its concepts, guides (`""` where it names none, as UCE defaults)
/// and preserved concepts encoded by `enc`.
pub fn edit_anatomy(
    edit: &Edit,
    originals: &[(String, Vec<f32>)],
    enc: &mut dyn PromptEncoder,
) -> Result<EditAnatomy, EraseError> {
    let meta = &edit.meta;
    let mut tensors = vec![];
    let mut layers = vec![];
    for t in &edit.tensors {
        let Some((_, w)) = originals.iter().find(|(n, _)| *n == t.name) else { continue };
        let (w, e) = matrices(&t.shape, w, &t.data);
        tensors.push(of_matrices(&t.name, &w, &e));
        if t.shape.len() == 2 {
            layers.push((t.name.clone(), w, e));
        }
    }
    let guides = guides(edit);
    let mut last = |texts: &[String]| -> Result<Vec<(String, Vector)>, EraseError> {
        texts
            .iter()
            .map(|t| {
                let e = enc.encode(t)?;
                Ok((t.clone(), e.token(e.last_token_index())))
            })
            .collect()
    };
    // Only the tensors that take text embeddings (cross-attention to_k / to_v) move keys.
    let d_text = layers.first().map_or(0, |l| l.1.ncols());
    let concepts = last(&meta.concepts)?;
    let keys = if concepts.first().is_some_and(|c| c.1.len() == d_text) {
        key_movement(&layers, &concepts, &last(&guides)?, &last(&meta.preserve)?)
    } else {
        vec![]
    };
    Ok(EditAnatomy {
        method: meta.method.clone(),
        concepts: meta.concepts.clone(),
        guides,
        preserve: meta.preserve.clone(),
        tensors,
        keys,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_moved_onto_its_guide_has_cosine_one_after() {
        // W = I₂; W' maps c = e₀ onto g = e₁ and keeps p = e₁ + e₀·0 … (p = e₁ is the guide here).
        let w = from_row_major(2, 2, &[1.0, 0.0, 0.0, 1.0]);
        let e = from_row_major(2, 2, &[0.0, 0.0, 1.0, 1.0]);
        let c = Vector::from_vec(vec![1.0, 0.0]);
        let g = Vector::from_vec(vec![0.0, 1.0]);
        let p = Vector::from_vec(vec![1.0, 1.0]);
        let layers = vec![("a.attn2.to_v.weight".to_owned(), w, e)];
        let m = key_movement(&layers, &[("c".into(), c)], &[("g".into(), g)], &[("p".into(), p)]);
        let get = |k: &str| m.iter().find(|r| r.kind == k).unwrap();
        assert_eq!(get("guide").before, 0.0);
        assert!((get("guide").after - 1.0).abs() < 1e-12);
        // W p = (1, 1), W' p = (0, 2): cos = 1/√2; W' c = (0, 1) against W' p: cos 1.
        assert!((get("kept").after - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((get("preserve").before - 0.5f64.sqrt()).abs() < 1e-12);
        assert!((get("preserve").after - 1.0).abs() < 1e-12);
        assert_eq!((get("guide").projection.as_str(), get("guide").tensors), ("to_v", 1));
    }

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
