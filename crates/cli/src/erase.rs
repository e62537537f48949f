//! `studio erase`: a closed-form edit (UCE, TIME, RECE, SPEED, MACE) of a model folder, written
//! as an edit file (DESIGN.md "Edit file"), and `--edit FILE` for the other commands.

use crate::load_model;
use anyhow::{Context, Result, bail};
use erasure::closed_form::split_list;
use erasure::text::{ModelEncoder, cross_attention};
use erasure::{Edit, EditStack};
use pipeline::StableDiffusion;
use rand::SeedableRng;
use rand_distr::{Distribution, StandardNormal};
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

/// Computes the edit (timed: the seconds are returned with it).
pub fn compute(model: &StableDiffusion, a: &EraseArgs) -> Result<(Edit, f64)> {
    let concepts = split_list(&a.concepts);
    let guides: Vec<String> = if a.guides.trim().is_empty() {
        vec![]
    } else {
        a.guides.split(';').map(|s| s.trim().to_owned()).collect()
    };
    let preserve = split_list(&a.preserve);
    let tokens = match a.tokens.as_str() {
        "last" => erasure::uce::TokenSelection::LastToken,
        "legacy" => erasure::uce::TokenSelection::LegacyLastWord,
        other => bail!("unknown --tokens `{other}`: use last or legacy"),
    };
    let mut enc = ModelEncoder::new(model);
    let start = std::time::Instant::now();
    let edit = match a.method.as_str() {
        "uce" => {
            let mut cfg = erasure::uce::UceConfig {
                tokens,
                preserve_scale: a.preserve_scale,
                ..Default::default()
            };
            if let Some(l) = a.lamb {
                cfg.lamb = l;
            }
            if let Some(e) = a.erase_scale {
                cfg.erase_scale = e;
            }
            let layers = cross_attention(&model.unet, true, true);
            erasure::uce::uce(&mut enc, &layers, &concepts, &guides, &preserve, &cfg)?
        }
        "time" => {
            let mut cfg = erasure::time::TimeConfig {
                augment: a.augment,
                ..Default::default()
            };
            if let Some(l) = a.lamb {
                cfg.lamb = l;
            }
            let layers = cross_attention(&model.unet, a.with_to_k, true);
            erasure::time::time(&mut enc, &layers, &concepts, &guides, &cfg)?
        }
        "rece" => {
            let mut cfg = erasure::rece::ReceConfig {
                epochs: a.epochs,
                gamma: a.gamma,
                ..Default::default()
            };
            cfg.uce.tokens = tokens;
            if let Some(l) = a.lamb {
                cfg.lamb = l;
            }
            if let Some(e) = a.erase_scale {
                cfg.erase_scale = e;
            }
            if let Some(p) = a.preserve_scale {
                cfg.preserve_scale = p;
            }
            let layers = cross_attention(&model.unet, true, true);
            erasure::rece::rece(&mut enc, &layers, &concepts, &guides, &preserve, &cfg)?.0
        }
        "speed" => {
            let mut cfg = erasure::speed::SpeedConfig {
                retain_scale: a.retain_scale,
                threshold: a.threshold,
                aug_num: a.aug_num,
                filter: !a.no_filter,
                ..Default::default()
            };
            if let Some(l) = a.lamb {
                cfg.lamb = l;
            }
            let layers = cross_attention(&model.unet, a.with_to_k, true);
            let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
            let mut draw = || -> f64 { StandardNormal.sample(&mut rng) };
            erasure::speed::speed(
                &mut enc, &layers, &concepts, &guides, &preserve, &cfg, &mut draw,
            )?
        }
        "mace" => {
            let mut cfg = erasure::mace_cfr::MaceConfig {
                augment: a.augment,
                ..Default::default()
            };
            cfg.concept_type = match a.concept_type.as_str() {
                "object" => erasure::mace_cfr::ConceptType::Object,
                "style" => erasure::mace_cfr::ConceptType::Style,
                other => bail!("unknown --concept-type `{other}`: use object or style"),
            };
            if let Some(l) = a.lamb {
                cfg.lamb = l;
            }
            if let Some(p) = a.preserve_scale {
                cfg.preserve_scale = p;
            }
            let layers = cross_attention(&model.unet, true, true);
            erasure::mace_cfr::mace_cfr(&mut enc, &layers, &concepts, &guides, &preserve, &cfg)?
        }
        other => bail!("unknown method `{other}`: use uce, time, rece, speed or mace"),
    };
    Ok((edit, start.elapsed().as_secs_f64()))
}

pub fn run(a: EraseArgs) -> Result<()> {
    let device = crate::device(&a.device)?;
    let model = load_model(&a.model, &device)?;
    let (edit, secs) = compute(&model, &a)?;
    std::fs::write(&a.out, edit.to_safetensors())
        .with_context(|| format!("writing {}", a.out.display()))?;
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
