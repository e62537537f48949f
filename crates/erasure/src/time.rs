//! TIME — Text-to-Image Model Editing (Orgad, Kawar & Belinkov, ICCV 2023, arXiv:2303.08084),
//! eq. 5: `W' = (λW + Σ_i v*_i c_iᵀ)(λI + Σ_i c_i c_iᵀ)⁻¹` — UCE's solve without a preserve term.
//!
//! Following the official `apply_time.py` (bahjat-kawar/time-diffusion): every one of the 77
//! token embeddings of the source prompt ("a pack of roses") is a context `c_i`; its value is
//! the original layer applied to the *aligned* token of the destination prompt ("a pack of
//! blue roses"): each source token is matched to the next equal token of the destination
//! (greedy, left to right, "an" counted as "a"), the positions after the destination's EOS
//! follow in order and the rest repeat position 76. With `augment` the pairs "A photo of …",
//! "An image of …", "A picture of …" are added. Defaults: λ = 0.1, `to_v` only (`--with_to_k`
//! adds the keys). The solve is [`crate::closed_form::RidgeSolve`] (`train_funcs.py`,
//! `train_closed_form`).

use crate::closed_form::{Pair, RidgeSolve, edit_from_layers};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::text::{CrossAttn, PromptEncoder};
use serde_json::json;

#[derive(Debug, Clone)]
pub struct TimeConfig {
    pub lamb: f64,
    pub augment: bool,
}

impl Default for TimeConfig {
    fn default() -> Self {
        Self { lamb: 0.1, augment: false }
    }
}

/// The destination position of each of the 77 source positions (see the module doc).
pub fn align(
    source_ids: &[u32],
    dest_ids: &[u32],
    an: Option<u32>,
    a: Option<u32>,
    len: usize,
) -> Result<Vec<usize>, EraseError> {
    let norm = |t: u32| if Some(t) == an { a.unwrap_or(t) } else { t };
    let mut out = Vec::with_capacity(len);
    let mut j = 0;
    for &t in source_ids {
        while j < dest_ids.len() && norm(dest_ids[j]) != norm(t) {
            j += 1;
        }
        if j >= dest_ids.len() {
            return Err(EraseError::Param(
                "TIME needs every token of the source prompt to appear, in order, in the destination prompt (e.g. \"roses\" → \"blue roses\")".into(),
            ));
        }
        out.push(j);
        j += 1;
    }
    while j < len && out.len() < len {
        out.push(j);
        j += 1;
    }
    while out.len() < len {
        out.push(len - 1);
    }
    Ok(out)
}

fn augmented(text: &str) -> Vec<String> {
    let base = match text.strip_prefix('A') {
        Some(rest) => format!("a{rest}"),
        None => text.to_owned(),
    };
    vec![text.to_owned(), format!("A photo of {base}"), format!("An image of {base}"), format!("A picture of {base}")]
}

/// Edits `sources[i]` into `destinations[i]` on the given layers.
pub fn time(
    enc: &mut dyn PromptEncoder,
    layers: &[CrossAttn],
    sources: &[String],
    destinations: &[String],
    cfg: &TimeConfig,
) -> Result<Edit, EraseError> {
    if sources.is_empty() {
        return Err(EraseError::NoConcepts);
    }
    if destinations.len() != sources.len() {
        return Err(EraseError::GuideCount { concepts: sources.len(), guides: destinations.len() });
    }
    let d = layers
        .first()
        .map(|l| l.weight.ncols())
        .ok_or_else(|| EraseError::Param("the model has no cross-attention layers".into()))?;
    let an = enc.tokens("an")?.first().copied();
    let a = enc.tokens("a")?.first().copied();
    let mut pairs = vec![];
    for (s, t) in sources.iter().zip(destinations) {
        let (ss, ts) = if cfg.augment { (augmented(s), augmented(t)) } else { (vec![s.clone()], vec![t.clone()]) };
        for (s, t) in ss.iter().zip(&ts) {
            let se = enc.encode(s)?;
            let te = enc.encode(t)?;
            let len = se.embeds.nrows();
            let idx = align(&se.ids[..se.n_tokens], &te.ids[..te.n_tokens], an, a, len)?;
            for (k, &j) in idx.iter().enumerate() {
                pairs.push(Pair { context: se.token(k), value_from: te.token(j), scale: 1.0 });
            }
        }
    }
    let solve = RidgeSolve::new("TIME", d, cfg.lamb, &pairs, None)?;
    let meta = EditMeta {
        concepts: sources.to_vec(),
        guides: destinations.to_vec(),
        hyperparameters: [("lamb".to_owned(), json!(cfg.lamb)), ("augment".to_owned(), json!(cfg.augment))]
            .into_iter()
            .collect(),
        ..Default::default()
    };
    edit_from_layers("time", layers, |_, l| Ok(solve.apply(&l.weight)), meta)
}
