//! LEACE / INLP erasers and Ring-A-Bell probes in the page, the portable half: fitted from
//! prompts with asynchronous read-backs, or read from an eraser file, and kept in the session by
//! id so that a run's [`SteeringRequest`](erasure::request::SteeringRequest) names them.
//!
//! Natively `studio fit-eraser` and `studio generate --ring-a-bell` encode their prompts through
//! a synchronous `ModelEncoder` (crates/cli/src/steering_args.rs), which a browser on WebGPU
//! cannot: here every prompt is encoded and read back with `into_data_async` first
//! ([`crate::readback::encode`]), then the same `erasure` functions run on a `PrecomputedEncoder`.
//! Which prompts they need is known beforehand (the lists themselves), so unlike
//! [`crate::erase`] no recording round is needed. The text encoder's output is the same either
//! way, so the eraser and the concept vector equal the CLI's bit for bit (test
//! `tests/studio/steering_tiny.rs`).
//!
//! The requests are [`EraserFitRequest`] and [`RingABellRequest`] of `erasure::request`, the same
//! types the CLI builds from its flags.
//!
//! A fitted eraser is kept as its file says it (`LinearEraser::to_safetensors`, f32): the
//! session's eraser, its export and what `studio generate --leace EXPORTED` reads are one and the
//! same, so the page's image equals the CLI's on the exported file.

use crate::error::StudioError;
use crate::readback::encode_all;
use erasure::leace::LinearEraser;
use erasure::request::{RequestError, SteeringRequest, SteeringSources};
use erasure::ring_a_bell::RingABell;
use erasure::steering::SteeringConfig;
use pipeline::model::StableDiffusion;
use serde::Serialize;
use std::collections::BTreeMap;

pub use erasure::request::{EraserFitRequest, RingABellRequest};

/// Fits the eraser of `req` on `model`'s text encoder, exactly as `studio fit-eraser` does
/// (crates/cli/src/steering_args.rs `fit_eraser`), and returns it with its file bytes. Every
/// read-back is asynchronous.
pub async fn fit_eraser(
    model: &StableDiffusion,
    req: &EraserFitRequest,
) -> Result<(LinearEraser, Vec<u8>), StudioError> {
    let fit = req.to_config()?;
    let mut enc = encode_all(model, fit.concepts.iter().chain(&fit.others)).await?;
    let (fitted, _) = fit.run(&mut enc)?;
    let bytes = fitted.to_safetensors();
    let eraser = LinearEraser::from_safetensors(&format!("{}.safetensors", fit.method.name()), bytes.clone())?;
    Ok((eraser, bytes))
}

/// Reads an eraser file (from `studio fit-eraser` or the page's export) for `model`: a file that
/// is not an eraser, is damaged, or was made for another text width is refused with the reason.
pub fn read_eraser(model: &StableDiffusion, file: &str, bytes: Vec<u8>) -> Result<LinearEraser, StudioError> {
    let eraser = LinearEraser::from_safetensors(file, bytes).map_err(|e| match e {
        erasure::EraseError::BadFile { .. } => StudioError::File(format!(
            "{e}. An eraser file holds `proj_left` [d, r] and `proj_right` [r, d] (made by `studio fit-eraser` or this page's Export of a LEACE/INLP entry)"
        )),
        e => e.into(),
    })?;
    let d = model.text_encoder.config().hidden_size;
    eraser.check_width(d, file)?;
    Ok(eraser)
}

/// Computes the Ring-A-Bell concept vector of `req` on `model`, exactly as `studio generate
/// --ring-a-bell` does (`ring_a_bell::from_prompts`), and returns it with the parsed pairs. Every
/// read-back is asynchronous.
pub async fn fit_ring_a_bell(
    model: &StableDiffusion,
    req: &RingABellRequest,
) -> Result<(RingABell, Vec<(String, String)>), StudioError> {
    let fit = req.to_config()?;
    let mut enc = encode_all(model, fit.pairs.iter().flat_map(|(a, b)| [a, b])).await?;
    let probe = fit.run(&mut enc)?;
    Ok((probe, fit.pairs))
}

/// One entry of the store.
#[derive(Debug, Clone)]
pub enum Steerer {
    /// A LEACE or INLP eraser, the file name it goes by and its file's bytes (exported as they
    /// are: re-serialising the metadata's JSON numbers need not give the same digits).
    Eraser { eraser: LinearEraser, file: String, bytes: Vec<u8> },
    /// A Ring-A-Bell concept vector, with the pairs it came from.
    RingABell { probe: RingABell, pairs: Vec<(String, String)> },
}

