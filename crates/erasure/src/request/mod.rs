//! One request type per method, shared by the CLI and the page: the clap arguments
//! (crates/cli) and the page's JSON (crates/studio-wasm, sent by web/worker/worker.ts) are thin
//! adapters over these types, and each has ONE place that validates it and builds the method's
//! configuration (`to_config`) or runs it (`run`).
//!
//! - [`EraseRequest`]: a closed-form edit (UCE, TIME, RECE, SPEED, MACE) with the method's options
//!   and defaults ([`erase`]);
//! - [`SteeringRequest`]: inference-time steering of one run (SLD, SAFREE, a LEACE / INLP eraser,
//!   a Ring-A-Bell probe), and [`EraserFitRequest`] / [`RingABellRequest`], fitting the eraser
//!   and the probe it names ([`steering`]);
//! - [`AdapterRequest`]: SPM / LoRA files with their scales and Facilitated Transport
//!   ([`adapter`]);
//! - [`limits`]: the studio's limits, exported to TypeScript as `web/generated/limits.ts`.
//!
//! The JSON field names are the page's (camelCase); the CLI reaches the same fields through its
//! flags. Nothing here reads files or prints: the front ends do (core crate rule, DESIGN.md).

pub mod adapter;
pub mod erase;
pub mod limits;
pub mod steering;

pub use adapter::{AdapterFile, AdapterFileKind, AdapterRequest, Parsed, file_kind};
pub use erase::{EraseMethod, EraseOptions, EraseRequest, MethodConfig};
pub use steering::{EraserFit, EraserFitRequest, RingABellFit, RingABellRequest, SteeringRequest, SteeringSources};

use crate::error::EraseError;

/// Why a request cannot run. [`RequestError::Invalid`] is the request's own fault (a name, a
/// value or a combination the message says how to change); [`RequestError::Erase`] comes from
/// the method itself.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Erase(#[from] EraseError),
}

pub(crate) fn invalid(msg: impl Into<String>) -> RequestError {
    RequestError::Invalid(msg.into())
}
