//! Guidance and steps default to the model folder's `studio.json` (`pipeline::ModelDefaults`):
//! `studio generate` on the classroom model uses its guidance 3 and 25 steps, on a folder without
//! studio.json diffusers' 7.5 and 50; a flag wins over the file; a malformed file is refused by
//! every command that reads it, naming the file and the key.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn generate(model: &Path, extra: &[&str]) -> String {
    let out = std::env::temp_dir().join(format!("studio-defaults-{}-{}.png", std::process::id(), extra.join("")));
    let mut args =
        vec!["generate", "--model", model.to_str().unwrap(), "--prompt", "a skull", "--out", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    let (ok, log) = studio(&args);
    assert!(ok, "{log}");
    std::fs::remove_file(&out).ok();
    log
}

#[test]
fn generate_takes_guidance_and_steps_from_studio_json() {
    let classroom = root().join("models/classroom");
    let file = classroom.join("studio.json");
    let log = generate(&classroom, &[]);
    let want = format!("generate: guidance 3 ({}), 25 steps ({})", file.display(), file.display());
    assert!(log.contains(&want), "{want}\n{log}");
    assert!(log.contains("step 25/25"), "{log}");
    let log = generate(&classroom, &["--guidance", "5", "--steps", "2"]);
    assert!(log.contains("generate: guidance 5 (--guidance), 2 steps (--steps)") && log.contains("step 2/2"), "{log}");

    // No studio.json: diffusers' StableDiffusionPipeline defaults, as `generate` always had.
    let tiny = root().join("tests/fixtures/tiny-sd1");
    assert!(!tiny.join("studio.json").exists());
    let log = generate(&tiny, &[]);
    assert!(
        log.contains("generate: guidance 7.5 (diffusers' default), 50 steps (diffusers' default)")
            && log.contains("step 50/50"),
        "{log}"
    );
}

#[test]
fn a_malformed_studio_json_is_refused_naming_file_and_key() {
    let dir = std::env::temp_dir().join(format!("studio-bad-defaults-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("evaluator")).unwrap();
    // eval-classroom checks for its evaluator first.
    let src = root().join("models/classroom/evaluator");
    for f in ["config.json", "model.safetensors"] {
        std::fs::copy(src.join(f), dir.join("evaluator").join(f)).unwrap();
    }
    let file = dir.join("studio.json");
    let d = dir.to_str().unwrap();
    std::fs::write(&file, r#"{"guidance_scale": "three", "num_inference_steps": 25}"#).unwrap();
    let want = format!("{}: `guidance_scale` must be a number, found \"three\"", file.display());
    for args in [
        vec!["generate", "--model", d, "--prompt", "x"],
        vec!["eval-classroom", "--model", d],
        vec!["erasure-report", "--model", d, "--concepts", "skull"],
    ] {
        let (ok, log) = studio(&args);
        assert!(!ok && log.contains(&want), "{args:?}: {log}");
    }
    std::fs::write(&file, r#"{"num_inference_steps": 0}"#).unwrap();
    let (ok, log) = studio(&["generate", "--model", d, "--prompt", "x"]);
    assert!(!ok && log.contains("`num_inference_steps` must be a whole number from 1 to 1000, found 0"), "{log}");
    // A flag does not rescue a broken file: the file is wrong and should be fixed.
    std::fs::write(&file, "{").unwrap();
    let (ok, log) = studio(&["generate", "--model", d, "--prompt", "x", "--guidance", "3", "--steps", "2"]);
    assert!(!ok && log.contains(&format!("{} is not valid JSON", file.display())), "{log}");
    std::fs::remove_dir_all(&dir).ok();
}
