//! [`EraseRequest`]: a closed-form edit of the cross-attention projections, as `studio erase
//! --method M --concepts "a;b" [--guides …] [--preserve …] [method options]` and the page's
//! `Session.computeEntry(id, json)` (kind `erase`) ask for it.
//!
//! The page's JSON (camelCase) is `{method, concepts, guides, preserve, params}`; `params` are
//! the method's hyper-parameters by the CLI's names ([`PARAMS`]). Every option is optional; an
//! absent one takes the method's official default (its `…Config::default()`).

use super::{RequestError, invalid};
use crate::Edit;
use crate::mace_cfr::{ConceptType, MaceConfig};
use crate::rece::ReceConfig;
use crate::speed::SpeedConfig;
use crate::text::{CrossAttn, PromptEncoder};
use crate::time::TimeConfig;
use crate::uce::{TokenSelection, UceConfig};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// The closed-form methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EraseMethod {
    Uce,
    Time,
    Rece,
    Speed,
    Mace,
}

impl EraseMethod {
    pub const ALL: [EraseMethod; 5] = [Self::Uce, Self::Time, Self::Rece, Self::Speed, Self::Mace];

    pub fn name(self) -> &'static str {
        match self {
            Self::Uce => "uce",
            Self::Time => "time",
            Self::Rece => "rece",
            Self::Speed => "speed",
            Self::Mace => "mace",
        }
    }
}

impl std::str::FromStr for EraseMethod {
    type Err = RequestError;
    fn from_str(s: &str) -> Result<Self, RequestError> {
        Self::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| invalid(format!("unknown method `{s}`: use uce, time, rece, speed or mace")))
    }
}

/// UCE / RECE token choice: `last` (current official code) | `legacy` (last word through padding).
pub fn parse_tokens(s: &str) -> Result<TokenSelection, RequestError> {
    match s {
        "last" => Ok(TokenSelection::LastToken),
        "legacy" => Ok(TokenSelection::LegacyLastWord),
        other => Err(invalid(format!("unknown tokens `{other}`: use last or legacy"))),
    }
}

/// MACE: `object` | `style` (augmentation templates).
pub fn parse_concept_type(s: &str) -> Result<ConceptType, RequestError> {
    match s {
        "object" => Ok(ConceptType::Object),
        "style" => Ok(ConceptType::Style),
        other => Err(invalid(format!("unknown concept_type `{other}`: use object or style"))),
    }
}

/// The hyper-parameters a request may give, by the CLI's names (`--erase-scale` is `erase_scale`).
pub const PARAMS: &[&str] = &[
    "lamb",
    "erase_scale",
    "preserve_scale",
    "tokens",
    "epochs",
    "gamma",
    "with_to_k",
    "augment",
    "concept_type",
    "retain_scale",
    "threshold",
    "aug_num",
    "filter",
    "seed",
];

/// Every method's options; `None`: the method's default. Which method reads which is listed at
/// each field (the CLI's flag of the same name documents it too).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EraseOptions {
    /// Ridge λ (all methods; default: the method's official default).
    pub lamb: Option<f64>,
    /// UCE, RECE.
    pub erase_scale: Option<f64>,
    /// UCE, RECE, MACE.
    pub preserve_scale: Option<f64>,
    /// UCE / RECE token choice (default last).
    pub tokens: Option<TokenSelection>,
    /// RECE: adversarial rounds (default 1).
    pub epochs: Option<usize>,
    /// RECE: γ of the adversarial embedding (default 0.1).
    pub gamma: Option<f64>,
    /// TIME: also edit to_k (the official --with_to_k). SPEED: edit keys and values (default false).
    pub with_to_k: Option<bool>,
    /// TIME / MACE: add the official augmentation prompts (default false).
    pub augment: Option<bool>,
    /// MACE: object | style (default object).
    pub concept_type: Option<ConceptType>,
    /// SPEED: r (default 1).
    pub retain_scale: Option<f64>,
    /// SPEED: eigenvalue threshold of the null space (default 0.1).
    pub threshold: Option<f64>,
    /// SPEED: augmentations per retain embedding (default 10).
    pub aug_num: Option<usize>,
    /// SPEED: prior filtering (default true; the CLI's `--no-filter` turns it off).
    pub filter: Option<bool>,
    /// SPEED: seed of the augmentation draws (default 0).
    pub seed: Option<u64>,
}

