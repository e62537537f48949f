//! PNDM: Liu, Ren, Lin & Zhao, "Pseudo Numerical Methods for Diffusion Models on Manifolds", ICLR 2022
//! (arXiv 2202.09778). The transfer part φ is eq. 9; the gradient part is either F-PNDM's Runge-Kutta
//! warm-up (eq. 13, three 4-evaluation steps) followed by the linear multistep method (eq. 12, Algorithm
//! 2), or, with `skip_prk_steps`, crowsonkb's PLMS (CompVis/latent-diffusion PR 51): a Heun-like
//! second evaluation on the first step, then Adams-Bashforth of order 2, 3 and 4.
//! Mirrors diffusers 0.42.1 `scheduling_pndm.py` (`PNDMScheduler.set_timesteps`, `.step_prk`,
//! `.step_plms`, `._get_prev_sample`), the default scheduler of the SD 1.x checkpoints
//! (`skip_prk_steps: true`, `steps_offset: 1`, `set_alpha_to_one: false`).
//!
//! Both variants evaluate the model more often than `num_inference_steps`, so `timesteps()` repeats
//! entries and the pipeline runs the UNet once per entry, like diffusers:
//! - PLMS: `n + 1` entries, the second one repeated: `[751, 501, 501, 251, 1]` for 4 "leading" steps.
//!   Step 0 takes a plain DDIM-like step 751 → 501 with ε(751) and keeps x₇₅₁; step 1 (the model ran
//!   at the repeated 501) redoes 751 → 501 from x₇₅₁ with (ε(751) + ε(501)) / 2.
//! - PRK: `n + 9` entries, 12 half-step Runge-Kutta evaluations over the three highest timesteps, then
//!   `n − 3` multistep ones; it needs at least 4 steps (diffusers fails to broadcast below that).

use crate::config::{BetaDefaults, PredictionType, SchedulerConfig, TimestepSpacing, check_steps};
use crate::ddim::to_train_indices;
use crate::numeric::{leading, np_linspace, trailing};
use crate::{Scheduler, SchedulerError, check_step};
use burn::tensor::Tensor;

const NAME: &str = "PNDMScheduler";

/// PRK evaluations before the multistep phase: 3 Runge-Kutta steps × 4 (diffusers `pndm_order` = 4).
const PRK_EVALS: usize = 12;

/// PNDM (PLMS or F-PNDM). Defaults for missing config keys are PNDMScheduler's: linear betas
/// 1e-4..0.02, `skip_prk_steps` false, `set_alpha_to_one` false, `steps_offset` 0, "leading"
/// spacing. Keys PNDMScheduler does not have (`clip_sample`, `thresholding`, `rescale_betas_zero_snr`
/// ...) are ignored, as diffusers' `from_config` ignores them.
#[derive(Debug, Clone)]
pub struct PndmScheduler {
    /// ᾱ `[num_train_timesteps]`, float32 like diffusers.
    alphas_cumprod: Vec<f32>,
    /// ᾱ past the end of the schedule: 1 (`set_alpha_to_one`) or ᾱ₀.
    final_alpha_cumprod: f32,
    /// Every model evaluation's timestep, PRK ones first (diffusers `timesteps`).
    timesteps_int: Vec<usize>,
    timesteps: Vec<f64>,
    /// 12 with the Runge-Kutta warm-up, 0 for PLMS.
    num_prk: usize,
    /// `num_train_timesteps // num_inference_steps`: the multistep stride for every spacing.
    step_ratio: i64,
    prediction: PredictionType,
    /// The last (up to 4) raw model outputs of full steps, oldest first (diffusers `ets`).
    ets: Vec<Tensor<4>>,
    /// The sample the current step started from (diffusers `cur_sample`): PLMS keeps x_t of step 0
    /// for the corrected step 1; PRK keeps the start of each 4-evaluation step.
    cur_sample: Option<Tensor<4>>,
    /// Runge-Kutta accumulator ε₁/6 + ε₂/3 + ε₃/3 (diffusers `cur_model_output`).
    cur_model_output: Option<Tensor<4>>,
    /// diffusers `counter`: the next step index expected.
    counter: usize,
    /// x̂₀ of the last step, the studio's definition (diffusers' `step` returns none): see `x0_at`.
    pred_x0: Option<Tensor<4>>,
}

fn unsupported(key: &'static str, value: String, hint: &'static str) -> SchedulerError {
    SchedulerError::Unsupported { scheduler: NAME, key, value, hint }
}

