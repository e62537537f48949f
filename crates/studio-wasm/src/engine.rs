//! The studio's generation loop, written once for the browser and for native tests.
//!
//! It steps a [`pipeline::generate::Run`] and, after every step, awaits a one-number read-back
//! (the sum of the latents) and then [`Host::yield_now`]. The read-back makes the per-step
//! progress and timings real on WebGPU, where kernels are only queued, and catches NaN/∞ at the
//! step it appears; the yield lets the worker's event loop deliver a cancel message. Nothing here
//! reads a tensor synchronously: a browser cannot.

use crate::error::StudioError;
use crate::readback::to_f32;
use crate::steering::SteeringStore;
use erasure::request::limits::MAX_GUIDANCE;
use pipeline::generate::{GenerateError, GenerateParams};
use pipeline::model::StableDiffusion;
use schedulers::SchedulerKind;
use serde::{Deserialize, Serialize};
use std::future::Future;

pub use erasure::request::SteeringRequest;
pub use erasure::request::limits::{MAX_SIDE, MAX_STEPS};

/// Generation parameters as the web worker sends them (JSON, camelCase).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StudioParams {
    pub prompt: String,
    #[serde(default)]
    pub negative_prompt: String,
    pub steps: usize,
    pub guidance: f64,
    pub width: usize,
    pub height: usize,
    pub seed: u64,
    /// `ddim`, `euler`, `euler-a`, `lcm`, `dpm` (or a diffusers class name).
    pub scheduler: String,
    #[serde(default)]
    pub clip_skip: Option<usize>,
    /// Decode and report an intermediate image every this many steps (0: no previews). A preview
    /// is the VAE's decoding of the current (still noisy) latents: exact for the model, and it
    /// costs one VAE decode, so the UI asks for a few per run, not one per step.
    #[serde(default)]
    pub preview_every: usize,
    /// Record DAAM's cross-attention heat maps of the prompt's tokens (`pipeline::daam`); the
    /// image is the same bit for bit.
    #[serde(default)]
    pub attention: bool,
    /// The steps and the layers' resolutions the maps aggregate (default every step and layer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attention_selection: Option<pipeline::daam::Selection>,
    /// Decode the scheduler's predicted clean image x̂₀ after every step (the denoising timeline;
    /// one VAE decode a step). The image is the same bit for bit.
    #[serde(default)]
    pub timeline: bool,
    /// Inference-time steering for this run only (the weights are untouched).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub steering: Option<SteeringRequest>,
}

impl StudioParams {
    pub fn from_json(json: &str) -> Result<Self, StudioError> {
        serde_json::from_str(json).map_err(|e| StudioError::Params(e.to_string()))
    }

    /// Validates and converts to the pipeline's parameters.
    pub fn to_generate_params(&self) -> Result<GenerateParams, StudioError> {
        let scheduler: SchedulerKind = self.scheduler.parse().map_err(|_| {
            let names: Vec<&str> = SchedulerKind::ALL.iter().map(|k| k.name()).collect();
            StudioError::Params(format!("unknown scheduler `{}`; choose one of {}", self.scheduler, names.join(", ")))
        })?;
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(StudioError::Params(format!("steps must be between 1 and {MAX_STEPS} (got {})", self.steps)));
        }
        if !(self.guidance.is_finite() && (0.0..=MAX_GUIDANCE).contains(&self.guidance)) {
            return Err(StudioError::Params(format!(
                "guidance must be between 0 and {MAX_GUIDANCE} (got {})",
                self.guidance
            )));
        }
        for (name, v) in [("width", self.width), ("height", self.height)] {
            if v == 0 || v > MAX_SIDE {
                return Err(StudioError::Params(format!("{name} must be between 1 and {MAX_SIDE} pixels (got {v})")));
            }
        }
        Ok(GenerateParams {
            prompt: self.prompt.clone(),
            negative_prompt: self.negative_prompt.clone(),
            steps: self.steps,
            guidance: self.guidance,
            height: self.height,
            width: self.width,
            seed: self.seed,
            scheduler,
            latents: None,
            clip_skip: self.clip_skip,
        })
    }
}

