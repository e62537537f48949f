//! `studio bench`: times the three model stages on SD 1.5-shaped random weights (no download)
//! and on a small model folder, on the chosen devices. With `--baseline FILE` (written by
//! `scripts/reference/bench_diffusers.py` in the same run) it prints ours / PyTorch ratios.

use anyhow::{Context, Result};
use burn::tensor::{Device, Int, Tensor, TensorData};
use diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
use diffusion::clip::{CLIPTextConfig, CLIPTextModel};
use diffusion::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
use diffusion::weights::WeightLoader;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchArgs {
    /// Devices to time, comma-separated: ndarray, wgpu.
    #[arg(long, default_value = "ndarray")]
    devices: String,
    /// Also time these model folders (repeat the flag; e.g. the bundled classroom model and the
    /// next architecture's untrained folder from scripts/classroom/untrained.py), in one run.
    #[arg(long)]
    model: Vec<PathBuf>,
    /// Skip the SD 1.5-shaped model (slow on CPU).
    #[arg(long)]
    no_sd15: bool,
    /// Timed repetitions per stage (the median is reported), after one warm-up run.
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// PyTorch timings (JSON {"<model>/<stage>": seconds}) measured on this machine.
    #[arg(long)]
    baseline: Option<PathBuf>,
    /// Write our timings as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

struct Models {
    text_encoder: CLIPTextModel,
    unet: UNet2DConditionModel,
    vae: AutoencoderKL,
}

fn sync(device: &Device) {
    let _ = device.sync();
}

/// Median seconds of `repeats` runs after one warm-up; `f` must force its result (read back).
fn time(device: &Device, repeats: usize, mut f: impl FnMut()) -> f64 {
    f();
    sync(device);
    let mut t: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let s = Instant::now();
            f();
            sync(device);
            s.elapsed().as_secs_f64()
        })
        .collect();
    t.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    t[t.len() / 2]
}

fn random_sd15(device: &Device) -> Models {
    let te = CLIPTextModel::load(&CLIPTextConfig::sd15(), &mut WeightLoader::random(1, device, "text_encoder"));
    let unet = UNet2DConditionModel::load(&UNet2DConditionConfig::sd15(), &mut WeightLoader::random(2, device, "unet"));
    let vae = AutoencoderKL::load(&AutoencoderKLConfig::sd15(), &mut WeightLoader::random(3, device, "vae"));
    Models { text_encoder: te, unet, vae }
}

fn stages(name: &str, m: &Models, latent: usize, device: &Device, repeats: usize, out: &mut BTreeMap<String, f64>) {
    let ids: Vec<i64> = (0..77)
        .map(|i| if i == 0 { 49406.min(m.text_encoder.config().vocab_size as i64 - 2) } else { (i * 37 % 400) as i64 })
        .collect();
    let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [1, 77]), device);
    let t = time(device, repeats, || {
        let o = m.text_encoder.forward(ids.clone()).expect("valid ids");
        let _ = o.last_hidden_state.into_data();
    });
    out.insert(format!("{name}/text_encoder"), t);
    eprintln!("{name}: text encoder {:.4} s", t);

    let cfg = m.unet.config();
    let ctx_dim = cfg.cross_attention_dim;
    let x =
        Tensor::<4>::random([2, cfg.in_channels, latent, latent], burn::tensor::Distribution::Normal(0.0, 1.0), device);
    let ctx = Tensor::<3>::random([2, 77, ctx_dim], burn::tensor::Distribution::Normal(0.0, 1.0), device);
    let ts = Tensor::<1>::from_data(TensorData::new(vec![500.0f32; 2], [2]), device);
    let t = time(device, repeats, || {
        let _ = m.unet.forward(x.clone(), ts.clone(), ctx.clone()).into_data();
    });
    out.insert(format!("{name}/unet_step_b2"), t);
    eprintln!("{name}: UNet step (batch 2, {latent}×{latent} latents) {:.4} s", t);

    let z = Tensor::<4>::random(
        [1, m.vae.config().latent_channels, latent, latent],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        device,
    );
    let t = time(device, repeats, || {
        let _ = m.vae.decode(z.clone()).into_data();
    });
    out.insert(format!("{name}/vae_decode"), t);
    eprintln!("{name}: VAE decode ({} px) {:.4} s", latent * m.vae.scale_factor(), t);
}

pub fn run(a: BenchArgs) -> Result<()> {
    let mut ours = BTreeMap::new();
    for dev_name in a.devices.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let device = crate::device(dev_name)?;
        for dir in &a.model {
            let sd = crate::load_model(dir, &device)?;
            let latent = sd.unet.config().sample_size;
            let m = Models { text_encoder: sd.text_encoder, unet: sd.unet, vae: sd.vae };
            let name = dir.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            stages(&format!("{dev_name}/{name}"), &m, latent, &device, a.repeats, &mut ours);
        }
        if !a.no_sd15 {
            let m = random_sd15(&device);
            let repeats = if dev_name == "ndarray" { 1 } else { a.repeats };
            stages(&format!("{dev_name}/sd15"), &m, 64, &device, repeats, &mut ours);
        }
    }
    if let Some(path) = &a.json {
        std::fs::write(path, serde_json::to_string_pretty(&ours)?)?;
    }
    let baseline: BTreeMap<String, f64> = match &a.baseline {
        Some(p) => {
            serde_json::from_str(&std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?)?
        }
        None => BTreeMap::new(),
    };
    println!("{:<36} {:>10} {:<28} {:>10}", "stage (ours)", "ours (s)", "baseline (PyTorch, same machine)", "ratio");
    for (k, v) in &ours {
        // Our keys are `<device>/<model>/<stage>`; PyTorch's `<torch device>/<model>/<stage>`:
        // ndarray is compared with PyTorch on the CPU, wgpu with CUDA in fp32 and fp16.
        let (dev, rest) = k.split_once('/').unwrap_or(("", k));
        let tags: &[&str] = if dev == "ndarray" { &["cpu"] } else { &["cuda-fp32", "cuda-fp16"] };
        let mut printed = false;
        for tag in tags {
            if let Some(b) = baseline.get(&format!("{tag}/{rest}")) {
                println!("{k:<36} {v:>10.4} {:<28} {:>9.2}×", format!("{tag} {b:.4} s"), v / b);
                printed = true;
            }
        }
        if !printed {
            println!("{k:<36} {v:>10.4} {:<28} {:>10}", "-", "-");
        }
    }
    Ok(())
}
