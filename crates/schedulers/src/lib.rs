//! Diffusion schedulers, one algorithm a file, whose timesteps, sigmas and updates equal diffusers
//! 0.42.1's (`diffusers/schedulers/scheduling_*.py`).
//!
//! The pipeline writes the loop itself:
//! ```text
//! let mut s = schedulers::build(kind, &config, steps)?;
//! latents = latents * s.init_noise_sigma();
//! for (i, &t) in s.timesteps().to_vec().iter().enumerate() {
//!     let x = s.scale_model_input(latents.clone(), i);
//!     let eps = unet(x, t);                                   // after classifier-free guidance
//!     let noise = s.needs_noise().then(|| gaussian_like(&latents));
//!     latents = s.step(eps, i, latents, noise)?;
//!     let preview = s.pred_original_sample();                 // x̂₀ of this step
//! }
//! ```
//! Schedule arithmetic (betas, ᾱ, timesteps, sigmas) is done in the precision diffusers uses at that
//! point: float64 where it uses numpy, float32 where it uses torch (see `numeric.rs`). Tensor updates
//! are float32 on whatever burn `Device` the latents live on.

pub mod config;
pub mod ddim;
pub mod dpm_solver;
pub mod error;
pub mod euler;
pub mod euler_ancestral;
pub mod lcm;
pub mod numeric;
pub mod pndm;

use burn::tensor::Tensor;
use std::fmt;
use std::str::FromStr;

pub use config::{BetaDefaults, PredictionType, SchedulerConfig, TimestepSpacing};
pub use ddim::DdimScheduler;
pub use dpm_solver::DpmSolverMultistepScheduler;
pub use error::SchedulerError;
pub use euler::EulerDiscreteScheduler;
pub use euler_ancestral::EulerAncestralDiscreteScheduler;
pub use lcm::LcmScheduler;
pub use pndm::PndmScheduler;

/// The schedulers the studio offers (`--scheduler ddim|euler|euler-a|lcm|dpm|pndm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchedulerKind {
    /// DDIMScheduler, η = 0 (Song et al. 2021).
    Ddim,
    /// EulerDiscreteScheduler (Karras et al. 2022, Algorithm 2 without churn).
    Euler,
    /// EulerAncestralDiscreteScheduler (stochastic).
    EulerAncestral,
    /// LCMScheduler (Luo et al. 2023; stochastic, for latent consistency models).
    Lcm,
    /// DPMSolverMultistepScheduler, DPM-Solver++(2M) (Lu et al. 2022).
    DpmSolverMultistep,
    /// PNDMScheduler: PLMS with `skip_prk_steps` (SD 1.x's default), else F-PNDM (Liu et al. 2022).
    Pndm,
}

impl SchedulerKind {
    pub const ALL: [SchedulerKind; 6] =
        [Self::Ddim, Self::Euler, Self::EulerAncestral, Self::Lcm, Self::DpmSolverMultistep, Self::Pndm];

    /// The CLI / UI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Ddim => "ddim",
            Self::Euler => "euler",
            Self::EulerAncestral => "euler-a",
            Self::Lcm => "lcm",
            Self::DpmSolverMultistep => "dpm",
            Self::Pndm => "pndm",
        }
    }

    /// The diffusers class implemented.
    pub fn diffusers_class(self) -> &'static str {
        match self {
            Self::Ddim => "DDIMScheduler",
            Self::Euler => "EulerDiscreteScheduler",
            Self::EulerAncestral => "EulerAncestralDiscreteScheduler",
            Self::Lcm => "LCMScheduler",
            Self::DpmSolverMultistep => "DPMSolverMultistepScheduler",
            Self::Pndm => "PNDMScheduler",
        }
    }
}

impl fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SchedulerKind {
    type Err = SchedulerError;

    /// Accepts the CLI names (case-insensitive) and the diffusers class names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|k| k.name() == lower || k.diffusers_class().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SchedulerError::UnknownKind(s.to_string()))
    }
}

/// A configured noise schedule and its update rule. Build one per generation.
pub trait Scheduler: Send {
    /// The model timesteps, one per model evaluation, in the order they are run (descending):
    /// `[num_inference_steps]` for most schedulers, more for PNDM, whose list repeats entries
    /// (`n + 1` for PLMS, `n + 9` with Runge-Kutta warm-up). Integers for DDIM / LCM / DPM-Solver /
    /// PNDM; may be fractional for Euler with "linspace" spacing.
    fn timesteps(&self) -> &[f64];

    /// Standard deviation of the initial noise: multiply fresh N(0, 1) latents by it
    /// (1 for the alpha-parameterised schedulers; the sigma-based ones override it).
    fn init_noise_sigma(&self) -> f64 {
        1.0
    }

    /// The model input at `step_index` (Euler divides by sqrt(σ² + 1), the others return `sample`).
    /// `sample`: `[batch, channels, height, width]`.
    fn scale_model_input(&self, sample: Tensor<4>, _step_index: usize) -> Tensor<4> {
        sample
    }

    /// Whether `step` needs fresh Gaussian noise of the sample's shape (ancestral, LCM).
    fn needs_noise(&self) -> bool {
        false
    }

    /// One denoising update from step `step_index` (an index into `timesteps()`) to the next; returns the new latents
    /// `[batch, channels, height, width]`. `model_output` is the (guided) UNet output for
    /// `scale_model_input(sample, step_index)` at `timesteps()[step_index]`.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError>;

    /// The predicted clean sample x̂₀ `[batch, c, h, w]` of the last `step` call: diffusers' `pred_original_sample`
    /// (`denoised` for LCM), `None` before the first step.
    fn pred_original_sample(&self) -> Option<Tensor<4>>;

    /// The noise levels `[num_inference_steps + 1]` of sigma-based schedulers (Euler, Euler-a,
    /// DPM-Solver), last one the final level; `None` for DDIM and LCM.
    fn sigmas(&self) -> Option<&[f32]> {
        None
    }
}

/// Builds `kind` from any diffusers scheduler config (keys missing from it take `kind`'s diffusers
/// defaults) for `num_inference_steps` steps.
pub fn build(
    kind: SchedulerKind,
    config: &SchedulerConfig,
    num_inference_steps: usize,
) -> Result<Box<dyn Scheduler>, SchedulerError> {
    Ok(match kind {
        SchedulerKind::Ddim => Box::new(DdimScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Euler => Box::new(EulerDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::EulerAncestral => Box::new(EulerAncestralDiscreteScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Lcm => Box::new(LcmScheduler::new(config, num_inference_steps)?),
        SchedulerKind::DpmSolverMultistep => Box::new(DpmSolverMultistepScheduler::new(config, num_inference_steps)?),
        SchedulerKind::Pndm => Box::new(PndmScheduler::new(config, num_inference_steps)?),
    })
}

/// Checks the arguments every `step` receives.
pub(crate) fn check_step(
    step_index: usize,
    len: usize,
    model_output: &Tensor<4>,
    sample: &Tensor<4>,
    noise: Option<&Tensor<4>>,
) -> Result<(), SchedulerError> {
    if step_index >= len {
        return Err(SchedulerError::StepIndex { index: step_index, len });
    }
    let want = sample.dims();
    if model_output.dims() != want {
        return Err(SchedulerError::Shape {
            what: "model_output",
            got: model_output.dims().to_vec(),
            want: want.to_vec(),
        });
    }
    if let Some(n) = noise
        && n.dims() != want
    {
        return Err(SchedulerError::Shape { what: "noise", got: n.dims().to_vec(), want: want.to_vec() });
    }
    Ok(())
}
