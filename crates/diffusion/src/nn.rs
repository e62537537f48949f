//! The few layer types Stable Diffusion needs, as plain structs holding tensors.
//!
//! We do not use burn-nn's modules: weights come from diffusers checkpoints by name (see
//! `weights.rs`), edits swap single tensors in place, and no training happens here, so a
//! struct with public tensor fields is the simplest faithful form. Shapes follow PyTorch
//! except [`Linear::weight`], stored `[in, out]` (burn's `linear` layout) so the forward pass
//! needs no transpose; [`Linear::weight_torch`] / [`Linear::set_weight_torch`] convert.

use crate::weights::{Init, WeightLoader};
use burn::tensor::module::{conv2d, layer_norm, linear};
use burn::tensor::ops::{ConvOptions, PadMode};
use burn::tensor::{DType, Device, FloatDType, Slice, Tensor};

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
    pub fn load(
        w: &mut WeightLoader,
        prefix: &str,
        c_in: usize,
        c_out: usize,
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Self {
        let weight =
            w.tensor(&format!("{prefix}.weight"), [c_out, c_in, kernel, kernel], Init::FanIn(c_in * kernel * kernel));
        let bias = Some(w.tensor(&format!("{prefix}.bias"), [c_out], Init::Zeros));
        Self { weight, bias, stride, padding }
    }

    /// `[b, c_in, h, w]` → `[b, c_out, h', w']`.
    ///
    /// On the CPU backend a convolution with at least [`IM2COL_MIN_OUT`] output channels runs as
    /// im2col + one matrix product ([`Self::forward_im2col`]): burn-ndarray's direct
    /// convolution reaches 5–16 GFLOPS on the UNet's shapes, its matrix product 16–59
    /// (`cargo run --release -p diffusion --example conv_bench`, BENCHMARKS.md). Other backends
    /// (wgpu/WebGPU have implicit-GEMM kernels) use burn's `conv2d`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [c_out, _, _, _] = self.weight.dims();
        if c_out >= IM2COL_MIN_OUT && is_cpu(&x.device()) {
            return self.forward_im2col(x);
        }
        self.forward_direct(x)
    }

    /// burn's `conv2d` on any backend.
    pub fn forward_direct(&self, x: Tensor<4>) -> Tensor<4> {
        let (x, back) = upcast(x);
        let (weight, bias) = (upcast(self.weight.clone()).0, self.bias.clone().map(|b| upcast(b).0));
        downcast(
            conv2d(
                x,
                weight,
                bias,
                ConvOptions::new([self.stride, self.stride], [self.padding, self.padding], [1, 1], 1),
            ),
            back,
        )
    }

    /// The same convolution as `W[o, c·k·k] × cols[c·k·k, h'·w']` per image, where `cols` stacks
    /// the `k²` shifted (and, for a stride, strided) views of the zero-padded input (im2col); a
    /// 1×1 stride-1 kernel is a plain matrix product. The columns are built in bands of output rows so that they never
    /// exceed [`IM2COL_MAX_ELEMS`] floats (a 512 px VAE decode would otherwise need 1.2 GB).
    pub fn forward_im2col(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let [o, _, k, _] = self.weight.dims();
        let (p, st) = (self.padding, self.stride);
        let (ho, wo) = ((h + 2 * p - k) / st + 1, (w + 2 * p - k) / st + 1);
        let weight = self.weight.clone().reshape([1, o, c * k * k]);
        let y = if k == 1 && p == 0 && st == 1 {
            weight.matmul(x.reshape([b, c, h * w])).reshape([b, o, ho, wo])
        } else {
            let xp = if p > 0 { x.pad((p, p, p, p), PadMode::Constant(0.0)) } else { x };
            let band = (IM2COL_MAX_ELEMS / (b * c * k * k * wo).max(1)).clamp(1, ho);
            let mut bands = Vec::with_capacity(ho.div_ceil(band));
            for r0 in (0..ho).step_by(band) {
                let rows = band.min(ho - r0);
                // Tap (kh, kw) reads input rows (r0 + r)·st + kh and columns q·st + kw.
                let strided = |start: usize, n: usize| {
                    Slice::new(start as isize, Some((start + (n - 1) * st + 1) as isize), st as isize)
                };
                let shifted: Vec<Tensor<4>> = (0..k * k)
                    .map(|i| {
                        let (kh, kw) = (i / k, i % k);
                        xp.clone().slice([
                            Slice::from(0..b),
                            Slice::from(0..c),
                            strided(r0 * st + kh, rows),
                            strided(kw, wo),
                        ])
                    })
                    .collect();
                // [b, c, k·k, rows, wo]: flattening (c, kh, kw) matches the weight's [o, c, kh, kw].
                let cols: Tensor<5> = Tensor::stack(shifted, 2);
                let cols = cols.reshape([b, c * k * k, rows * wo]);
                bands.push(weight.clone().matmul(cols).reshape([b, o, rows, wo]));
            }
            if bands.len() == 1 { bands.pop().expect("one band") } else { Tensor::cat(bands, 2) }
        };
        match &self.bias {
            Some(bias) => y + bias.clone().reshape([1, o, 1, 1]),
            None => y,
        }
    }
}

/// Below this many output channels (a UNet's `conv_out` has 4, a VAE's 3) burn's direct
/// convolution is faster than im2col on the CPU.
pub const IM2COL_MIN_OUT: usize = 16;

