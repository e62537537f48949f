//! Text → image: tokenizer, prompt encoding, the classifier-free-guidance loop with hooks.
//! Core crate: no file system, network or printing.

pub mod daam;
pub mod generate;
pub mod model;
pub mod model_defaults;
pub mod noise;
pub mod prompt;
pub mod tokenizer;
pub mod tokenizer_subset;

pub use generate::{
    GenerateError, GenerateOutput, GenerateParams, Hooks, NoHooks, Run, StepInfo, rgb8_from_f32, to_rgb8,
};
pub use model::{ModelFiles, StableDiffusion};
pub use model_defaults::{ModelDefaults, ModelDefaultsError, StudioJson};
