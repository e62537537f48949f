//! Steering requests: [`SteeringRequest`] (what one run is steered with, as `studio generate
//! --sld PRESET [--sld-concept C] --safree KW [--safree-alpha A] [--safree-all-steps]
//! [--safree-artist] [--leace FILE] [--ring-a-bell PAIRS --ring-a-bell-eta η]` ask for it; in the
//! page, the steering entries of a run's variant combined), and the fits of the eraser and the
//! probe it names: [`EraserFitRequest`] (`studio fit-eraser`, the page's `Session.computeEntry`
//! of kind `fit-eraser`) and [`RingABellRequest`] (`--ring-a-bell`, kind `ring-a-bell`).
//!
//! An eraser and a probe are named by the request and resolved by the front end
//! ([`SteeringSources`]): the CLI reads the eraser file and encodes the probe's pairs
//! synchronously; the page fits both beforehand with asynchronous read-backs and names them by
//! id in its session.

use super::{RequestError, invalid};
use crate::inlp::{InlpConfig, InlpReport};
use crate::leace::{EraserMethod, LeaceConfig, LinearEraser};
use crate::ring_a_bell::{self, RingABell};
use crate::safree::SafreeConfig;
use crate::sld::SldPreset;
use crate::steering::SteeringConfig;
use crate::text::PromptEncoder;
use serde::{Deserialize, Serialize};

/// Steering of one run (JSON, camelCase), as `studio generate --sld PRESET [--sld-concept C]
/// --safree KW [--safree-alpha A] [--safree-all-steps] [--safree-artist] [--leace FILE]
/// [--ring-a-bell PAIRS --ring-a-bell-eta η]` configures it (crates/cli/src/steering_args.rs).
/// In the page an eraser and a Ring-A-Bell probe are fitted (or an eraser file read) beforehand
/// and kept in the session's `SteeringStore`; the request names them by id. The front end
/// resolves the names ([`SteeringSources`]).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SteeringRequest {
    /// Safe Latent Diffusion preset: weak | medium | strong | max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sld: Option<String>,
    /// SLD's safety concept; absent or blank: the official list (`erasure::sld::DEFAULT_SAFETY_CONCEPT`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sld_concept: Option<String>,
    /// SAFREE: keywords of the concept to steer away from, `;`-separated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safree: Option<String>,
    /// SAFREE's trigger margin α (default 0.01).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safree_alpha: Option<f64>,
    /// SAFREE projects at every step instead of the self-validating filter's count.
    #[serde(default)]
    pub safree_all_steps: bool,
    /// SAFREE's filter calibrated for artist styles.
    #[serde(default)]
    pub safree_artist: bool,
    /// A LEACE / INLP eraser: the id in the page's session, the file for the CLI (`--leace FILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eraser: Option<String>,
    /// A Ring-A-Bell probe: the id in the page's session, the pairs for the CLI (`--ring-a-bell PAIRS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ring_a_bell: Option<String>,
    /// The CLI's `--ring-a-bell-eta` for its pairs (a probe fitted in the page carries its own η).
    #[serde(skip)]
    pub ring_a_bell_eta: Option<f64>,
}

/// Where a front end finds what a [`SteeringRequest`] names.
pub trait SteeringSources {
    /// The eraser `name`, and the file name it goes by (for error messages).
    fn eraser(&mut self, name: &str) -> Result<(LinearEraser, String), RequestError>;
    /// The probe `name` (with the request's η, where the probe is made from pairs here).
    fn ring_a_bell(&mut self, name: &str, eta: Option<f64>) -> Result<RingABell, RequestError>;
}

impl SteeringRequest {
    /// Whether it asks for any steering.
    pub fn is_active(&self) -> bool {
        self.sld.is_some() || self.safree.is_some() || self.eraser.is_some() || self.ring_a_bell.is_some()
    }

    /// Validates and builds the steering configuration, `None` when it asks for nothing; the
    /// eraser and the probe come from `sources`.
    pub fn to_config(&self, sources: &mut dyn SteeringSources) -> Result<Option<SteeringConfig>, RequestError> {
        let mut config = SteeringConfig::default();
        if let Some(preset) = &self.sld {
            let preset: SldPreset = preset.parse()?;
            config.sld = Some(preset.params());
            if let Some(c) = self.sld_concept.as_deref().map(str::trim).filter(|c| !c.is_empty()) {
                config.sld_concept = c.to_owned();
            }
        } else if self.sld_concept.is_some() {
            return Err(invalid("--sld-concept needs --sld weak|medium|strong|max"));
        }
        if let Some(list) = &self.safree {
            config.safree =
                Some(SafreeConfig::from_flags(list, self.safree_alpha, self.safree_all_steps, self.safree_artist)?);
        }
        if let Some(name) = &self.eraser {
            let (eraser, file) = sources.eraser(name)?;
            config.eraser = Some(eraser);
            config.eraser_file = file;
        }
        if let Some(name) = &self.ring_a_bell {
            config.ring_a_bell = Some(sources.ring_a_bell(name, self.ring_a_bell_eta)?);
        }
        Ok((!config.is_empty()).then_some(config))
    }
}

