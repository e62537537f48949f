//! The session's variant entries, the portable half (the browser's `Session` and the native
//! tests share it): everything the page added to the loaded model, kept here by id, and which of
//! it a run uses.
//!
//! An entry is one of
//! - an **edit** (a file, or computed in the page): parsed once and kept in the [`EditStack`]
//!   with its tensors on the device;
//! - an **adapter** (SPM / LoRA file): kept parsed, attached while a variant uses it;
//! - **steering**: SLD or SAFREE settings, or a LEACE / INLP eraser or a Ring-A-Bell probe kept
//!   in the [`SteeringStore`] (its steering names the entry's id).
//!
//! [`Variants::set_variant`] makes the model match a run's list of ids by changing only what
//! differs: the edits whose sum changes are set from tensors already on the device (no host →
//! device copy), adapters are attached / detached above the longest common prefix of the attached
//! ones and the wanted ones, and the run's steering is the wanted steering entries combined
//! (SLD and SAFREE entries combine; of two of a kind the last wins). The worker only relays ids.
//!
//! Edits change only with no adapter attached (both stacks restore the values they found; edits
//! below, adapters on top): when the edits change, the attached adapters come off first and the
//! wanted ones go back on after.

use crate::adapters::{AdapterInfo, Parsed, SessionAdapters};
use crate::edits::EditInfo;
use crate::error::StudioError;
use crate::steering::{Steerer, SteererInfo, SteeringStore};
use diffusion::unet_2d_condition::UNet2DConditionModel;
use erasure::request::{EraseRequest, EraserFitRequest, RingABellRequest, SteeringRequest};
use erasure::safree::SafreeConfig;
use erasure::{Edit, EditStack};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What the page lists about an entry (JSON, camelCase): one row shape for every kind, so that
/// the variant list, the grid and the share link treat them alike.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct EntryInfo {
    pub id: String,
    /// `edit`, `spm`, `lora`, `sld`, `safree`, `leace`, `inlp` or `ring-a-bell`.
    pub kind: &'static str,
    /// The file it came from, or what stands for one (`SLD medium`, `Ring-A-Bell η = 3`).
    pub file: String,
    /// The method that made it (an edit's `method` metadata; the kind otherwise).
    pub method: String,
    pub concepts: Vec<String>,
    pub guides: Vec<String>,
    pub preserve: Vec<String>,
    pub hyperparameters: BTreeMap<String, Value>,
    /// The tensors it changes (an edit), the modules it adapts (an adapter), an eraser's tensors.
    pub tensors: Vec<String>,
    /// Number of values it holds.
    pub values: usize,
    /// An edit's base-model fingerprint (empty otherwise).
    pub base_model: String,
    /// Set when an edit was computed on other weights than the loaded model's.
    pub warning: Option<String>,
    /// Whether the page can export it as a file (edits and erasers).
    pub exportable: bool,
}

impl EntryInfo {
    pub fn edit(e: EditInfo) -> Self {
        Self {
            id: e.id,
            kind: "edit",
            file: e.file,
            method: e.method,
            concepts: e.concepts,
            guides: e.guides,
            preserve: e.preserve,
            hyperparameters: e.hyperparameters,
            tensors: e.tensors,
            values: e.values,
            base_model: e.base_model,
            warning: e.warning,
            exportable: true,
        }
    }

    pub fn adapter(a: AdapterInfo) -> Self {
        Self {
            id: a.id,
            kind: a.kind,
            file: a.file,
            method: a.kind.into(),
            concepts: a.prompts,
            guides: vec![],
            preserve: vec![],
            hyperparameters: BTreeMap::from([
                ("scale".into(), json!(a.scale)),
                ("rank".into(), json!(a.rank)),
                ("layers".into(), json!(a.layers)),
            ]),
            tensors: a.modules,
            values: a.values,
            base_model: String::new(),
            warning: None,
            exportable: false,
        }
    }

