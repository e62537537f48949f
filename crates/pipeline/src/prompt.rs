//! Prompt encoding as diffusers' `StableDiffusionPipeline.encode_prompt` does it:
//! tokenize to 77 tokens with padding and truncation, run the text encoder, take the last
//! hidden state (after `final_layer_norm`), or with `clip_skip = k` the hidden state `k` layers
//! before the last, passed through `final_layer_norm`.

use crate::tokenizer::{ClipTokenizer, Encoding};
use burn::tensor::{Device, Int, Tensor, TensorData};
use diffusion::clip::CLIPTextModel;
use diffusion::error::LoadError;

/// One encoded prompt.
pub struct EncodedPrompt {
    /// `[1, 77, d_text]`.
    pub embeds: Tensor<3>,
    /// `[1, d_text]`, the EOS-token state (SAFREE, FT permeability use it).
    pub pooled: Tensor<2>,
    pub encoding: Encoding,
}

pub fn token_ids(encoding: &Encoding, device: &Device) -> Tensor<2, Int> {
    let ids: Vec<i64> = encoding.ids.iter().map(|&i| i as i64).collect();
    let n = ids.len();
    Tensor::from_data(TensorData::new(ids, [1, n]), device)
}

/// Encodes `text`; `clip_skip` as in diffusers (None or 0 = last layer).
pub fn encode_prompt(
    tokenizer: &ClipTokenizer,
    text_encoder: &CLIPTextModel,
    text: &str,
    clip_skip: Option<usize>,
    device: &Device,
) -> Result<EncodedPrompt, LoadError> {
    let encoding = tokenizer.encode(text);
    text_encoder.check_ids(&encoding.ids)?;
    let ids = token_ids(&encoding, device);
    match clip_skip {
        Some(k) if k > 0 => {
            // One pass for every hidden state; the pooled row is taken from the last layer's
            // normed output as without clip skip.
            let hidden = text_encoder.forward_hidden_states(ids.clone())?;
            let layers = hidden.len() - 1;
            if k >= layers {
                return Err(LoadError::Unsupported(format!(
                    "clip skip {k} must be less than the text encoder's {layers} layers"
                )));
            }
            let last = text_encoder.final_layer_norm(hidden[layers].clone());
            let pooled = text_encoder.pool(last, ids);
            let embeds = text_encoder.final_layer_norm(hidden[layers - k].clone());
            Ok(EncodedPrompt { embeds, pooled, encoding })
        }
        _ => {
            let out = text_encoder.forward(ids)?;
            Ok(EncodedPrompt { embeds: out.last_hidden_state, pooled: out.pooler_output, encoding })
        }
    }
}
