//! diffusers `AutoencoderKL` (`models/autoencoders/autoencoder_kl.py`): the Stable Diffusion VAE.
//! `encode` maps an image in [-1, 1] to the posterior over latents, `decode` maps latents (already
//! divided by `scaling_factor`) back to an image. The halves are in `vae.rs`.
//!
//! Weight-key remaps (set up by [`AutoencoderKL::load`]): checkpoints converted before diffusers
//! 0.14 name the mid-block attention's projections `query`, `key`, `value`, `proj_attn` instead of
//! `to_q`, `to_k`, `to_v`, `to_out.0`, and store them as 1×1 convolutions `[C, C, 1, 1]`; both
//! load (diffusers `ModelMixin._fix_state_dict_keys_on_load` does the same rename).
//! Tiling and slicing are not implemented: they only trade memory for time and change nothing
//! numerically inside one tile.

use crate::error::LoadError;
use crate::nn::Conv2d;
use crate::vae::{Decoder, Encoder, VaeHalfConfig};
use crate::weights::{TensorSource, WeightLoader};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Deserializer};

pub use crate::vae::DiagonalGaussian;

/// `vae/config.json` of a diffusers model folder. Defaults are those of `AutoencoderKL.__init__`
/// (diffusers 0.42), which is what diffusers uses for keys a config omits.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct AutoencoderKLConfig {
    /// `_class_name`; only `AutoencoderKL` is supported (not `AutoencoderTiny`, `AsymmetricAutoencoderKL`...).
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    /// Image channels in (3).
    pub in_channels: usize,
    /// Image channels out (3).
    pub out_channels: usize,
    /// One `DownEncoderBlock2D` per level (the only type `AutoencoderKL` checkpoints use).
    pub down_block_types: Vec<String>,
    /// One `UpDecoderBlock2D` per level.
    pub up_block_types: Vec<String>,
    /// Width of each level, finest first; the VAE scale factor is 2^(len − 1).
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level (the decoder has one more).
    pub layers_per_block: usize,
    /// Activation; only `silu` (alias `swish`) is supported.
    pub act_fn: String,
    /// Latent channels (4 in SD 1.x/2.x).
    pub latent_channels: usize,
    /// Groups of every group norm.
    pub norm_num_groups: usize,
    /// Training resolution; only used by diffusers' tiling (an int, or `[h, w]` whose first entry we keep).
    #[serde(deserialize_with = "int_or_first")]
    pub sample_size: usize,
    /// Pipelines divide latents by it before decoding (0.18215 in SD 1.x/2.x).
    pub scaling_factor: f64,
    /// Pipelines that use it (SD3, Flux) decode `latents / scaling_factor + shift_factor`; absent in SD.
    pub shift_factor: Option<f64>,
    /// Per-channel latent statistics of some VAEs (SDXL-based); unused by SD pipelines.
    pub latents_mean: Option<Vec<f64>>,
    /// See `latents_mean`.
    pub latents_std: Option<Vec<f64>>,
    /// diffusers runs this VAE in f32 even when the rest is f16. Read, not acted on: in f16 compute
    /// (`crate::nn::compute_in_f16`) the VAE is f16 like the rest, with its normalisations and
    /// attention scores upcast to f32 (`crate::nn::upcast`).
    pub force_upcast: bool,
    /// Whether the 1×1 `quant_conv` follows the encoder.
    pub use_quant_conv: bool,
    /// Whether the 1×1 `post_quant_conv` precedes the decoder.
    pub use_post_quant_conv: bool,
    /// Whether the mid blocks have their self-attention.
    pub mid_block_add_attention: bool,
}

/// Accepts `sample_size` as `512` or `[512, 512]` (both occur in configs on the hub).
fn int_or_first<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        One(usize),
        Many(Vec<usize>),
    }
    match Size::deserialize(d)? {
        Size::One(s) => Ok(s),
        Size::Many(v) => v.first().copied().ok_or_else(|| serde::de::Error::custom("empty sample_size")),
    }
}

