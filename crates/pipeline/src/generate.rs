//! The text-to-image loop, written out as diffusers' `StableDiffusionPipeline.__call__` does:
//! encode prompts, draw initial latents, then per step: scale the input, run the UNet on
//! `[uncond, cond]`, combine with classifier-free guidance, step the scheduler; finally decode
//! `latents / scaling_factor` with the VAE.
//!
//! Hooks ([`Hooks`]) let steering methods change the prompt embeddings (SAFREE, LEACE,
//! Ring-A-Bell), add conditionings to the batched UNet call and replace the guidance combination
//! (SLD's safety concept), change the conditioning per step (SAFREE's self-validating filter),
//! follow progress and cancel. Weight edits and adapters need no hook: they change the UNet's
//! tensors before the run.
//! A run is a value ([`Run`]) stepped one step at a time, so the browser can yield between steps.

use crate::model::StableDiffusion;
use crate::noise::NoiseGenerator;
use crate::prompt::{EncodedPrompt, encode_prompt};
use burn::tensor::{Tensor, TensorData};
use diffusion::error::LoadError;
use schedulers::SchedulerKind;
use std::ops::ControlFlow;

/// Everything a run depends on (the model aside).
#[derive(Debug, Clone)]
pub struct GenerateParams {
    pub prompt: String,
    pub negative_prompt: String,
    pub steps: usize,
    /// Classifier-free guidance scale; ≤ 1 disables guidance (one UNet pass per step), as in diffusers.
    pub guidance: f64,
    pub height: usize,
    pub width: usize,
    pub seed: u64,
    pub scheduler: SchedulerKind,
    /// Explicit initial latents `[1, c, h/f, w/f]` (before `init_noise_sigma`), like diffusers' `latents=`.
    pub latents: Option<Vec<f32>>,
    pub clip_skip: Option<usize>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            negative_prompt: String::new(),
            steps: 50,
            guidance: 7.5,
            height: 512,
            width: 512,
            seed: 0,
            scheduler: SchedulerKind::Ddim,
            latents: None,
            clip_skip: None,
        }
    }
}

/// What a step callback sees.
pub struct StepInfo<'a> {
    /// Steps done (1-based after the first step).
    pub step: usize,
    pub total: usize,
    pub timestep: f64,
    /// Latents after this step `[1, c, h, w]`.
    pub latents: &'a Tensor<4>,
}

/// Extension points of the loop. Every method has a neutral default.
pub trait Hooks {
    /// Change the conditional and unconditional prompt embeddings `[1, 77, d]` before the loop.
    fn prompt_embeds(&mut self, cond: Tensor<3>, uncond: Tensor<3>) -> Result<(Tensor<3>, Tensor<3>), LoadError> {
        Ok((cond, uncond))
    }
    /// Replace classifier-free guidance: given the noise predictions for the unconditional and
    /// conditional inputs `[1, c, h, w]`, return the guided prediction, or `None` for the
    /// standard `ε_u + g (ε_c − ε_u)`.
    fn guide(
        &mut self,
        _step: usize,
        _timestep: f64,
        _eps_uncond: &Tensor<4>,
        _eps_cond: &Tensor<4>,
        _guidance: f64,
    ) -> Option<Tensor<4>> {
        None
    }
    /// After each step; `Break` cancels the run.
    fn on_step(&mut self, _info: &StepInfo) -> ControlFlow<()> {
        ControlFlow::Continue(())
    }
    /// Extra conditionings `[1, 77, d]` evaluated in the same batched UNet call as
    /// `[uncond, cond]` at every step (SLD's safety concept); their noise predictions reach
    /// [`guide_with`](Self::guide_with). Asked once, when the run starts; ignored without guidance.
    fn extra_contexts(&mut self) -> Vec<Tensor<3>> {
        vec![]
    }
    /// [`guide`](Self::guide) with the noise predictions of the extra conditionings, in order.
    /// The default ignores them and calls `guide`.
    fn guide_with(
        &mut self,
        step: usize,
        timestep: f64,
        eps_uncond: &Tensor<4>,
        eps_cond: &Tensor<4>,
        _eps_extra: &[Tensor<4>],
        guidance: f64,
    ) -> Option<Tensor<4>> {
        self.guide(step, timestep, eps_uncond, eps_cond, guidance)
    }
    /// The conditional embedding `[1, 77, d]` for one step, or `None` for the one fixed by
    /// [`prompt_embeds`](Self::prompt_embeds) (SAFREE uses its projected embedding only for the
    /// first steps).
    fn step_cond(&mut self, _step: usize, _timestep: f64) -> Option<Tensor<3>> {
        None
    }
}

/// The default: no steering, never cancels.
pub struct NoHooks;
impl Hooks for NoHooks {}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(transparent)]
    Model(#[from] LoadError),
    #[error("scheduler: {0}")]
    Scheduler(String),
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("cancelled at step {step} of {total}")]
    Cancelled { step: usize, total: usize },
    #[error(
        "the run produced NaN or infinite values (step {0}); try fewer steps, another scheduler, or a lower guidance"
    )]
    NotFinite(usize),
}

