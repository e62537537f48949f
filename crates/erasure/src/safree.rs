//! SAFREE (Yoon et al., ICLR 2025): training-free token projection away from a toxic concept
//! subspace, with a self-validating filter that decides for how many steps to use it.
//!
//! Following jaeihn/SAFREE `models/modified_stable_diffusion_pipeline.py` (`projection_matrix`,
//! `safree_projection`, `_masked_encode_prompt`, `f_beta`, and the `svf` branch of `__call__`):
//!
//! 1. `P_C` = projector onto the span of the **pooled** (EOS) embeddings of the toxic keywords
//!    (`projection_matrix(E) = E (EᵀE)⁺ Eᵀ`, paper Eq. 2).
//! 2. For each real token `i` of the prompt (BOS/EOS excluded, at most 75), the prompt is encoded
//!    with that token's id replaced by 0; `p_i` is its pooled embedding. `P_I` = projector onto
//!    the span of all `p_i` (the prompt's own token space).
//! 3. `d_i = ‖(I − P_C) p_i‖`; token `i` is a trigger when `d_i ≥ (1 + α) · mean_{j≠i} d_j`
//!    (Eqs. 3–4: removing a toxic token moves the prompt away from the concept subspace).
//!    With one real token the mean is over nothing (NaN in the official code) and the token counts
//!    as a trigger; we keep that.
//! 4. Trigger tokens (positions 1..=n_t of the `[77, d]` **token** embedding) are replaced by
//!    `(I − P_C) P_I e_i` (Eq. 5, the official code's order of the two projectors); every other
//!    position (BOS, EOS, padding, safe tokens) is kept.
//! 5. Self-validating filter (Eq. 6): `β = 1 − mean_i cos((I − P_C) P_I e_i, e_i)` over the real
//!    tokens (BOS through EOS, the attention mask), every token projected;
//!    `t' = round(10 · σ(2k (10β − t)))` with `(t, k) = (5.333, 2.5)`, or `(5.5, 3.5)` for artist
//!    concepts; the projected embedding is used for steps `i ≤ t'` (0-based, so `t' + 1` steps),
//!    the original one after. Python's `round` rounds halves to even: so do we.
//!
//! Without the filter the official default (`re_attn_t = -1,1001`) uses the projected embedding
//! at every step. The FreeU-style latent re-attention (`-lra`) is not implemented.
//!
//! Numerics: f64. `(EᵀE)⁺` keeps singular values above `1e-15 ·` the largest, torch.pinverse's
//! default; we compute the same projector from the SVD of `E` (singular values of `E` above
//! `√1e-15 ·` the largest), which is better conditioned.

use crate::error::EraseError;
use crate::leace::svd;
use crate::linalg::Mat;
use crate::text::{PromptEncoder, read_f32};
use burn::tensor::{Int, Tensor, TensorData};
use pipeline::StableDiffusion;
use pipeline::tokenizer::Encoding;

/// SAFREE's settings. Defaults are the official ones.
#[derive(Debug, Clone, PartialEq)]
pub struct SafreeConfig {
    /// The toxic concept's keywords ("negative prompt space"), each encoded alone.
    pub keywords: Vec<String>,
    /// Trigger margin α (`--sf_alpha`, 0.01).
    pub alpha: f64,
    /// Use the self-validating filter (`-svf`); without it every step is projected.
    pub self_validating: bool,
    /// Upper bound of the filter's step count (`--up_t`, 10).
    pub upper_bound: usize,
    /// The filter's calibration for artist styles (`"artists-" in category`).
    pub artist: bool,
}

impl SafreeConfig {
    pub fn new(keywords: Vec<String>) -> Self {
        Self { keywords, alpha: 0.01, self_validating: true, upper_bound: 10, artist: false }
    }

    /// The configuration `studio generate --safree KW [--safree-alpha A] [--safree-all-steps]
    /// [--safree-artist]` asks for (the page's steering request takes the same flags), checked.
    /// `alpha`: `None` keeps the official 0.01.
    pub fn from_flags(keywords: &str, alpha: Option<f64>, all_steps: bool, artist: bool) -> Result<Self, EraseError> {
        let mut s = Self::new(Self::parse_keywords(keywords));
        if let Some(a) = alpha {
            s.alpha = a;
        }
        s.self_validating = !all_steps;
        s.artist = artist;
        s.check()?;
        Ok(s)
    }

    /// Keywords from `"kw1;kw2"`; empty entries are dropped.
    pub fn parse_keywords(list: &str) -> Vec<String> {
        list.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    }

    pub fn check(&self) -> Result<(), EraseError> {
        if self.keywords.iter().all(|k| k.trim().is_empty()) {
            return Err(EraseError::Param(
                "SAFREE needs at least one keyword of the concept to steer away from (e.g. --safree \"nudity;naked\")"
                    .into(),
            ));
        }
        if !self.alpha.is_finite() || self.alpha <= -1.0 {
            return Err(EraseError::Param(format!("SAFREE's α must be a finite number above −1 (got {})", self.alpha)));
        }
        Ok(())
    }
}

