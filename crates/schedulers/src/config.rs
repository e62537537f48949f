//! One configuration for every scheduler, read from any diffusers `scheduler_config.json`
//! (PNDMScheduler, DDIMScheduler, EulerDiscreteScheduler, DPMSolverMultistepScheduler, LCMScheduler ...),
//! like diffusers' `Scheduler.from_config(other.config)`.
//!
//! Every key is optional: a key missing from the file takes the default of the scheduler being built,
//! not of the class that wrote the file. diffusers does the same: `from_config` drops the keys listed in
//! `_use_default_values` (configuration_utils.py, `ConfigMixin.extract_init_dict`), so the real SD 1.5
//! PNDM config (no `timestep_spacing`) gives DDIM "leading" and Euler "linspace".
//!
//! The noise schedule (`betas`, `alphas_cumprod`) is computed in float32 exactly as diffusers' torch code
//! does (scheduling_ddim.py, `DDIMScheduler.__init__`, `betas_for_alpha_bar`, `rescale_zero_terminal_snr`).

use crate::SchedulerError;
use crate::numeric::torch_linspace_f32;
use serde::{Deserialize, Deserializer};

/// The keys of diffusers' scheduler configs that our schedulers read; unknown keys are ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// The class that wrote the file (informative only).
    #[serde(rename = "_class_name")]
    pub class_name: Option<String>,
    /// u64, not usize: a hostile value must get this crate's message on wasm32 too, not serde's.
    pub num_train_timesteps: Option<u64>,
    #[serde(deserialize_with = "lenient_f64")]
    pub beta_start: Option<f64>,
    #[serde(deserialize_with = "lenient_f64")]
    pub beta_end: Option<f64>,
    /// `linear`, `scaled_linear` or `squaredcos_cap_v2`.
    pub beta_schedule: Option<String>,
    /// Explicit betas `[num_train_timesteps]`; wins over `beta_schedule`.
    pub trained_betas: Option<Vec<f64>>,
    /// `epsilon`, `v_prediction` or `sample`.
    pub prediction_type: Option<String>,
    /// `leading`, `trailing` or `linspace`.
    pub timestep_spacing: Option<String>,
    pub steps_offset: Option<i64>,
    pub rescale_betas_zero_snr: Option<bool>,
    // DDIM / LCM
    pub set_alpha_to_one: Option<bool>,
    pub clip_sample: Option<bool>,
    #[serde(deserialize_with = "lenient_f64")]
    pub clip_sample_range: Option<f64>,
    pub thresholding: Option<bool>,
    // Euler / DPM-Solver
    pub interpolation_type: Option<String>,
    pub timestep_type: Option<String>,
    pub use_karras_sigmas: Option<bool>,
    pub use_exponential_sigmas: Option<bool>,
    pub use_beta_sigmas: Option<bool>,
    pub use_lu_lambdas: Option<bool>,
    pub use_flow_sigmas: Option<bool>,
    #[serde(deserialize_with = "lenient_f64")]
    pub sigma_min: Option<f64>,
    #[serde(deserialize_with = "lenient_f64")]
    pub sigma_max: Option<f64>,
    /// `zero` or `sigma_min`.
    pub final_sigmas_type: Option<String>,
    // DPM-Solver
    pub solver_order: Option<usize>,
    pub algorithm_type: Option<String>,
    pub solver_type: Option<String>,
    pub lower_order_final: Option<bool>,
    pub euler_at_final: Option<bool>,
    #[serde(deserialize_with = "lenient_f64")]
    pub lambda_min_clipped: Option<f64>,
    pub variance_type: Option<String>,
    // LCM
    pub original_inference_steps: Option<usize>,
    #[serde(deserialize_with = "lenient_f64")]
    pub timestep_scaling: Option<f64>,
    // PNDM
    /// PLMS (true, SD 1.x) instead of the Runge-Kutta warm-up (false, PNDMScheduler's default).
    pub skip_prk_steps: Option<bool>,
}

