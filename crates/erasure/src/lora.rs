//! Low-rank adapter files in kohya naming (plain LoRA, and the container format of SPM).
//!
//! File (DESIGN.md, "SPM / LoRA files"): a `.safetensors` with, per adapted layer,
//! `lora_unet_<module path, '.' → '_'>.lora_down.weight` `[r, in]` (1×1 conv: `[r, in, 1, 1]`),
//! `.lora_up.weight` `[out, r]` (conv: `[out, r, 1, 1]`) and an optional scalar `.alpha`
//! (missing → `alpha = r`, kohya's convention). The layer's weight becomes
//! `W + s · (alpha / r) · up · down` for a user scale `s` (kohya `networks/merge_lora.py`;
//! Con6924/SPM `src/models/merge_spm.py` `merge_to_sd_model`, the `W <- W + U * D` branch).
//!
//! Names are matched by building the kohya name of every UNet layer we can adapt (the
//! `Linear`s inside each `Transformer2DModel`, and SD 1.x's 1×1 conv `proj_in`/`proj_out`, as
//! `SPMNetwork.create_modules` in Con6924/SPM `src/models/spm.py` enumerates them), because the
//! underscore form cannot be turned back into a dotted path. Both 2-D and `…, 1, 1` 4-D factors
//! are accepted for both layer kinds (kohya's merge squeezes them the same way).
//!
//! Text-encoder adapters (`lora_te_`, SDXL `lora_te1_` / `lora_te2_`) are recognised and kept
//! apart in [`LoraFile::text_encoder`]; the studio does not apply them (they would change the
//! text encoder that Facilitated Transport and the closed-form methods read). Attaching a file
//! that has some is an error unless they are dropped explicitly with
//! [`LoraFile::without_text_encoder`].

use crate::error::{EraseError, family_hint};
use diffusion::safetensors_file::SafetensorsBytes;
use diffusion::unet_2d_condition::UNet2DConditionModel;
use std::collections::BTreeMap;

pub const UNET_PREFIX: &str = "lora_unet_";
const TE_PREFIXES: [&str; 3] = ["lora_te_", "lora_te1_", "lora_te2_"];

/// One adapted layer as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct LowRank {
    /// kohya module name, e.g. `lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn2_to_k`.
    pub key: String,
    pub rank: usize,
    pub d_in: usize,
    pub d_out: usize,
    /// `[rank, d_in]` row-major (a 1×1 conv's trailing dims dropped).
    pub down: Vec<f32>,
    /// `[d_out, rank]` row-major.
    pub up: Vec<f32>,
    /// Shapes as stored, for messages.
    pub down_shape: Vec<usize>,
    pub up_shape: Vec<usize>,
    /// The per-layer `.alpha`, if the file has one.
    pub alpha: Option<f32>,
}

impl LowRank {
    /// `alpha / rank`, with `alpha = rank` when the file gives none (kohya).
    pub fn scale(&self) -> f32 {
        self.alpha.unwrap_or(self.rank as f32) / self.rank as f32
    }
}

/// A parsed adapter file.
#[derive(Debug, Clone)]
pub struct LoraFile {
    /// File name, for messages.
    pub file: String,
    /// UNet layers, sorted by key.
    pub modules: Vec<LowRank>,
    /// kohya names of text-encoder layers the file also adapts (not applied).
    pub text_encoder: Vec<String>,
    pub metadata: BTreeMap<String, String>,
}

/// Which kind of UNet layer an adapter targets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LayerKind {
    /// `Linear`, weight `[out, in]`.
    Linear,
    /// 1×1 `Conv2d`, weight `[out, in, 1, 1]` (SD 1.x `proj_in` / `proj_out`).
    Conv1x1,
}

/// A UNet layer an adapter may change.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Diffusers module path, e.g. `mid_block.attentions.0.proj_in`.
    pub module: String,
    pub kind: LayerKind,
    pub d_in: usize,
    pub d_out: usize,
}

/// The kohya name of a diffusers module path.
pub fn kohya_name(module: &str) -> String {
    format!("{UNET_PREFIX}{}", module.replace('.', "_"))
}

/// Every adaptable layer of the UNet by kohya name. Needs `&mut` only because the UNet exposes
/// its convolutions through a mutable visitor; nothing is changed and nothing is read back.
pub fn targets(unet: &mut UNet2DConditionModel) -> BTreeMap<String, Target> {
    let mut out = BTreeMap::new();
    unet.for_each_linear(&mut |name, lin| {
        out.insert(
            kohya_name(name),
            Target { module: name.to_owned(), kind: LayerKind::Linear, d_in: lin.d_in(), d_out: lin.d_out() },
        );
    });
    unet.for_each_conv_mut(&mut |name, conv| {
        let [c_out, c_in, kh, kw] = conv.weight.dims();
        if kh == 1 && kw == 1 {
            out.insert(
                kohya_name(name),
                Target { module: name.to_owned(), kind: LayerKind::Conv1x1, d_in: c_in, d_out: c_out },
            );
        }
    });
    out
}

