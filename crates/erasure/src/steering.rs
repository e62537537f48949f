//! Inference-time steering for one run, as a [`pipeline::Hooks`]: the weights are untouched.
//!
//! What a run may combine, in the order it is applied to the conditional embedding `e`:
//! 1. Ring-A-Bell's attack `e + η v` ([`crate::ring_a_bell`]): the adversary's input comes first,
//!    so the defences below see the attacked embedding;
//! 2. a LEACE or INLP eraser on every token after BOS ([`crate::leace`], [`crate::inlp`]);
//! 3. SAFREE's trigger-token projection ([`crate::safree`]), used for every step, or with the
//!    self-validating filter only for steps `0..=t'` (the hook's per-step conditioning);
//! 4. SLD ([`crate::sld`]): the safety concept is a third conditioning in the same batched UNet
//!    call, and its prediction replaces classifier-free guidance.
//!
//! The negative prompt is [`GenerateParams::negative_prompt`]: the pipeline encodes it as the
//! unconditional embedding and steering leaves that embedding alone (the eraser is not applied
//! to it: it pushes away from what it names, and erasing the concept there would weaken it).
//!
//! [`Steering::prepare`] does the embedding work up front in f64 (it reads the prompt's
//! embedding back from the device once); during the run the hooks only swap tensors and run
//! SLD's element-wise guidance on the device.

use crate::error::EraseError;
use crate::leace::LinearEraser;
use crate::linalg::{Mat, from_row_major};
use crate::ring_a_bell::RingABell;
use crate::safree::{self, SafreeConfig};
use crate::sld::{DEFAULT_SAFETY_CONCEPT, Sld, SldParams};
use crate::text::read_f32;
use burn::tensor::{Device, Tensor, TensorData};
use diffusion::error::LoadError;
use pipeline::prompt::encode_prompt;
use pipeline::tokenizer::Encoding;
use pipeline::{GenerateParams, Hooks, StableDiffusion};

/// What to steer with; every part is optional.
#[derive(Debug, Clone)]
pub struct SteeringConfig {
    pub sld: Option<SldParams>,
    /// SLD's safety concept (default: the official one).
    pub sld_concept: String,
    pub safree: Option<SafreeConfig>,
    pub eraser: Option<LinearEraser>,
    /// Where the eraser came from, for error messages.
    pub eraser_file: String,
    pub ring_a_bell: Option<RingABell>,
}

impl Default for SteeringConfig {
    fn default() -> Self {
        Self {
            sld: None,
            sld_concept: DEFAULT_SAFETY_CONCEPT.to_owned(),
            safree: None,
            eraser: None,
            eraser_file: "eraser".into(),
            ring_a_bell: None,
        }
    }
}

impl SteeringConfig {
    pub fn is_empty(&self) -> bool {
        self.sld.is_none() && self.safree.is_none() && self.eraser.is_none() && self.ring_a_bell.is_none()
    }
}

/// What SAFREE found in the prompt.
#[derive(Debug, Clone)]
pub struct SafreeSummary {
    /// Trigger tokens: (position in the 77-token sequence, token text).
    pub triggers: Vec<(usize, String)>,
    pub real_tokens: usize,
    pub beta: f64,
    /// The filter's bound `t'`: steps `0..=t'` use the projected embedding (all without the filter).
    pub bound: usize,
    pub self_validating: bool,
}

/// What the steering did, for the user.
#[derive(Debug, Clone, Default)]
pub struct SteeringReport {
    pub safree: Option<SafreeSummary>,
    pub sld: bool,
    pub eraser: Option<&'static str>,
    pub ring_a_bell: bool,
}

/// The hooks of one steered run.
pub struct Steering {
    /// Replaces the conditional embedding `[1, 77, d]` (attack, eraser, SAFREE without filter).
    cond: Option<Tensor<3>>,
    /// SAFREE's projected embedding and the last step (0-based) that uses it.
    safree_steps: Option<(Tensor<3>, usize)>,
    /// SLD and the safety concept's embedding `[1, 77, d]`.
    sld: Option<(Sld, Tensor<3>)>,
    pub report: SteeringReport,
}

fn to_tensor(m: &Mat, device: &Device) -> Tensor<3> {
    let data = crate::linalg::to_row_major(m);
    Tensor::from_data(TensorData::new(data, [1, m.nrows(), m.ncols()]), device)
}

