//! SPM / LoRA adapters on the tiny fixture models equal diffusers' UNet with the same adapters
//! merged the official way, and Facilitated Transport permeabilities equal `infer_spm.py`'s
//! (references: scripts/reference/spm_reference.py → tests/fixtures/reference/spm/).
//! Tolerances: UNet outputs and pipeline latents 1e-4 relative to the largest reference value
//! (f32 throughout); permeabilities 1e-4 absolute (they lie in [0, 1]); token overlaps exact.
#![allow(deprecated)]

use burn::tensor::{Device, Tensor, TensorData};
use diffusion::error::LoadError;
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use diffusion::unet_2d_condition::UNet2DConditionModel;
use erasure::EraseError;
use erasure::adapters::{AdapterStack, SpmComposition};
use erasure::facilitated_transport::special_token_ids;
use erasure::lora::LoraFile;
use erasure::spm::Spm;
use erasure::text::ModelEncoder;
use pipeline::{GenerateParams, ModelFiles, NoHooks, StableDiffusion};
use std::collections::BTreeMap;
use std::path::PathBuf;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn spm_dir() -> PathBuf {
    fixtures().join("reference/spm")
}

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

fn load(model: &str) -> StableDiffusion {
    load_on(model, &Device::ndarray())
}

fn load_on(model: &str, device: &Device) -> StableDiffusion {
    StableDiffusion::load(&mut Folder(fixtures().join(model)), device).unwrap()
}

fn reference() -> SafetensorsBytes {
    SafetensorsBytes::parse("unet.safetensors", std::fs::read(spm_dir().join("unet.safetensors")).unwrap()).unwrap()
}

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(spm_dir().join(name)).unwrap()
}

fn spm(name: &str) -> Spm {
    Spm::parse(name, bytes(name)).unwrap()
}

fn vec4(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec().unwrap()
}

/// `unet(sample, timesteps, ehs)` on the reference inputs of `prefix` (`sd1` / `sd2`).
fn run_unet(unet: &UNet2DConditionModel, r: &SafetensorsBytes, prefix: &str) -> Vec<f32> {
    run_unet_on(unet, r, prefix, &Device::ndarray())
}

fn run_unet_on(unet: &UNet2DConditionModel, r: &SafetensorsBytes, prefix: &str, device: &Device) -> Vec<f32> {
    let device = device.clone();
    let (s, ss) = r.f32(&format!("{prefix}.sample")).unwrap();
    let (t, _) = r.f32(&format!("{prefix}.timesteps")).unwrap();
    let (e, es) = r.f32(&format!("{prefix}.ehs")).unwrap();
    let sample = Tensor::<4>::from_data(TensorData::new(s, [ss[0], ss[1], ss[2], ss[3]]), &device);
    let ts = Tensor::<1>::from_data(TensorData::new(t.clone(), [t.len()]), &device);
    let ehs = Tensor::<3>::from_data(TensorData::new(e, [es[0], es[1], es[2]]), &device);
    vec4(unet.forward(sample, ts, ehs))
}

fn max_rel(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

/// Asserts `got` equals reference `key` within 1e-4 and differs from the base output by more than
/// 5 % (so the check would fail if the adapter were not applied).
fn check(got: &[f32], r: &SafetensorsBytes, key: &str, base: &[f32]) {
    let (want, _) = r.f32(key).unwrap();
    let err = max_rel(got, &want);
    let moved = max_rel(base, &want);
    eprintln!("{key}: rel err {err:e} (adapter moves the output by {moved:.3})");
    assert!(err <= 1e-4, "{key}: differs from diffusers by {err:e} (relative)");
    assert!(moved > 0.05, "{key}: the reference barely differs from the base model ({moved})");
}

/// Every adaptable weight of the UNet, as stored.
fn weights(unet: &mut UNet2DConditionModel) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    unet.for_each_linear(&mut |n, l| {
        out.insert(n.to_owned(), l.weight.clone().into_data().to_vec::<f32>().unwrap());
    });
    unet.for_each_conv_mut(&mut |n, c| {
        out.insert(n.to_owned(), c.weight.clone().into_data().to_vec::<f32>().unwrap());
    });
    out
}

