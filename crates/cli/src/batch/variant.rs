//! The variants of `studio batch`: what each image set is generated with. `--variants FILE.json`
//! holds a list (paths relative to the file's folder):
//! ```text
//! [ { "name": "original" },
//!   { "name": "uce-skull", "edits": ["uce-skull.safetensors"] },
//!   { "name": "spm", "spm": ["skull-spm.safetensors:1.0"], "noFt": false },
//!   { "name": "lora", "lora": ["style.safetensors:0.8"], "loraUnetOnly": true },
//!   { "name": "safree", "steering": { "safree": "skull" } },
//!   { "name": "neg", "negativePrompt": "skull" } ]
//! ```
//! `edits` are edit files (`studio erase`, the official UCE script), `spm` / `lora` adapter files
//! with `:SCALE` as `studio generate --spm/--lora`, `steering` the steering request of
//! `studio generate`'s flags (erasure::request::SteeringRequest, camelCase: `sld`, `sldConcept`,
//! `safree`, `safreeAlpha`, `safreeAllSteps`, `safreeArtist`, `eraser` (a file), `ringABell`
//! (pairs), with `ringABellEta` beside it), and `negativePrompt` the negative prompt of rows that
//! have none. `--variant NAME=EDIT[+EDIT…]` is the short form for edit files.
//!
//! A variant's SHA-256 ([`Variant::sha256`]) covers its settings and the bytes of every file it
//! names, so the manifest says exactly what made each image.

use crate::adapter_args::{self, AdapterArgs};
use crate::sha256_hex;
use crate::steering_args::CliSources;
use anyhow::{Context, Result, bail};
use erasure::EditStack;
use erasure::adapters::AdapterStack;
use erasure::request::SteeringRequest;
use erasure::steering::SteeringConfig;
use pipeline::StableDiffusion;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VariantSpec {
    pub name: String,
    #[serde(default)]
    pub edits: Vec<String>,
    #[serde(default)]
    pub spm: Vec<String>,
    #[serde(default)]
    pub lora: Vec<String>,
    #[serde(default)]
    pub no_ft: bool,
    #[serde(default)]
    pub lora_unet_only: bool,
    #[serde(default)]
    pub steering: SteeringRequest,
    #[serde(default)]
    pub ring_a_bell_eta: Option<f64>,
    #[serde(default)]
    pub negative_prompt: Option<String>,
}

/// A variant with its files found and hashed.
#[derive(Debug, Clone)]
pub struct Variant {
    pub spec: VariantSpec,
    /// Where relative paths start.
    base: PathBuf,
    /// What the variant is, as recorded in the protocol (file names with their SHA-256).
    pub identity: Value,
    pub sha256: String,
}

