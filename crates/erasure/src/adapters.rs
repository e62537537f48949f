//! Several SPM / LoRA adapters attached to one loaded UNet, with per-adapter scales and
//! Facilitated Transport.
//!
//! Adapters are merged into the weights: every touched layer is set to `W₀ + ΔW` where `W₀` is
//! its value when the first adapter touching it was attached (kept here, so detaching restores
//! it bit for bit) and `ΔW` is recomputed from the attached adapters each time a scale or a
//! permeability changes ([`AdapterStack::set_permeabilities`], [`AdapterStack::prepare`]: with
//! Facilitated Transport on, once per prompt). The factors are uploaded once from the file's
//! values and combined with tensor ops on the model's device; nothing is read back (WebGPU-safe).
//!
//! `ΔW` of one layer, with `s` the user scale, `m` the permeability (1 without FT) and
//! `c = alpha / rank` of the layer:
//! - plain LoRA `l`: `s_l · c_l · U_l D_l` (kohya / diffusers `fuse_lora`, linear in `s`);
//! - SPMs, [`SpmComposition::Official`] (default): `c · (Σ_k s_k m_k U_k)(Σ_k s_k m_k D_k)` —
//!   Con6924/SPM `infer_spm.py` multiplies *every* tensor of SPM k (down and up) by its
//!   permeability and sums the SPMs tensor by tensor before loading them into one network whose
//!   `alpha / rank` comes from the first SPM's metadata. So one SPM contributes `m²·ΔW`, and
//!   several SPMs also contribute cross terms `m_j m_k U_j D_k`. An assigned multiplier
//!   (`--spm_multiplier`, FT off) is applied the same way; here the user scale plays that part
//!   and multiplies the permeability. `c` is that of the first attached SPM touching the layer;
//!   SPMs of different ranks on one layer cannot be combined this way (an error on attach).
//! - SPMs, [`SpmComposition::Linear`]: `Σ_k s_k m_k c_k U_k D_k` — what the paper's
//!   "`Σ m_k · SPM_k`" reads as for weight deltas: linear in `m`, no cross terms.
//!
//! With edits ([`crate::EditStack`]) on the same layers: attach adapters after applying edits
//! and detach them before reverting edits (each stack restores the values it found).

use crate::error::EraseError;
use crate::facilitated_transport::{ConceptScore, ErasedConcepts, MatchingMetric, special_token_ids};
use crate::lora::{LoraFile, targets};
use crate::spm::Spm;
use crate::text::{ModelEncoder, PromptEncoder};
use burn::tensor::{Device, Tensor, TensorData};
use diffusion::unet_2d_condition::UNet2DConditionModel;
use pipeline::StableDiffusion;
use std::collections::{BTreeMap, BTreeSet};

/// How several SPMs and their permeabilities combine (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SpmComposition {
    /// As `infer_spm.py`: factors scaled by `m` and summed (`ΔW ∝ m²`, cross terms).
    #[default]
    Official,
    /// `Σ_k m_k ΔW_k`.
    Linear,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdapterKind {
    Spm,
    Lora,
}

/// What an attached adapter is, for display.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterInfo {
    pub id: String,
    pub kind: AdapterKind,
    pub file: String,
    /// The SPM's erased prompts (empty for a LoRA).
    pub prompts: Vec<String>,
    pub scale: f32,
    /// The current Facilitated Transport permeability (1 when FT is off; always 1 for a LoRA).
    pub permeability: f32,
    pub layers: usize,
    pub rank: usize,
}

/// One SPM's permeability for a prompt, with the per-concept scores behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Permeability {
    pub id: String,
    pub value: f64,
    pub concepts: Vec<(String, ConceptScore)>,
}

#[derive(Clone)]
enum Original {
    /// `Linear::weight` as stored, `[in, out]`.
    Linear(Tensor<2>),
    /// `[out, in, 1, 1]`.
    Conv(Tensor<4>),
}

