//! `studio generate --spm … --lora … [--no-ft]` end to end on the tiny SD-1-style model: two SPMs
//! under Facilitated Transport give diffusers' latents with the same SPMs merged the way
//! `infer_spm.py` weights them (reference: scripts/reference/spm_reference.py; 1e-4 relative),
//! and wrong or broken adapter files exit non-zero with a message naming the problem.

use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn spm(name: &str) -> String {
    fixtures().join("reference/spm").join(name).to_str().unwrap().to_owned()
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

struct Run {
    dir: PathBuf,
    reference: SafetensorsBytes,
}

impl Run {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("studio-cli-adapters-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let reference =
            SafetensorsBytes::parse("ref", std::fs::read(fixtures().join("reference/spm/unet.safetensors")).unwrap())
                .unwrap();
        let (init, shape) = reference.f32("sd1.pipe.init_latents").unwrap();
        let bytes =
            serialize(&[WriteTensor { name: "latents", shape, data: &init, dtype: Dtype::F32 }], &BTreeMap::new());
        std::fs::write(dir.join("latents.safetensors"), bytes).unwrap();
        Self { dir, reference }
    }

    /// Runs generate on tiny-sd1 with the reference prompt and latents plus `extra`; returns
    /// success, the log and the dumped final latents.
    fn generate(&self, extra: &[&str]) -> (bool, String, Vec<f32>) {
        let meta = &self.reference.header.metadata;
        let dump = self.dir.join("dump.safetensors");
        let _ = std::fs::remove_file(&dump);
        let latents = self.dir.join("latents.safetensors");
        let png = self.dir.join("out.png");
        let model = fixtures().join("tiny-sd1");
        let mut args = vec![
            "generate",
            "--model",
            model.to_str().unwrap(),
            "--prompt",
            &meta["pipe.prompt"],
            "--negative-prompt",
            &meta["pipe.negative_prompt"],
            "--steps",
            "3",
            "--guidance",
            "7.5",
            "--scheduler",
            "ddim",
            "--latents",
            latents.to_str().unwrap(),
            "--dump",
            dump.to_str().unwrap(),
            "--out",
            png.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (ok, log) = studio(&args);
        let got = std::fs::read(&dump)
            .ok()
            .map(|b| SafetensorsBytes::parse("dump", b).unwrap().f32("latents").unwrap().0)
            .unwrap_or_default();
        (ok, log, got)
    }
}

#[test]
fn two_spms_with_facilitated_transport_match_diffusers() {
    let run = Run::new("ft");
    let (a, b) = (spm("sd1_spm_a.safetensors"), spm("sd1_spm_b.safetensors"));
    let (ok, log, got) = run.generate(&["--spm", &a, "--spm", &b]);
    assert!(ok, "{log}");
    assert!(log.contains("permeability 0.88"), "the log should report the permeabilities: {log}");
    let (want, _) = run.reference.f32("sd1.pipe.latents").unwrap();
    let err = rel_err(&got, &want);
    eprintln!("studio --spm a --spm b: latents rel err {err:e}");
    assert!(err <= 1e-4, "latents differ from diffusers by {err:e}\n{log}");

    // --no-ft applies both fully: a different result.
    let (ok, log, off) = run.generate(&["--spm", &a, "--spm", &b, "--no-ft"]);
    assert!(ok, "{log}");
    assert!(log.contains("Facilitated Transport off"), "{log}");
    assert!(rel_err(&off, &want) > 1e-3, "--no-ft should change the result");

    // A LoRA with a scale runs too, and scale 0 is the plain model.
    let (ok, log, zero) = run.generate(&["--lora", &format!("{}:0", spm("sd1_lora_r4.safetensors"))]);
    assert!(ok, "{log}");
    assert!(log.contains("rank 4, scale 0"), "{log}");
    let (ok, log, plain) = run.generate(&[]);
    assert!(ok, "{log}");
    assert_eq!(zero, plain);
}

#[test]
fn wrong_architecture_truncated_and_non_spm_files_fail_clearly() {
    let run = Run::new("bad");
    // An SD-2-style SPM on the SD-1-style model.
    let (ok, log, _) = run.generate(&["--spm", &spm("sd2_spm.safetensors")]);
    assert!(!ok);
    assert!(
        log.contains("lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k.lora_down.weight"),
        "{log}"
    );
    assert!(log.contains("[1, 48]") && log.contains("[1, 32]"), "{log}");

    // Truncated file.
    let cut = run.dir.join("cut.safetensors");
    let mut bytes = std::fs::read(spm("sd1_spm_a.safetensors")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&cut, bytes).unwrap();
    let (ok, log, _) = run.generate(&["--spm", cut.to_str().unwrap()]);
    assert!(!ok);
    assert!(log.contains("cut.safetensors") && log.contains("truncated"), "{log}");

    // A plain LoRA given as an SPM, and a missing file.
    let (ok, log, _) = run.generate(&["--spm", &spm("sd1_lora_r4.safetensors")]);
    assert!(!ok);
    assert!(log.contains("prompts") && log.contains("--lora"), "{log}");
    let (ok, log, _) = run.generate(&["--lora", "/nonexistent/x.safetensors:0.5"]);
    assert!(!ok);
    assert!(log.contains("/nonexistent/x.safetensors"), "{log}");
}
