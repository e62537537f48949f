//! Benchmark: the CPU convolution of `nn::Conv2d` (im2col + matrix product) against burn-ndarray's
//! direct `conv2d` (`Conv2d::forward_direct`, the baseline) on UNet/VAE shapes, same run.
//!
//! `cargo run --release -p diffusion --example conv_bench`
use burn::tensor::{Device, Distribution, Tensor};
use diffusion::nn::Conv2d;
use std::time::Instant;

fn median(mut f: impl FnMut(), n: usize) -> f64 {
    f();
    let mut t: Vec<f64> = (0..n)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.total_cmp(b));
    t[n / 2]
}

#[allow(deprecated)] // burn 0.22's ndarray is the CPU backend the studio is pinned to
fn main() {
    let dev = Device::ndarray();
    println!("| shape (batch, in → out, size, kernel) | burn conv2d ms | GFLOPS | im2col ms | GFLOPS | speed-up |");
    println!("|---|---|---|---|---|---|");
    let shapes = [
        ("classroom UNet 128 ch", 2, 128, 128, 16, 3),
        ("classroom UNet 128 ch, batch 32", 32, 128, 128, 16, 3),
        ("classroom UNet 1×1, batch 32", 32, 128, 128, 16, 1),
        ("SD 1.5 UNet 320 ch", 2, 320, 320, 64, 3),
        ("SD 1.5 UNet 640 ch", 2, 640, 640, 32, 3),
        ("SD 1.5 UNet 1280 ch", 2, 1280, 1280, 16, 3),
    ];
    for (name, bs, c, o, hw, k) in shapes {
        let x = Tensor::<4>::random([bs, c, hw, hw], Distribution::Normal(0.0, 1.0), &dev);
        let layer = Conv2d {
            weight: Tensor::random([o, c, k, k], Distribution::Normal(0.0, 0.05), &dev),
            bias: Some(Tensor::random([o], Distribution::Normal(0.0, 1.0), &dev)),
            stride: 1,
            padding: k / 2,
        };
        let ta = median(|| drop(layer.forward_direct(x.clone()).into_data()), 3);
        let tb = median(|| drop(layer.forward_im2col(x.clone()).into_data()), 3);
        let gflop = 2.0 * (bs * o * c * k * k * hw * hw) as f64 / 1e9;
        println!(
            "| {name} ({bs}, {c} → {o}, {hw}², {k}×{k}) | {:.1} | {:.1} | {:.1} | {:.1} | {:.1}× |",
            ta * 1e3,
            gflop / ta,
            tb * 1e3,
            gflop / tb,
            ta / tb
        );
    }
}