/// Python's `json.dumps` writes `-Infinity` / `Infinity` / `NaN` (DPMSolver's `lambda_min_clipped`
/// default is `-inf`), which is not JSON: quote them so serde can read them as strings.
fn quote_non_finite(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let (mut in_string, mut escaped) = (false, false);
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if let Some(tok) = ["-Infinity", "Infinity", "NaN"].into_iter().find(|t| rest.starts_with(t)) {
            out.push('"');
            out.push_str(tok);
            out.push('"');
            rest = &rest[tok.len()..];
            continue;
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn lenient_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrText {
        Num(f64),
        Text(String),
    }
    match Option::<NumOrText>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrText::Num(v)) => Ok(Some(v)),
        Some(NumOrText::Text(s)) => match s.as_str() {
            "-Infinity" => Ok(Some(f64::NEG_INFINITY)),
            "Infinity" => Ok(Some(f64::INFINITY)),
            "NaN" => Ok(Some(f64::NAN)),
            other => Err(serde::de::Error::custom(format!("expected a number, found the string \"{other}\""))),
        },
    }
}

/// What the model predicts (diffusers `prediction_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PredictionType {
    /// The added noise ε (SD 1.x, SD 2.x base at 512 px).
    Epsilon,
    /// v = α·ε − σ·x₀ (SD 2.x at 768 px), Imagen Video §2.4.
    VPrediction,
    /// x₀ directly.
    Sample,
}

/// How inference timesteps are spread over the training schedule (Table 2 of "Common Diffusion Noise
/// Schedules and Sample Steps are Flawed", arXiv 2305.08891).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestepSpacing {
    Leading,
    Trailing,
    Linspace,
}

/// The beta defaults of the scheduler being built, used for keys missing from the config.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BetaDefaults {
    pub beta_start: f64,
    pub beta_end: f64,
    pub beta_schedule: &'static str,
}

impl BetaDefaults {
    /// DDIM, Euler, Euler ancestral, DPM-Solver (DDPM's linear schedule).
    pub const DDPM: Self = Self { beta_start: 0.0001, beta_end: 0.02, beta_schedule: "linear" };
    /// LCMScheduler (Stable Diffusion's scaled-linear schedule).
    pub const LCM: Self = Self { beta_start: 0.00085, beta_end: 0.012, beta_schedule: "scaled_linear" };
}

/// Most training timesteps a scheduler config may name.
pub const MAX_TRAIN_TIMESTEPS: usize = 100_000;

impl SchedulerConfig {
    /// Parses the text of a `scheduler_config.json`.
    pub fn from_json(text: &str) -> Result<Self, SchedulerError> {
        let config: Self = serde_json::from_str(&quote_non_finite(text))
            .map_err(|e| SchedulerError::Config { reason: e.to_string() })?;
        // The schedule is built as a table of this many betas: a hostile value would exhaust
        // memory (found by the parser fuzzer). Diffusion models train with 1000.
        if let Some(n) = config.num_train_timesteps.filter(|&n| n > MAX_TRAIN_TIMESTEPS as u64) {
            return Err(SchedulerError::Config {
                reason: format!(
                    "num_train_timesteps is {n}; the studio accepts at most {MAX_TRAIN_TIMESTEPS} (Stable Diffusion uses 1000)"
                ),
            });
        }
        // What every scheduler builds from: checked when the model loads, not at its first
        // image (a model the page accepted would otherwise replace the loaded one and then fail).
        config.betas(&BetaDefaults::DDPM)?;
        config.prediction_type()?;
        Ok(config)
    }

    /// `num_train_timesteps`, 1000 when missing (every diffusers scheduler's default).
    pub fn num_train_timesteps(&self) -> usize {
        self.num_train_timesteps.map_or(1000, |n| n as usize)
    }

