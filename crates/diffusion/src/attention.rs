//! diffusers' `Attention` (`models/attention_processor.py`, `AttnProcessor2_0`): multi-head
//! scaled dot-product attention with `to_q`, `to_k`, `to_v`, `to_out.0`. Used as self- and
//! cross-attention (`attn1`, `attn2`) in the UNet's transformer blocks, and as the VAE's
//! mid-block spatial attention (with `group_norm` and a residual connection).
//!
//! `upcast_attention` / `upcast_softmax` only matter for f16 compute: there the scores and the
//! softmax run in f32 ([`crate::nn::upcast`]), as diffusers' upcast and PyTorch's half kernels do.

use crate::nn::{GroupNorm, Linear};
use crate::weights::WeightLoader;
use burn::tensor::Tensor;
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

/// Most attention scores (`batch × heads × queries × keys`) computed at once; larger problems are
/// split along the queries. burn's WebGPU attention (no autotune in the browser build)
/// materialises the scores: SD 1.5's self-attention on 64×64 latents would need one buffer of
/// 2 × 8 × 4096 × 4096 f32 = 1.07 GB, above SwiftShader's 1 GiB binding limit and many real
/// adapters' too. 2²⁵ scores are 128 MiB in f32, Chrome's default `maxStorageBufferBindingSize`.
pub const MAX_SCORES: usize = 1 << 25;

/// softmax(QKᵀ/√d)V on `[b, h, n, d]` queries and `[b, h, m, d]` keys/values, at most
/// `max_scores` scores at a time. Splitting the queries is exact: each query's softmax runs over
/// all keys either way.
pub fn chunked_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, max_scores: usize) -> Tensor<4> {
    let (q, back) = crate::nn::upcast(q);
    let (k, v) = (crate::nn::upcast(k).0, crate::nn::upcast(v).0);
    crate::nn::downcast(chunked_attention_f32(q, k, v, max_scores), back)
}

fn chunked_attention_f32(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, max_scores: usize) -> Tensor<4> {
    let [b, h, n, _] = q.dims();
    let m = k.dims()[2];
    let rows = (max_scores / (b * h * m).max(1)).max(1);
    let opts = AttentionModuleOptions::default();
    if rows >= n {
        return attention(q, k, v, None, None, opts);
    }
    let parts: Vec<Tensor<4>> = (0..n)
        .step_by(rows)
        .map(|start| {
            let len = rows.min(n - start);
            attention(q.clone().narrow(2, start, len), k.clone(), v.clone(), None, None, opts)
        })
        .collect();
    Tensor::cat(parts, 2)
}

#[derive(Debug, Clone)]
pub struct Attention {
    pub to_q: Linear,
    pub to_k: Linear,
    pub to_v: Linear,
    /// `to_out.0` (`to_out.1` is dropout).
    pub to_out: Linear,
    pub heads: usize,
    /// VAE only: normalises the input `[b, c, h*w]` before the projections.
    pub group_norm: Option<GroupNorm>,
    /// VAE only: adds the input back.
    pub residual_connection: bool,
    pub rescale_output_factor: f64,
}

/// Construction parameters of an [`Attention`].
#[derive(Debug, Clone, Copy)]
pub struct AttentionConfig {
    /// Width of the queries' input (and of the output).
    pub query_dim: usize,
    /// Width of the keys'/values' input (`cross_attention_dim`); `None` = self-attention.
    pub cross_attention_dim: Option<usize>,
    pub heads: usize,
    pub dim_head: usize,
    /// Bias on `to_q/k/v` (false in the UNet, true in the VAE).
    pub bias: bool,
    /// `(num_groups, eps)` of the VAE's group norm.
    pub group_norm: Option<(usize, f64)>,
    pub residual_connection: bool,
    pub rescale_output_factor: f64,
}