    /// A LEACE / INLP eraser (its tensors `proj_left`, `proj_right` and LEACE's `bias`) or a
    /// Ring-A-Bell probe.
    pub fn steerer(s: SteererInfo) -> Self {
        let probe = s.kind == "ring-a-bell";
        let leace = s.kind == "leace";
        let mut hyperparameters = s.hyperparameters;
        hyperparameters.insert("rank".into(), json!(s.rank));
        hyperparameters.insert("dText".into(), json!(s.d_text));
        hyperparameters.insert("others".into(), json!(s.others));
        let tensors: Vec<String> = if probe {
            vec![]
        } else {
            ["proj_left", "proj_right"].into_iter().chain(leace.then_some("bias")).map(str::to_owned).collect()
        };
        Self {
            id: s.id,
            kind: s.kind,
            file: s.file,
            method: s.kind.into(),
            concepts: s.concepts,
            guides: vec![],
            preserve: vec![],
            hyperparameters,
            tensors,
            values: if probe { 0 } else { 2 * s.rank * s.d_text + if leace { s.d_text } else { 0 } },
            base_model: String::new(),
            warning: None,
            exportable: !probe,
        }
    }

    /// SLD or SAFREE settings (`req` holds one of them).
    pub fn steering(id: &str, req: &SteeringRequest) -> Self {
        let (kind, file, concepts, hyperparameters) = match &req.safree {
            Some(keywords) => (
                "safree",
                format!("SAFREE {keywords}"),
                keywords.split(';').map(|k| k.trim().to_owned()).filter(|k| !k.is_empty()).collect(),
                BTreeMap::from([
                    ("alpha".into(), json!(req.safree_alpha.unwrap_or(SafreeConfig::new(vec![]).alpha))),
                    ("allSteps".into(), json!(req.safree_all_steps)),
                    ("artist".into(), json!(req.safree_artist)),
                ]),
            ),
            None => {
                let preset = req.sld.clone().unwrap_or_default();
                let concept = req
                    .sld_concept
                    .as_deref()
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .unwrap_or("the official unsafe-concept list");
                (
                    "sld",
                    format!("SLD {preset}"),
                    vec![concept.to_owned()],
                    BTreeMap::from([("preset".into(), json!(preset))]),
                )
            }
        };
        Self {
            id: id.into(),
            kind,
            file,
            method: kind.into(),
            concepts,
            guides: vec![],
            preserve: vec![],
            hyperparameters,
            tensors: vec![],
            values: 0,
            base_model: String::new(),
            warning: None,
            exportable: false,
        }
    }
}

/// An entry computed on the loaded model (JSON, tagged by `kind`; the page's `EntryRequest`).
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum EntryRequest {
    /// A closed-form edit (UCE, TIME, RECE, SPEED, MACE), as `studio erase`.
    Erase(EraseRequest),
    /// SLD or SAFREE settings, as `studio generate --sld / --safree`.
    Steer(SteeringRequest),
    /// A LEACE / INLP eraser, as `studio fit-eraser`.
    FitEraser(EraserFitRequest),
    /// A Ring-A-Bell probe, as `studio generate --ring-a-bell`.
    RingABell(RingABellRequest),
}

impl EntryRequest {
    pub fn from_json(json: &str) -> Result<Self, StudioError> {
        serde_json::from_str(json).map_err(|e| StudioError::Params(format!("bad entry request: {e}")))
    }
}

/// What an entry is, beside its info.
enum Kept {
    /// In [`Variants::edits`] under the entry's id.
    Edit,
    /// Attached while a variant uses it.
    Adapter { parsed: Parsed, scale: f32 },
    /// SLD / SAFREE settings, or `{eraser: id}` / `{ringABell: id}` naming the entry's steerer in
    /// [`Variants::steering`].
    Steering(SteeringRequest),
}

struct Entry {
    kept: Kept,
    info: EntryInfo,
}

/// The session's entries and the variant the model holds now (see the module docs).
#[derive(Default)]
pub struct Variants {
    pub edits: EditStack,
    pub adapters: SessionAdapters,
    pub steering: SteeringStore,
    entries: BTreeMap<String, Entry>,
    /// The steering of the variant set last.
    steering_now: Option<SteeringRequest>,
}