#[test]
fn sd1_spm_lora_and_scales_equal_diffusers_merged_and_detach_restores_bit_for_bit() {
    let r = reference();
    let mut sd = load("tiny-sd1");
    let w0 = weights(&mut sd.unet);
    let base = run_unet(&sd.unet, &r, "sd1");
    let (want_base, _) = r.f32("sd1.base").unwrap();
    assert!(max_rel(&base, &want_base) <= 1e-4);

    let mut stack = AdapterStack::new();
    // 72 layers: 6 Transformer2DModels × (10 linear + 2 conv 1×1).
    assert_eq!(stack.attach_spm(&mut sd.unet, "a", spm("sd1_spm_a.safetensors"), 1.0).unwrap(), 72);
    check(&run_unet(&sd.unet, &r, "sd1"), &r, "sd1.spm_a", &base);

    // A user scale multiplies both factors, like infer_spm.py's assigned multiplier: 0.5 → ¼ ΔW.
    stack.set_scale(&mut sd.unet, "a", 0.5);
    check(&run_unet(&sd.unet, &r, "sd1"), &r, "sd1.spm_a_x0.5", &base);

    stack.detach(&mut sd.unet, "a");
    let lora = LoraFile::parse("sd1_lora_r4.safetensors", bytes("sd1_lora_r4.safetensors")).unwrap();
    assert_eq!(lora.max_rank(), 4);
    stack.attach_lora(&mut sd.unet, "lora", lora, 0.7).unwrap();
    check(&run_unet(&sd.unet, &r, "sd1"), &r, "sd1.lora_x0.7", &base);

    stack.detach_all(&mut sd.unet);
    assert!(stack.is_empty());
    assert_eq!(weights(&mut sd.unet), w0, "detaching must restore every tensor bit for bit");
    assert_eq!(run_unet(&sd.unet, &r, "sd1"), base);
}

#[test]
fn linear_composition_is_linear_in_the_scale() {
    // Official: scale 0.5 on both factors → ¼ ΔW; linear: scale 0.25 → ¼ ΔW. Same weights.
    let r = reference();
    let mut sd = load("tiny-sd1");
    let base = run_unet(&sd.unet, &r, "sd1");
    let mut stack = AdapterStack::with_composition(SpmComposition::Linear);
    stack.attach_spm(&mut sd.unet, "a", spm("sd1_spm_a.safetensors"), 0.25).unwrap();
    check(&run_unet(&sd.unet, &r, "sd1"), &r, "sd1.spm_a_x0.5", &base);
}

#[test]
fn sd2_spm_with_linear_projections_equals_diffusers_merged() {
    let r = reference();
    let mut sd = load("tiny-sd2");
    let base = run_unet(&sd.unet, &r, "sd2");
    let mut stack = AdapterStack::new();
    // f16 file; 84 layers: 7 Transformer2DModels × 12 linear layers.
    assert_eq!(stack.attach_spm(&mut sd.unet, "sd2", spm("sd2_spm.safetensors"), 1.0).unwrap(), 84);
    check(&run_unet(&sd.unet, &r, "sd2"), &r, "sd2.spm", &base);
}

