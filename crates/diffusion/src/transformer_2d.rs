//! The UNet's spatial transformer: diffusers `Transformer2DModel` for continuous inputs
//! (`models/transformers/transformer_2d.py`), its `BasicTransformerBlock` with
//! `norm_type="layer_norm"` and its `FeedForward` with GEGLU (`models/attention.py`,
//! `models/activations.py`). Only what SD 1.x/2.x UNets build is here: no ada-norm, no patches,
//! no GLIGEN, no positional embeddings, dropout ignored (inference).
//!
//! The visitors (`for_each_linear*`, `for_each_conv_mut`) hand every projection to a callback
//! with its diffusers key prefix: the erasure methods edit `attn2.to_k` / `attn2.to_v` and attach
//! adapters through them.

use crate::attention::{Attention, AttentionConfig};
use crate::attention_probe::AttentionProbe;
use crate::nn::{Conv2d, GroupNorm, LayerNorm, Linear};
use crate::weights::WeightLoader;
use burn::tensor::Tensor;
use burn::tensor::activation::gelu;

/// `FeedForward(dim, activation_fn="geglu")`: `net.2(GEGLU(x))`, GEGLU = `h * gelu(gate)` where
/// `[h, gate] = net.0.proj(x).chunk(2, -1)`; `net.1` is dropout.
#[derive(Debug, Clone)]
pub struct FeedForward {
    /// `ff.net.0.proj`: `Linear(dim, 2 * inner)`, inner = 4 * dim.
    pub net_0_proj: Linear,
    /// `ff.net.2`: `Linear(inner, dim)`.
    pub net_2: Linear,
}

impl FeedForward {
    pub fn load(w: &mut WeightLoader, prefix: &str, dim: usize) -> Self {
        let inner = 4 * dim;
        Self {
            net_0_proj: Linear::load(w, &format!("{prefix}.net.0.proj"), dim, 2 * inner, true),
            net_2: Linear::load(w, &format!("{prefix}.net.2"), inner, dim, true),
        }
    }

    /// `[b, n, dim]` → `[b, n, dim]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.net_0_proj.forward(x);
        let inner = h.dims()[2] / 2;
        let hidden = h.clone().narrow(2, 0, inner);
        let gate = h.narrow(2, inner, inner);
        self.net_2.forward(hidden * gelu(gate))
    }
}

/// `BasicTransformerBlock`: pre-norm self-attention, cross-attention and feed-forward, each with
/// a residual connection.
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    pub norm1: LayerNorm,
    /// Self-attention; cross-attention on the text when `only_cross_attention`.
    pub attn1: Attention,
    pub norm2: LayerNorm,
    /// Cross-attention on `encoder_hidden_states`: the layer closed-form erasure edits.
    pub attn2: Attention,
    pub norm3: LayerNorm,
    pub ff: FeedForward,
    pub only_cross_attention: bool,
}

/// Construction parameters of a [`BasicTransformerBlock`] (and of a [`Transformer2DModel`]).
#[derive(Debug, Clone, Copy)]
pub struct TransformerConfig {
    pub num_attention_heads: usize,
    pub attention_head_dim: usize,
    /// Channels of the feature map (`in_channels` of `Transformer2DModel`).
    pub in_channels: usize,
    /// Number of `BasicTransformerBlock`s (`transformer_layers_per_block`).
    pub num_layers: usize,
    pub cross_attention_dim: usize,
    pub norm_num_groups: usize,
    /// `Linear` `proj_in`/`proj_out` (SD 2.x) instead of 1×1 convolutions (SD 1.x).
    pub use_linear_projection: bool,
    pub only_cross_attention: bool,
}

