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
            .map(|t| WriteTensor { name: &t.name, shape: t.shape.clone(), data: &t.data, dtype: Dtype::F32 })
            .collect();
        let json = |v: &Vec<String>| serde_json::to_string(v).expect("strings");
        let mut meta = BTreeMap::new();
        meta.insert("format".to_owned(), FORMAT.to_owned());
        meta.insert("method".to_owned(), self.meta.method.clone());
        meta.insert("concepts".to_owned(), json(&self.meta.concepts));
        meta.insert("guides".to_owned(), json(&self.meta.guides));
        meta.insert("preserve".to_owned(), json(&self.meta.preserve));
        meta.insert("hyperparameters".to_owned(), serde_json::to_string(&self.meta.hyperparameters).expect("json"));
        meta.insert("base_model".to_owned(), self.meta.base_model.clone());
        serialize(&tensors, &meta)
    }

    /// Reads an edit file. Files without our metadata (e.g. saved by the official UCE script)
    /// load too, with method "unknown".
    pub fn from_safetensors(file: &str, bytes: Vec<u8>) -> Result<Self, EraseError> {
        let st = SafetensorsBytes::parse(file, bytes)?;
        let md = &st.header.metadata;
        let list =
            |k: &str| -> Vec<String> { md.get(k).and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default() };
        let meta = EditMeta {
            method: md.get("method").cloned().unwrap_or_else(|| "unknown".into()),
            concepts: list("concepts"),
            guides: list("guides"),
            preserve: list("preserve"),
            hyperparameters: md.get("hyperparameters").and_then(|s| serde_json::from_str(s).ok()).unwrap_or_default(),
            base_model: md.get("base_model").cloned().unwrap_or_default(),
        };
        if st.header.tensors.is_empty() {
            return Err(EraseError::BadFile { file: file.into(), kind: "edit", reason: "it holds no tensors".into() });
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
            tensors.push(EditTensor { name: name.clone(), shape, data });
        }
        Ok(Self { tensors, meta })
    }
}

/// The edits a model knows, which of them are on, and the original value of every tensor they
/// touch.
///
/// Each known edit's tensors are uploaded to the device once, when it is inserted; switching
/// which edits are on ([`Self::set_active`]) then only sets the weights whose sum of active edits
/// changes, from tensors already on the device: nothing is copied host → device
/// ([`Self::uploaded_values`] counts what is).
#[derive(Default)]
pub struct EditStack {
    /// `W₀` of every tensor a known edit touches.
    originals: BTreeMap<String, Tensor<2>>,
    /// Every known edit, by id, with its tensors on the device.
    known: BTreeMap<String, Known>,
    /// The active edits' ids, in order.
    active: Vec<String>,
    /// For each touched tensor, the ids of the active edits whose sum the UNet holds now.
    holds: BTreeMap<String, Vec<String>>,
    /// Values copied host → device so far.
    uploaded_values: usize,
}

