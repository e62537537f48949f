//! DPM-Solver++(2M): Lu et al., "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
//! Probabilistic Models", 2022, Algorithm 2 (multistep, data prediction), second-order "midpoint"
//! update, first order on the first step and (with `lower_order_final`) at the end.
//! Mirrors diffusers 0.42.1 `scheduling_dpmsolver_multistep.py` (`DPMSolverMultistepScheduler.set_timesteps`,
//! `.convert_model_output`, `.dpm_solver_first_order_update`, `.multistep_dpm_solver_second_order_update`,
//! `.step`) for `algorithm_type="dpmsolver++"`, `solver_type="midpoint"`, `solver_order` 1 or 2.

use crate::config::{BetaDefaults, PredictionType, SchedulerConfig, TimestepSpacing, check_steps};
use crate::numeric::{
    interp_index, karras_sigmas, log_f32, np_arange, np_linspace, sigma_to_t, sigmas_from_alphas_cumprod,
};
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "DPMSolverMultistepScheduler";

/// DPM-Solver++ multistep. Defaults for missing config keys are DPMSolverMultistepScheduler's: linear
/// betas, "linspace" spacing, solver_order 2, lower_order_final true, final σ 0.
#[derive(Debug, Clone)]
pub struct DpmSolverMultistepScheduler {
    timesteps: Vec<f64>,
    /// σ `[n + 1]`, float32, last one the final level.
    sigmas: Vec<f32>,
    prediction: PredictionType,
    solver_order: usize,
    lower_order_final: bool,
    euler_at_final: bool,
    final_sigma_zero: bool,
    /// x̂₀ of the previous step (the multistep history, order 2 needs one); after a `step`, that
    /// step's x̂₀, which `pred_original_sample` returns.
    prev_x0: Option<Tensor<4>>,
    lower_order_nums: usize,
    next_index: usize,
}

fn unsupported(key: &'static str, value: String, hint: &'static str) -> SchedulerError {
    SchedulerError::Unsupported { scheduler: NAME, key, value, hint }
}

