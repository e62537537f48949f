//! MACE's closed-form refinement (Lu et al., "MACE: Mass Concept Erasure in Diffusion Models",
//! CVPR 2024, arXiv:2403.06135, eq. 8). The LoRA stage of MACE is gradient training and is out
//! of scope here.
//!
//! `W' = (λW + Σ_i W e_i c_iᵀ + W P)(λI + Σ_i c_i c_iᵀ + P)⁻¹` on every `to_k`/`to_v`, where, for
//! each prompt template with the concept ("A photo of Ann Graham") and the same template with the
//! mapping concept ("A photo of a woman"), the contexts `c_i` are the tokens the two prompts share
//! (common prefix and suffix, then the positions after them up to 77) and `e_i` the matching
//! tokens of the mapped prompt (official `src/cfr_utils.py`: `find_matching_indices`,
//! `prepare_k_v` with `all_words=False`, `closed_form_refinement`). The concept words themselves
//! are *not* contexts: MACE moves the residual information the other tokens carry.
//!
//! `P` is the preservation covariance. The official runs cache `Σ c cᵀ` of all tokens of
//! COCO captions (`cache_coco.py`) and use λ = 0; the studio ships no such cache, so `P` is built
//! from the preserve prompts given (all 77 positions each, times `preserve_scale`) and λ defaults
//! to 0.1: with λ = 0 and too few preserve prompts the system is rank-deficient and the solve
//! says so.

use crate::closed_form::{Pair, RidgeSolve, edit_from_layers, guides_for};
use crate::edit::{Edit, EditMeta};
use crate::error::EraseError;
use crate::linalg::Mat;
use crate::text::{CrossAttn, PromptEncoder};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConceptType {
    Object,
    Style,
}

#[derive(Debug, Clone)]
pub struct MaceConfig {
    pub lamb: f64,
    pub preserve_scale: f64,
    /// Use the official augmentation templates (31 per concept type) instead of "A photo of {}".
    pub augment: bool,
    pub concept_type: ConceptType,
}

impl Default for MaceConfig {
    fn default() -> Self {
        Self { lamb: 0.1, preserve_scale: 1.0, augment: false, concept_type: ConceptType::Object }
    }
}

const OBJECT_TEMPLATES: &[&str] = &[
    "{} in a photo",
    "{} in a snapshot",
    "A snapshot of {}",
    "A photograph showcasing {}",
    "An illustration of {}",
    "A digital rendering of {}",
    "A visual representation of {}",
    "A graphic of {}",
    "A shot of {}",
    "A photo of {}",
    "A black and white image of {}",
    "A depiction in portrait form of {}",
    "A scene depicting {} during a public gathering",
    "{} captured in an image",
    "A depiction created with oil paints capturing {}",
    "An image of {}",
    "A drawing capturing the essence of {}",
    "An official photograph featuring {}",
    "A detailed sketch of {}",
    "{} during sunset/sunrise",
    "{} in a detailed portrait",
    "An official photo of {}",
    "Historic photo of {}",
    "Detailed portrait of {}",
    "A painting of {}",
    "HD picture of {}",
    "Magazine cover capturing {}",
    "Painting-like image of {}",
    "Hand-drawn art of {}",
    "An oil portrait of {}",
    "{} in a sketch painting",
];

const STYLE_TEMPLATES: &[&str] = &[
    "An artwork by {}",
    "Art piece by {}",
    "A recent creation by {}",
    "{}'s renowned art",
    "Latest masterpiece by {}",
    "A stunning image by {}",
    "An art in {}'s style",
    "Exhibition artwork of {}",
    "Art display by {}",
    "a beautiful painting by {}",
    "An image inspired by {}'s style",
    "A sketch by {}",
    "Art piece representing {}",
    "A drawing by {}",
    "Artistry showcasing {}",
    "An illustration by {}",
    "A digital art by {}",
    "A visual art by {}",
    "A reproduction inspired by {}'s colorful, expressive style",
    "Famous painting of {}",
    "A famous art by {}",
    "Artistic style of {}",
    "{}'s famous piece",
    "Abstract work of {}",
    "{}'s famous drawing",
    "Art from {}'s early period",
    "A portrait by {}",
    "An imitation reflecting the style of {}",
    "An painting from {}'s collection",
    "Vibrant reproduction of artwork by {}",
    "Artistic image influenced by {}",
];

