//! INLP, iterative nullspace projection (Ravfogel et al., ACL 2020), on text-encoder token
//! embeddings: train a linear classifier for the concept, project its direction out, repeat.
//!
//! Follows shauli-ravfogel/nullspace_projection `src/debias.py` `get_debiasing_projection` with
//! `is_autoregressive = True`, no dropout, `by_class = False`: classifier `i` is trained on the
//! data projected onto the intersection of the nullspaces of classifiers `1..i−1` (line 136);
//! a classifier whose accuracy is below `min_accuracy` is not used (line 117; our classifier is
//! deterministic, so every later one would be the same and we stop there); the final projection
//! is `P = I − P_R(w₁ + … + wₙ)` by Ben-Israel's formula (lines 27–41), i.e. the orthogonal
//! projection onto the complement of `span{wᵢ}`. No bias: `x' = P x`.
//!
//! The official code takes any sklearn classifier (SGD, SVM, logistic regression). We use one with
//! a closed form, sklearn's `RidgeClassifier(alpha)`: labels ±1, intercept by centring,
//! `w = (X̃ᵀX̃ + αI)⁻¹ X̃ᵀ ỹ`, prediction `xᵀw + b > 0`. Accuracy is measured on the training
//! samples themselves. Samples and application are those of [`crate::leace`] (positions 1..77).

use crate::error::EraseError;
use crate::leace::{EraserMethod, LinearEraser, encode_samples, svd};
use crate::linalg::{Mat, Vector, solve_left};
use crate::text::PromptEncoder;
use std::collections::BTreeMap;

/// INLP's settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InlpConfig {
    /// Classifiers to train at most (directions removed).
    pub iterations: usize,
    /// Stop when a classifier's training accuracy falls below this.
    pub min_accuracy: f64,
    /// Ridge penalty of the classifier (sklearn's default 1.0).
    pub ridge_alpha: f64,
}

impl Default for InlpConfig {
    fn default() -> Self {
        Self { iterations: 10, min_accuracy: 0.55, ridge_alpha: 1.0 }
    }
}

/// What the fit saw.
#[derive(Debug, Clone, PartialEq)]
pub struct InlpReport {
    /// Training accuracy of each classifier trained, in order.
    pub accuracies: Vec<f64>,
    /// Directions removed.
    pub directions: usize,
}

/// `RidgeClassifier(alpha).fit(x, y)` for `y ∈ {−1, +1}`: `(w, b)`.
fn ridge(x: &Mat, y: &Vector, alpha: f64) -> Result<(Vector, f64), EraseError> {
    let (n, d) = x.shape();
    let mx: Vector = x.row_mean().transpose();
    let my = y.mean();
    let xc = Mat::from_fn(n, d, |r, c| x[(r, c)] - mx[c]);
    let yc = y.add_scalar(-my);
    let a = xc.transpose() * &xc + Mat::identity(d, d) * alpha;
    let rhs = xc.transpose() * yc;
    let w = solve_left(&a, &Mat::from_column_slice(d, 1, rhs.as_slice()), "INLP")?.column(0).into_owned();
    let b = my - mx.dot(&w);
    Ok((w, b))
}

/// Orthonormal basis `[d, r]` of the span of `vectors` (scipy's `orth`: SVD, rank where
/// `s > s_max · max(d, n) · ε`).
fn orth(vectors: &[Vector], d: usize) -> Result<Mat, EraseError> {
    if vectors.is_empty() {
        return Ok(Mat::zeros(d, 0));
    }
    let m = crate::linalg::columns(vectors, d);
    let s = svd(&m, true, false, "INLP")?;
    let u = s.u.as_ref().expect("u requested");
    let smax = s.singular_values.iter().fold(0.0f64, |a, v| a.max(*v));
    let tol = smax * d.max(vectors.len()) as f64 * f64::EPSILON;
    let keep: Vec<usize> = (0..s.singular_values.len()).filter(|&k| s.singular_values[k] > tol).collect();
    let mut b = Mat::zeros(d, keep.len());
    for (j, &k) in keep.iter().enumerate() {
        b.set_column(j, &u.column(k));
    }
    Ok(b)
}