impl PndmScheduler {
    pub fn new(config: &SchedulerConfig, num_inference_steps: usize) -> Result<Self, SchedulerError> {
        let n = num_inference_steps;
        let num_train = config.num_train_timesteps();
        check_steps(n, num_train)?;
        let prediction = match config.prediction_type()? {
            PredictionType::Sample => {
                return Err(unsupported(
                    "prediction_type",
                    "sample".into(),
                    "PNDM takes epsilon or v_prediction models (diffusers raises too); pick DDIM or Euler",
                ));
            }
            p => p,
        };
        // PNDMScheduler has no zero-SNR option: diffusers' from_config drops the key, so do we.
        let plain = SchedulerConfig { rescale_betas_zero_snr: None, ..config.clone() };
        let alphas_cumprod = plain.alphas_cumprod(&BetaDefaults::DDPM)?;
        let final_alpha_cumprod = if config.set_alpha_to_one.unwrap_or(false) { 1.0 } else { alphas_cumprod[0] };
        let step_ratio = (num_train / n) as i64;

        // Ascending, like diffusers' `_timesteps`.
        let ascending: Vec<i64> = match config.timestep_spacing(TimestepSpacing::Leading)? {
            TimestepSpacing::Linspace => np_linspace(0.0, (num_train - 1) as f64, n, true)
                .into_iter()
                .map(|t| t.round_ties_even() as i64)
                .collect(),
            TimestepSpacing::Leading => {
                leading(num_train, n, config.steps_offset.unwrap_or(0)).into_iter().rev().collect()
            }
            // round(arange(T, 0, -T/n))[::-1] - 1
            TimestepSpacing::Trailing => trailing(num_train, num_train, n).into_iter().rev().collect(),
        };
        let len = ascending.len();
        let (raw, num_prk): (Vec<i64>, usize) = if config.skip_prk_steps.unwrap_or(false) {
            // concat(ts[:-1], ts[-2:-1], ts[-1:])[::-1]: the second-highest timestep twice.
            let mut plms = ascending[..len - 1].to_vec();
            plms.extend_from_slice(&ascending[len.saturating_sub(2)..len - 1]);
            plms.push(ascending[len - 1]);
            plms.reverse();
            (plms, 0)
        } else {
            if len < 4 {
                return Err(SchedulerError::Steps {
                    steps: n,
                    reason: "PNDM's Runge-Kutta warm-up (skip_prk_steps = false) needs at least 4 steps; ask for more \
                             or set skip_prk_steps to true in the scheduler config (PLMS, what Stable Diffusion uses)"
                        .into(),
                });
            }
            // (ts[-4:].repeat(2) + tile([0, T // n // 2], 4))[:-1].repeat(2)[1:-1][::-1]: each of the three
            // highest intervals as t, t − δ/2, t − δ/2, t − δ.
            let half = step_ratio / 2;
            let prk: Vec<i64> = ascending[len - 4..].iter().flat_map(|&t| [t, t + half]).collect();
            let doubled: Vec<i64> = prk[..prk.len() - 1].iter().flat_map(|&t| [t, t]).collect();
            let mut all: Vec<i64> = doubled[1..doubled.len() - 1].iter().rev().copied().collect();
            debug_assert_eq!(all.len(), PRK_EVALS);
            all.extend(ascending[..len - 3].iter().rev());
            (all, PRK_EVALS)
        };
        let timesteps_int = to_train_indices(&raw, num_train)?;
        Ok(Self {
            alphas_cumprod,
            final_alpha_cumprod,
            timesteps: timesteps_int.iter().map(|&t| t as f64).collect(),
            timesteps_int,
            num_prk,
            step_ratio,
            prediction,
            ets: Vec::with_capacity(4),
            cur_sample: None,
            cur_model_output: None,
            counter: 0,
            pred_x0: None,
        })
    }

    /// ᾱ at a timestep the update derives (t + δ, t − δ/2 ...); diffusers would raise IndexError past the end.
    fn alpha_at(&self, t: i64) -> Result<f32, SchedulerError> {
        if t < 0 {
            return Ok(self.final_alpha_cumprod);
        }
        self.alphas_cumprod.get(t as usize).copied().ok_or_else(|| SchedulerError::Steps {
            steps: self.timesteps.len(),
            reason: format!(
                "PNDM steps through timestep {t}, outside the training schedule 0..{}",
                self.alphas_cumprod.len()
            ),
        })
    }

