//! `studio eval-classroom` end to end on the bundled classroom model: a small slice of the
//! held-out prompts (one per group, one seed, 12 DDIM steps to keep the CPU time of a debug build
//! small) is generated, scored and written as JSON with the layout of metrics.json; and a model
//! folder without an evaluator, or with a corrupt one, is refused clearly.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn studio(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn scores_a_slice_of_the_heldout_prompts() {
    let dir = std::env::temp_dir().join(format!("studio-eval-classroom-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("eval.json");
    let model = root().join("models/classroom");
    let (ok, stdout, stderr) = studio(&[
        "eval-classroom",
        "--model",
        model.to_str().unwrap(),
        "--limit",
        "7",
        "--seeds",
        "1",
        "--steps",
        "12",
        "--batch",
        "7",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    eprintln!("{stdout}");
    assert!(stderr.contains("7 prompts × 1 seeds = 7 images, ddim 12 steps, guidance 3"), "{stderr}");
    assert!(stdout.contains("quality bar (issue 3)") && stdout.contains("skull_indirect"), "{stdout}");

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["prompts"]["n"], 7);
    assert_eq!(v["complete"], true);
    assert_eq!(v["images"]["done"], 7);
    assert_eq!(v["prompts"]["set"], "heldout");
    assert_eq!(v["seeds"], serde_json::json!([0]));
    assert_eq!(v["steps"], 12);
    assert_eq!(v["guidance"], 3.0, "metrics.json's recommended guidance is the default");
    assert_eq!(v["scheduler"], "DDIMScheduler");
    // One prompt of each of the 7 groups (the set is interleaved by group).
    let groups = v["prompts"]["groups"].as_object().unwrap();
    assert_eq!(groups.len(), 7);
    assert!(groups.values().all(|n| n == 1), "{groups:?}");
    let adh = &v["adherence"];
    for key in ["all", "by_group", "n_images", "headline"] {
        assert!(adh[key].is_object(), "adherence.{key} missing: {adh}");
    }
    // Every image is scored for style, n_objects and skull presence/absence.
    assert_eq!(adh["n_images"]["style"], 7);
    assert_eq!(adh["n_images"]["n_objects"], 7);
    assert_eq!(adh["n_images"]["skull"].as_u64().unwrap() + adh["n_images"]["skull_absent"].as_u64().unwrap(), 7);
    assert_eq!(adh["n_images"]["character"], 1);
    assert_eq!(adh["n_images"]["skull"], 2);
    assert_eq!(adh["n_images"]["colour"], 4);
    // Real numbers: the model draws skulls, characters and colours well (91–98 % on the full set).
    let rate = |path: [&str; 2]| adh[path[0]][path[1]].as_f64().unwrap_or_else(|| panic!("{path:?} in {adh}"));
    for (what, r) in [
        ("skull", rate(["all", "skull"])),
        ("character", rate(["all", "character"])),
        ("colour", rate(["all", "colour"])),
    ] {
        eprintln!("{what}: {r}");
        assert!(r >= 0.5, "{what} accuracy {r} on a few images");
    }
    assert!(rate(["all", "skull_absent"]) >= 0.9 && rate(["all", "character_absent"]) >= 0.9, "{adh}");
    let bar = v["quality_bar"].as_object().unwrap();
    assert_eq!(bar.len(), 6);
    assert_eq!(bar["shape"]["bar"], 0.85);
    assert_eq!(v["python_reference"]["comparable_setup"], false);
    assert_eq!(v["python_reference"]["headline"]["shape"], 0.7943);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_model_without_evaluator_is_refused() {
    // A complete diffusers folder with no evaluator/ inside.
    let tiny = root().join("tests/fixtures/tiny-sd1");
    let (ok, _, stderr) =
        studio(&["eval-classroom", "--model", tiny.to_str().unwrap(), "--limit", "1", "--seeds", "1"]);
    assert!(!ok);
    assert!(
        stderr.contains("no evaluator in") && stderr.contains("evaluator/config.json and evaluator/model.safetensors"),
        "{stderr}"
    );

    let (ok, _, stderr) = studio(&["eval-classroom", "--model", "/nonexistent/classroom"]);
    assert!(!ok);
    assert!(stderr.contains("model folder /nonexistent/classroom does not exist"), "{stderr}");

    // An evaluator whose weights are corrupt.
    let dir = std::env::temp_dir().join(format!("studio-eval-corrupt-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("evaluator")).unwrap();
    let src = root().join("models/classroom/evaluator");
    std::fs::copy(src.join("config.json"), dir.join("evaluator/config.json")).unwrap();
    let w = std::fs::read(src.join("model.safetensors")).unwrap();
    std::fs::write(dir.join("evaluator/model.safetensors"), &w[..w.len() - 1000]).unwrap();
    let (ok, _, stderr) = studio(&["eval-classroom", "--model", dir.to_str().unwrap()]);
    assert!(!ok);
    assert!(stderr.contains("loading the evaluator in") && stderr.contains("truncated or corrupt"), "{stderr}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--edit` changes the UNet before generating: an edit that zeroes every cross-attention value
/// projection (`attn2.to_v`) cuts the prompt off, and the first four held-out prompts (combo,
/// style, character, skull), which the unedited model draws right (test above), all miss their
/// shape, colour, character and skull.
#[test]
fn edits_are_applied_before_generating() {
    use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
    let dir = std::env::temp_dir().join(format!("studio-eval-edit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let unet = root().join("models/classroom/unet/diffusion_pytorch_model.safetensors");
    let file = SafetensorsBytes::parse("unet", std::fs::read(unet).unwrap()).unwrap();
    let zeros: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .header
        .tensors
        .iter()
        .filter(|(k, _)| k.contains("attn2.to_v.weight"))
        .map(|(k, info)| (k.clone(), info.shape.clone(), vec![0f32; info.shape.iter().product()]))
        .collect();
    assert_eq!(zeros.len(), 7);
    let tensors: Vec<WriteTensor> =
        zeros.iter().map(|(k, s, d)| WriteTensor { name: k, shape: s.clone(), data: d, dtype: Dtype::F32 }).collect();
    let edit = dir.join("zero_to_v.safetensors");
    std::fs::write(&edit, serialize(&tensors, &Default::default())).unwrap();

    let json = dir.join("eval.json");
    let model = root().join("models/classroom");
    let (ok, _, stderr) = studio(&[
        "eval-classroom",
        "--model",
        model.to_str().unwrap(),
        "--edit",
        edit.to_str().unwrap(),
        "--limit",
        "4",
        "--seeds",
        "1",
        "--steps",
        "12",
        "--batch",
        "4",
        "--json",
        json.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("7 tensor(s)"), "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["edits"][0]["file"], edit.to_str().unwrap());
    let all = &v["adherence"]["all"];
    for k in ["shape", "colour", "character", "skull"] {
        assert_eq!(all[k], 0.0, "{k} with the prompt cut off: {all}");
    }
    std::fs::remove_dir_all(&dir).ok();
}