fn bad(file: &str, reason: String) -> EraseError {
    EraseError::BadFile { file: file.into(), kind: "LoRA/SPM", reason }
}

/// Splits `[a, b]` or `[a, b, kh, kw]` into `(a, b, kh·kw)`.
fn matrix_dims(shape: &[usize]) -> Option<(usize, usize, usize)> {
    match shape {
        [a, b] => Some((*a, *b, 1)),
        [a, b, kh, kw] => Some((*a, *b, kh * kw)),
        _ => None,
    }
}

impl LoraFile {
    /// Parses an adapter file. Checks what the file alone can tell: kohya naming, matching
    /// `lora_down` / `lora_up` pairs of one rank, finite values. A truncated or corrupt file
    /// fails here with the safetensors reader's message.
    pub fn parse(file: &str, bytes: Vec<u8>) -> Result<Self, EraseError> {
        let st = SafetensorsBytes::parse(file, bytes)?;
        #[derive(Default)]
        struct Parts {
            down: Option<(Vec<f32>, Vec<usize>)>,
            up: Option<(Vec<f32>, Vec<usize>)>,
            alpha: Option<f32>,
        }
        let mut unet: BTreeMap<String, Parts> = BTreeMap::new();
        let mut te: BTreeMap<String, ()> = BTreeMap::new();
        for (name, info) in &st.header.tensors {
            let (module, part) = if let Some(m) = name.strip_suffix(".lora_down.weight") {
                (m, 0)
            } else if let Some(m) = name.strip_suffix(".lora_up.weight") {
                (m, 1)
            } else if let Some(m) = name.strip_suffix(".alpha") {
                (m, 2)
            } else if name.contains("hada_") || name.contains("lokr_") || name.ends_with(".dora_scale") {
                return Err(bad(
                    file,
                    format!(
                        "tensor `{name}` belongs to a LyCORIS adapter (LoHa/LoKr/DoRA); only plain LoRA (lora_down/lora_up) is supported"
                    ),
                ));
            } else if name.contains("lora_A") || name.contains("lora_B") || name.contains(".lora.down") {
                return Err(bad(
                    file,
                    format!(
                        "tensor `{name}` uses diffusers/PEFT naming; convert the file to kohya naming (`lora_unet_….lora_down.weight`)"
                    ),
                ));
            } else {
                return Err(bad(
                    file,
                    format!(
                        "tensor `{name}` is not a kohya LoRA tensor (`<module>.lora_down.weight`, `.lora_up.weight` or `.alpha`)"
                    ),
                ));
            };
            if TE_PREFIXES.iter().any(|p| module.starts_with(p)) {
                te.insert(module.to_owned(), ());
                continue;
            }
            if !module.starts_with(UNET_PREFIX) {
                return Err(bad(
                    file,
                    format!(
                        "tensor `{name}` names neither a UNet (`{UNET_PREFIX}…`) nor a text-encoder (`lora_te_…`) layer"
                    ),
                ));
            }
            let values = st.f32(name).ok_or_else(|| {
                bad(
                    file,
                    format!(
                        "tensor `{name}` has dtype {}; only F32, F16, BF16 and F64 are supported",
                        info.dtype.name()
                    ),
                )
            })?;
            if values.0.iter().any(|v| !v.is_finite()) {
                return Err(EraseError::NotFinite { method: "this adapter file", tensor: name.clone() });
            }
            let parts = unet.entry(module.to_owned()).or_default();
            match part {
                0 => parts.down = Some(values),
                1 => parts.up = Some(values),
                _ => {
                    if values.0.len() != 1 {
                        return Err(bad(file, format!("`{name}` should be a scalar, it has shape {:?}", values.1)));
                    }
                    parts.alpha = Some(values.0[0]);
                }
            }
        }
        let mut modules = Vec::with_capacity(unet.len());
        for (key, p) in unet {
            let (Some((down, down_shape)), Some((up, up_shape))) = (p.down, p.up) else {
                return Err(bad(file, format!("layer `{key}` needs both `.lora_down.weight` and `.lora_up.weight`")));
            };
            let (Some((rank, d_in, _)), Some((d_out, rank_up, k_up))) =
                (matrix_dims(&down_shape), matrix_dims(&up_shape))
            else {
                return Err(bad(
                    file,
                    format!(
                        "layer `{key}` has factors of shape {down_shape:?} and {up_shape:?}; expected [r, in] and [out, r] (or [r, in, 1, 1] and [out, r, 1, 1])"
                    ),
                ));
            };
            if rank == 0 || rank_up != rank || k_up != 1 {
                return Err(bad(
                    file,
                    format!(
                        "layer `{key}`: `lora_down` {down_shape:?} and `lora_up` {up_shape:?} do not share one rank"
                    ),
                ));
            }
            // A k×k down (LoCon on a 3×3 conv) is kept as stored: `resolve` rejects it.
            modules.push(LowRank { key, rank, d_in, d_out, down, up, down_shape, up_shape, alpha: p.alpha });
        }
        if modules.is_empty() && te.is_empty() {
            return Err(bad(file, "it holds no LoRA tensors".into()));
        }
        Ok(Self {
            file: file.into(),
            modules,
            text_encoder: te.into_keys().collect(),
            metadata: st.header.metadata.clone(),
        })
    }

