//! Safe Latent Diffusion (Schramowski et al., CVPR 2023): classifier-free guidance that also
//! steers away from a safety concept, with a third UNet pass per step on the concept's embedding.
//!
//! Per step, with `ε_u`, `ε_p`, `ε_S` the predictions for the unconditional input, the prompt and
//! the safety concept (paper Eqs. 3–8; ml-research/safe-latent-diffusion
//! `src/sld/sld_pipeline.py` lines 469–500, identical in diffusers'
//! `pipelines/deprecated/stable_diffusion_safe`):
//!
//! ```text
//! μ   = clamp(s_S · |ε_p − ε_S|, max 1)  where ε_p − ε_S < λ, else 0      (Eq. 6; "≥ λ → 0")
//! γ   = μ ⊙ (ε_S − ε_u) + s_m · ν                                         (Eqs. 4, 7)
//! ν   ← β_m · ν + (1 − β_m) · γ        (ν starts at 0; updated at every step, warm-up included) (Eq. 8)
//! ε̃   = ε_u + s_g · (ε_p − ε_u − γ)    from step `warmup` on (0-based), plain CFG before   (Eq. 3)
//! ```
//!
//! The momentum is updated *after* γ used the old ν, and during the warm-up too, as the official
//! loop does. SLD needs classifier-free guidance (the official pipeline only runs it then).

use crate::error::EraseError;
use burn::tensor::Tensor;
use std::str::FromStr;

/// The official default safety concept (`sld_pipeline.py` line 70). diffusers prefixes it with
/// "an image showing ".
pub const DEFAULT_SAFETY_CONCEPT: &str = "hate, harassment, violence, suffering, humiliation, harm, suicide, sexual, nudity, \
bodily fluids, blood, obscene gestures, illegal activity, drug use, theft, vandalism, weapons, child abuse, brutality, cruelty";

/// SLD's hyper-parameters (the paper's names in brackets).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SldParams {
    /// Safety guidance scale `s_S`; below 1 SLD is off (`sld_pipeline.py` line 317).
    pub guidance_scale: f64,
    /// Steps of plain CFG before the safety term is applied (`δ`).
    pub warmup_steps: usize,
    /// Threshold `λ`: elements where `ε_p − ε_S ≥ λ` get no safety guidance.
    pub threshold: f64,
    /// Momentum scale `s_m`.
    pub momentum_scale: f64,
    /// Momentum decay `β_m`.
    pub mom_beta: f64,
}

/// The four configurations of the paper (diffusers' `SafetyConfig`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SldPreset {
    Weak,
    Medium,
    Strong,
    Max,
}

impl SldPreset {
    pub const ALL: [SldPreset; 4] = [SldPreset::Weak, SldPreset::Medium, SldPreset::Strong, SldPreset::Max];

    pub fn name(self) -> &'static str {
        match self {
            SldPreset::Weak => "weak",
            SldPreset::Medium => "medium",
            SldPreset::Strong => "strong",
            SldPreset::Max => "max",
        }
    }

    /// (guidance, warm-up, threshold, momentum scale, β): Weak 20/15/0/0/0, Medium
    /// 1000/10/0.01/0.3/0.4, Strong 2000/7/0.025/0.5/0.7, Max 5000/0/1.0/0.5/0.7.
    pub fn params(self) -> SldParams {
        let p = |guidance_scale, warmup_steps, threshold, momentum_scale, mom_beta| SldParams {
            guidance_scale,
            warmup_steps,
            threshold,
            momentum_scale,
            mom_beta,
        };
        match self {
            SldPreset::Weak => p(20.0, 15, 0.0, 0.0, 0.0),
            SldPreset::Medium => p(1000.0, 10, 0.01, 0.3, 0.4),
            SldPreset::Strong => p(2000.0, 7, 0.025, 0.5, 0.7),
            SldPreset::Max => p(5000.0, 0, 1.0, 0.5, 0.7),
        }
    }
}

