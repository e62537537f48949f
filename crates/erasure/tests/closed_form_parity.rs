//! The closed-form edits equal the PyTorch reference written from the official code
//! (scripts/reference/erasure_reference.py), on an SD-1-style and an SD-2-style tiny model.
//! Tolerance: the edit's change `W' − W` of every tensor within 1e-4 relative to its largest
//! entry (a stricter test than comparing `W'`, which is dominated by the unchanged `W`).

mod common;

use common::{load, reference};
use erasure::Edit;
use erasure::mace_cfr::{MaceConfig, mace_cfr};
use erasure::rece::{ReceConfig, rece};
use erasure::speed::{SpeedConfig, speed};
use erasure::text::{ModelEncoder, cross_attention};
use erasure::time::{TimeConfig, time};
use erasure::uce::{TokenSelection, UceConfig, uce};
use pipeline::StableDiffusion;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// Worst relative error of `W' − W` against the reference, over all tensors of the edit.
fn check(model: &StableDiffusion, edit: &Edit, file: &str) -> f32 {
    let r = reference(file);
    let originals = cross_attention(&model.unet, true, true);
    assert_eq!(edit.tensors.len(), r.header.tensors.len(), "{file}: tensor count");
    let mut worst = 0f32;
    for t in &edit.tensors {
        let (want, shape) = r.f32(&t.name).unwrap_or_else(|| panic!("{file}: reference lacks {}", t.name));
        assert_eq!(shape, t.shape, "{}", t.name);
        let w0 = originals.iter().find(|l| l.tensor_name() == t.name).expect("original");
        let w0 = erasure::linalg::to_row_major(&w0.weight);
        let scale = want.iter().zip(&w0).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
        assert!(scale > 1e-6, "{file}: {} is not changed by the reference edit", t.name);
        let err = t.data.iter().zip(&want).fold(0f32, |m, (a, b)| m.max((a - b).abs())) / scale;
        worst = worst.max(err);
    }
    assert!(worst < 1e-4, "{file}: worst relative error of the change {worst:.3e}");
    worst
}

fn run_all(name: &str) {
    let model = load(name);
    let kv = cross_attention(&model.unet, true, true);
    let v_only = cross_attention(&model.unet, false, true);
    let mut enc = ModelEncoder::new(&model);

    let e = uce(
        &mut enc,
        &kv,
        &s(&["a photo of a cat", "Van Gogh"]),
        &s(&["a photo of a dog", ""]),
        &s(&["a red car", "Monet"]),
        &UceConfig::default(),
    )
    .unwrap();
    println!("{name} uce {:.2e}", check(&model, &e, &format!("erasure/{name}-uce.safetensors")));
    let e = uce(&mut enc, &kv, &s(&["skull"]), &[], &[], &UceConfig::default()).unwrap();
    println!("{name} uce-single {:.2e}", check(&model, &e, &format!("erasure/{name}-uce-single.safetensors")));
    let legacy =
        UceConfig { preserve_scale: Some(0.5), tokens: TokenSelection::LegacyLastWord, ..UceConfig::default() };
    let e = uce(&mut enc, &kv, &s(&["Van Gogh"]), &s(&[""]), &s(&["Monet", "a red car"]), &legacy).unwrap();
    println!("{name} uce-legacy {:.2e}", check(&model, &e, &format!("erasure/{name}-uce-legacy.safetensors")));
    let e = time(
        &mut enc,
        &v_only,
        &s(&["a pack of roses", "an apple"]),
        &s(&["a pack of blue roses", "a green apple"]),
        &TimeConfig::default(),
    )
    .unwrap();
    println!("{name} time {:.2e}", check(&model, &e, &format!("erasure/{name}-time.safetensors")));
    let cfg = ReceConfig { epochs: 2, ..ReceConfig::default() };
    let (e, adv) = rece(&mut enc, &kv, &s(&["skull", "nudity"]), &s(&["", ""]), &[], &cfg).unwrap();
    assert_eq!(adv.len(), 2);
    println!("{name} rece {:.2e}", check(&model, &e, &format!("erasure/{name}-rece.safetensors")));
    let e = mace_cfr(
        &mut enc,
        &kv,
        &s(&["Ann Graham"]),
        &s(&["a woman"]),
        &s(&["a photo of a dog", "a red car on a street", "a painting"]),
        &MaceConfig::default(),
    )
    .unwrap();
    println!("{name} mace {:.2e}", check(&model, &e, &format!("erasure/{name}-mace.safetensors")));

    // SPEED replays the reference's augmentation draws.
    let (draws, _) = reference(&format!("erasure/{name}-speed-draws.safetensors")).f32("draws").expect("draws");
    let mut it = draws.into_iter();
    let mut draw = || it.next().expect("enough recorded draws") as f64;
    let cfg = SpeedConfig { lamb: 0.1, ..SpeedConfig::default() };
    let e = speed(
        &mut enc,
        &v_only,
        &s(&["Van Gogh"]),
        &s(&["a painting"]),
        &s(&["Monet", "a red car", "Van Gogh style"]),
        &cfg,
        &mut draw,
    )
    .unwrap();
    assert!(it.next().is_none(), "every recorded draw is used");
    println!("{name} speed {:.2e}", check(&model, &e, &format!("erasure/{name}-speed.safetensors")));
    let cfg = SpeedConfig { lamb: 0.1, aug_num: 0, ..SpeedConfig::default() };
    let e = speed(&mut enc, &v_only, &s(&["skull"]), &s(&[""]), &[], &cfg, &mut || unreachable!()).unwrap();
    println!("{name} speed-noaug {:.2e}", check(&model, &e, &format!("erasure/{name}-speed-noaug.safetensors")));
}

#[test]
fn closed_form_edits_match_reference_sd1() {
    run_all("tiny-sd1");
}

#[test]
fn closed_form_edits_match_reference_sd2() {
    run_all("tiny-sd2");
}
