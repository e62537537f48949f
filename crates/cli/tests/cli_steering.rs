//! `studio generate` with steering flags and `studio fit-eraser`, end to end on the tiny models:
//! `--sld medium` equals diffusers' `StableDiffusionPipelineSafe` (1e-4 relative, fixture from
//! scripts/reference/steering_reference.py), erasers fitted here change the image, SAFREE reports
//! its triggers, and bad inputs exit non-zero with a clear message.

use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tiny() -> String {
    root().join("tests/fixtures/tiny-sd1").display().to_string()
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("studio-cli-steering-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn dumped(path: &PathBuf, key: &str) -> Vec<f32> {
    SafetensorsBytes::parse("dump", std::fs::read(path).unwrap()).unwrap().f32(key).unwrap().0
}

/// `generate` on tiny-sd1 with 4 steps and `extra` flags; returns the dumped image.
fn generate(name: &str, extra: &[&str]) -> (bool, String, Option<Vec<f32>>) {
    let (dump, png) = (tmp(&format!("{name}.safetensors")), tmp(&format!("{name}.png")));
    let (model, d, p) = (tiny(), dump.display().to_string(), png.display().to_string());
    let mut args =
        vec!["generate", "--model", &model, "--prompt", "a skull on a blue background", "--steps", "4", "--seed", "5"];
    args.extend(["--dump", &d, "--out", &p]);
    args.extend(extra);
    let (ok, log) = studio(&args);
    let image = ok.then(|| dumped(&dump, "image"));
    (ok, log, image)
}

#[test]
fn sld_medium_equals_the_safe_pipeline() {
    let reference = SafetensorsBytes::parse(
        "ref",
        std::fs::read(root().join("tests/fixtures/reference/steering/sld_e2e.safetensors")).unwrap(),
    )
    .unwrap();
    let (init, shape) = reference.f32("init_latents").unwrap();
    let latents = tmp("init.safetensors");
    std::fs::write(
        &latents,
        serialize(&[WriteTensor { name: "latents", shape, data: &init, dtype: Dtype::F32 }], &BTreeMap::new()),
    )
    .unwrap();
    let (dump, png) = (tmp("sld.safetensors"), tmp("sld.png"));
    let meta = &reference.header.metadata;
    let (ok, log) = studio(&[
        "generate",
        "--model",
        &tiny(),
        "--prompt",
        &meta["prompt"],
        "--steps",
        "12",
        "--guidance",
        "7.5",
        "--scheduler",
        "ddim",
        "--latents",
        latents.to_str().unwrap(),
        "--sld",
        "medium",
        "--sld-concept",
        &meta["safety_concept"],
        "--dump",
        dump.to_str().unwrap(),
        "--out",
        png.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    assert!(log.contains("SLD: medium preset"), "{log}");
    assert!(log.contains("SLD terms: γ subtracted at 2 of 12 steps"), "medium's warm-up is 10 steps: {log}");
    let e = rel_err(&dumped(&dump, "latents"), &reference.f32("medium.latents").unwrap().0);
    eprintln!("studio generate --sld medium vs StableDiffusionPipelineSafe: rel err {e:e}");
    assert!(e <= 1e-4, "{e:e}");
}

#[test]
fn fitted_erasers_and_safree_change_the_image() {
    let (ok, log, plain) = generate("plain", &[]);
    assert!(ok, "{log}");
    let plain = plain.unwrap();

    let leace = tmp("skull-leace.safetensors");
    let (ok, log) = studio(&[
        "fit-eraser",
        "--model",
        &tiny(),
        "--method",
        "leace",
        "--concept-prompts",
        "a skull;a photo of a skull;a big skull",
        "--other-prompts",
        "a star;a photo of a star;a big moon",
        "--out",
        leace.to_str().unwrap(),
    ]);
    assert!(ok && log.contains("LEACE eraser (rank 1, text width 32)"), "{log}");
    let (ok, log, img) = generate("leace", &["--leace", leace.to_str().unwrap()]);
    assert!(ok && log.contains("LEACE eraser applied"), "{log}");
    let d = rel_err(&img.unwrap(), &plain);
    eprintln!("LEACE changes the image by {d:e}");
    assert!(d > 1e-3, "{d:e}");

    let prompts = tmp("concept.txt");
    std::fs::write(&prompts, "# skull prompts\na skull\n\na photo of a skull\na big skull\n").unwrap();
    let inlp = tmp("skull-inlp.safetensors");
    let (ok, log) = studio(&[
        "fit-eraser",
        "--model",
        &tiny(),
        "--method",
        "inlp",
        "--concept-prompts",
        prompts.to_str().unwrap(),
        "--other-prompts",
        "a star;a photo of a star;a big moon",
        "--iterations",
        "3",
        "--out",
        inlp.to_str().unwrap(),
    ]);
    assert!(
        ok && log.contains("INLP: 3 directions removed") && log.contains("from 3 concept and 3 other prompts"),
        "{log}"
    );
    let (ok, log, img) = generate("inlp", &["--eraser", inlp.to_str().unwrap()]);
    assert!(ok && log.contains("INLP eraser applied"), "{log}");
    assert!(rel_err(&img.unwrap(), &plain) > 1e-3);

    let (ok, log, img) = generate(
        "safree",
        &["--safree", "skull;cranium", "--ring-a-bell", "a skull|a star", "--ring-a-bell-eta", "0.5"],
    );
    assert!(ok && log.contains("SAFREE: ") && log.contains("Ring-A-Bell probe added (η = 0.5)"), "{log}");
    assert!(rel_err(&img.unwrap(), &plain) > 1e-3);
}

/// `--sld-terms`: one entry a step, γ subtracted from the warm-up on, ν growing from zero, μ's
/// coverage a fraction; without SLD the flag is refused.
#[test]
fn sld_terms_are_written_per_step() {
    let terms = tmp("sld-terms.json");
    let (ok, log, _) = generate("sld-terms", &["--sld", "max", "--sld-terms", terms.to_str().unwrap()]);
    assert!(ok, "{log}");
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&terms).unwrap()).unwrap();
    let steps = v.as_array().unwrap();
    assert_eq!(steps.len(), 4, "one entry a step");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["step"], i);
        assert_eq!(s["applied"], true, "max has no warm-up");
        let (rel, cov, gamma, guide) = (
            s["relative"].as_f64().unwrap(),
            s["coverage"].as_f64().unwrap(),
            s["gammaNorm"].as_f64().unwrap(),
            s["guidanceNorm"].as_f64().unwrap(),
        );
        assert!(gamma > 0.0 && guide > 0.0 && (rel - gamma / guide).abs() < 1e-9, "{s}");
        assert!((0.0..=1.0).contains(&cov) && s["meanScale"].as_f64().unwrap() <= cov + 1e-9, "{s}");
        assert!(s["momentumNorm"].as_f64().unwrap() > 0.0, "{s}");
    }
    let (ok, log, _) = generate("sld-terms-alone", &["--sld-terms", terms.to_str().unwrap()]);
    assert!(!ok && log.contains("give --sld weak|medium|strong|max too"), "{log}");
}