impl EraseOptions {
    /// The options of the page's `params` map; unknown names and values of the wrong type are
    /// refused with the known names / the expected type.
    pub fn from_map(params: &BTreeMap<String, Value>) -> Result<Self, RequestError> {
        if let Some(k) = params.keys().find(|k| !PARAMS.contains(&k.as_str())) {
            return Err(invalid(format!("unknown hyper-parameter `{k}`; known: {}", PARAMS.join(", "))));
        }
        let f64 = |k: &str| -> Result<Option<f64>, RequestError> {
            match params.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_f64()
                    .filter(|x| x.is_finite())
                    .map(Some)
                    .ok_or_else(|| invalid(format!("hyper-parameter `{k}` must be a number (got {v})"))),
            }
        };
        let u64 = |k: &str| -> Result<Option<u64>, RequestError> {
            match params.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_u64()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("hyper-parameter `{k}` must be a whole number (got {v})"))),
            }
        };
        let bool = |k: &str| -> Result<Option<bool>, RequestError> {
            match params.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_bool()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("hyper-parameter `{k}` must be true or false (got {v})"))),
            }
        };
        let choice = |k: &str, names: &str| -> Result<Option<&str>, RequestError> {
            match params.get(k) {
                None => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(Some)
                    .ok_or_else(|| invalid(format!("hyper-parameter `{k}` must be {names} (got {v})"))),
            }
        };
        Ok(Self {
            lamb: f64("lamb")?,
            erase_scale: f64("erase_scale")?,
            preserve_scale: f64("preserve_scale")?,
            tokens: choice("tokens", "last or legacy")?.map(parse_tokens).transpose()?,
            epochs: u64("epochs")?.map(|x| x as usize),
            gamma: f64("gamma")?,
            with_to_k: bool("with_to_k")?,
            augment: bool("augment")?,
            concept_type: choice("concept_type", "object or style")?.map(parse_concept_type).transpose()?,
            retain_scale: f64("retain_scale")?,
            threshold: f64("threshold")?,
            aug_num: u64("aug_num")?.map(|x| x as usize),
            filter: bool("filter")?,
            seed: u64("seed")?,
        })
    }

    fn check(&self) -> Result<(), RequestError> {
        let numbers = [
            ("lamb", self.lamb),
            ("erase_scale", self.erase_scale),
            ("preserve_scale", self.preserve_scale),
            ("gamma", self.gamma),
            ("retain_scale", self.retain_scale),
            ("threshold", self.threshold),
        ];
        match numbers.into_iter().find(|(_, v)| v.is_some_and(|x| !x.is_finite())) {
            Some((k, Some(v))) => Err(invalid(format!("hyper-parameter `{k}` must be a number (got {v})"))),
            _ => Ok(()),
        }
    }
}

/// A closed-form erasure request (see the module docs).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "EraseRequestJson")]
pub struct EraseRequest {
    pub method: EraseMethod,
    /// Concepts to erase (TIME: the source prompts).
    pub concepts: Vec<String>,
    /// Guide concepts, none, one for all or one per concept (TIME: destinations; MACE:
    /// mappings; SPEED: anchors).
    pub guides: Vec<String>,
    /// Concepts to preserve (SPEED: retain prompts).
    pub preserve: Vec<String>,
    pub options: EraseOptions,
}

/// The page's JSON form of [`EraseRequest`].
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseRequestJson {
    pub method: String,
    pub concepts: Vec<String>,
    #[serde(default)]
    pub guides: Vec<String>,
    #[serde(default)]
    pub preserve: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Value>,
}

impl TryFrom<EraseRequestJson> for EraseRequest {
    type Error = RequestError;
    fn try_from(j: EraseRequestJson) -> Result<Self, RequestError> {
        let options = EraseOptions::from_map(&j.params)?;
        Ok(Self { method: j.method.parse()?, concepts: j.concepts, guides: j.guides, preserve: j.preserve, options })
    }
}

/// A method's configuration, built by [`EraseRequest::to_config`].
#[derive(Debug, Clone)]
pub enum MethodConfig {
    Uce(UceConfig),
    Time(TimeConfig),
    Rece(ReceConfig),
    /// With the seed of SPEED's augmentation draws.
    Speed(SpeedConfig, u64),
    Mace(MaceConfig),
}