/// Projector onto the span of the columns of `e` `[d, n]` (the official `projection_matrix`).
pub fn projection_matrix(e: &Mat) -> Result<Mat, EraseError> {
    let d = e.nrows();
    if e.ncols() == 0 {
        return Ok(Mat::zeros(d, d));
    }
    let s = svd(e, true, false, "SAFREE")?;
    let u = s.u.as_ref().expect("u requested");
    let smax = s.singular_values.iter().fold(0.0f64, |m, v| m.max(*v));
    let tol = 1e-15f64.sqrt() * smax;
    let mut p = Mat::zeros(d, d);
    for (k, sv) in s.singular_values.iter().enumerate() {
        if *sv > tol {
            let c = u.column(k);
            p += c * c.transpose();
        }
    }
    Ok(p)
}

/// The filter's step bound `t'` from `β` (official `f_beta`, sigmoid variant).
pub fn step_bound(beta: f64, upper_bound: usize, artist: bool) -> usize {
    let (t, k) = if artist { (5.5, 3.5) } else { (5.333, 2.5) };
    let sigmoid = 1.0 / (1.0 + (-(2.0 * k * (10.0 * beta - t))).exp());
    (upper_bound as f64 * sigmoid).round_ties_even().max(0.0) as usize
}

/// The token ids of the masked prompts: the prompt once per real token, that token replaced by
/// id 0 (`_masked_encode_prompt`). `ids` is a tokenizer encoding (BOS, tokens, EOS, padding);
/// the text encoder is causal, so the padding after EOS does not change the pooled output.
pub fn masked_ids(encoding: &Encoding) -> Vec<Vec<u32>> {
    let n_t = encoding.n_tokens.saturating_sub(2);
    (0..n_t)
        .map(|i| {
            let mut ids = encoding.ids.clone();
            ids[i + 1] = 0;
            ids
        })
        .collect()
}

/// What SAFREE did to one prompt.
#[derive(Debug, Clone)]
pub struct SafreeProjection {
    /// `[77, d]`: trigger tokens projected, the rest unchanged.
    pub embeds: Mat,
    /// Per real token (positions 1..=n_t): true = kept, false = trigger.
    pub keep: Vec<bool>,
    /// `d_i` per real token.
    pub distances: Vec<f64>,
    /// The filter's `β` (0 for a prompt without tokens).
    pub beta: f64,
}

impl SafreeProjection {
    pub fn triggers(&self) -> Vec<usize> {
        self.keep.iter().enumerate().filter(|(_, k)| !**k).map(|(i, _)| i + 1).collect()
    }
}

/// Steps 1–5 on recorded inputs: `text` `[77, d]` token embeddings of the prompt, `n_tokens` its
/// real tokens with BOS and EOS, `masked_pooled` `[n_t, d]` (one row per masked prompt),
/// `concept_projection` `P_C` `[d, d]`.
pub fn project(
    text: &Mat,
    n_tokens: usize,
    masked_pooled: &Mat,
    concept_projection: &Mat,
    alpha: f64,
) -> Result<SafreeProjection, EraseError> {
    let d = text.ncols();
    let n_t = masked_pooled.nrows();
    if masked_pooled.ncols() != d || concept_projection.shape() != (d, d) || n_t + 2 > text.nrows().max(2) {
        return Err(EraseError::Param(format!(
            "SAFREE: inconsistent shapes (tokens {:?}, masked {:?}, concept projector {:?})",
            text.shape(),
            masked_pooled.shape(),
            concept_projection.shape()
        )));
    }
    if n_t == 0 {
        return Ok(SafreeProjection { embeds: text.clone(), keep: vec![], distances: vec![], beta: 0.0 });
    }
    let i_m_cs = Mat::identity(d, d) - concept_projection;
    let distances: Vec<f64> = (0..n_t).map(|i| (&i_m_cs * masked_pooled.row(i).transpose()).norm()).collect();
    let total: f64 = distances.iter().sum();
    let keep: Vec<bool> = distances
        .iter()
        .map(|&di| {
            let mean_others = if n_t > 1 { (total - di) / (n_t - 1) as f64 } else { f64::NAN };
            di < (1.0 + alpha) * mean_others
        })
        .collect();
    let ms = projection_matrix(&masked_pooled.transpose())?;
    // Every token projected, [77, d] (rows): e ↦ (I − P_C) P_I e.
    let projected = text * (&i_m_cs * &ms).transpose();
    let mut embeds = text.clone();
    for (i, k) in keep.iter().enumerate() {
        if !k {
            embeds.set_row(i + 1, &projected.row(i + 1));
        }
    }
    let n_act = n_tokens.min(text.nrows());
    let cos_sum: f64 = (0..n_act)
        .map(|i| {
            let (a, b) = (projected.row(i), text.row(i));
            a.dot(&b) / (a.norm().max(1e-8) * b.norm().max(1e-8))
        })
        .sum();
    let beta = if n_act > 0 { 1.0 - cos_sum / n_act as f64 } else { 0.0 };
    Ok(SafreeProjection { embeds, keep, distances, beta })
}

