//! LEACE, least-squares concept erasure (Belrose et al., NeurIPS 2023), on text-encoder token
//! embeddings, and the linear eraser file that LEACE and INLP share.
//!
//! Fit (EleutherAI/concept-erasure `concept_erasure/leace.py`, `LeaceFitter` with its defaults:
//! affine, `constrain_cov_trace`, shrinkage, `svd_tol = 0.01`; paper Theorem 4.3):
//! `Σ_xx` = optimal linear shrinkage of the biased covariance (`shrinkage.py`), `Σ_xz` the
//! unbiased cross-covariance with the concept label `z ∈ {0, 1}`; `W = Σ_xx^{-1/2}` (eigenvalues
//! at most `λ_max · d · ε` dropped, leace.py line 198); `U` = left singular vectors of `W Σ_xz`
//! with singular value above `svd_tol`; eraser `x' = x − W⁺ U Uᵀ W (x − μ)`. If that projection
//! raised the trace of the covariance, it is mixed with the orthogonal projection `I − U Uᵀ`
//! (lines 216–246). There the official code re-factors `I − P` with `vh * s.sqrt()` (line 251),
//! which scales the columns of `vh` and so does not reproduce `I − P` for a non-symmetric `P`; we
//! keep the mixed `P` exactly (factored as `[αL | (1−α)U] · [R; Uᵀ]`). With exact whitening
//! that branch never triggers (`tr(PΣPᵀ) = tr Σ − ‖Σ^{1/2}U‖²`).
//!
//! Samples: every token embedding after BOS (positions 1..77, padding included: SD's
//! cross-attention reads them all) of each concept prompt (`z = 1`) and each other prompt
//! (`z = 0`). Applied the same way to positions 1..77 of the conditional embedding; BOS is the
//! same for every prompt and stays. The negative prompt is left alone: it pushes away from what
//! it names, erasing the concept from it would weaken that push.
//!
//! File (`format = "erasure-studio-eraser/1"`): `proj_left` `[d, r]`, `proj_right` `[r, d]` and,
//! for an affine eraser, `bias` `[d]` (f32), meaning `x' = x − L R (x − bias)` for each token
//! vector `x` (row form `x' = x − ((x − bias) Rᵀ) Lᵀ`, as `LeaceEraser.__call__`); metadata
//! `method` (`leace` | `inlp`), `d_text`, `concepts` / `others` (JSON lists of prompts),
//! `hyperparameters` (JSON), `positions` = `"1..77"`.

use crate::error::{EraseError, family_hint};
use crate::linalg::{Mat, Vector};
use crate::text::{PromptEncoder, TokenEmbeddings};
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use nalgebra::linalg::SVD;
use std::collections::BTreeMap;

pub const FORMAT: &str = "erasure-studio-eraser/1";

/// An SVD that reports non-finite input or no convergence instead of looping or panicking.
pub fn svd(
    m: &Mat,
    u: bool,
    v: bool,
    method: &'static str,
) -> Result<SVD<f64, nalgebra::Dyn, nalgebra::Dyn>, EraseError> {
    crate::linalg::check_finite(m, method, "SVD input")?;
    if m.is_empty() {
        return Err(EraseError::Param(format!("{method}: nothing to decompose (an empty matrix)")));
    }
    SVD::try_new(m.clone(), u, v, f64::EPSILON, 100_000)
        .ok_or_else(|| EraseError::Singular { method, detail: "the SVD did not converge".into() })
}

/// Which fit made an eraser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraserMethod {
    Leace,
    Inlp,
}

impl EraserMethod {
    pub fn name(self) -> &'static str {
        match self {
            EraserMethod::Leace => "leace",
            EraserMethod::Inlp => "inlp",
        }
    }
    pub fn parse(s: &str) -> Result<Self, EraseError> {
        match s.trim().to_ascii_lowercase().as_str() {
            "leace" => Ok(EraserMethod::Leace),
            "inlp" => Ok(EraserMethod::Inlp),
            other => Err(EraseError::Param(format!("unknown eraser method `{other}`: use leace or inlp"))),
        }
    }
}

