//! JS file access (wasm32 only): the model folder the worker hands over as a JS `Map`, and the
//! file of an entry.
//!
//! A file is a `Uint8Array` (fetched or cached bytes) or a `File` / `Blob` (picked or dropped,
//! or an OPFS cache file). A `Blob` is never read whole into the JS heap: the loader reads its
//! header and then one tensor at a time with `Blob.slice` (synchronously, with `FileReaderSync`,
//! which dedicated workers have), and an entry's file is copied into wasm memory in slices.

use crate::error::StudioError;
use crate::files::{list_dir, normalize_paths};
use diffusion::error::LoadError;
use diffusion::safetensors_file::{ByteRanges, RangedSafetensors, SafetensorsBytes, WeightFile};
use pipeline::model::ModelFiles;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A JS `Map<string, Uint8Array | Blob>` as a model folder. Config and tokenizer files are copied
/// into wasm memory when the loader asks for them; weight files never are as a whole: the loader
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

    /// The file at `path`, not copied.
    fn file(&self, path: &str) -> Result<Option<JsFile>, LoadError> {
        let Some((_, key)) = self.paths.iter().find(|(p, _)| p == path) else { return Ok(None) };
        JsFile::of(self.map.get(&JsValue::from_str(key)), path)
            .map(Some)
            .map_err(|e| LoadError::Unsupported(e.to_string()))
    }
}

/// One file handed over from JS.
enum JsFile {
    Bytes(js_sys::Uint8Array),
    Blob(web_sys::Blob),
}

impl JsFile {
    fn of(value: JsValue, path: &str) -> Result<Self, StudioError> {
        if value.is_instance_of::<js_sys::Uint8Array>() {
            Ok(Self::Bytes(js_sys::Uint8Array::from(value)))
        } else if value.is_instance_of::<js_sys::ArrayBuffer>() {
            Ok(Self::Bytes(js_sys::Uint8Array::new(&value)))
        } else if value.is_instance_of::<web_sys::Blob>() {
            Ok(Self::Blob(value.unchecked_into()))
        } else {
            Err(StudioError::File(format!(
                "`{path}` was handed over as something else than a file or bytes (File, Blob or Uint8Array)"
            )))
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Bytes(a) => a.length() as usize,
            Self::Blob(b) => b.size() as usize,
        }
    }

    /// Bytes `begin..end`, synchronously.
    fn read(&self, begin: usize, end: usize) -> Result<Vec<u8>, String> {
        match self {
            Self::Bytes(a) => {
                let (b, e) = (
                    u32::try_from(begin).map_err(|_| "offset beyond 4 GB")?,
                    u32::try_from(end).map_err(|_| "offset beyond 4 GB")?,
                );
                Ok(a.subarray(b, e).to_vec())
            }
            Self::Blob(blob) => {
                let part = blob
                    .slice_with_f64_and_f64(begin as f64, end as f64)
                    .map_err(|e| format!("could not slice the file: {e:?}"))?;
                let reader = web_sys::FileReaderSync::new().map_err(|_| {
                    "this browser cannot read files synchronously in a worker (FileReaderSync)".to_owned()
                })?;
                let buf = reader
                    .read_as_array_buffer(&part)
                    .map_err(|e| format!("could not read the file (was it moved or changed on disk?): {e:?}"))?;
                Ok(js_sys::Uint8Array::new(&buf).to_vec())
            }
        }
    }
}

/// Byte ranges of a file that stays in the worker's JS memory or on disk.
struct JsRanges(JsFile);

impl ByteRanges for JsRanges {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&mut self, begin: usize, end: usize) -> Result<Vec<u8>, String> {
        self.0.read(begin, end)
    }
}

impl ModelFiles for JsFiles {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        match self.file(path)? {
            Some(f) => f.read(0, f.len()).map(Some).map_err(|e| LoadError::Unsupported(format!("`{path}`: {e}"))),
            None => Ok(None),
        }
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        Ok(list_dir(self.paths.iter().map(|(p, _)| p.as_str()), dir))
    }
    fn open_weights(&mut self, path: &str) -> Result<WeightFile, LoadError> {
        match self.file(path)? {
            Some(f) => Ok(WeightFile::Ranged(RangedSafetensors::open(path, Box::new(JsRanges(f)))?)),
            None => Ok(WeightFile::InMemory(SafetensorsBytes::parse(path, vec![])?)),
        }
    }
}

/// Slices an entry's file is copied in (the JS heap holds one slice at a time).
const SLICE: usize = 16 << 20;

/// The whole of an entry's file (`File`, `Blob` or `Uint8Array`) in wasm memory, read in slices.
pub(crate) async fn read_all(data: &JsValue, file: &str) -> Result<Vec<u8>, StudioError> {
    match JsFile::of(data.clone(), file)? {
        JsFile::Bytes(a) => Ok(a.to_vec()),
        JsFile::Blob(blob) => {
            let len = blob.size() as usize;
            let mut out = Vec::with_capacity(len);
            while out.len() < len {
                let end = (out.len() + SLICE).min(len);
                let part = blob
                    .slice_with_f64_and_f64(out.len() as f64, end as f64)
                    .map_err(|e| StudioError::File(format!("{file}: could not slice the file: {e:?}")))?;
                let buf = JsFuture::from(part.array_buffer()).await.map_err(|e| {
                    StudioError::File(format!("could not read {file} (was it moved or changed on disk?): {e:?}"))
                })?;
                let part = js_sys::Uint8Array::new(&buf);
                if part.length() == 0 {
                    return Err(StudioError::File(format!(
                        "{file} ended after {} of {len} bytes (was it changed on disk?)",
                        out.len()
                    )));
                }
                let at = out.len();
                out.resize(at + part.length() as usize, 0);
                part.copy_to(&mut out[at..]);
            }
            Ok(out)
        }
    }
}