/// What the UI needs to know about a loaded model (JSON, camelCase).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModelInfo {
    /// The size the UNet was trained at (`unet.sample_size × vae scale factor`).
    pub default_width: usize,
    pub default_height: usize,
    /// Width and height must be multiples of this.
    pub size_multiple: usize,
    pub latent_channels: usize,
    /// Text-embedding width (768 SD 1.x, 1024 SD 2.x).
    pub text_width: usize,
    pub text_layers: usize,
    pub unet_channels: Vec<usize>,
    /// The scheduler class of `scheduler_config.json`.
    pub scheduler_class: Option<String>,
    /// The studio scheduler closest to it (DDIM when the class has no counterpart, e.g. PNDM).
    pub default_scheduler: String,
    pub prediction_type: Option<String>,
    /// The folder's own recommended guidance and steps (`studio.json`, [`pipeline::StudioJson`]):
    /// the page's form starts from them, as `studio generate` does.
    pub default_guidance: Option<f64>,
    pub default_steps: Option<usize>,
}

impl ModelInfo {
    pub fn of(model: &StableDiffusion) -> Self {
        let f = model.vae.scale_factor();
        let unet = model.unet.config();
        let te = model.text_encoder.config();
        let class = model.scheduler_config.class_name.clone();
        let default_scheduler = class
            .as_deref()
            .and_then(|c| c.parse::<SchedulerKind>().ok())
            .unwrap_or(SchedulerKind::Ddim)
            .name()
            .to_string();
        Self {
            default_width: unet.sample_size * f,
            default_height: unet.sample_size * f,
            size_multiple: f,
            latent_channels: unet.in_channels,
            text_width: te.hidden_size,
            text_layers: te.num_hidden_layers,
            unet_channels: unet.block_out_channels.clone(),
            scheduler_class: class,
            default_scheduler,
            prediction_type: model.scheduler_config.prediction_type.clone(),
            default_guidance: None,
            default_steps: None,
        }
    }
}

/// One finished step.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Progress {
    pub step: usize,
    pub total: usize,
    pub timestep: f64,
    /// Since the run started (prompt encoding included).
    pub elapsed_ms: f64,
    /// This step alone.
    pub step_ms: f64,
    /// Of `step_ms`: recording the step's kernels (CPU side; all of it on the CPU backend).
    pub record_ms: f64,
}

/// Timings of a finished run, milliseconds.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Timing {
    /// Prompt encoding, initial noise and scheduler set-up.
    pub start_ms: f64,
    /// All denoising steps.
    pub steps_ms: f64,
    /// Mean of one denoising step.
    pub per_step_ms: f64,
    /// VAE decode and the read-back of the image.
    pub decode_ms: f64,
    /// Intermediate previews (decodes and read-backs), excluded from `steps_ms`.
    pub preview_ms: f64,
    pub previews: usize,
    pub total_ms: f64,
}

/// A finished image.
pub struct Image {
    pub width: usize,
    pub height: usize,
    /// Row-major RGBA, alpha 255 (ready for `ImageData`).
    pub rgba: Vec<u8>,
    pub timing: Timing,
    pub prompt_truncated: bool,
    /// What the steering did (SAFREE's triggers and steps), when it says something.
    pub steering: Option<String>,
    /// The run's heat maps and each word's IoU with the image's object mask, when asked for.
    pub attention: Option<(pipeline::daam::AttentionMaps, Vec<pipeline::daam::WordScore>)>,
    /// Recording the maps: their aggregation and read-back (ms), within `timing.total_ms`.
    pub attention_ms: f64,
    /// With `timeline`: x̂₀ decoded after each step, RGBA like `rgba`, in step order.
    pub timeline: Vec<Vec<u8>>,
    /// Decoding the timeline's frames (ms), within `timing.total_ms` and excluded from `steps_ms`.
    pub timeline_ms: f64,
    /// With SLD steering: its guidance terms at every step (read back once, after the run).
    pub sld_terms: Vec<erasure::sld::SldStepTerms>,
}

/// How a run ended.
// One per run, moved once: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Outcome {
    Done(Image),
    Cancelled { step: usize, total: usize },
}

/// What the loop needs from its surroundings.
pub trait Host {
    /// Milliseconds from any fixed origin (`performance.now()` in the browser).
    fn now_ms(&self) -> f64;
    /// Gives the event loop a turn (a macrotask in the browser).
    fn yield_now(&mut self) -> impl Future<Output = ()>;
    fn progress(&mut self, p: &Progress);
    /// Checked after every yield.
    fn cancel_requested(&self) -> bool;
    /// An intermediate image after `step` steps (RGBA like [`Image::rgba`]).
    fn preview(&mut self, _step: usize, _width: usize, _height: usize, _rgba: &[u8]) {}
}