    /// `prediction_type`, `epsilon` when missing.
    pub fn prediction_type(&self) -> Result<PredictionType, SchedulerError> {
        match self.prediction_type.as_deref().unwrap_or("epsilon") {
            "epsilon" => Ok(PredictionType::Epsilon),
            "v_prediction" => Ok(PredictionType::VPrediction),
            "sample" | "original_sample" => Ok(PredictionType::Sample),
            other => Err(SchedulerError::InvalidValue {
                key: "prediction_type",
                value: other.into(),
                expected: "epsilon, v_prediction, sample",
            }),
        }
    }

    /// `timestep_spacing`, with the building scheduler's default when missing.
    pub fn timestep_spacing(&self, default: TimestepSpacing) -> Result<TimestepSpacing, SchedulerError> {
        match self.timestep_spacing.as_deref() {
            None => Ok(default),
            Some("leading") => Ok(TimestepSpacing::Leading),
            Some("trailing") => Ok(TimestepSpacing::Trailing),
            Some("linspace") => Ok(TimestepSpacing::Linspace),
            Some(other) => Err(SchedulerError::InvalidValue {
                key: "timestep_spacing",
                value: other.into(),
                expected: "leading, trailing, linspace",
            }),
        }
    }

    /// `final_sigmas_type` (Euler, DPM-Solver): true for `sigma_min`, false for `zero` (the default).
    pub fn final_sigma_is_sigma_min(&self) -> Result<bool, SchedulerError> {
        match self.final_sigmas_type.as_deref().unwrap_or("zero") {
            "zero" => Ok(false),
            "sigma_min" => Ok(true),
            other => Err(SchedulerError::InvalidValue {
                key: "final_sigmas_type",
                value: other.into(),
                expected: "zero, sigma_min",
            }),
        }
    }

    /// `betas` `[num_train_timesteps]` in float32, as diffusers builds them in `__init__`
    /// (including `rescale_zero_terminal_snr` when `rescale_betas_zero_snr` is set).
    pub fn betas(&self, defaults: &BetaDefaults) -> Result<Vec<f32>, SchedulerError> {
        let n = self.num_train_timesteps();
        if n < 2 {
            return Err(SchedulerError::Config {
                reason: format!("num_train_timesteps is {n}, it must be at least 2"),
            });
        }
        let start = self.beta_start.unwrap_or(defaults.beta_start);
        let end = self.beta_end.unwrap_or(defaults.beta_end);
        let betas: Vec<f32> = if let Some(trained) = &self.trained_betas {
            if trained.len() != n {
                return Err(SchedulerError::Config {
                    reason: format!(
                        "trained_betas has {} values but num_train_timesteps is {n}; they must agree",
                        trained.len()
                    ),
                });
            }
            trained.iter().map(|&b| b as f32).collect()
        } else {
            match self.beta_schedule.as_deref().unwrap_or(defaults.beta_schedule) {
                "linear" => torch_linspace_f32(start as f32, end as f32, n),
                // torch.linspace(start**0.5, end**0.5, n) ** 2
                "scaled_linear" => {
                    torch_linspace_f32(start.sqrt() as f32, end.sqrt() as f32, n).into_iter().map(|b| b * b).collect()
                }
                "squaredcos_cap_v2" => betas_for_alpha_bar_cosine(n),
                other => {
                    return Err(SchedulerError::InvalidValue {
                        key: "beta_schedule",
                        value: other.into(),
                        expected: "linear, scaled_linear, squaredcos_cap_v2 (or give trained_betas)",
                    });
                }
            }
        };
        if betas.iter().any(|b| !b.is_finite() || *b <= 0.0 || *b >= 1.0) {
            return Err(SchedulerError::Config {
                reason: "every beta must lie in (0, 1): check beta_start, beta_end and trained_betas".into(),
            });
        }
        Ok(if self.rescale_betas_zero_snr.unwrap_or(false) { rescale_zero_terminal_snr(&betas) } else { betas })
    }

