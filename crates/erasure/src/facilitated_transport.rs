//! Facilitated Transport (SPM paper, Sec. 3.3): each SPM is let through in proportion to how
//! much the prompt resembles the concepts it erases, so unrelated prompts keep the original
//! model's output.
//!
//! Permeability of an SPM for a prompt (Con6924/SPM `infer_spm.py`, `calculate_matching_score`,
//! default metric `clipcos_tokenuni`):
//!
//! `m = max over the SPM's erased prompts c of max(clipcos(p, c), tokenuni(p, c))` with
//! - `clipcos`: cosine similarity of the flattened `[77, d]` last hidden states of the text
//!   encoder for the prompt and for the concept, each tokenized with padding to 77
//!   (`train_util.encode_prompts`: `text_encoder(tokens)[0]`, no clip skip);
//! - `tokenuni = |T(p) ∩ T(c)| / |T(c)|` where `T(x)` is the *set* of the 77 token ids minus the
//!   tokenizer's special ids (bos, eos, unk, pad: `tokenizer.special_tokens_map`; SD 2.x pads
//!   with `!`, id 0, which is therefore ignored too).
//!
//! The official code divides by `|T(c)|` unguarded (a concept made of special tokens only, e.g.
//! an empty string from a trailing ',', raises there); here `tokenuni` is 0 for such a concept.
//! Cosine as `torch.cosine_similarity` (eps 1e-8), computed in f64 from the f32 embeddings.

use crate::error::EraseError;
use crate::text::{PromptEncoder, TokenEmbeddings};
use pipeline::tokenizer::ClipTokenizer;
use std::collections::BTreeSet;

/// `infer_spm.py` `MATCHING_METRICS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MatchingMetric {
    ClipCos,
    TokenUni,
    /// The official default.
    #[default]
    ClipCosTokenUni,
}

/// The tokenizer's special ids as `special_tokens_map` lists them: bos, eos, pad, unk.
pub fn special_token_ids(tokenizer: &ClipTokenizer) -> BTreeSet<u32> {
    let mut s: BTreeSet<u32> = [tokenizer.bos_id(), tokenizer.eos_id(), tokenizer.pad_id()].into_iter().collect();
    s.extend(tokenizer.unk_id());
    s
}

/// `T(x)`: the distinct ids of all 77 positions minus the special ids.
pub fn token_set(e: &TokenEmbeddings, special: &BTreeSet<u32>) -> BTreeSet<u32> {
    e.ids.iter().copied().filter(|id| !special.contains(id)).collect()
}

/// `torch.cosine_similarity` of two flattened embeddings: `⟨a, b⟩ / sqrt(max(|a|²·|b|², eps²))`.
pub fn cosine_flat(a: &TokenEmbeddings, b: &TokenEmbeddings) -> f64 {
    let (mut ab, mut aa, mut bb) = (0.0, 0.0, 0.0);
    for (x, y) in a.embeds.iter().zip(b.embeds.iter()) {
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    ab / (aa * bb).max(1e-16).sqrt()
}

/// The score of one prompt against one erased concept.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConceptScore {
    pub clipcos: f64,
    pub tokenuni: f64,
    /// What the metric keeps: `max(clipcos, tokenuni)` for `clipcos_tokenuni`.
    pub score: f64,
}

/// The erased concepts of one SPM, encoded once.
#[derive(Debug, Clone)]
pub struct ErasedConcepts {
    pub prompts: Vec<String>,
    embeds: Vec<TokenEmbeddings>,
    tokens: Vec<BTreeSet<u32>>,
}

impl ErasedConcepts {
    pub fn encode(
        prompts: &[String],
        enc: &mut dyn PromptEncoder,
        special: &BTreeSet<u32>,
    ) -> Result<Self, EraseError> {
        let mut embeds = Vec::with_capacity(prompts.len());
        let mut tokens = Vec::with_capacity(prompts.len());
        for p in prompts {
            let e = enc.encode(p)?;
            tokens.push(token_set(&e, special));
            embeds.push(e);
        }
        Ok(Self { prompts: prompts.to_vec(), embeds, tokens })
    }

    /// Scores of `prompt` (already encoded) against each concept, in order.
    pub fn scores(
        &self,
        prompt: &TokenEmbeddings,
        special: &BTreeSet<u32>,
        metric: MatchingMetric,
    ) -> Vec<ConceptScore> {
        let p_tokens = token_set(prompt, special);
        self.embeds
            .iter()
            .zip(&self.tokens)
            .map(|(c, c_tokens)| {
                if c.embeds.shape() != prompt.embeds.shape() {
                    return ConceptScore { clipcos: 0.0, tokenuni: 0.0, score: 0.0 };
                }
                let clipcos = cosine_flat(prompt, c);
                let tokenuni = if c_tokens.is_empty() {
                    0.0
                } else {
                    p_tokens.intersection(c_tokens).count() as f64 / c_tokens.len() as f64
                };
                let score = match metric {
                    MatchingMetric::ClipCos => clipcos,
                    MatchingMetric::TokenUni => tokenuni,
                    MatchingMetric::ClipCosTokenUni => clipcos.max(tokenuni),
                };
                ConceptScore { clipcos, tokenuni, score }
            })
            .collect()
    }

    /// The permeability `m`: the largest score over the concepts (0 with no concepts). Not clamped:
    /// the official code uses the max as it is.
    pub fn permeability(&self, prompt: &TokenEmbeddings, special: &BTreeSet<u32>, metric: MatchingMetric) -> f64 {
        self.scores(prompt, special, metric).iter().map(|s| s.score).reduce(f64::max).unwrap_or(0.0)
    }
}
