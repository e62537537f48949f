//! The browser studio's wasm-bindgen surface: a [`Session`](session::Session) on WebGPU (or on
//! the CPU when WebGPU is missing), loading a diffusers-layout model from bytes, generating with
//! per-step progress, previews and cancel, and applying / reverting weight edits.
//!
//! Only [`session`] (the API) and its helpers `webgpu` (device setup), `js_files` (the model
//! folder as a JS `Map`), `browser_host` (the loop's host in a worker) and `results` (what JS
//! gets back, made with serde) are wasm32-specific; [`engine`] (the step loop, parameters,
//! timings), [`edits`] (edit files on the loaded model), [`erase`] (closed-form erasure with
//! asynchronous read-backs), [`steering`] (LEACE/INLP erasers and Ring-A-Bell probes fitted with
//! asynchronous read-backs, kept by id), [`adapters`] (SPM / LoRA on the session's model), [`variants`] (the entries the page added and the variant the model holds),
//! [`readback`] (every asynchronous read-back), [`error`] (the typed errors) and [`files`] (the
//! model folder as a path → bytes map) are plain Rust, built and tested natively
//! with the rest of the workspace. The requests themselves are `erasure::request`'s, shared with
//! the CLI.

pub mod adapters;
pub mod edits;
pub mod engine;
pub mod erase;
pub mod error;
pub mod files;
pub mod readback;
pub mod steering;
pub mod variants;

#[cfg(target_arch = "wasm32")]
mod browser_host;
#[cfg(target_arch = "wasm32")]
mod js_files;
#[cfg(target_arch = "wasm32")]
mod results;
#[cfg(target_arch = "wasm32")]
pub mod session;
#[cfg(target_arch = "wasm32")]
mod webgpu;

// The CPU path's kernels (matrixmultiply's sgemm, burn-ndarray's macerator ops) have their wasm
// SIMD versions only when the build has the target feature; without it they silently run scalar.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!(
    "build wasm32 with `-C target-feature=+simd128` (.cargo/config.toml sets it; a RUSTFLAGS environment variable replaces that, so add the flag there too)"
);