/// `P_C` from the keywords' pooled embeddings `[k, d]` (rows).
pub fn concept_projection(keyword_pooled: &Mat) -> Result<Mat, EraseError> {
    projection_matrix(&keyword_pooled.transpose())
}

/// The pooled (EOS) outputs `[n, d]` of token-id sequences, in one batch through the model's text
/// encoder, on the device (`None` for no sequences).
pub fn pooled_tensor_of_ids(model: &StableDiffusion, ids: &[Vec<u32>]) -> Result<Option<Tensor<2>>, EraseError> {
    if ids.is_empty() {
        return Ok(None);
    }
    let n = ids[0].len();
    let flat: Vec<i64> = ids.iter().flat_map(|r| r.iter().map(|&i| i as i64)).collect();
    model.text_encoder.check_ids(&flat)?;
    let t = Tensor::<2, Int>::from_data(TensorData::new(flat, [ids.len(), n]), &model.device);
    Ok(Some(model.text_encoder.forward(t)?.pooler_output))
}

/// [`pooled_tensor_of_ids`] read back synchronously (native).
pub fn pooled_of_ids(model: &StableDiffusion, ids: &[Vec<u32>]) -> Result<Mat, EraseError> {
    let d = model.text_encoder.config().hidden_size;
    let Some(t) = pooled_tensor_of_ids(model, ids)? else {
        return Ok(Mat::zeros(0, d));
    };
    let v = read_f32(&t);
    Ok(Mat::from_fn(ids.len(), d, |r, c| v[r * d + c] as f64))
}

/// SAFREE for one prompt with a loaded model: keywords and masked prompts encoded here, applied
/// to `text` `[77, d]` (the conditional embedding as the run will use it) of `encoding`.
pub fn prepare(
    model: &StableDiffusion,
    encoder: &mut dyn PromptEncoder,
    config: &SafreeConfig,
    text: &Mat,
    encoding: &Encoding,
) -> Result<(SafreeProjection, usize), EraseError> {
    config.check()?;
    let mut rows = vec![];
    for k in config.keywords.iter().filter(|k| !k.trim().is_empty()) {
        rows.push(encoder.encode(k)?.pooled);
    }
    let d = text.ncols();
    let kw = Mat::from_fn(rows.len(), d, |r, c| rows[r][c]);
    let masked = pooled_of_ids(model, &masked_ids(encoding))?;
    prepare_from(config, text, encoding, &kw, &masked)
}

/// SAFREE from encoder outputs computed beforehand: the keywords' pooled rows `[k, d]` and the
/// masked prompts' `[m, d]` ([`masked_ids`] of `encoding`).
pub fn prepare_from(
    config: &SafreeConfig,
    text: &Mat,
    encoding: &Encoding,
    keyword_pooled: &Mat,
    masked_pooled: &Mat,
) -> Result<(SafreeProjection, usize), EraseError> {
    config.check()?;
    let p_c = concept_projection(keyword_pooled)?;
    let out = project(text, encoding.n_tokens, masked_pooled, &p_c, config.alpha)?;
    let bound = step_bound(out.beta, config.upper_bound, config.artist);
    Ok((out, bound))
}

/// Whether step `i` (0-based) uses the projected embedding.
pub fn uses_projection(config: &SafreeConfig, bound: usize, step: usize) -> bool {
    !config.self_validating || step <= bound
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_bound_matches_f_beta() {
        // σ(5(10·0.5333 − 5.333)) = 0.5 → round(5.0) = 5; far below/above → 0 / 10.
        assert_eq!(step_bound(0.5333, 10, false), 5);
        assert_eq!(step_bound(0.0, 10, false), 0);
        assert_eq!(step_bound(1.0, 10, false), 10);
        // At β = 0.5333 the sigmoid is exactly ½: Python rounds 0.5, 1.5, 2.5 to 0, 2, 2.
        assert_eq!([1, 3, 5].map(|up| step_bound(0.5333, up, false)), [0, 2, 2]);
    }

    #[test]
    fn projector_is_idempotent_and_spans_the_columns() {
        let e = Mat::from_row_slice(3, 2, &[1.0, 0.0, 1.0, 1.0, 0.0, 2.0]);
        let p = projection_matrix(&e).unwrap();
        assert!((&p * &p - &p).amax() < 1e-12);
        assert!((&p * &e - &e).amax() < 1e-12);
        assert!((p.trace() - 2.0).abs() < 1e-12);
    }

    #[test]
    fn empty_keywords_are_refused() {
        let e = SafreeConfig::new(SafreeConfig::parse_keywords(" ; ;")).check().unwrap_err().to_string();
        assert!(e.contains("at least one keyword"), "{e}");
    }
}