struct Known {
    edit: Edit,
    /// `edit`'s tensors on the device, by name.
    tensors: BTreeMap<String, Tensor<2>>,
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
        self.active.iter().map(String::as_str).collect()
    }

    /// Ids of every known edit (active or not).
    pub fn known(&self) -> Vec<&str> {
        self.known.keys().map(String::as_str).collect()
    }

    /// A known edit (active or not).
    pub fn get(&self, id: &str) -> Option<&Edit> {
        self.known.get(id).map(|k| &k.edit)
    }

    /// Values copied host → device so far (each edit's tensors, once, when inserted).
    pub fn uploaded_values(&self) -> usize {
        self.uploaded_values
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
                return Err(EraseError::NotFinite { method: "this edit file", tensor: t.name.clone() });
            }
        }
        Ok(())
    }

    /// The original (unedited) value of a tensor, PyTorch layout.
    pub fn original(&self, unet: &UNet2DConditionModel, name: &str) -> Option<Tensor<2>> {
        self.originals.get(name).cloned().or_else(|| linear_weights(unet).remove(name))
    }

    /// Fingerprint of the original tensors `edit` touches, in this model.
    pub fn base_fingerprint(&self, unet: &UNet2DConditionModel, names: &[String]) -> String {
        let items: Vec<(String, Vec<usize>, Vec<f32>)> = names
            .iter()
            .filter_map(|n| self.original(unet, n).map(|t| (n.clone(), t.dims().to_vec(), read_f32(&t))))
            .collect();
        fingerprint(&items)
    }

    /// Adds `edit` under `id` to the known edits, off (replacing a known edit with the same id,
    /// which keeps its place among the active ones), and uploads its tensors. On error nothing
    /// changes. Reads nothing back from the device (safe on WebGPU); call
    /// [`Self::base_mismatch`] first to warn about an edit made for other weights. The UNet must
    /// hold no adapter (they restore the values they found): `W₀` is taken from it here.
    pub fn insert(
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
            self.originals.entry(t.name.clone()).or_insert_with(|| current[&t.name].clone());
        }
        let tensors = edit
            .tensors
            .iter()
            .map(|t| {
                let device = current[&t.name].device();
                (
                    t.name.clone(),
                    Tensor::<2>::from_data(TensorData::new(t.data.clone(), [t.shape[0], t.shape[1]]), &device),
                )
            })
            .collect();
        self.uploaded_values += edit.tensors.iter().map(|t| t.data.len()).sum::<usize>();
        if let Some(old) = self.known.insert(id.to_owned(), Known { edit, tensors }) {
            // The weights may hold the replaced edit's values: recompute what it touched.
            for t in &old.edit.tensors {
                self.holds.remove(&t.name);
            }
            self.sync(unet);
        }
        Ok(n)
    }

    /// Turns exactly `ids` on, in that order (every id known), and sets the weights that change.
    pub fn set_active(&mut self, unet: &mut UNet2DConditionModel, ids: &[String]) -> Result<(), EraseError> {
        if let Some(id) = ids.iter().find(|id| !self.known.contains_key(*id)) {
            return Err(EraseError::Param(format!("no edit `{id}` is known to this model: add it again")));
        }
        self.active = ids.to_vec();
        self.sync(unet);
        Ok(())
    }

    /// Adds `edit` under `id` and turns it on last (replacing an edit with the same id), and sets
    /// the weights. On error the model is unchanged.
    pub fn apply(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        edit: Edit,
        file: &str,
    ) -> Result<usize, EraseError> {
        let n = self.insert(unet, id, edit, file)?;
        self.active.retain(|i| i != id);
        self.active.push(id.to_owned());
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

    /// Removes an edit (forgets it); the tensors only it touched get their original values back.
    /// Returns whether it was active.
    pub fn revert(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> bool {
        let before = self.active.len();
        self.active.retain(|i| i != id);
        let removed = self.active.len() != before;
        self.known.remove(id);
        self.sync(unet);
        removed
    }

    /// Removes every edit: the model is the original again.
    pub fn revert_all(&mut self, unet: &mut UNet2DConditionModel) {
        self.active.clear();
        self.known.clear();
        self.sync(unet);
    }

    /// Sets every touched tensor whose active edits changed to `W₀ + Σ_k (W'_k − W₀)` over them
    /// (`W'` exactly for one, `W₀` for none), from tensors already on the device.
    fn sync(&mut self, unet: &mut UNet2DConditionModel) {
        let mut target: BTreeMap<String, Tensor<2>> = BTreeMap::new();
        for (name, w0) in &self.originals {
            let on: Vec<String> =
                self.active.iter().filter(|id| self.known[*id].tensors.contains_key(name)).cloned().collect();
            if self.holds.get(name) == Some(&on) {
                continue;
            }
            let w = match on.as_slice() {
                // A single active edit sets its tensor exactly (no `W₀ + (W' − W₀)` rounding).
                [id] => self.known[id].tensors[name].clone(),
                _ => on.iter().fold(w0.clone(), |w, id| w + (self.known[id].tensors[name].clone() - w0.clone())),
            };
            target.insert(name.clone(), w);
            self.holds.insert(name.clone(), on);
        }
        if !target.is_empty() {
            unet.for_each_linear_mut(&mut |name, lin| {
                if let Some(w) = target.get(&format!("{name}.weight")) {
                    lin.set_weight_torch(w.clone());
                }
            });
        }
        // Forget the originals no known edit touches (their weights are `W₀` again).
        let known = &self.known;
        self.originals.retain(|name, _| known.values().any(|k| k.tensors.contains_key(name)));
        let originals = &self.originals;
        self.holds.retain(|name, _| originals.contains_key(name));
    }
}
