//! SPM and LoRA adapters on the session's model, the portable half (the browser's `Session` and
//! the native tests share it).
//!
//! The adapters themselves are [`erasure::adapters::AdapterStack`], exactly as `studio generate
//! --spm/--lora` uses them (crates/cli/src/adapter_args.rs); this keeps what the session needs
//! on top:
//! - the parsed files (`specs`), so that the adapters can be taken off while edits change and put
//!   back after: both stacks restore the values they found, so edits must change only with no
//!   adapter attached (the order `adapters.rs` documents: edits first, adapters on top);
//! - the request of one file ([`erasure::request::AdapterFile`], shared with the CLI) parses it;
//! - Facilitated Transport per prompt from embeddings read back *asynchronously* before the run
//!   ([`prompts_to_encode`], then [`SessionAdapters::prepare`] with a
//!   [`PrecomputedEncoder`]): the CLI reads them synchronously (`AdapterStack::prepare` with a
//!   `ModelEncoder`), which a browser on WebGPU cannot; the numbers are the same.

use crate::error::StudioError;
use diffusion::unet_2d_condition::UNet2DConditionModel;
use erasure::adapters::{AdapterKind, AdapterStack, Permeability};
use erasure::facilitated_transport::special_token_ids;
use erasure::request::AdapterFile;
use erasure::text::PrecomputedEncoder;
use pipeline::model::StableDiffusion;
use serde::Serialize;

pub use erasure::request::{Parsed, file_kind};

/// Parses an adapter file as `kind` (`spm`, `lora`, or `auto`: by [`file_kind`]), as the
/// CLI's `--spm` / `--lora` do ([`AdapterFile::parse`]).
pub fn parse(file: &str, bytes: Vec<u8>, kind: &str) -> Result<Parsed, StudioError> {
    let f = AdapterFile { file: file.to_owned(), kind: kind.parse()?, scale: 1.0 };
    Ok(f.parse(bytes, false)?.0)
}

/// What the UI shows about an attached adapter (JSON, camelCase).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AdapterInfo {
    pub id: String,
    /// `spm` or `lora`.
    pub kind: &'static str,
    pub file: String,
    /// The SPM's erased prompts, trimmed (empty for a LoRA).
    pub prompts: Vec<String>,
    pub scale: f32,
    /// The permeability of the last run (1 until then, and without Facilitated Transport).
    pub permeability: f32,
    /// Layers it adapts, and the kohya names of their modules.
    pub layers: usize,
    pub modules: Vec<String>,
    pub rank: usize,
    /// Parameters of its factors.
    pub values: usize,
}

struct Spec {
    id: String,
    parsed: Parsed,
    scale: f32,
}

/// The session's adapters (see the module docs).
pub struct SessionAdapters {
    stack: AdapterStack,
    specs: Vec<Spec>,
    /// Facilitated Transport (on by default, as in the CLI; `--no-ft` turns it off).
    pub ft: bool,
}

impl Default for SessionAdapters {
    fn default() -> Self {
        Self { stack: AdapterStack::new(), specs: vec![], ft: true }
    }
}

fn attach_one(stack: &mut AdapterStack, unet: &mut UNet2DConditionModel, spec: &Spec) -> Result<usize, StudioError> {
    Ok(match &spec.parsed {
        Parsed::Spm(s) => stack.attach_spm(unet, &spec.id, s.clone(), spec.scale)?,
        Parsed::Lora(l) => stack.attach_lora(unet, &spec.id, l.clone(), spec.scale)?,
    })
}

impl SessionAdapters {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ids of the attached adapters, in attach order.
    pub fn active(&self) -> Vec<String> {
        self.specs.iter().map(|s| s.id.clone()).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.specs.is_empty()
    }

    fn has_spm(&self) -> bool {
        self.specs.iter().any(|s| matches!(s.parsed, Parsed::Spm(_)))
    }

    /// Attaches `parsed` under `id` (replacing one with the same id). On error the model and
    /// the other adapters are unchanged.
    pub fn attach(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        parsed: Parsed,
        scale: f32,
    ) -> Result<AdapterInfo, StudioError> {
        if let Parsed::Lora(l) = &parsed
            && !l.text_encoder.is_empty()
        {
            return Err(StudioError::Params(format!(
                "`{}` also adapts {} text-encoder layer(s) (`{}`, …); the studio applies UNet layers only (the text encoder feeds Facilitated Transport and the erasure methods)",
                l.file,
                l.text_encoder.len(),
                l.text_encoder[0]
            )));
        }
        let spec = Spec { id: id.to_owned(), parsed, scale };
        attach_one(&mut self.stack, unet, &spec)?;
        match self.specs.iter_mut().find(|s| s.id == id) {
            Some(slot) => *slot = spec,
            None => self.specs.push(spec),
        }
        self.info(id).ok_or_else(|| StudioError::Params(format!("adapter `{id}` was not attached")))
    }

