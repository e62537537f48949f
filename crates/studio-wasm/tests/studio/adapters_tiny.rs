//! SPM / LoRA adapters through the studio's path (`studio_wasm::adapters`, what the browser
//! runs: Facilitated Transport from embeddings read back asynchronously) equal the CLI's path
//! (`AdapterStack::prepare` with a `ModelEncoder`, `studio generate --spm`) bit for bit on the
//! tiny SD-1 fixture; edits changing under attached adapters and detaching restore the weights
//! bit for bit; bad files are refused with the file named and the model unchanged.

use crate::common::{block_on, load, weights};
use erasure::adapters::AdapterStack;
use erasure::spm::Spm;
use erasure::text::PrecomputedEncoder;
use erasure::{Edit, EditStack};
use pipeline::model::StableDiffusion;
use std::collections::HashMap;
use std::path::Path;
use studio_wasm::adapters::{self, SessionAdapters, file_kind};

const SPM_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/reference/spm");
const EDIT: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors");
const PROMPT: &str = "a photo of mickey on the beach";

fn bytes(name: &str) -> Vec<u8> {
    std::fs::read(Path::new(SPM_DIR).join(name)).unwrap()
}

/// The studio's FT path: the prompts it asks for, encoded asynchronously, then `prepare`.
fn prepare_like_the_browser(a: &mut SessionAdapters, sd: &mut StableDiffusion, prompt: &str) -> Vec<f64> {
    let mut known = HashMap::new();
    for p in a.prompts_to_encode(prompt) {
        let e = block_on(studio_wasm::readback::encode(sd, &p)).unwrap();
        known.insert(p, e);
    }
    a.prepare(sd, prompt, &mut PrecomputedEncoder(known)).unwrap().into_iter().map(|p| p.value).collect()
}

#[test]
fn file_kinds_from_the_header() {
    assert_eq!(file_kind(&bytes("sd1_spm_a.safetensors")), "spm");
    assert_eq!(file_kind(&bytes("sd1_lora_r4.safetensors")), "lora");
    assert_eq!(file_kind(&std::fs::read(EDIT).unwrap()), "edit");
    assert_eq!(file_kind(&[1, 2, 3]), "edit");
    assert_eq!(file_kind(&u64::MAX.to_le_bytes()), "edit");
}

#[test]
fn spm_with_ft_equals_the_cli_path_and_detach_restores_bit_for_bit() {
    // The CLI: AdapterStack::prepare with the model's own (synchronous) encoder.
    let mut cli = load();
    let mut stack = AdapterStack::new();
    stack
        .attach_spm(
            &mut cli.unet,
            "a",
            Spm::parse("sd1_spm_a.safetensors", bytes("sd1_spm_a.safetensors")).unwrap(),
            1.0,
        )
        .unwrap();
    let want: Vec<f64> = stack.prepare(&mut cli, PROMPT, true).unwrap().into_iter().map(|p| p.value).collect();
    let w_cli = weights(&mut cli.unet);

    let mut sd = load();
    let w0 = weights(&mut sd.unet);
    let mut a = SessionAdapters::new();
    let parsed = adapters::parse("sd1_spm_a.safetensors", bytes("sd1_spm_a.safetensors"), "auto").unwrap();
    let info = a.attach(&mut sd.unet, "a", parsed, 1.0).unwrap();
    assert_eq!((info.kind, info.layers, info.rank), ("spm", 72, 1));
    assert_eq!(info.prompts, ["snoopy", "mickey mouse"]);
    let got = prepare_like_the_browser(&mut a, &mut sd, PROMPT);
    assert_eq!(got, want, "permeabilities");
    assert!(want[0] > 0.0 && want[0] < 1.0, "{want:?}");
    assert_eq!(weights(&mut sd.unet), w_cli, "weights under FT must equal the CLI's bit for bit");

    // FT off: permeability 1, as --no-ft.
    a.ft = false;
    assert!(a.prompts_to_encode(PROMPT).is_empty());
    assert_eq!(prepare_like_the_browser(&mut a, &mut sd, PROMPT), [1.0]);
    stack.prepare(&mut cli, PROMPT, false).unwrap();
    assert_eq!(weights(&mut sd.unet), weights(&mut cli.unet), "--no-ft weights");

    // An edit applied and reverted under the attached SPM: the adapters come off and back on.
    let mut edits = EditStack::new();
    let edit = Edit::from_safetensors("edit", std::fs::read(EDIT).unwrap()).unwrap();
    let w_spm = weights(&mut sd.unet);
    a.suspended(&mut sd.unet, |unet| edits.apply(unet, "e", edit, "edit").map_err(Into::into)).unwrap();
    assert_eq!(a.active(), ["a"]);
    assert_ne!(weights(&mut sd.unet), w_spm, "the edit changed nothing");
    a.suspended(&mut sd.unet, |unet| {
        edits.revert_all(unet);
        Ok(())
    })
    .unwrap();
    prepare_like_the_browser(&mut a, &mut sd, PROMPT);
    assert_eq!(weights(&mut sd.unet), w_spm, "SPM after an edit came and went");
    assert!(a.detach(&mut sd.unet, "a"));
    assert_eq!(weights(&mut sd.unet), w0, "detaching must restore every tensor bit for bit");
}

#[test]
fn bad_files_are_refused_and_leave_the_model_unchanged() {
    let mut sd = load();
    let w0 = weights(&mut sd.unet);
    let mut a = SessionAdapters::new();
    let sd2 = adapters::parse("sd2_spm.safetensors", bytes("sd2_spm.safetensors"), "auto").unwrap();
    let msg = a.attach(&mut sd.unet, "x", sd2, 1.0).unwrap_err().to_string();
    assert!(msg.contains("sd2_spm.safetensors") && msg.contains("[1, 48]") && msg.contains("[1, 32]"), "{msg}");
    let mut cut = bytes("sd1_spm_a.safetensors");
    cut.truncate(cut.len() - 100);
    let msg = adapters::parse("cut.safetensors", cut, "auto").unwrap_err().to_string();
    assert!(msg.contains("cut.safetensors") && msg.contains("truncated"), "{msg}");
    let msg = adapters::parse("lora.safetensors", bytes("sd1_lora_r4.safetensors"), "spm").unwrap_err().to_string();
    assert!(msg.contains("prompts") && msg.contains("LoRA"), "{msg}");
    let msg = adapters::parse("edit.safetensors", std::fs::read(EDIT).unwrap(), "auto").unwrap_err().to_string();
    assert!(msg.contains("edit.safetensors") && msg.contains("not an SPM or LoRA"), "{msg}");
    assert!(a.is_empty());
    assert_eq!(weights(&mut sd.unet), w0);
}