impl BasicTransformerBlock {
    /// `dim` = `heads * dim_head` (the transformer's inner width).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &TransformerConfig) -> Self {
        let dim = c.num_attention_heads * c.attention_head_dim;
        let p = |s: &str| format!("{prefix}.{s}");
        // diffusers' defaults for these blocks: attention_bias False, norm_eps 1e-5.
        let attn = |cross: Option<usize>| AttentionConfig {
            query_dim: dim,
            cross_attention_dim: cross,
            heads: c.num_attention_heads,
            dim_head: c.attention_head_dim,
            bias: false,
            group_norm: None,
            residual_connection: false,
            rescale_output_factor: 1.0,
        };
        let attn1_cross = c.only_cross_attention.then_some(c.cross_attention_dim);
        Self {
            norm1: LayerNorm::load(w, &p("norm1"), dim, 1e-5),
            attn1: Attention::load(w, &p("attn1"), attn(attn1_cross)),
            norm2: LayerNorm::load(w, &p("norm2"), dim, 1e-5),
            attn2: Attention::load(w, &p("attn2"), attn(Some(c.cross_attention_dim))),
            norm3: LayerNorm::load(w, &p("norm3"), dim, 1e-5),
            ff: FeedForward::load(w, &p("ff"), dim),
            only_cross_attention: c.only_cross_attention,
        }
    }

    /// `x`: `[b, n, dim]`, `context`: `[b, seq, cross_attention_dim]` → `[b, n, dim]`.
    pub fn forward(&self, x: Tensor<3>, context: &Tensor<3>) -> Tensor<3> {
        self.forward_probed(x, context, None)
    }

    /// [`Self::forward`], `attn2` adding its probabilities to the probe when one is given:
    /// `(probe, key of attn2, [h, w] of the feature map)`.
    pub fn forward_probed(
        &self,
        x: Tensor<3>,
        context: &Tensor<3>,
        probe: Option<(&AttentionProbe, &str, [usize; 2])>,
    ) -> Tensor<3> {
        let ctx1 = self.only_cross_attention.then_some(context);
        let x = self.attn1.forward(self.norm1.forward(x.clone()), ctx1) + x;
        let normed = self.norm2.forward(x.clone());
        let x = match probe {
            Some((p, key, hw)) => self.attn2.forward_probed(normed, context, p, key, hw),
            None => self.attn2.forward(normed, Some(context)),
        } + x;
        self.ff.forward(self.norm3.forward(x.clone())) + x
    }

    fn linears(&self) -> [(&'static str, &Linear); 10] {
        [
            ("attn1.to_q", &self.attn1.to_q),
            ("attn1.to_k", &self.attn1.to_k),
            ("attn1.to_v", &self.attn1.to_v),
            ("attn1.to_out.0", &self.attn1.to_out),
            ("attn2.to_q", &self.attn2.to_q),
            ("attn2.to_k", &self.attn2.to_k),
            ("attn2.to_v", &self.attn2.to_v),
            ("attn2.to_out.0", &self.attn2.to_out),
            ("ff.net.0.proj", &self.ff.net_0_proj),
            ("ff.net.2", &self.ff.net_2),
        ]
    }

    fn linears_mut(&mut self) -> [(&'static str, &mut Linear); 10] {
        [
            ("attn1.to_q", &mut self.attn1.to_q),
            ("attn1.to_k", &mut self.attn1.to_k),
            ("attn1.to_v", &mut self.attn1.to_v),
            ("attn1.to_out.0", &mut self.attn1.to_out),
            ("attn2.to_q", &mut self.attn2.to_q),
            ("attn2.to_k", &mut self.attn2.to_k),
            ("attn2.to_v", &mut self.attn2.to_v),
            ("attn2.to_out.0", &mut self.attn2.to_out),
            ("ff.net.0.proj", &mut self.ff.net_0_proj),
            ("ff.net.2", &mut self.ff.net_2),
        ]
    }
}

/// `proj_in` / `proj_out`: a 1×1 convolution (SD 1.x) or a `Linear` (`use_linear_projection`).
#[derive(Debug, Clone)]
pub enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// `Transformer2DModel` on a feature map: group norm, `proj_in`, transformer blocks over the
/// `h*w` positions, `proj_out`, residual.
#[derive(Debug, Clone)]
pub struct Transformer2DModel {
    /// `GroupNorm(norm_num_groups, in_channels, eps=1e-6)` (eps fixed in diffusers).
    pub norm: GroupNorm,
    pub proj_in: Projection,
    pub transformer_blocks: Vec<BasicTransformerBlock>,
    pub proj_out: Projection,
    /// Set while cross-attention maps are recorded: the probe and each block's `attn2` key.
    pub probe: Option<(AttentionProbe, Vec<String>)>,
}

impl Transformer2DModel {
    /// Loads the model under `prefix` (e.g. `down_blocks.0.attentions.1`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &TransformerConfig) -> Self {
        let inner = c.num_attention_heads * c.attention_head_dim;
        let p = |s: &str| format!("{prefix}.{s}");
        let proj = |w: &mut WeightLoader, name: &str, d_in: usize, d_out: usize| {
            if c.use_linear_projection {
                Projection::Linear(Linear::load(w, &p(name), d_in, d_out, true))
            } else {
                Projection::Conv(Conv2d::load(w, &p(name), d_in, d_out, 1, 1, 0))
            }
        };
        let norm = GroupNorm::load(w, &p("norm"), c.norm_num_groups, c.in_channels, 1e-6);
        let proj_in = proj(w, "proj_in", c.in_channels, inner);
        let transformer_blocks = (0..c.num_layers)
            .map(|i| BasicTransformerBlock::load(w, &p(&format!("transformer_blocks.{i}")), c))
            .collect();
        let proj_out = proj(w, "proj_out", inner, c.in_channels);
        Self { norm, proj_in, transformer_blocks, proj_out, probe: None }
    }

    /// `x`: `[b, c, h, w]`, `context`: `[b, seq, cross_attention_dim]` → `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>, context: &Tensor<3>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let residual = x.clone();
        let x = self.norm.forward(x);
        // [b, c, h, w] → [b, h*w, c]: the positions become the sequence.
        let to_tokens = |t: Tensor<4>| {
            let c = t.dims()[1];
            t.permute([0, 2, 3, 1]).reshape([b, h * w, c])
        };
        let mut tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(conv.forward(x)),
            Projection::Linear(lin) => lin.forward(to_tokens(x)),
        };
        for (i, block) in self.transformer_blocks.iter().enumerate() {
            let probe = self.probe.as_ref().map(|(p, keys)| (p, keys[i].as_str(), [h, w]));
            tokens = block.forward_probed(tokens, context, probe);
        }
        let to_map = |t: Tensor<3>| {
            let c = t.dims()[2];
            t.reshape([b, h, w, c]).permute([0, 3, 1, 2])
        };
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(to_map(tokens)),
            Projection::Linear(lin) => to_map(lin.forward(tokens)),
        };
        out + residual
    }

    /// Calls `f` with every `Linear` (`proj_in`/`proj_out` when linear, the attentions' and
    /// feed-forwards' projections) and its key prefix `{prefix}.…`.
    pub fn for_each_linear(&self, prefix: &str, f: &mut dyn FnMut(&str, &Linear)) {
        if let Projection::Linear(l) = &self.proj_in {
            f(&format!("{prefix}.proj_in"), l);
        }
        for (i, block) in self.transformer_blocks.iter().enumerate() {
            for (name, l) in block.linears() {
                f(&format!("{prefix}.transformer_blocks.{i}.{name}"), l);
            }
        }
        if let Projection::Linear(l) = &self.proj_out {
            f(&format!("{prefix}.proj_out"), l);
        }
    }

    /// Mutable twin of [`Self::for_each_linear`], same order and names.
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Linear)) {
        if let Projection::Linear(l) = &mut self.proj_in {
            f(&format!("{prefix}.proj_in"), l);
        }
        for (i, block) in self.transformer_blocks.iter_mut().enumerate() {
            for (name, l) in block.linears_mut() {
                f(&format!("{prefix}.transformer_blocks.{i}.{name}"), l);
            }
        }
        if let Projection::Linear(l) = &mut self.proj_out {
            f(&format!("{prefix}.proj_out"), l);
        }
    }

    /// Attaches `probe` to every block's `attn2` (`None` detaches); `prefix` as in
    /// [`Self::for_each_linear`].
    pub fn set_attention_probe(&mut self, prefix: &str, probe: Option<&AttentionProbe>) {
        self.probe = probe.map(|p| {
            let keys =
                (0..self.transformer_blocks.len()).map(|i| format!("{prefix}.transformer_blocks.{i}.attn2")).collect();
            (p.clone(), keys)
        });
    }

    /// Calls `f` with `proj_in` / `proj_out` when they are 1×1 convolutions (SD 1.x).
    pub fn for_each_conv_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Conv2d)) {
        if let Projection::Conv(c) = &mut self.proj_in {
            f(&format!("{prefix}.proj_in"), c);
        }
        if let Projection::Conv(c) = &mut self.proj_out {
            f(&format!("{prefix}.proj_out"), c);
        }
    }
}
