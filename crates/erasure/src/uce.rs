//! UCE — Unified Concept Editing (Gandikota et al., WACV 2024, arXiv:2308.14761), eq. 7:
//!
//! `W' = (λW + s_e Σ_{i∈E} v*_i c_iᵀ + s_p Σ_{j∈P} W c_j c_jᵀ)(λI + s_e Σ_E c_i c_iᵀ + s_p Σ_P c_j c_jᵀ)⁻¹`
//!
//! with `v*_i = W c*_i` (the guide concept's embedding through the original layer), applied to
//! every cross-attention `to_k` and `to_v`.
//!
//! Token choice, following the official code:
//! - [`TokenSelection::LastToken`] (current code, `trainscripts/uce_sd_erase.py`, function `UCE`):
//!   one embedding per prompt, at `attention_mask.sum() − 2` — the last real token before EOS;
//!   for the guide "" that is the BOS position. Defaults `erase_scale` 1, `preserve_scale` 1,
//!   `lamb` 0.5.
//! - [`TokenSelection::LegacyLastWord`] (the paper's code, `train-scripts/train_erase.py`,
//!   `edit_model`, technique `replace`): the concept's tokens from its last token through the
//!   padding, paired position by position with the guide's from its own last token (both cut
//!   to the same count); preserved prompts contribute all 77 positions, and with no preserve set
//!   the prompt "" is preserved. Defaults there: `lamb` 0.5, `preserve_scale` max(0.1, 1/|P|).
//!
//! The solve itself is [`crate::closed_form::RidgeSolve`] (f64).

use crate::closed_form::{Pair, RidgeSolve, edit_from_layers, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::text::{CrossAttn, PromptEncoder};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenSelection {
    LastToken,
    LegacyLastWord,
}

#[derive(Debug, Clone)]
pub struct UceConfig {
    pub erase_scale: f64,
    /// `None`: the default of the token selection (1 for the current code, max(0.1, 1/|P|) legacy).
    pub preserve_scale: Option<f64>,
    pub lamb: f64,
    pub tokens: TokenSelection,
}

impl Default for UceConfig {
    fn default() -> Self {
        Self { erase_scale: 1.0, preserve_scale: None, lamb: 0.5, tokens: TokenSelection::LastToken }
    }
}

impl UceConfig {
    pub fn preserve_scale_for(&self, n_preserve: usize) -> f64 {
        self.preserve_scale.unwrap_or(match self.tokens {
            TokenSelection::LastToken => 1.0,
            TokenSelection::LegacyLastWord => (1.0 / n_preserve.max(1) as f64).max(0.1),
        })
    }
}

/// The regression pairs of UCE for the given prompts (shared with RECE and TIME).
pub fn pairs(
    enc: &mut dyn PromptEncoder,
    concepts: &[String],
    guides: &[String],
    preserve: &[String],
    cfg: &UceConfig,
) -> Result<Vec<Pair>, EraseError> {
    let mut out = vec![];
    let s_p = cfg.preserve_scale_for(preserve.len());
    match cfg.tokens {
        TokenSelection::LastToken => {
            for (c, g) in concepts.iter().zip(guides) {
                let ce = enc.encode(c)?;
                let ge = enc.encode(g)?;
                out.push(Pair {
                    context: ce.token(ce.last_token_index()),
                    value_from: ge.token(ge.last_token_index()),
                    scale: cfg.erase_scale,
                });
            }
            for p in preserve {
                let pe = enc.encode(p)?;
                let t = pe.token(pe.last_token_index());
                out.push(Pair { context: t.clone(), value_from: t, scale: s_p });
            }
        }
        TokenSelection::LegacyLastWord => {
            for (c, g) in concepts.iter().zip(guides) {
                let ce = enc.encode(c)?;
                let ge = enc.encode(g)?;
                let (fc, fg) = (ce.last_token_index(), ge.last_token_index());
                let len = ce.embeds.nrows();
                let farthest = fc.max(fg);
                // Both slices end `farthest − f` before the end, so they have the same length.
                let count = len - farthest;
                for k in 0..count {
                    out.push(Pair { context: ce.token(fc + k), value_from: ge.token(fg + k), scale: cfg.erase_scale });
                }
            }
            let retained: Vec<String> = if preserve.is_empty() { vec![String::new()] } else { preserve.to_vec() };
            for p in &retained {
                let pe = enc.encode(p)?;
                for k in 0..pe.embeds.nrows() {
                    let t = pe.token(k);
                    out.push(Pair { context: t.clone(), value_from: t, scale: s_p });
                }
            }
        }
    }
    Ok(out)
}

/// Erases `concepts` (towards `guides`, "" by default) while preserving `preserve`, on the given
/// `to_k`/`to_v` layers.
pub fn uce(
    enc: &mut dyn PromptEncoder,
    layers: &[CrossAttn],
    concepts: &[String],
    guides: &[String],
    preserve: &[String],
    cfg: &UceConfig,
) -> Result<Edit, EraseError> {
    let guides = guides_for(concepts, guides, "")?;
    let d = layers
        .first()
        .map(|l| l.weight.ncols())
        .ok_or_else(|| EraseError::Param("the model has no cross-attention layers".into()))?;
    let pairs = pairs(enc, concepts, &guides, preserve, cfg)?;
    let solve = RidgeSolve::new("UCE", d, cfg.lamb, &pairs, None)?;
    let meta = EditMeta {
        concepts: concepts.to_vec(),
        guides,
        preserve: preserve.to_vec(),
        hyperparameters: [
            ("erase_scale".to_owned(), json!(cfg.erase_scale)),
            ("preserve_scale".to_owned(), json!(cfg.preserve_scale_for(preserve.len()))),
            ("lamb".to_owned(), json!(cfg.lamb)),
            (
                "tokens".to_owned(),
                json!(match cfg.tokens {
                    TokenSelection::LastToken => "last",
                    TokenSelection::LegacyLastWord => "legacy",
                }),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    edit_from_layers("uce", layers, |_, l| Ok(solve.apply(&l.weight)), meta)
}
