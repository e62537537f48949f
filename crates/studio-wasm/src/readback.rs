//! Asynchronous read-backs: a browser on WebGPU cannot read a tensor synchronously, so every
//! value the studio needs on the CPU (embeddings, cross-attention weights, images, fingerprints)
//! comes back through `into_data_async` here. Natively the same code runs on burn's ndarray
//! backend (the tests), where the futures are ready at once.

use crate::error::{StudioError, readback_err};
use burn::tensor::Tensor;
use erasure::linalg::{Vector, from_row_major};
use erasure::text::{CrossAttn, PrecomputedEncoder, Proj, TokenEmbeddings};
use pipeline::model::StableDiffusion;
use std::collections::HashMap;

/// A tensor's values as f32 (converted from the device's dtype), read back asynchronously.
pub async fn to_f32<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, StudioError> {
    t.into_data_async().await.map_err(readback_err)?.convert::<f32>().try_to_vec::<f32>().map_err(readback_err)
}

/// The UNet's cross-attention projections as the methods take them, read back asynchronously.
pub async fn cross_attention(model: &StableDiffusion, keys: bool) -> Result<Vec<CrossAttn>, StudioError> {
    let mut tensors = vec![];
    model.unet.for_each_linear(&mut |name, lin| {
        let proj = if name.ends_with("attn2.to_k") && keys {
            Proj::Key
        } else if name.ends_with("attn2.to_v") {
            Proj::Value
        } else {
            return;
        };
        tensors.push((name.to_owned(), proj, lin.weight_torch()));
    });
    let mut out = Vec::with_capacity(tensors.len());
    for (name, proj, w) in tensors {
        let [r, c] = w.dims();
        let data = to_f32(w).await?;
        out.push(CrossAttn { name, proj, weight: from_row_major(r, c, &data) });
    }
    Ok(out)
}

/// The text encoder's output for `prompt` (no clip skip), read back asynchronously.
pub async fn encode(model: &StableDiffusion, prompt: &str) -> Result<TokenEmbeddings, StudioError> {
    let out = pipeline::prompt::encode_prompt(&model.tokenizer, &model.text_encoder, prompt, None, &model.device)?;
    let [_, n, d] = out.embeds.dims();
    let embeds = to_f32(out.embeds).await?;
    let pooled = to_f32(out.pooled).await?;
    Ok(TokenEmbeddings {
        embeds: from_row_major(n, d, &embeds),
        pooled: Vector::from_iterator(d, pooled.into_iter().map(f64::from)),
        ids: out.encoding.ids.clone(),
        n_tokens: out.encoding.n_tokens,
    })
}

/// Encodes `prompts` (each once) with asynchronous read-backs.
pub async fn encode_all<'a>(
    model: &StableDiffusion,
    prompts: impl IntoIterator<Item = &'a String>,
) -> Result<PrecomputedEncoder, StudioError> {
    let mut known: HashMap<String, TokenEmbeddings> = HashMap::new();
    for p in prompts {
        if !known.contains_key(p) {
            let e = encode(model, p).await?;
            known.insert(p.clone(), e);
        }
    }
    Ok(PrecomputedEncoder(known))
}
