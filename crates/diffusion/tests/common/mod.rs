//! Shared helpers of the parity tests: fixture paths, reference tensors, tolerance checks.
#![allow(dead_code, deprecated)]

use burn::tensor::{Device, Tensor, TensorData};
use diffusion::safetensors_file::SafetensorsBytes;
use diffusion::weights::SafetensorsSource;
use std::path::PathBuf;

/// `tests/fixtures` at the repository root.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

pub fn device() -> Device {
    Device::ndarray()
}

/// Reads a safetensors file under `tests/fixtures`.
pub fn read(rel: &str) -> SafetensorsBytes {
    let path = fixtures().join(rel);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    SafetensorsBytes::parse(rel, bytes).unwrap()
}

/// A source over a component's weights, e.g. `component_source("tiny-sd1", "unet")`.
pub fn component_source(model: &str, component: &str) -> SafetensorsSource {
    let dir = fixtures().join(model).join(component);
    let mut files = vec![];
    for e in std::fs::read_dir(&dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "safetensors") {
            files.push(SafetensorsBytes::parse(&p.display().to_string(), std::fs::read(&p).unwrap()).unwrap());
        }
    }
    SafetensorsSource::new(files)
}

pub fn config(model: &str, component: &str, file: &str) -> String {
    std::fs::read_to_string(fixtures().join(model).join(component).join(file)).unwrap()
}

/// A reference tensor from a file under `tests/fixtures/reference/`.
pub fn tensor<const D: usize>(file: &SafetensorsBytes, name: &str, device: &Device) -> Tensor<D> {
    let (v, shape) = file.f32(name).unwrap_or_else(|| panic!("reference has no tensor `{name}`"));
    let shape: [usize; D] = shape.try_into().unwrap_or_else(|s: Vec<usize>| panic!("`{name}` has rank {}", s.len()));
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Asserts `max|a - b| <= rel * max|b| + abs`, printing both errors.
pub fn assert_close<const D: usize>(what: &str, got: Tensor<D>, want: Tensor<D>, rel: f32, abs: f32) {
    assert_eq!(got.dims(), want.dims(), "{what}: shape");
    let g: Vec<f32> = got.into_data().to_vec().unwrap();
    let w: Vec<f32> = want.into_data().to_vec().unwrap();
    let scale = w.iter().fold(0f32, |m, x| m.max(x.abs()));
    let err = g.iter().zip(&w).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(g.iter().all(|x| x.is_finite()), "{what}: non-finite output");
    assert!(
        err <= rel * scale + abs,
        "{what}: max abs error {err:e}, reference scale {scale:e} (rel {:e})",
        err / scale.max(1e-30)
    );
    eprintln!("{what}: max abs error {err:e}, rel {:e}", err / scale.max(1e-30));
}
