//! Closed-form erasure (UCE, TIME, RECE, SPEED, MACE's refinement; crate `erasure`) computed on
//! the session's model, the portable half.
//!
//! The methods take token embeddings from a [`PromptEncoder`] and the cross-attention weights as
//! f64 matrices; natively they read tensors back synchronously (`ModelEncoder`), which a browser
//! on WebGPU cannot. Here every tensor is read back with `into_data_async` first: the
//! `attn2.to_k` / `to_v` weights, then the prompts. Which prompts a method needs is not always
//! known beforehand (augmentation templates, SPEED's retain set): the method is run with a
//! recording encoder that answers unknown prompts with a stand-in and notes them; they are
//! encoded and the method runs again, until it asked for nothing new. The final run sees only
//! real embeddings, so the edit equals the native one bit for bit (test `erase_tiny.rs`).

use crate::engine::StudioError;
use erasure::linalg::{Mat, Vector, from_row_major};
use erasure::text::{CrossAttn, PromptEncoder, Proj, TokenEmbeddings};
use erasure::{Edit, EraseError};
use pipeline::model::StableDiffusion;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What the page asks for (JSON, camelCase). `params` are the method's hyper-parameters by the
/// CLI's names (`lamb`, `erase_scale`, `preserve_scale`, `tokens`, `epochs`, `gamma`, `with_to_k`,
/// `augment`, `concept_type`, `retain_scale`, `threshold`, `aug_num`, `filter`, `seed`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EraseRequest {
    pub method: String,
    pub concepts: Vec<String>,
    #[serde(default)]
    pub guides: Vec<String>,
    #[serde(default)]
    pub preserve: Vec<String>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
}

const PARAMS: &[&str] = &[
    "lamb", "erase_scale", "preserve_scale", "tokens", "epochs", "gamma", "with_to_k", "augment", "concept_type", "retain_scale", "threshold",
    "aug_num", "filter", "seed",
];

impl EraseRequest {
    pub fn from_json(json: &str) -> Result<Self, StudioError> {
        let r: Self = serde_json::from_str(json).map_err(|e| StudioError::Params(format!("erase request: {e}")))?;
        if let Some(k) = r.params.keys().find(|k| !PARAMS.contains(&k.as_str())) {
            return Err(StudioError::Params(format!("unknown hyper-parameter `{k}`; known: {}", PARAMS.join(", "))));
        }
        Ok(r)
    }

    fn f64(&self, k: &str) -> Result<Option<f64>, StudioError> {
        match self.params.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .filter(|x| x.is_finite())
                .map(Some)
                .ok_or_else(|| StudioError::Params(format!("hyper-parameter `{k}` must be a number (got {v})"))),
        }
    }
    fn usize(&self, k: &str) -> Result<Option<usize>, StudioError> {
        match self.params.get(k) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| StudioError::Params(format!("hyper-parameter `{k}` must be a whole number (got {v})"))),
        }
    }
    fn bool(&self, k: &str) -> Result<Option<bool>, StudioError> {
        match self.params.get(k) {
            None => Ok(None),
            Some(v) => v.as_bool().map(Some).ok_or_else(|| StudioError::Params(format!("hyper-parameter `{k}` must be true or false (got {v})"))),
        }
    }
    fn str(&self, k: &str) -> Option<String> {
        self.params.get(k).and_then(|v| v.as_str().map(str::to_owned))
    }

    /// Whether the method edits `to_k` too (all but TIME and SPEED without `with_to_k`).
    fn keys(&self) -> Result<bool, StudioError> {
        Ok(match self.method.as_str() {
            "time" | "speed" => self.bool("with_to_k")?.unwrap_or(false),
            _ => true,
        })
    }
}

fn readback(e: impl std::fmt::Debug) -> StudioError {
    StudioError::Readback(format!("{e:?}"))
}