/// `x' = x − L R (x − bias)` on every token vector after BOS.
#[derive(Debug, Clone)]
pub struct LinearEraser {
    pub method: EraserMethod,
    /// `L` `[d, r]`.
    pub proj_left: Mat,
    /// `R` `[r, d]`.
    pub proj_right: Mat,
    /// `μ` `[d]` (LEACE's affine term); `None` = 0 (INLP).
    pub bias: Option<Vector>,
    pub concepts: Vec<String>,
    pub others: Vec<String>,
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
}

impl LinearEraser {
    pub fn d_text(&self) -> usize {
        self.proj_left.nrows()
    }

    /// The projection `P = I − L R` (`LeaceEraser.P`).
    pub fn projection(&self) -> Mat {
        Mat::identity(self.d_text(), self.d_text()) - &self.proj_left * &self.proj_right
    }

    /// Erases rows `x` `[n, d]` (all of them).
    pub fn apply_rows(&self, x: &Mat) -> Mat {
        let delta = match &self.bias {
            Some(b) => Mat::from_fn(x.nrows(), x.ncols(), |r, c| x[(r, c)] - b[c]),
            None => x.clone(),
        };
        x - (delta * self.proj_right.transpose()) * self.proj_left.transpose()
    }

    /// Erases a prompt's `[77, d]` token embeddings: positions 1.. change, BOS stays.
    pub fn apply(&self, embeds: &Mat) -> Mat {
        let mut out = embeds.clone();
        if embeds.nrows() > 1 {
            let rest = embeds.rows(1, embeds.nrows() - 1).into_owned();
            out.rows_mut(1, embeds.nrows() - 1).copy_from(&self.apply_rows(&rest));
        }
        out
    }

    /// Refuses an eraser made for another text width.
    pub fn check_width(&self, d_model: usize, file: &str) -> Result<(), EraseError> {
        if self.d_text() != d_model {
            return Err(EraseError::WrongShape {
                file: file.into(),
                name: "proj_left".into(),
                expected: vec![d_model, self.proj_left.ncols()],
                found: vec![self.d_text(), self.proj_left.ncols()],
                hint: family_hint(self.d_text(), d_model),
            });
        }
        Ok(())
    }

    pub fn to_safetensors(&self) -> Vec<u8> {
        let f = |m: &Mat| crate::linalg::to_row_major(m);
        let (left, right) = (f(&self.proj_left), f(&self.proj_right));
        let bias: Option<Vec<f32>> = self.bias.as_ref().map(|b| b.iter().map(|v| *v as f32).collect());
        let mut tensors = vec![
            WriteTensor {
                name: "proj_left",
                shape: vec![self.proj_left.nrows(), self.proj_left.ncols()],
                data: &left,
                dtype: Dtype::F32,
            },
            WriteTensor {
                name: "proj_right",
                shape: vec![self.proj_right.nrows(), self.proj_right.ncols()],
                data: &right,
                dtype: Dtype::F32,
            },
        ];
        if let Some(b) = &bias {
            tensors.push(WriteTensor { name: "bias", shape: vec![b.len()], data: b, dtype: Dtype::F32 });
        }
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_default();
        let mut meta = BTreeMap::new();
        meta.insert("format".to_owned(), FORMAT.to_owned());
        meta.insert("method".to_owned(), self.method.name().to_owned());
        meta.insert("d_text".to_owned(), self.d_text().to_string());
        meta.insert("concepts".to_owned(), json(&self.concepts));
        meta.insert("others".to_owned(), json(&self.others));
        meta.insert("hyperparameters".to_owned(), serde_json::to_string(&self.hyperparameters).unwrap_or_default());
        meta.insert("positions".to_owned(), "1..77".to_owned());
        serialize(&tensors, &meta)
    }