    /// x̂₀ of a step, the studio's definition (diffusers' PNDM `step` returns no `pred_original_sample`):
    /// the DDIM estimate (Song et al. 2021, eq. 12's "predicted x0") at the step's own timestep `t` from the
    /// sample the step receives and the raw model output of this evaluation, not the PLMS/RK combination:
    /// x̂₀ = (x_t − sqrt(1 − ᾱ_t)·ε) / sqrt(ᾱ_t), for v: sqrt(ᾱ_t)·x_t − sqrt(1 − ᾱ_t)·v (as
    /// `DDIMScheduler.step` computes them).
    fn x0_at(&self, model_output: Tensor<4>, sample: Tensor<4>, t: usize) -> Tensor<4> {
        let alpha_prod_t = self.alphas_cumprod[t];
        let beta_prod_t = 1.0 - alpha_prod_t;
        match self.prediction {
            PredictionType::Epsilon => {
                (sample - model_output.mul_scalar(beta_prod_t.sqrt())).div_scalar(alpha_prod_t.sqrt())
            }
            PredictionType::VPrediction => {
                sample.mul_scalar(alpha_prod_t.sqrt()) - model_output.mul_scalar(beta_prod_t.sqrt())
            }
            // Rejected in `new`; the x0-predicting analogue.
            PredictionType::Sample => model_output,
        }
    }

    /// x_{t−δ} = φ(x_t, ε, t, t − δ), eq. 9 of the PNDM paper, in diffusers' float32 operation order.
    /// `prev_t` < 0 means past the end (final ᾱ).
    fn prev_sample(
        &self,
        sample: Tensor<4>,
        t: i64,
        prev_t: i64,
        model_output: Tensor<4>,
    ) -> Result<Tensor<4>, SchedulerError> {
        if t < 0 {
            return Err(SchedulerError::Steps {
                steps: self.timesteps.len(),
                reason: format!("PNDM reached timestep {t}"),
            });
        }
        let alpha_prod_t = self.alpha_at(t)?;
        let alpha_prod_t_prev = self.alpha_at(prev_t)?;
        let beta_prod_t = 1.0 - alpha_prod_t;
        let beta_prod_t_prev = 1.0 - alpha_prod_t_prev;
        // v = α·ε − σ·x₀  ⇒  ε = sqrt(ᾱ)·v + sqrt(1 − ᾱ)·x_t
        let eps = match self.prediction {
            PredictionType::VPrediction => {
                model_output.mul_scalar(alpha_prod_t.sqrt()) + sample.clone().mul_scalar(beta_prod_t.sqrt())
            }
            _ => model_output,
        };
        // (ᾱ_{t−δ} − ᾱ_t) / (sqrt(ᾱ_t)·(sqrt(ᾱ_{t−δ}) + sqrt(ᾱ_t))) + 1 = sqrt(ᾱ_{t−δ} / ᾱ_t)
        let sample_coeff = (alpha_prod_t_prev / alpha_prod_t).sqrt();
        let denom = alpha_prod_t * beta_prod_t_prev.sqrt() + (alpha_prod_t * beta_prod_t * alpha_prod_t_prev).sqrt();
        Ok(sample.mul_scalar(sample_coeff) - eps.mul_scalar(alpha_prod_t_prev - alpha_prod_t).div_scalar(denom))
    }

    /// One Runge-Kutta evaluation (`step_prk`): counter mod 4 = 0, 1, 2, 3 are k₁..k₄ of RK4 over
    /// [t, t − δ] with half steps δ/2 (eq. 13).
    fn step_prk(&mut self, model_output: Tensor<4>, sample: Tensor<4>) -> Result<Tensor<4>, SchedulerError> {
        let c = self.counter;
        let timestep = self.timesteps_int[c] as i64;
        let half = self.step_ratio / 2;
        let prev_t = timestep - if c % 2 == 1 { 0 } else { half };
        let t = self.timesteps_int[c / 4 * 4] as i64;
        let eps = match c % 4 {
            0 => {
                self.cur_model_output = Some(model_output.clone().mul_scalar(1.0 / 6.0));
                self.ets.push(model_output.clone());
                self.cur_sample = Some(sample.clone());
                model_output
            }
            1 | 2 => {
                let third = model_output.clone().mul_scalar(1.0 / 3.0);
                self.cur_model_output = Some(match self.cur_model_output.take() {
                    Some(acc) => acc + third,
                    None => third,
                });
                model_output
            }
            _ => {
                let sixth = model_output.mul_scalar(1.0 / 6.0);
                match self.cur_model_output.take() {
                    Some(acc) => acc + sixth,
                    None => sixth,
                }
            }
        };
        let cur_sample = self.cur_sample.clone().unwrap_or(sample);
        self.prev_sample(cur_sample, t, prev_t, eps)
    }