/// One layer of one adapter on the device.
struct Factors {
    module: String,
    /// `[rank, in]`.
    down: Tensor<2>,
    /// `[out, rank]`.
    up: Tensor<2>,
    /// `alpha / rank`.
    c: f32,
    rank: usize,
}

struct Attached {
    info: AdapterInfo,
    concepts: Option<ErasedConcepts>,
    layers: Vec<Factors>,
}

/// The adapters attached to one model (see the module docs).
#[derive(Default)]
pub struct AdapterStack {
    originals: BTreeMap<String, Original>,
    adapters: Vec<Attached>,
    pub composition: SpmComposition,
    pub metric: MatchingMetric,
}

fn device_of(unet: &UNet2DConditionModel) -> Option<Device> {
    let mut dev = None;
    unet.for_each_linear(&mut |_, l| {
        dev.get_or_insert_with(|| l.weight.device());
    });
    dev
}

impl AdapterStack {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_composition(composition: SpmComposition) -> Self {
        Self { composition, ..Self::default() }
    }

    pub fn is_empty(&self) -> bool {
        self.adapters.is_empty()
    }

    /// The attached adapters, in attach order.
    pub fn adapters(&self) -> Vec<AdapterInfo> {
        self.adapters.iter().map(|a| a.info.clone()).collect()
    }

    /// Attaches an SPM under `id` (replacing one with the same id) with user scale `scale`
    /// (permeability 1 until FT sets it). On error the model is unchanged. Returns the number
    /// of layers it adapts.
    pub fn attach_spm(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        spm: Spm,
        scale: f32,
    ) -> Result<usize, EraseError> {
        let prompts = spm.prompts.clone();
        self.attach(unet, id, AdapterKind::Spm, spm.lora, prompts, scale)
    }

    /// Attaches a plain LoRA under `id` with scale `scale` (`W + scale · alpha/r · up·down`).
    pub fn attach_lora(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        lora: LoraFile,
        scale: f32,
    ) -> Result<usize, EraseError> {
        self.attach(unet, id, AdapterKind::Lora, lora, vec![], scale)
    }

    fn attach(
        &mut self,
        unet: &mut UNet2DConditionModel,
        id: &str,
        kind: AdapterKind,
        lora: LoraFile,
        prompts: Vec<String>,
        scale: f32,
    ) -> Result<usize, EraseError> {
        if !scale.is_finite() {
            return Err(EraseError::Param(format!("the scale of `{}` is {scale}; give a finite number", lora.file)));
        }
        let table = targets(unet);
        let resolved = lora.resolve(&table, unet.config().cross_attention_dim)?;
        if kind == AdapterKind::Spm && self.composition == SpmComposition::Official {
            for (m, t) in lora.modules.iter().zip(&resolved) {
                let other =
                    self.adapters.iter().filter(|a| a.info.kind == AdapterKind::Spm && a.info.id != id).find_map(|a| {
                        a.layers
                            .iter()
                            .find(|f| f.module == t.module && f.rank != m.rank)
                            .map(|f| (a.info.id.clone(), f.rank))
                    });
                if let Some((other, r)) = other {
                    return Err(EraseError::Param(format!(
                        "`{}` has rank {} at `{}` but the attached SPM `{other}` has rank {r}: the official SPM composition sums their factors, which needs equal ranks (use the linear composition, or detach `{other}`)",
                        lora.file, m.rank, t.module
                    )));
                }
            }
        }
        let Some(device) = device_of(unet) else {
            return Err(EraseError::Param("this UNet has no transformer layers to attach an adapter to".into()));
        };
        let layers: Vec<Factors> = lora
            .modules
            .iter()
            .zip(&resolved)
            .map(|(m, t)| Factors {
                module: t.module.clone(),
                down: Tensor::from_data(TensorData::new(m.down.clone(), [m.rank, m.d_in]), &device),
                up: Tensor::from_data(TensorData::new(m.up.clone(), [m.d_out, m.rank]), &device),
                c: m.scale(),
                rank: m.rank,
            })
            .collect();
        let n = layers.len();
        self.record_originals(unet, &layers);
        let info = AdapterInfo {
            id: id.to_owned(),
            kind,
            file: lora.file.clone(),
            prompts,
            scale,
            permeability: 1.0,
            layers: n,
            rank: lora.max_rank(),
        };
        let attached = Attached { info, concepts: None, layers };
        match self.adapters.iter_mut().find(|a| a.info.id == id) {
            Some(slot) => *slot = attached,
            None => self.adapters.push(attached),
        }
        self.sync(unet);
        Ok(n)
    }

