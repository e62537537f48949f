//! The studio's errors. Each message says what was wrong and what to change; in the browser they
//! become a thrown `Error` / rejected promise with that message ([`js_err`]).

use diffusion::error::LoadError;
use erasure::request::RequestError;
use pipeline::generate::GenerateError;

#[derive(Debug, thiserror::Error)]
pub enum StudioError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("invalid parameters: {0}")]
    Params(String),
    #[error("no model is loaded yet: load a model first")]
    NoModel,
    #[error("could not read the result back from the device: {0}. If the GPU was reset, reload the model")]
    Readback(String),
    #[error(transparent)]
    Edit(#[from] erasure::EraseError),
    #[error("a generation is running: wait for it or cancel it before changing the model's edits")]
    Busy,
    /// [`StudioError::Busy`] when a model load is asked for.
    #[error("a generation is running: cancel it before loading another model")]
    BusyLoading,
    /// [`StudioError::Busy`] when another generation is asked for.
    #[error("a generation is already running: wait for it or cancel it")]
    BusyGenerating,
    /// A file the user gave that is not what it should be (the message names it and says why).
    #[error("{0}")]
    File(String),
}

impl From<RequestError> for StudioError {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Invalid(msg) => StudioError::Params(msg),
            RequestError::Erase(e) => StudioError::Edit(e),
        }
    }
}

/// A failed read-back (the device's error as it describes itself).
pub fn readback_err(e: impl std::fmt::Debug) -> StudioError {
    StudioError::Readback(format!("{e:?}"))
}

/// Any error as the JavaScript `Error` the worker reports (its message is the error's text).
#[cfg(target_arch = "wasm32")]
pub fn js_err(e: impl std::fmt::Display) -> wasm_bindgen::JsError {
    wasm_bindgen::JsError::new(&e.to_string())
}

/// A byte count for a message: `151.8 MB`, `2.00 GB`, `64.0 KB` (decimal units, as the page's
/// `formatBytes`).
pub fn format_bytes(n: f64) -> String {
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else {
        format!("{:.1} KB", n / 1e3)
    }
}