impl Attention {
    pub fn load(w: &mut WeightLoader, prefix: &str, c: AttentionConfig) -> Self {
        let inner = c.heads * c.dim_head;
        let kv_dim = c.cross_attention_dim.unwrap_or(c.query_dim);
        let p = |s: &str| format!("{prefix}.{s}");
        Self {
            group_norm: c.group_norm.map(|(g, eps)| GroupNorm::load(w, &p("group_norm"), g, c.query_dim, eps)),
            to_q: Linear::load(w, &p("to_q"), c.query_dim, inner, c.bias),
            to_k: Linear::load(w, &p("to_k"), kv_dim, inner, c.bias),
            to_v: Linear::load(w, &p("to_v"), kv_dim, inner, c.bias),
            to_out: Linear::load(w, &p("to_out.0"), inner, c.query_dim, true),
            heads: c.heads,
            residual_connection: c.residual_connection,
            rescale_output_factor: c.rescale_output_factor,
        }
    }

    /// `hidden`: `[b, n, query_dim]`, `context`: `[b, m, cross_attention_dim]` (None for
    /// self-attention) → `[b, n, query_dim]`. No group norm or residual here (see `forward_spatial`).
    pub fn forward(&self, hidden: Tensor<3>, context: Option<&Tensor<3>>) -> Tensor<3> {
        let ctx = context.cloned().unwrap_or_else(|| hidden.clone());
        let q = self.to_q.forward(hidden);
        let k = self.to_k.forward(ctx.clone());
        let v = self.to_v.forward(ctx);
        let out = self.attend(q, k, v);
        self.to_out.forward(out)
    }

    /// Cross-attention that also adds its probabilities to `probe` when the probe is recording
    /// (DAAM, [`crate::attention_probe`]); the output is [`Self::forward`]'s, computed the same way.
    pub fn forward_probed(
        &self,
        hidden: Tensor<3>,
        context: &Tensor<3>,
        probe: &crate::attention_probe::AttentionProbe,
        key: &str,
        [h, w]: [usize; 2],
    ) -> Tensor<3> {
        let q = self.to_q.forward(hidden);
        let k = self.to_k.forward(context.clone());
        let v = self.to_v.forward(context.clone());
        if let Some(i) = probe.recording()
            && i < q.dims()[0]
        {
            probe.add(key, h, w, self.probabilities(q.clone().narrow(0, i, 1), k.clone().narrow(0, i, 1)));
        }
        let out = self.attend(q, k, v);
        self.to_out.forward(out)
    }

    /// softmax(QKᵀ/√d) per head, in f32: `[b, n, h*d]` queries, `[b, m, h*d]` keys → `[b, h, n, m]`
    /// (diffusers' `Attention.get_attention_scores`, which DAAM's hook reproduces).
    pub fn probabilities(&self, q: Tensor<3>, k: Tensor<3>) -> Tensor<4> {
        let [b, n, inner] = q.dims();
        let m = k.dims()[1];
        let h = self.heads;
        let d = inner / h;
        let q = crate::nn::upcast(q).0.reshape([b, n, h, d]).swap_dims(1, 2);
        let k = crate::nn::upcast(k).0.reshape([b, m, h, d]).swap_dims(1, 2);
        let scores = q.matmul(k.swap_dims(2, 3)) * (1.0 / (d as f64).sqrt());
        burn::tensor::activation::softmax(scores, 3)
    }

    /// Splits heads, computes softmax(QKᵀ/√d)V, merges heads: `[b, n, h*d]` → `[b, n, h*d]`.
    pub fn attend(&self, q: Tensor<3>, k: Tensor<3>, v: Tensor<3>) -> Tensor<3> {
        let [b, n, inner] = q.dims();
        let m = k.dims()[1];
        let h = self.heads;
        let d = inner / h;
        let split = |t: Tensor<3>, len: usize| t.reshape([b, len, h, d]).swap_dims(1, 2);
        let out = chunked_attention(split(q, n), split(k, m), split(v, m), MAX_SCORES);
        out.swap_dims(1, 2).reshape([b, n, inner])
    }

