//! Unit checks of the portable parts: the worker's JSON parameters and the model-folder paths.

use schedulers::SchedulerKind;
use studio_wasm::engine::StudioParams;
use studio_wasm::files::{check_components, list_dir, normalize_paths};

fn params() -> StudioParams {
    StudioParams::from_json(
        r#"{"prompt":"a red star","steps":3,"guidance":7.5,"width":16,"height":16,"seed":7,"scheduler":"euler-a"}"#,
    )
    .unwrap()
}

#[test]
fn parses_worker_json_with_defaults() {
    let p = params();
    assert_eq!(p.negative_prompt, "");
    assert_eq!(p.clip_skip, None);
    assert_eq!(p.preview_every, 0);
    let g = p.to_generate_params().unwrap();
    assert_eq!(g.scheduler, SchedulerKind::EulerAncestral);
    assert_eq!((g.steps, g.width, g.height, g.seed), (3, 16, 16, 7));
    // Unknown fields are a protocol mismatch between worker and wasm, not something to ignore.
    assert!(
        StudioParams::from_json(
            r#"{"prompt":"","steps":1,"guidance":1,"width":8,"height":8,"seed":0,"scheduler":"ddim","x":1}"#
        )
        .is_err()
    );
}

#[test]
fn rejects_bad_values_with_a_reason() {
    let mut p = params();
    p.scheduler = "no-such-sampler".into();
    let msg = p.to_generate_params().unwrap_err().to_string();
    assert!(msg.contains("unknown scheduler `no-such-sampler`") && msg.contains("choose one of ddim, euler"), "{msg}");
    let mut p = params();
    p.steps = 0;
    assert!(p.to_generate_params().unwrap_err().to_string().contains("steps must be between 1 and 500"));
    let mut p = params();
    p.guidance = f64::NAN;
    assert!(p.to_generate_params().unwrap_err().to_string().contains("guidance"));
    let mut p = params();
    p.width = 4096;
    assert!(p.to_generate_params().unwrap_err().to_string().contains("width must be between 1 and 2048"));
}

#[test]
fn lists_only_direct_children() {
    let paths = ["unet/config.json", "unet/a.safetensors", "unet/sub/x", "unetx/y", "model_index.json"];
    assert_eq!(list_dir(paths, "unet"), vec!["a.safetensors", "config.json"]);
    assert_eq!(list_dir(paths, "unet/"), vec!["a.safetensors", "config.json"]);
    assert_eq!(list_dir(paths, ""), vec!["model_index.json"]);
    assert!(list_dir(paths, "vae").is_empty());
}

#[test]
fn strips_the_picked_folder_name_only_when_shared() {
    let picked: Vec<String> =
        ["sd/unet/config.json", "sd/vae/config.json", "sd\\tokenizer\\vocab.json"].map(String::from).to_vec();
    let n: Vec<String> = normalize_paths(&picked).into_iter().map(|(p, _)| p).collect();
    assert_eq!(n, vec!["unet/config.json", "vae/config.json", "tokenizer/vocab.json"]);
    let plain: Vec<String> = ["unet/config.json", "./vae/config.json"].map(String::from).to_vec();
    let n: Vec<String> = normalize_paths(&plain).into_iter().map(|(p, _)| p).collect();
    assert_eq!(n, vec!["unet/config.json", "vae/config.json"]);
    // Two different top folders: nothing is stripped.
    let mixed: Vec<String> = ["a/unet/config.json", "b/vae/config.json"].map(String::from).to_vec();
    let n: Vec<String> = normalize_paths(&mixed).into_iter().map(|(p, _)| p).collect();
    assert_eq!(n, vec!["a/unet/config.json", "b/vae/config.json"]);
}

#[test]
fn names_every_missing_component_and_what_is_there() {
    let paths = ["unet/config.json", "tokenizer/vocab.json", "text_encoder/config.json", "model_index.json"];
    let msg = check_components(paths).unwrap_err().to_string();
    assert!(msg.contains("vae/, scheduler/"), "{msg}");
    assert!(msg.contains("model_index.json, text_encoder, tokenizer, unet"), "{msg}");
    // tokenizer/ is optional: the built-in CLIP vocabulary stands in.
    assert!(check_components(["unet/a", "vae/a", "text_encoder/a", "scheduler/a"]).is_ok());
}