/// The UNet's cross-attention projections as the methods take them, read back asynchronously.
pub async fn cross_attention(model: &StableDiffusion, keys: bool) -> Result<Vec<CrossAttn>, StudioError> {
    let mut tensors = vec![];
    model.unet.for_each_linear(&mut |name, lin| {
        let proj = if name.ends_with("attn2.to_k") && keys {
            Proj::Key
        } else if name.ends_with("attn2.to_v") {
            Proj::Value
        } else {
            return;
        };
        tensors.push((name.to_owned(), proj, lin.weight_torch()));
    });
    let mut out = Vec::with_capacity(tensors.len());
    for (name, proj, w) in tensors {
        let [r, c] = w.dims();
        let data: Vec<f32> = w.into_data_async().await.map_err(readback)?.convert::<f32>().try_to_vec::<f32>().map_err(readback)?;
        out.push(CrossAttn { name, proj, weight: from_row_major(r, c, &data) });
    }
    Ok(out)
}

/// The text encoder's output for `prompt` (no clip skip), read back asynchronously.
pub async fn encode(model: &StableDiffusion, prompt: &str) -> Result<TokenEmbeddings, StudioError> {
    let out = pipeline::prompt::encode_prompt(&model.tokenizer, &model.text_encoder, prompt, None, &model.device)?;
    let [_, n, d] = out.embeds.dims();
    let embeds: Vec<f32> = out.embeds.into_data_async().await.map_err(readback)?.convert::<f32>().try_to_vec::<f32>().map_err(readback)?;
    let pooled: Vec<f32> = out.pooled.into_data_async().await.map_err(readback)?.convert::<f32>().try_to_vec::<f32>().map_err(readback)?;
    Ok(TokenEmbeddings {
        embeds: from_row_major(n, d, &embeds),
        pooled: Vector::from_iterator(d, pooled.into_iter().map(f64::from)),
        ids: out.encoding.ids.clone(),
        n_tokens: out.encoding.n_tokens,
    })
}

/// Real embeddings where known; a stand-in (a fixed, non-degenerate pattern) for the rest, noted
/// in `missing` so that they are encoded before the next run.
struct Recording<'a> {
    model: &'a StableDiffusion,
    known: &'a HashMap<String, TokenEmbeddings>,
    missing: BTreeSet<String>,
}

impl PromptEncoder for Recording<'_> {
    fn encode(&mut self, prompt: &str) -> Result<TokenEmbeddings, EraseError> {
        if let Some(e) = self.known.get(prompt) {
            return Ok(e.clone());
        }
        self.missing.insert(prompt.to_owned());
        let enc = self.model.tokenizer.encode(prompt);
        let d = self.model.text_encoder.config().hidden_size;
        let n = enc.ids.len();
        let embeds = Mat::from_fn(n, d, |i, j| ((i * 31 + j * 17 + 1) as f64).sin());
        Ok(TokenEmbeddings { embeds, pooled: Vector::from_fn(d, |j, _| ((j + 3) as f64).cos()), ids: enc.ids, n_tokens: enc.n_tokens })
    }
    fn tokens(&mut self, text: &str) -> Result<Vec<u32>, EraseError> {
        let e = self.model.tokenizer.encode(text);
        Ok(e.ids[1..e.n_tokens.saturating_sub(1).max(1)].to_vec())
    }
}

