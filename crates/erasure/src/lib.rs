//! Concept erasure for Stable Diffusion models loaded by `pipeline`.
//!
//! Three families (DESIGN.md): closed-form edits of the cross-attention projections (UCE, TIME,
//! RECE, SPEED, MACE's closed-form refinement), steering at inference time through the
//! pipeline's hooks, and SPM/LoRA adapters. One method a file; each cites its paper equation and
//! the official code. Core crate: no file system, network or printing.

pub mod adapters;
pub mod anatomy;
pub mod closed_form;
pub mod edit;
pub mod error;
pub mod facilitated_transport;
pub mod inlp;
pub mod leace;
pub mod linalg;
pub mod lora;
pub mod mace_cfr;
pub mod rece;
pub mod request;
pub mod ring_a_bell;
pub mod safree;
pub mod sld;
pub mod speed;
pub mod spm;
pub mod steering;
pub mod text;
pub mod time;
pub mod uce;

pub use edit::{Edit, EditMeta, EditStack, EditTensor};
pub use error::EraseError;
