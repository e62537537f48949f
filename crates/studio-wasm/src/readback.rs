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

/// SHA-256 (hex) of a model's weights as it holds them now, read back: every weight a variant
/// entry can change (the `Linear`s and 1×1 convolutions of the UNet's `Transformer2DModel`s,
/// `UNet2DConditionModel::for_each_linear` / `for_each_conv_mut` order) and, to tell one model's
/// load from another's, the text encoder's token and position embeddings and the UNet's and the
/// VAE decoder's first and last convolutions. Name, shape and f32 bits of each, in that order.
/// The page's tests compare it before and after a bad input (issue 18).
pub async fn weights_digest(tensors: Vec<(String, Tensor<2>)>) -> Result<String, StudioError> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (name, t) in tensors {
        let dims = t.dims();
        h.update(name.as_bytes());
        h.update(format!("{dims:?}").as_bytes());
        for v in to_f32(t).await? {
            h.update(v.to_bits().to_le_bytes());
        }
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

/// The tensors [`weights_digest`] reads, flattened to 2-D (taken from a model the caller holds
/// mutably: the convolutions have only a mutable visitor).
pub fn digest_tensors(model: &mut StableDiffusion) -> Vec<(String, Tensor<2>)> {
    let mut out: Vec<(String, Tensor<2>)> = vec![];
    let flat4 = |t: &Tensor<4>| {
        let [o, i, kh, kw] = t.dims();
        t.clone().reshape([o, i * kh * kw])
    };
    let bias = |b: &Option<Tensor<1>>| b.as_ref().map(|b| b.clone().unsqueeze::<2>());
    model.unet.for_each_linear(&mut |name, l| {
        out.push((format!("unet.{name}.weight"), l.weight.clone()));
        if let Some(b) = bias(&l.bias) {
            out.push((format!("unet.{name}.bias"), b));
        }
    });
    model.unet.for_each_conv_mut(&mut |name, c| {
        out.push((format!("unet.{name}.weight"), flat4(&c.weight)));
        if let Some(b) = bias(&c.bias) {
            out.push((format!("unet.{name}.bias"), b));
        }
    });
    let e = &model.text_encoder.embeddings;
    out.push(("text_encoder.token_embedding".into(), e.token_embedding.clone()));
    out.push(("text_encoder.position_embedding".into(), e.position_embedding.clone()));
    for (name, c) in [
        ("unet.conv_in", &model.unet.conv_in),
        ("unet.conv_out", &model.unet.conv_out),
        ("vae.decoder.conv_in", &model.vae.decoder.conv_in),
        ("vae.decoder.conv_out", &model.vae.decoder.conv_out),
    ] {
        out.push((format!("{name}.weight"), flat4(&c.weight)));
    }
    out
}
