//! The `studio` binary end to end: `generate --latents … --dump …` on the tiny models equals
//! diffusers' `StableDiffusionPipeline` from the same initial latents (tolerance 1e-4 relative;
//! the issue asks 1e-3), and bad inputs exit non-zero with a clear message.

use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn check(model: &str, scheduler: &str) {
    check_with(model, scheduler, &[], 1e-4);
}

/// `generate --latents --dump` with `extra` flags against diffusers' f32 pipeline: the final
/// latents and the decoded image within `tol` relative to their largest magnitude.
fn check_with(model: &str, scheduler: &str, extra: &[&str], tol: f32) {
    let dir =
        std::env::temp_dir().join(format!("studio-cli-{model}-{scheduler}-{}-{}", extra.join(""), std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let reference = SafetensorsBytes::parse(
        "ref",
        std::fs::read(fixtures().join("reference").join(model).join("pipeline.safetensors")).unwrap(),
    )
    .unwrap();
    let (init, shape) = reference.f32("init_latents").unwrap();
    let latents = dir.join("latents.safetensors");
    std::fs::write(
        &latents,
        serialize(&[WriteTensor { name: "latents", shape, data: &init, dtype: Dtype::F32 }], &BTreeMap::new()),
    )
    .unwrap();
    let dump = dir.join("dump.safetensors");
    let png = dir.join("out.png");
    let meta = &reference.header.metadata;
    let model_dir = fixtures().join(model);
    let mut args = vec![
        "generate",
        "--model",
        model_dir.to_str().unwrap(),
        "--prompt",
        &meta["prompt"],
        "--negative-prompt",
        &meta["negative_prompt"],
        "--steps",
        "3",
        "--guidance",
        "7.5",
        "--scheduler",
        scheduler,
        "--latents",
        latents.to_str().unwrap(),
        "--dump",
        dump.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (ok, log) = studio(&args);
    assert!(ok, "{log}");
    let got = SafetensorsBytes::parse("dump", std::fs::read(&dump).unwrap()).unwrap();
    for key in ["latents", "image"] {
        let (g, gs) = got.f32(key).unwrap();
        let (w, ws) = reference.f32(&format!("{scheduler}.{key}")).unwrap();
        assert_eq!(gs, ws, "{key} shape");
        let e = rel_err(&g, &w);
        eprintln!("{model} {scheduler} {extra:?} {key}: rel err {e:e}");
        assert!(e <= tol, "{model} {scheduler} {extra:?} {key}: {e:e} > {tol:e}");
    }
    let png = std::fs::read(&png).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn generate_matches_diffusers_sd1_style() {
    check("tiny-sd1", "ddim");
    check("tiny-sd1", "dpm");
}

#[test]
fn generate_matches_diffusers_sd2_style() {
    check("tiny-sd2", "euler");
}

/// f16 compute (what the page uses on a GPU with shader-f16): f16 weights and activations, matrix
/// products with f32 accumulation, convolutions, normalisation statistics, attention scores and the
/// timestep embedding in f32 (diffusion::nn::upcast), on wgpu (Mesa llvmpipe here, which offers
/// shader-f16), within 1.5e-2 of diffusers in f32. Measured: latents 6.1e-3, image 5.3e-3;
/// diffusers' own fp16 pipeline on the same inputs: 7.9e-3 and 8.1e-3 (PyTorch 2.15 CPU). With
/// burn's f16 convolution (it accumulates in f16) it was 3.9e-2.
#[test]
fn generate_f16_on_wgpu_stays_close_to_diffusers_f32() {
    check_with("tiny-sd1", "ddim", &["--device", "wgpu", "--dtype", "f16"], 1.5e-2);
}

#[test]
fn bad_inputs_exit_with_clear_messages() {
    let m = fixtures().join("tiny-sd1");
    let (ok, log) =
        studio(&["generate", "--model", m.to_str().unwrap(), "--prompt", "x", "--steps", "1", "--dtype", "f16"]);
    assert!(!ok && log.contains("cannot compute in f16") && log.contains("--dtype f32"), "{log}");
    let (ok, log) =
        studio(&["generate", "--model", m.to_str().unwrap(), "--prompt", "x", "--steps", "1", "--dtype", "bf17"]);
    assert!(!ok && log.contains("unknown --dtype `bf17`"), "{log}");
    let (ok, log) = studio(&["generate", "--model", "/nonexistent/model", "--prompt", "x"]);
    assert!(!ok && log.contains("does not exist"), "{log}");
    let m = fixtures().join("tiny-sd1");
    let (ok, log) = studio(&["generate", "--model", m.to_str().unwrap(), "--prompt", "x", "--scheduler", "heun"]);
    assert!(!ok && log.contains("unknown scheduler"), "{log}");
    let (ok, log) =
        studio(&["generate", "--model", m.to_str().unwrap(), "--prompt", "x", "--latents", "/nonexistent.safetensors"]);
    assert!(!ok && log.contains("/nonexistent.safetensors"), "{log}");
    let (ok, log) = studio(&["inspect", fixtures().join("tiny-sd2").to_str().unwrap()]);
    assert!(ok, "{log}");
    assert!(log.contains("use_linear_projection: true") && log.contains("loads: ok"), "{log}");
}