impl Variants {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every entry's info, by id.
    pub fn infos(&self) -> Vec<&EntryInfo> {
        self.entries.values().map(|e| &e.info).collect()
    }

    pub fn info(&self, id: &str) -> Option<&EntryInfo> {
        self.entries.get(id).map(|e| &e.info)
    }

    /// The steering of the variant set last ([`Self::set_variant`]).
    pub fn steering_now(&self) -> Option<&SteeringRequest> {
        self.steering_now.as_ref()
    }

    /// Drops `id` if it is there (whatever kind), so that a new entry can take the id.
    fn take_id(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> Result<(), StudioError> {
        if self.entries.contains_key(id) {
            self.remove(unet, id)?;
        }
        Ok(())
    }

    /// Keeps a parsed edit (checked against `unet`) under `id`, off. `warning`: the base-model
    /// check's, made by the caller (it reads tensors back).
    pub fn add_edit(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        file: &str,
        edit: Edit,
        warning: Option<String>,
    ) -> Result<&EntryInfo, StudioError> {
        self.take_id(unet, id)?;
        let info = EntryInfo::edit(EditInfo::of(id, file, &edit, warning));
        let Self { edits, adapters, .. } = self;
        adapters.suspended(unet, |unet| Ok(edits.insert(unet, id, edit, file)?))?;
        Ok(self.put(id, Kept::Edit, info))
    }

    /// Keeps a parsed adapter under `id`, off, after checking that it attaches to `unet` (it is
    /// attached and detached again).
    pub fn add_adapter(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        parsed: Parsed,
        scale: f32,
    ) -> Result<&EntryInfo, StudioError> {
        self.take_id(unet, id)?;
        let attached = self.adapters.active();
        let info = self.adapters.attach(unet, id, parsed.clone(), scale)?;
        self.adapters.detach(unet, id);
        debug_assert_eq!(self.adapters.active(), attached);
        Ok(self.put(id, Kept::Adapter { parsed, scale }, EntryInfo::adapter(info)))
    }

    /// Keeps SLD or SAFREE settings under `id` (checked now: a bad preset or α is refused).
    pub fn add_steering(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        req: SteeringRequest,
    ) -> Result<&EntryInfo, StudioError> {
        if req.eraser.is_some() || req.ring_a_bell.is_some() || (req.sld.is_some() == req.safree.is_some()) {
            return Err(StudioError::Params("a steering entry holds SLD or SAFREE settings (one of the two); erasers and probes are fitted or added as files".into()));
        }
        self.steering.config(&req)?;
        self.take_id(unet, id)?;
        let info = EntryInfo::steering(id, &req);
        Ok(self.put(id, Kept::Steering(req), info))
    }

    /// Keeps an eraser or a Ring-A-Bell probe under `id`.
    pub fn add_steerer(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        s: Steerer,
    ) -> Result<&EntryInfo, StudioError> {
        self.take_id(unet, id)?;
        let req = match &s {
            Steerer::Eraser { .. } => SteeringRequest { eraser: Some(id.into()), ..Default::default() },
            Steerer::RingABell { .. } => SteeringRequest { ring_a_bell: Some(id.into()), ..Default::default() },
        };
        let info = EntryInfo::steerer(self.steering.insert(id, s));
        Ok(self.put(id, Kept::Steering(req), info))
    }

    fn put(&mut self, id: &str, kept: Kept, info: EntryInfo) -> &EntryInfo {
        self.entries.insert(id.to_owned(), Entry { kept, info });
        &self.entries[id].info
    }

    /// Drops the entry `id` (off first where it is on). Returns whether it was there.
    pub fn remove(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> Result<bool, StudioError> {
        let Some(entry) = self.entries.remove(id) else { return Ok(false) };
        match entry.kept {
            Kept::Edit => {
                let Self { edits, adapters, .. } = self;
                if edits.active().contains(&id) {
                    adapters.suspended(unet, |unet| Ok(edits.revert(unet, id)))?;
                } else {
                    edits.revert(unet, id);
                }
            }
            Kept::Adapter { .. } => {
                self.adapters.detach(unet, id);
            }
            Kept::Steering(_) => {
                self.steering.remove(id);
            }
        }
        Ok(true)
    }

    /// Drops every entry (the caller drops the model, or loads another).
    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The file of an edit or an eraser entry, with its name, for export.
    pub fn export(&self, id: &str) -> Result<(String, Vec<u8>), StudioError> {
        let entry = self
            .entries
            .get(id)
            .ok_or_else(|| StudioError::Params(format!("no entry `{id}` in this session (a model load drops them)")))?;
        let bytes = match &entry.kept {
            Kept::Edit => self
                .edits
                .get(id)
                .map(Edit::to_safetensors)
                .ok_or_else(|| StudioError::Params(format!("edit `{id}` is gone")))?,
            Kept::Steering(r) if r.eraser.is_some() => self.steering.export(id)?,
            _ => return Err(StudioError::Params(format!("{} is not a file the studio can export", entry.info.file))),
        };
        let file = &entry.info.file;
        Ok((if file.ends_with(".safetensors") { file.clone() } else { format!("{file}.safetensors") }, bytes))
    }

    /// Makes the model hold exactly the variant `ids` (in that order; every id an entry),
    /// changing only what differs (see the module docs), and keeps its steering for the run.
    pub fn set_variant(&mut self, unet: &mut UNet2DConditionModel, ids: &[String]) -> Result<(), StudioError> {
        if let Some(id) = ids.iter().find(|id| !self.entries.contains_key(*id)) {
            return Err(StudioError::Params(format!(
                "variant entry `{id}` is not loaded any more (a model load drops them): add it again"
            )));
        }
        let of = |want: fn(&Kept) -> bool| -> Vec<String> {
            ids.iter().filter(|id| want(&self.entries[*id].kept)).cloned().collect()
        };
        let edits = of(|k| matches!(k, Kept::Edit));
        let adapters = of(|k| matches!(k, Kept::Adapter { .. }));
        let steering = of(|k| matches!(k, Kept::Steering(_)));

        let active_edits: Vec<String> = self.edits.active().into_iter().map(str::to_owned).collect();
        if active_edits != edits {
            self.adapters.detach_all(unet);
            self.edits.set_active(unet, &edits)?;
        }
        let attached = self.adapters.active();
        let keep = attached.iter().zip(&adapters).take_while(|(a, b)| a == b).count();
        for id in attached[keep..].iter().rev() {
            self.adapters.detach(unet, id);
        }
        for id in &adapters[keep..] {
            let Kept::Adapter { parsed, scale } = &self.entries[id].kept else { unreachable!("filtered above") };
            self.adapters.attach(unet, id, parsed.clone(), *scale)?;
        }

        let mut run = SteeringRequest::default();
        for id in &steering {
            let Kept::Steering(r) = &self.entries[id].kept else { unreachable!("filtered above") };
            if r.sld.is_some() {
                (run.sld, run.sld_concept) = (r.sld.clone(), r.sld_concept.clone());
            }
            if r.safree.is_some() {
                (run.safree, run.safree_alpha, run.safree_all_steps, run.safree_artist) =
                    (r.safree.clone(), r.safree_alpha, r.safree_all_steps, r.safree_artist);
            }
            run.eraser = r.eraser.clone().or(run.eraser);
            run.ring_a_bell = r.ring_a_bell.clone().or(run.ring_a_bell);
        }
        self.steering_now = run.is_active().then_some(run);
        Ok(())
    }
}

/// A file-name part from a concept: lower-case letters and digits joined by `-`, at most 40
/// characters (`concept` when nothing is left).
pub fn file_slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let out: String = out.trim_end_matches('-').chars().take(40).collect();
    if out.is_empty() { "concept".into() } else { out }
}
