//! `studio bench-erase`: time UCE, RECE and SPEED on SD 1.5-shaped random weights (the 32
//! `attn2.to_k`/`to_v` matrices, 768-wide text) for 1 and 100 concepts, and, when Python with
//! PyTorch is available, the PyTorch reference (`scripts/reference/bench_erasure.py`, float32 as
//! the official scripts run) on the same machine in the same run; prints the ratios.

use anyhow::{Context, Result};
use erasure::linalg::{Mat, Vector};
use erasure::text::{CrossAttn, PrecomputedEncoder, Proj, TokenEmbeddings};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal, StandardNormal};
use std::collections::HashMap;
use std::time::Instant;

#[derive(clap::Args)]
pub struct BenchEraseArgs {
    /// Python with torch for the reference timings (skipped if it cannot run).
    #[arg(long, default_value = "/var/cache/erasure-studio/venv/bin/python")]
    pub python: String,
    /// Repetitions per case (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub repeat: usize,
    /// Concept counts to time.
    #[arg(long, default_value = "1,100")]
    pub concepts: String,
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
}

/// `[d_out]` of the 16 cross-attention blocks of SD 1.5 (down, mid, up).
const SD15_OUT: [usize; 16] = [320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320];
const D_TEXT: usize = 768;

fn layers(seed: u64) -> Vec<CrossAttn> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let n = Normal::new(0.0, 0.02).expect("normal");
    let mut out = vec![];
    for (i, &d_out) in SD15_OUT.iter().enumerate() {
        for proj in [Proj::Key, Proj::Value] {
            let w = Mat::from_fn(d_out, D_TEXT, |_, _| n.sample(&mut rng));
            let name = format!("block{i}.attn2.{}", if proj == Proj::Key { "to_k" } else { "to_v" });
            out.push(CrossAttn { name, proj, weight: w });
        }
    }
    out
}

/// Random 77×768 token embeddings (unit-variance entries, like CLIP's ~28-norm tokens) per prompt.
fn encoder(prompts: &[String], seed: u64) -> PrecomputedEncoder {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut map = HashMap::new();
    for (k, p) in prompts.iter().enumerate() {
        let embeds = Mat::from_fn(77, D_TEXT, |_, _| StandardNormal.sample(&mut rng));
        let n_tokens = if p.is_empty() { 2 } else { 3 + k % 5 };
        let pooled = Vector::from_iterator(D_TEXT, embeds.row(n_tokens - 1).iter().copied());
        map.insert(p.clone(), TokenEmbeddings { embeds, pooled, ids: vec![0; 77], n_tokens });
    }
    PrecomputedEncoder(map)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

pub fn run(a: BenchEraseArgs) -> Result<()> {
    let counts: Vec<usize> = a
        .concepts
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()
        .context("--concepts: numbers separated by commas")?;
    let layers = layers(0);
    let mut ours: Vec<(String, usize, f64)> = vec![];
    for &n in &counts {
        let concepts: Vec<String> = (0..n).map(|i| format!("concept {i}")).collect();
        let mut prompts = concepts.clone();
        prompts.push(String::new());
        let mut enc = encoder(&prompts, 1);
        let v_only: Vec<CrossAttn> = layers.iter().filter(|l| l.proj == Proj::Value).cloned().collect();
        for method in ["uce", "rece", "speed"] {
            let mut times = vec![];
            for _ in 0..a.repeat.max(1) {
                let t = Instant::now();
                match method {
                    "uce" => {
                        erasure::uce::uce(&mut enc, &layers, &concepts, &[], &[], &Default::default())?;
                    }
                    "rece" => {
                        erasure::rece::rece(&mut enc, &layers, &concepts, &[], &[], &Default::default())?;
                    }
                    _ => {
                        let mut rng = rand::rngs::StdRng::seed_from_u64(2);
                        let mut draw = || -> f64 { StandardNormal.sample(&mut rng) };
                        let cfg = erasure::speed::SpeedConfig { lamb: 0.1, ..Default::default() };
                        erasure::speed::speed(&mut enc, &v_only, &concepts, &[], &[], &cfg, &mut draw)?;
                    }
                }
                times.push(t.elapsed().as_secs_f64());
            }
            let m = median(times);
            eprintln!("ours {method} {n} concept(s): {m:.3} s");
            ours.push((method.to_owned(), n, m));
        }
    }
    let reference: Option<serde_json::Value> = std::process::Command::new(&a.python)
        .arg("scripts/reference/bench_erasure.py")
        .arg("--concepts")
        .arg(&a.concepts)
        .arg("--repeat")
        .arg(a.repeat.to_string())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| serde_json::from_slice(&o.stdout).ok());
    if reference.is_none() {
        eprintln!("note: the PyTorch reference did not run (needs {} with torch); printing our timings only", a.python);
    }
    println!("| method | concepts | ours (s) | PyTorch reference (s) | ours / reference |");
    println!("|---|---|---|---|---|");
    let mut rows = vec![];
    for (m, n, t) in &ours {
        let r = reference.as_ref().and_then(|r| r.get(format!("{m}/{n}")).and_then(|v| v.as_f64()));
        let ratio = r.map(|r| t / r);
        println!(
            "| {m} | {n} | {t:.3} | {} | {} |",
            r.map(|r| format!("{r:.3}")).unwrap_or_else(|| "—".into()),
            ratio.map(|x| format!("{x:.2}")).unwrap_or_else(|| "—".into())
        );
        rows.push(serde_json::json!({"method": m, "concepts": n, "ours_s": t, "reference_s": r, "ratio": ratio}));
    }
    if let Some(path) = a.json {
        std::fs::write(&path, serde_json::to_string_pretty(&rows)?)?;
    }
    Ok(())
}
