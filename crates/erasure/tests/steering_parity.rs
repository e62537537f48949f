//! Steering methods equal to PyTorch re-implementations of the official code
//! (scripts/reference/steering_reference.py) on recorded tensors, within 1e-4 relative to the
//! largest reference value: SLD guidance (4 presets × 16 recorded steps) and two whole runs of
//! diffusers' `StableDiffusionPipelineSafe`; SAFREE's projection, trigger detection and filter
//! step count (classroom model); LEACE's fit and application (checked against concept-erasure
//! 0.2.4 itself when the fixture was made: 5e-8); INLP; Ring-A-Bell's vector. Plus bad inputs.
#![allow(deprecated)]

use burn::tensor::{Device, Tensor, TensorData};
use diffusion::error::LoadError;
use diffusion::safetensors_file::SafetensorsBytes;
use erasure::leace::{self, LeaceConfig, LinearEraser};
use erasure::linalg::Mat;
use erasure::safree::{self, SafreeConfig};
use erasure::sld::{Sld, SldPreset};
use erasure::steering::{Steering, SteeringConfig};
use erasure::text::{ModelEncoder, PromptEncoder};
use erasure::{inlp, ring_a_bell};
use pipeline::{GenerateParams, ModelFiles, NoHooks, StableDiffusion};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn reference(name: &str) -> SafetensorsBytes {
    let path = root().join("tests/fixtures/reference/steering").join(name);
    SafetensorsBytes::parse(name, std::fs::read(&path).expect("fixture (run scripts/reference/steering_reference.py)"))
        .unwrap()
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

fn load(dir: &Path) -> StableDiffusion {
    StableDiffusion::load(&mut Folder(dir.to_path_buf()), &Device::ndarray()).unwrap()
}

fn tiny() -> StableDiffusion {
    load(&root().join("tests/fixtures/tiny-sd1"))
}

fn classroom() -> StableDiffusion {
    load(&root().join("models/classroom"))
}

fn mat(st: &SafetensorsBytes, name: &str) -> Mat {
    let (v, shape) = st.f32(name).unwrap_or_else(|| panic!("no `{name}`"));
    let cols = if shape.len() == 1 { 1 } else { shape[1..].iter().product() };
    Mat::from_fn(shape[0], cols, |r, c| v[r * cols + c] as f64)
}

fn rel(got: &Mat, want: &Mat) -> f64 {
    assert_eq!(got.shape(), want.shape());
    (got - want).amax() / want.amax().max(f64::MIN_POSITIVE)
}

fn rel_f32(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f32, |m, x| m.max(x.abs()));
    got.iter().zip(want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale
}

fn vec4(t: &Tensor<4>) -> Vec<f32> {
    t.clone().into_data().convert::<f32>().to_vec().unwrap()
}

#[test]
fn sld_guidance_equals_the_official_loop_for_all_presets() {
    let r = reference("sld.safetensors");
    let device = Device::ndarray();
    let steps: usize = r.header.metadata["steps"].parse().unwrap();
    let guidance: f64 = r.header.metadata["guidance"].parse().unwrap();
    let (eu, shape) = r.f32("eps_uncond").unwrap();
    let (ec, _) = r.f32("eps_cond").unwrap();
    let (es, _) = r.f32("eps_safety").unwrap();
    let per = eu.len() / steps;
    let step = |v: &[f32], i: usize| {
        Tensor::<4>::from_data(
            TensorData::new(v[i * per..(i + 1) * per].to_vec(), [1, shape[1], shape[2], shape[3]]),
            &device,
        )
    };
    for preset in SldPreset::ALL {
        let (want, _) = r.f32(&format!("{}.guided", preset.name())).unwrap();
        let mut sld = Sld::new(preset.params()).unwrap();
        let mut got = vec![];
        for i in 0..steps {
            got.extend(vec4(&sld.guide(i, &step(&eu, i), &step(&ec, i), &step(&es, i), guidance)));
        }
        let e = rel_f32(&got, &want);
        eprintln!("SLD {}: max rel err {e:e} over {steps} steps", preset.name());
        assert!(e <= 1e-4, "SLD {}: {e:e}", preset.name());
        // The safety term must matter after the warm-up (the test could not fail otherwise).
        let warm = preset.params().warmup_steps.min(steps - 1);
        let cfg: Vec<f32> = (0..per)
            .map(|k| eu[warm * per + k] + guidance as f32 * (ec[warm * per + k] - eu[warm * per + k]))
            .collect();
        if preset.params().warmup_steps < steps {
            assert!(
                rel_f32(&want[warm * per..(warm + 1) * per], &cfg) > 1e-3,
                "{}: SLD changes nothing",
                preset.name()
            );
        }
    }
}

#[test]
fn sld_run_equals_diffusers_safe_pipeline_and_differs_from_plain() {
    let r = reference("sld_e2e.safetensors");
    let model = tiny();
    let (init, _) = r.f32("init_latents").unwrap();
    let md = &r.header.metadata;
    let runs: Vec<(String, usize)> = serde_json::from_str(&md["runs"]).unwrap();
    let size = model.unet.config().sample_size * model.vae.scale_factor();
    for (name, steps) in runs {
        // DDIM is the default scheduler, as in the reference.
        let params = GenerateParams {
            prompt: md["prompt"].clone(),
            steps,
            guidance: 7.5,
            height: size,
            width: size,
            latents: Some(init.clone()),
            ..Default::default()
        };
        let preset: SldPreset = name.parse().unwrap();
        let config = SteeringConfig {
            sld: Some(preset.params()),
            sld_concept: md["safety_concept"].clone(),
            ..Default::default()
        };
        let mut steering = Steering::prepare(&model, &params, config).unwrap();
        assert!(steering.report.sld);
        let out = model.generate(&params, &mut steering).unwrap();
        let (want, _) = r.f32(&format!("{name}.latents")).unwrap();
        let e = rel_f32(&vec4(&out.latents), &want);
        let plain = model.generate(&params, &mut NoHooks).unwrap();
        let d = rel_f32(&vec4(&plain.latents), &want);
        eprintln!("SLD run {name} ({steps} steps): rel err {e:e}; plain run differs by {d:e}");
        assert!(e <= 1e-4, "SLD run {name}: {e:e}");
        assert!(d > 1e-3, "SLD run {name} equals the plain run ({d:e})");
    }
}

#[test]
fn safree_projection_triggers_and_filter_equal_the_official_code() {
    let r = reference("safree.safetensors");
    let md = &r.header.metadata;
    let alpha: f64 = md["alpha"].parse().unwrap();
    let kw = mat(&r, "keyword_pooled");
    let p_c = safree::concept_projection(&kw).unwrap();
    let e = rel(&p_c, &mat(&r, "concept_projection"));
    assert!(e <= 1e-4, "P_C: {e:e}");

    let model = classroom();
    let mut enc = ModelEncoder::new(&model);
    let keywords: Vec<String> = serde_json::from_str(&md["keywords"]).unwrap();
    let prompts: Vec<String> = serde_json::from_str(&md["prompts"]).unwrap();
    // Our encoder gives the same pooled keyword embeddings.
    for (k, word) in keywords.iter().enumerate() {
        let p = enc.encode(word).unwrap().pooled;
        let want = kw.row(k).transpose();
        assert!((&p - &want).amax() / want.amax() <= 1e-4, "keyword `{word}`");
    }
    for (n, prompt) in prompts.iter().enumerate() {
        let text = mat(&r, &format!("p{n}.text_embeds"));
        let masked = mat(&r, &format!("p{n}.masked_pooled"));
        let n_tokens: usize = md[&format!("p{n}.n_tokens")].parse().unwrap();
        let out = safree::project(&text, n_tokens, &masked, &p_c, alpha).unwrap();
        let keep: Vec<bool> = mat(&r, &format!("p{n}.keep")).iter().map(|v| *v > 0.5).collect();
        assert_eq!(out.keep, keep, "`{prompt}`: trigger tokens");
        let dist = Mat::from_column_slice(out.distances.len(), 1, &out.distances);
        assert!(rel(&dist, &mat(&r, &format!("p{n}.distances"))) <= 1e-4);
        let e = rel(&out.embeds, &mat(&r, &format!("p{n}.projected")));
        let beta: f64 = md[&format!("p{n}.beta")].parse().unwrap();
        eprintln!("SAFREE `{prompt}`: triggers {:?}, embeds rel err {e:e}, β {} vs {beta}", out.triggers(), out.beta);
        assert!(e <= 1e-4, "`{prompt}`: projected embeddings {e:e}");
        assert!((out.beta - beta).abs() <= 1e-5, "β {} vs {beta}", out.beta);
        assert_eq!(safree::step_bound(out.beta, 10, false).to_string(), md[&format!("p{n}.steps_bound")]);
        assert_eq!(safree::step_bound(out.beta, 10, true).to_string(), md[&format!("p{n}.steps_bound_artist")]);
        assert!(!out.triggers().is_empty(), "the fixture should exercise the replacement");

        // The masked prompts (token i → id 0) encoded by our text encoder.
        let encoding = model.tokenizer.encode(prompt);
        assert_eq!(encoding.n_tokens, n_tokens);
        let ours = safree::pooled_of_ids(&model, &safree::masked_ids(&encoding)).unwrap();
        let e = rel(&ours, &masked);
        assert!(e <= 1e-4, "`{prompt}`: masked pooled embeddings {e:e}");
    }
    // The skull's word pieces are triggers in the first prompt.
    let n0: usize = md["p0.n_tokens"].parse().unwrap();
    let first = safree::project(&mat(&r, "p0.text_embeds"), n0, &mat(&r, "p0.masked_pooled"), &p_c, alpha).unwrap();
    let pieces: Vec<String> = first
        .triggers()
        .iter()
        .map(|&p| model.tokenizer.decode_token(model.tokenizer.encode(&prompts[0]).ids[p]).unwrap().to_owned())
        .collect();
    assert!(pieces.contains(&"sk".to_owned()) && pieces.contains(&"ll</w>".to_owned()), "{pieces:?}");
}

#[test]
fn leace_fit_and_erasure_equal_concept_erasure() {
    let r = reference("leace.safetensors");
    let x = mat(&r, "x");
    let z: Vec<f64> = mat(&r, "z").iter().copied().collect();
    let e = leace::fit(&x, &z, LeaceConfig::default()).unwrap();
    let err_p = rel(&e.projection(), &mat(&r, "leace.P"));
    let bias = Mat::from_column_slice(e.d_text(), 1, e.bias.as_ref().unwrap().as_slice());
    let err_b = rel(&bias, &mat(&r, "leace.bias"));
    let test = mat(&r, "test_embeds");
    let err_x = rel(&e.apply(&test), &mat(&r, "leace.test_erased"));
    eprintln!("LEACE: P rel err {err_p:e}, bias {err_b:e}, erased embedding {err_x:e}");
    assert!(err_p <= 1e-4 && err_b <= 1e-4 && err_x <= 1e-4);
    assert_eq!(r.header.metadata["leace.mixed"], "False");
    // LEACE's guarantee on its training data: the class means coincide after erasure.
    let xe = e.apply_rows(&x);
    let mean = |m: &Mat, label: f64| -> Mat {
        let rows: Vec<usize> = (0..m.nrows()).filter(|&i| z[i] == label).collect();
        rows.iter().fold(Mat::zeros(1, m.ncols()), |a, &i| a + m.rows(i, 1)) / rows.len() as f64
    };
    let gap_before = (mean(&x, 1.0) - mean(&x, 0.0)).norm();
    let gap_after = (mean(&xe, 1.0) - mean(&xe, 0.0)).norm();
    assert!(gap_before > 0.1 && gap_after < 1e-6 * gap_before, "class-mean gap {gap_before} → {gap_after}");
    // Saved and loaded: the same eraser, in f32.
    let back = LinearEraser::from_safetensors("leace.safetensors", e.to_safetensors()).unwrap();
    assert!(rel(&back.projection(), &e.projection()) <= 1e-6);

    // The trace-constraint branch on its own.
    let (p, u, sigma) = (mat(&r, "mix.P"), mat(&r, "mix.u"), mat(&r, "mix.sigma"));
    let a = leace::constrain_trace(&p, &u, &sigma);
    let d = p.nrows();
    let mixed = &p * a + (Mat::identity(d, d) - &u * u.transpose()) * (1.0 - a);
    let err = rel(&mixed, &mat(&r, "mix.out"));
    assert!(a < 1.0 && err <= 1e-4, "α {a}, {err:e}");
    assert!(((&mixed * &sigma * mixed.transpose()).trace() - sigma.trace()).abs() < 1e-9 * sigma.trace());

    // The samples come from our text encoder as they did from transformers'.
    let model = tiny();
    let list = |k: &str| -> Vec<String> { serde_json::from_str(&r.header.metadata[k]).unwrap() };
    let (xs, zs) =
        leace::encode_samples(&mut ModelEncoder::new(&model), &list("concept_prompts"), &list("other_prompts"))
            .unwrap();
    assert_eq!(zs, z);
    let err = rel(&xs, &x);
    assert!(err <= 1e-4, "samples {err:e}");
}

#[test]
fn inlp_equals_the_reference() {
    let r = reference("leace.safetensors");
    let x = mat(&r, "x");
    let z: Vec<f64> = mat(&r, "z").iter().copied().collect();
    let (e, report) = inlp::fit(&x, &z, inlp::InlpConfig::default()).unwrap();
    let want_acc: Vec<f64> = mat(&r, "inlp.accuracies").iter().copied().collect();
    assert_eq!(report.directions.to_string(), r.header.metadata["inlp.directions"]);
    for (a, b) in report.accuracies.iter().zip(&want_acc) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {want_acc:?}", report.accuracies);
    }
    let err = rel(&e.projection(), &mat(&r, "inlp.P"));
    eprintln!("INLP: {} directions, P rel err {err:e}", report.directions);
    assert!(err <= 1e-4, "{err:e}");
}

