//! Filling a model's tensors by diffusers name.
//!
//! A model is built by walking its struct tree and asking a [`WeightLoader`] for each tensor by its
//! diffusers key and expected shape. The loader collects *every* problem (missing, wrong shape,
//! unexpected, unreadable dtype) and [`WeightLoader::finish`] reports them all in one error, so
//! a user sees the whole picture at once ("this SPM was trained for SD 2.x").
//!
//! Remaps handled here (the only ones in the project):
//! - `aliases`: alternative spellings of a key, tried in order (e.g. text encoders saved without
//!   the `text_model.` prefix; old VAE attention names `query/key/value/proj_attn`).
//! - a stored tensor whose shape is the expected one followed by trailing 1s (1×1 convolutions
//!   stored for a linear layer, as in old VAE attention weights) is reshaped.

use crate::error::{LoadError, ReadError, TensorProblem};
use crate::safetensors_file::{SafetensorsBytes, WeightFile};
use burn::tensor::{Device, Tensor, TensorData};
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::collections::{BTreeMap, BTreeSet};

/// Where tensors come from.
pub trait TensorSource {
    /// All tensor names the source holds.
    fn names(&self) -> Vec<String>;
    /// Shape of a stored tensor.
    fn shape(&self, name: &str) -> Option<Vec<usize>>;
    /// Reads a tensor as f32.
    fn read(&mut self, name: &str) -> Result<Vec<f32>, ReadError>;
}

/// Tensors from one or more safetensors files (sharded checkpoints are several), in memory or
/// read by ranges.
pub struct SafetensorsSource {
    pub files: Vec<WeightFile>,
}

impl SafetensorsSource {
    pub fn new(files: Vec<SafetensorsBytes>) -> Self {
        Self { files: files.into_iter().map(WeightFile::InMemory).collect() }
    }
    pub fn from_weight_files(files: Vec<WeightFile>) -> Self {
        Self { files }
    }
    fn find(&mut self, name: &str) -> Option<&mut WeightFile> {
        self.files.iter_mut().find(|f| f.header().tensors.contains_key(name))
    }
}

impl TensorSource for SafetensorsSource {
    fn names(&self) -> Vec<String> {
        self.files.iter().flat_map(|f| f.header().tensors.keys().cloned()).collect()
    }
    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.files.iter().find_map(|f| f.header().tensors.get(name).map(|t| t.shape.clone()))
    }
    fn read(&mut self, name: &str) -> Result<Vec<f32>, ReadError> {
        let file = self.find(name).ok_or(ReadError::Missing)?;
        let values = file.read_f32(name)?;
        // A NaN or an infinity in a weight makes every image NaN: refused at load, named.
        if let Some(index) = values.iter().position(|v| !v.is_finite()) {
            return Err(ReadError::NonFinite { file: file.name().to_owned(), index, value: values[index] });
        }
        Ok(values)
    }
}

/// Random weights of whatever shape the model asks for, for benchmarks of real-size
/// architectures without downloading them. Normal(0, std) with std = 1/sqrt(fan_in) keeps
/// activations in a sane range through deep stacks; norms' weights are 1 and biases 0.
pub struct RandomSource {
    rng: StdRng,
}

impl RandomSource {
    pub fn new(seed: u64) -> Self {
        Self { rng: StdRng::seed_from_u64(seed) }
    }
}

/// A tensor whose shape follows from a config, checked before the model is built
/// ([`WeightLoader::check_anchors`]).
#[derive(Debug, Clone)]
pub struct Anchor {
    pub name: String,
    pub shape: Vec<usize>,
    /// The config keys the shape comes from, for the message.
    pub keys: &'static str,
}

impl Anchor {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, keys: &'static str) -> Self {
        Self { name: name.into(), shape, keys }
    }
}

/// Where the loader reads from: a real source, or random values for every requested name.
// One per load: its size does not matter.
#[allow(clippy::large_enum_variant)]
enum Backing<'a> {
    Source(&'a mut dyn TensorSource),
    Random(RandomSource),
}