/// Raw decoder output read back as f32 `[1, 3, h, w]` → RGBA8 (alpha 255).
fn rgba_from_decoded(h: usize, w: usize, data: &[f32]) -> Vec<u8> {
    let (_, _, rgb) = pipeline::generate::rgb8_from_f32(h, w, data);
    let mut rgba = Vec::with_capacity(h * w * 4);
    for px in rgb.chunks_exact(3) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    rgba
}

/// Decodes the run's current latents and reads the image back (asynchronously).
async fn decode_rgba(run: &pipeline::generate::Run<'_>, step: usize) -> Result<(usize, usize, Vec<u8>), StudioError> {
    let image = run.decode();
    let [_, _, h, w] = image.dims();
    let data = to_f32(image).await?;
    if data.iter().any(|v| !v.is_finite()) {
        return Err(GenerateError::NotFinite(step).into());
    }
    Ok((h, w, rgba_from_decoded(h, w, &data)))
}

/// Runs text → image with `model`, reporting each step to `host` (no eraser or probe stored).
pub async fn generate<H: Host>(
    model: &StableDiffusion,
    params: &StudioParams,
    host: &mut H,
) -> Result<Outcome, StudioError> {
    generate_steered(model, params, &SteeringStore::default(), host).await
}

/// Runs text → image with `model`, its steering's erasers and probes taken from `store`.
pub async fn generate_steered<H: Host>(
    model: &StableDiffusion,
    params: &StudioParams,
    store: &SteeringStore,
    host: &mut H,
) -> Result<Outcome, StudioError> {
    let gp = params.to_generate_params()?;
    let t0 = host.now_ms();
    let config = match &params.steering {
        Some(s) => store.config(s)?,
        None => None,
    };
    // Encoded on the device, read back without blocking (WebGPU cannot read synchronously).
    let eta = config.as_ref().and_then(|c| c.ring_a_bell.as_ref()).map(|r| r.eta);
    let mut steering = match config {
        Some(c) => {
            let data = erasure::steering::Steering::encode(model, &gp, &c)?.read_async().await?;
            Some(erasure::steering::Steering::from_data(model, c, data)?)
        }
        None => None,
    };
    let steering_note = steering.as_ref().and_then(|s| steering_note(&s.report, eta));
    let mut plain = pipeline::generate::NoHooks;
    let hooks: &mut dyn pipeline::generate::Hooks = match steering.as_mut() {
        Some(s) => s,
        None => &mut plain,
    };
    // Armed for this run only; dropping the guard disarms it however the run ends.
    struct Disarm<'a>(Option<&'a diffusion::attention_probe::AttentionProbe>);
    impl Drop for Disarm<'_> {
        fn drop(&mut self) {
            if let Some(p) = self.0 {
                p.take();
            }
        }
    }
    let selection = params.attention_selection.clone().unwrap_or_default();
    let mut run = model.start(&gp, hooks)?;
    let total = run.total();
    let probe = if params.attention {
        let p = model
            .unet
            .attention_probe()
            .ok_or_else(|| StudioError::Params("this model was loaded without an attention probe: reload it".into()))?;
        selection.check(total, &pipeline::daam::unet_factors(model.unet.config())).map_err(StudioError::Params)?;
        p.arm_steps(selection.steps);
        Some(p)
    } else {
        None
    };
    let _disarm = Disarm(probe);
    host.yield_now().await;
    if host.cancel_requested() {
        return Ok(Outcome::Cancelled { step: 0, total });
    }
    let t_start = host.now_ms();
    let mut t_prev = t_start;
    let mut preview_ms = 0.0;
    let mut previews = 0;
    let mut timeline = vec![];
    let mut timeline_ms = 0.0;
    while !run.is_done() {
        let i = run.done_steps();
        let t_rec = host.now_ms();
        run.step(hooks)?;
        let record_ms = host.now_ms() - t_rec;
        // One number back per step: waits for the GPU, and a NaN anywhere makes the sum NaN.
        let sum: f32 = to_f32(run.latents.clone().sum()).await?.first().copied().unwrap_or(f32::NAN);
        if !sum.is_finite() {
            return Err(GenerateError::NotFinite(i + 1).into());
        }
        let now = host.now_ms();
        host.progress(&Progress {
            step: i + 1,
            total,
            timestep: run.timestep(i),
            elapsed_ms: now - t0,
            step_ms: now - t_prev,
            record_ms,
        });
        t_prev = now;
        if params.timeline {
            let x0 = run.pred_original().ok_or_else(|| GenerateError::Scheduler("no x̂₀ after a step".into()))?;
            let image = run.decode_latents(x0);
            let [_, _, fh, fw] = image.dims();
            let data = to_f32(image).await?;
            timeline.push(rgba_from_decoded(fh, fw, &data));
            let after = host.now_ms();
            timeline_ms += after - t_prev;
            t_prev = after;
        }
        if params.preview_every > 0 && (i + 1) % params.preview_every == 0 && !run.is_done() {
            let (h, w, rgba) = decode_rgba(&run, i + 1).await?;
            host.preview(i + 1, w, h, &rgba);
            let after = host.now_ms();
            preview_ms += after - t_prev;
            previews += 1;
            t_prev = after;
        }
        host.yield_now().await;
        if host.cancel_requested() && !run.is_done() {
            return Ok(Outcome::Cancelled { step: i + 1, total });
        }
    }
    let t_steps = host.now_ms();
    let (h, w, rgba) = decode_rgba(&run, total).await?;
    let t_decoded = host.now_ms();
    let attention = match probe {
        Some(p) => Some(attention_maps(model, &gp, &p.take(), &selection, total, &rgba, w, h).await?),
        None => None,
    };
    let sld_terms = match steering.as_ref().and_then(|s| s.sld_terms()) {
        Some((t, warmup)) => erasure::sld::step_terms(&to_f32(t).await?, warmup),
        None => vec![],
    };
    let t_end = host.now_ms();
    let steps_ms = t_steps - t_start - preview_ms - timeline_ms;
    Ok(Outcome::Done(Image {
        width: w,
        height: h,
        rgba,
        timing: Timing {
            start_ms: t_start - t0,
            steps_ms,
            per_step_ms: steps_ms / total.max(1) as f64,
            decode_ms: t_end - t_steps,
            preview_ms,
            previews,
            total_ms: t_end - t0,
        },
        prompt_truncated: run.prompt_truncated,
        steering: steering_note,
        attention,
        attention_ms: t_end - t_decoded,
        timeline,
        timeline_ms,
        sld_terms,
    }))
}

