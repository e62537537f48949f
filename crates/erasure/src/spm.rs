//! SPM: "One-dimensional Adapter to Rule Them All: Concepts, Diffusion Models and Erasing
//! Applications" (Lyu et al., CVPR 2024), official code Con6924/SPM.
//!
//! An SPM is a rank-1 (in general rank-r) LoRA on every `Linear` / `Conv2d` inside the UNet's
//! `Transformer2DModel`s: `proj_in`, `proj_out`, `attn1`/`attn2` `to_q`/`to_k`/`to_v`/`to_out.0`,
//! `ff.net.0.proj`, `ff.net.2` (`src/models/spm.py`, `SPMNetwork.create_modules`, targets
//! `UNET_TARGET_REPLACE_MODULE_TRANSFORMER`); each layer computes
//! `org(x) + up(down(x)) · multiplier · alpha / rank` (`SPMLayer.forward`), which equals
//! merging `ΔW = (alpha / rank) · up · down` into the weight (`src/models/merge_spm.py`).
//! The file is a kohya-named LoRA file ([`crate::lora`]) whose metadata holds
//! `prompts` (the erased targets joined by ',', `train_spm.py` `model_metadata`), `rank` and
//! `alpha`.
//!
//! Inference (`infer_spm.py`) rebuilds the layers from the *metadata* rank and alpha
//! (`SPMNetwork(unet, rank=int(float(md["rank"])), alpha=float(md["alpha"]))`), so the stored
//! per-layer `.alpha` tensors are not used there; [`Spm::from_lora`] does the same. How several
//! SPMs and the Facilitated Transport permeabilities combine is in [`crate::adapters`].

use crate::error::EraseError;
use crate::lora::LoraFile;

/// A parsed SPM file.
#[derive(Debug, Clone)]
pub struct Spm {
    pub lora: LoraFile,
    /// The erased prompts: metadata `prompts` split on ',' with no trimming, as
    /// `infer_spm.py` does (`md["prompts"].split(",")`).
    pub prompts: Vec<String>,
    pub rank: usize,
    pub alpha: f32,
}

fn bad(file: &str, reason: String) -> EraseError {
    EraseError::BadFile { file: file.into(), kind: "SPM", reason }
}

impl Spm {
    /// Parses an SPM `.safetensors` file (see the module docs).
    pub fn parse(file: &str, bytes: Vec<u8>) -> Result<Self, EraseError> {
        Self::from_lora(LoraFile::parse(file, bytes)?)
    }

    /// An SPM from a parsed adapter file: needs the `prompts` metadata; `rank` (default: the
    /// layers' rank) must match every layer; `alpha` (default: the layers' own `.alpha`, else
    /// the rank) becomes every layer's alpha.
    pub fn from_lora(mut lora: LoraFile) -> Result<Self, EraseError> {
        let file = lora.file.clone();
        let Some(prompts) = lora.metadata.get("prompts") else {
            return Err(bad(
                &file,
                "it has no `prompts` metadata, so it is not an SPM (Facilitated Transport needs the erased concepts); load it as a plain LoRA (--lora) instead".into(),
            ));
        };
        let prompts: Vec<String> = prompts.split(',').map(str::to_owned).collect();
        let number = |key: &str| -> Result<Option<f64>, EraseError> {
            match lora.metadata.get(key) {
                None => Ok(None),
                Some(s) => s
                    .trim()
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .map(Some)
                    .ok_or_else(|| bad(&file, format!("metadata `{key}` is `{s}`, not a number"))),
            }
        };
        // `int(float(md["rank"]))` in infer_spm.py.
        let rank = match number("rank")? {
            Some(r) if r >= 1.0 => r as usize,
            Some(r) => return Err(bad(&file, format!("metadata `rank` is {r}; it must be at least 1"))),
            None => lora.max_rank(),
        };
        if let Some(m) = lora.modules.iter().find(|m| m.rank != rank) {
            return Err(bad(&file, format!("layer `{}` has rank {} but the metadata says rank {rank}", m.key, m.rank)));
        }
        let alpha = match number("alpha")? {
            Some(a) => a as f32,
            None => lora.modules.first().and_then(|m| m.alpha).unwrap_or(rank as f32),
        };
        for m in &mut lora.modules {
            m.alpha = Some(alpha);
        }
        Ok(Self { lora, prompts, rank, alpha })
    }

    /// `alpha / rank`, the factor of every layer's `up · down`.
    pub fn scale(&self) -> f32 {
        self.alpha / self.rank.max(1) as f32
    }
}
