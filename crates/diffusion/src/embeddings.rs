//! The UNet's timestep embedding, after diffusers `models/embeddings.py`:
//! [`Timesteps`] (`get_timestep_embedding`, sinusoidal, no weights) and [`TimestepEmbedding`]
//! (`linear_1` → act → `linear_2` → optional post-act, with the optional LCM `cond_proj`).

use crate::error::LoadError;
use crate::nn::Linear;
use crate::weights::WeightLoader;
use burn::tensor::activation::{gelu, relu, silu};
use burn::tensor::{DType, Tensor, TensorData};

/// diffusers `Timesteps(num_channels, flip_sin_to_cos, downscale_freq_shift)` with `scale=1`,
/// `max_period=10000`.
#[derive(Debug, Clone)]
pub struct Timesteps {
    /// Width of the embedding (`block_out_channels[0]` in the UNet).
    pub num_channels: usize,
    /// `true`: `[cos, sin]` order (every SD UNet); `false`: `[sin, cos]`.
    pub flip_sin_to_cos: bool,
    /// `freq_shift` of the UNet config: frequencies are `exp(-ln(10000) * i / (half - shift))`.
    pub downscale_freq_shift: f64,
}

impl Timesteps {
    pub fn new(num_channels: usize, flip_sin_to_cos: bool, downscale_freq_shift: f64) -> Self {
        Self { num_channels, flip_sin_to_cos, downscale_freq_shift }
    }

    /// The `half = num_channels / 2` frequencies, rounded exactly as PyTorch computes them in
    /// f32 (`-ln(10000) * arange` in f32, `/ (half - shift)` in f32, then `exp`). This matters:
    /// at t = 999 one ulp of a frequency moves the sinusoid's argument by ~6e-5 rad.
    pub fn frequencies(&self) -> Vec<f32> {
        let half = self.num_channels / 2;
        let neg_log = -(10000f64.ln()) as f32;
        let denom = (half as f64 - self.downscale_freq_shift) as f32;
        (0..half)
            .map(|i| {
                let exponent = (neg_log * i as f32) / denom;
                (exponent as f64).exp() as f32
            })
            .collect()
    }

    /// `timesteps`: `[batch]` (float, may be fractional) → `[batch, num_channels]`.
    ///
    /// Computed in f32 whatever the model's precision, then cast to the timesteps' dtype, as
    /// diffusers does (`get_timestep_embedding` in f32, `t_emb.to(dtype=sample.dtype)` in
    /// UNet2DConditionModel.get_time_embed): in f16 the argument `t · f` near t = 999 would be
    /// rounded to 0.5 and the sinusoid's phase lost.
    pub fn forward(&self, timesteps: Tensor<1>) -> Tensor<2> {
        let device = timesteps.device();
        let (timesteps, back) = crate::nn::upcast(timesteps);
        let [b] = timesteps.dims();
        let freqs = self.frequencies();
        let half = freqs.len();
        let freqs = Tensor::<1>::from_data(TensorData::new(freqs, [half]), (&device, DType::F32));
        // The argument is rounded to f32 exactly as in PyTorch (one f32 product).
        let args = timesteps.reshape([b, 1]) * freqs.reshape([1, half]);
        // GPU `sin`/`cos` lose accuracy far from 0 (9e-5 at t = 999 on an H200 through Vulkan),
        // so reduce the argument to [-π, π] first (Cody–Waite: k·C1 is exact, k·C2 rounds at
        // ~1e-8). On the CPU this changes results by about one ulp.
        const C1: f32 = 6.28125;
        const C2: f32 = 0.001_935_307_2; // 2π − C1, rounded to f32
        let k = (args.clone() / std::f32::consts::TAU).round();
        let args = args - k.clone() * C1 - k * C2;
        let (sin, cos) = (args.clone().sin(), args.cos());
        let mut parts = if self.flip_sin_to_cos { vec![cos, sin] } else { vec![sin, cos] };
        if self.num_channels % 2 == 1 {
            parts.push(Tensor::zeros([b, 1], (&device, DType::F32)));
        }
        crate::nn::downcast(Tensor::cat(parts, 1), back)
    }
}

/// Activation named by a diffusers config (`get_activation`): the ones SD-family UNets use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    Gelu,
    Relu,
}

impl Activation {
    /// Parses diffusers' activation names (`"silu"`, `"swish"`, `"gelu"`, `"relu"`).
    pub fn parse(name: &str, field: &str) -> Result<Self, LoadError> {
        match name {
            "silu" | "swish" => Ok(Self::Silu),
            "gelu" => Ok(Self::Gelu),
            "relu" => Ok(Self::Relu),
            other => Err(LoadError::Unsupported(format!(
                "unet: `{field}` = \"{other}\" is not supported (supported: silu, swish, gelu, relu)"
            ))),
        }
    }

    pub fn forward<const D: usize>(self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::Silu => silu(x),
            Self::Gelu => gelu(x),
            Self::Relu => relu(x),
        }
    }
}

/// diffusers `TimestepEmbedding`: `linear_2(act(linear_1(sample + cond_proj(condition))))`,
/// then `post_act`.
#[derive(Debug, Clone)]
pub struct TimestepEmbedding {
    pub linear_1: Linear,
    pub act: Activation,
    pub linear_2: Linear,
    pub post_act: Option<Activation>,
    /// `Linear(cond_proj_dim, in_channels, bias=False)`: LCM-distilled UNets embed the guidance
    /// scale `w` here (`time_cond_proj_dim` in the UNet config).
    pub cond_proj: Option<Linear>,
}

/// Construction parameters of a [`TimestepEmbedding`].
#[derive(Debug, Clone, Copy)]
pub struct TimestepEmbeddingConfig {
    pub in_channels: usize,
    pub time_embed_dim: usize,
    pub act: Activation,
    pub post_act: Option<Activation>,
    pub cond_proj_dim: Option<usize>,
}

impl TimestepEmbedding {
    /// Loads `{prefix}.linear_1`, `{prefix}.linear_2` and, if configured, `{prefix}.cond_proj`.
    pub fn load(w: &mut WeightLoader, prefix: &str, c: TimestepEmbeddingConfig) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        Self {
            cond_proj: c.cond_proj_dim.map(|d| Linear::load(w, &p("cond_proj"), d, c.in_channels, false)),
            linear_1: Linear::load(w, &p("linear_1"), c.in_channels, c.time_embed_dim, true),
            act: c.act,
            linear_2: Linear::load(w, &p("linear_2"), c.time_embed_dim, c.time_embed_dim, true),
            post_act: c.post_act,
        }
    }

    /// `sample`: `[batch, in_channels]`, `condition`: `[batch, cond_proj_dim]` → `[batch, time_embed_dim]`.
    /// Like diffusers, a condition is ignored when the model has no `cond_proj`, and a model with
    /// one runs without it when no condition is given.
    pub fn forward(&self, sample: Tensor<2>, condition: Option<Tensor<2>>) -> Tensor<2> {
        let sample = match (&self.cond_proj, condition) {
            (Some(proj), Some(c)) => sample + proj.forward(c),
            _ => sample,
        };
        let h = self.linear_2.forward(self.act.forward(self.linear_1.forward(sample)));
        match self.post_act {
            Some(a) => a.forward(h),
            None => h,
        }
    }
}