    fn record_originals(&mut self, unet: &mut UNet2DConditionModel, layers: &[Factors]) {
        let wanted: BTreeSet<&str> =
            layers.iter().map(|f| f.module.as_str()).filter(|m| !self.originals.contains_key(*m)).collect();
        let mut found = vec![];
        unet.for_each_linear(&mut |name, l| {
            if wanted.contains(name) {
                found.push((name.to_owned(), Original::Linear(l.weight.clone())));
            }
        });
        unet.for_each_conv_mut(&mut |name, c| {
            if wanted.contains(name) {
                found.push((name.to_owned(), Original::Conv(c.weight.clone())));
            }
        });
        self.originals.extend(found);
    }

    /// Detaches an adapter; layers no other adapter touches get their original tensors back.
    pub fn detach(&mut self, unet: &mut UNet2DConditionModel, id: &str) -> bool {
        let before = self.adapters.len();
        self.adapters.retain(|a| a.info.id != id);
        let removed = self.adapters.len() != before;
        self.sync(unet);
        removed
    }

    /// Detaches every adapter: the UNet holds its original tensors again.
    pub fn detach_all(&mut self, unet: &mut UNet2DConditionModel) {
        self.adapters.clear();
        self.sync(unet);
    }

    /// Changes an adapter's user scale.
    pub fn set_scale(&mut self, unet: &mut UNet2DConditionModel, id: &str, scale: f32) -> bool {
        let Some(a) = self.adapters.iter_mut().find(|a| a.info.id == id) else { return false };
        a.info.scale = scale;
        self.sync(unet);
        true
    }

    /// Sets the SPMs' permeabilities (`(id, m)`; ids not listed keep theirs) and the weights.
    pub fn set_permeabilities(&mut self, unet: &mut UNet2DConditionModel, values: &[(String, f64)]) {
        for (id, m) in values {
            if let Some(a) = self.adapters.iter_mut().find(|a| &a.info.id == id && a.info.kind == AdapterKind::Spm) {
                a.info.permeability = *m as f32;
            }
        }
        self.sync(unet);
    }

    /// The erased prompts every attached SPM needs encoded (for an encoder that works from
    /// precomputed embeddings, e.g. in the browser).
    pub fn concept_prompts(&self) -> Vec<String> {
        let mut v: Vec<String> = self.adapters.iter().flat_map(|a| a.info.prompts.iter().cloned()).collect();
        v.dedup();
        v
    }

    /// Facilitated Transport: each SPM's permeability for `prompt` ([`crate::facilitated_transport`]).
    /// Changes no weights; the concepts' embeddings are encoded once and kept.
    pub fn permeabilities(
        &mut self,
        prompt: &str,
        enc: &mut dyn PromptEncoder,
        special: &BTreeSet<u32>,
    ) -> Result<Vec<Permeability>, EraseError> {
        let p = enc.encode(prompt)?;
        let metric = self.metric;
        let mut out = vec![];
        for a in self.adapters.iter_mut().filter(|a| a.info.kind == AdapterKind::Spm) {
            if a.concepts.is_none() {
                a.concepts = Some(ErasedConcepts::encode(&a.info.prompts, enc, special)?);
            }
            let Some(concepts) = &a.concepts else { continue };
            let scores = concepts.scores(&p, special, metric);
            let value = scores.iter().map(|s| s.score).reduce(f64::max).unwrap_or(0.0);
            out.push(Permeability {
                id: a.info.id.clone(),
                value,
                concepts: concepts.prompts.iter().cloned().zip(scores).collect(),
            });
        }
        Ok(out)
    }

