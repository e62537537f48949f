//! Shared helpers of the erasure tests: model folders on disk and reference tensors.
#![allow(dead_code, deprecated)]

use burn::tensor::Device;
use diffusion::error::LoadError;
use diffusion::safetensors_file::SafetensorsBytes;
use pipeline::{ModelFiles, StableDiffusion};
use std::path::PathBuf;

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

pub struct Dir(pub PathBuf);

impl ModelFiles for Dir {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        Ok(std::fs::read(self.0.join(path)).ok())
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        let mut v: Vec<String> = std::fs::read_dir(self.0.join(dir))
            .map(|r| r.filter_map(|e| e.ok()?.file_name().into_string().ok()).collect())
            .unwrap_or_default();
        v.sort();
        Ok(v)
    }
}

/// `tests/fixtures/<name>` or `models/<name>` loaded on the CPU.
pub fn load(name: &str) -> StableDiffusion {
    let p = root().join("tests/fixtures").join(name);
    let p = if p.is_dir() { p } else { root().join("models").join(name) };
    StableDiffusion::load(&mut Dir(p), &Device::ndarray()).expect("model loads")
}

pub fn reference(file: &str) -> SafetensorsBytes {
    let p = root().join("tests/fixtures/reference").join(file);
    SafetensorsBytes::parse(file, std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .expect("reference parses")
}
