//! The VAE's halves and their blocks, as in diffusers `models/autoencoders/vae.py` (`Encoder`,
//! `Decoder`, `DiagonalGaussianDistribution`) and `models/unets/unet_2d_blocks.py`
//! (`DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`).
//!
//! Only the variants `AutoencoderKL` builds are here: `norm_type="group"` (no spatial norm, no
//! time embedding), SiLU, `resnet_eps=1e-6`, `output_scale_factor=1`. The wrapper with the
//! quant convs and the config lives in `autoencoder_kl.rs`.

use crate::attention::{Attention, AttentionConfig};
use crate::nn::{Conv2d, GroupNorm};
use crate::resnet::{Downsample2D, ResnetBlock2D, ResnetBlock2DConfig, Upsample2D};
use crate::weights::WeightLoader;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// diffusers hard-codes this epsilon for every norm of the VAE (`resnet_eps=1e-6` in vae.py).
const EPS: f64 = 1e-6;

/// A VAE resnet: no time embedding, output scale 1.
fn resnet(w: &mut WeightLoader, prefix: &str, in_channels: usize, out_channels: usize, groups: usize) -> ResnetBlock2D {
    ResnetBlock2D::load(
        w,
        prefix,
        ResnetBlock2DConfig {
            in_channels,
            out_channels,
            temb_channels: None,
            groups,
            eps: EPS,
            output_scale_factor: 1.0,
        },
    )
}

/// `DownEncoderBlock2D`: `num_layers` resnets, then (except at the last level) a stride-2 conv
/// with the VAE's asymmetric (0, 1, 0, 1) padding (`downsample_padding=0`).
#[derive(Debug, Clone)]
pub struct DownEncoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    /// `downsamplers.0`.
    pub downsampler: Option<Downsample2D>,
}

impl DownEncoderBlock2D {
    pub fn load(
        w: &mut WeightLoader,
        prefix: &str,
        in_channels: usize,
        out_channels: usize,
        num_layers: usize,
        groups: usize,
        add_downsample: bool,
    ) -> Self {
        let resnets = (0..num_layers)
            .map(|i| {
                resnet(
                    w,
                    &format!("{prefix}.resnets.{i}"),
                    if i == 0 { in_channels } else { out_channels },
                    out_channels,
                    groups,
                )
            })
            .collect();
        let downsampler = add_downsample
            .then(|| Downsample2D::load(w, &format!("{prefix}.downsamplers.0"), out_channels, out_channels, 0));
        Self { resnets, downsampler }
    }

    /// `[b, c_in, h, w]` → `[b, c_out, h/2, w/2]` (or `[b, c_out, h, w]` at the last level).
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x, None);
        }
        match &self.downsampler {
            Some(d) => d.forward(x),
            None => x,
        }
    }
}

/// `UpDecoderBlock2D`: `num_layers` resnets, then (except at the last level) nearest ×2 + conv.
#[derive(Debug, Clone)]
pub struct UpDecoderBlock2D {
    pub resnets: Vec<ResnetBlock2D>,
    /// `upsamplers.0`.
    pub upsampler: Option<Upsample2D>,
}

impl UpDecoderBlock2D {
    pub fn load(
        w: &mut WeightLoader,
        prefix: &str,
        in_channels: usize,
        out_channels: usize,
        num_layers: usize,
        groups: usize,
        add_upsample: bool,
    ) -> Self {
        let resnets = (0..num_layers)
            .map(|i| {
                resnet(
                    w,
                    &format!("{prefix}.resnets.{i}"),
                    if i == 0 { in_channels } else { out_channels },
                    out_channels,
                    groups,
                )
            })
            .collect();
        let upsampler =
            add_upsample.then(|| Upsample2D::load(w, &format!("{prefix}.upsamplers.0"), out_channels, out_channels));
        Self { resnets, upsampler }
    }

    /// `[b, c_in, h, w]` → `[b, c_out, 2h, 2w]` (or `[b, c_out, h, w]` at the last level).
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for r in &self.resnets {
            x = r.forward(x, None);
        }
        match &self.upsampler {
            Some(u) => u.forward(x, None),
            None => x,
        }
    }
}