#[test]
fn ring_a_bell_vector_equals_rece() {
    let r = reference("ring_a_bell.safetensors");
    let pairs: Vec<(String, String)> = serde_json::from_str(&r.header.metadata["pairs"]).unwrap();
    assert_eq!(pairs.len() % ring_a_bell::BATCH, 2, "the fixture must exercise a partial batch");
    let model = tiny();
    let rab = ring_a_bell::from_prompts(&mut ModelEncoder::new(&model), &pairs, 3.0).unwrap();
    let err = rel(&rab.vector, &mat(&r, "vector"));
    eprintln!("Ring-A-Bell vector rel err {err:e}");
    assert!(err <= 1e-4, "{err:e}");
}

fn tiny_params() -> (StableDiffusion, GenerateParams) {
    let model = tiny();
    let size = model.unet.config().sample_size * model.vae.scale_factor();
    let params = GenerateParams {
        prompt: "a skull on a blue background".into(),
        steps: 4,
        height: size,
        width: size,
        seed: 3,
        ..Default::default()
    };
    (model, params)
}

#[test]
fn combined_steering_runs_and_changes_the_image() {
    let (model, params) = tiny_params();
    let plain = model.generate(&params, &mut NoHooks).unwrap();
    let mut enc = ModelEncoder::new(&model);
    let eraser = leace::fit_prompts(
        &mut enc,
        &["a skull".into(), "a big skull".into()],
        &["a star".into(), "a big moon".into()],
        LeaceConfig::default(),
    )
    .unwrap();
    let rab = ring_a_bell::from_prompts(&mut enc, &[("a skull".into(), "a star".into())], 0.5).unwrap();
    let config = SteeringConfig {
        safree: Some(SafreeConfig::new(vec!["skull".into(), "cranium".into()])),
        eraser: Some(eraser),
        ring_a_bell: Some(rab),
        sld: Some(SldPreset::Max.params()),
        sld_concept: "a skull".into(),
        ..Default::default()
    };
    let mut steering = Steering::prepare(&model, &params, config).unwrap();
    let s = steering.report.safree.clone().unwrap();
    assert_eq!(s.real_tokens, model.tokenizer.encode(&params.prompt).n_tokens - 2);
    let out = model.generate(&params, &mut steering).unwrap();
    let d = rel_f32(&vec4(&out.image), &vec4(&plain.image));
    eprintln!(
        "combined steering: SAFREE triggers {:?}, β {:.3}, bound {}; image differs by {d:e}",
        s.triggers, s.beta, s.bound
    );
    assert!(d > 1e-3, "{d:e}");
    // The stepped Run gives the same result as generate (the browser steps it).
    let mut run = model.start(&params, &mut steering).unwrap();
    while !run.is_done() {
        run.step(&mut steering).unwrap();
    }
    assert!(rel_f32(&vec4(&run.latents), &vec4(&out.latents)) < 1e-6);
}

