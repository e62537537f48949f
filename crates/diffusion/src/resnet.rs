//! `ResnetBlock2D` (diffusers `models/resnet.py`), `time_embedding_norm="default"` only — the
//! variant every SD 1.x/2.x UNet and VAE uses. Also `Downsample2D` / `Upsample2D` (conv variants).

use crate::nn::{Conv2d, GroupNorm, Linear};
use crate::weights::WeightLoader;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;
use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};

/// `ResnetBlock2D`: `out = (shortcut(x) + conv2(silu(norm2(conv1(silu(norm1(x))) + temb)))) / output_scale_factor`.
#[derive(Debug, Clone)]
pub struct ResnetBlock2D {
    pub norm1: GroupNorm,
    pub conv1: Conv2d,
    /// `Linear(temb_channels, out_channels)`; absent in the VAE (`temb_channels=None`).
    pub time_emb_proj: Option<Linear>,
    pub norm2: GroupNorm,
    pub conv2: Conv2d,
    /// 1×1 conv when `in_channels != out_channels`.
    pub conv_shortcut: Option<Conv2d>,
    pub output_scale_factor: f64,
}

/// Construction parameters of a [`ResnetBlock2D`].
#[derive(Debug, Clone, Copy)]
pub struct ResnetBlock2DConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub temb_channels: Option<usize>,
    pub groups: usize,
    pub eps: f64,
    pub output_scale_factor: f64,
}

impl ResnetBlock2D {
    /// Loads the block under `prefix` (e.g. `down_blocks.0.resnets.1`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: ResnetBlock2DConfig) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        Self {
            norm1: GroupNorm::load(w, &p("norm1"), c.groups, c.in_channels, c.eps),
            conv1: Conv2d::load(w, &p("conv1"), c.in_channels, c.out_channels, 3, 1, 1),
            time_emb_proj: c.temb_channels.map(|t| Linear::load(w, &p("time_emb_proj"), t, c.out_channels, true)),
            norm2: GroupNorm::load(w, &p("norm2"), c.groups, c.out_channels, c.eps),
            conv2: Conv2d::load(w, &p("conv2"), c.out_channels, c.out_channels, 3, 1, 1),
            conv_shortcut: (c.in_channels != c.out_channels)
                .then(|| Conv2d::load(w, &p("conv_shortcut"), c.in_channels, c.out_channels, 1, 1, 0)),
            output_scale_factor: c.output_scale_factor,
        }
    }

    /// `x`: `[b, c_in, h, w]`, `temb`: `[b, temb_channels]` → `[b, c_out, h, w]`.
    pub fn forward(&self, x: Tensor<4>, temb: Option<&Tensor<2>>) -> Tensor<4> {
        let mut h = self.conv1.forward(silu(self.norm1.forward(x.clone())));
        if let (Some(proj), Some(t)) = (&self.time_emb_proj, temb) {
            let t = proj.forward(silu(t.clone()));
            let [b, c] = t.dims();
            h = h + t.reshape([b, c, 1, 1]);
        }
        let h = self.conv2.forward(silu(self.norm2.forward(h)));
        let x = match &self.conv_shortcut {
            Some(s) => s.forward(x),
            None => x,
        };
        let out = x + h;
        if self.output_scale_factor == 1.0 { out } else { out / self.output_scale_factor }
    }
}

/// `Downsample2D` with `use_conv=True`: a 3×3 stride-2 conv named `conv`. With `padding=0`
/// (VAE encoder) diffusers pads the input by (0, 1, 0, 1) first.
#[derive(Debug, Clone)]
pub struct Downsample2D {
    pub conv: Conv2d,
    /// diffusers' `padding` argument: 1 in the UNet, 0 in the VAE encoder.
    pub padding: usize,
}

impl Downsample2D {
    pub fn load(w: &mut WeightLoader, prefix: &str, channels: usize, out_channels: usize, padding: usize) -> Self {
        Self { conv: Conv2d::load(w, &format!("{prefix}.conv"), channels, out_channels, 3, 2, padding), padding }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if self.padding == 0 {
            // F.pad(x, (0, 1, 0, 1)): one zero column on the right, one zero row at the bottom.
            let [b, c, h, w] = x.dims();
            let device = x.device();
            let x = Tensor::cat(vec![x, Tensor::zeros([b, c, h, 1], &device)], 3);
            let x = Tensor::cat(vec![x, Tensor::zeros([b, c, 1, w + 1], &device)], 2);
            self.conv.forward(x)
        } else {
            self.conv.forward(x)
        }
    }
}

/// `Upsample2D` with `use_conv=True`: nearest ×2 (or to `output_size`), then a 3×3 conv `conv`.
#[derive(Debug, Clone)]
pub struct Upsample2D {
    pub conv: Conv2d,
}

impl Upsample2D {
    pub fn load(w: &mut WeightLoader, prefix: &str, channels: usize, out_channels: usize) -> Self {
        Self { conv: Conv2d::load(w, &format!("{prefix}.conv"), channels, out_channels, 3, 1, 1) }
    }

    /// `output_size` (`[h, w]`) is given by the UNet when a skip connection has an odd size.
    pub fn forward(&self, x: Tensor<4>, output_size: Option<[usize; 2]>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let size = output_size.unwrap_or([h * 2, w * 2]);
        let x = interpolate(x, InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size));
        self.conv.forward(x)
    }
}
