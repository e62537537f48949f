//! [`ModelFiles`] over a folder on disk.

use diffusion::error::LoadError;
use pipeline::ModelFiles;
use std::path::PathBuf;

pub struct FsFiles {
    pub root: PathBuf,
}

impl ModelFiles for FsFiles {
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError> {
        let p = self.root.join(path);
        match std::fs::read(&p) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(LoadError::Unsupported(format!("cannot read {}: {e}", p.display()))),
        }
    }

    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError> {
        let p = self.root.join(dir);
        let Ok(entries) = std::fs::read_dir(&p) else { return Ok(vec![]) };
        let mut names: Vec<String> =
            entries.filter_map(|e| e.ok()).filter_map(|e| e.file_name().into_string().ok()).collect();
        names.sort();
        Ok(names)
    }
}
