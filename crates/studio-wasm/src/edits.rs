//! Weight edits on the session's model, the portable half (the browser's `Session` and the
//! native tests share it).
//!
//! An edit file (DESIGN.md "Edit file") is parsed by [`erasure::Edit::from_safetensors`] and
//! applied with [`erasure::EditStack`], which reads nothing back from the device, so applying,
//! toggling and reverting are safe on WebGPU. The one check that needs values, whether the edit
//! was computed on these weights (its `base_model` fingerprint), reads the touched tensors back
//! *asynchronously* here ([`base_warning`]): a browser cannot read synchronously.

use crate::error::StudioError;
use crate::readback::to_f32;
use burn::tensor::Tensor;
use diffusion::unet_2d_condition::UNet2DConditionModel;
use erasure::{Edit, EditStack};
use serde::Serialize;
use std::collections::BTreeMap;

/// What the UI shows about an applied edit (JSON, camelCase).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EditInfo {
    pub id: String,
    /// The file it came from.
    pub file: String,
    pub method: String,
    pub concepts: Vec<String>,
    pub guides: Vec<String>,
    pub preserve: Vec<String>,
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
    /// Names of the tensors it replaces.
    pub tensors: Vec<String>,
    /// Number of values it replaces.
    pub values: usize,
    /// The fingerprint the file records (empty when none).
    pub base_model: String,
    /// Set when the edit was computed on other weights than the loaded model's.
    pub warning: Option<String>,
}

impl EditInfo {
    pub fn of(id: &str, file: &str, edit: &Edit, warning: Option<String>) -> Self {
        Self {
            id: id.to_owned(),
            file: file.to_owned(),
            method: edit.meta.method.clone(),
            concepts: edit.meta.concepts.clone(),
            guides: edit.meta.guides.clone(),
            preserve: edit.meta.preserve.clone(),
            hyperparameters: edit.meta.hyperparameters.clone(),
            tensors: edit.tensors.iter().map(|t| t.name.clone()).collect(),
            values: edit.tensors.iter().map(|t| t.data.len()).sum(),
            base_model: edit.meta.base_model.clone(),
            warning,
        }
    }
}

/// Parses an edit file and checks it against `unet` (names, shapes, finite values) without
/// changing anything.
pub fn parse_and_check(unet: &UNet2DConditionModel, file: &str, bytes: Vec<u8>) -> Result<Edit, StudioError> {
    let edit = Edit::from_safetensors(file, bytes)?;
    EditStack::check(unet, &edit, file)?;
    Ok(edit)
}

/// The original (unedited) tensors `edit` touches; taken synchronously so that no borrow of
/// the stack lives across the read-back.
pub fn originals(stack: &EditStack, unet: &UNet2DConditionModel, edit: &Edit) -> Vec<(String, Tensor<2>)> {
    edit.tensors.iter().filter_map(|t| stack.original(unet, &t.name).map(|w| (t.name.clone(), w))).collect()
}

/// A warning when `edit` records a base-model fingerprint that differs from `originals`'
/// (read back asynchronously); `None` when it matches or records none.
pub async fn base_warning(edit: &Edit, originals: Vec<(String, Tensor<2>)>) -> Result<Option<String>, StudioError> {
    if edit.meta.base_model.is_empty() {
        return Ok(None);
    }
    let mut items = Vec::with_capacity(originals.len());
    for (name, t) in originals {
        let shape = t.dims().to_vec();
        let data = to_f32(t).await?;
        items.push((name, shape, data));
    }
    let here = erasure::edit::fingerprint(&items);
    Ok((here != edit.meta.base_model).then(|| {
        format!(
            "this edit was computed on other weights (its base-model fingerprint is {}, this model's is {here}); it applies because \
             the shapes match, but its effect may differ from what its author measured",
            edit.meta.base_model
        )
    }))
}
