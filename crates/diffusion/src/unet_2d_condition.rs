//! diffusers `UNet2DConditionModel` (`models/unets/unet_2d_condition.py`): the noise predictor of
//! Stable Diffusion 1.x/2.x. `conv_in` → time embedding → down blocks (leaving skip connections)
//! → mid block → up blocks (consuming them) → `conv_norm_out`, SiLU, `conv_out`.
//!
//! Supported: `CrossAttnDownBlock2D` / `DownBlock2D` / `UNetMidBlock2DCrossAttn` (or none) /
//! `CrossAttnUpBlock2D` / `UpBlock2D`, per-block `attention_head_dim`, `layers_per_block`,
//! `transformer_layers_per_block`, `only_cross_attention`; `use_linear_projection`;
//! `upcast_attention` (read, not needed: in f16 compute the scores and softmax are always upcast,
//! `crate::nn::upcast`); `center_input_sample`; sinusoidal time
//! embedding with any `flip_sin_to_cos` / `freq_shift` / `time_embedding_dim`; LCM's
//! `time_cond_proj_dim`; odd latent sizes (diffusers' `forward_upsample_size`). Everything else
//! (class / addition embeddings as in SDXL, Fourier time embedding, dual cross-attention, GLIGEN,
//! scale-shift resnets) is rejected by [`UNet2DConditionConfig::validate`] with
//! `LoadError::Unsupported`. No key remaps: checkpoint keys are diffusers' own.

use crate::attention_probe::AttentionProbe;
use crate::embeddings::{Activation, TimestepEmbedding, TimestepEmbeddingConfig, Timesteps};
use crate::error::LoadError;
use crate::nn::{Conv2d, GroupNorm, Linear};
use crate::unet_2d_blocks::{BlockConfig, CrossAttnConfig, DownBlock, UNetMidBlock2DCrossAttn, UpBlock};
use crate::weights::{TensorSource, WeightLoader};
use burn::tensor::activation::silu;
use burn::tensor::{Device, Tensor};

use crate::unet_2d_condition_config::has_attention;
pub use crate::unet_2d_condition_config::{PerBlock, UNet2DConditionConfig};

/// diffusers `UNet2DConditionModel`.
#[derive(Debug, Clone)]
pub struct UNet2DConditionModel {
    pub conv_in: Conv2d,
    pub time_proj: Timesteps,
    pub time_embedding: TimestepEmbedding,
    /// `time_embedding_act_fn`.
    pub time_embed_act: Option<Activation>,
    pub down_blocks: Vec<DownBlock>,
    pub mid_block: Option<UNetMidBlock2DCrossAttn>,
    pub up_blocks: Vec<UpBlock>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
    config: UNet2DConditionConfig,
    /// The probe attached to every `attn2` ([`Self::set_attention_probe`]).
    attention_probe: Option<AttentionProbe>,
}

impl UNet2DConditionModel {
    /// The tensors whose shapes the config fixes ([`WeightLoader::check_anchors`]): `conv_in`,
    /// the last resnet of every down block and the last transformer block of its first attention.
    pub fn anchors(c: &UNet2DConditionConfig) -> Vec<crate::weights::Anchor> {
        use crate::weights::Anchor;
        let ch = &c.block_out_channels;
        let k = c.conv_in_kernel;
        let mut out = vec![Anchor::new(
            "conv_in.weight",
            vec![ch.first().copied().unwrap_or(0), c.in_channels, k, k],
            "`block_out_channels`, `in_channels` and `conv_in_kernel`",
        )];
        for (i, &b) in ch.iter().enumerate() {
            let last = c.layers_per_block.at(i).saturating_sub(1);
            out.push(Anchor::new(
                format!("down_blocks.{i}.resnets.{last}.conv2.weight"),
                vec![b, b, 3, 3],
                "`block_out_channels` and `layers_per_block`",
            ));
            if c.down_block_types.get(i).is_some_and(|t| t.contains("CrossAttn")) {
                let t = c.transformer_layers_per_block.at(i).saturating_sub(1);
                out.push(Anchor::new(
                    format!("down_blocks.{i}.attentions.0.transformer_blocks.{t}.norm1.weight"),
                    vec![b],
                    "`block_out_channels` and `transformer_layers_per_block`",
                ));
            }
        }
        out
    }

