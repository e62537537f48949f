//! The few layer types Stable Diffusion needs, as plain structs holding tensors.
//!
//! We do not use burn-nn's modules: weights come from diffusers checkpoints by name (see
//! `weights.rs`), edits swap single tensors in place, and no training happens here, so a
//! struct with public tensor fields is the simplest faithful form. Shapes follow PyTorch
//! except [`Linear::weight`], stored `[in, out]` (burn's `linear` layout) so the forward pass
//! needs no transpose; [`Linear::weight_torch`] / [`Linear::set_weight_torch`] convert.

use crate::weights::{Init, WeightLoader};
use burn::tensor::module::{conv2d, layer_norm, linear};
use burn::tensor::ops::ConvOptions;
use burn::tensor::Tensor;

/// `torch.nn.Linear`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[d_in, d_out]` (transposed from PyTorch's `[d_out, d_in]`).
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

impl Linear {
    /// Loads `{prefix}.weight` `[d_out, d_in]` and, if `bias`, `{prefix}.bias` `[d_out]`.
    pub fn load(w: &mut WeightLoader, prefix: &str, d_in: usize, d_out: usize, bias: bool) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [d_out, d_in], Init::FanIn(d_in)).transpose();
        let bias = bias.then(|| w.tensor(&format!("{prefix}.bias"), [d_out], Init::Zeros));
        Self { weight, bias }
    }

    /// `x @ Wᵀ + b` for `[..., d_in]` → `[..., d_out]`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        linear(x, self.weight.clone(), self.bias.clone())
    }

    /// The weight in PyTorch layout `[d_out, d_in]`.
    pub fn weight_torch(&self) -> Tensor<2> {
        self.weight.clone().transpose()
    }

    /// Replaces the weight with a PyTorch-layout `[d_out, d_in]` tensor.
    pub fn set_weight_torch(&mut self, w: Tensor<2>) {
        self.weight = w.transpose();
    }

    pub fn d_in(&self) -> usize {
        self.weight.dims()[0]
    }
    pub fn d_out(&self) -> usize {
        self.weight.dims()[1]
    }
}

/// `torch.nn.Conv2d` with square kernels, groups 1.
#[derive(Debug, Clone)]
pub struct Conv2d {
    /// `[out, in, k, k]`.
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: usize,
    pub padding: usize,
}

impl Conv2d {
    pub fn load(w: &mut WeightLoader, prefix: &str, c_in: usize, c_out: usize, kernel: usize, stride: usize, padding: usize) -> Self {
        let weight = w.tensor(&format!("{prefix}.weight"), [c_out, c_in, kernel, kernel], Init::FanIn(c_in * kernel * kernel));
        let bias = Some(w.tensor(&format!("{prefix}.bias"), [c_out], Init::Zeros));
        Self { weight, bias, stride, padding }
    }

    /// `[b, c_in, h, w]` → `[b, c_out, h', w']`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        conv2d(
            x,
            self.weight.clone(),
            self.bias.clone(),
            ConvOptions::new([self.stride, self.stride], [self.padding, self.padding], [1, 1], 1),
        )
    }
}

/// `torch.nn.GroupNorm` (biased variance, like PyTorch), computed in f32.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    pub num_groups: usize,
    pub eps: f64,
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
}

impl GroupNorm {
    pub fn load(w: &mut WeightLoader, prefix: &str, num_groups: usize, channels: usize, eps: f64) -> Self {
        Self {
            num_groups,
            eps,
            weight: w.tensor(&format!("{prefix}.weight"), [channels], Init::Ones),
            bias: w.tensor(&format!("{prefix}.bias"), [channels], Init::Zeros),
        }
    }

    /// Normalises `[b, c, ...]` given as `[b, c, n]` (spatial dims flattened by the caller).
    pub fn forward3(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, c, n] = x.dims();
        let g = self.num_groups;
        let xg = x.reshape([b, g, (c / g) * n]);
        let mean = xg.clone().mean_dim(2);
        let centered = xg - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = (centered / (var + self.eps).sqrt()).reshape([b, c, n]);
        normed * self.weight.clone().reshape([1, c, 1]) + self.bias.clone().reshape([1, c, 1])
    }

    /// Normalises `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        self.forward3(x.reshape([b, c, h * w])).reshape([b, c, h, w])
    }
}

/// `torch.nn.LayerNorm` over the last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    pub eps: f64,
    pub weight: Tensor<1>,
    pub bias: Tensor<1>,
}

impl LayerNorm {
    pub fn load(w: &mut WeightLoader, prefix: &str, dim: usize, eps: f64) -> Self {
        Self {
            eps,
            weight: w.tensor(&format!("{prefix}.weight"), [dim], Init::Ones),
            bias: w.tensor(&format!("{prefix}.bias"), [dim], Init::Zeros),
        }
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        layer_norm(x, self.weight.clone(), Some(self.bias.clone()), self.eps)
    }
}
