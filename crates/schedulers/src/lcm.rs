//! Latent Consistency Model multistep sampling: Luo et al., "Latent Consistency Models", 2023,
//! Algorithm 3, with the consistency boundary condition c_skip, c_out of Song et al. 2023 eq. 4.
//! Mirrors diffusers 0.42.1 `scheduling_lcm.py` (`LCMScheduler.set_timesteps`,
//! `.get_scalings_for_boundary_condition_discrete`, `.step`).

use crate::config::{BetaDefaults, PredictionType, SchedulerConfig, check_steps};
use crate::ddim::to_train_indices;
use crate::numeric::np_linspace;
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "LCMScheduler";

/// LCM (stochastic: every step but the last needs fresh N(0, 1) noise). Defaults for missing config
/// keys are LCMScheduler's: scaled-linear betas 0.00085..0.012, `original_inference_steps` 50,
/// `timestep_scaling` 10, `clip_sample` false. `timestep_spacing`, `steps_offset` and
/// `set_alpha_to_one` have no effect, as in diffusers.
#[derive(Debug, Clone)]
pub struct LcmScheduler {
    alphas_cumprod: Vec<f32>,
    timesteps_int: Vec<usize>,
    timesteps: Vec<f64>,
    prediction: PredictionType,
    clip: Option<f32>,
    timestep_scaling: f32,
    /// f_θ(x, t) of the last step (diffusers `LCMSchedulerOutput.denoised`).
    denoised: Option<Tensor<4>>,
}

impl LcmScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let n = num_inference_steps;
        let num_train = config.num_train_timesteps();
        check_steps(n, num_train)?;
        config.reject_thresholding(NAME)?;
        let original_steps = config.original_inference_steps.unwrap_or(50);
        if original_steps == 0 || original_steps > num_train {
            return Err(SchedulerError::Config {
                reason: format!(
                    "original_inference_steps is {original_steps}; it must lie in 1..={num_train} (num_train_timesteps)"
                ),
            });
        }
        if n > original_steps {
            return Err(SchedulerError::Steps {
                steps: n,
                reason: format!(
                    "LCM picks its steps from the {original_steps}-step schedule it was distilled on (original_inference_steps); ask for at most {original_steps}"
                ),
            });
        }
        let alphas_cumprod = config.alphas_cumprod(&BetaDefaults::LCM)?;
        // LCM's training schedule: every k-th timestep, k = T // original_steps, ending at T - 1 ...
        let k = (num_train / original_steps) as i64;
        let origin: Vec<i64> = (1..=original_steps as i64).rev().map(|i| i * k - 1).collect();
        // ... of which n are taken evenly: floor(linspace(0, len, n, endpoint=False)).
        let raw: Vec<i64> =
            np_linspace(0.0, origin.len() as f64, n, false).into_iter().map(|x| origin[x.floor() as usize]).collect();
        let timesteps_int = to_train_indices(&raw, num_train)?;
        Ok(Self {
            alphas_cumprod,
            timesteps: timesteps_int.iter().map(|&t| t as f64).collect(),
            timesteps_int,
            prediction: config.prediction_type()?,
            clip: config.clip_sample.unwrap_or(false).then(|| config.clip_sample_range.unwrap_or(1.0) as f32),
            timestep_scaling: config.timestep_scaling.unwrap_or(10.0) as f32,
            denoised: None,
        })
    }

    /// (c_skip, c_out) at timestep `t` with σ_data = 0.5, in float32 like torch (the int64 timestep
    /// tensor times a Python float is float32; `0.25 / x` is `x.reciprocal() * 0.25`).
    fn boundary_scalings(&self, t: usize) -> (f32, f32) {
        let scaled = t as f32 * self.timestep_scaling;
        let denom = scaled * scaled + 0.25;
        ((1.0 / denom) * 0.25, scaled / denom.sqrt())
    }
}

impl Scheduler for LcmScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    fn needs_noise(&self) -> bool {
        true
    }

    /// `noise` is required at every step but the last (where it is ignored).
    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        let len = self.timesteps_int.len();
        check_step(step_index, len, &model_output, &sample, noise.as_ref())?;
        let t = self.timesteps_int[step_index];
        // 1. the next timestep; the last step "steps" to itself (its output is the denoised sample).
        let prev_t = self.timesteps_int.get(step_index + 1).copied().unwrap_or(t);
        // 2. ᾱ and β̄. diffusers falls back to `final_alpha_cumprod` for a negative previous timestep,
        //    which only custom timestep lists can produce, so `set_alpha_to_one` never matters here.
        let alpha_prod_t = self.alphas_cumprod[t];
        let alpha_prod_t_prev = self.alphas_cumprod[prev_t];
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        // 3. consistency boundary scalings
        let (c_skip, c_out) = self.boundary_scalings(t);
        // 4. x̂₀
        let mut x0 = match self.prediction {
            PredictionType::Epsilon => {
                (sample.clone() - model_output.mul_scalar(beta_prod_t.sqrt())).div_scalar(alpha_prod_t.sqrt())
            }
            PredictionType::Sample => model_output,
            PredictionType::VPrediction => {
                sample.clone().mul_scalar(alpha_prod_t.sqrt()) - model_output.mul_scalar(beta_prod_t.sqrt())
            }
        };
        if let Some(r) = self.clip {
            x0 = x0.clamp(-r, r);
        }
        // 5. f_θ(x, t) = c_out·x̂₀ + c_skip·x
        let denoised = x0.mul_scalar(c_out) + sample.mul_scalar(c_skip);
        // 6. re-noise to the next timestep (Algorithm 3), except after the last step.
        if step_index + 1 == len {
            self.denoised = Some(denoised.clone());
            return Ok(denoised);
        }
        let noise = noise.ok_or(SchedulerError::MissingNoise { scheduler: NAME, index: step_index })?;
        self.denoised = Some(denoised.clone());
        Ok(denoised.mul_scalar(alpha_prod_t_prev.sqrt()) + noise.mul_scalar(beta_prod_t_prev.sqrt()))
    }

    /// The consistency function's output f_θ(x, t) = c_out·x̂₀ + c_skip·x of the last step (not the
    /// raw x̂₀ of `step`'s item 4): diffusers `LCMSchedulerOutput(prev_sample, denoised)`.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.denoised.clone()
    }
}
