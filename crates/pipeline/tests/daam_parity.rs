//! DAAM's heat maps (`pipeline::daam`) equal the reference computed with diffusers and PyTorch the
//! way the official code does (scripts/reference/ref_daam.py): DDIM from the same initial latents,
//! every `attn2`'s probabilities of the conditional half summed over the steps, upsampled
//! bicubically per (layer, head), clamped, averaged. Tiny SD-1 and SD-2 fixtures and the bundled
//! classroom model. Tolerance: 1e-4 relative to the largest reference value (f32 throughout).
#![allow(deprecated)]

use burn::tensor::Device;
use diffusion::error::LoadError;
use diffusion::safetensors_file::SafetensorsBytes;
use pipeline::{GenerateParams, ModelFiles, NoHooks, StableDiffusion};
use std::path::{Path, PathBuf};

struct Folder(PathBuf);

impl ModelFiles for Folder {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        Ok(std::fs::read(self.0.join(path)).ok())
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map(|r| r.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        v.sort();
        Ok(v)
    }
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn check(model_dir: &Path, reference: &str) {
    let device = Device::ndarray();
    let mut model = StableDiffusion::load(&mut Folder(model_dir.to_path_buf()), &device).unwrap();
    let path = root().join("tests/fixtures/reference").join(reference).join("daam.safetensors");
    let r = SafetensorsBytes::parse(&path.display().to_string(), std::fs::read(&path).unwrap()).unwrap();
    let meta = r.header.metadata.clone();
    let (init, _) = r.f32("init_latents").unwrap();
    let (want, shape) = r.f32("maps").unwrap();
    let size = model.unet.config().sample_size * model.vae.scale_factor();
    let params = GenerateParams {
        prompt: meta["prompt"].clone(),
        negative_prompt: meta["negative_prompt"].clone(),
        steps: meta["steps"].parse().unwrap(),
        guidance: meta["guidance"].parse().unwrap(),
        height: size,
        width: size,
        seed: 0,
        scheduler: schedulers::SchedulerKind::Ddim,
        latents: Some(init),
        clip_skip: None,
    };
    let (_, layers) = pipeline::daam::recorded(&mut model, |m| m.generate(&params, &mut NoHooks).unwrap());
    assert_eq!(layers.len().to_string(), meta["layers"], "{reference}: cross-attention layers");
    let [lh, lw] = pipeline::daam::latent_size(&model, size, size);
    assert_eq!(shape[1..], [lh, lw]);
    let got = pipeline::daam::aggregate(&layers, lh, lw).unwrap().into_data().try_to_vec::<f32>().unwrap();
    let got = &got[..want.len()];
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    let diff = got.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
    assert!(diff <= 1e-4, "{reference}: maps differ from the PyTorch DAAM by {diff:e} (relative)");
    let encoding = model.tokenizer.encode(&params.prompt);
    assert_eq!(shape[0], encoding.n_tokens, "{reference}: rows SOT + tokens + EOT");
}

#[test]
fn tiny_sd1_maps_match_pytorch_daam() {
    check(&root().join("tests/fixtures/tiny-sd1"), "tiny-sd1");
}

#[test]
fn tiny_sd2_maps_match_pytorch_daam() {
    check(&root().join("tests/fixtures/tiny-sd2"), "tiny-sd2");
}

#[test]
fn classroom_maps_match_pytorch_daam() {
    check(&root().join("models/classroom"), "classroom");
}
