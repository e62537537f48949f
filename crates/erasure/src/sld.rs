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

/// SLD's guidance terms at one step, as the anatomy view shows them: how large the safety term
/// γ is against the text direction `ε_p − ε_u` it is subtracted from, and where μ is non-zero.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SldStepTerms {
    /// 0-based.
    pub step: usize,
    /// γ is subtracted at this step (step ≥ the warm-up `δ`); before, ν builds up unused.
    pub applied: bool,
    /// ‖γ‖₂ / ‖ε_p − ε_u‖₂.
    pub relative: f64,
    /// ‖γ‖₂ over the latent.
    pub gamma_norm: f64,
    /// ‖ε_p − ε_u‖₂, classifier-free guidance's direction.
    pub guidance_norm: f64,
    /// Fraction of latent elements with μ > 0 (where `ε_p − ε_S < λ`, Eq. 6).
    pub coverage: f64,
    /// Mean of μ over the latent (μ ∈ [0, 1]).
    pub mean_scale: f64,
    /// ‖ν‖₂ after this step's update (Eq. 8).
    pub momentum_norm: f64,
}

/// Numbers kept per step on the device: ‖γ‖², ‖ε_p − ε_u‖², the fraction with μ > 0, mean μ, ‖ν‖².
const TERMS: usize = 5;

/// The per-step terms from their read-back (`[steps · 5]`, [`Sld::terms`]) and the warm-up.
pub fn step_terms(data: &[f32], warmup_steps: usize) -> Vec<SldStepTerms> {
    data.chunks_exact(TERMS)
        .enumerate()
        .map(|(step, t)| {
            let gamma = (t[0] as f64).max(0.0).sqrt();
            let guidance = (t[1] as f64).max(0.0).sqrt();
            SldStepTerms {
                step,
                applied: step >= warmup_steps,
                relative: if guidance > 0.0 { gamma / guidance } else { 0.0 },
                gamma_norm: gamma,
                guidance_norm: guidance,
                coverage: t[2] as f64,
                mean_scale: t[3] as f64,
                momentum_norm: (t[4] as f64).max(0.0).sqrt(),
            }
        })
        .collect()
}

/// SLD guidance with its momentum state for one run.
#[derive(Debug, Clone)]
pub struct Sld {
    pub params: SldParams,
    /// `ν`, `[1, c, h, w]`; `None` before the first step (zeros).
    momentum: Option<Tensor<4>>,
    /// [`TERMS`] numbers a step, on the device until the run is over ([`Self::terms`]).
    terms: Vec<Tensor<1>>,
}

impl Sld {
    pub fn new(params: SldParams) -> Result<Self, EraseError> {
        params.check()?;
        Ok(Self { params, momentum: None, terms: vec![] })
    }

    /// Whether the safety term is on at all (`s_S ≥ 1`, as the official pipeline decides).
    pub fn enabled(&self) -> bool {
        self.params.guidance_scale >= 1.0
    }

    /// Forgets the momentum and the terms (a new run).
    pub fn reset(&mut self) {
        self.momentum = None;
        self.terms.clear();
    }