impl DpmSolverMultistepScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let n = num_inference_steps;
        let num_train = config.num_train_timesteps();
        check_steps(n, num_train)?;
        config.reject_thresholding(NAME)?;
        let prediction = config.prediction_type()?;
        // diffusers maps "deis" to dpmsolver++ and the UniPC/DEIS solver types to midpoint.
        match config.algorithm_type.as_deref().unwrap_or("dpmsolver++") {
            "dpmsolver++" | "deis" => {}
            other => return Err(unsupported("algorithm_type", other.into(), "only dpmsolver++ is implemented")),
        }
        match config.solver_type.as_deref().unwrap_or("midpoint") {
            "midpoint" | "logrho" | "bh1" | "bh2" => {}
            other => return Err(unsupported("solver_type", other.into(), "only midpoint is implemented")),
        }
        let solver_order = config.solver_order.unwrap_or(2);
        if !(1..=2).contains(&solver_order) {
            return Err(unsupported("solver_order", solver_order.to_string(), "use 1 or 2 (DPM++ 2M)"));
        }
        for (key, on) in [
            ("use_lu_lambdas", config.use_lu_lambdas),
            ("use_exponential_sigmas", config.use_exponential_sigmas),
            ("use_beta_sigmas", config.use_beta_sigmas),
            ("use_flow_sigmas", config.use_flow_sigmas),
        ] {
            if on.unwrap_or(false) {
                return Err(unsupported(key, "true".into(), "use use_karras_sigmas or the default sigmas"));
            }
        }
        if let Some(v @ ("learned" | "learned_range")) = config.variance_type.as_deref() {
            return Err(unsupported("variance_type", v.into(), "Stable Diffusion UNets do not learn the variance"));
        }

        let mut alphas_cumprod = config.alphas_cumprod(&BetaDefaults::DDPM)?;
        if config.rescale_betas_zero_snr.unwrap_or(false) {
            *alphas_cumprod.last_mut().expect("num_train_timesteps >= 2") = 2f32.powi(-24);
        }
        // λ_t = log α_t − log σ_t (float32); clipping λ below lambda_min_clipped shortens the schedule.
        let lambda_min_clipped = config.lambda_min_clipped.unwrap_or(f64::NEG_INFINITY) as f32;
        let clipped_idx = alphas_cumprod
            .iter()
            .rev()
            .map(|a| (a.sqrt() as f64).ln() as f32 - ((1.0 - a).sqrt() as f64).ln() as f32)
            .take_while(|&l| l < lambda_min_clipped)
            .count();
        let last_timestep = num_train - clipped_idx;
        if last_timestep < 2 {
            return Err(SchedulerError::Config {
                reason: "lambda_min_clipped removes the whole schedule; lower it".into(),
            });
        }

        let raw: Vec<f64> = match config.timestep_spacing(TimestepSpacing::Linspace)? {
            // linspace(0, last - 1, n + 1).round()[::-1][:-1]
            TimestepSpacing::Linspace => np_linspace(0.0, (last_timestep - 1) as f64, n + 1, true)
                .into_iter()
                .rev()
                .take(n)
                .map(f64::round_ties_even)
                .collect(),
            // arange(0, n + 1) * (last // (n + 1)), [::-1][:-1], + steps_offset
            TimestepSpacing::Leading => {
                let ratio = (last_timestep / (n + 1)) as i64;
                let offset = config.steps_offset.unwrap_or(0);
                (1..=n as i64).rev().map(|i| (i * ratio + offset) as f64).collect()
            }
            // arange(last, 0, -T / n).round() - 1
            TimestepSpacing::Trailing => np_arange(last_timestep as f64, 0.0, -(num_train as f64 / n as f64))
                .into_iter()
                .map(|t| t.round_ties_even() - 1.0)
                .collect(),
        };
        let train_sigmas = sigmas_from_alphas_cumprod(&alphas_cumprod);
        let (timesteps, sigmas): (Vec<f64>, Vec<f64>) = if config.use_karras_sigmas.unwrap_or(false) {
            let log_sigmas = log_f32(&train_sigmas);
            // sigma_min/sigma_max are not DPMSolver init keys, but `from_config` keeps the source
            // config's keys (configuration_utils.py, hidden_config_dict), so an Euler config's count.
            let sigma_min = config.sigma_min.unwrap_or(train_sigmas[0] as f64);
            let sigma_max = config.sigma_max.unwrap_or(train_sigmas[num_train - 1] as f64);
            let sigmas = karras_sigmas(sigma_min, sigma_max, n);
            let cosine = config.beta_schedule.as_deref() == Some("squaredcos_cap_v2");
            let timesteps = sigmas
                .iter()
                .map(|&s| {
                    let t = sigma_to_t(s, &log_sigmas);
                    // rounded except for the cosine schedule; `.astype(np.int64)` then truncates.
                    if cosine { t.trunc() } else { t.round_ties_even() }
                })
                .collect();
            (timesteps, sigmas)
        } else {
            let sigmas = raw.iter().map(|&t| interp_index(t, &train_sigmas)).collect();
            (raw.iter().map(|t| t.trunc()).collect(), sigmas)
        };
        if let Some(&bad) = timesteps.iter().find(|&&t| t < 0.0 || t >= num_train as f64) {
            return Err(SchedulerError::Steps {
                steps: n,
                reason: format!(
                    "timestep {bad} falls outside the training schedule 0..{num_train}; lower steps_offset or the number of steps"
                ),
            });
        }
        let final_sigma_zero = !config.final_sigma_is_sigma_min()?;
        let sigma_last = if final_sigma_zero { 0.0 } else { ((1.0 - alphas_cumprod[0]) / alphas_cumprod[0]).sqrt() };
        let sigmas = sigmas.into_iter().map(|s| s as f32).chain(std::iter::once(sigma_last)).collect();
        Ok(Self {
            timesteps,
            sigmas,
            prediction,
            solver_order,
            lower_order_final: config.lower_order_final.unwrap_or(true),
            euler_at_final: config.euler_at_final.unwrap_or(false),
            final_sigma_zero,
            prev_x0: None,
            lower_order_nums: 0,
            next_index: 0,
        })
    }

    /// (α_t, σ_t) of the VP process at noise level σ (float32): α = 1/sqrt(σ² + 1), σ_t = σ·α.
    fn alpha_sigma(sigma: f32) -> (f32, f32) {
        let alpha = 1.0 / (sigma * sigma + 1.0).sqrt();
        (alpha, sigma * alpha)
    }

    /// λ = log α − log σ (half log-SNR); +∞ at σ = 0.
    fn lambda(alpha: f32, sigma: f32) -> f32 {
        alpha.ln() - sigma.ln()
    }

    /// x̂₀ from the model output (DPM-Solver++ works in data prediction).
    fn convert_model_output(&self, model_output: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[i]);
        match self.prediction {
            PredictionType::Epsilon => (sample - model_output.mul_scalar(sigma_t)).div_scalar(alpha_t),
            PredictionType::Sample => model_output,
            PredictionType::VPrediction => sample.mul_scalar(alpha_t) - model_output.mul_scalar(sigma_t),
        }
    }

    /// DPM-Solver++(1), i.e. DDIM in λ: x_t = (σ_t/σ_s)·x − α_t·(e^{−h} − 1)·x̂₀.
    fn first_order_update(&self, x0: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s, sigma_s) = Self::alpha_sigma(self.sigmas[i]);
        let h = Self::lambda(alpha_t, sigma_t) - Self::lambda(alpha_s, sigma_s);
        sample.mul_scalar(sigma_t / sigma_s) - x0.mul_scalar(alpha_t * ((-h).exp() - 1.0))
    }

    /// Multistep second-order midpoint update (Algorithm 2 with r₀ = h₀/h).
    fn second_order_update(&self, m0: Tensor<4>, m1: Tensor<4>, sample: Tensor<4>, i: usize) -> Tensor<4> {
        let (alpha_t, sigma_t) = Self::alpha_sigma(self.sigmas[i + 1]);
        let (alpha_s0, sigma_s0) = Self::alpha_sigma(self.sigmas[i]);
        let (alpha_s1, sigma_s1) = Self::alpha_sigma(self.sigmas[i - 1]);
        let (lambda_t, lambda_s0, lambda_s1) =
            (Self::lambda(alpha_t, sigma_t), Self::lambda(alpha_s0, sigma_s0), Self::lambda(alpha_s1, sigma_s1));
        let (h, h_0) = (lambda_t - lambda_s0, lambda_s0 - lambda_s1);
        let r0 = h_0 / h;
        let d1 = (m0.clone() - m1).mul_scalar(1.0 / r0);
        let coeff = alpha_t * ((-h).exp() - 1.0);
        sample.mul_scalar(sigma_t / sigma_s0) - m0.mul_scalar(coeff) - d1.mul_scalar(0.5 * coeff)
    }
}