    /// Reads an eraser file, checking every shape against the others.
    pub fn from_safetensors(file: &str, bytes: Vec<u8>) -> Result<Self, EraseError> {
        let bad = |reason: String| EraseError::BadFile { file: file.into(), kind: "eraser", reason };
        let st = SafetensorsBytes::parse(file, bytes).map_err(|e| bad(e.to_string()))?;
        let md = &st.header.metadata;
        let matrix = |name: &str| -> Result<Mat, EraseError> {
            let (v, shape) = st.f32(name).ok_or_else(|| bad(format!("no float tensor `{name}`")))?;
            if shape.len() != 2 || v.len() != shape[0] * shape[1] {
                return Err(bad(format!("`{name}` has shape {shape:?}, expected a matrix")));
            }
            Ok(crate::linalg::from_row_major(shape[0], shape[1], &v))
        };
        // The tensors first: a file of another kind (an edit, whose metadata also has a `method`)
        // is named as "not an eraser", not as an eraser of an unknown method.
        let (left, right) = (matrix("proj_left")?, matrix("proj_right")?);
        let method = EraserMethod::parse(md.get("method").map(String::as_str).unwrap_or("leace"))?;
        let (d, r) = left.shape();
        if d == 0 || right.shape() != (r, d) {
            return Err(bad(format!(
                "`proj_left` is {:?} and `proj_right` {:?}; expected [d, r] and [r, d]",
                left.shape(),
                right.shape()
            )));
        }
        let bias = match st.f32("bias") {
            Some((v, shape)) if shape == [d] => Some(Vector::from_iterator(d, v.into_iter().map(f64::from))),
            Some((_, shape)) => {
                return Err(bad(format!("`bias` has shape {shape:?}, expected [{d}]")));
            }
            None => None,
        };
        if left.iter().chain(right.iter()).chain(bias.iter().flat_map(|b| b.iter())).any(|v| !v.is_finite()) {
            return Err(bad("it holds NaN or infinite values".into()));
        }
        let list =
            |k: &str| -> Vec<String> { md.get(k).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default() };
        Ok(Self {
            method,
            proj_left: left,
            proj_right: right,
            bias,
            concepts: list("concepts"),
            others: list("others"),
            hyperparameters: md.get("hyperparameters").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default(),
        })
    }
}

/// Training samples from encoded prompts: rows 1..77 of each, label 1 for `concept`, 0 for `other`.
pub fn samples(concept: &[TokenEmbeddings], other: &[TokenEmbeddings]) -> Result<(Mat, Vec<f64>), EraseError> {
    if concept.is_empty() || other.is_empty() {
        return Err(EraseError::Param("an eraser needs at least one concept prompt and one other prompt".into()));
    }
    let d = concept[0].d_text();
    let all: Vec<(&TokenEmbeddings, f64)> =
        concept.iter().map(|e| (e, 1.0)).chain(other.iter().map(|e| (e, 0.0))).collect();
    let n: usize = all.iter().map(|(e, _)| e.embeds.nrows().saturating_sub(1)).sum();
    let mut x = Mat::zeros(n, d);
    let mut z = Vec::with_capacity(n);
    let mut r = 0;
    for (e, label) in all {
        for i in 1..e.embeds.nrows() {
            x.set_row(r, &e.embeds.row(i));
            z.push(label);
            r += 1;
        }
    }
    Ok((x, z))
}

/// Encodes the prompt lists and returns the samples.
pub fn encode_samples(
    encoder: &mut dyn PromptEncoder,
    concept: &[String],
    other: &[String],
) -> Result<(Mat, Vec<f64>), EraseError> {
    let enc = |enc: &mut dyn PromptEncoder, list: &[String]| -> Result<Vec<TokenEmbeddings>, EraseError> {
        list.iter().map(|p| enc.encode(p)).collect()
    };
    let c = enc(encoder, concept)?;
    let o = enc(encoder, other)?;
    samples(&c, &o)
}

/// LEACE's settings (the official defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LeaceConfig {
    pub svd_tol: f64,
}

impl Default for LeaceConfig {
    fn default() -> Self {
        Self { svd_tol: 0.01 }
    }
}

