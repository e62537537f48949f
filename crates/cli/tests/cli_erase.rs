//! `studio erase` writes an edit file that equals the library's edit, loads back in
//! `generate --edit`, changes the image of the erased prompt, and bad inputs exit non-zero with
//! a clear message.

use diffusion::safetensors_file::SafetensorsBytes;
use std::path::PathBuf;
use std::process::Command;

fn model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-sd1").display().to_string()
}

fn studio(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout))
}

fn tensor(path: &PathBuf, name: &str) -> Vec<f32> {
    SafetensorsBytes::parse("x", std::fs::read(path).unwrap()).unwrap().f32(name).unwrap().0
}

#[test]
fn erase_then_generate_with_the_edit() {
    let dir = std::env::temp_dir().join(format!("studio-erase-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = model();
    for method in ["uce", "time", "rece", "speed", "mace"] {
        let out = dir.join(format!("{method}.safetensors"));
        let (concepts, guides) =
            if method == "time" { ("a pack of roses", "a pack of blue roses") } else { ("a red circle", "") };
        let (ok, log) = studio(&[
            "erase",
            "--model",
            &m,
            "--method",
            method,
            "--concepts",
            concepts,
            "--guides",
            guides,
            "--lamb",
            "0.1",
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(ok, "{method}: {log}");
        assert!(log.contains(&format!("{method}: erased")), "{log}");
        let st = SafetensorsBytes::parse("e", std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(st.header.metadata["method"], method);
        assert!(st.header.tensors.keys().all(|k| k.contains("attn2.to_")), "only cross-attention tensors");
    }
    let edit = dir.join("uce.safetensors");
    let plain = dir.join("plain.safetensors");
    let edited = dir.join("edited.safetensors");
    let common = [
        "generate",
        "--model",
        m.as_str(),
        "--prompt",
        "a red circle",
        "--steps",
        "2",
        "--height",
        "32",
        "--width",
        "32",
    ];
    let (ok, log) = studio(
        &[&common[..], &["--dump", plain.to_str().unwrap(), "--out", dir.join("a.png").to_str().unwrap()]].concat(),
    );
    assert!(ok, "{log}");
    let (ok, log) = studio(
        &[
            &common[..],
            &[
                "--edit",
                edit.to_str().unwrap(),
                "--dump",
                edited.to_str().unwrap(),
                "--out",
                dir.join("b.png").to_str().unwrap(),
            ],
        ]
        .concat(),
    );
    assert!(ok, "{log}");
    let (a, b) = (tensor(&plain, "image"), tensor(&edited, "image"));
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
    assert!(diff > 1e-3, "the edit changes the image (max |Δ| = {diff})");
}

#[test]
fn erase_bad_inputs() {
    let m = model();
    let out = std::env::temp_dir().join(format!("studio-erase-bad-{}.safetensors", std::process::id()));
    let o = out.to_str().unwrap();
    let (ok, log) = studio(&["erase", "--model", &m, "--method", "uce", "--concepts", " ; ", "--out", o]);
    assert!(!ok && log.contains("no concepts to erase"), "{log}");
    let (ok, log) =
        studio(&["erase", "--model", &m, "--method", "uce", "--concepts", "a;b;c", "--guides", "x;y", "--out", o]);
    assert!(!ok && log.contains("2 guide concept(s) for 3 concept(s)"), "{log}");
    let (ok, log) =
        studio(&["erase", "--model", &m, "--method", "uce", "--concepts", "a cat", "--lamb", "0", "--out", o]);
    assert!(!ok && log.contains("raise λ"), "{log}");
    let (ok, log) = studio(&["erase", "--model", &m, "--method", "esd", "--concepts", "a cat", "--out", o]);
    assert!(!ok && log.contains("unknown method `esd`"), "{log}");
    // An edit for the SD-2-style model on the SD-1-style one.
    let sd2 = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-sd2").display().to_string();
    let (ok, log) = studio(&["erase", "--model", &sd2, "--method", "uce", "--concepts", "a cat", "--out", o]);
    assert!(ok, "{log}");
    let (ok, log) =
        studio(&["generate", "--model", &m, "--prompt", "a cat", "--steps", "1", "--edit", o, "--out", "/dev/null"]);
    assert!(!ok && log.contains("shape") && log.contains("attn2"), "{log}");
}