#[test]
fn facilitated_transport_permeabilities_equal_infer_spm() {
    let ft: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(spm_dir().join("ft.json")).unwrap()).unwrap();
    for (model, files) in [
        ("tiny-sd1", vec!["sd1_spm_a.safetensors", "sd1_spm_b.safetensors"]),
        ("tiny-sd2", vec!["sd2_spm.safetensors"]),
    ] {
        let mut sd = load(model);
        let mut stack = AdapterStack::new();
        for f in &files {
            stack.attach_spm(&mut sd.unet, f, spm(f), 1.0).unwrap();
        }
        let special = special_token_ids(&sd.tokenizer);
        let mut enc = ModelEncoder::new(&sd);
        let cases = ft[model].as_array().unwrap();
        assert!(cases.len() >= 6);
        let mut worst = 0f64;
        for case in cases {
            let prompt = case["prompt"].as_str().unwrap();
            let got = stack.permeabilities(prompt, &mut enc, &special).unwrap();
            let concepts: Vec<(String, _)> = got.iter().flat_map(|p| p.concepts.clone()).collect();
            let want_concepts: Vec<&str> =
                case["concepts"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            assert_eq!(concepts.iter().map(|c| c.0.as_str()).collect::<Vec<_>>(), want_concepts);
            for (i, (_, s)) in concepts.iter().enumerate() {
                let cos = case["clipcos"][i].as_f64().unwrap();
                let tok = case["tokenuni"][i].as_f64().unwrap();
                worst = worst.max((s.clipcos - cos).abs());
                assert!(
                    (s.clipcos - cos).abs() <= 1e-4,
                    "{model} `{prompt}` concept {i}: clipcos {} vs {cos}",
                    s.clipcos
                );
                assert!(
                    (s.tokenuni - tok).abs() <= 1e-6,
                    "{model} `{prompt}` concept {i}: tokenuni {} vs {tok}",
                    s.tokenuni
                );
            }
            for (p, want) in got.iter().zip(case["permeability"].as_array().unwrap()) {
                let want = want.as_f64().unwrap();
                assert!(
                    (p.value - want).abs() <= 1e-4,
                    "{model} `{prompt}` {}: permeability {} vs {want}",
                    p.id,
                    p.value
                );
            }
        }
        eprintln!("{model}: FT permeabilities match, largest clipcos difference {worst:e}");
    }
}

#[test]
fn two_spms_under_facilitated_transport_equal_infer_spm_unet_and_pipeline() {
    let r = reference();
    let meta = r.header.metadata.clone();
    let mut sd = load("tiny-sd1");
    let base = run_unet(&sd.unet, &r, "sd1");
    let mut stack = AdapterStack::new();
    stack.attach_spm(&mut sd.unet, "a", spm("sd1_spm_a.safetensors"), 1.0).unwrap();
    stack.attach_spm(&mut sd.unet, "b", spm("sd1_spm_b.safetensors"), 1.0).unwrap();
    let perms = stack.prepare(&mut sd, &meta["pipe.prompt"], true).unwrap();
    let want: Vec<f64> = serde_json::from_str(&meta["pipe.permeability"]).unwrap();
    assert_eq!(perms.len(), 2);
    for (p, w) in perms.iter().zip(&want) {
        assert!((p.value - w).abs() <= 1e-4, "{}: permeability {} vs {w}", p.id, p.value);
        assert!(p.value < 0.95, "the reference prompt should let the SPMs through only partly");
    }
    check(&run_unet(&sd.unet, &r, "sd1"), &r, "sd1.spm_ab_ft", &base);

    let (init, shape) = r.f32("sd1.pipe.init_latents").unwrap();
    let f = sd.vae.scale_factor();
    let params = GenerateParams {
        prompt: meta["pipe.prompt"].clone(),
        negative_prompt: meta["pipe.negative_prompt"].clone(),
        steps: 3,
        guidance: 7.5,
        height: shape[2] * f,
        width: shape[3] * f,
        latents: Some(init),
        ..Default::default()
    };
    let out = sd.generate(&params, &mut NoHooks).unwrap();
    let (want, _) = r.f32("sd1.pipe.latents").unwrap();
    let err = max_rel(&vec4(out.latents), &want);
    eprintln!("pipeline with two SPMs under FT: latents rel err {err:e}");
    assert!(err <= 1e-4, "pipeline latents differ from diffusers by {err:e}");

    // FT off: both SPMs at full strength, which is not what the reference used.
    stack.prepare(&mut sd, &meta["pipe.prompt"], false).unwrap();
    let (want_ft, _) = r.f32("sd1.spm_ab_ft").unwrap();
    assert!(max_rel(&run_unet(&sd.unet, &r, "sd1"), &want_ft) > 1e-2);
}

