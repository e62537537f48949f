//! The browser studio's wasm-bindgen surface: a [`Session`](session::Session) on WebGPU (or on
//! the CPU when WebGPU is missing), loading a diffusers-layout model from bytes, generating with
//! per-step progress, previews and cancel, and applying / reverting weight edits.
//!
//! Only [`session`] is wasm32-specific; [`engine`] (the step loop, parameters, timings),
//! [`edits`] (edit files on the loaded model), [`erase`] (closed-form erasure with
//! asynchronous read-backs), [`steering`] (LEACE/INLP erasers and Ring-A-Bell probes fitted with
//! asynchronous read-backs, kept by id) and [`files`] (the model folder as a path → bytes
//! map) are plain Rust, built and tested natively
//! with the rest of the workspace.

pub mod adapters;
pub mod edits;
pub mod engine;
pub mod erase;
pub mod files;
pub mod steering;

#[cfg(target_arch = "wasm32")]
pub mod session;

// The CPU path's kernels (matrixmultiply's sgemm, burn-ndarray's macerator ops) have their wasm
// SIMD versions only when the build has the target feature; without it they silently run scalar.
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
compile_error!(
    "build wasm32 with `-C target-feature=+simd128` (.cargo/config.toml sets it; a RUSTFLAGS environment variable replaces that, so add the flag there too)"
);
