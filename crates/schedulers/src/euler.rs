//! Euler's method on the probability-flow ODE in σ: Karras et al., "Elucidating the Design Space of
//! Diffusion-Based Generative Models", NeurIPS 2022, Algorithm 2 (without churn, s_churn = 0).
//! Mirrors diffusers 0.42.1 `scheduling_euler_discrete.py` (`EulerDiscreteScheduler.__init__`,
//! `.set_timesteps`, `.scale_model_input`, `.step`).

use crate::config::{BetaDefaults, PredictionType, SchedulerConfig, TimestepSpacing, check_steps};
use crate::numeric::{
    interp_index, karras_sigmas, leading, log_f32, np_linspace, sigma_to_t, sigmas_from_alphas_cumprod, trailing,
};
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "EulerDiscreteScheduler";

/// Euler (deterministic). Defaults for missing config keys are EulerDiscreteScheduler's: linear betas,
/// "linspace" spacing (fractional timesteps), linear σ interpolation, discrete timesteps, final σ 0.
#[derive(Debug, Clone)]
pub struct EulerDiscreteScheduler {
    timesteps: Vec<f64>,
    /// σ `[n + 1]`, float32, last one the final level.
    sigmas: Vec<f32>,
    init_noise_sigma: f64,
    prediction: PredictionType,
    /// x̂₀ of the last step (diffusers `EulerDiscreteSchedulerOutput.pred_original_sample`).
    pred_x0: Option<Tensor<4>>,
}

/// The float32 model timesteps of Euler and Euler ancestral (identical code in diffusers'
/// `set_timesteps` of both) before any σ conversion.
pub(crate) fn spaced_timesteps_f32(config: &SchedulerConfig, n: usize) -> Result<Vec<f32>, SchedulerError> {
    let num_train = config.num_train_timesteps();
    Ok(match config.timestep_spacing(TimestepSpacing::Linspace)? {
        // np.linspace(0, T - 1, n, dtype=np.float32)[::-1]: float64 math, then float32.
        TimestepSpacing::Linspace => {
            np_linspace(0.0, (num_train - 1) as f64, n, true).into_iter().rev().map(|t| t as f32).collect()
        }
        // float32 array += steps_offset
        TimestepSpacing::Leading => {
            leading(num_train, n, 0).into_iter().map(|t| t as f32 + config.steps_offset.unwrap_or(0) as f32).collect()
        }
        TimestepSpacing::Trailing => trailing(num_train, num_train, n).into_iter().map(|t| t as f32).collect(),
    })
}

/// `init_noise_sigma`: max σ for "linspace"/"trailing", sqrt(max σ² + 1) for "leading" (float32).
pub(crate) fn init_noise_sigma(sigmas: &[f32], spacing: TimestepSpacing) -> f64 {
    let max = sigmas.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    match spacing {
        TimestepSpacing::Linspace | TimestepSpacing::Trailing => max as f64,
        TimestepSpacing::Leading => (max * max + 1.0).sqrt() as f64,
    }
}

/// Training σ `[T]` (float32) with diffusers' zero-SNR tweak: ᾱ_T = 2⁻²⁴ so σ_T stays finite.
pub(crate) fn train_sigmas(config: &SchedulerConfig) -> Result<(Vec<f32>, Vec<f32>), SchedulerError> {
    let mut alphas_cumprod = config.alphas_cumprod(&BetaDefaults::DDPM)?;
    if config.rescale_betas_zero_snr.unwrap_or(false) {
        *alphas_cumprod.last_mut().expect("num_train_timesteps >= 2") = 2f32.powi(-24);
    }
    Ok((sigmas_from_alphas_cumprod(&alphas_cumprod), alphas_cumprod))
}

fn unsupported(key: &'static str, value: &str, hint: &'static str) -> SchedulerError {
    SchedulerError::Unsupported { scheduler: NAME, key, value: value.into(), hint }
}