/// Rewrites an adapter file with `edit` applied to its (name, shape, values) list.
fn rewrite(name: &str, edit: impl Fn(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) -> Vec<u8> {
    let st = SafetensorsBytes::parse(name, bytes(name)).unwrap();
    let mut items: Vec<(String, Vec<usize>, Vec<f32>)> = st
        .header
        .tensors
        .keys()
        .map(|k| {
            let (v, s) = st.f32(k).unwrap();
            (k.clone(), s, v)
        })
        .collect();
    edit(&mut items);
    let tensors: Vec<WriteTensor> =
        items.iter().map(|(n, s, v)| WriteTensor { name: n, shape: s.clone(), data: v, dtype: Dtype::F32 }).collect();
    serialize(&tensors, &st.header.metadata)
}

#[test]
fn sd2_spm_on_sd1_names_the_first_mismatched_tensor_and_both_shapes() {
    let r = reference();
    let mut sd = load("tiny-sd1");
    let w0 = weights(&mut sd.unet);
    let mut stack = AdapterStack::new();
    let err = stack.attach_spm(&mut sd.unet, "x", spm("sd2_spm.safetensors"), 1.0).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, EraseError::WrongShape { .. }), "{msg}");
    // tiny-sd2 has text width 48, tiny-sd1 32: the first mismatch by name is attn2.to_k's down.
    assert!(
        msg.contains("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"),
        "{msg}"
    );
    assert!(msg.contains("[1, 48]") && msg.contains("[1, 32]"), "{msg}");
    assert!(msg.contains("sd2_spm.safetensors"), "{msg}");
    assert!(stack.is_empty());
    assert_eq!(weights(&mut sd.unet), w0, "a failed attach must leave the model unchanged");
    let _ = r;
}

