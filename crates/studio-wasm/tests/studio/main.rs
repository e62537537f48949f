//! The studio-wasm tests, natively on burn's ndarray backend with the tiny SD-1 fixture, in one
//! test binary: each binary links burn with debug info (~1 GB on disk, most of a minute to link on
//! two cores), so one instead of four.

mod adapters_tiny;
mod common;
mod edits_tiny;
mod engine_tiny;
mod erase_tiny;
mod steering_tiny;
mod units;
mod variants_tiny;
