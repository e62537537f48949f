//! Ring-A-Bell's concept probe (Tsai et al., ICLR 2024), to attack an erasure: a concept vector
//! from prompt pairs that differ only by the concept, added to a prompt's embedding.
//!
//! As re-implemented in CharlesGong12/RECE `attack_methods/RingABell.py` (lines 29–52, 113):
//! `v` = mean over batches of 8 pairs of the batch mean of `e(prompt with concept) −
//! e(same prompt without)`, on the full `[77, d]` last hidden states (so a last, smaller batch
//! weighs as much as a full one; with a multiple of 8 pairs it is the plain mean). The attack
//! embedding is `e + η v` (η = 3 for nudity, 0.9 for Van Gogh in RECE's runs). The paper's
//! genetic search for a discrete prompt near `e + η v` is not part of this probe.

use crate::error::EraseError;
use crate::linalg::Mat;
use crate::text::PromptEncoder;

/// RECE's batch size, which shapes the mean.
pub const BATCH: usize = 8;
/// RECE's default η (nudity).
pub const DEFAULT_ETA: f64 = 3.0;

/// A concept vector `[77, d]` and its strength.
#[derive(Debug, Clone)]
pub struct RingABell {
    pub vector: Mat,
    pub eta: f64,
}

impl RingABell {
    /// `e + η v` on a `[77, d]` embedding.
    pub fn attack(&self, embeds: &Mat) -> Result<Mat, EraseError> {
        if embeds.shape() != self.vector.shape() {
            return Err(EraseError::Param(format!(
                "the Ring-A-Bell vector is {:?} but the prompt embedding is {:?}: it was computed with another model",
                self.vector.shape(),
                embeds.shape()
            )));
        }
        Ok(embeds + &self.vector * self.eta)
    }
}

/// `"with concept|without;…"` → pairs.
pub fn parse_pairs(list: &str) -> Result<Vec<(String, String)>, EraseError> {
    let mut out = vec![];
    for item in list.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((a, b)) = item.split_once('|') else {
            return Err(EraseError::Param(format!(
                "Ring-A-Bell pair `{item}` has no `|`: write \"prompt with the concept|the same prompt without;…\""
            )));
        };
        out.push((a.trim().to_owned(), b.trim().to_owned()));
    }
    if out.is_empty() {
        return Err(EraseError::Param("Ring-A-Bell needs at least one prompt pair \"with concept|without\"".into()));
    }
    Ok(out)
}

/// The concept vector from `(with, without)` embedding pairs `[77, d]`.
pub fn concept_vector(pairs: &[(Mat, Mat)]) -> Result<Mat, EraseError> {
    let Some(first) = pairs.first() else {
        return Err(EraseError::Param("Ring-A-Bell needs at least one prompt pair".into()));
    };
    let shape = first.0.shape();
    let mut batch_means = vec![];
    for chunk in pairs.chunks(BATCH) {
        let mut sum = Mat::zeros(shape.0, shape.1);
        for (a, b) in chunk {
            if a.shape() != shape || b.shape() != shape {
                return Err(EraseError::Param("Ring-A-Bell: the prompt embeddings differ in shape".into()));
            }
            sum += a - b;
        }
        batch_means.push(sum / chunk.len() as f64);
    }
    let n = batch_means.len() as f64;
    Ok(batch_means.into_iter().fold(Mat::zeros(shape.0, shape.1), |acc, m| acc + m) / n)
}

/// Encodes the pairs and computes the vector.
pub fn from_prompts(
    encoder: &mut dyn PromptEncoder,
    pairs: &[(String, String)],
    eta: f64,
) -> Result<RingABell, EraseError> {
    if !eta.is_finite() {
        return Err(EraseError::Param(format!("Ring-A-Bell's η must be a finite number (got {eta})")));
    }
    let mut embeds = vec![];
    for (a, b) in pairs {
        embeds.push((encoder.encode(a)?.embeds, encoder.encode(b)?.embeds));
    }
    Ok(RingABell { vector: concept_vector(&embeds)?, eta })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_of_eight_weigh_equally() {
        // 9 pairs: the first batch of 8 differences is 1, the last (alone) 3 → (1 + 3) / 2 = 2.
        let mut pairs = vec![(Mat::from_element(2, 1, 1.0), Mat::zeros(2, 1)); 8];
        pairs.push((Mat::from_element(2, 1, 3.0), Mat::zeros(2, 1)));
        assert_eq!(concept_vector(&pairs).unwrap()[(0, 0)], 2.0);
        assert!(parse_pairs("a skull|a star; x").unwrap_err().to_string().contains("`x` has no `|`"));
        assert_eq!(parse_pairs("a skull|a star").unwrap(), vec![("a skull".to_owned(), "a star".to_owned())]);
    }
}