/// DAAM's maps of a finished run, read back, and each word's IoU with the image's object mask
/// (`classroom::foreground`), as `studio attention` computes them.
#[allow(clippy::too_many_arguments)]
async fn attention_maps(
    model: &StableDiffusion,
    gp: &GenerateParams,
    recorded: &[diffusion::attention_probe::LayerAttention],
    selection: &pipeline::daam::Selection,
    total: usize,
    rgba: &[u8],
    w: usize,
    h: usize,
) -> Result<(pipeline::daam::AttentionMaps, Vec<pipeline::daam::WordScore>), StudioError> {
    let [lh, lw] = pipeline::daam::latent_size(model, gp.height, gp.width);
    let Some((layers, t)) = pipeline::daam::aggregate_selection(recorded, lh, lw, selection) else {
        return Err(StudioError::Params("this UNet has no cross-attention: there are no attention maps".into()));
    };
    let data = to_f32(t).await?;
    let encoding = model.tokenizer.encode(&gp.prompt);
    let maps = pipeline::daam::AttentionMaps::new(&model.tokenizer, &encoding, &layers, lh, lw, &data)
        .with_selection(recorded, selection, total);
    let rgb: Vec<u8> = rgba.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect();
    let scores = maps.word_scores(&classroom::foreground::foreground_mask(&rgb, w, h), h, w);
    Ok((maps, scores))
}

/// What the steering did, in a sentence for the page (the CLI prints the same on stderr):
/// SAFREE's triggers first, then the eraser and the probe.
fn steering_note(r: &erasure::steering::SteeringReport, eta: Option<f64>) -> Option<String> {
    let mut parts = vec![];
    if let Some(s) = &r.safree {
        let words: Vec<&str> = s.triggers.iter().map(|(_, w)| w.as_str()).collect();
        let steps = if s.self_validating { format!("steps 1–{}", s.bound + 1) } else { "every step".to_owned() };
        parts.push(format!(
            "SAFREE: {} of {} tokens are triggers{}; projected embedding for {steps}",
            s.triggers.len(),
            s.real_tokens,
            if words.is_empty() { String::new() } else { format!(" ({})", words.join(", ")) }
        ));
    }
    if let Some(m) = r.eraser {
        parts.push(format!("{} eraser applied to the prompt's tokens", m.to_uppercase()));
    }
    if r.ring_a_bell {
        parts.push(format!("Ring-A-Bell probe added (η = {})", eta.unwrap_or(f64::NAN)));
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