    /// Builds the model from `w` (keys as in a diffusers `unet/` safetensors file). `config` must
    /// have passed [`UNet2DConditionConfig::validate`] (`from_json` does it). Problems with the
    /// weights are collected in `w`: call `w.finish(..)` afterwards, or use [`Self::from_source`].
    pub fn load(config: &UNet2DConditionConfig, w: &mut WeightLoader) -> Self {
        let c = config;
        let levels = c.levels();
        let ch = &c.block_out_channels;
        let groups = c.norm_num_groups.unwrap_or(32).max(1);
        let temb = c.time_embed_dim();
        let act = |name: &Option<String>, field: &str| name.as_deref().and_then(|a| Activation::parse(a, field).ok());
        let attn = |i: usize| CrossAttnConfig {
            num_attention_heads: c.heads(i).max(1),
            transformer_layers: c.transformer_layers_per_block.at(i),
            cross_attention_dim: c.cross_attention_dim,
            use_linear_projection: c.use_linear_projection,
            only_cross_attention: c.only_cross_attention.at(i),
        };
        let block = |num_layers, in_channels, out_channels, prev_output_channel, add_sample, attn| BlockConfig {
            num_layers,
            in_channels,
            out_channels,
            prev_output_channel,
            temb_channels: temb,
            add_sample,
            resnet_eps: c.norm_eps,
            resnet_groups: groups,
            downsample_padding: c.downsample_padding,
            attn,
        };

        let conv_in = Conv2d::load(w, "conv_in", c.in_channels, ch[0], c.conv_in_kernel, 1, (c.conv_in_kernel - 1) / 2);
        let time_proj = Timesteps::new(ch[0], c.flip_sin_to_cos, c.freq_shift);
        let time_embedding = TimestepEmbedding::load(
            w,
            "time_embedding",
            TimestepEmbeddingConfig {
                in_channels: ch[0],
                time_embed_dim: temb,
                act: Activation::Silu,
                post_act: act(&c.timestep_post_act, "timestep_post_act"),
                cond_proj_dim: c.time_cond_proj_dim,
            },
        );

        let mut down_blocks = vec![];
        for (i, t) in c.down_block_types.iter().enumerate() {
            let c_in = if i == 0 { ch[0] } else { ch[i - 1] };
            let a = has_attention(t, "Down").unwrap_or(false).then(|| attn(i));
            let bc = block(c.layers_per_block.at(i), c_in, ch[i], 0, i + 1 < levels, a);
            down_blocks.push(DownBlock::load(w, &format!("down_blocks.{i}"), &bc));
        }

        let mid_block = c.mid_block_type.as_ref().map(|_| {
            let bc = block(1, ch[levels - 1], ch[levels - 1], 0, false, None);
            // diffusers never passes `only_cross_attention` to this mid block.
            let a = CrossAttnConfig { only_cross_attention: false, ..attn(levels - 1) };
            UNetMidBlock2DCrossAttn::load(w, "mid_block", &bc, &a, c.mid_block_scale_factor)
        });

        let mut up_blocks = vec![];
        for (i, t) in c.up_block_types.iter().enumerate() {
            let r = levels - 1 - i; // the matching down level
            let prev = ch[(r + 1).min(levels - 1)];
            let c_in = ch[r.saturating_sub(1)];
            let a = has_attention(t, "Up").unwrap_or(false).then(|| attn(r));
            let bc = block(c.layers_per_block.at(r) + 1, c_in, ch[r], prev, i + 1 < levels, a);
            up_blocks.push(UpBlock::load(w, &format!("up_blocks.{i}"), &bc));
        }

        Self {
            conv_in,
            time_proj,
            time_embedding,
            time_embed_act: act(&c.time_embedding_act_fn, "time_embedding_act_fn"),
            down_blocks,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(w, "conv_norm_out", groups, ch[0], c.norm_eps),
            conv_out: Conv2d::load(
                w,
                "conv_out",
                ch[0],
                c.out_channels,
                c.conv_out_kernel,
                1,
                (c.conv_out_kernel - 1) / 2,
            ),
            config: c.clone(),
            attention_probe: None,
        }
    }

    /// Validates `config`, loads every tensor from `source` and reports all weight problems at once.
    pub fn from_source(
        config: &UNet2DConditionConfig,
        source: &mut dyn TensorSource,
        device: &Device,
    ) -> Result<Self, LoadError> {
        config.validate()?;
        let mut w = WeightLoader::new(source, device, "unet");
        let model = Self::load(config, &mut w);
        w.finish(
            &[],
            "check that these are the weights of the `unet/` folder that belongs to this unet/config.json \
             (an SD 1.x/2.x UNet2DConditionModel in diffusers layout)",
        )?;
        Ok(model)
    }

    pub fn config(&self) -> &UNet2DConditionConfig {
        &self.config
    }

    /// `sample`: `[b, in_channels, h, w]` latents; `timesteps`: `[b]` (or `[1]`, broadcast),
    /// float, may be fractional; `encoder_hidden_states`: `[b, seq, cross_attention_dim]`
    /// → the prediction `[b, out_channels, h, w]`.
    pub fn forward(&self, sample: Tensor<4>, timesteps: Tensor<1>, encoder_hidden_states: Tensor<3>) -> Tensor<4> {
        self.forward_with_timestep_cond(sample, timesteps, encoder_hidden_states, None)
    }

