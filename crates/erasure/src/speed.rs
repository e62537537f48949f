//! SPEED — Scalable, Precise and Efficient concept Erasure for Diffusion models (Li et al., 2025,
//! arXiv:2503.07392). Null-space constrained edit of the cross-attention values (official
//! `train_erase_null.py`, `edit_model` with baseline `SPEED`; paper eq. 9–12):
//!
//! `ΔW = W (S_at − S_tt) P [I − M K₂ (K₂ᵀ P M K₂ + λI)⁻¹ K₂ᵀ P] M`, `M = (S_tt P + rI)⁻¹`
//!
//! - `S_tt = mean_i t_iᵀ t_i`, `S_at = mean_i a_iᵀ t_i` over the target/anchor pairs, `t`, `a` the
//!   last subject token (`attention_mask.sum() − 2`), or all tokens after BOS when the only target
//!   is "nudity" (as the official code special-cases it) or [`SpeedConfig::all_tokens`].
//! - `P` projects on the null space of the retain covariance `mean r rᵀ` (eigenvalues below
//!   `threshold`). The retain set is the last subject token of each retain prompt that does not
//!   contain a target as a whole word, or tokens 1..76 of "" when no retain prompts are given.
//!   **Prior filtering** (per layer): keep the retain embeddings whose erase response
//!   `‖W (S_at − S_tt)(I + S_tt)⁻¹ r‖` is above the mean. **Augmentation** (per layer):
//!   `aug_num` perturbations `r + z v` per retain embedding (`v` the right singular vector of `W`
//!   with the smallest singular value, `z ~ N(0, 1)` — the official `noise @ v vᵀ`), keeping those
//!   with an above-mean erase response (per chunk of 128, within draws in mini-batches of 8).
//! - `K₂` = the BOS embedding of "" and 3 k-means centroids of its other 76 token embeddings.
//!
//! Deliberate differences, both because the official code is random: k-means is initialised
//! deterministically (farthest points from the EOS token, then Lloyd iterations until the
//! assignment is stable) where `kmeans_pytorch` draws random initial centres, and the retain set
//! is not shuffled (the shuffle only changes which chunk of 128 an embedding lands in). The
//! draws `z` come from a caller-supplied source (seeded by default) so tests can replay the
//! reference's draws; `v`'s sign is fixed so that its largest entry is positive.
//! Defaults: `to_v` only, r = 1, λ = 0, threshold 0.1, `aug_num` 10, filter on.

