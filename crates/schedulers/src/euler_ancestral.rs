//! Ancestral Euler sampling: an Euler step down to σ_down followed by fresh noise of std σ_up, with
//! σ_down² + σ_up² = σ_next² (k-diffusion `sample_euler_ancestral`, Karras et al. 2022 §3).
//! Mirrors diffusers 0.42.1 `scheduling_euler_ancestral_discrete.py`
//! (`EulerAncestralDiscreteScheduler.set_timesteps`, `.step`).

use crate::config::{PredictionType, SchedulerConfig, TimestepSpacing, check_steps};
use crate::euler::{init_noise_sigma, spaced_timesteps_f32, train_sigmas};
use crate::numeric::interp_index;
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "EulerAncestralDiscreteScheduler";

/// Euler ancestral (stochastic: every `step` needs fresh N(0, 1) noise). Defaults for missing config
/// keys are EulerAncestralDiscreteScheduler's: linear betas, "linspace" spacing.
#[derive(Debug, Clone)]
pub struct EulerAncestralDiscreteScheduler {
    timesteps: Vec<f64>,
    /// σ `[n + 1]`, float32, last one 0.
    sigmas: Vec<f32>,
    init_noise_sigma: f64,
    prediction: PredictionType,
    /// x̂₀ of the last step (diffusers `EulerAncestralDiscreteSchedulerOutput.pred_original_sample`).
    pred_x0: Option<Tensor<4>>,
}

impl EulerAncestralDiscreteScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let n = num_inference_steps;
        check_steps(n, config.num_train_timesteps())?;
        let prediction = config.prediction_type()?;
        if prediction == PredictionType::Sample {
            // diffusers raises NotImplementedError("prediction_type not implemented yet: sample") in step().
            return Err(SchedulerError::Unsupported {
                scheduler: NAME,
                key: "prediction_type",
                value: "sample".into(),
                hint: "diffusers has no ancestral Euler step for x0-predicting models either; use euler or ddim",
            });
        }
        let spacing = config.timestep_spacing(TimestepSpacing::Linspace)?;
        let (train_sigmas, _) = train_sigmas(config)?;
        let timesteps: Vec<f64> = spaced_timesteps_f32(config, n)?.into_iter().map(f64::from).collect();
        let sigmas: Vec<f32> =
            timesteps.iter().map(|&t| interp_index(t, &train_sigmas) as f32).chain(std::iter::once(0.0)).collect();
        Ok(Self { init_noise_sigma: init_noise_sigma(&sigmas, spacing), timesteps, sigmas, prediction, pred_x0: None })
    }
}

impl Scheduler for EulerAncestralDiscreteScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn init_noise_sigma(&self) -> f64 {
        self.init_noise_sigma
    }

    // Copied from crates/schedulers/src/euler.rs::EulerDiscreteScheduler::scale_model_input
    /// x / sqrt(σ² + 1). A `step_index` past the schedule uses the last σ.
    fn scale_model_input(&self, sample: Tensor<4>, step_index: usize) -> Tensor<4> {
        let sigma = self.sigmas[step_index.min(self.timesteps.len() - 1)];
        sample.div_scalar((sigma * sigma + 1.0).sqrt())
    }

    fn needs_noise(&self) -> bool {
        true
    }

    /// `noise` is required at every step (diffusers draws it even at the last step, where σ_up = 0).
    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        check_step(step_index, self.timesteps.len(), &model_output, &sample, noise.as_ref())?;
        let noise = noise.ok_or(SchedulerError::MissingNoise { scheduler: NAME, index: step_index })?;
        let sigma = self.sigmas[step_index];
        let x0 = match self.prediction {
            PredictionType::Epsilon => sample.clone() - model_output.mul_scalar(sigma),
            PredictionType::VPrediction => {
                let s2 = sigma * sigma + 1.0;
                model_output.mul_scalar(-sigma / s2.sqrt()) + sample.clone().div_scalar(s2)
            }
            PredictionType::Sample => unreachable!("rejected in new()"),
        };
        let (sigma_from, sigma_to) = (sigma, self.sigmas[step_index + 1]);
        let sigma_up =
            (sigma_to * sigma_to * (sigma_from * sigma_from - sigma_to * sigma_to) / (sigma_from * sigma_from)).sqrt();
        let sigma_down = (sigma_to * sigma_to - sigma_up * sigma_up).sqrt();
        self.pred_x0 = Some(x0.clone());
        let derivative = (sample.clone() - x0).div_scalar(sigma);
        let prev = sample + derivative.mul_scalar(sigma_down - sigma);
        Ok(prev + noise.mul_scalar(sigma_up))
    }

    /// The x̂₀ of the last step, before the Euler step and the noise: diffusers
    /// `EulerAncestralDiscreteSchedulerOutput(prev_sample, pred_original_sample)`.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.pred_x0.clone()
    }

    fn sigmas(&self) -> Option<&[f32]> {
        Some(&self.sigmas)
    }
}