/// `UNetMidBlock2D` as the VAE uses it (`num_layers=1`): resnet, spatial self-attention, resnet.
/// The attention has one head as wide as the channels (`attention_head_dim=channels`), its own
/// group norm, bias on q/k/v and a residual connection; `add_attention=false`
/// (`mid_block_add_attention`) leaves just the two resnets.
#[derive(Debug, Clone)]
pub struct UNetMidBlock2D {
    /// `resnets.0`, `resnets.1`.
    pub resnets: Vec<ResnetBlock2D>,
    /// `attentions.0`, absent when `add_attention` is false.
    pub attention: Option<Attention>,
}

impl UNetMidBlock2D {
    pub fn load(w: &mut WeightLoader, prefix: &str, channels: usize, groups: usize, add_attention: bool) -> Self {
        let attention = add_attention.then(|| {
            Attention::load(
                w,
                &format!("{prefix}.attentions.0"),
                AttentionConfig {
                    query_dim: channels,
                    cross_attention_dim: None,
                    heads: 1,
                    dim_head: channels,
                    bias: true,
                    group_norm: Some((groups, EPS)),
                    residual_connection: true,
                    rescale_output_factor: 1.0,
                },
            )
        });
        let resnets = (0..2).map(|i| resnet(w, &format!("{prefix}.resnets.{i}"), channels, channels, groups)).collect();
        Self { resnets, attention }
    }

    /// `[b, c, h, w]` → `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.resnets[0].forward(x, None);
        if let Some(a) = &self.attention {
            x = a.forward_spatial(x);
        }
        self.resnets[1].forward(x, None)
    }
}

/// The shape parameters shared by [`Encoder`] and [`Decoder`] (taken from `AutoencoderKLConfig`).
#[derive(Debug, Clone, PartialEq)]
pub struct VaeHalfConfig {
    /// Image channels: the encoder's input, the decoder's output (3).
    pub image_channels: usize,
    /// Latent channels: half the encoder's output (`double_z`), the decoder's input (4).
    pub latent_channels: usize,
    /// Width of each level, finest first (`[128, 256, 512, 512]` in SD); levels − 1 = number of
    /// ×2 down/up-samplings.
    pub block_out_channels: Vec<usize>,
    /// Resnets per encoder level; the decoder has one more per level (diffusers' `num_layers=layers_per_block + 1`).
    pub layers_per_block: usize,
    pub norm_num_groups: usize,
    pub mid_block_add_attention: bool,
}

/// diffusers `Encoder` with `double_z=True`: image → `[mean, logvar]` stacked on the channels.
#[derive(Debug, Clone)]
pub struct Encoder {
    pub conv_in: Conv2d,
    pub down_blocks: Vec<DownEncoderBlock2D>,
    pub mid_block: UNetMidBlock2D,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Encoder {
    /// Loads `{prefix}.conv_in`, `{prefix}.down_blocks.*`, ... (`prefix` is `encoder`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &VaeHalfConfig) -> Self {
        let ch = &c.block_out_channels;
        let g = c.norm_num_groups;
        let last = *ch.last().expect("block_out_channels is validated non-empty");
        let conv_in = Conv2d::load(w, &format!("{prefix}.conv_in"), c.image_channels, ch[0], 3, 1, 1);
        let down_blocks = (0..ch.len())
            .map(|i| {
                let c_in = if i == 0 { ch[0] } else { ch[i - 1] };
                DownEncoderBlock2D::load(
                    w,
                    &format!("{prefix}.down_blocks.{i}"),
                    c_in,
                    ch[i],
                    c.layers_per_block,
                    g,
                    i + 1 < ch.len(),
                )
            })
            .collect();
        Self {
            conv_in,
            down_blocks,
            mid_block: UNetMidBlock2D::load(w, &format!("{prefix}.mid_block"), last, g, c.mid_block_add_attention),
            conv_norm_out: GroupNorm::load(w, &format!("{prefix}.conv_norm_out"), g, last, EPS),
            conv_out: Conv2d::load(w, &format!("{prefix}.conv_out"), last, 2 * c.latent_channels, 3, 1, 1),
        }
    }

