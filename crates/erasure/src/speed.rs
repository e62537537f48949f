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
//!
//! Numerics (same equations, computed without `d × d` decompositions): `S_tt` and `S_at − S_tt`
//! are kept as rank-`q` factors of the `q` target/anchor tokens; `(I + S_tt)⁻¹` and `M` go
//! through the Woodbury identity; the erase response of `r + z v` is that of `r` plus `z` times
//! that of `v`; the retain covariance lives in the span of the kept retain embeddings and `v`, so
//! its eigen-decomposition is a `(k+1) × (k+1)` one; `v` comes from Lanczos on the inverse of
//! the smaller Gram matrix of `W`; and `ΔW` is formed as a rank-`q` product.

use crate::closed_form::{Delta, edit_from_deltas, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::linalg::{Mat, Vector, columns, gemm_nt, gram, mul_nt, mul_tn, smallest_eigenvector_spd, solve_left};
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
        Self { retain_scale: 1.0, lamb: 0.0, threshold: 0.1, aug_num: 10, filter: true, all_tokens: None }
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
                let da = centres.iter().map(|c| dist2(&rows[a], c)).fold(f64::INFINITY, f64::min);
                let db = centres.iter().map(|c| dist2(&rows[b], c)).fold(f64::INFINITY, f64::min);
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
                (0..centres.len()).min_by(|&a, &b| dist2(r, &centres[a]).total_cmp(&dist2(r, &centres[b]))).unwrap_or(0)
            })
            .collect();
        if new == assign {
            break;
        }
        assign = new;
        for (j, c) in centres.iter_mut().enumerate() {
            let members: Vec<&Vector> = rows.iter().zip(&assign).filter(|(_, a)| **a == j).map(|(r, _)| r).collect();
            if !members.is_empty() {
                *c = members.iter().fold(Vector::zeros(x.ncols()), |s, r| s + *r) / members.len() as f64;
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
/// The smaller Gram matrix (`WᵀW` or `WWᵀ`) gives it through Lanczos on its inverse
/// ([`smallest_eigenvector_spd`]); a dense eigen-decomposition when that declines (singular
/// Gram matrix, repeated smallest singular value) or the matrix is small.
pub fn smallest_right_singular_vector(w: &Mat) -> Vector {
    let (m, d) = (w.nrows(), w.ncols());
    let smallest = |g: Mat| {
        (g.nrows() > 96).then(|| smallest_eigenvector_spd(&g)).flatten().unwrap_or_else(|| {
            let e = SymmetricEigen::new(g);
            let i = e.eigenvalues.imin();
            e.eigenvectors.column(i).into_owned()
        })
    };
    let v = if m >= d {
        smallest(gram(w))
    } else {
        let u = smallest(gram(&w.transpose()));
        let v = w.transpose() * u;
        let n = v.norm();
        if n > 0.0 { v / n } else { v }
    };
    let big = v.iamax();
    if v[big] < 0.0 { -v } else { v }
}

/// Indices of the columns of `responses` whose norm is above the mean norm.
fn above_mean(norms: &[f64]) -> Vec<usize> {
    if norms.is_empty() {
        return vec![];
    }
    let mean = norms.iter().sum::<f64>() / norms.len() as f64;
    (0..norms.len()).filter(|&i| norms[i] > mean).collect()
}

/// `X Yᵀ` factors of the target statistics: `S_tt = X Yᵀ`, `S_at − S_tt = X_s Yᵀ`, with
/// `X = T/n`, `X_s = (A − T)/n`, `Y = T` for the `q` target/anchor token columns `T`, `A`
/// (or `S_tt`, `S_at − S_tt` and `I` when `q > d`, so the rank never exceeds `d`).
struct Targets {
    x: Mat,
    xs: Mat,
    y: Mat,
}

impl Targets {
    /// `(S_at − S_tt)(I + S_tt)⁻¹ B` through `(I + X Yᵀ)⁻¹ = I − X (I + Yᵀ X)⁻¹ Yᵀ`.
    fn erase_right(&self, b: &Mat) -> Result<Mat, EraseError> {
        let q = self.y.ncols();
        let mut inner = mul_tn(&self.y, &self.x);
        for i in 0..q {
            inner[(i, i)] += 1.0;
        }
        let ytb = mul_tn(&self.y, b);
        let mut sol = b.clone();
        sol.gemm(-1.0, &self.x, &solve_left(&inner, &ytb, "SPEED")?, 1.0);
        Ok(&self.xs * mul_tn(&self.y, &sol))
    }
}

/// `M = (S_tt P + rI)⁻¹` as an operator.
enum MOp {
    /// `M = (I − X W⁻¹ Zᵀ)/r` with `Z = P Y`, `W = rI + Zᵀ X` (Woodbury; `S_tt P = X Zᵀ`).
    Woodbury { x: Mat, z: Mat, w_inv: Mat, r: f64 },
    /// r = 0: `(S_tt P)⁻¹` formed densely (singular unless the targets span the text space).
    Dense(Mat),
}

impl MOp {
    fn new(tg: &Targets, z: &Mat, r: f64) -> Result<Self, EraseError> {
        if r > 0.0 {
            let q = z.ncols();
            let mut w = mul_tn(z, &tg.x);
            for i in 0..q {
                w[(i, i)] += r;
            }
            let w_inv = solve_left(&w, &Mat::identity(q, q), "SPEED")?;
            Ok(MOp::Woodbury { x: tg.x.clone(), z: z.clone(), w_inv, r })
        } else {
            let d = z.nrows();
            let mut a = Mat::zeros(d, d);
            gemm_nt(&mut a, 1.0, &tg.x, z, 0.0);
            Ok(MOp::Dense(solve_left(&a, &Mat::identity(d, d), "SPEED")?))
        }
    }

    /// `M B`.
    fn left(&self, b: &Mat) -> Mat {
        match self {
            MOp::Woodbury { x, z, w_inv, r } => {
                let mut out = b.clone();
                out.gemm(-1.0, &(x * w_inv), &mul_tn(z, b), 1.0);
                out / *r
            }
            MOp::Dense(m) => m * b,
        }
    }

    /// `B M`.
    fn right(&self, b: &Mat) -> Mat {
        match self {
            MOp::Woodbury { x, z, w_inv, r } => {
                let mut out = b.clone();
                gemm_nt(&mut out, -1.0, &(b * x * w_inv), z, 1.0);
                out / *r
            }
            MOp::Dense(m) => b * m,
        }
    }
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
        return Err(EraseError::Param("SPEED needs threshold > 0, retain scale ≥ 0 and λ ≥ 0".into()));
    }
    let all_tokens = cfg.all_tokens.unwrap_or(targets.len() == 1 && targets[0] == "nudity");

    // K₂: BOS of "" and 3 centroids of its other tokens.
    let null = enc.encode("")?;
    let rest = null.embeds.rows(1, null.embeds.nrows() - 1).into_owned();
    let centres = kmeans(&rest, 3);
    let mut k2 = Mat::zeros(d, 1 + centres.nrows());
    k2.set_column(0, &null.token(0));
    for j in 0..centres.nrows() {
        k2.set_column(j + 1, &centres.row(j).transpose());
    }

    // S_tt = mean_i t_iᵀ t_i, S_at = mean_i a_iᵀ t_i, kept as factors of the token columns.
    let (mut tcols, mut acols) = (vec![], vec![]);
    for (t, a) in targets.iter().zip(&anchors) {
        let te = enc.encode(t)?;
        let ae = enc.encode(a)?;
        let (tr, ar) = if all_tokens {
            ((1..te.embeds.nrows()).collect::<Vec<_>>(), (1..ae.embeds.nrows()).collect::<Vec<_>>())
        } else {
            (vec![te.last_token_index()], vec![ae.last_token_index()])
        };
        for (i, j) in tr.into_iter().zip(ar) {
            tcols.push(te.token(i));
            acols.push(ae.token(j));
        }
    }
    let n = targets.len() as f64;
    let tt = columns(&tcols, d);
    let at = columns(&acols, d);
    let mut tg = Targets { x: &tt / n, xs: (&at - &tt) / n, y: tt };
    if tg.y.ncols() > d {
        tg = Targets { x: mul_nt(&tg.x, &tg.y), xs: mul_nt(&tg.xs, &tg.y), y: Mat::identity(d, d) };
    }

    // Retain embeddings.
    let lower: Vec<String> = targets.iter().map(|t| t.to_lowercase()).collect();
    let whole_word = |text: &str, word: &str| {
        let text = text.to_lowercase();
        text.match_indices(word).any(|(i, _)| {
            let before = text[..i].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            let after = text[i + word.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
            before && after
        })
    };
    let kept: Vec<&String> = retain.iter().filter(|r| !lower.iter().any(|t| whole_word(r, t))).collect();
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
    let ret = columns(&ret, d);
    // (S_at − S_tt)(I + S_tt)⁻¹ r for every retain embedding: each layer's erase response is
    // W times this.
    let erase_ret = tg.erase_right(&ret)?;

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
    let mut changes: Vec<Option<Delta>> = vec![None; layers.len()];
    for &i in &order {
        changes[i] = Some(speed_layer(&layers[i].weight, &ret, &erase_ret, &tg, &k2, cfg, draw)?);
    }
    edit_from_deltas(
        "speed",
        layers,
        |i, _| changes[i].take().ok_or_else(|| EraseError::Param("internal: layer not edited".into())),
        meta,
    )
}

/// One layer (eq. 9–12). The retain set `S = mean r rᵀ` is kept as `B K Bᵀ` with
/// `B = [kept retain embeddings, v]` (every augmented embedding `r + z v` lies in that span), so
/// its eigen-decomposition is that of the small `R_B K R_Bᵀ` (`B = Q R_B`), and `P = I − U Uᵀ`
/// with `U` the eigenvectors of eigenvalue ≥ threshold. `M` goes through Woodbury
/// ([`MOp`]) and `ΔW = W X_s [Yᵀ P (I − corr) M]`, returned as the rank-`q` right factor
/// `Δ = X_s [Yᵀ P (I − corr) M]` of `W' = W + W Δ`.
#[allow(clippy::too_many_arguments)]
fn speed_layer(
    w: &Mat,
    ret: &Mat,
    erase_ret: &Mat,
    tg: &Targets,
    k2: &Mat,
    cfg: &SpeedConfig,
    draw: &mut dyn FnMut() -> f64,
) -> Result<Delta, EraseError> {
    let d = w.ncols();
    // Erase responses W (S_at − S_tt)(I + S_tt)⁻¹ r, `[d_out, N]`.
    let resp = w * erase_ret;
    let norms: Vec<f64> = resp.column_iter().map(|c| c.norm()).collect();
    let kept: Vec<usize> = if cfg.aug_num > 0 && cfg.filter { above_mean(&norms) } else { (0..ret.ncols()).collect() };
    let v = if cfg.aug_num > 0 { Some(smallest_right_singular_vector(w)) } else { None };
    let resp_v = match &v {
        Some(v) => Some(w * tg.erase_right(&Mat::from_column_slice(d, 1, v.as_slice()))?),
        None => None,
    };
    // Members of the retain set as (position in `kept`, z): r_kept[pos] + z v.
    let mut members: Vec<(usize, f64)> = vec![];
    let positions: Vec<usize> = (0..kept.len()).collect();
    for chunk in positions.chunks(CHUNK) {
        members.extend(chunk.iter().map(|&p| (p, 0.0)));
        if let Some(rv) = &resp_v {
            let mut perturbed = vec![];
            for mini in chunk.chunks(MINI_BATCH) {
                for _ in 0..cfg.aug_num {
                    for &p in mini {
                        let z = draw();
                        // W E (r + z v) = W E r + z W E v.
                        let mut e = resp.column(kept[p]).into_owned();
                        e.axpy(z, &rv.column(0), 1.0);
                        perturbed.push((p, z, e.norm()));
                    }
                }
            }
            let pn: Vec<f64> = perturbed.iter().map(|x| x.2).collect();
            members.extend(above_mean(&pn).into_iter().map(|i| (perturbed[i].0, perturbed[i].1)));
        }
    }
    let count = members.len();
    if count == 0 {
        return Err(EraseError::Param("SPEED has no retain embeddings left after filtering".into()));
    }
    // S = B K Bᵀ.
    let k = kept.len();
    let p = k + usize::from(v.is_some());
    let mut b = Mat::zeros(d, p);
    for (j, &i) in kept.iter().enumerate() {
        b.set_column(j, &ret.column(i));
    }
    if let Some(v) = &v {
        b.set_column(k, v);
    }
    let mut kc = Mat::zeros(p, p);
    for &(j, z) in &members {
        kc[(j, j)] += 1.0;
        if v.is_some() {
            kc[(j, k)] += z;
            kc[(k, j)] += z;
            kc[(k, k)] += z * z;
        }
    }
    kc /= count as f64;
    let big: Vec<Vector> = if p < d {
        let qr = b.qr();
        let (q, rb) = (qr.q(), qr.r());
        let mut h = &rb * kc * rb.transpose();
        h = (&h + h.transpose()) * 0.5;
        let e = SymmetricEigen::new(h);
        e.eigenvalues
            .iter()
            .enumerate()
            .filter(|(_, ev)| ev.abs() >= cfg.threshold)
            .map(|(i, _)| &q * e.eigenvectors.column(i))
            .collect()
    } else {
        let s = &b * kc * b.transpose();
        let e = SymmetricEigen::new(s);
        e.eigenvalues
            .iter()
            .enumerate()
            .filter(|(_, ev)| ev.abs() >= cfg.threshold)
            .map(|(i, _)| e.eigenvectors.column(i).into_owned())
            .collect()
    };
    let u = columns(&big, d);
    // P B = B − U (Uᵀ B).
    let proj = |m: &Mat| -> Mat {
        let mut out = m.clone();
        if u.ncols() > 0 {
            out.gemm(-1.0, &u, &mul_tn(&u, m), 1.0);
        }
        out
    };
    let z = proj(&tg.y);
    let m_op = MOp::new(tg, &z, cfg.retain_scale)?;
    let mk2 = m_op.left(k2);
    let pk2 = proj(k2);
    let mut inner = mul_tn(k2, &proj(&mk2));
    for i in 0..inner.nrows() {
        inner[(i, i)] += cfg.lamb;
    }
    // Yᵀ P (I − M K₂ inner⁻¹ K₂ᵀ P) M.
    let kt_p = pk2.transpose();
    let mut l2 = z.transpose();
    let zmk2 = &l2 * &mk2;
    l2.gemm(-1.0, &zmk2, &solve_left(&inner, &kt_p, "SPEED")?, 1.0);
    let l3 = m_op.right(&l2);
    Ok(Delta::LowRank { shift: tg.xs.clone(), y: l3.transpose() })
}
