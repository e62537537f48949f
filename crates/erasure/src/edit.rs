//! An edit as a value: replacement tensors under diffusers names plus what made them.
//!
//! File format (DESIGN.md, "Edit file"): a `.safetensors` holding only the changed tensors, e.g.
//! `down_blocks.1.attentions.0.transformer_blocks.0.attn2.to_v.weight` `[d_out, d_text]`, the
//! full new weight as the official UCE script saves it, so diffusers can
//! `unet.load_state_dict(load_file(path), strict=False)`. Metadata (all strings):
//! `format = "erasure-studio-edit/1"`, `method`, `concepts` / `guides` / `preserve` (JSON lists),
//! `hyperparameters` (JSON object), `base_model` (fingerprint, see [`fingerprint`]).
//!
//! Applying and composing ([`EditStack`]): every edit is stored as the full new weights `W'_k`
//! computed from the original model `W₀`; the stack keeps `W₀` of every touched tensor and sets
//! `W = W₀ + Σ_k (W'_k − W₀)` over the active edits, in the order they were added. Edits on
//! disjoint tensors therefore behave exactly as if each were applied alone; edits on the same
//! tensor add their changes (first-order composition). To erase several concepts at once the
//! exact way, erase them in one edit (as the official multi-concept runs do). Reverting restores
//! `W₀` bit for bit, without reloading.

use crate::error::{EraseError, family_hint};
use crate::text::read_f32;
use burn::tensor::{Tensor, TensorData};
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use diffusion::unet_2d_condition::UNet2DConditionModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const FORMAT: &str = "erasure-studio-edit/1";

/// One replacement tensor, PyTorch layout (`[d_out, d_in]` for a linear weight), row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct EditTensor {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// What made an edit.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EditMeta {
    pub method: String,
    pub concepts: Vec<String>,
    pub guides: Vec<String>,
    pub preserve: Vec<String>,
    /// Hyper-parameters by name (numbers, strings, booleans).
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// [`fingerprint`] of the original tensors the edit was computed from.
    pub base_model: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edit {
    pub tensors: Vec<EditTensor>,
    pub meta: EditMeta,
}

/// FNV-1a (64 bit) over the names, shapes and the f32 bit patterns of every 61st value of the
/// given tensors (sorted by name): cheap enough for SD 1.5, and any retrained or fine-tuned
/// model changes it. Written as 16 hex digits.
pub fn fingerprint(tensors: &[(String, Vec<usize>, Vec<f32>)]) -> String {
    let mut sorted: Vec<&(String, Vec<usize>, Vec<f32>)> = tensors.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= *b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    for (name, shape, data) in sorted {
        eat(name.as_bytes());
        for s in shape {
            eat(&(*s as u64).to_le_bytes());
        }
        for v in data.iter().step_by(61) {
            eat(&v.to_bits().to_le_bytes());
        }
    }
    format!("{h:016x}")
}

impl Edit {
    /// The edit file's bytes (f32 tensors).
    pub fn to_safetensors(&self) -> Vec<u8> {
        let tensors: Vec<WriteTensor> = self
            .tensors
            .iter()
            .map(|t| WriteTensor {
                name: &t.name,
                shape: t.shape.clone(),
                data: &t.data,
                dtype: Dtype::F32,
            })
            .collect();
        let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings");
        let mut meta = BTreeMap::new();
        meta.insert("format".to_owned(), FORMAT.to_owned());
        meta.insert("method".to_owned(), self.meta.method.clone());
        meta.insert("concepts".to_owned(), json(&self.meta.concepts));
        meta.insert("guides".to_owned(), json(&self.meta.guides));
        meta.insert("preserve".to_owned(), json(&self.meta.preserve));
        meta.insert(
            "hyperparameters".to_owned(),
            serde_json::to_string(&self.meta.hyperparameters).expect("json"),
        );
        meta.insert("base_model".to_owned(), self.meta.base_model.clone());
        serialize(&tensors, &meta)
    }

