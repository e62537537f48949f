//! [`AdapterRequest`]: SPM / LoRA files with their scales and Facilitated Transport, as `studio
//! generate --spm FILE[:SCALE]… --lora FILE[:SCALE]… [--no-ft] [--lora-unet-only]` and the
//! page's `Session.addEntry(id, file, data)` (an adapter file, by its header) /
//! `facilitatedTransport` ask for them. The front end reads the files; [`AdapterFile::parse`] makes one of its bytes.
//!
//! An SPM's scale multiplies both of its factors like Con6924/SPM `infer_spm.py
//! --spm_multiplier` (so ΔW scales with SCALE²); a LoRA's scales ΔW linearly (kohya / diffusers).

use super::{RequestError, invalid};
use crate::lora::LoraFile;
use crate::spm::Spm;

/// A parsed adapter file.
#[derive(Debug, Clone)]
pub enum Parsed {
    Spm(Spm),
    Lora(LoraFile),
}

/// What a file is read as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterFileKind {
    Spm,
    Lora,
    /// By its header ([`file_kind`]).
    Auto,
}

impl std::str::FromStr for AdapterFileKind {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, RequestError> {
        match s {
            "spm" => Ok(Self::Spm),
            "lora" => Ok(Self::Lora),
            "auto" => Ok(Self::Auto),
            other => Err(invalid(format!("unknown adapter kind `{other}`: use spm, lora or auto"))),
        }
    }
}

/// One adapter file of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterFile {
    /// The name it goes by (in messages and in the adapter's info).
    pub file: String,
    pub kind: AdapterFileKind,
    /// The user scale (default 1).
    pub scale: f32,
}

/// The adapters of a run, in attach order.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterRequest {
    pub files: Vec<AdapterFile>,
    /// Facilitated Transport: each SPM applies in proportion to how close the prompt is to the
    /// concepts it erases (on by default; `--no-ft` turns it off: every SPM applies fully).
    pub facilitated_transport: bool,
    /// Drop the text-encoder layers (`lora_te_…`) of LoRA files instead of refusing them.
    pub lora_unet_only: bool,
}

impl Default for AdapterRequest {
    fn default() -> Self {
        Self { files: vec![], facilitated_transport: true, lora_unet_only: false }
    }
}

impl AdapterFile {
    /// Parses the file's bytes as its kind; with `lora_unet_only`, a LoRA's text-encoder layers
    /// are dropped (their count is returned with it: the CLI says so).
    pub fn parse(&self, bytes: Vec<u8>, lora_unet_only: bool) -> Result<(Parsed, usize), RequestError> {
        let kind = match self.kind {
            AdapterFileKind::Auto => file_kind(&bytes),
            AdapterFileKind::Spm => "spm",
            AdapterFileKind::Lora => "lora",
        };
        match kind {
            "spm" => Ok((Parsed::Spm(Spm::parse(&self.file, bytes)?), 0)),
            "lora" => {
                let lora = LoraFile::parse(&self.file, bytes)?;
                let dropped = if lora_unet_only { lora.text_encoder.len() } else { 0 };
                Ok((Parsed::Lora(if dropped > 0 { lora.without_text_encoder() } else { lora }), dropped))
            }
            _ => Err(invalid(format!(
                "`{}` holds no kohya adapter tensors (`lora_unet_…`): it is not an SPM or LoRA file",
                self.file
            ))),
        }
    }
}

/// What a `.safetensors` file holds, from its header alone: `spm` (kohya `lora_…` tensors and a
/// `prompts` metadata entry), `lora` (kohya tensors without `prompts`), `eraser` (a LEACE / INLP
/// eraser of `studio fit-eraser`: metadata `format = erasure-studio-eraser/1`, or tensors
/// `proj_left` and `proj_right`) or `edit` (anything else, including a header that cannot be
/// read: the edit parser then names the problem).
pub fn file_kind(bytes: &[u8]) -> &'static str {
    let Some(n) = bytes.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize) else {
        return "edit";
    };
    let Some(header) = n.checked_add(8).and_then(|end| bytes.get(8..end)) else { return "edit" };
    let Ok(serde_json::Value::Object(map)) = serde_json::from_slice::<serde_json::Value>(header) else { return "edit" };
    let format = map.get("__metadata__").and_then(|m| m.get("format")).and_then(|f| f.as_str());
    if format == Some(crate::leace::FORMAT) || (map.contains_key("proj_left") && map.contains_key("proj_right")) {
        return "eraser";
    }
    if !map.keys().any(|k| k.starts_with("lora_")) {
        return "edit";
    }
    let prompts = map.get("__metadata__").and_then(|m| m.get("prompts")).is_some();
    if prompts { "spm" } else { "lora" }
}
