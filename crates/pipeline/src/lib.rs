//! Text → image: tokenizer, prompt encoding, the classifier-free-guidance loop with hooks.
//! Core crate: no file system, network or printing.

pub mod noise;
pub mod tokenizer;