    /// Reads an edit file. Files without our metadata (e.g. saved by the official UCE script)
    /// load too, with method "unknown".
    pub fn from_safetensors(file: &str, bytes: Vec<u8>) -> Result<Self, EraseError> {
        let st = SafetensorsBytes::parse(file, bytes)?;
        let md = &st.header.metadata;
        let list = |k: &str| -> Vec<String> {
            md.get(k)
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default()
        };
        let meta = EditMeta {
            method: md
                .get("method")
                .cloned()
                .unwrap_or_else(|| "unknown".into()),
            concepts: list("concepts"),
            guides: list("guides"),
            preserve: list("preserve"),
            hyperparameters: md
                .get("hyperparameters")
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or_default(),
            base_model: md.get("base_model").cloned().unwrap_or_default(),
        };
        if st.header.tensors.is_empty() {
            return Err(EraseError::BadFile {
                file: file.into(),
                kind: "edit",
                reason: "it holds no tensors".into(),
            });
        }
        let mut tensors = vec![];
        for (name, info) in &st.header.tensors {
            let (data, shape) = st.f32(name).ok_or_else(|| EraseError::BadFile {
                file: file.into(),
                kind: "edit",
                reason: format!(
                    "tensor `{name}` has dtype {}; only F32, F16 and BF16 are supported",
                    info.dtype.name()
                ),
            })?;
            tensors.push(EditTensor {
                name: name.clone(),
                shape,
                data,
            });
        }
        Ok(Self { tensors, meta })
    }
}

/// The model's original value of every tensor an active edit touches, and the active edits.
#[derive(Default)]
pub struct EditStack {
    originals: BTreeMap<String, Tensor<2>>,
    active: Vec<(String, Edit)>,
}

/// The `Linear` weights of the UNet's transformer blocks by tensor name, PyTorch layout.
fn linear_weights(unet: &UNet2DConditionModel) -> BTreeMap<String, Tensor<2>> {
    let mut out = BTreeMap::new();
    unet.for_each_linear(&mut |name, lin| {
        out.insert(format!("{name}.weight"), lin.weight_torch());
    });
    out
}

impl EditStack {
    pub fn new() -> Self {
        Self::default()
    }

    /// Ids of the active edits, in order.
    pub fn active(&self) -> Vec<&str> {
        self.active.iter().map(|(id, _)| id.as_str()).collect()
    }

    pub fn get(&self, id: &str) -> Option<&Edit> {
        self.active.iter().find(|(i, _)| i == id).map(|(_, e)| e)
    }

    /// Checks `edit` against the model without changing anything: every tensor exists with the
    /// same shape and every value is finite.
    pub fn check(unet: &UNet2DConditionModel, edit: &Edit, file: &str) -> Result<(), EraseError> {
        let weights = linear_weights(unet);
        let d_text = unet.config().cross_attention_dim;
        for t in &edit.tensors {
            let Some(w) = weights.get(&t.name) else {
                return Err(EraseError::UnknownTensor {
                    file: file.into(),
                    name: t.name.clone(),
                    hint: ": it was made for another architecture (edits change the UNet's transformer-block linear layers)".into(),
                });
            };
            let expected = w.dims().to_vec();
            if t.shape != expected || t.data.len() != expected.iter().product::<usize>() {
                let hint = if t.name.contains("attn2.to_") && t.shape.len() == 2 {
                    family_hint(t.shape[1], d_text)
                } else {
                    String::new()
                };
                return Err(EraseError::WrongShape {
                    file: file.into(),
                    name: t.name.clone(),
                    expected,
                    found: t.shape.clone(),
                    hint,
                });
            }
            if t.data.iter().any(|v| !v.is_finite()) {
                return Err(EraseError::NotFinite {
                    method: "this edit file",
                    tensor: t.name.clone(),
                });
            }
        }
        Ok(())
    }