/// The prompts of one concept (official `prompt_augmentation`).
pub fn templates(cfg: &MaceConfig) -> Vec<&'static str> {
    match (cfg.augment, cfg.concept_type) {
        (false, _) => vec!["A photo of {}"],
        (true, ConceptType::Object) => OBJECT_TEMPLATES.to_vec(),
        (true, ConceptType::Style) => STYLE_TEMPLATES.to_vec(),
    }
}

/// Positions the two token sequences share: the common prefix, then the common suffix.
pub fn matching_indices(old: &[u32], new: &[u32]) -> (Vec<usize>, Vec<usize>) {
    let start = old.iter().zip(new).take_while(|(a, b)| a == b).count();
    let (mut eo, mut en) = (old.len() as isize - 1, new.len() as isize - 1);
    while eo >= start as isize && en >= start as isize && old[eo as usize] == new[en as usize] {
        eo -= 1;
        en -= 1;
    }
    let o = (0..start).chain((eo + 1) as usize..old.len()).collect();
    let n = (0..start).chain((en + 1) as usize..new.len()).collect();
    (o, n)
}

/// Extends both index lists with the following positions so that they end together at 77.
pub fn extend_indices(mut o: Vec<usize>, mut n: Vec<usize>, len: usize) -> (Vec<usize>, Vec<usize>) {
    let (lo, ln) = (*o.last().unwrap_or(&0), *n.last().unwrap_or(&0));
    if lo >= ln {
        o.extend(lo + 1..len);
        n.extend(ln + 1..len - (lo - ln));
    } else {
        n.extend(ln + 1..len);
        o.extend(lo + 1..len - (ln - lo));
    }
    (o, n)
}

pub fn mace_cfr(
    enc: &mut dyn PromptEncoder,
    layers: &[CrossAttn],
    concepts: &[String],
    mappings: &[String],
    preserve: &[String],
    cfg: &MaceConfig,
) -> Result<Edit, EraseError> {
    let mappings = guides_for(concepts, mappings, "")?;
    let d = layers
        .first()
        .map(|l| l.weight.ncols())
        .ok_or_else(|| EraseError::Param("the model has no cross-attention layers".into()))?;
    let mut pairs = vec![];
    for (c, m) in concepts.iter().zip(&mappings) {
        for t in templates(cfg) {
            let (old, new) = (t.replace("{}", c), t.replace("{}", m));
            let oe = enc.encode(&old)?;
            let ne = enc.encode(&new)?;
            let len = oe.embeds.nrows();
            let (oi, ni) = matching_indices(&oe.ids[..oe.n_tokens], &ne.ids[..ne.n_tokens]);
            let (oi, ni) = extend_indices(oi, ni, len);
            for (a, b) in oi.iter().zip(&ni) {
                pairs.push(Pair { context: oe.token(*a), value_from: ne.token(*b), scale: 1.0 });
            }
        }
    }
    let prior = if preserve.is_empty() {
        None
    } else {
        let mut p = Mat::zeros(d, d);
        for q in preserve {
            let e = enc.encode(q)?;
            p += e.embeds.transpose() * &e.embeds;
        }
        Some(p * cfg.preserve_scale)
    };
    let solve = RidgeSolve::new("MACE", d, cfg.lamb, &pairs, prior.as_ref())?;
    let meta = EditMeta {
        concepts: concepts.to_vec(),
        guides: mappings,
        preserve: preserve.to_vec(),
        hyperparameters: [
            ("lamb".to_owned(), json!(cfg.lamb)),
            ("preserve_scale".to_owned(), json!(cfg.preserve_scale)),
            ("augment".to_owned(), json!(cfg.augment)),
            (
                "concept_type".to_owned(),
                json!(match cfg.concept_type {
                    ConceptType::Object => "object",
                    ConceptType::Style => "style",
                }),
            ),
        ]
        .into_iter()
        .collect(),
        ..Default::default()
    };
    edit_from_layers("mace", layers, |_, l| Ok(solve.apply(&l.weight)), meta)
}