impl Scheduler for DpmSolverMultistepScheduler {
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Steps must come in order 0, 1, 2, ...; step 0 starts a new trajectory (clears the history).
    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        let len = self.timesteps.len();
        check_step(step_index, len, &model_output, &sample, noise.as_ref())?;
        if step_index == 0 {
            self.prev_x0 = None;
            self.lower_order_nums = 0;
        } else if step_index != self.next_index {
            return Err(SchedulerError::OutOfOrder { scheduler: NAME, expected: self.next_index, got: step_index });
        }
        let i = step_index;
        // Lower-order steps at the end stabilise few-step sampling (diffusers: < 15 steps), and are
        // forced when the final σ is 0.
        let lower_order_final =
            i == len - 1 && (self.euler_at_final || (self.lower_order_final && len < 15) || self.final_sigma_zero);
        let x0 = self.convert_model_output(model_output, sample.clone(), i);
        let prev = match self.prev_x0.take() {
            // diffusers' `lower_order_second` only demotes third-order steps, so order 2 ignores it.
            Some(m1) if self.solver_order == 2 && self.lower_order_nums >= 1 && !lower_order_final => {
                self.second_order_update(x0.clone(), m1, sample, i)
            }
            _ => self.first_order_update(x0.clone(), sample, i),
        };
        self.prev_x0 = Some(x0);
        self.lower_order_nums = (self.lower_order_nums + 1).min(self.solver_order);
        self.next_index = i + 1;
        Ok(prev)
    }

    /// diffusers' `SchedulerOutput` of this scheduler has no `pred_original_sample`: the studio returns
    /// the data prediction x̂₀ of `convert_model_output` for the last step (what diffusers keeps as
    /// `model_outputs[-1]`), i.e. the newest entry of the multistep history.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.prev_x0.clone()
    }

    fn sigmas(&self) -> Option<&[f32]> {
        Some(&self.sigmas)
    }
}
