//! Errors of the erasure engine. Each message says what was wrong and what to change.

use diffusion::error::LoadError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum EraseError {
    #[error("no concepts to erase: give at least one concept (e.g. --concepts \"Van Gogh\")")]
    NoConcepts,
    #[error(
        "{guides} guide concept(s) for {concepts} concept(s): give one guide, or exactly one per concept (separated by ;)"
    )]
    GuideCount { concepts: usize, guides: usize },
    #[error(
        "the linear system of {method} is singular or numerically rank-deficient ({detail}); raise λ (--lamb) above 0"
    )]
    Singular { method: &'static str, detail: String },
    #[error(
        "{method} produced a non-finite value in `{tensor}`; the model was left untouched. Lower the scales or raise λ"
    )]
    NotFinite { method: &'static str, tensor: String },
    #[error("invalid parameter: {0}")]
    Param(String),
    #[error("`{file}`: tensor `{name}` has shape {found:?}, this model expects {expected:?}{hint}")]
    WrongShape { file: String, name: String, expected: Vec<usize>, found: Vec<usize>, hint: String },
    #[error("`{file}`: tensor `{name}` does not exist in this model's UNet{hint}")]
    UnknownTensor { file: String, name: String, hint: String },
    #[error("`{file}` is not a valid {kind} file: {reason}")]
    BadFile { file: String, kind: &'static str, reason: String },
    #[error(transparent)]
    Model(#[from] LoadError),
}

/// A hint naming the model family a text width belongs to.
pub fn family_hint(d_text_file: usize, d_text_model: usize) -> String {
    let family = |d: usize| match d {
        768 => "SD 1.x",
        1024 => "SD 2.x",
        2048 => "SDXL",
        _ => "another model",
    };
    if d_text_file == d_text_model {
        String::new()
    } else {
        format!(
            ": this file was made for {} (text width {d_text_file}), the loaded model is {} (text width {d_text_model})",
            family(d_text_file),
            family(d_text_model)
        )
    }
}