    /// Sets the weights for one prompt: with `ft`, every SPM gets its Facilitated Transport
    /// permeability for `prompt` (computed with the model's own text encoder); without, 1.
    /// Returns the permeabilities used.
    pub fn prepare(
        &mut self,
        model: &mut StableDiffusion,
        prompt: &str,
        ft: bool,
    ) -> Result<Vec<Permeability>, EraseError> {
        let perms = if ft && self.adapters.iter().any(|a| a.info.kind == AdapterKind::Spm) {
            let special = special_token_ids(&model.tokenizer);
            let mut enc = ModelEncoder::new(model);
            self.permeabilities(prompt, &mut enc, &special)?
        } else {
            self.adapters
                .iter()
                .filter(|a| a.info.kind == AdapterKind::Spm)
                .map(|a| Permeability { id: a.info.id.clone(), value: 1.0, concepts: vec![] })
                .collect()
        };
        let values: Vec<(String, f64)> = perms.iter().map(|p| (p.id.clone(), p.value)).collect();
        self.set_permeabilities(&mut model.unet, &values);
        Ok(perms)
    }

    /// `ΔW` of one layer in `Linear::weight` layout `[in, out]`, or `None` if nothing touches it.
    fn delta(&self, module: &str) -> Option<Tensor<2>> {
        let mut delta: Option<Tensor<2>> = None;
        let mut add = |t: Tensor<2>| {
            delta = Some(match delta.take() {
                Some(d) => d + t,
                None => t,
            })
        };
        // Official SPM composition: Σ m·D, Σ m·U, then one product.
        let mut spm_sum: Option<(Tensor<2>, Tensor<2>, f32)> = None;
        for a in &self.adapters {
            let Some(f) = a.layers.iter().find(|f| f.module == module) else { continue };
            let s = a.info.scale * a.info.permeability;
            match (a.info.kind, self.composition) {
                (AdapterKind::Spm, SpmComposition::Official) => {
                    let (d, u) = (f.down.clone() * s, f.up.clone() * s);
                    spm_sum = Some(match spm_sum.take() {
                        Some((sd, su, c)) => (sd + d, su + u, c),
                        None => (d, u, f.c),
                    });
                }
                _ => add(f.down.clone().transpose().matmul(f.up.clone().transpose()) * (s * f.c)),
            }
        }
        if let Some((d, u, c)) = spm_sum {
            add(d.transpose().matmul(u.transpose()) * c);
        }
        delta
    }

    /// Sets every touched layer to `W₀ + ΔW` (or back to `W₀`), forgets layers nothing touches.
    fn sync(&mut self, unet: &mut UNet2DConditionModel) {
        let mut linear: BTreeMap<String, Tensor<2>> = BTreeMap::new();
        let mut conv: BTreeMap<String, Tensor<4>> = BTreeMap::new();
        for (module, w0) in &self.originals {
            let delta = self.delta(module);
            match (w0, delta) {
                (Original::Linear(w), None) => drop(linear.insert(module.clone(), w.clone())),
                (Original::Linear(w), Some(d)) => drop(linear.insert(module.clone(), w.clone() + d)),
                (Original::Conv(w), None) => drop(conv.insert(module.clone(), w.clone())),
                (Original::Conv(w), Some(d)) => {
                    let [o, i, kh, kw] = w.dims();
                    drop(conv.insert(module.clone(), w.clone() + d.transpose().reshape([o, i, kh, kw])));
                }
            }
        }
        unet.for_each_linear_mut(&mut |name, l| {
            if let Some(w) = linear.remove(name) {
                l.weight = w;
            }
        });
        unet.for_each_conv_mut(&mut |name, c| {
            if let Some(w) = conv.remove(name) {
                c.weight = w;
            }
        });
        let touched: BTreeSet<String> =
            self.adapters.iter().flat_map(|a| a.layers.iter().map(|f| f.module.clone())).collect();
        self.originals.retain(|m, _| touched.contains(m));
    }
}