    /// VAE mid-block attention on `[b, c, h, w]`: group norm, self-attention over the `h*w`
    /// positions, residual, rescale.
    pub fn forward_spatial(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, hh, ww] = x.dims();
        let flat = x.clone().reshape([b, c, hh * ww]);
        let normed = match &self.group_norm {
            Some(gn) => gn.forward3(flat),
            None => flat,
        };
        let tokens = normed.swap_dims(1, 2); // [b, hw, c]
        let out = self.forward(tokens, None).swap_dims(1, 2).reshape([b, c, hh, ww]);
        let out = if self.residual_connection { out + x } else { out };
        if self.rescale_output_factor == 1.0 { out } else { out / self.rescale_output_factor }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn chunked_attention_equals_one_pass() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let t = |n: usize| Tensor::<4>::random([2, 3, n, 8], Distribution::Normal(0.0, 1.0), &device);
        let (q, k, v) = (t(37), t(11), t(11));
        let whole = chunked_attention(q.clone(), k.clone(), v.clone(), usize::MAX);
        // 2·3·11 = 66 scores a query row: 7 rows a chunk (6 chunks, the last one short), and 1 row.
        for budget in [66 * 7, 1] {
            let parts = chunked_attention(q.clone(), k.clone(), v.clone(), budget);
            assert_eq!(parts.dims(), [2, 3, 37, 8]);
            let diff = (parts - whole.clone()).abs().max().into_scalar::<f32>();
            assert!(diff < 1e-6, "budget {budget}: max |Δ| {diff}");
        }
    }

    #[test]
    fn probabilities_are_the_weights_of_the_output() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let mut w = WeightLoader::random(7, &device, "unet");
        let c = AttentionConfig {
            query_dim: 8,
            cross_attention_dim: Some(6),
            heads: 2,
            dim_head: 4,
            bias: false,
            group_norm: None,
            residual_connection: false,
            rescale_output_factor: 1.0,
        };
        let attn = Attention::load(&mut w, "attn2", c);
        let hidden = Tensor::<3>::random([2, 5, 8], Distribution::Normal(0.0, 1.0), &device);
        let context = Tensor::<3>::random([2, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let probe = crate::attention_probe::AttentionProbe::new();
        probe.set_recording(Some(1));
        assert_eq!(probe.recording(), None, "a probe records only when armed");
        probe.arm();
        probe.set_recording(Some(1));
        let out = attn.forward_probed(hidden.clone(), &context, &probe, "attn2", [1, 5]);
        let plain = attn.forward(hidden.clone(), Some(&context));
        assert_eq!((out - plain).abs().max().into_scalar::<f32>(), 0.0, "the probe changes nothing");
        let layers = probe.take();
        assert_eq!(layers.len(), 1);
        let p = layers[0].maps(); // [heads, tokens, 1, 5]
        assert_eq!(p.dims(), [2, 3, 1, 5]);
        // Each query's probabilities over the 3 tokens sum to 1.
        let sums = p.clone().sum_dim(1).into_data().try_to_vec::<f32>().unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5), "{sums:?}");
        // probs · V, heads merged and projected, is the layer's output for batch element 1.
        let v = attn.to_v.forward(context.clone().narrow(0, 1, 1)).reshape([1, 3, 2, 4]).swap_dims(1, 2); // [1, 2, 3, 4]
        let pn = p.reshape([2, 3, 5]).swap_dims(1, 2).unsqueeze::<4>(); // [1, 2, 5, 3]
        let mixed = pn.matmul(v).swap_dims(1, 2).reshape([1, 5, 8]);
        let want = attn.to_out.forward(mixed);
        let got = attn.forward(hidden.narrow(0, 1, 1), Some(&context.narrow(0, 1, 1)));
        let diff = (want - got).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-5, "max |Δ| {diff}");
    }
}
