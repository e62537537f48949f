//! A model folder given as a map of relative path → bytes (what the web worker hands over).
//!
//! Paths are `/`-separated and relative to the model folder (`unet/config.json`). The browser's
//! folder picker prefixes every path with the picked folder's name (`tiny-sd1/unet/config.json`);
//! [`normalize_paths`] strips that prefix so both spellings load.

use diffusion::error::LoadError;
use diffusion::safetensors_file::{ByteRanges, RangedSafetensors, WeightFile};
use pipeline::model::ModelFiles;
use std::collections::BTreeMap;

/// The components a text-to-image model needs, as diffusers names its subfolders.
pub const COMPONENTS: [&str; 5] = ["text_encoder", "tokenizer", "unet", "vae", "scheduler"];

/// The components without which nothing runs (a missing `tokenizer/` falls back to the built-in CLIP vocabulary).
pub const REQUIRED: [&str; 4] = ["text_encoder", "unet", "vae", "scheduler"];

/// File names directly inside `dir` among `paths` (sorted, no duplicates).
pub fn list_dir<'a>(paths: impl IntoIterator<Item = &'a str>, dir: &str) -> Vec<String> {
    let dir = dir.trim_matches('/');
    let mut out: Vec<String> = paths
        .into_iter()
        .filter_map(|p| {
            let rest = if dir.is_empty() { Some(p) } else { p.strip_prefix(dir).and_then(|r| r.strip_prefix('/')) }?;
            (!rest.is_empty() && !rest.contains('/')).then(|| rest.to_string())
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Cleans user-supplied paths: backslashes become `/`, leading `./` and `/` go, and when no path
/// names a component at the top level but all share one first folder (the picked folder's name),
/// that folder is stripped. Returns `(cleaned, original)` pairs.
pub fn normalize_paths(paths: &[String]) -> Vec<(String, String)> {
    let clean: Vec<String> = paths
        .iter()
        .map(|p| p.replace('\\', "/").trim_start_matches("./").trim_start_matches('/').to_string())
        .collect();
    let top_level_component = clean.iter().any(|p| {
        let first = p.split('/').next().unwrap_or("");
        COMPONENTS.contains(&first) || p == "model_index.json"
    });
    let first_dirs: Vec<&str> = clean.iter().filter_map(|p| p.split_once('/').map(|(a, _)| a)).collect();
    let shared_prefix = match first_dirs.first() {
        Some(first)
            if !top_level_component && first_dirs.len() == clean.len() && first_dirs.iter().all(|d| d == first) =>
        {
            Some(format!("{first}/"))
        }
        _ => None,
    };
    clean
        .into_iter()
        .zip(paths.iter().cloned())
        .map(|(c, orig)| match &shared_prefix {
            Some(prefix) => (c.strip_prefix(prefix.as_str()).unwrap_or(&c).to_string(), orig),
            None => (c, orig),
        })
        .collect()
}

/// Checks that every component folder is present before any weight is parsed, so a missing
/// component is reported at once and by name (with what *is* there).
pub fn check_components<'a>(paths: impl IntoIterator<Item = &'a str> + Clone) -> Result<(), LoadError> {
    let missing: Vec<&str> = REQUIRED
        .iter()
        .copied()
        .filter(|c| !paths.clone().into_iter().any(|p| p.starts_with(&format!("{c}/"))))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let mut found: Vec<String> = paths.into_iter().map(|p| p.split('/').next().unwrap_or(p).to_string()).collect();
    found.sort();
    found.dedup();
    Err(LoadError::MissingComponent {
        component: missing.join(", "),
        path: format!(
            "{} (the chosen folder has: {})",
            missing.iter().map(|m| format!("{m}/")).collect::<Vec<_>>().join(", "),
            if found.is_empty() { "nothing".to_string() } else { found.join(", ") }
        ),
    })
}

/// A model folder held in memory (native tests; the browser uses a JS `Map` with the same rules,
/// and like it reads weight files by ranges, so native tests load models the browser's way).
#[derive(Default)]
pub struct MapFiles {
    files: BTreeMap<String, Vec<u8>>,
}

impl MapFiles {
    pub fn new(files: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let files: Vec<(String, Vec<u8>)> = files.into_iter().collect();
        let names: Vec<String> = files.iter().map(|(p, _)| p.clone()).collect();
        let normalized = normalize_paths(&names);
        Self { files: normalized.into_iter().map(|(p, _)| p).zip(files.into_iter().map(|(_, b)| b)).collect() }
    }
    pub fn paths(&self) -> impl Iterator<Item = &str> + Clone {
        self.files.keys().map(|s| s.as_str())
    }
}

impl ModelFiles for MapFiles {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        // Taken, not copied: each file is read once, and a big checkpoint must not live twice in memory.
        Ok(self.files.remove(path))
    }
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        Ok(list_dir(self.paths(), dir))
    }
    fn open_weights(&mut self, path: &str) -> Result<WeightFile, LoadError> {
        let bytes = self.files.remove(path).unwrap_or_default();
        Ok(WeightFile::Ranged(RangedSafetensors::open(path, Box::new(VecRanges(bytes)))?))
    }
}

/// Byte ranges of a file held in a `Vec` (the native stand-in for the worker's JS buffer).
pub struct VecRanges(pub Vec<u8>);

impl ByteRanges for VecRanges {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn read(&mut self, begin: usize, end: usize) -> Result<Vec<u8>, String> {
        self.0.get(begin..end).map(<[u8]>::to_vec).ok_or_else(|| format!("bytes {begin}..{end} lie outside the file"))
    }
}
