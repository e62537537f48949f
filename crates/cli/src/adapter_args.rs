//! `studio generate --spm FILE[:SCALE]… --lora FILE[:SCALE]… [--no-ft] [--lora-unet-only]`:
//! reads the adapter files and attaches them to the loaded model (erasure::adapters).
//!
//! SPMs get their Facilitated Transport permeability for the prompt (as Con6924/SPM
//! `infer_spm.py`, metric `clipcos_tokenuni`) unless `--no-ft`; a `:SCALE` multiplies both SPM
//! factors like `infer_spm.py --spm_multiplier` (so ΔW scales with SCALE²) and a LoRA's ΔW
//! linearly (kohya / diffusers).

use anyhow::{Context, Result, bail};
use erasure::adapters::AdapterStack;
use erasure::request::{AdapterFile, AdapterFileKind, AdapterRequest, Parsed};
use pipeline::StableDiffusion;
use std::path::{Path, PathBuf};

#[derive(clap::Args, Debug, Default)]
pub struct AdapterArgs {
    /// An SPM file (Con6924/SPM `.safetensors`, kohya names + `prompts` metadata); repeatable.
    /// `FILE:SCALE` multiplies both of its factors (ΔW × SCALE²), like infer_spm's --spm_multiplier.
    #[arg(long = "spm", value_name = "FILE[:SCALE]")]
    pub spm: Vec<String>,
    /// A plain LoRA file in kohya naming (`lora_unet_…`); repeatable; `FILE:SCALE` (default 1).
    #[arg(long = "lora", value_name = "FILE[:SCALE]")]
    pub lora: Vec<String>,
    /// Turn Facilitated Transport off: every SPM applies fully whatever the prompt.
    #[arg(long)]
    pub no_ft: bool,
    /// Drop the text-encoder layers (`lora_te_…`) of LoRA files instead of refusing them.
    #[arg(long)]
    pub lora_unet_only: bool,
}

/// `FILE` or `FILE:SCALE` (an existing file whose name contains ':' is taken whole).
pub fn parse_file_scale(arg: &str) -> Result<(PathBuf, f32)> {
    if Path::new(arg).is_file() {
        return Ok((PathBuf::from(arg), 1.0));
    }
    if let Some((file, scale)) = arg.rsplit_once(':')
        && let Ok(s) = scale.trim().parse::<f32>()
    {
        if !s.is_finite() {
            bail!("scale `{scale}` in `{arg}` is not a finite number");
        }
        return Ok((PathBuf::from(file), s));
    }
    Ok((PathBuf::from(arg), 1.0))
}

impl AdapterArgs {
    /// The flags as the request they stand for: the SPMs first, then the LoRAs.
    pub fn request(&self) -> Result<AdapterRequest> {
        let mut files = vec![];
        for (args, kind) in [(&self.spm, AdapterFileKind::Spm), (&self.lora, AdapterFileKind::Lora)] {
            for arg in args {
                let (path, scale) = parse_file_scale(arg)?;
                files.push(AdapterFile { file: path.display().to_string(), kind, scale });
            }
        }
        Ok(AdapterRequest { files, facilitated_transport: !self.no_ft, lora_unet_only: self.lora_unet_only })
    }
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// Attaches the adapters and sets the weights for `prompt`; prints what it did to stderr.
/// `None` when no adapter was asked for.
pub fn attach(args: &AdapterArgs, model: &mut StableDiffusion, prompt: &str) -> Result<Option<AdapterStack>> {
    let req = args.request()?;
    let Some(mut stack) = attach_files(&req, model)? else { return Ok(None) };
    prepare(&mut stack, model, prompt, req.facilitated_transport, true)?;
    Ok(Some(stack))
}

/// Reads and attaches the request's files (saying what each is); `None` when it has none.
/// The SPMs apply fully until [`prepare`] sets their permeability for a prompt.
pub fn attach_files(req: &AdapterRequest, model: &mut StableDiffusion) -> Result<Option<AdapterStack>> {
    if req.files.is_empty() {
        return Ok(None);
    }
    let mut stack = AdapterStack::new();
    for f in &req.files {
        let name = &f.file;
        match f.parse(read(Path::new(name))?, req.lora_unet_only)? {
            (Parsed::Spm(spm), _) => {
                let prompts = spm.prompts.iter().map(|p| p.trim()).collect::<Vec<_>>().join(", ");
                let n = stack.attach_spm(&mut model.unet, name, spm, f.scale)?;
                eprintln!("spm {name}: {n} layers, erases [{prompts}], scale {}", f.scale);
            }
            (Parsed::Lora(lora), dropped) => {
                if dropped > 0 {
                    eprintln!("lora {name}: dropping {dropped} text-encoder layer(s)");
                }
                let rank = lora.max_rank();
                let n = stack.attach_lora(&mut model.unet, name, lora, f.scale)?;
                eprintln!("lora {name}: {n} layers, rank {rank}, scale {}", f.scale);
            }
        }
    }
    Ok(Some(stack))
}

/// Sets each SPM's Facilitated Transport permeability for `prompt` (1 with `ft` off); with
/// `verbose`, says what it set.
pub fn prepare(
    stack: &mut AdapterStack,
    model: &mut StableDiffusion,
    prompt: &str,
    ft: bool,
    verbose: bool,
) -> Result<()> {
    let perms = stack.prepare(model, prompt, ft)?;
    if !verbose {
        return Ok(());
    }
    for p in &perms {
        if !ft {
            eprintln!("spm {}: Facilitated Transport off, permeability 1", p.id);
        } else {
            let best = p
                .concepts
                .iter()
                .max_by(|a, b| a.1.score.total_cmp(&b.1.score))
                .map(|(c, _)| c.trim().to_owned())
                .unwrap_or_default();
            eprintln!(
                "spm {}: permeability {:.4} for this prompt (Facilitated Transport, closest concept `{best}`)",
                p.id, p.value
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_scale_suffix() {
        assert_eq!(parse_file_scale("a.safetensors:0.5").unwrap(), (PathBuf::from("a.safetensors"), 0.5));
        assert_eq!(parse_file_scale("a.safetensors").unwrap(), (PathBuf::from("a.safetensors"), 1.0));
        assert_eq!(parse_file_scale("dir:x/a.safetensors").unwrap(), (PathBuf::from("dir:x/a.safetensors"), 1.0));
        assert!(parse_file_scale("a.safetensors:inf").is_err());
    }
}