/// The most floats one im2col band may hold (64 MB in f32).
pub const IM2COL_MAX_ELEMS: usize = 1 << 24;

/// Whether `device` is burn's CPU backend (ndarray), natively or in wasm.
pub fn is_cpu(device: &Device) -> bool {
    // burn 0.22 prints the CPU device as `Device<NdArray(Cpu)>`.
    format!("{device:?}").contains("NdArray(")
}

/// In f16 (or bf16) compute, `x` in f32 and the type to return to: the numerically fragile parts
/// (normalisation statistics, attention scores and softmax) run in f32, as PyTorch's half kernels
/// accumulate them in f32 and diffusers upcasts (`upcast_attention`, `upcast_softmax`). An f32
/// tensor passes through untouched, so the f32 path is bit for bit what it was.
pub fn upcast<const D: usize>(x: Tensor<D>) -> (Tensor<D>, Option<FloatDType>) {
    match x.dtype() {
        DType::F16 => (x.cast(FloatDType::F32), Some(FloatDType::F16)),
        DType::BF16 => (x.cast(FloatDType::F32), Some(FloatDType::BF16)),
        _ => (x, None),
    }
}

/// Makes `device` compute in f16 where it can: burn's per-device default float dtype, set before
/// the device's first tensor, so weights, latents and activations are f16 and [`upcast`] keeps the
/// fragile parts in f32. `Ok(false)` (and nothing changes) where the device has no f16 (a GPU
/// adapter without shader-f16, or the CPU); an error if the device already made tensors in f32.
/// The CLI's `--dtype f16` and the page's WebGPU session both go through here.
pub fn compute_in_f16(device: &mut Device) -> Result<bool, String> {
    if !device.supports_dtype(FloatDType::F16) {
        return Ok(false);
    }
    device.configure(FloatDType::F16).map_err(|e| format!("{e:?}"))?;
    Ok(true)
}

/// Back to the type [`upcast`] came from.
pub fn downcast<const D: usize>(x: Tensor<D>, to: Option<FloatDType>) -> Tensor<D> {
    match to {
        Some(t) => x.cast(t),
        None => x,
    }
}

/// `torch.nn.GroupNorm` (biased variance, like PyTorch), computed in f32 (also in f16 compute:
/// [`upcast`]).
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
        let (x, back) = upcast(x);
        let g = self.num_groups;
        let xg = x.reshape([b, g, (c / g) * n]);
        let mean = xg.clone().mean_dim(2);
        let centered = xg - mean;
        let var = centered.clone().square().mean_dim(2);
        let normed = (centered / (var + self.eps).sqrt()).reshape([b, c, n]);
        let (weight, bias) = (upcast(self.weight.clone()).0, upcast(self.bias.clone()).0);
        downcast(normed * weight.reshape([1, c, 1]) + bias.reshape([1, c, 1]), back)
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
        let (x, back) = upcast(x);
        let (weight, bias) = (upcast(self.weight.clone()).0, upcast(self.bias.clone()).0);
        downcast(layer_norm(x, weight, Some(bias), self.eps), back)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn conv(c_in: usize, c_out: usize, k: usize, padding: usize, device: &Device) -> Conv2d {
        Conv2d {
            weight: Tensor::random([c_out, c_in, k, k], Distribution::Normal(0.0, 0.1), device),
            bias: Some(Tensor::random([c_out], Distribution::Normal(0.0, 1.0), device)),
            stride: 1,
            padding,
        }
    }

    fn max_rel(a: Tensor<4>, b: Tensor<4>) -> f32 {
        let (a, b) = (a.into_data().try_to_vec::<f32>().unwrap(), b.into_data().try_to_vec::<f32>().unwrap());
        assert_eq!(a.len(), b.len());
        let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
        a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / scale
    }

    /// im2col + matmul equals burn's direct convolution: 3×3 padded, 1×1, 3×3 unpadded, and a
    /// 256-row input whose columns (1·64·9·128 floats a row) need two bands.
    #[test]
    #[allow(deprecated)] // burn 0.22's ndarray is the CPU backend the studio is pinned to
    fn im2col_equals_direct_convolution() {
        // The 256-row case needs two bands: a band holds 2²⁴ / (64·9·128) = 227 rows.
        let device = Device::ndarray();
        assert!(is_cpu(&device), "{device:?}");
        for (b, c_in, c_out, k, p, st, h, w) in [
            (2, 8, 16, 3, 1, 1, 9, 7),
            (3, 12, 20, 1, 0, 1, 5, 6),
            (1, 8, 16, 3, 0, 1, 8, 8),
            (2, 8, 16, 3, 1, 2, 9, 8), // SD's Downsample2D: 3×3, stride 2, padding 1
            (1, 8, 16, 3, 0, 2, 9, 9), // the VAE encoder's: padded by the caller, then padding 0
            (1, 64, 16, 3, 1, 1, 256, 128),
        ] {
            let x = Tensor::<4>::random([b, c_in, h, w], Distribution::Normal(0.0, 1.0), &device);
            let mut layer = conv(c_in, c_out, k, p, &device);
            layer.stride = st;
            let direct = layer.forward_direct(x.clone());
            let im2col = layer.forward_im2col(x.clone());
            assert_eq!(direct.dims(), im2col.dims());
            let err = max_rel(direct, im2col);
            assert!(err < 1e-5, "{b}×{c_in}→{c_out} k{k} p{p} s{st} {h}×{w}: relative error {err}");
        }
    }
}