/// What to fit (JSON, camelCase), as `studio fit-eraser --method M --concept-prompts "a;b"
/// --other-prompts "c;d" [--iterations N] [--min-accuracy A]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraserFitRequest {
    /// `leace` (default) or `inlp`.
    #[serde(default = "leace")]
    pub method: String,
    /// Prompts with the concept (label 1).
    pub concepts: Vec<String>,
    /// Prompts without it (label 0), e.g. neutral prompts of the same style.
    pub others: Vec<String>,
    /// INLP: classifiers to train at most (default 10, as `--iterations`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iterations: Option<usize>,
    /// INLP: stop when a classifier's accuracy falls below this (default 0.55, as `--min-accuracy`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_accuracy: Option<f64>,
}

fn leace() -> String {
    "leace".into()
}

/// A validated [`EraserFitRequest`]: the prompts to encode and the fit.
#[derive(Debug, Clone)]
pub struct EraserFit {
    pub method: EraserMethod,
    pub concepts: Vec<String>,
    pub others: Vec<String>,
    pub inlp: InlpConfig,
}

/// The prompts of a list: trimmed, blanks dropped, at least one.
fn prompt_list(list: &[String], what: &str) -> Result<Vec<String>, RequestError> {
    let out: Vec<String> = list.iter().map(|p| p.trim()).filter(|p| !p.is_empty()).map(str::to_owned).collect();
    if out.is_empty() {
        return Err(invalid(format!("no {what} prompts: give at least one, e.g. \"a skull; a photo of a skull\"")));
    }
    Ok(out)
}

impl EraserFitRequest {
    pub fn from_json(json: &str) -> Result<Self, RequestError> {
        serde_json::from_str(json).map_err(|e| invalid(format!("eraser request: {e}")))
    }

    /// Validates: a known method, prompts on both sides, INLP's settings only for INLP.
    pub fn to_config(&self) -> Result<EraserFit, RequestError> {
        let method = EraserMethod::parse(&self.method)?;
        let concepts = prompt_list(&self.concepts, "concept")?;
        let others = prompt_list(&self.others, "other")?;
        if method == EraserMethod::Leace && (self.iterations.is_some() || self.min_accuracy.is_some()) {
            return Err(invalid(
                "iterations and min_accuracy are INLP's settings: LEACE has none (choose INLP, or leave them out)",
            ));
        }
        let d = InlpConfig::default();
        let inlp = InlpConfig {
            iterations: self.iterations.unwrap_or(d.iterations),
            min_accuracy: self.min_accuracy.unwrap_or(d.min_accuracy),
            ..d
        };
        Ok(EraserFit { method, concepts, others, inlp })
    }
}

impl EraserFit {
    /// Fits the eraser on `enc`'s embeddings of the prompts; INLP's report with it.
    pub fn run(&self, enc: &mut dyn PromptEncoder) -> Result<(LinearEraser, Option<InlpReport>), RequestError> {
        Ok(match self.method {
            EraserMethod::Leace => {
                (crate::leace::fit_prompts(enc, &self.concepts, &self.others, LeaceConfig::default())?, None)
            }
            EraserMethod::Inlp => {
                let (e, report) = crate::inlp::fit_prompts(enc, &self.concepts, &self.others, self.inlp)?;
                (e, Some(report))
            }
        })
    }
}

/// A Ring-A-Bell probe (JSON, camelCase), as `studio generate --ring-a-bell PAIRS
/// [--ring-a-bell-eta η]`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RingABellRequest {
    /// `"prompt with the concept|the same prompt without;…"` ([`ring_a_bell::parse_pairs`]).
    pub pairs: String,
    /// η (default [`ring_a_bell::DEFAULT_ETA`], RECE's nudity setting).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<f64>,
}

impl RingABellRequest {
    pub fn from_json(json: &str) -> Result<Self, RequestError> {
        serde_json::from_str(json).map_err(|e| invalid(format!("Ring-A-Bell request: {e}")))
    }

    /// Validates: the parsed pairs and η.
    pub fn to_config(&self) -> Result<RingABellFit, RequestError> {
        let pairs = ring_a_bell::parse_pairs(&self.pairs)?;
        let eta = self.eta.unwrap_or(ring_a_bell::DEFAULT_ETA);
        if !eta.is_finite() {
            return Err(invalid(format!("Ring-A-Bell's η must be a finite number (got {eta})")));
        }
        Ok(RingABellFit { pairs, eta })
    }
}

/// A validated [`RingABellRequest`]: the prompt pairs to encode and η.
#[derive(Debug, Clone, PartialEq)]
pub struct RingABellFit {
    pub pairs: Vec<(String, String)>,
    pub eta: f64,
}

impl RingABellFit {
    /// The concept vector from `enc`'s embeddings of the pairs.
    pub fn run(&self, enc: &mut dyn PromptEncoder) -> Result<RingABell, RequestError> {
        Ok(ring_a_bell::from_prompts(enc, &self.pairs, self.eta)?)
    }
}