    /// `[b, image_channels, H, W]` → `[b, 2 * latent_channels, H/s, W/s]` with s = 2^(levels−1).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let mut x = self.conv_in.forward(x);
        for block in &self.down_blocks {
            x = block.forward(x);
        }
        let x = self.mid_block.forward(x);
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}

/// diffusers `Decoder` with `norm_type="group"`: latents → image.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub conv_in: Conv2d,
    pub mid_block: UNetMidBlock2D,
    /// Coarsest level first (`up_blocks.0` works at the latent resolution).
    pub up_blocks: Vec<UpDecoderBlock2D>,
    pub conv_norm_out: GroupNorm,
    pub conv_out: Conv2d,
}

impl Decoder {
    /// Loads `{prefix}.conv_in`, `{prefix}.mid_block`, `{prefix}.up_blocks.*`, ... (`prefix` is `decoder`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &VaeHalfConfig) -> Self {
        let rev: Vec<usize> = c.block_out_channels.iter().rev().copied().collect();
        let g = c.norm_num_groups;
        let conv_in = Conv2d::load(w, &format!("{prefix}.conv_in"), c.latent_channels, rev[0], 3, 1, 1);
        let mid_block = UNetMidBlock2D::load(w, &format!("{prefix}.mid_block"), rev[0], g, c.mid_block_add_attention);
        let up_blocks = (0..rev.len())
            .map(|i| {
                let c_in = if i == 0 { rev[0] } else { rev[i - 1] };
                UpDecoderBlock2D::load(
                    w,
                    &format!("{prefix}.up_blocks.{i}"),
                    c_in,
                    rev[i],
                    c.layers_per_block + 1,
                    g,
                    i + 1 < rev.len(),
                )
            })
            .collect();
        let first = c.block_out_channels[0];
        Self {
            conv_in,
            mid_block,
            up_blocks,
            conv_norm_out: GroupNorm::load(w, &format!("{prefix}.conv_norm_out"), g, first, EPS),
            conv_out: Conv2d::load(w, &format!("{prefix}.conv_out"), first, c.image_channels, 3, 1, 1),
        }
    }

    /// `[b, latent_channels, h, w]` → `[b, image_channels, h*s, w*s]` with s = 2^(levels−1).
    pub fn forward(&self, z: Tensor<4>) -> Tensor<4> {
        let mut x = self.mid_block.forward(self.conv_in.forward(z));
        for block in &self.up_blocks {
            x = block.forward(x);
        }
        self.conv_out.forward(silu(self.conv_norm_out.forward(x)))
    }
}

/// diffusers `DiagonalGaussianDistribution`: the encoder's posterior N(mean, exp(logvar)).
#[derive(Debug, Clone)]
pub struct DiagonalGaussian {
    /// `[b, latent_channels, h, w]`.
    pub mean: Tensor<4>,
    /// `[b, latent_channels, h, w]`, clamped to [-30, 20] like diffusers (keeps exp finite).
    pub logvar: Tensor<4>,
}

impl DiagonalGaussian {
    /// Splits the encoder's `[b, 2c, h, w]` output into mean (first c channels) and logvar.
    pub fn from_parameters(parameters: Tensor<4>) -> Self {
        let mut halves = parameters.chunk(2, 1);
        let logvar = halves.pop().expect("chunk(2) gives two halves").clamp(-30.0, 20.0);
        let mean = halves.pop().expect("chunk(2) gives two halves");
        Self { mean, logvar }
    }

    /// `exp(logvar / 2)`, `[b, c, h, w]`.
    pub fn std(&self) -> Tensor<4> {
        (self.logvar.clone() * 0.5).exp()
    }

    /// `mean + std * noise`; the caller draws `noise` ~ N(0, 1) `[b, c, h, w]` so that runs are
    /// reproducible with whatever generator it uses (diffusers' `sample(generator)`).
    pub fn sample(&self, noise: Tensor<4>) -> Tensor<4> {
        self.mean.clone() + self.std() * noise
    }

    /// The distribution's mode (= mean), what img2img pipelines use with `sample_mode="argmax"`.
    pub fn mode(&self) -> Tensor<4> {
        self.mean.clone()
    }
}