impl EulerDiscreteScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let n = num_inference_steps;
        check_steps(n, config.num_train_timesteps())?;
        let prediction = config.prediction_type()?;
        let spacing = config.timestep_spacing(TimestepSpacing::Linspace)?;
        match config.interpolation_type.as_deref().unwrap_or("linear") {
            "linear" => {}
            "log_linear" => return Err(unsupported("interpolation_type", "log_linear", "use \"linear\"")),
            other => {
                return Err(SchedulerError::InvalidValue {
                    key: "interpolation_type",
                    value: other.into(),
                    expected: "linear, log_linear",
                });
            }
        }
        let continuous = match config.timestep_type.as_deref().unwrap_or("discrete") {
            "discrete" => false,
            "continuous" => true,
            other => {
                return Err(SchedulerError::InvalidValue {
                    key: "timestep_type",
                    value: other.into(),
                    expected: "discrete, continuous",
                });
            }
        };
        if config.use_exponential_sigmas.unwrap_or(false) {
            return Err(unsupported("use_exponential_sigmas", "true", "use use_karras_sigmas or the default sigmas"));
        }
        if config.use_beta_sigmas.unwrap_or(false) {
            return Err(unsupported("use_beta_sigmas", "true", "use use_karras_sigmas or the default sigmas"));
        }
        let (train_sigmas, alphas_cumprod) = train_sigmas(config)?;

        let mut timesteps: Vec<f64> = spaced_timesteps_f32(config, n)?.into_iter().map(f64::from).collect();
        // np.interp(timesteps, arange(T), sigmas): float64.
        let mut sigmas: Vec<f64> = timesteps.iter().map(|&t| interp_index(t, &train_sigmas)).collect();
        if config.use_karras_sigmas.unwrap_or(false) {
            let sigma_min = config.sigma_min.unwrap_or(sigmas[sigmas.len() - 1]);
            let sigma_max = config.sigma_max.unwrap_or(sigmas[0]);
            sigmas = karras_sigmas(sigma_min, sigma_max, n);
            let log_sigmas = log_f32(&train_sigmas);
            timesteps = sigmas.iter().map(|&s| sigma_to_t(s, &log_sigmas)).collect();
        }
        let sigma_last = if config.final_sigma_is_sigma_min()? {
            ((1.0 - alphas_cumprod[0]) / alphas_cumprod[0]).sqrt()
        } else {
            0.0
        };
        let sigmas: Vec<f32> = sigmas.into_iter().map(|s| s as f32).chain(std::iter::once(sigma_last)).collect();
        let timesteps: Vec<f64> = if continuous && prediction == PredictionType::VPrediction {
            // EDM's c_noise = ¼·ln σ, float32 like the torch list comprehension.
            sigmas[..n].iter().map(|s| (0.25f32 * s.ln()) as f64).collect()
        } else {
            timesteps.into_iter().map(|t| t as f32 as f64).collect()
        };
        Ok(Self { init_noise_sigma: init_noise_sigma(&sigmas, spacing), timesteps, sigmas, prediction, pred_x0: None })
    }
}

impl Scheduler for EulerDiscreteScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    /// x / sqrt(σ² + 1). A `step_index` past the schedule uses the last σ.
    fn scale_model_input(&self, sample: Tensor<4>, step_index: usize) -> Tensor<4> {
        let sigma = self.sigmas[step_index.min(self.timesteps.len() - 1)];
        sample.div_scalar((sigma * sigma + 1.0).sqrt())
    }

    fn needs_noise(&self) -> bool {
        false
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        check_step(step_index, self.timesteps.len(), &model_output, &sample, noise.as_ref())?;
        // γ = 0 (no churn), so σ̂ = σ.
        let sigma = self.sigmas[step_index];
        let sigma_hat = sigma;
        let x0 = match self.prediction {
            PredictionType::Sample => model_output,
            PredictionType::Epsilon => sample.clone() - model_output.mul_scalar(sigma_hat),
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                model_output.mul_scalar(-sigma / s2.sqrt()) + sample.clone().div_scalar(s2)
            }
        };
        self.pred_x0 = Some(x0.clone());
        // d = (x − x̂₀) / σ̂ ; x_next = x + d·(σ_next − σ̂)
        let derivative = (sample.clone() - x0).div_scalar(sigma_hat);
        let dt = self.sigmas[step_index + 1] - sigma_hat;
        Ok(sample + derivative.mul_scalar(dt))
    }

    /// The x̂₀ (Karras' denoised D(x; σ̂)) of the last step: diffusers
    /// `EulerDiscreteSchedulerOutput(prev_sample, pred_original_sample)`.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.pred_x0.clone()
    }

    fn sigmas(&self) -> Option<&[f32]> {
        Some(&self.sigmas)
    }
}