    /// `alphas_cumprod` `[num_train_timesteps]` = cumprod(1 − betas), float32 values accumulated in
    /// float64 like torch's CPU `cumprod`. Euler, Euler-a and DPM-Solver additionally set the last value
    /// to 2⁻²⁴ under zero-SNR rescaling; they do that themselves.
    pub fn alphas_cumprod(&self, defaults: &BetaDefaults) -> Result<Vec<f32>, SchedulerError> {
        Ok(cumprod_f32(self.betas(defaults)?.iter().map(|b| 1.0 - b)))
    }

    /// Rejects options that would need thresholding (not implemented: SD latents never use it).
    pub(crate) fn reject_thresholding(&self, scheduler: &'static str) -> Result<(), SchedulerError> {
        if self.thresholding.unwrap_or(false) {
            return Err(SchedulerError::Unsupported {
                scheduler,
                key: "thresholding",
                value: "true".into(),
                hint: "dynamic thresholding is for pixel-space models; set it to false for Stable Diffusion",
            });
        }
        Ok(())
    }
}

/// Checks `num_inference_steps` against the training schedule, like diffusers' `set_timesteps`.
pub(crate) fn check_steps(steps: usize, num_train_timesteps: usize) -> Result<(), SchedulerError> {
    if steps == 0 {
        return Err(SchedulerError::Steps { steps, reason: "ask for at least 1 step".into() });
    }
    if steps > num_train_timesteps {
        return Err(SchedulerError::Steps {
            steps,
            reason: format!(
                "the model was trained with only {num_train_timesteps} timesteps (`num_train_timesteps` in scheduler/scheduler_config.json); ask for at most that many"
            ),
        });
    }
    Ok(())
}

/// torch.cumprod on CPU: accumulate in float64 (`at::acc_type<float, false>`), store float32.
fn cumprod_f32(values: impl Iterator<Item = f32>) -> Vec<f32> {
    let mut acc = 1f64;
    values
        .map(|v| {
            acc *= v as f64;
            acc as f32
        })
        .collect()
}

/// `betas_for_alpha_bar(n, max_beta=0.999, "cosine")`: Python float64 math, then float32
/// (Improved DDPM, Nichol & Dhariwal 2021, eq. 17).
fn betas_for_alpha_bar_cosine(n: usize) -> Vec<f32> {
    let alpha_bar = |t: f64| {
        let c = ((t + 0.008) / 1.008 * std::f64::consts::PI / 2.0).cos();
        c * c
    };
    (0..n)
        .map(|i| {
            let (t1, t2) = (i as f64 / n as f64, (i + 1) as f64 / n as f64);
            (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999) as f32
        })
        .collect()
}

/// `rescale_zero_terminal_snr` (arXiv 2305.08891, Algorithm 1) in float32 like the torch original.
fn rescale_zero_terminal_snr(betas: &[f32]) -> Vec<f32> {
    let alphas_cumprod = cumprod_f32(betas.iter().map(|b| 1.0 - b));
    let mut sqrt_ab: Vec<f32> = alphas_cumprod.iter().map(|a| a.sqrt()).collect();
    let (first, last) = (sqrt_ab[0], sqrt_ab[sqrt_ab.len() - 1]);
    let scale = first / (first - last);
    for v in &mut sqrt_ab {
        *v = (*v - last) * scale;
    }
    let alphas_bar: Vec<f32> = sqrt_ab.iter().map(|v| v * v).collect();
    let mut out = Vec::with_capacity(betas.len());
    out.push(1.0 - alphas_bar[0]);
    for w in alphas_bar.windows(2) {
        out.push(1.0 - w[1] / w[0]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_infinity_is_read() {
        let c = SchedulerConfig::from_json(
            r#"{"lambda_min_clipped": -Infinity, "_class_name": "Infinity NaN", "sigma_max": NaN}"#,
        )
        .unwrap();
        assert_eq!(c.lambda_min_clipped, Some(f64::NEG_INFINITY));
        assert_eq!(c.class_name.as_deref(), Some("Infinity NaN"));
        assert!(c.sigma_max.unwrap().is_nan());
    }
}
