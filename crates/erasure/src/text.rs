//! Text-encoder outputs and cross-attention weights as f64 matrices: the inputs of every method.
//!
//! Methods never call the GPU themselves. They ask a [`PromptEncoder`] for token embeddings and
//! take the projection matrices as [`CrossAttn`] values, so the same code runs natively (the
//! [`ModelEncoder`] reads tensors back synchronously) and in the browser (which reads them back
//! asynchronously first and hands over a [`PrecomputedEncoder`]).

use crate::error::EraseError;
use crate::linalg::{Mat, Vector, from_row_major};
use burn::tensor::Tensor;
use diffusion::unet_2d_condition::UNet2DConditionModel;
use pipeline::StableDiffusion;
use pipeline::prompt::encode_prompt;
use std::collections::HashMap;

/// The text encoder's last hidden state for one prompt, as `StableDiffusionPipeline.encode_prompt`
/// gives it (no clip skip).
#[derive(Debug, Clone)]
pub struct TokenEmbeddings {
    /// `[77, d_text]`: BOS, the prompt's tokens, EOS, padding.
    pub embeds: Mat,
    /// `[d_text]`: the pooled (EOS) output.
    pub pooled: Vector,
    pub ids: Vec<u32>,
    /// Real tokens including BOS and EOS (the attention-mask sum).
    pub n_tokens: usize,
}

impl TokenEmbeddings {
    /// Row `i` as a column vector `[d_text]`.
    pub fn token(&self, i: usize) -> Vector {
        self.embeds.row(i).transpose()
    }
    /// The last real token before EOS: `attention_mask.sum() − 2`, as UCE's current code picks it.
    /// For "" this is 0, the BOS position.
    pub fn last_token_index(&self) -> usize {
        self.n_tokens.saturating_sub(2)
    }
    pub fn d_text(&self) -> usize {
        self.embeds.ncols()
    }
}

/// Gives token embeddings for prompts.
pub trait PromptEncoder {
    fn encode(&mut self, prompt: &str) -> Result<TokenEmbeddings, EraseError>;
    /// The tokenizer's ids of a text without BOS/EOS/padding (for token matching).
    fn tokens(&mut self, text: &str) -> Result<Vec<u32>, EraseError> {
        let e = self.encode(text)?;
        Ok(e.ids[1..e.n_tokens.saturating_sub(1).max(1)].to_vec())
    }
}

/// Reads a tensor back as f32 values (native, or a CPU device in the browser).
pub fn read_f32<const D: usize>(t: &Tensor<D>) -> Vec<f32> {
    t.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()
}

/// Encodes prompts with a loaded model, caching results.
pub struct ModelEncoder<'a> {
    pub model: &'a StableDiffusion,
    cache: HashMap<String, TokenEmbeddings>,
}

impl<'a> ModelEncoder<'a> {
    pub fn new(model: &'a StableDiffusion) -> Self {
        Self { model, cache: HashMap::new() }
    }
}

impl PromptEncoder for ModelEncoder<'_> {
    fn encode(&mut self, prompt: &str) -> Result<TokenEmbeddings, EraseError> {
        if let Some(e) = self.cache.get(prompt) {
            return Ok(e.clone());
        }
        let m = self.model;
        let out = encode_prompt(&m.tokenizer, &m.text_encoder, prompt, None, &m.device)?;
        let [_, n, d] = out.embeds.dims();
        let embeds = from_row_major(n, d, &read_f32(&out.embeds));
        let pooled = Vector::from_iterator(d, read_f32(&out.pooled).into_iter().map(f64::from));
        let e = TokenEmbeddings { embeds, pooled, ids: out.encoding.ids.clone(), n_tokens: out.encoding.n_tokens };
        self.cache.insert(prompt.to_owned(), e.clone());
        Ok(e)
    }
    fn tokens(&mut self, text: &str) -> Result<Vec<u32>, EraseError> {
        let e = self.model.tokenizer.encode(text);
        Ok(e.ids[1..e.n_tokens.saturating_sub(1).max(1)].to_vec())
    }
}

/// Embeddings computed beforehand (the browser reads them back asynchronously).
pub struct PrecomputedEncoder(pub HashMap<String, TokenEmbeddings>);

impl PromptEncoder for PrecomputedEncoder {
    fn encode(&mut self, prompt: &str) -> Result<TokenEmbeddings, EraseError> {
        self.0
            .get(prompt)
            .cloned()
            .ok_or_else(|| EraseError::Param(format!("prompt `{prompt}` was not encoded beforehand")))
    }
}

/// Which cross-attention projection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proj {
    Key,
    Value,
}

/// One `attn2.to_k` or `attn2.to_v` of the UNet.
#[derive(Debug, Clone)]
pub struct CrossAttn {
    /// Diffusers module name, e.g. `down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v`.
    pub name: String,
    pub proj: Proj,
    /// `[d_out, d_text]` (PyTorch layout).
    pub weight: Mat,
}

impl CrossAttn {
    /// The tensor name in an edit file.
    pub fn tensor_name(&self) -> String {
        format!("{}.weight", self.name)
    }
}

/// The UNet's cross-attention key/value projections, in module order (down, mid, up; `to_k`
/// before `to_v` within a block), as the official scripts collect them.
pub fn cross_attention(unet: &UNet2DConditionModel, keys: bool, values: bool) -> Vec<CrossAttn> {
    let mut out = vec![];
    unet.for_each_linear(&mut |name, lin| {
        let proj = if name.ends_with("attn2.to_k") && keys {
            Proj::Key
        } else if name.ends_with("attn2.to_v") && values {
            Proj::Value
        } else {
            return;
        };
        let w = lin.weight_torch();
        let [r, c] = w.dims();
        out.push(CrossAttn { name: name.to_owned(), proj, weight: from_row_major(r, c, &read_f32(&w)) });
    });
    out
}