impl EraseRequest {
    /// The page's JSON. Its messages carry no serde position: they are shown to the user as they are.
    pub fn from_json(json: &str) -> Result<Self, RequestError> {
        let j: EraseRequestJson = serde_json::from_str(json).map_err(|e| invalid(format!("erase request: {e}")))?;
        j.try_into()
    }

    /// Whether the method edits `to_k` too (all but TIME and SPEED without `with_to_k`).
    pub fn edits_keys(&self) -> bool {
        match self.method {
            EraseMethod::Time | EraseMethod::Speed => self.options.with_to_k.unwrap_or(false),
            _ => true,
        }
    }

    /// Validates the options and builds the method's configuration: an absent option takes the
    /// method's default.
    pub fn to_config(&self) -> Result<MethodConfig, RequestError> {
        let o = &self.options;
        o.check()?;
        let tokens = o.tokens.unwrap_or(TokenSelection::LastToken);
        Ok(match self.method {
            EraseMethod::Uce => {
                let d = UceConfig::default();
                MethodConfig::Uce(UceConfig {
                    tokens,
                    preserve_scale: o.preserve_scale,
                    lamb: o.lamb.unwrap_or(d.lamb),
                    erase_scale: o.erase_scale.unwrap_or(d.erase_scale),
                })
            }
            EraseMethod::Time => {
                let d = TimeConfig::default();
                MethodConfig::Time(TimeConfig {
                    augment: o.augment.unwrap_or(d.augment),
                    lamb: o.lamb.unwrap_or(d.lamb),
                })
            }
            EraseMethod::Rece => {
                let mut cfg = ReceConfig::default();
                cfg.uce.tokens = tokens;
                cfg.epochs = o.epochs.unwrap_or(cfg.epochs);
                cfg.gamma = o.gamma.unwrap_or(cfg.gamma);
                cfg.lamb = o.lamb.unwrap_or(cfg.lamb);
                cfg.erase_scale = o.erase_scale.unwrap_or(cfg.erase_scale);
                cfg.preserve_scale = o.preserve_scale.unwrap_or(cfg.preserve_scale);
                MethodConfig::Rece(cfg)
            }
            EraseMethod::Speed => {
                let d = SpeedConfig::default();
                let cfg = SpeedConfig {
                    retain_scale: o.retain_scale.unwrap_or(d.retain_scale),
                    threshold: o.threshold.unwrap_or(d.threshold),
                    aug_num: o.aug_num.unwrap_or(d.aug_num),
                    filter: o.filter.unwrap_or(d.filter),
                    lamb: o.lamb.unwrap_or(d.lamb),
                    ..d
                };
                MethodConfig::Speed(cfg, o.seed.unwrap_or(0))
            }
            EraseMethod::Mace => {
                let d = MaceConfig::default();
                MethodConfig::Mace(MaceConfig {
                    augment: o.augment.unwrap_or(d.augment),
                    concept_type: o.concept_type.unwrap_or(d.concept_type),
                    lamb: o.lamb.unwrap_or(d.lamb),
                    preserve_scale: o.preserve_scale.unwrap_or(d.preserve_scale),
                })
            }
        })
    }

    /// Runs the method once with `enc` on `layers` (the UNet's cross-attention projections,
    /// `to_k` included when [`edits_keys`](Self::edits_keys)).
    pub fn run(&self, enc: &mut dyn PromptEncoder, layers: &[CrossAttn]) -> Result<Edit, RequestError> {
        let (c, g, p) = (&self.concepts, &self.guides, &self.preserve);
        Ok(match self.to_config()? {
            MethodConfig::Uce(cfg) => crate::uce::uce(enc, layers, c, g, p, &cfg)?,
            MethodConfig::Time(cfg) => crate::time::time(enc, layers, c, g, &cfg)?,
            MethodConfig::Rece(cfg) => crate::rece::rece(enc, layers, c, g, p, &cfg)?.0,
            MethodConfig::Speed(cfg, seed) => {
                // StdRng (ChaCha12) standard normals: the same draws natively and in the page.
                use rand::SeedableRng;
                use rand_distr::Distribution;
                let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
                let mut draw = || -> f64 { rand_distr::StandardNormal.sample(&mut rng) };
                crate::speed::speed(enc, layers, c, g, p, &cfg, &mut draw)?
            }
            MethodConfig::Mace(cfg) => crate::mace_cfr::mace_cfr(enc, layers, c, g, p, &cfg)?,
        })
    }
}
