//! Steering flags of `studio generate` (SLD, SAFREE, a LEACE/INLP eraser, a Ring-A-Bell probe)
//! and the `studio fit-eraser` command. The methods live in the `erasure` crate.

use anyhow::{Context, Result, bail};
use burn::tensor::Tensor;
use erasure::leace::{EraserMethod, LinearEraser};
use erasure::request::{EraserFitRequest, RequestError, RingABellRequest, SteeringRequest, SteeringSources};
use erasure::ring_a_bell::{DEFAULT_ETA, RingABell};
use erasure::steering::{Steering, SteeringConfig};
use erasure::text::ModelEncoder;
use pipeline::{GenerateOutput, GenerateParams, Hooks, StableDiffusion, StepInfo};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Inference-time steering (weights untouched).
#[derive(clap::Args, Debug, Default)]
pub struct SteeringArgs {
    /// Safe Latent Diffusion with a preset: weak | medium | strong | max (needs --guidance > 1).
    #[arg(long)]
    pub sld: Option<String>,
    /// SLD's safety concept (default: the official list of unsafe concepts).
    #[arg(long)]
    pub sld_concept: Option<String>,
    /// SAFREE: keywords of the concept to steer away from, separated by ';'.
    #[arg(long)]
    pub safree: Option<String>,
    /// SAFREE's trigger margin α.
    #[arg(long, default_value_t = 0.01)]
    pub safree_alpha: f64,
    /// Use SAFREE's projection at every step instead of the self-validating filter's count.
    #[arg(long)]
    pub safree_all_steps: bool,
    /// SAFREE's filter calibrated for artist styles.
    #[arg(long)]
    pub safree_artist: bool,
    /// A LEACE or INLP eraser file (from `studio fit-eraser`) applied to the prompt's tokens.
    #[arg(long, alias = "eraser")]
    pub leace: Option<PathBuf>,
    /// Ring-A-Bell probe: "prompt with the concept|same prompt without;…" (attacks an erasure).
    #[arg(long)]
    pub ring_a_bell: Option<String>,
    /// Ring-A-Bell's strength η (3 for nudity, 0.9 for Van Gogh in RECE's runs).
    #[arg(long, default_value_t = DEFAULT_ETA)]
    pub ring_a_bell_eta: f64,
    /// With --sld: write SLD's guidance terms of every step here as JSON (‖γ‖, ‖ε_p − ε_u‖, μ's coverage, ‖ν‖).
    #[arg(long, value_name = "FILE.json")]
    pub sld_terms: Option<PathBuf>,
}

impl From<&SteeringArgs> for SteeringRequest {
    fn from(a: &SteeringArgs) -> Self {
        Self {
            sld: a.sld.clone(),
            sld_concept: a.sld_concept.clone(),
            safree: a.safree.clone(),
            safree_alpha: Some(a.safree_alpha),
            safree_all_steps: a.safree_all_steps,
            safree_artist: a.safree_artist,
            eraser: a.leace.as_ref().map(|p| p.display().to_string()),
            ring_a_bell: a.ring_a_bell.clone(),
            ring_a_bell_eta: Some(a.ring_a_bell_eta),
        }
    }
}

/// What the flags name: an eraser file, read here, and Ring-A-Bell pairs, encoded with the
/// model's text encoder.
pub struct CliSources<'a> {
    pub model: &'a StableDiffusion,
}

impl SteeringSources for CliSources<'_> {
    fn eraser(&mut self, path: &str) -> Result<(LinearEraser, String), RequestError> {
        let bytes =
            std::fs::read(path).map_err(|e| RequestError::Invalid(format!("reading the eraser {path}: {e}")))?;
        Ok((LinearEraser::from_safetensors(path, bytes)?, path.to_owned()))
    }
    fn ring_a_bell(&mut self, pairs: &str, eta: Option<f64>) -> Result<RingABell, RequestError> {
        let req = RingABellRequest { pairs: pairs.to_owned(), eta };
        req.to_config()?.run(&mut ModelEncoder::new(self.model))
    }
}

impl SteeringArgs {
    pub fn is_active(&self) -> bool {
        SteeringRequest::from(self).is_active()
    }

    /// The configuration, with files read and prompts encoded.
    pub fn config(&self, model: &StableDiffusion) -> Result<SteeringConfig> {
        Ok(SteeringRequest::from(self).to_config(&mut CliSources { model })?.unwrap_or_default())
    }
}

/// Steering's hooks with the caller's progress callback.
struct WithProgress<'a> {
    steering: Steering,
    progress: &'a mut dyn Hooks,
}

impl Hooks for WithProgress<'_> {
    fn prompt_embeds(
        &mut self,
        cond: Tensor<3>,
        uncond: Tensor<3>,
    ) -> Result<(Tensor<3>, Tensor<3>), diffusion::error::LoadError> {
        self.steering.prompt_embeds(cond, uncond)
    }
    fn extra_contexts(&mut self) -> Vec<Tensor<3>> {
        self.steering.extra_contexts()
    }
    fn guide_with(
        &mut self,
        step: usize,
        t: f64,
        u: &Tensor<4>,
        c: &Tensor<4>,
        extra: &[Tensor<4>],
        g: f64,
    ) -> Option<Tensor<4>> {
        self.steering.guide_with(step, t, u, c, extra, g)
    }
    fn step_cond(&mut self, step: usize, t: f64) -> Option<Tensor<3>> {
        self.steering.step_cond(step, t)
    }
    fn on_step(&mut self, info: &StepInfo) -> ControlFlow<()> {
        self.progress.on_step(info)
    }
}

