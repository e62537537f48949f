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
//! Defaults as the official `train.py`: `lamb` 0.1, `erase_scale` 1, `preserve_scale` 0.1,
//! γ (`regular_scale`) 0.1; guide " " (the unconditional prompt). With no preserve set the
//! official code retains " " once per concept; we do the same. Where the official code draws
//! `len(concepts)` retain prompts at random from a preserve list, we use the whole list
//! (deterministic).

use crate::closed_form::{Pair, RidgeSolve, edit_from_layers, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::linalg::{Mat, solve_left};
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
        Self {
            uce: UceConfig::default(),
            epochs: 1,
            gamma: 0.1,
            lamb: 0.1,
            erase_scale: 1.0,
            preserve_scale: 0.1,
        }
    }
}

/// `(γI + Σ W'ᵀW')⁻¹ (Σ W'ᵀ W)` — the map from a concept embedding to its adversarial twin.
pub fn adversarial_map(current: &[Mat], original: &[Mat], gamma: f64) -> Result<Mat, EraseError> {
    let d = original.first().map(|w| w.ncols()).unwrap_or(0);
    let mut m1 = Mat::identity(d, d) * gamma;
    let mut m2 = Mat::zeros(d, d);
    for (wc, w0) in current.iter().zip(original) {
        m1 += wc.transpose() * wc;
        m2 += wc.transpose() * w0;
    }
    solve_left(&m1, &m2, "RECE")
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
        return Err(EraseError::Param(format!(
            "γ must be ≥ 0 (got {})",
            cfg.gamma
        )));
    }
    let original: Vec<Mat> = layers.iter().map(|l| l.weight.clone()).collect();

    // Step 0: the UCE edit.
    let p0 = uce_pairs(enc, concepts, &guides, preserve, &cfg.uce)?;
    let s0 = RidgeSolve::new("RECE (initial UCE)", d, cfg.uce.lamb, &p0, None)?;
    let mut current: Vec<Mat> = original.iter().map(|w| s0.apply(w)).collect();

    let retain: Vec<String> = if preserve.is_empty() {
        vec![String::new(); concepts.len()]
    } else {
        preserve.to_vec()
    };
    let mut adversarial = vec![];
    for _ in 0..cfg.epochs {
        let map = adversarial_map(&current, &original, cfg.gamma)?;
        adversarial.clear();
        let mut pairs = vec![];
        for (c, g) in concepts.iter().zip(&guides) {
            let ce = enc.encode(c)?;
            let ge = enc.encode(g)?;
            // [77, d]: each row c'_t = M c_t.
            let adv = &ce.embeds * map.transpose();
            for t in 0..adv.nrows() {
                pairs.push(Pair {
                    context: adv.row(t).transpose(),
                    value_from: ge.token(t),
                    scale: cfg.erase_scale,
                });
            }
            adversarial.push(adv);
        }
        for r in &retain {
            let re = enc.encode(r)?;
            for t in 0..re.embeds.nrows() {
                let e = re.token(t);
                pairs.push(Pair {
                    context: e.clone(),
                    value_from: e,
                    scale: cfg.preserve_scale,
                });
            }
        }
        let solve = RidgeSolve::new("RECE", d, cfg.lamb, &pairs, None)?;
        current = current.iter().map(|w| solve.apply(w)).collect();
    }

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
            (
                "uce_preserve_scale".to_owned(),
                json!(cfg.uce.preserve_scale_for(preserve.len())),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    let edit = edit_from_layers("rece", layers, |i, _| Ok(current[i].clone()), meta)?;
    Ok((edit, adversarial))
}
