//! Stable Diffusion model parts in burn, with struct trees named like diffusers' checkpoint keys.
//!
//! Core crate: takes bytes, returns tensors; no file system, network or printing.

pub mod config_json;
pub mod error;
pub mod nn;
pub mod safetensors_file;
pub mod weights;

pub use error::{LoadError, TensorProblem};
pub mod attention;
pub mod attention_probe;
pub mod autoencoder_kl;
pub mod clip;
pub mod embeddings;
pub mod resnet;
pub mod transformer_2d;
pub mod unet_2d_blocks;
pub mod unet_2d_condition;
pub mod unet_2d_condition_config;
pub mod vae;