/// `model.generate`, steered when any steering flag is given; says what the steering did.
pub fn generate(
    args: &SteeringArgs,
    model: &StableDiffusion,
    params: &GenerateParams,
    progress: &mut dyn Hooks,
) -> Result<GenerateOutput> {
    if let (Some(path), None) = (&args.sld_terms, &args.sld) {
        bail!("--sld-terms {}: the terms are SLD's; give --sld weak|medium|strong|max too", path.display());
    }
    if !args.is_active() {
        return Ok(model.generate(params, progress)?);
    }
    let steering = Steering::prepare(model, params, args.config(model)?)?;
    let r = &steering.report;
    if let Some(s) = &r.safree {
        let words: Vec<String> = s.triggers.iter().map(|(p, t)| format!("{t}@{p}")).collect();
        let steps =
            if s.self_validating { format!("steps 0..={} (β = {:.3})", s.bound, s.beta) } else { "every step".into() };
        eprintln!(
            "SAFREE: {} of {} tokens are triggers [{}]; projected embedding for {steps}",
            s.triggers.len(),
            s.real_tokens,
            words.join(", ")
        );
    }
    if let Some(m) = r.eraser {
        eprintln!("{} eraser applied to the prompt's tokens", m.to_uppercase());
    }
    if r.ring_a_bell {
        eprintln!("Ring-A-Bell probe added (η = {})", args.ring_a_bell_eta);
    }
    if r.sld {
        eprintln!("SLD: {} preset, third UNet pass on the safety concept", args.sld.as_deref().unwrap_or_default());
    }
    let mut hooks = WithProgress { steering, progress };
    let out = model.generate(params, &mut hooks)?;
    if let Some(terms) = hooks.steering.read_sld_terms() {
        let applied: Vec<_> = terms.iter().filter(|t| t.applied).collect();
        let mean = |f: &dyn Fn(&erasure::sld::SldStepTerms) -> f64| {
            applied.iter().map(|t| f(t)).sum::<f64>() / applied.len().max(1) as f64
        };
        eprintln!(
            "\nSLD terms: γ subtracted at {} of {} steps; mean ‖γ‖/‖ε_p − ε_u‖ {:.3}, μ > 0 on {:.1} % of the latent",
            applied.len(),
            terms.len(),
            mean(&|t| t.relative),
            100.0 * mean(&|t| t.coverage)
        );
        if let Some(path) = &args.sld_terms {
            let json = serde_json::to_string_pretty(&terms).context("SLD terms as JSON")?;
            std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("wrote {}", path.display());
        }
    } else if let Some(path) = &args.sld_terms {
        bail!("--sld-terms {}: SLD did not run (give --sld PRESET and --guidance above 1)", path.display());
    }
    Ok(out)
}

/// Fit a LEACE or INLP eraser from two prompt sets.
#[derive(clap::Args, Debug)]
pub struct FitEraserArgs {
    /// The model folder (diffusers layout) whose text encoder makes the embeddings.
    #[arg(long)]
    pub model: PathBuf,
    /// leace | inlp
    #[arg(long, default_value = "leace")]
    pub method: String,
    /// Prompts with the concept: a text file (one prompt a line) or "a;b".
    #[arg(long)]
    pub concept_prompts: String,
    /// Prompts without it: a text file (one prompt a line) or "c;d".
    #[arg(long)]
    pub other_prompts: String,
    /// INLP: classifiers to train at most.
    #[arg(long, default_value_t = 10)]
    pub iterations: usize,
    /// INLP: stop when a classifier's accuracy falls below this.
    #[arg(long, default_value_t = 0.55)]
    pub min_accuracy: f64,
    #[arg(long)]
    pub out: PathBuf,
    /// ndarray (CPU) or wgpu.
    #[arg(long, default_value = "ndarray")]
    pub device: String,
}

/// Prompts from a file (one a line, blank lines and lines starting with '#' skipped) or from
/// a ';'-separated list.
pub fn prompt_list(arg: &str, what: &str) -> Result<Vec<String>> {
    let path = Path::new(arg);
    let list: Vec<String> = if path.is_file() {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')).map(str::to_owned).collect()
    } else {
        arg.split(';').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()
    };
    if list.is_empty() {
        bail!("no {what} prompts in `{arg}`: give a file with one prompt a line, or \"a;b\"");
    }
    Ok(list)
}

pub fn fit_eraser(a: FitEraserArgs) -> Result<()> {
    let method = EraserMethod::parse(&a.method)?;
    let concept = prompt_list(&a.concept_prompts, "concept")?;
    let other = prompt_list(&a.other_prompts, "other")?;
    // The INLP flags have defaults here; LEACE ignores them.
    let inlp = method == EraserMethod::Inlp;
    let req = EraserFitRequest {
        method: a.method.clone(),
        concepts: concept.clone(),
        others: other.clone(),
        iterations: inlp.then_some(a.iterations),
        min_accuracy: inlp.then_some(a.min_accuracy),
    };
    let fit = req.to_config()?;
    let device = crate::device(&a.device)?;
    let model = crate::load_model(&a.model, &device)?;
    let mut encoder = ModelEncoder::new(&model);
    let start = std::time::Instant::now();
    let (eraser, report) = fit.run(&mut encoder)?;
    if let Some(report) = report {
        let accs: Vec<String> = report.accuracies.iter().map(|v| format!("{v:.3}")).collect();
        eprintln!("INLP: {} directions removed; classifier accuracies {}", report.directions, accs.join(", "));
    }
    std::fs::write(&a.out, eraser.to_safetensors()).with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!(
        "{} eraser (rank {}, text width {}) from {} concept and {} other prompts in {:.2} s: wrote {}",
        method.name().to_uppercase(),
        eraser.proj_left.ncols(),
        eraser.d_text(),
        concept.len(),
        other.len(),
        start.elapsed().as_secs_f64(),
        a.out.display()
    );
    Ok(())
}
