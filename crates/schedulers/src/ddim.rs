//! DDIM, deterministic (η = 0): Song, Meng & Ermon, "Denoising Diffusion Implicit Models", ICLR 2021,
//! eq. 12. Mirrors diffusers 0.42.1 `scheduling_ddim.py` (`DDIMScheduler.set_timesteps`, `.step`).

use crate::config::{BetaDefaults, PredictionType, SchedulerConfig, TimestepSpacing, check_steps};
use crate::numeric::{leading, np_linspace, trailing};
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "DDIMScheduler";

/// DDIM with η = 0. Defaults for missing config keys are DDIMScheduler's: linear betas 1e-4..0.02,
/// `clip_sample` true, `set_alpha_to_one` true, `steps_offset` 0, "leading" spacing.
#[derive(Debug, Clone)]
pub struct DdimScheduler {
    /// ᾱ `[num_train_timesteps]`, float32 like diffusers.
    alphas_cumprod: Vec<f32>,
    /// ᾱ used after the last step: 1 (`set_alpha_to_one`) or ᾱ₀.
    final_alpha_cumprod: f32,
    /// Integer training timesteps, descending.
    timesteps_int: Vec<usize>,
    timesteps: Vec<f64>,
    /// `num_train_timesteps // num_inference_steps`: diffusers steps to `t - ratio` whatever the spacing.
    step_ratio: usize,
    prediction: PredictionType,
    /// `clip_sample_range` when `clip_sample` is set.
    clip: Option<f32>,
    /// x̂₀ of the last step, after clipping (diffusers `DDIMSchedulerOutput.pred_original_sample`).
    pred_x0: Option<Tensor<4>>,
}

impl DdimScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let num_train = config.num_train_timesteps();
        check_steps(num_inference_steps, num_train)?;
        config.reject_thresholding(NAME)?;
        let alphas_cumprod = config.alphas_cumprod(&BetaDefaults::DDPM)?;
        let final_alpha_cumprod = if config.set_alpha_to_one.unwrap_or(true) { 1.0 } else { alphas_cumprod[0] };
        let n = num_inference_steps;
        let raw: Vec<i64> = match config.timestep_spacing(TimestepSpacing::Leading)? {
            TimestepSpacing::Linspace => np_linspace(0.0, (num_train - 1) as f64, n, true)
                .into_iter()
                .rev()
                .map(|t| t.round_ties_even() as i64)
                .collect(),
            TimestepSpacing::Leading => leading(num_train, n, config.steps_offset.unwrap_or(0)),
            TimestepSpacing::Trailing => trailing(num_train, num_train, n),
        };
        let timesteps_int = to_train_indices(&raw, num_train)?;
        Ok(Self {
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: timesteps_int.iter().map(|&t| t as f64).collect(),
            timesteps_int,
            step_ratio: num_train / n,
            prediction: config.prediction_type()?,
            clip: config.clip_sample.unwrap_or(true).then(|| config.clip_sample_range.unwrap_or(1.0) as f32),
            pred_x0: None,
        })
    }
}

/// Timesteps index ᾱ: reject any outside `0..num_train` (diffusers would index out of bounds or wrap).
pub(crate) fn to_train_indices(raw: &[i64], num_train: usize) -> Result<Vec<usize>, SchedulerError> {
    raw.iter()
        .map(|&t| {
            usize::try_from(t).ok().filter(|&u| u < num_train).ok_or_else(|| SchedulerError::Steps {
                steps: raw.len(),
                reason: format!(
                    "timestep {t} falls outside the training schedule 0..{num_train}; lower steps_offset or the number of steps"
                ),
            })
        })
        .collect()
}

impl Scheduler for DdimScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        check_step(step_index, self.timesteps_int.len(), &model_output, &sample, noise.as_ref())?;
        let t = self.timesteps_int[step_index];
        // 1. previous timestep t - T/n (diffusers uses this ratio for every spacing).
        let prev_t = t.checked_sub(self.step_ratio);
        // 2. ᾱ_t, ᾱ_{t-1}, float32 scalars as torch computes them.
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_t_prev = prev_t.map_or(self.final_alpha_cumprod, |p| self.alphas_cumprod[p]);
        let beta_prod_t = 1.0 - alpha_prod_t;
        // 3. x̂₀ and ε̂ (eq. 12's "predicted x0" and the direction term's ε).
        let (mut x0, eps) = match self.prediction {
            PredictionType::Epsilon => (
                (sample.clone() - model_output.clone().mul_scalar(beta_prod_t.sqrt())).div_scalar(alpha_prod_t.sqrt()),
                model_output,
            ),
            PredictionType::Sample => {
                let eps =
                    (sample - model_output.clone().mul_scalar(alpha_prod_t.sqrt())).div_scalar(beta_prod_t.sqrt());
                (model_output, eps)
            }
            PredictionType::VPrediction => (
                sample.clone().mul_scalar(alpha_prod_t.sqrt()) - model_output.clone().mul_scalar(beta_prod_t.sqrt()),
                model_output.mul_scalar(alpha_prod_t.sqrt()) + sample.mul_scalar(beta_prod_t.sqrt()),
            ),
        };
        // 4. clip x̂₀ (off for Stable Diffusion configs).
        if let Some(r) = self.clip {
            x0 = x0.clamp(-r, r);
        }
        // 5. σ_t(η) = η·sqrt(variance) with η = 0; kept so NaN/inf propagate exactly as in diffusers.
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        let variance = (beta_prod_t_prev / beta_prod_t) * (1.0 - alpha_prod_t / alpha_prod_t_prev);
        let std_dev_t = 0.0f32 * variance.sqrt();
        // 6-7. x_{t-1} = sqrt(ᾱ_{t-1})·x̂₀ + sqrt(1 − ᾱ_{t-1} − σ_t²)·ε̂
        let direction = eps.mul_scalar((1.0 - alpha_prod_t_prev - std_dev_t * std_dev_t).sqrt());
        self.pred_x0 = Some(x0.clone());
        Ok(x0.mul_scalar(alpha_prod_t_prev.sqrt()) + direction)
    }

    /// The last step's x̂₀ (its items 3-4, clipped when `clip_sample`): diffusers
    /// `DDIMSchedulerOutput(prev_sample, pred_original_sample)`.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.pred_x0.clone()
    }
}
