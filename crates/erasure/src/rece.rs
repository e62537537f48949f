//! RECE — Reliable and Efficient Concept Erasure (Gong et al., ECCV 2024, arXiv:2407.12383).
//!
//! Start from a UCE edit `W'`, then per epoch:
//! 1. for each concept, the embedding that still regenerates it through the edited layers
//!    (paper eq. 8; official `utils/embedding_calculation/close_form_emb.py`,
//!    `close_form_emb_regzero`): `c' = (γI + Σ_l W'_lᵀW'_l)⁻¹ (Σ_l W'_lᵀ W_l) c`, applied to all 77
//!    token embeddings of the concept prompt (`W_l` are the original layers, the sums run over
//!    every edited `to_k` and `to_v`);
//! 2. UCE-erase `c'` towards the guide (official `erase_methods/uce.py`,
//!    `edit_model_adversarial`, technique `replace`): all 77 positions of `c'` map to the 77
//!    positions of the guide prompt through the *current* layers, the retain prompts contribute
//!    their 77 positions, and the ridge anchor is the current weight.
//!
//! Every edit multiplies all layers from the right by the same matrix (`W' = W (I + Δ)`, see
//! [`crate::closed_form`]), so after any number of edits the current layers are `W'_l = W_l T`
//! and the sums of step 1 are `Σ W'ᵀW' = Tᵀ G T` and `Σ W'ᵀW = Tᵀ G` with `G = Σ_l W_lᵀW_l`,
//! computed once (its lower blocks only). `T = I + L Rᵀ` is kept low-rank while its rank is below
//! `d/2`, then dense; the layers themselves are formed once, at the end, as `W + (W L) Rᵀ` or
//! `W + W (T − I)` (f32 products, [`crate::closed_form::edit_from_deltas`]). Same equations,
//! `O(d²)` per epoch instead of `O(Σ d_out d²)`.
//!
//! Defaults as the official `train.py`: `lamb` 0.1, `erase_scale` 1, `preserve_scale` 0.1,
//! γ (`regular_scale`) 0.1; guide " " (the unconditional prompt). With no preserve set the
//! official code retains " " once per concept; we do the same. Where the official code draws
//! `len(concepts)` retain prompts at random from a preserve list, we use the whole list
//! (deterministic).

