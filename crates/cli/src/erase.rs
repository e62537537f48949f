//! `studio erase`: a closed-form edit (UCE, TIME, RECE, SPEED, MACE) of a model folder, written
//! as an edit file (DESIGN.md "Edit file"), and `--edit FILE` for the other commands.

use crate::load_model;
use anyhow::{Context, Result};
use erasure::closed_form::split_list;
use erasure::request::erase::{parse_concept_type, parse_tokens};
use erasure::request::{EraseOptions, EraseRequest};
use erasure::text::{ModelEncoder, cross_attention};
use erasure::{Edit, EditStack};
use pipeline::StableDiffusion;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct EraseArgs {
    /// The model folder (diffusers layout).
    #[arg(long)]
    pub model: PathBuf,
    /// uce | time | rece | speed | mace
    #[arg(long)]
    pub method: String,
    /// Concepts to erase, separated by ';' (TIME: the source prompts).
    #[arg(long)]
    pub concepts: String,
    /// Guide concepts, one for all or one per concept ("" by default; TIME: destinations; MACE: mappings; SPEED: anchors).
    #[arg(long, default_value = "")]
    pub guides: String,
    /// Concepts to preserve, separated by ';' (SPEED: retain prompts).
    #[arg(long, default_value = "")]
    pub preserve: String,
    /// Ridge λ (default: the method's official default).
    #[arg(long)]
    pub lamb: Option<f64>,
    #[arg(long)]
    pub erase_scale: Option<f64>,
    #[arg(long)]
    pub preserve_scale: Option<f64>,
    /// UCE/RECE token choice: last (current official code) | legacy (last word through padding).
    #[arg(long, default_value = "last")]
    pub tokens: String,
    /// RECE: adversarial rounds.
    #[arg(long, default_value_t = 1)]
    pub epochs: usize,
    /// RECE: γ of the adversarial embedding.
    #[arg(long, default_value_t = 0.1)]
    pub gamma: f64,
    /// TIME: also edit to_k (the official --with_to_k). SPEED: edit keys and values.
    #[arg(long)]
    pub with_to_k: bool,
    /// TIME / MACE: add the official augmentation prompts.
    #[arg(long)]
    pub augment: bool,
    /// MACE: object | style (augmentation templates).
    #[arg(long, default_value = "object")]
    pub concept_type: String,
    /// SPEED: r.
    #[arg(long, default_value_t = 1.0)]
    pub retain_scale: f64,
    /// SPEED: eigenvalue threshold of the null space.
    #[arg(long, default_value_t = 0.1)]
    pub threshold: f64,
    /// SPEED: augmentations per retain embedding.
    #[arg(long, default_value_t = 10)]
    pub aug_num: usize,
    /// SPEED: no prior filtering.
    #[arg(long)]
    pub no_filter: bool,
    /// SPEED: seed of the augmentation draws.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "ndarray")]
    pub device: String,
    #[arg(long)]
    pub out: PathBuf,
}

impl TryFrom<&EraseArgs> for EraseRequest {
    type Error = erasure::request::RequestError;
    /// The flags as the request they stand for (`--concepts "a;b"` split, blanks dropped; guides
    /// split as given).
    fn try_from(a: &EraseArgs) -> Result<Self, Self::Error> {
        let guides: Vec<String> = if a.guides.trim().is_empty() {
            vec![]
        } else {
            a.guides.split(';').map(|s| s.trim().to_owned()).collect()
        };
        let options = EraseOptions {
            lamb: a.lamb,
            erase_scale: a.erase_scale,
            preserve_scale: a.preserve_scale,
            tokens: Some(parse_tokens(&a.tokens)?),
            epochs: Some(a.epochs),
            gamma: Some(a.gamma),
            with_to_k: Some(a.with_to_k),
            augment: Some(a.augment),
            concept_type: Some(parse_concept_type(&a.concept_type)?),
            retain_scale: Some(a.retain_scale),
            threshold: Some(a.threshold),
            aug_num: Some(a.aug_num),
            filter: Some(!a.no_filter),
            seed: Some(a.seed),
        };
        Ok(Self {
            method: a.method.parse()?,
            concepts: split_list(&a.concepts),
            guides,
            preserve: split_list(&a.preserve),
            options,
        })
    }
}

/// Computes the edit (timed: the seconds are returned with it).
pub fn compute(model: &StableDiffusion, a: &EraseArgs) -> Result<(Edit, f64)> {
    let req = EraseRequest::try_from(a)?;
    let mut enc = ModelEncoder::new(model);
    let start = std::time::Instant::now();
    let layers = cross_attention(&model.unet, req.edits_keys(), true);
    let edit = req.run(&mut enc, &layers)?;
    Ok((edit, start.elapsed().as_secs_f64()))
}

pub fn run(a: EraseArgs) -> Result<()> {
    let device = crate::device(&a.device)?;
    let model = load_model(&a.model, &device)?;
    let (edit, secs) = compute(&model, &a)?;
    std::fs::write(&a.out, edit.to_safetensors()).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{}: erased {:?} in {:.3} s ({} tensors); wrote {}",
        edit.meta.method,
        edit.meta.concepts,
        secs,
        edit.tensors.len(),
        a.out.display()
    );
    Ok(())
}

/// Applies edit files to a loaded model, in order (warning when one was made for other weights).
pub fn apply_edits(model: &mut StableDiffusion, files: &[PathBuf]) -> Result<EditStack> {
    let mut stack = EditStack::new();
    for (i, path) in files.iter().enumerate() {
        let name = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading edit {name}"))?;
        let edit = Edit::from_safetensors(&name, bytes)?;
        if let Some(w) = stack.base_mismatch(&model.unet, &edit) {
            eprintln!("warning: {name}: {w}");
        }
        stack.apply(&mut model.unet, &format!("{i}:{name}"), edit, &name)?;
    }
    Ok(stack)
}
