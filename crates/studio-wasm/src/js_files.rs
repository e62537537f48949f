//! JS file access (wasm32 only): the model folder the worker hands over as a JS `Map`.

use crate::error::StudioError;
use crate::files::{list_dir, normalize_paths};
use diffusion::error::LoadError;
use diffusion::safetensors_file::{ByteRanges, RangedSafetensors, SafetensorsBytes, WeightFile};
use pipeline::model::ModelFiles;
use wasm_bindgen::{JsCast, JsValue};

/// A JS `Map<string, Uint8Array>` as a model folder. Config and tokenizer files are copied into
/// wasm memory when the loader asks for them; weight files never are as a whole: the loader
/// copies out the header and then one tensor at a time ([`JsRanges`]), so peak wasm memory while
/// loading SD 1.5 is its largest tensor, not its 1.7 GB UNet file.
pub(crate) struct JsFiles {
    map: js_sys::Map,
    /// (normalized path, key in `map`).
    pub paths: Vec<(String, String)>,
}

impl JsFiles {
    pub fn new(map: js_sys::Map) -> Result<Self, StudioError> {
        let mut keys = vec![];
        for k in map.keys() {
            let k = k.map_err(|_| StudioError::Params("could not iterate the model files".into()))?;
            let k = k.as_string().ok_or_else(|| StudioError::Params("model file names must be strings".into()))?;
            keys.push(k);
        }
        Ok(Self { map, paths: normalize_paths(&keys) })
    }
}

impl JsFiles {
    /// The JS bytes of `path`, not copied.
    fn bytes(&self, path: &str) -> Result<Option<js_sys::Uint8Array>, LoadError> {
        let Some((_, key)) = self.paths.iter().find(|(p, _)| p == path) else { return Ok(None) };
        let value = self.map.get(&JsValue::from_str(key));
        if value.is_instance_of::<js_sys::Uint8Array>() {
            Ok(Some(js_sys::Uint8Array::from(value)))
        } else if value.is_instance_of::<js_sys::ArrayBuffer>() {
            Ok(Some(js_sys::Uint8Array::new(&value)))
        } else {
            Err(LoadError::Unsupported(format!("`{path}` was handed over as something else than bytes (Uint8Array)")))
        }
    }
}

/// Byte ranges of a file that stays in the worker's JS memory.
struct JsRanges(js_sys::Uint8Array);

impl ByteRanges for JsRanges {
    fn len(&self) -> usize {
        self.0.length() as usize
    }
    fn read(&mut self, begin: usize, end: usize) -> Result<Vec<u8>, String> {
        let (b, e) = (u32::try_from(begin).map_err(|_| "offset beyond 4 GB")?, u32::try_from(end).map_err(|_| "offset beyond 4 GB")?);
        Ok(self.0.subarray(b, e).to_vec())
    }
}

impl ModelFiles for JsFiles {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        Ok(self.bytes(path)?.map(|a| a.to_vec()))
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        Ok(list_dir(self.paths.iter().map(|(p, _)| p.as_str()), dir))
    }
    fn open_weights(&mut self, path: &str) -> Result<WeightFile, LoadError> {
        match self.bytes(path)? {
            Some(a) => Ok(WeightFile::Ranged(RangedSafetensors::open(path, Box::new(JsRanges(a)))?)),
            None => Ok(WeightFile::InMemory(SafetensorsBytes::parse(path, vec![])?)),
        }
    }
}
