//! `studio anatomy --model DIR --edit FILE [--json]`: what an edit file did to each tensor it
//! rewrites (`erasure::anatomy`): ‖ΔW‖/‖W‖, the rank and spectral norm of ΔW, per block and
//! projection (to_k vs to_v).

use anyhow::{Context, Result, bail};
use erasure::anatomy::{TensorAnatomy, tensor_anatomy};
use erasure::edit::{Edit, EditStack};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct AnatomyArgs {
    /// The model the edit was computed for (its original weights are the reference).
    #[arg(long)]
    pub model: PathBuf,
    /// The edit file (from `studio erase`, the page's export, or the official UCE script).
    #[arg(long)]
    pub edit: PathBuf,
    /// Print JSON (one object: method, concepts, tensors) instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// The anatomy of every tensor of `edit` against `unet`'s original weights.
pub fn of_edit(
    unet: &diffusion::unet_2d_condition::UNet2DConditionModel,
    edit: &Edit,
    file: &str,
) -> Result<Vec<TensorAnatomy>> {
    EditStack::check(unet, edit, file)?;
    let stack = EditStack::new();
    edit.tensors
        .iter()
        .map(|t| {
            let w = stack
                .original(unet, &t.name)
                .with_context(|| format!("{file}: the model has no tensor `{}`", t.name))?;
            let w = erasure::text::read_f32(&w);
            Ok(tensor_anatomy(&t.name, &t.shape, &w, &t.data))
        })
        .collect()
}

pub fn run(a: AnatomyArgs) -> Result<()> {
    let device = crate::device("ndarray")?;
    let model = crate::load_model(&a.model, &device)?;
    let name = a.edit.display().to_string();
    let bytes = std::fs::read(&a.edit).with_context(|| format!("reading {name}"))?;
    let edit = Edit::from_safetensors(&name, bytes)?;
    if edit.tensors.is_empty() {
        bail!("{name} changes no tensor");
    }
    let rows = of_edit(&model.unet, &edit, &name)?;
    if a.json {
        let out = serde_json::json!({ "method": edit.meta.method, "concepts": edit.meta.concepts, "tensors": rows });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!("{} on {:?}: {} tensors", edit.meta.method, edit.meta.concepts, rows.len());
    println!(
        "{:<26} {:<6} {:>10} {:>10} {:>9} {:>5} {:>9}",
        "block", "proj", "‖ΔW‖", "‖W‖", "‖ΔW‖/‖W‖", "rank", "σ₁(ΔW)"
    );
    for r in &rows {
        println!(
            "{:<26} {:<6} {:>10.4} {:>10.4} {:>9.4} {:>5} {:>9.4}",
            r.block, r.projection, r.delta_norm, r.weight_norm, r.relative, r.rank, r.spectral_norm
        );
    }
    Ok(())
}