/// What the UI shows about a stored eraser or probe (JSON, camelCase).
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SteererInfo {
    pub id: String,
    /// `leace`, `inlp` or `ring-a-bell`.
    pub kind: &'static str,
    pub file: String,
    /// Concept prompts (eraser) or the prompts with the concept (probe).
    pub concepts: Vec<String>,
    /// Other prompts (eraser) or the prompts without the concept (probe).
    pub others: Vec<String>,
    /// Directions removed (eraser; 0 for a probe).
    pub rank: usize,
    pub d_text: usize,
    /// The eraser's fit settings and statistics (`svd_tol`, `samples`, INLP's `accuracies`…);
    /// for a probe `eta`.
    pub hyperparameters: BTreeMap<String, serde_json::Value>,
}

impl SteererInfo {
    pub fn of(id: &str, s: &Steerer) -> Self {
        match s {
            Steerer::Eraser { eraser, file, .. } => Self {
                id: id.into(),
                kind: eraser.method.name(),
                file: file.clone(),
                concepts: eraser.concepts.clone(),
                others: eraser.others.clone(),
                rank: eraser.proj_left.ncols(),
                d_text: eraser.d_text(),
                hyperparameters: eraser.hyperparameters.clone(),
            },
            Steerer::RingABell { probe, pairs } => Self {
                id: id.into(),
                kind: "ring-a-bell",
                file: format!("Ring-A-Bell η = {}", probe.eta),
                concepts: pairs.iter().map(|p| p.0.clone()).collect(),
                others: pairs.iter().map(|p| p.1.clone()).collect(),
                rank: 0,
                d_text: probe.vector.ncols(),
                hyperparameters: BTreeMap::from([("eta".to_owned(), serde_json::json!(probe.eta))]),
            },
        }
    }
}

/// The session's erasers and probes by id. Cloned for a run (an eraser is a few `[d, r]`
/// matrices, a probe one `[77, d]`), so that no borrow is held across the run's awaits.
#[derive(Debug, Clone, Default)]
pub struct SteeringStore {
    entries: BTreeMap<String, Steerer>,
}

impl SteeringStore {
    /// Adds or replaces `id`.
    pub fn insert(&mut self, id: &str, s: Steerer) -> SteererInfo {
        let info = SteererInfo::of(id, &s);
        self.entries.insert(id.to_owned(), s);
        info
    }
    pub fn remove(&mut self, id: &str) -> bool {
        self.entries.remove(id).is_some()
    }
    pub fn clear(&mut self) {
        self.entries.clear();
    }
    pub fn ids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The eraser `id` and its file name, for a run.
    pub fn eraser(&self, id: &str) -> Result<(LinearEraser, String), StudioError> {
        Ok(self.find_eraser(id)?)
    }

    fn find_eraser(&self, id: &str) -> Result<(LinearEraser, String), RequestError> {
        match self.entries.get(id) {
            Some(Steerer::Eraser { eraser, file, .. }) => Ok((eraser.clone(), file.clone())),
            Some(_) => Err(RequestError::Invalid(format!(
                "`{id}` is a Ring-A-Bell probe, not an eraser: pass it as ringABell"
            ))),
            None => Err(RequestError::Invalid(format!(
                "no eraser `{id}` in this session (a model load drops them): fit or load it again"
            ))),
        }
    }

    fn find_ring_a_bell(&self, id: &str) -> Result<RingABell, RequestError> {
        match self.entries.get(id) {
            Some(Steerer::RingABell { probe, .. }) => Ok(probe.clone()),
            Some(_) => {
                Err(RequestError::Invalid(format!("`{id}` is an eraser, not a Ring-A-Bell probe: pass it as eraser")))
            }
            None => Err(RequestError::Invalid(format!(
                "no Ring-A-Bell probe `{id}` in this session (a model load drops them): add it again"
            ))),
        }
    }

    /// The steering configuration of `req`, `None` when it asks for nothing; the eraser and the
    /// probe it names by id are taken from this store (fitted here with asynchronous read-backs).
    /// The prompt's own embeddings are read back asynchronously too
    /// ([`crate::engine::generate_steered`]).
    pub fn config(&self, req: &SteeringRequest) -> Result<Option<SteeringConfig>, StudioError> {
        Ok(req.to_config(&mut Ids(self))?)
    }

    /// The file of the eraser `id` (f32, `studio generate --leace` reads it), byte for byte as
    /// fitted or loaded.
    pub fn export(&self, id: &str) -> Result<Vec<u8>, StudioError> {
        match self.entries.get(id) {
            Some(Steerer::Eraser { bytes, .. }) => Ok(bytes.clone()),
            _ => Err(self.eraser(id).err().unwrap_or_else(|| StudioError::Params(format!("no eraser `{id}`")))),
        }
    }
}

/// The store as what a [`SteeringRequest`] names: ids.
struct Ids<'a>(&'a SteeringStore);

impl SteeringSources for Ids<'_> {
    fn eraser(&mut self, id: &str) -> Result<(LinearEraser, String), RequestError> {
        self.0.find_eraser(id)
    }
    fn ring_a_bell(&mut self, id: &str, _eta: Option<f64>) -> Result<RingABell, RequestError> {
        self.0.find_ring_a_bell(id)
    }
}
