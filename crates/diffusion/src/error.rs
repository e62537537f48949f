//! Errors of model loading. Every message names the tensor or file and says what to do.

use thiserror::Error;

/// One problem with one tensor, found while loading a component.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorProblem {
    /// The model needs this tensor and the file does not have it.
    Missing { name: String, expected: Vec<usize> },
    /// The file has this tensor with another shape than the model needs.
    WrongShape { name: String, expected: Vec<usize>, found: Vec<usize> },
    /// The file has a tensor the model does not use.
    Unexpected { name: String, found: Vec<usize> },
    /// The tensor's dtype cannot be read (only f32, f16 and bf16 are supported).
    Dtype { name: String, dtype: String },
    /// The tensor's bytes could not be read from the file.
    Unreadable { name: String, reason: String },
    /// The tensor holds a NaN or an infinity (`value`, the first, at flat `index`).
    NonFinite { name: String, file: String, index: usize, value: f32 },
}

/// Why a stored tensor could not be read as f32.
#[derive(Debug, Clone, PartialEq)]
pub enum ReadError {
    Missing,
    /// Its dtype (by name) has no f32 conversion.
    Dtype(String),
    /// Its bytes could not be read (a ranged read failed).
    Io(String),
    /// It holds a NaN or an infinity: `value`, the first, at flat `index`, in `file`.
    NonFinite {
        file: String,
        index: usize,
        value: f32,
    },
}

impl std::fmt::Display for TensorProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing { name, expected } => write!(f, "missing tensor `{name}` (expected shape {expected:?})"),
            Self::WrongShape { name, expected, found } => {
                write!(f, "tensor `{name}` has shape {found:?}, the model expects {expected:?}")
            }
            Self::Unexpected { name, found } => write!(f, "unexpected tensor `{name}` with shape {found:?}"),
            Self::Dtype { name, dtype } => {
                write!(f, "tensor `{name}` has dtype {dtype}; only F32, F16 and BF16 weights can be loaded")
            }
            Self::Unreadable { name, reason } => {
                write!(f, "tensor `{name}` could not be read ({reason}); load the files again")
            }
            Self::NonFinite { name, file, index, value } => {
                let what = if value.is_nan() { "NaN" } else { "an infinite value" };
                write!(
                    f,
                    "tensor `{name}` in {file} holds {what} ({value} at index {index}): the file is damaged, or was saved after training diverged; get a good copy"
                )
            }
        }
    }
}

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("`{file}` is not a valid safetensors file ({reason}); it may be truncated or corrupt: download it again")]
    Safetensors { file: String, reason: String },
    #[error("{component}: {} problem(s) with the weights:\n  {}\n{hint}", problems.len(), problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n  "))]
    Tensors { component: String, problems: Vec<TensorProblem>, hint: String },
    #[error("`{file}` is not a valid config: {reason}")]
    Config { file: String, reason: String },
    #[error(
        "the model folder has no `{component}` (looked for {path}); a diffusers Stable Diffusion folder needs text_encoder/, tokenizer/, unet/, vae/ and scheduler/"
    )]
    MissingComponent { component: String, path: String },
    #[error("{0}")]
    Unsupported(String),
}