    /// The original (unedited) value of a tensor, PyTorch layout.
    pub fn original(&self, unet: &UNet2DConditionModel, name: &str) -> Option<Tensor<2>> {
        self.originals
            .get(name)
            .cloned()
            .or_else(|| linear_weights(unet).remove(name))
    }

    /// Fingerprint of the original tensors `edit` touches, in this model.
    pub fn base_fingerprint(&self, unet: &UNet2DConditionModel, names: &[String]) -> String {
        let items: Vec<(String, Vec<usize>, Vec<f32>)> = names
            .iter()
            .filter_map(|n| {
                self.original(unet, n)
                    .map(|t| (n.clone(), t.dims().to_vec(), read_f32(&t)))
            })
            .collect();
        fingerprint(&items)
    }

    /// Adds `edit` under `id` (replacing an active edit with the same id) and sets the weights.
    /// On error the model is unchanged. Reads nothing back from the device (safe on WebGPU);
    /// call [`Self::base_mismatch`] first to warn about an edit made for other weights.
    pub fn apply(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        edit: Edit,
        file: &str,
    ) -> Result<usize, EraseError> {
        Self::check(unet, &edit, file)?;
        let n = edit.tensors.len();
        let current = linear_weights(unet);
        for t in &edit.tensors {
            self.originals
                .entry(t.name.clone())
                .or_insert_with(|| current[&t.name].clone());
        }
        self.active.retain(|(i, _)| i != id);
        self.active.push((id.to_owned(), edit));
        self.sync(unet);
        Ok(n)
    }

    /// A warning when `edit` was computed on other weights than this model's (its fingerprint
    /// differs); `None` when it matches or the file records none. Reads tensors back (native).
    pub fn base_mismatch(&self, unet: &UNet2DConditionModel, edit: &Edit) -> Option<String> {
        if edit.meta.base_model.is_empty() {
            return None;
        }
        let names: Vec<String> = edit.tensors.iter().map(|t| t.name.clone()).collect();
        let here = self.base_fingerprint(unet, &names);
        (here != edit.meta.base_model).then(|| {
            format!(
                "this edit was computed on other weights (fingerprint {}, this model {here}); it still applies because the shapes match",
                edit.meta.base_model
            )
        })
    }

    /// Removes an edit; the tensors only it touched get their original values back.
    pub fn revert(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> bool {
        let before = self.active.len();
        self.active.retain(|(i, _)| i != id);
        let removed = self.active.len() != before;
        self.sync(unet);
        removed
    }

    /// Removes every edit: the model is the original again.
    pub fn revert_all(&mut self, unet: &mut UNet2DConditionModel) {
        self.active.clear();
        self.sync(unet);
    }

    /// Sets every touched tensor to `W₀ + Σ_k (W'_k − W₀)` over the active edits.
    fn sync(&mut self, unet: &mut UNet2DConditionModel) {
        let mut target: BTreeMap<String, Tensor<2>> = BTreeMap::new();
        for (name, w0) in &self.originals {
            let mut w = w0.clone();
            for (_, e) in &self.active {
                if let Some(t) = e.tensors.iter().find(|t| &t.name == name) {
                    let device = w0.device();
                    let new = Tensor::<2>::from_data(
                        TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]),
                        &device,
                    );
                    w = w + (new - w0.clone());
                }
            }
            target.insert(name.clone(), w);
        }
        // A single active edit sets its tensors exactly (no `W₀ + (W' − W₀)` rounding).
        if self.active.len() == 1 {
            let device = self.originals.values().next().map(|t| t.device());
            if let Some(device) = device {
                for t in &self.active[0].1.tensors {
                    target.insert(
                        t.name.clone(),
                        Tensor::<2>::from_data(
                            TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]),
                            &device,
                        ),
                    );
                }
            }
        }
        unet.for_each_linear_mut(&mut |name, lin| {
            if let Some(w) = target.get(&format!("{name}.weight")) {
                lin.set_weight_torch(w.clone());
            }
        });
        if self.active.is_empty() {
            self.originals.clear();
        }
    }
}
