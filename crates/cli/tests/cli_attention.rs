//! `studio attention` end to end on the tiny SD-1 fixture (cross-attention at 8×8 in its first down (2 layers)
//! and last up block (3), 4×4 in the mid block): the maps file says which steps and resolutions it
//! holds, a chosen window and resolution give other maps whose rows sum to the steps chosen, and a
//! window or a resolution the run does not have is refused before the weights load or the run.

use diffusion::safetensors_file::SafetensorsBytes;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("studio-cli-attention-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// `studio attention` with 4 DDIM steps; `(ok, log, maps file)`.
fn attention(name: &str, extra: &[&str]) -> (bool, String, Option<SafetensorsBytes>) {
    let model = root().join("tests/fixtures/tiny-sd1").display().to_string();
    let (maps, png) = (tmp(&format!("{name}.safetensors")), tmp(&format!("{name}.png")));
    let mut args = vec!["attention", "--model", &model, "--prompt", "a red star on a blue background", "--steps", "4"];
    let (m, p) = (maps.display().to_string(), png.display().to_string());
    args.extend(["--seed", "3", "--maps", &m, "--out", &p]);
    args.extend(extra);
    let out = Command::new(env!("CARGO_BIN_EXE_studio")).args(&args).output().expect("run studio");
    let log = String::from_utf8_lossy(&out.stderr).to_string();
    let file = out.status.success().then(|| SafetensorsBytes::parse("maps", std::fs::read(&maps).unwrap()).unwrap());
    (out.status.success(), log, file)
}

fn meta_json(f: &SafetensorsBytes, key: &str) -> serde_json::Value {
    serde_json::from_str(&f.header.metadata[key]).unwrap()
}

/// Σ over the prompt's rows at each latent pixel: at most the steps recorded (every softmax row
/// sums to 1 over the 77 tokens; the rest goes to the padding).
fn max_row_sum(f: &SafetensorsBytes) -> f32 {
    let (data, shape) = f.f32("maps").unwrap();
    let n = shape[1] * shape[2];
    (0..n).map(|p| (0..shape[0]).map(|t| data[t * n + p]).sum::<f32>()).fold(0.0, f32::max)
}

#[test]
fn maps_of_chosen_steps_and_resolutions() {
    let (ok, log, all) = attention("all", &[]);
    assert!(ok, "{log}");
    let all = all.unwrap();
    assert_eq!(all.header.metadata["steps"], "4");
    assert_eq!(meta_json(&all, "step_window"), serde_json::json!([0, 3]));
    let res = meta_json(&all, "resolutions");
    let summary: Vec<(u64, u64, u64, bool)> = res
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["factor"].as_u64().unwrap(),
                r["height"].as_u64().unwrap(),
                r["layers"].as_u64().unwrap(),
                r["selected"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(summary, [(1, 8, 5, true), (2, 4, 1, true)], "{res}");
    assert!(log.contains("6 layers at 8×8 + 4×4") && log.contains("4 steps: 0–3"), "{log}");

    let (ok, log, chosen) = attention("chosen", &["--attention-steps", "1-2", "--attention-factors", "1"]);
    assert!(ok, "{log}");
    let chosen = chosen.unwrap();
    assert_eq!(chosen.header.metadata["steps"], "2");
    assert_eq!(chosen.header.metadata["layers"], "5");
    assert_eq!(meta_json(&chosen, "step_window"), serde_json::json!([1, 2]));
    assert_eq!(meta_json(&chosen, "resolutions")[1]["selected"], false);
    assert!(log.contains("5 layers at 8×8") && log.contains("2 steps: 1–2"), "{log}");
    let (a, b) = (all.f32("maps").unwrap().0, chosen.f32("maps").unwrap().0);
    assert_eq!(a.len(), b.len());
    assert!(a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-3), "other steps and layers give other maps");
    let (sa, sb) = (max_row_sum(&all), max_row_sum(&chosen));
    assert!(sa <= 4.0 * 1.05 && sa > 0.1 && sb <= 2.0 * 1.05 && sb > 0.05, "row sums {sa} (4 steps), {sb} (2 steps)");
    // One step.
    let (ok, log, one) = attention("one", &["--attention-steps", "3"]);
    assert!(ok, "{log}");
    assert_eq!(meta_json(&one.unwrap(), "step_window"), serde_json::json!([3, 3]));
}

#[test]
fn bad_choices_are_refused_with_what_to_choose() {
    for (extra, want) in [
        (&["--attention-steps", "2-7"][..], "attention steps 2–7: this run has 4 steps, numbered 0–3"),
        (&["--attention-steps", "3-1"][..], "the first step comes after the last"),
        (&["--attention-steps", "x"][..], "is not a step window: give FIRST-LAST"),
        (
            &["--attention-factors", "4"][..],
            "no cross-attention layer at 1/4 of the latent size: this UNet has factors 1, 2",
        ),
    ] {
        let (ok, log, _) = attention("bad", extra);
        assert!(!ok && log.contains(want), "{extra:?}: {log}");
        assert!(!log.contains("generated"), "refused before the run: {log}");
    }
}