/// Fits INLP on samples `x` `[n, d]` with labels `z` (1 = concept).
pub fn fit(x: &Mat, z: &[f64], config: InlpConfig) -> Result<(LinearEraser, InlpReport), EraseError> {
    let (n, d) = x.shape();
    if n < 2 || z.len() != n || d == 0 {
        return Err(EraseError::Param(format!(
            "INLP needs at least 2 samples with one label each (got {n} samples, {} labels)",
            z.len()
        )));
    }
    if z.iter().all(|v| *v == z[0]) {
        return Err(EraseError::Param(
            "INLP needs samples of both classes: give concept prompts and other prompts".into(),
        ));
    }
    if !(config.ridge_alpha > 0.0) || !config.min_accuracy.is_finite() {
        return Err(EraseError::Param("INLP: the ridge penalty must be positive and the accuracy bound finite".into()));
    }
    crate::linalg::check_finite(x, "INLP", "the embeddings")?;
    let y = Vector::from_iterator(n, z.iter().map(|v| if *v > 0.5 { 1.0 } else { -1.0 }));
    let mut directions: Vec<Vector> = vec![];
    let mut accuracies = vec![];
    let mut xp = x.clone();
    let mut basis = Mat::zeros(d, 0);
    for _ in 0..config.iterations {
        let (w, b) = ridge(&xp, &y, config.ridge_alpha)?;
        let scores = &xp * &w;
        let correct = (0..n).filter(|&i| (scores[i] + b > 0.0) == (y[i] > 0.0)).count();
        let acc = correct as f64 / n as f64;
        accuracies.push(acc);
        if acc < config.min_accuracy {
            break;
        }
        directions.push(w);
        basis = orth(&directions, d)?;
        // X P with P = I − B Bᵀ (symmetric).
        xp = x - (x * &basis) * basis.transpose();
    }
    let report = InlpReport { accuracies, directions: directions.len() };
    let mut hyperparameters = BTreeMap::new();
    hyperparameters.insert("iterations".to_owned(), serde_json::json!(config.iterations));
    hyperparameters.insert("min_accuracy".to_owned(), serde_json::json!(config.min_accuracy));
    hyperparameters.insert("ridge_alpha".to_owned(), serde_json::json!(config.ridge_alpha));
    hyperparameters.insert("directions".to_owned(), serde_json::json!(report.directions));
    hyperparameters.insert("accuracies".to_owned(), serde_json::json!(report.accuracies));
    let eraser = LinearEraser {
        method: EraserMethod::Inlp,
        proj_left: basis.clone(),
        proj_right: basis.transpose(),
        bias: None,
        concepts: vec![],
        others: vec![],
        hyperparameters,
    };
    Ok((eraser, report))
}

/// Encodes the prompts and fits INLP; the prompts are recorded in the eraser.
pub fn fit_prompts(
    encoder: &mut dyn PromptEncoder,
    concept: &[String],
    other: &[String],
    config: InlpConfig,
) -> Result<(LinearEraser, InlpReport), EraseError> {
    let (x, z) = encode_samples(encoder, concept, other)?;
    let (mut e, report) = fit(&x, &z, config)?;
    (e.concepts, e.others) = (concept.to_vec(), other.to_vec());
    Ok((e, report))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_a_separating_direction() {
        // Two classes that differ only along axis 0.
        let x = Mat::from_row_slice(4, 2, &[1.0, 0.3, 1.2, -0.2, -1.0, 0.1, -0.9, -0.4]);
        let z = [1.0, 1.0, 0.0, 0.0];
        let (e, report) = fit(&x, &z, InlpConfig { iterations: 1, ..Default::default() }).unwrap();
        assert_eq!(report.accuracies, vec![1.0]);
        let y = e.apply_rows(&x);
        // The removed direction is the ridge solution; the classes' means now coincide along it.
        let w = e.proj_left.column(0).into_owned();
        for r in 0..4 {
            assert!(y.row(r).transpose().dot(&w).abs() < 1e-12);
        }
    }
}