/// The text-encoder outputs the hooks are computed from, still on the model's device. Reading
/// them back is the only step a browser must await (WebGPU has no synchronous read-back), so
/// [`Steering::prepare`] is [`Steering::encode`], [`SteeringTensors::read`] (or
/// [`SteeringTensors::read_async`]) and [`Steering::from_data`].
pub struct SteeringTensors {
    /// The prompt's conditional embedding `[1, n, d]` and its tokens (Ring-A-Bell, eraser, SAFREE).
    prompt: Option<(Tensor<3>, Encoding)>,
    /// SAFREE: the keywords' pooled outputs `[k, d]` and the masked prompts' `[m, d]` (`None`
    /// when the prompt has no real token to mask).
    safree: Option<(Tensor<2>, Option<Tensor<2>>)>,
    /// SLD's safety concept `[1, 77, d]` (stays on the device).
    sld_concept: Option<Tensor<3>>,
}

/// [`SteeringTensors`] read back.
pub struct SteeringData {
    prompt: Option<(Mat, Encoding)>,
    safree: Option<(Mat, Mat)>,
    sld_concept: Option<Tensor<3>>,
}

fn mat_of(dims: [usize; 2], v: &[f32]) -> Mat {
    Mat::from_fn(dims[0], dims[1], |r, c| v[r * dims[1] + c] as f64)
}

fn readback(e: impl std::fmt::Debug) -> EraseError {
    EraseError::Param(format!(
        "could not read the text embeddings back from the device ({e:?}); if the GPU was reset, reload the model"
    ))
}

async fn read_async<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>, EraseError> {
    t.into_data_async().await.map_err(readback)?.convert::<f32>().try_to_vec::<f32>().map_err(readback)
}

impl SteeringTensors {
    /// Reads back synchronously (native backends, or the CPU backend in a browser).
    pub fn read(self) -> SteeringData {
        SteeringData {
            prompt: self.prompt.map(|(t, enc)| {
                let [_, n, d] = t.dims();
                (from_row_major(n, d, &read_f32(&t)), enc)
            }),
            safree: self.safree.map(|(kw, masked)| {
                let d = kw.dims()[1];
                let masked = masked.map(|m| mat_of(m.dims(), &read_f32(&m))).unwrap_or_else(|| Mat::zeros(0, d));
                (mat_of(kw.dims(), &read_f32(&kw)), masked)
            }),
            sld_concept: self.sld_concept,
        }
    }

    /// Reads back asynchronously (a browser on WebGPU).
    pub async fn read_async(self) -> Result<SteeringData, EraseError> {
        let prompt = match self.prompt {
            Some((t, enc)) => {
                let [_, n, d] = t.dims();
                Some((from_row_major(n, d, &read_async(t).await?), enc))
            }
            None => None,
        };
        let safree = match self.safree {
            Some((kw, masked)) => {
                let dims = kw.dims();
                let kw = mat_of(dims, &read_async(kw).await?);
                let masked = match masked {
                    Some(m) => {
                        let md = m.dims();
                        mat_of(md, &read_async(m).await?)
                    }
                    None => Mat::zeros(0, dims[1]),
                };
                Some((kw, masked))
            }
            None => None,
        };
        Ok(SteeringData { prompt, safree, sld_concept: self.sld_concept })
    }
}

impl Steering {
    /// Prepares the hooks for `params` on `model`: validates the configuration against the model
    /// and the run, encodes what the methods need, and computes the steered embeddings.
    pub fn prepare(
        model: &StableDiffusion,
        params: &GenerateParams,
        config: SteeringConfig,
    ) -> Result<Self, EraseError> {
        let data = Self::encode(model, params, &config)?.read();
        Self::from_data(model, config, data)
    }

    /// Validates `config` for the run and runs the text encoder for what the hooks need.
    pub fn encode(
        model: &StableDiffusion,
        params: &GenerateParams,
        config: &SteeringConfig,
    ) -> Result<SteeringTensors, EraseError> {
        let device = &model.device;
        let d = model.text_encoder.config().hidden_size;
        if config.sld.is_some() && params.guidance <= 1.0 {
            return Err(EraseError::Param(format!(
                "SLD steers classifier-free guidance, which is off at guidance {}: use a guidance above 1",
                params.guidance
            )));
        }
        if let Some(e) = &config.eraser {
            e.check_width(d, &config.eraser_file)?;
        }
        if let Some(s) = &config.safree {
            s.check()?;
        }
        let mut out = SteeringTensors { prompt: None, safree: None, sld_concept: None };
        if config.ring_a_bell.is_some() || config.eraser.is_some() || config.safree.is_some() {
            let enc = encode_prompt(&model.tokenizer, &model.text_encoder, &params.prompt, params.clip_skip, device)?;
            if let Some(sc) = &config.safree {
                // Each keyword encoded alone, as SAFREE's official code does.
                let mut pooled = vec![];
                for k in sc.keywords.iter().filter(|k| !k.trim().is_empty()) {
                    pooled.push(encode_prompt(&model.tokenizer, &model.text_encoder, k, None, device)?.pooled);
                }
                let keywords: Tensor<2> = Tensor::cat(pooled, 0);
                let masked = safree::pooled_tensor_of_ids(model, &safree::masked_ids(&enc.encoding))?;
                out.safree = Some((keywords, masked));
            }
            out.prompt = Some((enc.embeds, enc.encoding));
        }
        if config.sld.is_some() {
            out.sld_concept =
                Some(encode_prompt(&model.tokenizer, &model.text_encoder, &config.sld_concept, None, device)?.embeds);
        }
        Ok(out)
    }