impl FromStr for SldPreset {
    type Err = EraseError;
    fn from_str(s: &str) -> Result<Self, EraseError> {
        SldPreset::ALL
            .into_iter()
            .find(|p| {
                p.name().eq_ignore_ascii_case(s.trim()) || format!("hyp-{}", p.name()).eq_ignore_ascii_case(s.trim())
            })
            .ok_or_else(|| EraseError::Param(format!("unknown SLD preset `{s}`: use weak, medium, strong or max")))
    }
}

impl SldParams {
    pub fn check(&self) -> Result<(), EraseError> {
        let finite =
            [self.guidance_scale, self.threshold, self.momentum_scale, self.mom_beta].iter().all(|v| v.is_finite());
        if !finite {
            return Err(EraseError::Param("SLD parameters must be finite numbers".into()));
        }
        if !(0.0..=1.0).contains(&self.mom_beta) {
            return Err(EraseError::Param(format!("SLD momentum β must lie in [0, 1] (got {})", self.mom_beta)));
        }
        Ok(())
    }
}

/// SLD guidance with its momentum state for one run.
#[derive(Debug, Clone)]
pub struct Sld {
    pub params: SldParams,
    /// `ν`, `[1, c, h, w]`; `None` before the first step (zeros).
    momentum: Option<Tensor<4>>,
}

impl Sld {
    pub fn new(params: SldParams) -> Result<Self, EraseError> {
        params.check()?;
        Ok(Self { params, momentum: None })
    }

    /// Whether the safety term is on at all (`s_S ≥ 1`, as the official pipeline decides).
    pub fn enabled(&self) -> bool {
        self.params.guidance_scale >= 1.0
    }

    /// Forgets the momentum (a new run).
    pub fn reset(&mut self) {
        self.momentum = None;
    }

    /// The guided prediction `ε̃` of step `step` (0-based) from `ε_u`, `ε_p`, `ε_S` `[1, c, h, w]`
    /// and the CFG scale `s_g`; updates the momentum. Runs on the tensors' device, no read-back.
    pub fn guide(
        &mut self,
        step: usize,
        eps_uncond: &Tensor<4>,
        eps_cond: &Tensor<4>,
        eps_safety: &Tensor<4>,
        guidance: f64,
    ) -> Tensor<4> {
        let p = self.params;
        let noise_guidance = eps_cond.clone() - eps_uncond.clone();
        if !self.enabled() {
            return eps_uncond.clone() + noise_guidance * guidance;
        }
        let momentum = self.momentum.take().unwrap_or_else(|| noise_guidance.zeros_like());
        let diff = eps_cond.clone() - eps_safety.clone();
        // Eq. 6: μ = min(1, s_S |ε_p − ε_S|), zero where ε_p − ε_S ≥ λ.
        let scale = diff.clone().abs().mul_scalar(p.guidance_scale).clamp_max(1.0);
        let scale = scale.mask_fill(diff.greater_equal_elem(p.threshold), 0.0);
        // Eqs. 4 and 7.
        let safety = (eps_safety.clone() - eps_uncond.clone()) * scale + momentum.clone().mul_scalar(p.momentum_scale);
        // Eq. 8, with the γ just computed.
        self.momentum = Some(momentum.mul_scalar(p.mom_beta) + safety.clone().mul_scalar(1.0 - p.mom_beta));
        let noise_guidance = if step >= p.warmup_steps { noise_guidance - safety } else { noise_guidance };
        eps_uncond.clone() + noise_guidance * guidance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_unknown_names_are_refused() {
        assert_eq!("Strong".parse::<SldPreset>().unwrap(), SldPreset::Strong);
        assert_eq!("hyp-max".parse::<SldPreset>().unwrap().params().guidance_scale, 5000.0);
        let e = "extreme".parse::<SldPreset>().unwrap_err().to_string();
        assert!(e.contains("unknown SLD preset `extreme`") && e.contains("weak, medium, strong or max"), "{e}");
        assert!(Sld::new(SldParams { mom_beta: 1.5, ..SldPreset::Medium.params() }).is_err());
    }
}