/// The result of a run.
pub struct GenerateOutput {
    /// Final latents `[1, c, h, w]`, before VAE scaling.
    pub latents: Tensor<4>,
    /// Raw decoder output `[1, 3, H, W]`, before `/2 + 0.5`.
    pub image: Tensor<4>,
    /// The prompt did not fit in 77 tokens and was cut.
    pub prompt_truncated: bool,
}

impl StableDiffusion {
    /// Encodes the conditional and unconditional prompts (the latter is the negative prompt, "" by default).
    pub fn encode_pair(&self, params: &GenerateParams) -> Result<(EncodedPrompt, EncodedPrompt), LoadError> {
        let cond = encode_prompt(&self.tokenizer, &self.text_encoder, &params.prompt, params.clip_skip, &self.device)?;
        // diffusers applies clip skip to the prompt only; the negative prompt always uses the last layer.
        let uncond = encode_prompt(&self.tokenizer, &self.text_encoder, &params.negative_prompt, None, &self.device)?;
        Ok((cond, uncond))
    }

    /// Prepares a run (prompt encoding, initial latents, scheduler); drive it with [`Run::step`].
    pub fn start(&self, params: &GenerateParams, hooks: &mut dyn Hooks) -> Result<Run<'_>, GenerateError> {
        if params.steps == 0 {
            return Err(GenerateError::Params("steps must be at least 1".into()));
        }
        if !params.guidance.is_finite() {
            return Err(GenerateError::Params("guidance must be a finite number".into()));
        }
        let [h, w] = self.latent_size(params.height, params.width)?;
        let c = self.unet.config().in_channels;
        let device = &self.device;
        let (cond, uncond) = self.encode_pair(params)?;
        let prompt_truncated = cond.encoding.truncated;
        let (cond, uncond) = hooks.prompt_embeds(cond.embeds, uncond.embeds)?;
        let cfg = params.guidance > 1.0;
        let extra = if cfg { hooks.extra_contexts() } else { vec![] };
        if let Some(e) = extra.iter().find(|e| e.dims() != cond.dims()) {
            return Err(GenerateError::Params(format!(
                "an extra conditioning has shape {:?}, the prompt's is {:?}",
                e.dims(),
                cond.dims()
            )));
        }
        let context = if cfg { Tensor::cat(vec![uncond.clone(), cond.clone()], 0) } else { cond.clone() };

        let scheduler = schedulers::build(params.scheduler, &self.scheduler_config, params.steps)
            .map_err(|e| GenerateError::Scheduler(e.to_string()))?;
        let mut noise = NoiseGenerator::new(params.seed);
        let shape = [1, c, h, w];
        let latents = match &params.latents {
            Some(v) => {
                if v.len() != shape.iter().product::<usize>() {
                    return Err(GenerateError::Params(format!(
                        "initial latents have {} values, this model at {}×{} needs {:?}",
                        v.len(),
                        params.height,
                        params.width,
                        shape
                    )));
                }
                Tensor::from_data(TensorData::new(v.clone(), shape), device)
            }
            None => noise.tensor(shape, device),
        };
        let latents = latents * scheduler.init_noise_sigma();
        Ok(Run {
            model: self,
            scheduler,
            latents,
            context,
            uncond,
            cond,
            extra,
            cfg,
            guidance: params.guidance,
            noise,
            shape,
            index: 0,
            prompt_truncated,
        })
    }

    /// Runs text → image to the end (native callers; the browser steps a [`Run`] itself).
    pub fn generate(&self, params: &GenerateParams, hooks: &mut dyn Hooks) -> Result<GenerateOutput, GenerateError> {
        let mut run = self.start(params, hooks)?;
        while !run.is_done() {
            run.step(hooks)?;
            let info = StepInfo {
                step: run.index,
                total: run.total(),
                timestep: run.timestep(run.index - 1),
                latents: &run.latents,
            };
            if hooks.on_step(&info).is_break() {
                return Err(GenerateError::Cancelled { step: run.index, total: run.total() });
            }
        }
        if !run.latents.clone().is_finite().all().into_scalar::<bool>() {
            return Err(GenerateError::NotFinite(run.total()));
        }
        let image = run.decode();
        Ok(GenerateOutput { latents: run.latents, image, prompt_truncated: run.prompt_truncated })
    }
}

/// A text → image run in progress.
pub struct Run<'m> {
    model: &'m StableDiffusion,
    scheduler: Box<dyn schedulers::Scheduler>,
    /// Current latents `[1, c, h, w]`.
    pub latents: Tensor<4>,
    /// `[uncond; cond]` (`[2, 77, d]`) with guidance, `cond` (`[1, 77, d]`) without.
    context: Tensor<3>,
    /// The parts of `context`, to rebuild it when hooks add conditionings or change `cond`.
    uncond: Tensor<3>,
    cond: Tensor<3>,
    /// Extra conditionings `[1, 77, d]` after `[uncond, cond]` (with guidance only).
    extra: Vec<Tensor<3>>,
    cfg: bool,
    guidance: f64,
    noise: NoiseGenerator,
    shape: [usize; 4],
    index: usize,
    pub prompt_truncated: bool,
}