#[test]
fn bad_steering_inputs_exit_with_clear_messages() {
    let (ok, log, _) = generate("bad-sld", &["--sld", "extreme"]);
    assert!(!ok && log.contains("unknown SLD preset `extreme`: use weak, medium, strong or max"), "{log}");
    let (ok, log, _) = generate("bad-safree", &["--safree", " ; "]);
    assert!(!ok && log.contains("SAFREE needs at least one keyword"), "{log}");
    let (ok, log, _) = generate("bad-sld-cfg", &["--sld", "weak", "--guidance", "1"]);
    assert!(!ok && log.contains("guidance above 1"), "{log}");

    // An eraser fitted on the classroom model (text width 192) used with tiny-sd1 (32).
    let wide = tmp("classroom-leace.safetensors");
    let classroom = root().join("models/classroom").display().to_string();
    let (ok, log) = studio(&[
        "fit-eraser",
        "--model",
        &classroom,
        "--concept-prompts",
        "a skull;a photo of a skull",
        "--other-prompts",
        "a star;a photo of a star",
        "--out",
        wide.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let (ok, log, _) = generate("bad-width", &["--leace", wide.to_str().unwrap()]);
    assert!(!ok && log.contains("text width 192") && log.contains("text width 32"), "{log}");

    let cut = tmp("cut.safetensors");
    let bytes = std::fs::read(&wide).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let (ok, log, _) = generate("bad-cut", &["--leace", cut.to_str().unwrap()]);
    assert!(!ok && log.contains("is not a valid eraser file"), "{log}");

    let (ok, log) = studio(&[
        "fit-eraser",
        "--model",
        &tiny(),
        "--method",
        "pca",
        "--concept-prompts",
        "a",
        "--other-prompts",
        "b",
        "--out",
        "x",
    ]);
    assert!(!ok && log.contains("unknown eraser method `pca`: use leace or inlp"), "{log}");
    let (ok, log) =
        studio(&["fit-eraser", "--model", &tiny(), "--concept-prompts", " ; ", "--other-prompts", "b", "--out", "x"]);
    assert!(!ok && log.contains("no concept prompts"), "{log}");
    let (ok, log, _) = generate("bad-rab", &["--ring-a-bell", "a skull"]);
    assert!(!ok && log.contains("has no `|`"), "{log}");
}