    /// Detaches one adapter (layers no other adapter touches get their tensors back bit for bit).
    pub fn detach(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> bool {
        self.specs.retain(|s| s.id != id);
        self.stack.detach(unet, id)
    }

    /// Detaches and forgets every adapter.
    pub fn detach_all(&mut self, unet: &mut UNet2DConditionModel) {
        self.specs.clear();
        self.stack.detach_all(unet);
    }

    /// Takes every adapter off the weights (their files are kept): the UNet holds what it held
    /// before the first attach. [`resume`](Self::resume) puts them back.
    pub fn suspend(&mut self, unet: &mut UNet2DConditionModel) {
        self.stack.detach_all(unet);
    }

    /// Attaches the kept adapters again, in the same order, on the UNet's current weights. One
    /// that no longer attaches is dropped and the first such error returned.
    pub fn resume(&mut self, unet: &mut UNet2DConditionModel) -> Result<(), StudioError> {
        let mut stack = AdapterStack::new();
        let mut kept = vec![];
        let mut first_err = None;
        for spec in std::mem::take(&mut self.specs) {
            match attach_one(&mut stack, unet, &spec) {
                Ok(_) => kept.push(spec),
                Err(e) => drop(first_err.get_or_insert(e)),
            }
        }
        self.stack = stack;
        self.specs = kept;
        first_err.map_or(Ok(()), Err)
    }

    /// Runs `f` (which changes the edits) with every adapter taken off, then puts them back.
    pub fn suspended<T>(
        &mut self,
        unet: &mut UNet2DConditionModel,
        f: impl FnOnce(&mut UNet2DConditionModel) -> Result<T, StudioError>,
    ) -> Result<T, StudioError> {
        if self.specs.is_empty() {
            return f(unet);
        }
        self.suspend(unet);
        let out = f(unet);
        let back = self.resume(unet);
        let out = out?;
        back?;
        Ok(out)
    }

    /// The prompts whose embeddings [`prepare`](Self::prepare) needs for `prompt`: none
    /// without an SPM or with Facilitated Transport off.
    pub fn prompts_to_encode(&self, prompt: &str) -> Vec<String> {
        if !self.ft || !self.has_spm() {
            return vec![];
        }
        let mut v = vec![prompt.to_owned()];
        for s in &self.specs {
            if let Parsed::Spm(spm) = &s.parsed {
                v.extend(spm.prompts.iter().cloned());
            }
        }
        v.sort();
        v.dedup();
        v
    }

    /// Sets the weights for `prompt` as `AdapterStack::prepare` does (the CLI's path): with FT,
    /// every SPM's permeability from `enc` (holding [`prompts_to_encode`](Self::prompts_to_encode));
    /// without, 1.
    pub fn prepare(
        &mut self,
        model: &mut StableDiffusion,
        prompt: &str,
        enc: &mut PrecomputedEncoder,
    ) -> Result<Vec<Permeability>, StudioError> {
        if self.ft && self.has_spm() {
            let special = special_token_ids(&model.tokenizer);
            let perms = self.stack.permeabilities(prompt, enc, &special)?;
            let values: Vec<(String, f64)> = perms.iter().map(|p| (p.id.clone(), p.value)).collect();
            self.stack.set_permeabilities(&mut model.unet, &values);
            Ok(perms)
        } else {
            Ok(self.stack.prepare(model, prompt, false)?)
        }
    }

    /// Every attached adapter's info.
    pub fn infos(&self) -> Vec<AdapterInfo> {
        self.specs.iter().filter_map(|s| self.info(&s.id)).collect()
    }

    pub fn info(&self, id: &str) -> Option<AdapterInfo> {
        let spec = self.specs.iter().find(|s| s.id == id)?;
        let a = self.stack.adapters().into_iter().find(|a| a.id == id)?;
        let lora = match &spec.parsed {
            Parsed::Spm(s) => &s.lora,
            Parsed::Lora(l) => l,
        };
        Some(AdapterInfo {
            id: a.id,
            kind: if a.kind == AdapterKind::Spm { "spm" } else { "lora" },
            file: a.file,
            prompts: a.prompts.iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect(),
            scale: a.scale,
            permeability: a.permeability,
            layers: a.layers,
            modules: lora.modules.iter().map(|m| m.key.clone()).collect(),
            rank: a.rank,
            values: lora.modules.iter().map(|m| m.down.len() + m.up.len()).sum(),
        })
    }
}
