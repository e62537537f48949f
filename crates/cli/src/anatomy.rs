//! `studio anatomy --model DIR --edit FILE [--json]`: what an edit file did to each tensor it
//! rewrites (`erasure::anatomy`): ‖ΔW‖/‖W‖, the rank and spectral norm of ΔW, per block and
//! projection (to_k vs to_v), and how the concept's keys and values moved towards the guide and
//! the preserved concepts. The page's anatomy view computes the same (`erasure::anatomy::edit_anatomy`).

use anyhow::{Context, Result, bail};
use erasure::anatomy::{EditAnatomy, edit_anatomy};
use erasure::edit::{Edit, EditStack};
use erasure::text::ModelEncoder;
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

/// The anatomy of `edit` against `model`'s original weights.
pub fn of_edit(model: &pipeline::StableDiffusion, edit: &Edit, file: &str) -> Result<EditAnatomy> {
    EditStack::check(&model.unet, edit, file)?;
    let stack = EditStack::new();
    let originals = edit
        .tensors
        .iter()
        .map(|t| {
            let w = stack
                .original(&model.unet, &t.name)
                .with_context(|| format!("{file}: the model has no tensor `{}`", t.name))?;
            Ok((t.name.clone(), erasure::text::read_f32(&w)))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(edit_anatomy(edit, &originals, &mut ModelEncoder::new(model))?)
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
    let anatomy = of_edit(&model, &edit, &name)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&anatomy)?);
        return Ok(());
    }
    let rows = &anatomy.tensors;
    println!("{} on {:?}: {} tensors", edit.meta.method, edit.meta.concepts, rows.len());
    println!(
        "{:<26} {:<6} {:>10} {:>10} {:>9} {:>5} {:>9}",
        "block", "proj", "‖ΔW‖", "‖W‖", "‖ΔW‖/‖W‖", "rank", "σ₁(ΔW)"
    );
    for r in rows {
        println!(
            "{:<26} {:<6} {:>10.4} {:>10.4} {:>9.4} {:>5} {:>9.4}",
            r.block, r.projection, r.delta_norm, r.weight_norm, r.relative, r.rank, r.spectral_norm
        );
    }
    println!("\nkeys and values (cosines, mean over the edited tensors of each projection):");
    println!("{:<9} {:<6} {:<20} {:<20} {:>8} {:>8}", "kind", "proj", "concept", "target", "before", "after");
    for k in &anatomy.keys {
        let t = if k.target.is_empty() { "\"\"" } else { &k.target };
        println!("{:<9} {:<6} {:<20} {:<20} {:>8.4} {:>8.4}", k.kind, k.projection, k.concept, t, k.before, k.after);
    }
    Ok(())
}