    /// The guidance terms of the steps so far, `[steps · 5]` on the device (read back once, after
    /// the run, and turned into [`SldStepTerms`] by [`step_terms`]); `None` before the first step.
    pub fn terms(&self) -> Option<Tensor<1>> {
        (!self.terms.is_empty()).then(|| Tensor::cat(self.terms.clone(), 0))
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
        let safety =
            (eps_safety.clone() - eps_uncond.clone()) * scale.clone() + momentum.clone().mul_scalar(p.momentum_scale);
        // Eq. 8, with the γ just computed.
        let next = momentum.mul_scalar(p.mom_beta) + safety.clone().mul_scalar(1.0 - p.mom_beta);
        let sq = |t: &Tensor<4>| t.clone().powi_scalar(2).sum();
        self.terms.push(Tensor::cat(
            vec![
                sq(&safety),
                sq(&noise_guidance),
                scale.clone().greater_elem(0.0).float().mean(),
                scale.mean(),
                sq(&next),
            ],
            0,
        ));
        self.momentum = Some(next);
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

    /// The terms read back equal Eqs. 6–8 computed element by element on the CPU (γ with the
    /// momentum of the step before, ν after its update, μ's coverage), for three steps with a
    /// warm-up of one, and the guided prediction is unchanged by keeping them.
    #[test]
    fn step_terms_are_eqs_6_to_8() {
        use burn::tensor::{Device, TensorData};
        #[allow(deprecated)]
        let device = Device::ndarray();
        let params =
            SldParams { guidance_scale: 30.0, warmup_steps: 1, threshold: 0.02, momentum_scale: 0.5, mom_beta: 0.7 };
        let n = 2 * 3 * 3;
        let mut seed = 11u64;
        let mut rnd = move || {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((seed >> 33) as f64 / (1u64 << 31) as f64 - 0.5) as f32 * 0.2
        };
        let mut sld = Sld::new(params).unwrap();
        let mut momentum = vec![0f64; n];
        let mut want = vec![];
        for step in 0..3 {
            let (u, c, sf): (Vec<f32>, Vec<f32>, Vec<f32>) =
                ((0..n).map(|_| rnd()).collect(), (0..n).map(|_| rnd()).collect(), (0..n).map(|_| rnd()).collect());
            let t = |v: &Vec<f32>| Tensor::<4>::from_data(TensorData::new(v.clone(), [1, 2, 3, 3]), &device);
            let out = sld.guide(step, &t(&u), &t(&c), &t(&sf), 7.5).into_data().try_to_vec::<f32>().unwrap();
            let (mut g2, mut d2, mut on, mut mean, mut m2) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for i in 0..n {
                let (u, c, sf) = (u[i] as f64, c[i] as f64, sf[i] as f64);
                let diff = c - sf;
                let mu = if diff >= params.threshold { 0.0 } else { (params.guidance_scale * diff.abs()).min(1.0) };
                let gamma = mu * (sf - u) + params.momentum_scale * momentum[i];
                momentum[i] = params.mom_beta * momentum[i] + (1.0 - params.mom_beta) * gamma;
                let guided = u + 7.5 * (c - u - if step >= params.warmup_steps { gamma } else { 0.0 });
                assert!((out[i] as f64 - guided).abs() < 1e-5, "step {step} element {i}");
                g2 += gamma * gamma;
                d2 += (c - u) * (c - u);
                on += (mu > 0.0) as u8 as f64 / n as f64;
                mean += mu / n as f64;
                m2 += momentum[i] * momentum[i];
            }
            want.push((g2.sqrt(), d2.sqrt(), on, mean, m2.sqrt()));
        }
        let data = sld.terms().unwrap().into_data().try_to_vec::<f32>().unwrap();
        let got = step_terms(&data, params.warmup_steps);
        assert_eq!(got.iter().map(|t| (t.step, t.applied)).collect::<Vec<_>>(), [(0, false), (1, true), (2, true)]);
        for (g, w) in got.iter().zip(&want) {
            let close = |a: f64, b: f64| (a - b).abs() <= 1e-5 * (1.0 + b.abs());
            assert!(close(g.gamma_norm, w.0) && close(g.guidance_norm, w.1), "{g:?} vs {w:?}");
            assert!(
                close(g.coverage, w.2) && close(g.mean_scale, w.3) && close(g.momentum_norm, w.4),
                "{g:?} vs {w:?}"
            );
            assert!(close(g.relative, w.0 / w.1));
            assert!(g.coverage > 0.0 && g.coverage < 1.0, "the threshold splits the elements: {}", g.coverage);
        }
        sld.reset();
        assert!(sld.terms().is_none(), "a new run starts without terms");
    }
}