fn file_sha256(path: impl AsRef<Path>, what: &str, variant: &str) -> Result<String> {
    let path = path.as_ref();
    let bytes =
        std::fs::read(path).with_context(|| format!("variant `{variant}`: reading its {what} {}", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// A path of the variants file, relative to the file's folder unless absolute (an adapter's
/// `:SCALE` suffix stays on it, for `adapter_args::parse_file_scale`).
fn resolve(base: &Path, p: &str) -> String {
    if Path::new(p).is_absolute() { p.to_owned() } else { base.join(p).display().to_string() }
}

impl Variant {
    pub fn new(spec: VariantSpec, base: &Path) -> Result<Self> {
        let name = &spec.name;
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            || name.starts_with('.')
        {
            bail!("variant name `{name}`: use letters, digits, `.`, `_` and `-` (it names the image folder)");
        }
        let mut edits = vec![];
        for e in &spec.edits {
            edits.push(json!({ "file": e, "sha256": file_sha256(resolve(base, e), "edit", name)? }));
        }
        let mut adapters = vec![];
        for (kind, list) in [("spm", &spec.spm), ("lora", &spec.lora)] {
            for a in list {
                let (path, scale) =
                    adapter_args::parse_file_scale(&resolve(base, a)).with_context(|| format!("variant `{name}`"))?;
                adapters.push(
                    json!({ "kind": kind, "file": a, "scale": scale, "sha256": file_sha256(&path, kind, name)? }),
                );
            }
        }
        let mut steering = serde_json::to_value(&spec.steering)?;
        if let Some(e) = &spec.steering.eraser {
            steering["eraserSha256"] = file_sha256(resolve(base, e), "eraser", name)?.into();
        }
        let identity = json!({
            "name": name,
            "edits": edits,
            "adapters": adapters,
            "noFt": spec.no_ft,
            "loraUnetOnly": spec.lora_unet_only,
            "steering": steering,
            "ringABellEta": spec.ring_a_bell_eta,
            "negativePrompt": spec.negative_prompt,
        });
        let sha256 = sha256_hex(identity.to_string().as_bytes());
        Ok(Self { spec, base: base.to_path_buf(), identity, sha256 })
    }

    /// Applies the variant's edits and adapters to `model` and resolves its steering; undo with
    /// [`Applied::revert`].
    pub fn apply(&self, model: &mut StableDiffusion) -> Result<Applied> {
        let name = &self.spec.name;
        let edits: Vec<PathBuf> = self.spec.edits.iter().map(|e| PathBuf::from(resolve(&self.base, e))).collect();
        let edits = crate::erase::apply_edits(model, &edits).with_context(|| format!("variant `{name}`"))?;
        let args = AdapterArgs {
            spm: self.spec.spm.iter().map(|s| resolve(&self.base, s)).collect(),
            lora: self.spec.lora.iter().map(|s| resolve(&self.base, s)).collect(),
            no_ft: self.spec.no_ft,
            lora_unet_only: self.spec.lora_unet_only,
        };
        let req = args.request()?;
        let adapters = adapter_args::attach_files(&req, model).with_context(|| format!("variant `{name}`"))?;
        let mut steering = self.spec.steering.clone();
        steering.eraser = steering.eraser.as_deref().map(|e| resolve(&self.base, e));
        steering.ring_a_bell_eta = self.spec.ring_a_bell_eta.or(Some(erasure::ring_a_bell::DEFAULT_ETA));
        let steering =
            steering.to_config(&mut CliSources { model }).map_err(|e| anyhow::anyhow!("variant `{name}`: {e}"))?;
        Ok(Applied { edits, adapters, ft: req.facilitated_transport, steering })
    }
}

/// A variant on the model.
pub struct Applied {
    edits: EditStack,
    adapters: Option<AdapterStack>,
    ft: bool,
    pub steering: Option<SteeringConfig>,
}

impl Applied {
    /// Sets the adapters' weights for `prompt` (Facilitated Transport).
    pub fn prepare(&mut self, model: &mut StableDiffusion, prompt: &str) -> Result<()> {
        if let Some(stack) = &mut self.adapters {
            adapter_args::prepare(stack, model, prompt, self.ft, false)?;
        }
        Ok(())
    }

    pub fn revert(mut self, model: &mut StableDiffusion) {
        if let Some(stack) = &mut self.adapters {
            stack.detach_all(&mut model.unet);
        }
        self.edits.revert_all(&mut model.unet);
    }
}

/// The variants of a run: `--variants FILE`, then each `--variant NAME=EDIT[+EDIT…]`; one
/// `original` (the unedited model) when neither is given. Names must be unique.
pub fn read(file: Option<&Path>, short: &[String]) -> Result<Vec<Variant>> {
    let mut out = vec![];
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading the variants file {}", path.display()))?;
        let specs: Vec<VariantSpec> = serde_json::from_str(&text).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a list of variants ({e}); see `studio batch --help` for the fields",
                path.display()
            )
        })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        for s in specs {
            out.push(Variant::new(s, &base)?);
        }
    }
    for s in short {
        let (name, edits) = s.split_once('=').unwrap_or((s.as_str(), ""));
        let edits = edits.split('+').map(str::trim).filter(|e| !e.is_empty()).map(str::to_owned).collect();
        out.push(Variant::new(
            VariantSpec { name: name.trim().to_owned(), edits, ..Default::default() },
            Path::new(""),
        )?);
    }
    if file.is_some() && out.is_empty() {
        bail!("{}: the list of variants is empty", file.map(|p| p.display().to_string()).unwrap_or_default());
    }
    if out.is_empty() {
        out.push(Variant::new(VariantSpec { name: "original".into(), ..Default::default() }, Path::new(""))?);
    }
    let mut names: Vec<&str> = out.iter().map(|v| v.spec.name.as_str()).collect();
    names.sort();
    if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
        bail!("two variants are named `{}`: give each its own name", w[0]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variants_are_named_hashed_and_checked() {
        let dir = std::env::temp_dir().join(format!("studio-variants-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("e.safetensors"), b"edit bytes").unwrap();
        let file = dir.join("v.json");
        std::fs::write(&file, r#"[{"name":"original"},{"name":"uce","edits":["e.safetensors"]}]"#).unwrap();
        let v = read(Some(&file), &[]).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].identity["edits"][0]["sha256"], sha256_hex(b"edit bytes"));
        let before = v[1].sha256.clone();
        std::fs::write(dir.join("e.safetensors"), b"other bytes").unwrap();
        assert_ne!(read(Some(&file), &[]).unwrap()[1].sha256, before, "the hash covers the file's bytes");
        assert_eq!(read(None, &[]).unwrap()[0].spec.name, "original");

        let e = |text: &str| {
            std::fs::write(&file, text).unwrap();
            read(Some(&file), &[]).unwrap_err().to_string()
        };
        assert!(e(r#"[{"name":"a b"}]"#).contains("variant name `a b`: use letters"));
        assert!(e(r#"[{"name":"a"},{"name":"a"}]"#).contains("two variants are named `a`"));
        assert!(e(r#"[{"name":"a","edit":["x"]}]"#).contains("not a list of variants (unknown field `edit`"));
        assert!(
            format!("{:#}", read_err(&file, r#"[{"name":"a","edits":["missing.safetensors"]}]"#))
                .contains("variant `a`: reading its edit")
        );
        assert!(e("[]").contains("the list of variants is empty"));
        std::fs::remove_dir_all(&dir).ok();
    }

    fn read_err(file: &Path, text: &str) -> anyhow::Error {
        std::fs::write(file, text).unwrap();
        read(Some(file), &[]).unwrap_err()
    }
}