use crate::closed_form::{edit_from_layers, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::linalg::{Mat, Vector, solve_left};
use crate::text::{CrossAttn, PromptEncoder};
use nalgebra::SymmetricEigen;
use serde_json::json;

#[derive(Debug, Clone)]
pub struct SpeedConfig {
    pub retain_scale: f64,
    pub lamb: f64,
    pub threshold: f64,
    pub aug_num: usize,
    pub filter: bool,
    /// Use all tokens after BOS instead of the last subject token (`None`: only for "nudity").
    pub all_tokens: Option<bool>,
}

impl Default for SpeedConfig {
    fn default() -> Self {
        Self {
            retain_scale: 1.0,
            lamb: 0.0,
            threshold: 0.1,
            aug_num: 10,
            filter: true,
            all_tokens: None,
        }
    }
}

const CHUNK: usize = 128;
const MINI_BATCH: usize = 8;

/// Deterministic k-means (see the module doc) of the rows of `x`; returns the centres as rows.
pub fn kmeans(x: &Mat, k: usize) -> Mat {
    let n = x.nrows();
    let dist2 = |a: &Vector, b: &Vector| (a - b).norm_squared();
    let rows: Vec<Vector> = (0..n).map(|i| x.row(i).transpose()).collect();
    let mut centres: Vec<Vector> = vec![rows[0].clone()];
    while centres.len() < k.min(n) {
        let far = (0..n)
            .max_by(|&a, &b| {
                let da = centres
                    .iter()
                    .map(|c| dist2(&rows[a], c))
                    .fold(f64::INFINITY, f64::min);
                let db = centres
                    .iter()
                    .map(|c| dist2(&rows[b], c))
                    .fold(f64::INFINITY, f64::min);
                da.total_cmp(&db)
            })
            .unwrap_or(0);
        centres.push(rows[far].clone());
    }
    let mut assign = vec![usize::MAX; n];
    for _ in 0..300 {
        let new: Vec<usize> = rows
            .iter()
            .map(|r| {
                (0..centres.len())
                    .min_by(|&a, &b| dist2(r, &centres[a]).total_cmp(&dist2(r, &centres[b])))
                    .unwrap_or(0)
            })
            .collect();
        if new == assign {
            break;
        }
        assign = new;
        for (j, c) in centres.iter_mut().enumerate() {
            let members: Vec<&Vector> = rows
                .iter()
                .zip(&assign)
                .filter(|(_, a)| **a == j)
                .map(|(r, _)| r)
                .collect();
            if !members.is_empty() {
                *c = members.iter().fold(Vector::zeros(x.ncols()), |s, r| s + *r)
                    / members.len() as f64;
            }
        }
    }
    let mut out = Mat::zeros(centres.len(), x.ncols());
    for (j, c) in centres.iter().enumerate() {
        out.set_row(j, &c.transpose());
    }
    out
}

/// The right singular vector of `w` `[m, d]` for its smallest singular value among the
/// `min(m, d)` of the reduced SVD, sign fixed so that its largest-magnitude entry is positive.
pub fn smallest_right_singular_vector(w: &Mat) -> Vector {
    let (m, d) = (w.nrows(), w.ncols());
    let v = if m >= d {
        let e = SymmetricEigen::new(w.transpose() * w);
        let i = e.eigenvalues.imin();
        e.eigenvectors.column(i).into_owned()
    } else {
        let e = SymmetricEigen::new(w * w.transpose());
        let i = e.eigenvalues.imin();
        let v = w.transpose() * e.eigenvectors.column(i);
        let n = v.norm();
        if n > 0.0 { v / n } else { v }
    };
    let big = v.iamax();
    if v[big] < 0.0 { -v } else { v }
}

fn above_mean(embs: Vec<Vector>, erase: &Mat) -> Vec<Vector> {
    if embs.is_empty() {
        return embs;
    }
    let norms: Vec<f64> = embs.iter().map(|r| (erase * r).norm()).collect();
    let mean = norms.iter().sum::<f64>() / norms.len() as f64;
    embs.into_iter()
        .zip(norms)
        .filter(|(_, n)| *n > mean)
        .map(|(r, _)| r)
        .collect()
}

/// The SPEED edit of `targets` towards `anchors` ("" by default) keeping `retain`.
/// `draw` supplies the standard-normal augmentation draws in the order layer (diffusers' state-dict
/// order), chunk,
/// mini-batch, perturbation, row.
pub fn speed(
    enc: &mut dyn PromptEncoder,
    layers: &[CrossAttn],
    targets: &[String],
    anchors: &[String],
    retain: &[String],
    cfg: &SpeedConfig,
    draw: &mut dyn FnMut() -> f64,
) -> Result<Edit, EraseError> {
    let anchors = guides_for(targets, anchors, "")?;
    let d = layers
        .first()
        .map(|l| l.weight.ncols())
        .ok_or_else(|| EraseError::Param("the model has no cross-attention layers".into()))?;
    if cfg.threshold <= 0.0 || cfg.retain_scale < 0.0 || cfg.lamb < 0.0 {
        return Err(EraseError::Param(
            "SPEED needs threshold > 0, retain scale ≥ 0 and λ ≥ 0".into(),
        ));
    }
    let all_tokens = cfg
        .all_tokens
        .unwrap_or(targets.len() == 1 && targets[0] == "nudity");
    let eye = Mat::identity(d, d);

    // K₂: BOS of "" and 3 centroids of its other tokens.
    let null = enc.encode("")?;
    let rest = null.embeds.rows(1, null.embeds.nrows() - 1).into_owned();
    let centres = kmeans(&rest, 3);
    let mut k2 = Mat::zeros(d, 1 + centres.nrows());
    k2.set_column(0, &null.token(0));
    for j in 0..centres.nrows() {
        k2.set_column(j + 1, &centres.row(j).transpose());
    }

    // S_tt, S_at: means over the pairs of tᵀt and aᵀt.
    let (mut s_tt, mut s_at) = (Mat::zeros(d, d), Mat::zeros(d, d));
    for (t, a) in targets.iter().zip(&anchors) {
        let te = enc.encode(t)?;
        let ae = enc.encode(a)?;
        let (tm, am) = if all_tokens {
            (
                te.embeds.rows(1, te.embeds.nrows() - 1).into_owned(),
                ae.embeds.rows(1, ae.embeds.nrows() - 1).into_owned(),
            )
        } else {
            (
                te.embeds.rows(te.last_token_index(), 1).into_owned(),
                ae.embeds.rows(ae.last_token_index(), 1).into_owned(),
            )
        };
        s_tt += tm.transpose() * &tm;
        s_at += am.transpose() * &tm;
    }
    s_tt /= targets.len() as f64;
    s_at /= targets.len() as f64;

    // Retain embeddings.
    let lower: Vec<String> = targets.iter().map(|t| t.to_lowercase()).collect();
    let whole_word = |text: &str, word: &str| {
        let text = text.to_lowercase();
        text.match_indices(word).any(|(i, _)| {
            let before = text[..i]
                .chars()
                .next_back()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = text[i + word.len()..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            before && after
        })
    };
    let kept: Vec<&String> = retain
        .iter()
        .filter(|r| !lower.iter().any(|t| whole_word(r, t)))
        .collect();
    let mut ret: Vec<Vector> = vec![];
    if kept.is_empty() {
        for i in 1..null.embeds.nrows() {
            ret.push(null.token(i));
        }
    } else {
        for r in kept {
            let e = enc.encode(r)?;
            ret.push(e.token(e.last_token_index()));
        }
    }

    let shift = &s_at - &s_tt;
    let erase_right =
        solve_left(&(&eye + &s_tt).transpose(), &shift.transpose(), "SPEED")?.transpose(); // (S_at − S_tt)(I + S_tt)⁻¹
    let meta = EditMeta {
        concepts: targets.to_vec(),
        guides: anchors,
        preserve: retain.to_vec(),
        hyperparameters: [
            ("retain_scale".to_owned(), json!(cfg.retain_scale)),
            ("lamb".to_owned(), json!(cfg.lamb)),
            ("threshold".to_owned(), json!(cfg.threshold)),
            ("aug_num".to_owned(), json!(cfg.aug_num)),
            ("filter".to_owned(), json!(cfg.filter)),
            ("all_tokens".to_owned(), json!(all_tokens)),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    // The draws are consumed layer by layer in diffusers' `state_dict()` order (down blocks, up
    // blocks, then the mid block: `UNet2DConditionModel` registers `mid_block` last), as the
    // official loop over `edit_dict` does.
    let rank = |name: &str| {
        if name.starts_with("down_blocks") {
            0
        } else if name.starts_with("up_blocks") {
            1
        } else {
            2
        }
    };
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|&i| rank(&layers[i].name));
    let mut edited: Vec<Option<Mat>> = vec![None; layers.len()];
    for &i in &order {
        edited[i] = Some(speed_layer(
            &layers[i].weight,
            &ret,
            &erase_right,
            &shift,
            &s_tt,
            &k2,
            cfg,
            draw,
        )?);
    }
    edit_from_layers(
        "speed",
        layers,
        |i, _| {
            edited[i]
                .take()
                .ok_or_else(|| EraseError::Param("internal: layer not edited".into()))
        },
        meta,
    )
}

#[allow(clippy::too_many_arguments)]
fn speed_layer(
    w: &Mat,
    ret: &[Vector],
    erase_right: &Mat,
    shift: &Mat,
    s_tt: &Mat,
    k2: &Mat,
    cfg: &SpeedConfig,
    draw: &mut dyn FnMut() -> f64,
) -> Result<Mat, EraseError> {
    let d = w.ncols();
    let eye = Mat::identity(d, d);
    let erase = w * erase_right;
    let layer_ret = if cfg.aug_num > 0 && cfg.filter {
        above_mean(ret.to_vec(), &erase)
    } else {
        ret.to_vec()
    };
    let mut sum = Mat::zeros(d, d);
    let mut count = 0usize;
    let v = if cfg.aug_num > 0 {
        Some(smallest_right_singular_vector(w))
    } else {
        None
    };
    for chunk in layer_ret.chunks(CHUNK) {
        let mut all: Vec<Vector> = chunk.to_vec();
        if let Some(v) = &v {
            let mut perturbed = vec![];
            for mini in chunk.chunks(MINI_BATCH) {
                for _ in 0..cfg.aug_num {
                    for r in mini {
                        perturbed.push(r + v * draw());
                    }
                }
            }
            all.extend(above_mean(perturbed, &erase));
        }
        for r in &all {
            sum += r * r.transpose();
        }
        count += all.len();
    }
    if count == 0 {
        return Err(EraseError::Param(
            "SPEED has no retain embeddings left after filtering".into(),
        ));
    }
    sum /= count as f64;
    let e = SymmetricEigen::new(sum);
    let mut p = Mat::zeros(d, d);
    for (i, ev) in e.eigenvalues.iter().enumerate() {
        if ev.abs() < cfg.threshold {
            let u = e.eigenvectors.column(i);
            p += u * u.transpose();
        }
    }
    let m = solve_left(&(s_tt * &p + &eye * cfg.retain_scale), &eye, "SPEED")?;
    let pm = &p * &m;
    let mut inner = k2.transpose() * &pm * k2;
    for i in 0..inner.nrows() {
        inner[(i, i)] += cfg.lamb;
    }
    let kt_p = k2.transpose() * &p;
    let corr = &m * k2 * solve_left(&inner, &kt_p, "SPEED")?;
    let delta = w * shift * &p * (&eye - corr) * &m;
    Ok(w + delta)
}