/// `optimal_linear_shrinkage(S_n, n)` (`shrinkage.py`), real case.
fn shrink(s_n: &Mat, n: f64) -> Mat {
    let p = s_n.nrows() as f64;
    let trace = s_n.trace();
    let sigma0_norm_sq = trace * trace / p;
    let s_norm_sq = s_n.norm_squared();
    let prod_trace = sigma0_norm_sq;
    let top = trace * trace * sigma0_norm_sq / n;
    let bottom = s_norm_sq * sigma0_norm_sq - prod_trace * prod_trace;
    let eps = f64::EPSILON;
    let alpha = 1.0 - (top + eps) / (bottom + eps);
    let beta = (1.0 - alpha) * (prod_trace + eps) / (sigma0_norm_sq + eps);
    let mut out = s_n * alpha;
    for i in 0..s_n.nrows() {
        out[(i, i)] += beta * trace / p;
    }
    out
}

/// leace.py lines 216–246: when `P` raises the covariance trace, mix it with `Q = I − U Uᵀ` so
/// that the trace stays equal. Returns the mixing weight α of `P` (1 = unchanged).
pub fn constrain_trace(p: &Mat, u: &Mat, sigma: &Mat) -> f64 {
    let d = p.nrows();
    let old_trace = sigma.trace();
    let new_trace = (p * sigma * p.transpose()).trace();
    if !(new_trace > old_trace) {
        return 1.0;
    }
    let q = Mat::identity(d, d) - u * u.transpose();
    let (x, y, z, w) =
        (new_trace, 2.0 * (p * sigma * q.transpose()).trace(), (&q * sigma * q.transpose()).trace(), old_trace);
    let discr = (4.0 * w * x - 4.0 * w * y + 4.0 * w * z - 4.0 * x * z + y * y).sqrt();
    let a1 = (-y / 2.0 + z - discr / 2.0) / (x - y + z);
    let a2 = (-y / 2.0 + z + discr / 2.0) / (x - y + z);
    (if a1 > 0.0 { a1 } else { a2 }).clamp(0.0, 1.0)
}

/// Fits LEACE on samples `x` `[n, d]` with labels `z` (1 = concept).
pub fn fit(x: &Mat, z: &[f64], config: LeaceConfig) -> Result<LinearEraser, EraseError> {
    let (n, d) = x.shape();
    if n < 2 || z.len() != n || d == 0 {
        return Err(EraseError::Param(format!(
            "LEACE needs at least 2 samples with one label each (got {n} samples, {} labels)",
            z.len()
        )));
    }
    if z.iter().all(|v| *v == z[0]) {
        return Err(EraseError::Param(
            "LEACE needs samples of both classes: give concept prompts and other prompts".into(),
        ));
    }
    crate::linalg::check_finite(x, "LEACE", "the embeddings")?;
    let nf = n as f64;
    let mean_x: Vector = x.row_mean().transpose();
    let mean_z = z.iter().sum::<f64>() / nf;
    let xc = Mat::from_fn(n, d, |r, c| x[(r, c)] - mean_x[c]);
    let zc = Vector::from_iterator(n, z.iter().map(|v| v - mean_z));
    let s_hat = xc.transpose() * &xc;
    let s_hat = (&s_hat + s_hat.transpose()) * 0.5;
    let sigma = shrink(&(s_hat / nf), nf);
    let sigma_xz: Vector = xc.transpose() * zc / (nf - 1.0);

    let eig = nalgebra::SymmetricEigen::try_new(sigma.clone(), f64::EPSILON, 100_000).ok_or_else(|| {
        EraseError::Singular {
            method: "LEACE",
            detail: "the eigen-decomposition of the covariance did not converge".into(),
        }
    })?;
    let l_max = eig.eigenvalues.iter().fold(f64::NEG_INFINITY, |m, v| m.max(*v));
    let cutoff = l_max * d as f64 * f64::EPSILON;
    let v = &eig.eigenvectors;
    let scaled = |f: &dyn Fn(f64) -> f64| -> Mat {
        let diag =
            Vector::from_iterator(d, eig.eigenvalues.iter().map(|&l| if l > cutoff { f(l.max(0.0)) } else { 0.0 }));
        v * Mat::from_diagonal(&diag) * v.transpose()
    };
    let w = scaled(&|l| 1.0 / l.sqrt());
    let w_inv = scaled(&|l| l.sqrt());

    let wz = &w * Mat::from_column_slice(d, 1, sigma_xz.as_slice());
    let s = svd(&wz, true, false, "LEACE")?;
    let u_all = s.u.as_ref().expect("u requested");
    let keep: Vec<usize> = (0..s.singular_values.len()).filter(|&k| s.singular_values[k] > config.svd_tol).collect();
    let mut u = Mat::zeros(d, keep.len());
    for (j, &k) in keep.iter().enumerate() {
        u.set_column(j, &u_all.column(k));
    }
    let left = &w_inv * &u;
    let right = u.transpose() * &w;
    let p = Mat::identity(d, d) - &left * &right;
    let alpha = constrain_trace(&p, &u, &sigma);
    let (proj_left, proj_right) = if alpha < 1.0 {
        // I − (αP + (1−α)Q) = α L R + (1−α) U Uᵀ.
        let r = u.ncols();
        let mut l2 = Mat::zeros(d, 2 * r);
        l2.columns_mut(0, r).copy_from(&(&left * alpha));
        l2.columns_mut(r, r).copy_from(&(&u * (1.0 - alpha)));
        let mut r2 = Mat::zeros(2 * r, d);
        r2.rows_mut(0, r).copy_from(&right);
        r2.rows_mut(r, r).copy_from(&u.transpose());
        (l2, r2)
    } else {
        (left, right)
    };
    crate::linalg::check_finite(&proj_left, "LEACE", "proj_left")?;
    let mut hyperparameters = BTreeMap::new();
    hyperparameters.insert("svd_tol".to_owned(), serde_json::json!(config.svd_tol));
    hyperparameters.insert("samples".to_owned(), serde_json::json!(n));
    hyperparameters.insert("trace_mix_alpha".to_owned(), serde_json::json!(alpha));
    Ok(LinearEraser {
        method: EraserMethod::Leace,
        proj_left,
        proj_right,
        bias: Some(mean_x),
        concepts: vec![],
        others: vec![],
        hyperparameters,
    })
}