    /// [`Self::forward`] with diffusers' `timestep_cond` `[b, time_cond_proj_dim]` (the guidance
    /// embedding of LCM-distilled UNets; ignored by UNets without `time_cond_proj_dim`).
    pub fn forward_with_timestep_cond(
        &self,
        sample: Tensor<4>,
        timesteps: Tensor<1>,
        encoder_hidden_states: Tensor<3>,
        timestep_cond: Option<Tensor<2>>,
    ) -> Tensor<4> {
        let [b, _, h, w] = sample.dims();
        let ctx = &encoder_hidden_states;
        // Skip connections must be resized exactly when the size is not a multiple of 2^ups.
        let ups = self.up_blocks.iter().filter(|u| u.upsamplers.is_some()).count();
        let factor = 1usize << ups;
        let forward_upsample_size = h % factor != 0 || w % factor != 0;

        let sample = if self.config.center_input_sample { sample * 2.0 - 1.0 } else { sample };

        let timesteps = if timesteps.dims()[0] == 1 && b > 1 { timesteps.repeat_dim(0, b) } else { timesteps };
        let t_emb = self.time_proj.forward(timesteps);
        let mut emb = self.time_embedding.forward(t_emb, timestep_cond);
        if let Some(a) = self.time_embed_act {
            emb = a.forward(emb);
        }

        let mut x = self.conv_in.forward(sample);
        let mut skips = vec![x.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(x, &emb, ctx);
            x = out;
            skips.extend(states);
        }
        if let Some(mid) = &self.mid_block {
            x = mid.forward(x, &emb, ctx);
        }
        let last = self.up_blocks.len().saturating_sub(1);
        for (i, block) in self.up_blocks.iter().enumerate() {
            let rest = skips.len().saturating_sub(block.resnets.len());
            // After this block has taken its skips, the next skip's size is the target size.
            let size = (i < last && forward_upsample_size)
                .then(|| rest.checked_sub(1).map(|j| skips[j].dims()))
                .flatten()
                .map(|d| [d[2], d[3]]);
            x = block.forward(x, &mut skips, &emb, ctx, size);
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }

    /// Calls `f` with every `Linear` inside the `Transformer2DModel`s (`proj_in`/`proj_out` when
    /// linear, `attn1`/`attn2` `to_q`/`to_k`/`to_v`/`to_out.0`, `ff.net.0.proj`, `ff.net.2`) and its
    /// diffusers key prefix, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k`.
    /// Order: down blocks, mid block, up blocks.
    pub fn for_each_linear(&self, f: &mut dyn FnMut(&str, &Linear)) {
        for (i, b) in self.down_blocks.iter().enumerate() {
            b.for_each_linear(&format!("down_blocks.{i}"), f);
        }
        if let Some(m) = &self.mid_block {
            m.for_each_linear("mid_block", f);
        }
        for (i, b) in self.up_blocks.iter().enumerate() {
            b.for_each_linear(&format!("up_blocks.{i}"), f);
        }
    }

    /// Mutable twin of [`Self::for_each_linear`] (same names and order): the erasure methods
    /// rewrite `attn2.to_k` / `attn2.to_v` and attach adapters through it.
    pub fn for_each_linear_mut(&mut self, f: &mut dyn FnMut(&str, &mut Linear)) {
        for (i, b) in self.down_blocks.iter_mut().enumerate() {
            b.for_each_linear_mut(&format!("down_blocks.{i}"), f);
        }
        if let Some(m) = &mut self.mid_block {
            m.for_each_linear_mut("mid_block", f);
        }
        for (i, b) in self.up_blocks.iter_mut().enumerate() {
            b.for_each_linear_mut(&format!("up_blocks.{i}"), f);
        }
    }

    /// Attaches `probe` to every cross-attention (`attn2`) of the UNet, or detaches it (`None`):
    /// while it records, each layer adds its probabilities to it (DAAM, [`crate::attention_probe`]).
    pub fn set_attention_probe(&mut self, probe: Option<AttentionProbe>) {
        for (i, b) in self.down_blocks.iter_mut().enumerate() {
            b.set_attention_probe(&format!("down_blocks.{i}"), probe.as_ref());
        }
        if let Some(m) = &mut self.mid_block {
            m.set_attention_probe("mid_block", probe.as_ref());
        }
        for (i, b) in self.up_blocks.iter_mut().enumerate() {
            b.set_attention_probe(&format!("up_blocks.{i}"), probe.as_ref());
        }
        self.attention_probe = probe;
    }

    /// The attached probe, if any.
    pub fn attention_probe(&self) -> Option<&AttentionProbe> {
        self.attention_probe.as_ref()
    }

    /// Calls `f` with the 1×1 `proj_in` / `proj_out` convolutions of the `Transformer2DModel`s
    /// (SD 1.x; none when `use_linear_projection`), e.g. `mid_block.attentions.0.proj_in`.
    pub fn for_each_conv_mut(&mut self, f: &mut dyn FnMut(&str, &mut Conv2d)) {
        for (i, b) in self.down_blocks.iter_mut().enumerate() {
            b.for_each_conv_mut(&format!("down_blocks.{i}"), f);
        }
        if let Some(m) = &mut self.mid_block {
            m.for_each_conv_mut("mid_block", f);
        }
        for (i, b) in self.up_blocks.iter_mut().enumerate() {
            b.for_each_conv_mut(&format!("up_blocks.{i}"), f);
        }
    }
}
