//! Edit files on the session's model, natively on ndarray with the tiny SD-1 fixture (the
//! browser runs this same code): an edit changes the image, reverting gives the original image
//! back bit for bit, a bad file is refused with its reason and leaves the model as it was, and a
//! file computed on other weights is applied with a warning.

use crate::common::{FIXTURE, Quiet, block_on, load};
use diffusion::safetensors_file::SafetensorsBytes;
use erasure::{Edit, EditMeta, EditStack, EditTensor};
use pipeline::model::StableDiffusion;
use studio_wasm::edits::{self, EditInfo};
use studio_wasm::engine::{self, Outcome, StudioParams};

const TO_V: &str = "mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight";

fn image(model: &StableDiffusion) -> Vec<u8> {
    let p = StudioParams {
        prompt: "a red star".into(),
        negative_prompt: String::new(),
        steps: 3,
        guidance: 7.5,
        width: 16,
        height: 16,
        seed: 9,
        scheduler: "ddim".into(),
        clip_skip: None,
        preview_every: 0,
        attention: false,
        attention_selection: None,
        timeline: false,
        steering: None,
    };
    match block_on(engine::generate(model, &p, &mut Quiet)).unwrap() {
        Outcome::Done(img) => img.rgba,
        Outcome::Cancelled { .. } => panic!("cancelled"),
    }
}

/// The fixture's `TO_V` weight times `scale`, as an edit file's bytes.
fn scaled_to_v(scale: f32, base_model: &str) -> (Vec<u8>, Vec<f32>) {
    let bytes = std::fs::read(format!("{FIXTURE}/unet/diffusion_pytorch_model.safetensors")).unwrap();
    let st = SafetensorsBytes::parse("unet", bytes).unwrap();
    let (w0, shape) = st.f32(TO_V).unwrap();
    let edit = Edit {
        tensors: vec![EditTensor { name: TO_V.into(), shape, data: w0.iter().map(|v| v * scale).collect() }],
        meta: EditMeta {
            method: "test".into(),
            concepts: vec!["star".into()],
            base_model: base_model.into(),
            ..Default::default()
        },
    };
    (edit.to_safetensors(), w0)
}

#[test]
fn an_edit_changes_the_image_and_reverting_restores_it_bit_for_bit() {
    let mut model = load();
    let mut stack = EditStack::new();
    let original = image(&model);

    let (bytes, w0) = scaled_to_v(3.0, "");
    let edit = edits::parse_and_check(&model.unet, "star.safetensors", bytes).unwrap();
    let info = EditInfo::of("e1", "star.safetensors", &edit, None);
    assert_eq!(
        (info.method.as_str(), info.tensors.as_slice(), info.values),
        ("test", [TO_V.to_string()].as_slice(), w0.len())
    );
    assert_eq!(stack.apply(&mut model.unet, "e1", edit, "star.safetensors").unwrap(), 1);
    assert_eq!(stack.active(), vec!["e1"]);
    let edited = image(&model);
    let changed = original.iter().zip(&edited).filter(|(a, b)| a != b).count();
    assert!(changed > 100, "scaling a mid-block to_v by 3 changed only {changed} of {} bytes", original.len());

    // Toggling: off gives the original back exactly, on gives the edited image exactly.
    assert!(stack.revert(&mut model.unet, "e1"));
    assert_eq!(image(&model), original, "reverting must restore the original bit for bit");
    let (bytes, _) = scaled_to_v(3.0, "");
    let edit = edits::parse_and_check(&model.unet, "star.safetensors", bytes).unwrap();
    stack.apply(&mut model.unet, "e1", edit, "star.safetensors").unwrap();
    assert_eq!(image(&model), edited);
    stack.revert_all(&mut model.unet);
    assert!(stack.active().is_empty());
    assert_eq!(image(&model), original);
}

#[test]
fn a_bad_file_is_refused_and_leaves_the_model_as_it_was() {
    let model = load();
    let original = image(&model);
    let msg = edits::parse_and_check(&model.unet, "junk.safetensors", b"not a safetensors file".to_vec())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("junk.safetensors"), "{msg}");

    let wrong = Edit {
        tensors: vec![EditTensor { name: TO_V.into(), shape: vec![64, 768], data: vec![0.0; 64 * 768] }],
        meta: EditMeta::default(),
    };
    let msg = edits::parse_and_check(&model.unet, "sd15.safetensors", wrong.to_safetensors()).unwrap_err().to_string();
    assert!(msg.contains("shape [64, 768]") && msg.contains("[64, 32]") && msg.contains("SD 1.x"), "{msg}");
    assert_eq!(image(&model), original);
}

#[test]
fn a_file_made_for_other_weights_applies_with_a_warning() {
    let model = load();
    let stack = EditStack::new();
    let (_, w0) = scaled_to_v(1.0, "");
    let here = erasure::edit::fingerprint(&[(TO_V.to_string(), vec![64, 32], w0)]);

    let (bytes, _) = scaled_to_v(2.0, &here);
    let edit = edits::parse_and_check(&model.unet, "a.safetensors", bytes).unwrap();
    let originals = edits::originals(&stack, &model.unet, &edit);
    assert_eq!(
        block_on(edits::base_warning(&edit, originals)).unwrap(),
        None,
        "the fingerprint of these weights must match"
    );

    let (bytes, _) = scaled_to_v(2.0, "00000000deadbeef");
    let edit = edits::parse_and_check(&model.unet, "b.safetensors", bytes).unwrap();
    let originals = edits::originals(&stack, &model.unet, &edit);
    let warning = block_on(edits::base_warning(&edit, originals)).unwrap().expect("a different fingerprint warns");
    assert!(warning.contains("00000000deadbeef") && warning.contains(&here), "{warning}");
}