#[test]
fn bad_inputs_give_clear_errors() {
    let (model, params) = tiny_params();
    // SAFREE without keywords.
    let config =
        SteeringConfig { safree: Some(SafreeConfig::new(SafreeConfig::parse_keywords(" ; "))), ..Default::default() };
    let e = Steering::prepare(&model, &params, config).err().unwrap().to_string();
    assert!(e.contains("SAFREE needs at least one keyword"), "{e}");
    // An unknown SLD preset.
    let e = "ultra".parse::<SldPreset>().unwrap_err().to_string();
    assert!(e.contains("unknown SLD preset `ultra`"), "{e}");
    // SLD without guidance.
    let config = SteeringConfig { sld: Some(SldPreset::Medium.params()), ..Default::default() };
    let e = Steering::prepare(&model, &GenerateParams { guidance: 1.0, ..params.clone() }, config)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("guidance above 1"), "{e}");
    // An eraser fitted for another text width (the classroom model's 192 vs tiny-sd1's 32).
    let r = reference("leace.safetensors");
    let x = mat(&r, "x");
    let z: Vec<f64> = mat(&r, "z").iter().copied().collect();
    let wide = Mat::from_fn(x.nrows(), 192, |i, j| {
        x[(i, j % 32)] * (1.0 + j as f64 * 0.01) + ((i * 7 + j * 3) % 11) as f64 * 1e-3
    });
    let eraser = leace::fit(&wide, &z, LeaceConfig::default()).unwrap();
    let bytes = eraser.to_safetensors();
    let loaded = LinearEraser::from_safetensors("wide.safetensors", bytes.clone()).unwrap();
    let config = SteeringConfig { eraser: Some(loaded), eraser_file: "wide.safetensors".into(), ..Default::default() };
    let e = Steering::prepare(&model, &params, config).err().unwrap().to_string();
    assert!(e.contains("wide.safetensors") && e.contains("text width 192") && e.contains("text width 32"), "{e}");
    // A truncated eraser file.
    let e =
        LinearEraser::from_safetensors("cut.safetensors", bytes[..bytes.len() / 2].to_vec()).unwrap_err().to_string();
    assert!(e.contains("`cut.safetensors` is not a valid eraser file"), "{e}");
    // LEACE with one class only.
    let e = leace::fit(&x, &vec![1.0; x.nrows()], LeaceConfig::default()).unwrap_err().to_string();
    assert!(e.contains("both classes"), "{e}");
    // A Ring-A-Bell vector from another model.
    let rab = ring_a_bell::RingABell { vector: Mat::zeros(77, 192), eta: 3.0 };
    let e = Steering::prepare(&model, &params, SteeringConfig { ring_a_bell: Some(rab), ..Default::default() })
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("computed with another model"), "{e}");
}