impl Run<'_> {
    pub fn total(&self) -> usize {
        self.scheduler.timesteps().len()
    }
    /// Steps done so far.
    pub fn done_steps(&self) -> usize {
        self.index
    }
    pub fn is_done(&self) -> bool {
        self.index >= self.total()
    }
    pub fn timestep(&self, i: usize) -> f64 {
        self.scheduler.timesteps()[i]
    }

    /// One denoising step: scale the input, UNet on `[uncond, cond, extra…]`, guidance,
    /// scheduler step.
    pub fn step(&mut self, hooks: &mut dyn Hooks) -> Result<(), GenerateError> {
        if self.is_done() {
            return Ok(());
        }
        let i = self.index;
        let t = self.timestep(i);
        let device = self.latents.device();
        let x = self.scheduler.scale_model_input(self.latents.clone(), i);
        let step_cond = hooks.step_cond(i, t);
        if let Some(c) = &step_cond
            && c.dims() != self.cond.dims()
        {
            return Err(GenerateError::Params(format!(
                "step {i}: the conditioning has shape {:?}, the prompt's is {:?}",
                c.dims(),
                self.cond.dims()
            )));
        }
        let context = if step_cond.is_none() && self.extra.is_empty() {
            self.context.clone()
        } else {
            let cond = step_cond.unwrap_or_else(|| self.cond.clone());
            if self.cfg {
                let mut parts = vec![self.uncond.clone(), cond];
                parts.extend(self.extra.iter().cloned());
                Tensor::cat(parts, 0)
            } else {
                cond
            }
        };
        let batch = context.dims()[0];
        let x = if batch > 1 { Tensor::cat(vec![x; batch], 0) } else { x };
        let ts = Tensor::<1>::from_data(TensorData::new(vec![t as f32; batch], [batch]), &device);
        // DAAM: the conditional element is the second of `[uncond, cond, …]`, the only one without guidance.
        let probe = self.model.unet.attention_probe();
        if let Some(p) = probe {
            p.set_recording_step(i, if self.cfg { 1 } else { 0 });
        }
        let eps = self.model.unet.forward(x, ts, context);
        if let Some(p) = probe {
            p.set_recording(None);
        }
        let eps = if self.cfg {
            let mut parts = eps.chunk(batch, 0);
            let eps_extra = parts.split_off(2);
            let eps_cond = parts.pop().expect("2 chunks");
            let eps_uncond = parts.pop().expect("2 chunks");
            match hooks.guide_with(i, t, &eps_uncond, &eps_cond, &eps_extra, self.guidance) {
                Some(e) => e,
                None => eps_uncond.clone() + (eps_cond - eps_uncond) * self.guidance,
            }
        } else {
            eps
        };
        let step_noise = self.scheduler.needs_noise().then(|| self.noise.tensor(self.shape, &device));
        self.latents = self
            .scheduler
            .step(eps, i, self.latents.clone(), step_noise)
            .map_err(|e| GenerateError::Scheduler(e.to_string()))?;
        self.index += 1;
        Ok(())
    }

    /// Decodes the current latents: raw decoder output `[1, 3, H, W]`.
    pub fn decode(&self) -> Tensor<4> {
        self.decode_latents(self.latents.clone())
    }

    /// The scheduler's predicted clean latents x̂₀ `[1, c, h, w]` of the last step (its
    /// `pred_original_sample`), `None` before the first step: the denoising timeline's frames.
    pub fn pred_original(&self) -> Option<Tensor<4>> {
        self.scheduler.pred_original_sample()
    }

    /// Decodes any latents of this run's shape: raw decoder output `[1, 3, H, W]`.
    pub fn decode_latents(&self, latents: Tensor<4>) -> Tensor<4> {
        self.model.vae.decode(latents / self.model.vae.config().scaling_factor)
    }
}

/// Raw decoder output `[1, 3, H, W]` → RGB8 pixels, row-major, as diffusers' postprocess
/// (`(x / 2 + 0.5).clamp(0, 1)`, then `round(x * 255)`).
pub fn to_rgb8(image: &Tensor<4>) -> (usize, usize, Vec<u8>) {
    let [_, _, h, w] = image.dims();
    let data: Vec<f32> = image.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
    rgb8_from_f32(h, w, &data)
}

/// Same as [`to_rgb8`] from values already read back (the browser reads asynchronously).
pub fn rgb8_from_f32(h: usize, w: usize, data: &[f32]) -> (usize, usize, Vec<u8>) {
    let mut out = vec![0u8; h * w * 3];
    for c in 0..3 {
        for i in 0..h * w {
            let v = (data.get(c * h * w + i).copied().unwrap_or(0.0) / 2.0 + 0.5).clamp(0.0, 1.0);
            out[i * 3 + c] = (v * 255.0).round() as u8;
        }
    }
    (h, w, out)
}