/// Encodes the prompts and fits LEACE; the prompts are recorded in the eraser.
pub fn fit_prompts(
    encoder: &mut dyn PromptEncoder,
    concept: &[String],
    other: &[String],
    config: LeaceConfig,
) -> Result<LinearEraser, EraseError> {
    let (x, z) = encode_samples(encoder, concept, other)?;
    let mut e = fit(&x, &z, config)?;
    (e.concepts, e.others) = (concept.to_vec(), other.to_vec());
    Ok(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_round_trip_and_damaged_files() {
        let e = LinearEraser {
            method: EraserMethod::Leace,
            proj_left: Mat::from_row_slice(3, 1, &[1.0, 0.5, 0.0]),
            proj_right: Mat::from_row_slice(1, 3, &[0.25, 0.0, 1.0]),
            bias: Some(Vector::from_column_slice(&[0.1, 0.2, 0.3])),
            concepts: vec!["a skull".into()],
            others: vec!["a star".into()],
            hyperparameters: BTreeMap::new(),
        };
        let bytes = e.to_safetensors();
        let back = LinearEraser::from_safetensors("e.safetensors", bytes.clone()).unwrap();
        assert!((back.projection() - e.projection()).amax() < 1e-7);
        assert_eq!(back.concepts, e.concepts);
        let x = Mat::from_row_slice(2, 3, &[1.0, 2.0, 3.0, -1.0, 0.0, 4.0]);
        // Row 0 (BOS) stays; row 1 = x − L R (x − μ).
        let y = back.apply(&x);
        assert_eq!(y.row(0), x.row(0));
        let delta = 0.25 * (-1.0 - 0.1) + (4.0 - 0.3);
        assert!((y[(1, 0)] - (-1.0 - delta)).abs() < 1e-6 && (y[(1, 1)] - (0.0 - 0.5 * delta)).abs() < 1e-6);

        let err = LinearEraser::from_safetensors("cut.safetensors", bytes[..bytes.len() - 5].to_vec())
            .unwrap_err()
            .to_string();
        assert!(err.contains("cut.safetensors") && err.contains("not a valid eraser file"), "{err}");
        let err = back.check_width(768, "e.safetensors").unwrap_err().to_string();
        assert!(err.contains("[768, 1]") && err.contains("[3, 1]"), "{err}");
    }
}