pub struct WeightLoader<'a> {
    backing: Backing<'a>,
    device: Device,
    component: String,
    problems: Vec<TensorProblem>,
    used: BTreeSet<String>,
    /// `(prefix_in_model, prefix_in_file)` pairs tried when a key is not found as is.
    prefix_aliases: Vec<(String, String)>,
    /// Key-suffix renames tried when a key is not found (old name, e.g. `.to_q.` -> `.query.`).
    infix_aliases: Vec<(String, String)>,
}

impl<'a> WeightLoader<'a> {
    pub fn new(source: &'a mut dyn TensorSource, device: &Device, component: &str) -> Self {
        Self {
            backing: Backing::Source(source),
            device: device.clone(),
            component: component.into(),
            problems: vec![],
            used: BTreeSet::new(),
            prefix_aliases: vec![],
            infix_aliases: vec![],
        }
    }

    pub fn random(seed: u64, device: &Device, component: &str) -> Self {
        Self {
            backing: Backing::Random(RandomSource::new(seed)),
            device: device.clone(),
            component: component.into(),
            problems: vec![],
            used: BTreeSet::new(),
            prefix_aliases: vec![],
            infix_aliases: vec![],
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// When `model_prefix…` is not in the file, also try `file_prefix…` (`file_prefix` may be "").
    /// Registering the same alias twice is a no-op.
    pub fn alias_prefix(&mut self, model_prefix: &str, file_prefix: &str) {
        let alias = (model_prefix.to_owned(), file_prefix.to_owned());
        if !self.prefix_aliases.contains(&alias) {
            self.prefix_aliases.push(alias);
        }
    }

    /// When a key containing `model_infix` is not in the file, also try it with `file_infix`.
    pub fn alias_infix(&mut self, model_infix: &str, file_infix: &str) {
        self.infix_aliases.push((model_infix.into(), file_infix.into()));
    }

    /// Before a model is built from its config: every anchor tensor must be in the file with the
    /// shape the config implies. A model reads a placeholder of the config's shape for a missing
    /// or mis-shaped tensor (to report every problem at once), so a config whose sizes are far
    /// from the weights' (a hostile `hidden_size`, `block_out_channels` or layer count) would
    /// otherwise allocate far more memory than the machine has before the problems are reported.
    pub fn check_anchors(&self, anchors: &[Anchor]) -> Result<(), LoadError> {
        let Backing::Source(source) = &self.backing else { return Ok(()) };
        for a in anchors {
            let found = self.candidates(&a.name).iter().find_map(|c| source.shape(c));
            if found.as_deref() != Some(a.shape.as_slice()) {
                let has = match found {
                    Some(f) => format!("is {f:?} in the weights"),
                    None => "is not in the weights".into(),
                };
                return Err(LoadError::Unsupported(format!(
                    "{c}/config.json does not match {c}/'s weights: its {} make tensor `{}` {:?}, but it {has}; the config and the weights come from different models, or the config was edited",
                    a.keys,
                    a.name,
                    a.shape,
                    c = self.component,
                )));
            }
        }
        Ok(())
    }

    fn candidates(&self, name: &str) -> Vec<String> {
        let mut out = vec![name.to_string()];
        for (m, f) in &self.prefix_aliases {
            if let Some(rest) = name.strip_prefix(m.as_str()) {
                out.push(format!("{f}{rest}"));
            }
        }
        let base = out.clone();
        for (m, f) in &self.infix_aliases {
            for c in &base {
                if c.contains(m.as_str()) {
                    out.push(c.replacen(m.as_str(), f, 1));
                }
            }
        }
        out
    }

    /// Reads `name` as f32 values of exactly `shape`, recording a problem (and returning zeros)
    /// when it cannot.
    pub fn values(&mut self, name: &str, shape: &[usize], init: Init) -> Vec<f32> {
        let numel: usize = shape.iter().product();
        let candidates = self.candidates(name);
        let source = match &mut self.backing {
            Backing::Random(r) => return init.sample(&mut r.rng, shape),
            Backing::Source(s) => s,
        };
        let mut found = None;
        for c in candidates {
            if let Some(s) = source.shape(&c) {
                found = Some((c, s));
                break;
            }
        }
        let Some((key, found_shape)) = found else {
            self.problems.push(TensorProblem::Missing { name: name.into(), expected: shape.to_vec() });
            return vec![0.0; numel];
        };
        self.used.insert(key.clone());
        let trailing_ones = found_shape.len() > shape.len()
            && found_shape[..shape.len()] == *shape
            && found_shape[shape.len()..].iter().all(|&d| d == 1);
        if found_shape != shape && !trailing_ones {
            self.problems.push(TensorProblem::WrongShape { name: key, expected: shape.to_vec(), found: found_shape });
            return vec![0.0; numel];
        }
        match source.read(&key) {
            Ok(v) => v,
            Err(e) => {
                self.problems.push(match e {
                    ReadError::Dtype(dtype) => TensorProblem::Dtype { name: key, dtype },
                    ReadError::Io(reason) => TensorProblem::Unreadable { name: key, reason },
                    ReadError::Missing => TensorProblem::Missing { name: key, expected: shape.to_vec() },
                    ReadError::NonFinite { file, index, value } => {
                        TensorProblem::NonFinite { name: key, file, index, value }
                    }
                });
                vec![0.0; numel]
            }
        }
    }

    /// Reads a tensor of rank `D` onto the loader's device.
    pub fn tensor<const D: usize>(&mut self, name: &str, shape: [usize; D], init: Init) -> Tensor<D> {
        let v = self.values(name, &shape, init);
        Tensor::from_data(TensorData::new(v, shape), &self.device)
    }

    /// Whether the file has a tensor (under any alias), for optional parts such as biases.
    pub fn has(&self, name: &str) -> bool {
        match &self.backing {
            Backing::Random(_) => true,
            Backing::Source(s) => self.candidates(name).iter().any(|c| s.shape(c).is_some()),
        }
    }

    /// Checks for tensors the model did not use and returns every problem in one error.
    /// `ignore` lists name prefixes that may be present unused (e.g. `position_ids` buffers).
    pub fn finish(self, ignore: &[&str], hint: &str) -> Result<(), LoadError> {
        let mut problems = self.problems;
        if let Backing::Source(s) = self.backing {
            for name in s.names() {
                if !self.used.contains(&name) && !ignore.iter().any(|p| name.contains(p)) {
                    let found = s.shape(&name).unwrap_or_default();
                    problems.push(TensorProblem::Unexpected { name, found });
                }
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(LoadError::Tensors { component: self.component, problems, hint: hint.into() })
        }
    }
}

/// How a tensor is initialised when weights are random (benchmarks only).
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Weight with fan-in `n`: Normal(0, 1/sqrt(n)).
    FanIn(usize),
    Zeros,
    Ones,
    /// Normal(0, std).
    Normal(f32),
}

impl Init {
    fn sample(self, rng: &mut StdRng, shape: &[usize]) -> Vec<f32> {
        let numel: usize = shape.iter().product();
        let std = match self {
            Init::Zeros => return vec![0.0; numel],
            Init::Ones => return vec![1.0; numel],
            Init::FanIn(n) => 1.0 / (n.max(1) as f32).sqrt(),
            Init::Normal(s) => s,
        };
        // Uniform with the same variance: cheaper than Box-Muller and just as good for timing.
        let a = std * 3f32.sqrt();
        (0..numel).map(|_| rng.random_range(-a..a)).collect()
    }
}

/// Reads the tensors of a safetensors file as a name → (values, shape) map (for fixtures, edits).
pub fn read_all_f32(file: &SafetensorsBytes) -> BTreeMap<String, (Vec<f32>, Vec<usize>)> {
    file.header.tensors.keys().filter_map(|k| Some((k.clone(), file.f32(k)?))).collect()
}
