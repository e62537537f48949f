//! Edits as values: apply, revert, compose, save/load, and every bad input named in the issue
//! (empty concepts, guide count, λ = 0 rank-deficient, NaN, wrong architecture, truncated file).

mod common;

use common::load;
use erasure::text::{ModelEncoder, cross_attention, read_f32};
use erasure::uce::{UceConfig, uce};
use erasure::{Edit, EditStack, EraseError};
use pipeline::{GenerateParams, NoHooks, StableDiffusion};

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn weights(model: &StableDiffusion) -> Vec<Vec<f32>> {
    let mut out = vec![];
    model.unet.for_each_linear(&mut |_, l| out.push(read_f32(&l.weight)));
    out
}

fn edit(model: &StableDiffusion, concept: &str) -> Edit {
    let layers = cross_attention(&model.unet, true, true);
    uce(&mut ModelEncoder::new(model), &layers, &s(&[concept]), &[], &[], &UceConfig::default()).expect("uce")
}

fn image(model: &StableDiffusion) -> Vec<f32> {
    let p = GenerateParams { prompt: "a red circle".into(), steps: 2, height: 32, width: 32, ..Default::default() };
    read_f32(&model.generate(&p, &mut NoHooks).expect("generate").image)
}

#[test]
fn apply_changes_the_image_and_revert_restores_it_bit_for_bit() {
    let mut model = load("tiny-sd1");
    let (w0, img0) = (weights(&model), image(&model));
    let e = edit(&model, "a red circle");
    let mut stack = EditStack::new();
    assert!(stack.base_mismatch(&model.unet, &e).is_none(), "fingerprint of the model it was made on");
    assert_eq!(stack.apply(&mut model.unet, "uce", e.clone(), "mem").unwrap(), e.tensors.len());
    let img1 = image(&model);
    let diff = img0.iter().zip(&img1).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(diff > 1e-3, "the edit changes the image (max diff {diff})");
    // The applied weights are the edit's tensors exactly.
    let mut applied = std::collections::BTreeMap::new();
    model.unet.for_each_linear(&mut |n, l| {
        applied.insert(format!("{n}.weight"), read_f32(&l.weight_torch()));
    });
    for t in &e.tensors {
        assert_eq!(applied[&t.name], t.data, "{}", t.name);
    }
    assert!(stack.revert(&mut model.unet, "uce"));
    assert_eq!(weights(&model), w0, "revert restores the original weights bit for bit");
    assert_eq!(image(&model), img0);
}

#[test]
fn save_load_round_trip_and_composition() {
    let mut model = load("tiny-sd1");
    let w0 = weights(&model);
    let a = edit(&model, "a red circle");
    let b = edit(&model, "a blue square");
    let bytes = a.to_safetensors();
    let back = Edit::from_safetensors("a.safetensors", bytes).unwrap();
    assert_eq!(back.tensors, a.tensors);
    assert_eq!(back.meta.method, "uce");
    assert_eq!(back.meta.concepts, s(&["a red circle"]));
    assert_eq!(back.meta.hyperparameters["lamb"], serde_json::json!(0.5));

    let mut stack = EditStack::new();
    stack.apply(&mut model.unet, "a", a.clone(), "a").unwrap();
    stack.apply(&mut model.unet, "b", b.clone(), "b").unwrap();
    assert_eq!(stack.active(), vec!["a", "b"]);
    // W = W0 + (A − W0) + (B − W0) on a shared tensor.
    let name = &a.tensors[0].name;
    let w0t = read_f32(&stack.original(&model.unet, name).unwrap());
    let mut now = vec![];
    model.unet.for_each_linear(&mut |n, l| {
        if &format!("{n}.weight") == name {
            now = read_f32(&l.weight_torch());
        }
    });
    let (ta, tb) = (&a.tensors[0].data, &b.tensors[0].data);
    let worst =
        (0..now.len()).map(|i| (now[i] - (w0t[i] + (ta[i] - w0t[i]) + (tb[i] - w0t[i]))).abs()).fold(0f32, f32::max);
    assert!(worst < 1e-5, "composition is the sum of the changes ({worst})");
    stack.revert(&mut model.unet, "a");
    assert_eq!(stack.active(), vec!["b"]);
    stack.revert_all(&mut model.unet);
    assert_eq!(weights(&model), w0);
}

#[test]
fn bad_requests_are_clear_errors() {
    let model = load("tiny-sd1");
    let layers = cross_attention(&model.unet, true, true);
    let mut enc = ModelEncoder::new(&model);
    let cfg = UceConfig::default();
    let err = uce(&mut enc, &layers, &[], &[], &[], &cfg).unwrap_err();
    assert!(matches!(err, EraseError::NoConcepts), "{err}");
    let err = uce(&mut enc, &layers, &s(&["a", "b", "c"]), &s(&["x", "y"]), &[], &cfg).unwrap_err();
    assert!(matches!(err, EraseError::GuideCount { concepts: 3, guides: 2 }), "{err}");
    assert!(err.to_string().contains("one per concept"));
    let err = uce(&mut enc, &layers, &s(&["a cat"]), &[], &[], &UceConfig { lamb: 0.0, ..cfg.clone() }).unwrap_err();
    assert!(matches!(err, EraseError::Singular { .. }), "{err}");
    assert!(err.to_string().contains("raise λ"), "{err}");
    let err =
        uce(&mut enc, &layers, &s(&["a cat"]), &[], &[], &UceConfig { erase_scale: f64::NAN, ..cfg }).unwrap_err();
    assert!(matches!(err, EraseError::NotFinite { .. }), "{err}");
}

#[test]
fn bad_edit_files_leave_the_model_untouched() {
    let sd1 = load("tiny-sd1");
    let mut sd2 = load("tiny-sd2");
    let w0 = weights(&sd2);
    let mut stack = EditStack::new();

    // An edit made for SD-1 shapes on the SD-2-style model.
    let e = edit(&sd1, "a cat");
    let err = stack.apply(&mut sd2.unet, "x", e.clone(), "sd1-edit.safetensors").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("sd1-edit.safetensors") && msg.contains("attn2"), "{msg}");
    assert_eq!(weights(&sd2), w0);

    // NaN inside an otherwise valid edit.
    let mut nan = edit(&sd2, "a cat");
    nan.tensors[3].data[7] = f32::NAN;
    let err = stack.apply(&mut sd2.unet, "nan", nan, "nan.safetensors").unwrap_err();
    assert!(matches!(err, EraseError::NotFinite { .. }), "{err}");
    assert_eq!(weights(&sd2), w0);

    // A truncated file.
    let bytes = edit(&sd2, "a cat").to_safetensors();
    let err = Edit::from_safetensors("cut.safetensors", bytes[..bytes.len() / 2].to_vec()).unwrap_err();
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    assert!(stack.active().is_empty());
}
