//! Stable Diffusion model parts in burn, with struct trees named like diffusers' checkpoint keys.
//!
//! Core crate: takes bytes, returns tensors; no file system, network or printing.

pub mod error;
pub mod nn;
pub mod safetensors_file;
pub mod weights;

pub use error::{LoadError, TensorProblem};
pub mod attention;
pub mod resnet;
