//! `studio attention`: `studio generate` that also records DAAM's cross-attention heat maps
//! (`pipeline::daam`) and writes them as safetensors (`maps` `[tokens, h, w]`, the raw maps at the
//! latent size, with the tokens, words and per-word IoU in the metadata) and, with `--png-dir`,
//! one PNG per word: the heat map over the image.

use anyhow::{Context, Result};
use diffusion::safetensors_file::{Dtype, WriteTensor, serialize};
use pipeline::daam::{AttentionMaps, DAAM_THRESHOLD, Selection, WordScore};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct AttentionArgs {
    #[command(flatten)]
    pub generate: crate::GenerateArgs,
    /// Where to write the maps (safetensors: `maps` [tokens, h, w] and metadata).
    #[arg(long)]
    pub maps: PathBuf,
    /// Also write one PNG a word here: its normalised heat map over the image.
    #[arg(long)]
    pub png_dir: Option<PathBuf>,
    /// Record only the denoising steps FIRST-LAST (0-based, inclusive), or one STEP; default every step.
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_steps)]
    pub attention_steps: Option<[usize; 2]>,
    /// Aggregate only the cross-attention layers at these factors (latent side / layer side, comma
    /// separated, e.g. 1,2,4: DAAM's `factors`); default every layer.
    #[arg(long, value_name = "F,F,…", value_delimiter = ',')]
    pub attention_factors: Option<Vec<usize>>,
}

fn parse_steps(s: &str) -> Result<[usize; 2], String> {
    pipeline::daam::parse_steps(s)
}

impl AttentionArgs {
    pub fn selection(&self) -> Selection {
        Selection { steps: self.attention_steps, factors: self.attention_factors.clone() }
    }
}

/// IoU of every word's heat map with the image's foreground (`classroom::foreground`).
pub fn word_scores(maps: &AttentionMaps, rgb: &[u8], width: usize, height: usize) -> Vec<WordScore> {
    maps.word_scores(&classroom::foreground::foreground_mask(rgb, width, height), height, width)
}

/// The maps file: `maps` `[tokens, h, w]` f32 and the metadata the page's and the CLI's readers use.
pub fn maps_file(maps: &AttentionMaps, scores: &[WordScore], prompt: &str) -> Vec<u8> {
    let rows = maps.tokens.len();
    let mut meta = BTreeMap::new();
    meta.insert("format".to_owned(), "daam-heat-maps".to_owned());
    meta.insert("prompt".to_owned(), prompt.to_owned());
    meta.insert("tokens".to_owned(), serde_json::to_string(&maps.tokens).unwrap_or_default());
    meta.insert("words".to_owned(), serde_json::to_string(&maps.words).unwrap_or_default());
    meta.insert("iou".to_owned(), serde_json::to_string(scores).unwrap_or_default());
    meta.insert("steps".to_owned(), maps.steps.to_string());
    meta.insert("layers".to_owned(), maps.layers.to_string());
    meta.insert("heads".to_owned(), maps.heads.to_string());
    meta.insert("step_window".to_owned(), serde_json::to_string(&maps.step_window).unwrap_or_default());
    meta.insert("resolutions".to_owned(), serde_json::to_string(&maps.resolutions).unwrap_or_default());
    meta.insert("threshold".to_owned(), DAAM_THRESHOLD.to_string());
    serialize(
        &[WriteTensor {
            name: "maps",
            shape: vec![rows, maps.height, maps.width],
            data: &maps.maps,
            dtype: Dtype::F32,
        }],
        &meta,
    )
}

/// A heat value in [0, 1] → the colour ramp of the page (dark blue → red → yellow).
pub fn ramp(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    let r = (t * 2.0).min(1.0);
    let g = (t * 2.0 - 1.0).clamp(0.0, 1.0);
    let b = (0.6 - t * 1.2).max(0.0);
    [r * 255.0, g * 255.0, b * 255.0]
}

/// The image with a word's heat blended over it (60 % heat where it is high).
pub fn overlay(rgb: &[u8], heat: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len());
    for (px, &h) in rgb.chunks_exact(3).zip(heat) {
        let c = ramp(h);
        let a = 0.25 + 0.35 * h.clamp(0.0, 1.0);
        for k in 0..3 {
            out.push((px[k] as f32 * (1.0 - a) + c[k] * a).round() as u8);
        }
    }
    out
}

/// A file name for a word ("skull" → "03-skull.png").
fn png_name(i: usize, word: &str) -> String {
    let clean: String = word.chars().map(|c| if c.is_alphanumeric() { c } else { '_' }).collect();
    format!("{i:02}-{clean}.png")
}

/// Writes the maps file and the PNGs, and prints each word's IoU.
pub fn write(
    a: &AttentionArgs,
    maps: &AttentionMaps,
    rgb: &[u8],
    width: usize,
    height: usize,
    prompt: &str,
) -> Result<()> {
    let scores = word_scores(maps, rgb, width, height);
    std::fs::write(&a.maps, maps_file(maps, &scores, prompt))
        .with_context(|| format!("writing {}", a.maps.display()))?;
    let kept: Vec<String> =
        maps.resolutions.iter().filter(|r| r.selected).map(|r| format!("{}×{}", r.width, r.height)).collect();
    eprintln!(
        "wrote {} ({} tokens, {}×{} maps, {} layers at {}, {} heads, {} steps: {}–{})",
        a.maps.display(),
        maps.tokens.len(),
        maps.width,
        maps.height,
        maps.layers,
        kept.join(" + "),
        maps.heads,
        maps.steps,
        maps.step_window[0],
        maps.step_window[1]
    );
    for s in &scores {
        match s.iou {
            Some(v) => eprintln!("  {:<14} IoU with the object mask {:.3}", s.word, v),
            None => eprintln!("  {:<14} IoU: no heat and no object", s.word),
        }
    }
    if let Some(dir) = &a.png_dir {
        write_pngs(dir, maps, rgb, width, height)?;
    }
    Ok(())
}

fn write_pngs(dir: &Path, maps: &AttentionMaps, rgb: &[u8], width: usize, height: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (i, w) in maps.words.iter().enumerate() {
        let path = dir.join(png_name(i, &w.text));
        let img = overlay(rgb, &maps.word_heat(w, height, width));
        image::RgbImage::from_raw(width as u32, height as u32, img)
            .context("image buffer")?
            .save(&path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("wrote {} heat maps to {}", maps.words.len(), dir.display());
    Ok(())
}
