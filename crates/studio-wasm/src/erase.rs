//! Closed-form erasure (UCE, TIME, RECE, SPEED, MACE's refinement; crate `erasure`) computed on
//! the session's model, the portable half.
//!
//! The methods take token embeddings from a [`PromptEncoder`] and the cross-attention weights as
//! f64 matrices; natively they read tensors back synchronously (`ModelEncoder`), which a browser
//! on WebGPU cannot. Here every tensor is read back with `into_data_async` first: the
//! `attn2.to_k` / `to_v` weights, then the prompts. Which prompts a method needs is not always
//! known beforehand (augmentation templates, SPEED's retain set): the method is run with a
//! recording encoder that answers unknown prompts with a stand-in and notes them; they are
//! encoded and the method runs again, until it asked for nothing new. The final run sees only
//! real embeddings, so the edit equals the native one bit for bit (test `erase_tiny.rs`).
//!
//! The request is [`erasure::request::EraseRequest`], the same type `studio erase` builds from
//! its flags: parsing, defaults and the method dispatch are written once there.

use crate::error::StudioError;
use crate::readback::{cross_attention, encode};
use erasure::linalg::{Mat, Vector};
use erasure::text::{PromptEncoder, TokenEmbeddings};
use erasure::{Edit, EraseError};
use pipeline::model::StableDiffusion;
use std::collections::{BTreeSet, HashMap};

pub use erasure::request::EraseRequest;

/// Real embeddings where known; a stand-in (a fixed, non-degenerate pattern) for the rest, noted
/// in `missing` so that they are encoded before the next run.
struct Recording<'a> {
    model: &'a StableDiffusion,
    known: &'a HashMap<String, TokenEmbeddings>,
    missing: BTreeSet<String>,
}

impl PromptEncoder for Recording<'_> {
    fn encode(&mut self, prompt: &str) -> Result<TokenEmbeddings, EraseError> {
        if let Some(e) = self.known.get(prompt) {
            return Ok(e.clone());
        }
        self.missing.insert(prompt.to_owned());
        let enc = self.model.tokenizer.encode(prompt);
        let d = self.model.text_encoder.config().hidden_size;
        let n = enc.ids.len();
        let embeds = Mat::from_fn(n, d, |i, j| ((i * 31 + j * 17 + 1) as f64).sin());
        Ok(TokenEmbeddings {
            embeds,
            pooled: Vector::from_fn(d, |j, _| ((j + 3) as f64).cos()),
            ids: enc.ids,
            n_tokens: enc.n_tokens,
        })
    }
    fn tokens(&mut self, text: &str) -> Result<Vec<u32>, EraseError> {
        let e = self.model.tokenizer.encode(text);
        Ok(e.ids[1..e.n_tokens.saturating_sub(1).max(1)].to_vec())
    }
}

/// Computes the edit of `req` on `model` (nothing is applied). Every read-back is asynchronous.
pub async fn compute(model: &StableDiffusion, req: &EraseRequest) -> Result<Edit, StudioError> {
    if req.concepts.iter().all(|c| c.trim().is_empty()) {
        return Err(EraseError::NoConcepts.into());
    }
    req.to_config()?;
    let layers = cross_attention(model, req.edits_keys()).await?;
    let mut known: HashMap<String, TokenEmbeddings> = HashMap::new();
    let mut todo: BTreeSet<String> = req.concepts.iter().chain(&req.guides).chain(&req.preserve).cloned().collect();
    todo.insert(String::new());
    // Rounds: encode what is known to be needed, run, repeat with what the run asked for.
    for _ in 0..8 {
        for p in std::mem::take(&mut todo) {
            let e = encode(model, &p).await?;
            known.insert(p, e);
        }
        let mut rec = Recording { model, known: &known, missing: BTreeSet::new() };
        let result = req.run(&mut rec, &layers);
        if rec.missing.is_empty() {
            return Ok(result?);
        }
        todo = rec.missing;
    }
    Err(StudioError::Params("the method kept asking for new prompts; this is a bug, please report it".into()))
}