impl Default for AutoencoderKLConfig {
    fn default() -> Self {
        Self {
            class_name: None,
            in_channels: 3,
            out_channels: 3,
            down_block_types: vec!["DownEncoderBlock2D".into()],
            up_block_types: vec!["UpDecoderBlock2D".into()],
            block_out_channels: vec![64],
            layers_per_block: 1,
            act_fn: "silu".into(),
            latent_channels: 4,
            norm_num_groups: 32,
            sample_size: 32,
            scaling_factor: 0.18215,
            shift_factor: None,
            latents_mean: None,
            latents_std: None,
            force_upcast: true,
            use_quant_conv: true,
            use_post_quant_conv: true,
            mid_block_add_attention: true,
        }
    }
}

impl AutoencoderKLConfig {
    /// Parses and checks a `vae/config.json`.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let err = |reason: String| LoadError::Config { file: "vae/config.json".into(), reason };
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        let config: Self = crate::config_json::from_value(value).map_err(err)?;
        config.validate()?;
        Ok(config)
    }

    /// `stable-diffusion-v1-5/stable-diffusion-v1-5` `vae/config.json` (diffusers 0.6.0):
    /// `block_out_channels [128, 256, 512, 512]`, four `DownEncoderBlock2D` / `UpDecoderBlock2D`,
    /// `layers_per_block 2`, `latent_channels 4`, `norm_num_groups 32`, `act_fn "silu"`,
    /// `sample_size 512`; `scaling_factor` absent there, so the default 0.18215 applies. SD 2.x
    /// (`stabilityai/stable-diffusion-2-1`) ships the same VAE architecture with `sample_size 768`.
    pub fn sd15() -> Self {
        Self {
            class_name: Some("AutoencoderKL".into()),
            down_block_types: vec!["DownEncoderBlock2D".into(); 4],
            up_block_types: vec!["UpDecoderBlock2D".into(); 4],
            block_out_channels: vec![128, 256, 512, 512],
            layers_per_block: 2,
            sample_size: 512,
            ..Self::default()
        }
    }

    /// Rejects what this implementation cannot run, with a message saying what is unsupported.
    pub fn validate(&self) -> Result<(), LoadError> {
        let unsupported = |m: String| Err(LoadError::Unsupported(format!("vae/config.json: {m}")));
        if let Some(c) = &self.class_name
            && c != "AutoencoderKL"
        {
            return unsupported(format!(
                "`_class_name` is `{c}`; only `AutoencoderKL` (the Stable Diffusion VAE) is supported"
            ));
        }
        if self.act_fn != "silu" && self.act_fn != "swish" {
            return unsupported(format!("`act_fn` `{}` is not supported, only `silu`", self.act_fn));
        }
        let levels = self.block_out_channels.len();
        if levels == 0 {
            return unsupported("`block_out_channels` is empty".into());
        }
        if self.down_block_types.len() != levels || self.up_block_types.len() != levels {
            return unsupported(format!(
                "{} down blocks and {} up blocks for {levels} entries of `block_out_channels`; they must match",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        if let Some(t) = self.down_block_types.iter().find(|t| *t != "DownEncoderBlock2D") {
            return unsupported(format!("down block type `{t}` is not supported, only `DownEncoderBlock2D`"));
        }
        if let Some(t) = self.up_block_types.iter().find(|t| *t != "UpDecoderBlock2D") {
            return unsupported(format!("up block type `{t}` is not supported, only `UpDecoderBlock2D`"));
        }
        if self.in_channels == 0 || self.out_channels == 0 || self.latent_channels == 0 || self.layers_per_block == 0 {
            return unsupported(
                "`in_channels`, `out_channels`, `latent_channels` and `layers_per_block` must be positive".into(),
            );
        }
        let g = self.norm_num_groups;
        if let Some(c) = self.block_out_channels.iter().find(|&&c| g == 0 || c == 0 || c % g != 0) {
            return unsupported(format!("block width {c} is not a positive multiple of `norm_num_groups` {g}"));
        }
        if levels > 16 {
            return unsupported(format!("{levels} levels is more than any VAE uses"));
        }
        Ok(())
    }

    /// How many image pixels one latent covers along each side: 2^(levels − 1) (8 in SD).
    pub fn scale_factor(&self) -> usize {
        1 << (self.block_out_channels.len().max(1) - 1)
    }

    fn half(&self, image_channels: usize) -> VaeHalfConfig {
        VaeHalfConfig {
            image_channels,
            latent_channels: self.latent_channels,
            block_out_channels: self.block_out_channels.clone(),
            layers_per_block: self.layers_per_block,
            norm_num_groups: self.norm_num_groups,
            mid_block_add_attention: self.mid_block_add_attention,
        }
    }
}

/// diffusers `AutoencoderKL`.
#[derive(Debug, Clone)]
pub struct AutoencoderKL {
    pub encoder: Encoder,
    pub decoder: Decoder,
    /// 1×1 conv on the encoder's `[mean, logvar]` (`use_quant_conv`).
    pub quant_conv: Option<Conv2d>,
    /// 1×1 conv on the latents before the decoder (`use_post_quant_conv`).
    pub post_quant_conv: Option<Conv2d>,
    config: AutoencoderKLConfig,
}

impl AutoencoderKL {
    /// The tensors whose shapes the config fixes ([`WeightLoader::check_anchors`]).
    pub fn anchors(c: &AutoencoderKLConfig) -> Vec<crate::weights::Anchor> {
        use crate::weights::Anchor;
        let ch = &c.block_out_channels;
        let (first, last) = (ch.first().copied().unwrap_or(0), ch.last().copied().unwrap_or(0));
        let mut out = vec![
            Anchor::new(
                "encoder.conv_in.weight",
                vec![first, c.in_channels, 3, 3],
                "`block_out_channels` and `in_channels`",
            ),
            Anchor::new(
                "decoder.conv_in.weight",
                vec![last, c.latent_channels, 3, 3],
                "`block_out_channels` and `latent_channels`",
            ),
        ];
        let l = c.layers_per_block.saturating_sub(1);
        for (i, &b) in ch.iter().enumerate() {
            out.push(Anchor::new(
                format!("encoder.down_blocks.{i}.resnets.{l}.conv2.weight"),
                vec![b, b, 3, 3],
                "`block_out_channels` and `layers_per_block`",
            ));
        }
        out
    }

    /// Builds the model from `w` (keys as in a diffusers `vae/` safetensors file) and registers the
    /// old attention names as aliases on `w`. `config` must have passed
    /// [`AutoencoderKLConfig::validate`] (`from_json` does it). Problems with the weights are
    /// collected in `w`: call `w.finish(..)` afterwards, or use [`AutoencoderKL::from_source`].
    pub fn load(config: &AutoencoderKLConfig, w: &mut WeightLoader) -> Self {
        // Attention keys of checkpoints converted before diffusers 0.14 (the loader also reshapes
        // their [C, C, 1, 1] weights to [C, C]).
        w.alias_infix(".to_q.", ".query.");
        w.alias_infix(".to_k.", ".key.");
        w.alias_infix(".to_v.", ".value.");
        w.alias_infix(".to_out.0.", ".proj_attn.");
        let l = config.latent_channels;
        Self {
            encoder: Encoder::load(w, "encoder", &config.half(config.in_channels)),
            decoder: Decoder::load(w, "decoder", &config.half(config.out_channels)),
            quant_conv: config.use_quant_conv.then(|| Conv2d::load(w, "quant_conv", 2 * l, 2 * l, 1, 1, 0)),
            post_quant_conv: config.use_post_quant_conv.then(|| Conv2d::load(w, "post_quant_conv", l, l, 1, 1, 0)),
            config: config.clone(),
        }
    }

    /// Validates `config`, loads every tensor from `source` and reports all weight problems at once.
    pub fn from_source(
        config: &AutoencoderKLConfig,
        source: &mut dyn TensorSource,
        device: &Device,
    ) -> Result<Self, LoadError> {
        config.validate()?;
        let mut w = WeightLoader::new(source, device, "vae");
        let model = Self::load(config, &mut w);
        w.finish(
            &[],
            "check that these are the weights of the `vae/` folder that belongs to this vae/config.json \
             (an SD 1.x/2.x AutoencoderKL in diffusers layout)",
        )?;
        Ok(model)
    }

    /// `x`: images `[b, in_channels, H, W]` in [-1, 1], H and W multiples of `scale_factor()`
    /// → posterior with mean and logvar `[b, latent_channels, H/s, W/s]`.
    pub fn encode(&self, x: Tensor<4>) -> DiagonalGaussian {
        let h = self.encoder.forward(x);
        let h = match &self.quant_conv {
            Some(q) => q.forward(h),
            None => h,
        };
        DiagonalGaussian::from_parameters(h)
    }

    /// `z`: latents `[b, latent_channels, h, w]`, already divided by `scaling_factor` → raw decoder
    /// output `[b, out_channels, h*s, w*s]` (images in about [-1, 1]; pipelines map it with `/2 + 0.5`).
    pub fn decode(&self, z: Tensor<4>) -> Tensor<4> {
        let z = match &self.post_quant_conv {
            Some(p) => p.forward(z),
            None => z,
        };
        self.decoder.forward(z)
    }

    pub fn config(&self) -> &AutoencoderKLConfig {
        &self.config
    }

    /// Image pixels per latent along each side: 2^(levels − 1) (8 in SD).
    pub fn scale_factor(&self) -> usize {
        self.config.scale_factor()
    }

    /// `config.scaling_factor` (0.18215 in SD 1.x/2.x): pipelines multiply encoded latents by it and
    /// divide denoised latents by it before [`decode`](Self::decode).
    pub fn scaling_factor(&self) -> f64 {
        self.config.scaling_factor
    }

    /// `config.shift_factor`, `None` for SD 1.x/2.x VAEs.
    pub fn shift_factor(&self) -> Option<f64> {
        self.config.shift_factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_defaults_and_errors() {
        let c = AutoencoderKLConfig::from_json(
            r#"{"block_out_channels": [128, 256, 512, 512], "layers_per_block": 2,
            "down_block_types": ["DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D","DownEncoderBlock2D"],
            "up_block_types": ["UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D","UpDecoderBlock2D"],
            "_class_name": "AutoencoderKL", "sample_size": [512, 512], "shift_factor": null, "act_fn": "silu"}"#,
        )
        .unwrap();
        assert_eq!(c, AutoencoderKLConfig::sd15());
        assert_eq!(c.scale_factor(), 8);
        assert_eq!(c.scaling_factor, 0.18215);

        let e = AutoencoderKLConfig::from_json(r#"{"_class_name": "AutoencoderTiny"}"#).unwrap_err().to_string();
        assert!(e.contains("AutoencoderTiny"), "{e}");
        let e = AutoencoderKLConfig::from_json(r#"{"block_out_channels": [48], "norm_num_groups": 32}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("48") && e.contains("norm_num_groups"), "{e}");
        let e = AutoencoderKLConfig::from_json(r#"{"down_block_types": ["AttnDownEncoderBlock2D"]}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("AttnDownEncoderBlock2D"), "{e}");
        let e = AutoencoderKLConfig::from_json(r#"{"block_out_channels": [64, 64]}"#).unwrap_err().to_string();
        assert!(e.contains("must match"), "{e}");
        let e = AutoencoderKLConfig::from_json("{ not json").unwrap_err();
        assert!(matches!(e, LoadError::Config { .. }), "{e}");
    }
}
