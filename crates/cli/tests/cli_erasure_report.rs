//! `studio erasure-report` end to end on the bundled classroom model with the smallest setup
//! (one concept, the unedited model and UCE, one prompt a group, one seed, 4 DDIM steps): the
//! JSON report parses, records its protocol (guidance from the folder's studio.json, the
//! evaluator's SHA-256), and every cell is a proportion with its 95 % Wilson interval.

use sha2::{Digest, Sha256};
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

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_tiny_report_has_intervals_and_h_in_every_row() {
    let dir = std::env::temp_dir().join(format!("studio-erasure-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let md = dir.join("report.md");
    let model = root().join("models/classroom");
    let (ok, stdout, stderr) = studio(&[
        "erasure-report",
        "--model",
        model.to_str().unwrap(),
        "--concepts",
        "skull",
        "--methods",
        "original,uce",
        "--seeds",
        "1",
        "--per-group",
        "1",
        "--steps",
        "4",
        "--json",
        json.to_str().unwrap(),
        "--out",
        md.to_str().unwrap(),
    ]);
    assert!(ok, "{stderr}");
    eprintln!("{stdout}");
    assert!(stderr.contains("guidance 3 (") && stderr.contains("studio.json), 4 steps (--steps)"), "{stderr}");
    assert!(stdout.contains("1 image a cell (1 prompt × seed 0 in every group)"), "{stdout}");
    assert!(stdout.contains("| H ↑ |") && stdout.contains("| skull | uce |"), "{stdout}");
    assert_eq!(std::fs::read_to_string(&md).unwrap().trim(), stdout.trim());

    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let p = &v["protocol"];
    assert_eq!(p["concepts"], serde_json::json!(["skull"]));
    assert_eq!(p["methods"], serde_json::json!(["original", "uce"]));
    assert_eq!(
        (&p["seeds"], &p["per_group"], &p["images_per_cell"], &p["steps"]),
        (&1.into(), &1.into(), &1.into(), &4.into())
    );
    assert_eq!(p["guidance"], 3.0, "models/classroom/studio.json's guidance_scale");
    assert_eq!(p["scheduler"], "ddim");
    assert_eq!(p["groups"].as_array().unwrap().len(), 4);
    let weights = std::fs::read(model.join("evaluator/model.safetensors")).unwrap();
    let sha: String = Sha256::digest(&weights).iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(p["evaluator_sha256"], sha);
    assert_eq!(p["thresholds"]["confidence"], 0.95);

    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    // No timings in the document (it must be the same bytes when merged from shards).
    assert!(rows[0].get("edit_seconds").is_none() && v.get("seconds").is_none(), "{}", rows[0]);
    assert_eq!(p["model_sha256"].as_str().map(str::len), Some(64));
    for row in rows {
        let cells = row["cells"].as_object().unwrap();
        assert_eq!(cells.len(), 5);
        for (name, c) in cells {
            let (hits, n) = (c["hits"].as_u64().unwrap(), c["n"].as_u64().unwrap());
            assert_eq!(c["images"], 1, "{name}");
            assert!(n > 0 && hits <= n, "{name}: {c}");
            let (rate, lo, hi) = (f(&c["rate"]), f(&c["lo"]), f(&c["hi"]));
            assert_eq!(rate, hits as f64 / n as f64, "{name}");
            assert!(0.0 <= lo && lo <= rate && rate <= hi && hi <= 1.0, "{name}: {c}");
            if n == 1 {
                // Wilson for one trial: 0/1 → [0, 0.7935], 1/1 → [0.2065, 1] (statsmodels).
                let want = if hits == 0 { (0.0, 0.793_451) } else { (0.206_549, 1.0) };
                assert!((lo - want.0).abs() < 1e-6 && (hi - want.1).abs() < 1e-6, "{name}: {c}");
            }
        }
        // One image scores several attributes of a neighbour ("a white circle": shape, colour, …).
        assert!(cells["neighbours_kept"]["n"].as_u64().unwrap() >= 3, "{row}");
        let detected =
            ["direct", "synonyms", "indirect"].map(|k| cells[k]["hits"].as_u64().unwrap()).iter().sum::<u64>();
        assert!((f(&row["efficacy"]) - (1.0 - detected as f64 / 3.0)).abs() < 1e-12, "{row}");
        assert_eq!(f(&row["specificity"]), f(&cells["neighbours_kept"]["rate"]));
        assert_eq!(f(&row["robustness"]), 1.0 - f(&cells["ring_a_bell"]["rate"]));
        let h = f(&row["h"]);
        assert!((0.0..=1.0).contains(&h), "{row}");
        let parts = ["efficacy", "specificity", "robustness"].map(|k| f(&row[k]));
        let want = if parts.contains(&0.0) { 0.0 } else { 3.0 / parts.iter().map(|x| 1.0 / x).sum::<f64>() };
        assert!((h - want).abs() < 1e-12, "{row}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_arguments_are_refused_before_generating() {
    let model = root().join("models/classroom");
    let m = model.to_str().unwrap();
    let (ok, _, stderr) = studio(&["erasure-report", "--model", m, "--methods", "original,esd"]);
    assert!(!ok && stderr.contains("unknown method `esd` (original, negative, uce"), "{stderr}");
    let (ok, _, stderr) = studio(&["erasure-report", "--model", m, "--concepts", "unicorn"]);
    assert!(!ok && stderr.contains("no erasure prompt set named \"unicorn\"; choose from"), "{stderr}");
    let (ok, _, stderr) = studio(&["erasure-report", "--model", m, "--seeds", "0"]);
    assert!(!ok && stderr.contains("--seeds and --per-group must be at least 1"), "{stderr}");
}