    /// The same file without its text-encoder layers (they are never applied).
    pub fn without_text_encoder(mut self) -> Self {
        self.text_encoder.clear();
        self
    }

    /// The largest rank of any layer.
    pub fn max_rank(&self) -> usize {
        self.modules.iter().map(|m| m.rank).max().unwrap_or(0)
    }

    /// Matches every layer to the UNet and checks its shapes, without changing anything. Errors,
    /// in this order: text-encoder layers present; the first layer (by name) whose factors do not
    /// fit its UNet layer ([`EraseError::WrongShape`], naming the tensor and both shapes); the
    /// first name the UNet does not have ([`EraseError::UnknownTensor`]).
    pub fn resolve(&self, targets: &BTreeMap<String, Target>, d_text: usize) -> Result<Vec<Target>, EraseError> {
        if let Some(first) = self.text_encoder.first() {
            return Err(bad(
                &self.file,
                format!(
                    "it adapts {} text-encoder layer(s) (e.g. `{first}`); the studio applies adapters to the UNet only. Use a UNet-only file (or --lora-unet-only to drop them)",
                    self.text_encoder.len()
                ),
            ));
        }
        let mut resolved = Vec::with_capacity(self.modules.len());
        let mut unknown = None;
        for m in &self.modules {
            let Some(t) = targets.get(&m.key) else {
                unknown.get_or_insert(m);
                continue;
            };
            let expect = |stored: &[usize], rows: usize, cols: usize| -> Vec<usize> {
                if stored.len() == 4 { vec![rows, cols, 1, 1] } else { vec![rows, cols] }
            };
            let want_down = expect(&m.down_shape, m.rank, t.d_in);
            if m.down_shape != want_down {
                let hint = if m.key.ends_with("attn2_to_k") || m.key.ends_with("attn2_to_v") {
                    family_hint(m.d_in, d_text)
                } else {
                    String::new()
                };
                let hint = if hint.is_empty() {
                    ": this adapter was made for another model architecture".to_owned()
                } else {
                    hint
                };
                return Err(EraseError::WrongShape {
                    file: self.file.clone(),
                    name: format!("{}.lora_down.weight", m.key),
                    expected: want_down,
                    found: m.down_shape.clone(),
                    hint,
                });
            }
            let want_up = expect(&m.up_shape, t.d_out, m.rank);
            if m.up_shape != want_up {
                return Err(EraseError::WrongShape {
                    file: self.file.clone(),
                    name: format!("{}.lora_up.weight", m.key),
                    expected: want_up,
                    found: m.up_shape.clone(),
                    hint: ": this adapter was made for another model architecture".into(),
                });
            }
            resolved.push(t.clone());
        }
        if let Some(m) = unknown {
            let k = &m.key;
            let hint = if k.contains("input_blocks") || k.contains("output_blocks") || k.contains("middle_block") {
                ": it uses original-SD/SDXL block names (input_blocks/output_blocks); only diffusers-named SD 1.x/2.x adapters are supported"
            } else if k.contains("resnets")
                || k.contains("samplers")
                || k.contains("conv_in")
                || k.contains("conv_out")
                || k.contains("time_emb")
            {
                ": it adapts a ResNet/convolution layer (LoCon); only the transformer-block layers (attention, feed-forward, proj_in/proj_out) are supported"
            } else {
                ": this adapter was made for another model architecture"
            };
            return Err(EraseError::UnknownTensor {
                file: self.file.clone(),
                name: format!("{k}.lora_down.weight"),
                hint: hint.into(),
            });
        }
        Ok(resolved)
    }
}