    /// One linear multistep evaluation (`step_plms`).
    fn step_plms(&mut self, model_output: Tensor<4>, sample: Tensor<4>) -> Result<Tensor<4>, SchedulerError> {
        let c = self.counter;
        let mut timestep = self.timesteps_int[c] as i64;
        let mut prev_t = timestep - self.step_ratio;
        let mut sample = sample;
        if c != 1 {
            if self.ets.len() > 3 {
                self.ets.remove(0);
            }
            self.ets.push(model_output.clone());
        } else {
            // PLMS's corrector: redo step 0's interval t + δ → t from the kept sample.
            prev_t = timestep;
            timestep += self.step_ratio;
        }
        let e = &self.ets;
        let eps = match e.len() {
            1 if c == 0 => {
                self.cur_sample = Some(sample.clone());
                model_output
            }
            1 if c == 1 => {
                sample = self.cur_sample.take().unwrap_or(sample);
                (model_output + e[0].clone()).div_scalar(2.0)
            }
            // Adams-Bashforth of order 2, 3, 4 (eq. 12).
            2 => (e[1].clone().mul_scalar(3.0) - e[0].clone()).div_scalar(2.0),
            3 => (e[2].clone().mul_scalar(23.0) - e[1].clone().mul_scalar(16.0) + e[0].clone().mul_scalar(5.0))
                .div_scalar(12.0),
            _ => (e[3].clone().mul_scalar(55.0) - e[2].clone().mul_scalar(59.0) + e[1].clone().mul_scalar(37.0)
                - e[0].clone().mul_scalar(9.0))
            .mul_scalar(1.0 / 24.0),
        };
        self.prev_sample(sample, timestep, prev_t, eps)
    }
}

impl Scheduler for PndmScheduler {
    /// `n + 1` timesteps for PLMS, `n + 9` for PRK (see the module doc): one per model evaluation.
    fn timesteps(&self) -> &[f64] {
        &self.timesteps
    }

    /// Steps must come in order 0, 1, 2, ... over `timesteps()`; step 0 starts a new trajectory.
    fn step(
        &mut self,
        model_output: Tensor<4>,
        step_index: usize,
        sample: Tensor<4>,
        noise: Option<Tensor<4>>,
    ) -> Result<Tensor<4>, SchedulerError> {
        check_step(step_index, self.timesteps_int.len(), &model_output, &sample, noise.as_ref())?;
        if step_index == 0 {
            self.ets.clear();
            self.cur_sample = None;
            self.cur_model_output = None;
            self.pred_x0 = None;
        } else if step_index != self.counter {
            return Err(SchedulerError::OutOfOrder { scheduler: NAME, expected: self.counter, got: step_index });
        }
        self.counter = step_index;
        let x0 = self.x0_at(model_output.clone(), sample.clone(), self.timesteps_int[step_index]);
        let prev = if step_index < self.num_prk {
            self.step_prk(model_output, sample)?
        } else {
            self.step_plms(model_output, sample)?
        };
        self.pred_x0 = Some(x0);
        self.counter += 1;
        Ok(prev)
    }

    /// The studio's x̂₀ of the last evaluation (see `x0_at`); diffusers' `step` returns none.
    fn pred_original_sample(&self) -> Option<Tensor<4>> {
        self.pred_x0.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(json: &str) -> SchedulerConfig {
        SchedulerConfig::from_json(json).unwrap()
    }

    #[test]
    fn plms_repeats_the_second_timestep() {
        let sd15 = config(
            r#"{"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012,
            "skip_prk_steps": true, "steps_offset": 1, "set_alpha_to_one": false}"#,
        );
        assert_eq!(PndmScheduler::new(&sd15, 4).unwrap().timesteps, [751.0, 501.0, 501.0, 251.0, 1.0]);
        assert_eq!(PndmScheduler::new(&sd15, 2).unwrap().timesteps, [501.0, 1.0, 1.0]);
        assert_eq!(PndmScheduler::new(&sd15, 1).unwrap().timesteps, [1.0]);
    }

    #[test]
    fn prk_needs_four_steps() {
        let prk = config(r#"{"steps_offset": 1}"#);
        let s = PndmScheduler::new(&prk, 4).unwrap();
        assert_eq!(
            s.timesteps,
            [751.0, 626.0, 626.0, 501.0, 501.0, 376.0, 376.0, 251.0, 251.0, 126.0, 126.0, 1.0, 1.0]
        );
        for n in 1..4 {
            let e = PndmScheduler::new(&prk, n).unwrap_err();
            assert!(matches!(e, SchedulerError::Steps { .. }) && e.to_string().contains("skip_prk_steps"), "{e}");
        }
    }
}