#[test]
fn truncated_unknown_and_non_spm_files_are_clear_errors() {
    // Truncated: the last tensor's bytes are cut off.
    let mut b = bytes("sd1_spm_a.safetensors");
    b.truncate(b.len() - 100);
    let msg = Spm::parse("cut.safetensors", b).unwrap_err().to_string();
    assert!(msg.contains("cut.safetensors") && msg.contains("truncated"), "{msg}");
    let msg = Spm::parse("tiny.safetensors", vec![1, 2, 3]).unwrap_err().to_string();
    assert!(msg.contains("tiny.safetensors"), "{msg}");

    let mut sd = load("tiny-sd1");
    let mut stack = AdapterStack::new();
    // Unknown layer name (attention 7 does not exist).
    let b = rewrite("sd1_spm_a.safetensors", |items| {
        for (n, _, _) in items.iter_mut() {
            if n.starts_with("lora_unet_mid_block_attentions_0_proj_in.") {
                *n = n.replace("attentions_0", "attentions_7");
            }
        }
    });
    let err = stack.attach_spm(&mut sd.unet, "u", Spm::parse("renamed.safetensors", b).unwrap(), 1.0).unwrap_err();
    assert!(matches!(err, EraseError::UnknownTensor { .. }), "{err}");
    assert!(err.to_string().contains("lora_unet_mid_block_attentions_7_proj_in.lora_down.weight"), "{err}");

    // SDXL/ldm names get a hint.
    let b = rewrite("sd1_lora_r4.safetensors", |items| {
        items.retain(|(n, _, _)| n.contains("mid_block_attentions_0_proj_in"));
        for (n, _, _) in items.iter_mut() {
            *n = n.replace("mid_block_attentions_0", "middle_block_1");
        }
    });
    let err = stack.attach_lora(&mut sd.unet, "x", LoraFile::parse("xl.safetensors", b).unwrap(), 1.0).unwrap_err();
    assert!(err.to_string().contains("input_blocks/output_blocks"), "{err}");

    // A plain LoRA is not an SPM (no prompts metadata).
    let err = Spm::parse("lora.safetensors", bytes("sd1_lora_r4.safetensors")).unwrap_err();
    assert!(err.to_string().contains("no `prompts` metadata"), "{err}");

    // Text-encoder layers: an error unless dropped explicitly.
    let b = rewrite("sd1_lora_r4.safetensors", |items| {
        items.push((
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight".into(),
            vec![4, 32],
            vec![0.0; 128],
        ));
        items.push((
            "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight".into(),
            vec![32, 4],
            vec![0.0; 128],
        ));
    });
    let lora = LoraFile::parse("te.safetensors", b).unwrap();
    assert_eq!(lora.text_encoder, vec!["lora_te_text_model_encoder_layers_0_self_attn_q_proj".to_owned()]);
    let err = stack.attach_lora(&mut sd.unet, "te", lora.clone(), 1.0).unwrap_err();
    assert!(err.to_string().contains("text-encoder"), "{err}");
    assert_eq!(stack.attach_lora(&mut sd.unet, "te", lora.without_text_encoder(), 1.0).unwrap(), 72);

    // A layer with down but no up, and mismatched ranks.
    let b = rewrite("sd1_spm_a.safetensors", |items| {
        items.retain(|(n, _, _)| !n.ends_with("mid_block_attentions_0_proj_in.lora_up.weight"))
    });
    let msg = Spm::parse("half.safetensors", b).unwrap_err().to_string();
    assert!(msg.contains("lora_unet_mid_block_attentions_0_proj_in") && msg.contains("lora_up"), "{msg}");
    let b = rewrite("sd1_spm_a.safetensors", |items| {
        for (n, s, v) in items.iter_mut() {
            if n.ends_with("mid_block_attentions_0_proj_in.lora_up.weight") {
                s[1] = 2;
                v.extend(v.clone());
            }
        }
    });
    let msg = Spm::parse("rank.safetensors", b).unwrap_err().to_string();
    assert!(msg.contains("rank"), "{msg}");
}

/// Attaching, FT re-weighting and detaching on a GPU through burn-wgpu (needs a Vulkan/Metal
/// adapter, hence ignored in CI: `cargo test -p erasure --test adapters_parity -- --ignored`).
/// The adapter path reads nothing back, as WebGPU in the browser requires; same tolerance.
#[test]
#[ignore]
fn spms_attach_and_detach_on_wgpu() {
    let device = Device::wgpu_options().init().expect("a wgpu adapter");
    let r = reference();
    let mut sd = load_on("tiny-sd1", &device);
    let base = run_unet_on(&sd.unet, &r, "sd1", &device);
    let mut stack = AdapterStack::new();
    stack.attach_spm(&mut sd.unet, "a", spm("sd1_spm_a.safetensors"), 1.0).unwrap();
    check(&run_unet_on(&sd.unet, &r, "sd1", &device), &r, "sd1.spm_a", &base);
    stack.attach_spm(&mut sd.unet, "b", spm("sd1_spm_b.safetensors"), 1.0).unwrap();
    let want: Vec<f64> = serde_json::from_str(&r.header.metadata["pipe.permeability"]).unwrap();
    stack.set_permeabilities(&mut sd.unet, &[("a".into(), want[0]), ("b".into(), want[1])]);
    check(&run_unet_on(&sd.unet, &r, "sd1", &device), &r, "sd1.spm_ab_ft", &base);
    stack.detach_all(&mut sd.unet);
    assert_eq!(run_unet_on(&sd.unet, &r, "sd1", &device), base);
}