use crate::closed_form::{Delta, Pair, RidgeSolve, edit_from_deltas, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::linalg::{Mat, gemm_nt, gemm_tn, gram_lower_acc, mul_tn, solve_spd};
use crate::text::{CrossAttn, PromptEncoder};
use crate::uce::{UceConfig, pairs as uce_pairs};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct ReceConfig {
    /// The initial UCE edit.
    pub uce: UceConfig,
    /// Adversarial rounds (official runs: 3 for nudity, 2 for art styles, 1 for objects).
    pub epochs: usize,
    /// γ, the regulariser of the adversarial embedding.
    pub gamma: f64,
    pub lamb: f64,
    pub erase_scale: f64,
    pub preserve_scale: f64,
}

impl Default for ReceConfig {
    fn default() -> Self {
        Self { uce: UceConfig::default(), epochs: 1, gamma: 0.1, lamb: 0.1, erase_scale: 1.0, preserve_scale: 0.1 }
    }
}

/// `(γI + Σ W'ᵀW')⁻¹ (Σ W'ᵀ W)` — the map from a concept embedding to its adversarial twin.
pub fn adversarial_map(current: &[Mat], original: &[Mat], gamma: f64) -> Result<Mat, EraseError> {
    let d = original.first().map(|w| w.ncols()).unwrap_or(0);
    let mut m1 = Mat::zeros(d, d);
    let mut m2 = Mat::zeros(d, d);
    for (wc, w0) in current.iter().zip(original) {
        gram_lower_acc(&mut m1, 1.0, wc);
        gemm_tn(&mut m2, 1.0, wc, w0, 1.0);
    }
    m1.fill_upper_triangle_with_lower_triangle();
    for i in 0..d {
        m1[(i, i)] += gamma;
    }
    solve_spd(&m1, &m2, "RECE")
}

/// `T`, the right factor shared by every current layer (`W'_l = W_l T`).
enum Transform {
    /// `T = I + L Rᵀ`, `L` and `R` `[d, k]`.
    LowRank {
        l: Mat,
        r: Mat,
    },
    Dense(Mat),
}

impl Transform {
    fn identity(d: usize) -> Self {
        Transform::LowRank { l: Mat::zeros(d, 0), r: Mat::zeros(d, 0) }
    }

    fn dense(self) -> Mat {
        match self {
            Transform::Dense(m) => m,
            Transform::LowRank { l, r } => {
                let d = l.nrows();
                let mut m = Mat::identity(d, d);
                if l.ncols() > 0 {
                    gemm_nt(&mut m, 1.0, &l, &r, 1.0);
                }
                m
            }
        }
    }

    /// `T (I + Δ)`: the transform after one more edit.
    fn then(self, delta: &Delta) -> Self {
        match (self, delta) {
            (Transform::LowRank { l, r }, Delta::LowRank { shift, y }) => {
                let d = l.nrows();
                let (k, n) = (l.ncols(), shift.ncols());
                // (I + L Rᵀ)(I + D Yᵀ) = I + [L, D + L (Rᵀ D)] [R, Y]ᵀ.
                let mut l2 = Mat::zeros(d, k + n);
                let mut r2 = Mat::zeros(d, k + n);
                l2.columns_mut(0, k).copy_from(&l);
                r2.columns_mut(0, k).copy_from(&r);
                let mut dl = shift.clone();
                if k > 0 {
                    dl.gemm(1.0, &l, &mul_tn(&r, shift), 1.0);
                }
                l2.columns_mut(k, n).copy_from(&dl);
                r2.columns_mut(k, n).copy_from(y);
                let next = Transform::LowRank { l: l2, r: r2 };
                if 2 * (k + n) >= d { Transform::Dense(next.dense()) } else { next }
            }
            (tr, delta) => {
                let m = tr.dense();
                let mut out = m.clone();
                match delta {
                    Delta::LowRank { shift, y } => {
                        let td = &m * shift;
                        gemm_nt(&mut out, 1.0, &td, y, 1.0);
                    }
                    Delta::Dense(dm) => out.gemm(1.0, &m, dm, 1.0),
                }
                Transform::Dense(out)
            }
        }
    }

    /// `(γI + Tᵀ G T, Tᵀ G)` for a symmetric `G`: the two sums of eq. 8.
    fn sums(&self, g: &Mat, gamma: f64) -> (Mat, Mat) {
        let d = g.nrows();
        let (mut m1, m2) = match self {
            Transform::LowRank { l, .. } if l.ncols() == 0 => (g.clone(), g.clone()),
            Transform::LowRank { l, r } => {
                // Tᵀ G = G + R (G L)ᵀ; Tᵀ G T = Tᵀ G + (G L + R (Lᵀ G L)) Rᵀ.
                let gl = g * l;
                let lgl = mul_tn(l, &gl);
                let mut m2 = g.clone();
                gemm_nt(&mut m2, 1.0, r, &gl, 1.0);
                let mut left = gl;
                left.gemm(1.0, r, &lgl, 1.0);
                let mut m1 = m2.clone();
                gemm_nt(&mut m1, 1.0, &left, r, 1.0);
                (m1, m2)
            }
            Transform::Dense(tm) => {
                let gt = g * tm;
                (mul_tn(tm, &gt), gt.transpose())
            }
        };
        for i in 0..d {
            m1[(i, i)] += gamma;
        }
        (m1, m2)
    }

    /// `T − I`, the change of every layer since the original (`W_l T = W_l + W_l (T − I)`).
    fn change(self) -> Delta {
        match self {
            Transform::LowRank { l, r } => Delta::LowRank { shift: l, y: r },
            Transform::Dense(m) => {
                let d = m.nrows();
                Delta::Dense(m - Mat::identity(d, d))
            }
        }
    }
}

/// The RECE edit and the adversarial embeddings `[77, d]` of the last epoch (one per concept).
pub fn rece(
    enc: &mut dyn PromptEncoder,
    layers: &[CrossAttn],
    concepts: &[String],
    guides: &[String],
    preserve: &[String],
    cfg: &ReceConfig,
) -> Result<(Edit, Vec<Mat>), EraseError> {
    let guides = guides_for(concepts, guides, "")?;
    let d = layers
        .first()
        .map(|l| l.weight.ncols())
        .ok_or_else(|| EraseError::Param("the model has no cross-attention layers".into()))?;
    if !(cfg.gamma >= 0.0) {
        return Err(EraseError::Param(format!("γ must be ≥ 0 (got {})", cfg.gamma)));
    }
    // G = Σ_l W_lᵀ W_l over the original layers.
    let mut g = Mat::zeros(d, d);
    for l in layers {
        gram_lower_acc(&mut g, 1.0, &l.weight);
    }
    g.fill_upper_triangle_with_lower_triangle();

    // Step 0: the UCE edit.
    let p0 = uce_pairs(enc, concepts, &guides, preserve, &cfg.uce)?;
    let s0 = RidgeSolve::new("RECE (initial UCE)", d, cfg.uce.lamb, &p0, None)?;
    let mut transform = Transform::identity(d).then(s0.delta());

    let retain: Vec<String> = if preserve.is_empty() { vec![String::new(); concepts.len()] } else { preserve.to_vec() };
    let mut adversarial = vec![];
    for _ in 0..cfg.epochs {
        let (m1, m2) = transform.sums(&g, cfg.gamma);
        let mut embeds = vec![];
        let mut guide_embeds = vec![];
        for (c, gd) in concepts.iter().zip(&guides) {
            embeds.push(enc.encode(c)?.embeds);
            guide_embeds.push(enc.encode(gd)?);
        }
        // Each adversarial row c'_t = M c_t with M = m1⁻¹ m2: solve for the 77·n embeddings
        // directly, or form M first when that is cheaper.
        let total: usize = embeds.iter().map(|e| e.nrows()).sum();
        let mut x = Mat::zeros(d, total);
        let mut at = 0;
        for e in &embeds {
            x.columns_mut(at, e.nrows()).copy_from(&e.transpose());
            at += e.nrows();
        }
        let adv_cols = if total < d { solve_spd(&m1, &(&m2 * &x), "RECE")? } else { solve_spd(&m1, &m2, "RECE")? * &x };
        adversarial.clear();
        let mut pairs = vec![];
        let mut at = 0;
        for (e, ge) in embeds.iter().zip(&guide_embeds) {
            // [77, d]: each row c'_t = M c_t.
            let adv = adv_cols.columns(at, e.nrows()).transpose();
            at += e.nrows();
            for t in 0..adv.nrows() {
                pairs.push(Pair { context: adv.row(t).transpose(), value_from: ge.token(t), scale: cfg.erase_scale });
            }
            adversarial.push(adv);
        }
        for r in &retain {
            let re = enc.encode(r)?;
            for t in 0..re.embeds.nrows() {
                let e = re.token(t);
                pairs.push(Pair { context: e.clone(), value_from: e, scale: cfg.preserve_scale });
            }
        }
        let solve = RidgeSolve::new("RECE", d, cfg.lamb, &pairs, None)?;
        transform = transform.then(solve.delta());
    }
    let change = transform.change();

    let meta = EditMeta {
        concepts: concepts.to_vec(),
        guides,
        preserve: preserve.to_vec(),
        hyperparameters: [
            ("epochs".to_owned(), json!(cfg.epochs)),
            ("gamma".to_owned(), json!(cfg.gamma)),
            ("lamb".to_owned(), json!(cfg.lamb)),
            ("erase_scale".to_owned(), json!(cfg.erase_scale)),
            ("preserve_scale".to_owned(), json!(cfg.preserve_scale)),
            ("uce_lamb".to_owned(), json!(cfg.uce.lamb)),
            ("uce_erase_scale".to_owned(), json!(cfg.uce.erase_scale)),
            ("uce_preserve_scale".to_owned(), json!(cfg.uce.preserve_scale_for(preserve.len()))),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let edit = edit_from_deltas("rece", layers, |_, _| Ok(change.clone()), meta)?;
    Ok((edit, adversarial))
}
