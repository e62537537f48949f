//! `studio anatomy`: the norms of what an edit changed equal those computed here straight from the
//! edit file and the model's safetensors; UCE's change of one concept has a small rank; bad inputs
//! exit non-zero with a clear message.

use diffusion::safetensors_file::SafetensorsBytes;
use std::path::PathBuf;
use std::process::Command;

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-sd1")
}

fn studio(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(args).output().expect("run studio");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn frobenius(a: &[f32]) -> f64 {
    a.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>().sqrt()
}

#[test]
fn anatomy_norms_equal_the_edit_file() {
    let dir = std::env::temp_dir().join(format!("studio-anatomy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let m = fixture().display().to_string();
    let edit = dir.join("uce.safetensors");
    let (ok, _, log) = studio(&[
        "erase",
        "--model",
        &m,
        "--method",
        "uce",
        "--concepts",
        "a red circle",
        "--preserve",
        "a blue square",
        "--out",
        edit.to_str().unwrap(),
    ]);
    assert!(ok, "{log}");
    let (ok, json, log) = studio(&["anatomy", "--model", &m, "--edit", edit.to_str().unwrap(), "--json"]);
    assert!(ok, "{log}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["method"], "uce");
    let edited = SafetensorsBytes::parse("edit", std::fs::read(&edit).unwrap()).unwrap();
    let unet = SafetensorsBytes::parse(
        "unet",
        std::fs::read(fixture().join("unet/diffusion_pytorch_model.safetensors")).unwrap(),
    )
    .unwrap();
    let rows = v["tensors"].as_array().unwrap();
    assert_eq!(rows.len(), edited.header.tensors.len());
    let mut kinds = std::collections::BTreeSet::new();
    for r in rows {
        let name = r["tensor"].as_str().unwrap();
        let (w2, _) = edited.f32(name).unwrap();
        let (w, _) = unet.f32(name).unwrap();
        let delta: Vec<f32> = w2.iter().zip(&w).map(|(a, b)| a - b).collect();
        let (dn, wn) = (frobenius(&delta), frobenius(&w));
        let got = r["relative"].as_f64().unwrap();
        assert!((got - dn / wn).abs() <= 1e-6 * (dn / wn).max(1e-12), "{name}: relative {got} vs {}", dn / wn);
        assert!((r["weightNorm"].as_f64().unwrap() - wn).abs() <= 1e-9 * wn);
        assert!(dn > 0.0, "{name}: UCE left it unchanged");
        // "a red circle" is 3 tokens (+ SOT/EOT/padding in UCE's embedding): a low-rank change.
        let rank = r["rank"].as_u64().unwrap();
        assert!((1..=8).contains(&rank), "{name}: rank {rank}");
        kinds.insert(r["projection"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds.into_iter().collect::<Vec<_>>(), ["to_k", "to_v"]);
    // UCE maps the concept's key and value onto the guide's (""): the cosine with the guide's
    // rises to ~1, while the preserved concept keeps its own.
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2 * 3, "guide, preserve and kept rows for to_k and to_v: {keys:?}");
    for k in keys {
        let (before, after) = (k["before"].as_f64().unwrap(), k["after"].as_f64().unwrap());
        match k["kind"].as_str().unwrap() {
            "guide" => {
                assert_eq!((k["concept"].as_str(), k["target"].as_str()), (Some("a red circle"), Some("")));
                assert!(after > 0.99 && after > before + 0.01, "{k}");
            }
            "kept" => assert!(after > 0.99 && before == 1.0, "{k}"),
            "preserve" => assert_eq!(k["target"], "a blue square"),
            other => panic!("kind {other}"),
        }
    }
    let (ok, table, _) = studio(&["anatomy", "--model", &m, "--edit", edit.to_str().unwrap()]);
    assert!(ok && table.contains("rank") && table.contains("to_v"), "{table}");

    let missing = dir.join("missing.safetensors");
    let (ok, _, err) = studio(&["anatomy", "--model", &m, "--edit", missing.to_str().unwrap()]);
    assert!(!ok && err.contains("missing.safetensors"), "{err}");
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"not a safetensors file").unwrap();
    let (ok, _, err) = studio(&["anatomy", "--model", &m, "--edit", junk.to_str().unwrap()]);
    assert!(!ok && err.contains("junk.safetensors"), "{err}");
}