/// Runs the method once with `enc`, exactly as `studio erase` configures it (crates/cli/src/erase.rs).
fn run(req: &EraseRequest, enc: &mut dyn PromptEncoder, layers: &[CrossAttn]) -> Result<Edit, StudioError> {
    let tokens = match req.str("tokens").as_deref() {
        None | Some("last") => erasure::uce::TokenSelection::LastToken,
        Some("legacy") => erasure::uce::TokenSelection::LegacyLastWord,
        Some(other) => return Err(StudioError::Params(format!("unknown tokens `{other}`: use last or legacy"))),
    };
    let (c, g, p) = (&req.concepts, &req.guides, &req.preserve);
    let edit = match req.method.as_str() {
        "uce" => {
            let mut cfg = erasure::uce::UceConfig { tokens, preserve_scale: req.f64("preserve_scale")?, ..Default::default() };
            if let Some(l) = req.f64("lamb")? {
                cfg.lamb = l;
            }
            if let Some(e) = req.f64("erase_scale")? {
                cfg.erase_scale = e;
            }
            erasure::uce::uce(enc, layers, c, g, p, &cfg)?
        }
        "time" => {
            let mut cfg = erasure::time::TimeConfig { augment: req.bool("augment")?.unwrap_or(false), ..Default::default() };
            if let Some(l) = req.f64("lamb")? {
                cfg.lamb = l;
            }
            erasure::time::time(enc, layers, c, g, &cfg)?
        }
        "rece" => {
            let mut cfg = erasure::rece::ReceConfig { epochs: req.usize("epochs")?.unwrap_or(1), gamma: req.f64("gamma")?.unwrap_or(0.1), ..Default::default() };
            cfg.uce.tokens = tokens;
            if let Some(l) = req.f64("lamb")? {
                cfg.lamb = l;
            }
            if let Some(e) = req.f64("erase_scale")? {
                cfg.erase_scale = e;
            }
            if let Some(s) = req.f64("preserve_scale")? {
                cfg.preserve_scale = s;
            }
            erasure::rece::rece(enc, layers, c, g, p, &cfg)?.0
        }
        "speed" => {
            let mut cfg = erasure::speed::SpeedConfig {
                retain_scale: req.f64("retain_scale")?.unwrap_or(1.0),
                threshold: req.f64("threshold")?.unwrap_or(0.1),
                aug_num: req.usize("aug_num")?.unwrap_or(10),
                filter: req.bool("filter")?.unwrap_or(true),
                ..Default::default()
            };
            if let Some(l) = req.f64("lamb")? {
                cfg.lamb = l;
            }
            // The same draws as `studio erase --seed`: StdRng (ChaCha12) standard normals.
            use rand::SeedableRng;
            use rand_distr::Distribution;
            let mut rng = rand::rngs::StdRng::seed_from_u64(req.usize("seed")?.unwrap_or(0) as u64);
            let mut draw = || -> f64 { rand_distr::StandardNormal.sample(&mut rng) };
            erasure::speed::speed(enc, layers, c, g, p, &cfg, &mut draw)?
        }
        "mace" => {
            let mut cfg = erasure::mace_cfr::MaceConfig { augment: req.bool("augment")?.unwrap_or(false), ..Default::default() };
            cfg.concept_type = match req.str("concept_type").as_deref() {
                None | Some("object") => erasure::mace_cfr::ConceptType::Object,
                Some("style") => erasure::mace_cfr::ConceptType::Style,
                Some(other) => return Err(StudioError::Params(format!("unknown concept_type `{other}`: use object or style"))),
            };
            if let Some(l) = req.f64("lamb")? {
                cfg.lamb = l;
            }
            if let Some(s) = req.f64("preserve_scale")? {
                cfg.preserve_scale = s;
            }
            erasure::mace_cfr::mace_cfr(enc, layers, c, g, p, &cfg)?
        }
        other => return Err(StudioError::Params(format!("unknown method `{other}`: use uce, time, rece, speed or mace"))),
    };
    Ok(edit)
}

/// Computes the edit of `req` on `model` (nothing is applied). Every read-back is asynchronous.
pub async fn compute(model: &StableDiffusion, req: &EraseRequest) -> Result<Edit, StudioError> {
    if req.concepts.iter().all(|c| c.trim().is_empty()) {
        return Err(EraseError::NoConcepts.into());
    }
    let layers = cross_attention(model, req.keys()?).await?;
    let mut known: HashMap<String, TokenEmbeddings> = HashMap::new();
    let mut todo: BTreeSet<String> = req.concepts.iter().chain(&req.guides).chain(&req.preserve).cloned().collect();
    todo.insert(String::new());
    // Rounds: encode what is known to be needed, run, repeat with what the run asked for.
    for _ in 0..8 {
        for p in std::mem::take(&mut todo) {
            let e = encode(model, &p).await?;
            known.insert(p, e);
        }
        let mut rec = Recording { model, known: &known, missing: BTreeSet::new() };
        let result = run(req, &mut rec, &layers);
        if rec.missing.is_empty() {
            return result;
        }
        todo = rec.missing;
    }
    Err(StudioError::Params("the method kept asking for new prompts; this is a bug, please report it".into()))
}