    /// The hooks from what [`Self::encode`] computed, read back.
    pub fn from_data(model: &StableDiffusion, config: SteeringConfig, data: SteeringData) -> Result<Self, EraseError> {
        let device = &model.device;
        let mut report = SteeringReport::default();
        let mut cond = None;
        let mut safree_steps = None;
        if let Some((mut e, encoding)) = data.prompt {
            if let Some(rab) = &config.ring_a_bell {
                e = rab.attack(&e)?;
                report.ring_a_bell = true;
            }
            if let Some(eraser) = &config.eraser {
                e = eraser.apply(&e);
                report.eraser = Some(eraser.method.name());
            }
            cond = Some(to_tensor(&e, device));
            if let (Some(sc), Some((keywords, masked))) = (&config.safree, &data.safree) {
                let (proj, bound) = safree::prepare_from(sc, &e, &encoding, keywords, masked)?;
                let triggers = proj
                    .triggers()
                    .into_iter()
                    .map(|pos| {
                        (pos, model.tokenizer.decode_token(encoding.ids[pos]).unwrap_or("?").replace("</w>", ""))
                    })
                    .collect();
                report.safree = Some(SafreeSummary {
                    triggers,
                    real_tokens: proj.keep.len(),
                    beta: proj.beta,
                    bound,
                    self_validating: sc.self_validating,
                });
                let projected = to_tensor(&proj.embeds, device);
                if sc.self_validating {
                    safree_steps = Some((projected, bound));
                } else {
                    cond = Some(projected);
                }
            }
        }
        let sld = match (config.sld, data.sld_concept) {
            (Some(p), Some(concept)) => {
                let sld = Sld::new(p)?;
                report.sld = sld.enabled();
                Some((sld, concept))
            }
            _ => None,
        };
        Ok(Self { cond, safree_steps, sld, report })
    }
}

impl Steering {
    /// SLD's guidance terms of the run so far, on the device, and its warm-up: read them back
    /// once after the run and give them to [`crate::sld::step_terms`]. `None` without SLD.
    pub fn sld_terms(&self) -> Option<(Tensor<1>, usize)> {
        let (sld, _) = self.sld.as_ref()?;
        Some((sld.terms()?, sld.params.warmup_steps))
    }

    /// [`Self::sld_terms`] read back (synchronously: native backends).
    pub fn read_sld_terms(&self) -> Option<Vec<crate::sld::SldStepTerms>> {
        let (t, warmup) = self.sld_terms()?;
        let data = t.into_data().convert::<f32>().try_to_vec::<f32>().ok()?;
        Some(crate::sld::step_terms(&data, warmup))
    }
}

impl Hooks for Steering {
    fn prompt_embeds(&mut self, cond: Tensor<3>, uncond: Tensor<3>) -> Result<(Tensor<3>, Tensor<3>), LoadError> {
        Ok((self.cond.clone().unwrap_or(cond), uncond))
    }

    fn extra_contexts(&mut self) -> Vec<Tensor<3>> {
        match &mut self.sld {
            Some((sld, concept)) if sld.enabled() => {
                sld.reset();
                vec![concept.clone()]
            }
            _ => vec![],
        }
    }

    fn guide_with(
        &mut self,
        step: usize,
        _t: f64,
        eps_uncond: &Tensor<4>,
        eps_cond: &Tensor<4>,
        eps_extra: &[Tensor<4>],
        guidance: f64,
    ) -> Option<Tensor<4>> {
        match (&mut self.sld, eps_extra.first()) {
            (Some((sld, _)), Some(eps_safety)) => Some(sld.guide(step, eps_uncond, eps_cond, eps_safety, guidance)),
            _ => None,
        }
    }

    fn step_cond(&mut self, step: usize, _t: f64) -> Option<Tensor<3>> {
        match &self.safree_steps {
            Some((projected, bound)) if step <= *bound => Some(projected.clone()),
            _ => None,
        }
    }
}
