//! Seeded Gaussian noise — the studio's documented RNG.
//!
//! PyTorch's generator cannot be reproduced bit-for-bit outside PyTorch, so a seed here gives
//! *our* noise, stable across platforms, backends and versions of this crate:
//! `rand::rngs::StdRng::seed_from_u64(seed)` (ChaCha12 in rand 0.9), one `StandardNormal`
//! sample (rand_distr 0.5, ziggurat) per element in row-major order of `[b, c, h, w]`.
//! The initial latents come first from a fresh generator; stochastic schedulers (Euler
//! ancestral, LCM) draw their per-step noise from the same generator afterwards.
//! To match another implementation exactly, pass explicit initial latents instead.

use burn::tensor::{Device, Tensor, TensorData};
use rand::{SeedableRng, rngs::StdRng};
use rand_distr::{Distribution, StandardNormal};

pub struct NoiseGenerator {
    rng: StdRng,
}

impl NoiseGenerator {
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }

    /// Standard normal values, row-major.
    pub fn values(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| StandardNormal.sample(&mut self.rng)).collect()
    }

    /// A `[b, c, h, w]` tensor of standard normal noise.
    pub fn tensor(&mut self, shape: [usize; 4], device: &Device) -> Tensor<4> {
        let v = self.values(shape.iter().product());
        Tensor::from_data(TensorData::new(v, shape), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_noise_and_unit_variance() {
        let a = NoiseGenerator::new(42).values(20_000);
        let b = NoiseGenerator::new(42).values(20_000);
        assert_eq!(a, b);
        let c = NoiseGenerator::new(43).values(20_000);
        assert_ne!(a, c);
        let mean = a.iter().sum::<f32>() / a.len() as f32;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / a.len() as f32;
        assert!(mean.abs() < 0.03, "mean {mean}");
        assert!((var - 1.0).abs() < 0.05, "var {var}");
    }
}
