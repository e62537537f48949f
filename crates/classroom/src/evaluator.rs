//! The classroom evaluator: a small CNN with one classification head per world attribute, which
//! scores generated images (did the model draw what the prompt asked for; is the erased concept
//! gone). Trained in Python (`scripts/classroom/evaluator.py`), shipped as
//! `models/classroom/evaluator/{config.json, model.safetensors}` with BatchNorm folded into the
//! convolutions, and run here on any burn [`Device`] (CLI, tests, the browser studio).
//!
//! Forward pass (config.json `"forward"`; `ExportedEvaluator.logits` in `scripts/classroom/evaluator.py`):
//! ```text
//! x = pixel / 127.5 − 1                                   [n, 3, 64, 64] NCHW RGB, from u8 [n, 64, 64, 3]
//! for each conv i:  x = relu(conv2d(x, convs.i.weight, convs.i.bias, stride_i, padding_i))
//! h = relu(fc(x.flatten(1)))                              [n, 1024] in C, H, W order → [n, 256]
//! logits[head] = heads.<head>(h)                          [n, classes]; class = argmax
//! ```
//! Weights are f16 on disk and computed in f32, as the Python reference does. Tensor names follow
//! the PyTorch state dict (`convs.0.weight`, `fc.bias`, `heads.shape.weight`), so loading goes
//! through [`WeightLoader`] like every model of the studio and reports every problem at once.

use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};
use diffusion::error::LoadError;
use diffusion::nn::{Conv2d, Linear};
use diffusion::safetensors_file::SafetensorsBytes;
use diffusion::weights::{SafetensorsSource, WeightLoader};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;

/// The `format` string of the configs this code reads.
pub const FORMAT: &str = "erasure-studio classroom evaluator v1";

/// Images per forward pass in [`Evaluator::predict`] (bounds memory for large sets).
const CHUNK: usize = 256;

/// Why an evaluator could not be loaded or run.
#[derive(Debug)]
pub enum EvaluatorError {
    /// `config.json` is not an evaluator config, or describes a network we cannot run.
    Config(String),
    /// `model.safetensors` is unreadable or does not match `config.json`.
    Weights(LoadError),
    /// The images given to the evaluator have the wrong size.
    Input(String),
}

impl fmt::Display for EvaluatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(reason) => write!(
                f,
                "evaluator config.json: {reason} (expected the config.json written by scripts/classroom/evaluator.py, format \"{FORMAT}\")"
            ),
            Self::Weights(e) => write!(f, "evaluator weights: {e}"),
            Self::Input(reason) => write!(f, "evaluator input: {reason}"),
        }
    }
}

impl std::error::Error for EvaluatorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Weights(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LoadError> for EvaluatorError {
    fn from(e: LoadError) -> Self {
        Self::Weights(e)
    }
}

/// One 2-D convolution of the stack (`config.json` `"convs"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct ConvSpec {
    /// Tensor prefix, e.g. `convs.0`.
    pub name: String,
    #[serde(rename = "in")]
    pub c_in: usize,
    #[serde(rename = "out")]
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub activation: String,
    /// Output side in pixels, as recorded by the export (checked against the arithmetic).
    #[serde(default)]
    pub out_size: Option<usize>,
}

/// The hidden fully connected layer (`config.json` `"fc"`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct FcSpec {
    pub name: String,
    #[serde(rename = "in")]
    pub d_in: usize,
    #[serde(rename = "out")]
    pub d_out: usize,
    pub activation: String,
}

/// One classification head: its name (`shape`, `character`, …), tensor prefix and class names.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct HeadSpec {
    pub name: String,
    pub tensor: String,
    pub classes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct InputSpec {
    pub height: usize,
    pub width: usize,
}

/// `models/classroom/evaluator/config.json`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct EvaluatorConfig {
    pub format: String,
    pub input: InputSpec,
    pub convs: Vec<ConvSpec>,
    pub fc: FcSpec,
    pub heads: Vec<HeadSpec>,
}

impl EvaluatorConfig {
    /// Parses and checks a config: the layer chain must be consistent (channels, sizes, the
    /// flattened width) and every activation ReLU.
    pub fn from_json(text: &str) -> Result<Self, EvaluatorError> {
        let c: Self = serde_json::from_str(text).map_err(|e| EvaluatorError::Config(format!("not valid: {e}")))?;
        if !c.format.starts_with(FORMAT) {
            return Err(EvaluatorError::Config(format!("format is \"{}\", not a classroom evaluator", c.format)));
        }
        let (mut channels, mut h, mut w) = (3usize, c.input.height, c.input.width);
        if c.convs.is_empty() {
            return Err(EvaluatorError::Config("it lists no convolutions".into()));
        }
        for conv in &c.convs {
            if conv.c_in != channels {
                return Err(EvaluatorError::Config(format!(
                    "{} takes {} channels but receives {channels}",
                    conv.name, conv.c_in
                )));
            }
            if conv.activation != "relu" {
                return Err(EvaluatorError::Config(format!(
                    "{} uses activation `{}`; only relu is supported",
                    conv.name, conv.activation
                )));
            }
            if conv.kernel == 0
                || conv.stride == 0
                || h + 2 * conv.padding < conv.kernel
                || w + 2 * conv.padding < conv.kernel
            {
                return Err(EvaluatorError::Config(format!(
                    "{}: kernel {} / stride {} do not fit a {h}×{w} input",
                    conv.name, conv.kernel, conv.stride
                )));
            }
            h = (h + 2 * conv.padding - conv.kernel) / conv.stride + 1;
            w = (w + 2 * conv.padding - conv.kernel) / conv.stride + 1;
            if conv.out_size.is_some_and(|s| s != h || s != w) {
                return Err(EvaluatorError::Config(format!(
                    "{} records out_size {:?}, its arithmetic gives {h}×{w}",
                    conv.name, conv.out_size
                )));
            }
            channels = conv.c_out;
        }
        if c.fc.d_in != channels * h * w {
            return Err(EvaluatorError::Config(format!(
                "fc takes {} features but the last convolution gives {channels}×{h}×{w} = {}",
                c.fc.d_in,
                channels * h * w
            )));
        }
        if c.fc.activation != "relu" {
            return Err(EvaluatorError::Config(format!(
                "fc uses activation `{}`; only relu is supported",
                c.fc.activation
            )));
        }
        if c.heads.is_empty() {
            return Err(EvaluatorError::Config("it lists no heads".into()));
        }
        for (i, head) in c.heads.iter().enumerate() {
            if head.classes.len() < 2 {
                return Err(EvaluatorError::Config(format!(
                    "head `{}` has {} class(es); a head needs at least 2",
                    head.name,
                    head.classes.len()
                )));
            }
            if c.heads[..i].iter().any(|o| o.name == head.name) {
                return Err(EvaluatorError::Config(format!("head `{}` is listed twice", head.name)));
            }
        }
        Ok(c)
    }

    /// Bytes of one input image (`height × width × 3`).
    pub fn image_bytes(&self) -> usize {
        self.input.height * self.input.width * 3
    }
}

/// The evaluator's answer for one head of one image.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadPrediction {
    pub head: String,
    /// Index of the most probable class (the first one on ties, like `torch.argmax`).
    pub index: usize,
    /// Its name, from `config.json`.
    pub class: String,
    /// Softmax of the logits, in class order.
    pub probabilities: Vec<f32>,
}

/// The evaluator's answer for one image: one entry per head, in `config.json` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub heads: Vec<HeadPrediction>,
}

impl Prediction {
    /// The predicted class name of `head`, if the evaluator has that head.
    pub fn class(&self, head: &str) -> Option<&str> {
        self.heads.iter().find(|h| h.head == head).map(|h| h.class.as_str())
    }

    /// `{head: class name}`, the form [`crate::scoring::score_image`] takes.
    pub fn classes(&self) -> BTreeMap<String, String> {
        self.heads.iter().map(|h| (h.head.clone(), h.class.clone())).collect()
    }
}

/// The loaded evaluator, on one device.
pub struct Evaluator {
    pub config: EvaluatorConfig,
    convs: Vec<Conv2d>,
    fc: Linear,
    heads: Vec<Linear>,
    device: Device,
}

impl Evaluator {
    /// Loads `config.json` (text) and `model.safetensors` (bytes). Every missing, misshapen,
    /// unreadable or unexpected tensor is reported in one error.
    pub fn load(config_json: &str, weights: Vec<u8>, device: &Device) -> Result<Self, EvaluatorError> {
        let config = EvaluatorConfig::from_json(config_json)?;
        let file = SafetensorsBytes::parse("evaluator/model.safetensors", weights)?;
        let mut src = SafetensorsSource::new(vec![file]);
        let mut w = WeightLoader::new(&mut src, device, "evaluator");
        let convs = config
            .convs
            .iter()
            .map(|c| Conv2d::load(&mut w, &c.name, c.c_in, c.c_out, c.kernel, c.stride, c.padding))
            .collect();
        let fc = Linear::load(&mut w, &config.fc.name, config.fc.d_in, config.fc.d_out, true);
        let heads = config
            .heads
            .iter()
            .map(|h| Linear::load(&mut w, &h.tensor, config.fc.d_out, h.classes.len(), true))
            .collect();
        w.finish(&[], "check that evaluator/model.safetensors and evaluator/config.json come from the same export (scripts/classroom/evaluator.py)")?;
        Ok(Self { config, convs, fc, heads, device: device.clone() })
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Normalised input `[n, 3, H, W]` from RGB8 images `[n, H, W, 3]` (HWC, row-major, concatenated).
    pub fn input(&self, images: &[u8]) -> Result<Tensor<4>, EvaluatorError> {
        let (h, w) = (self.config.input.height, self.config.input.width);
        let per = self.config.image_bytes();
        if images.is_empty() || !images.len().is_multiple_of(per) {
            return Err(EvaluatorError::Input(format!(
                "{} bytes is not a whole number of {h}×{w} RGB images ({per} bytes each)",
                images.len()
            )));
        }
        let n = images.len() / per;
        let mut x = vec![0f32; images.len()];
        for (b, img) in images.chunks_exact(per).enumerate() {
            let out = &mut x[b * per..(b + 1) * per];
            for (p, rgb) in img.chunks_exact(3).enumerate() {
                for c in 0..3 {
                    out[c * h * w + p] = rgb[c] as f32 / 127.5 - 1.0;
                }
            }
        }
        Ok(Tensor::from_data(TensorData::new(x, [n, 3, h, w]), &self.device))
    }

    /// Logits of every head for a normalised batch `[n, 3, H, W]`: one `[n, classes]` per head, in
    /// `config.json` order.
    pub fn forward(&self, mut x: Tensor<4>) -> Vec<Tensor<2>> {
        for conv in &self.convs {
            x = relu(conv.forward(x));
        }
        let n = x.dims()[0];
        let h = relu(self.fc.forward(x.reshape([n, self.config.fc.d_in])));
        self.heads.iter().map(|head| head.forward(h.clone())).collect()
    }

    /// Logits of every head for RGB8 images `[n, H, W, 3]`.
    pub fn logits(&self, images: &[u8]) -> Result<Vec<Tensor<2>>, EvaluatorError> {
        Ok(self.forward(self.input(images)?))
    }

    /// Class names and probabilities for RGB8 images `[n, H, W, 3]`, in chunks of 256 images.
    /// Reads results back synchronously (native; in a browser read [`Self::logits`] with
    /// `into_data_async` and call [`Self::predictions`]).
    pub fn predict(&self, images: &[u8]) -> Result<Vec<Prediction>, EvaluatorError> {
        let per = self.config.image_bytes();
        let mut out = Vec::with_capacity(images.len() / per.max(1));
        if images.is_empty() {
            return Err(EvaluatorError::Input("no images".into()));
        }
        for chunk in images.chunks(CHUNK * per) {
            let logits = self.logits(chunk)?;
            let n = chunk.len() / per;
            let values = logits
                .into_iter()
                .map(|t| t.into_data().convert::<f32>().try_to_vec::<f32>())
                .collect::<Result<Vec<Vec<f32>>, _>>()
                .map_err(|e| EvaluatorError::Input(format!("reading the logits back from the device failed: {e:?}")))?;
            out.extend(self.predictions(&values, n)?);
        }
        Ok(out)
    }

    /// Predictions from logits already read back: `logits[k]` is head k's `[n, classes]`, row-major.
    pub fn predictions(&self, logits: &[Vec<f32>], n: usize) -> Result<Vec<Prediction>, EvaluatorError> {
        if logits.len() != self.config.heads.len() {
            return Err(EvaluatorError::Input(format!(
                "{} logit tensors for {} heads",
                logits.len(),
                self.config.heads.len()
            )));
        }
        for (head, values) in self.config.heads.iter().zip(logits) {
            if values.len() != n * head.classes.len() {
                return Err(EvaluatorError::Input(format!(
                    "head `{}`: {} logits, expected {n} × {}",
                    head.name,
                    values.len(),
                    head.classes.len()
                )));
            }
        }
        Ok((0..n)
            .map(|i| Prediction {
                heads: self
                    .config
                    .heads
                    .iter()
                    .zip(logits)
                    .map(|(head, values)| {
                        let k = head.classes.len();
                        let row = &values[i * k..(i + 1) * k];
                        let index = argmax(row);
                        HeadPrediction {
                            head: head.name.clone(),
                            index,
                            class: head.classes[index].clone(),
                            probabilities: softmax(row),
                        }
                    })
                    .collect(),
            })
            .collect())
    }
}

/// Index of the largest value, the first on ties (NaN never wins).
pub fn argmax(v: &[f32]) -> usize {
    let mut best = 0;
    for (i, &x) in v.iter().enumerate() {
        if x > v[best] || v[best].is_nan() {
            best = i;
        }
    }
    best
}

/// Softmax in f64 (stable: the maximum is subtracted first).
pub fn softmax(v: &[f32]) -> Vec<f32> {
    let m = v.iter().fold(f64::NEG_INFINITY, |m, &x| m.max(x as f64));
    let e: Vec<f64> = v.iter().map(|&x| (x as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|x| (x / s) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = include_str!("../../../models/classroom/evaluator/config.json");

    #[test]
    fn shipped_config_parses_with_fourteen_heads() {
        let c = EvaluatorConfig::from_json(CONFIG).unwrap();
        assert_eq!(c.convs.len(), 8);
        assert_eq!(c.fc.d_in, 1024);
        assert_eq!(c.heads.len(), 14);
        let shape = c.heads.iter().find(|h| h.name == "shape").unwrap();
        assert_eq!(shape.classes.len(), 9);
        assert_eq!(shape.classes[8], "none");
    }

    #[test]
    fn inconsistent_configs_are_rejected_with_the_reason() {
        let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        v["fc"]["in"] = 2048.into();
        let e = EvaluatorConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("fc takes 2048 features") && e.contains("= 1024"), "{e}");

        let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        v["convs"][3]["in"] = 32.into();
        let e = EvaluatorConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("convs.3 takes 32 channels but receives 64"), "{e}");

        let mut v: serde_json::Value = serde_json::from_str(CONFIG).unwrap();
        v["format"] = "something else".into();
        let e = EvaluatorConfig::from_json(&v.to_string()).unwrap_err().to_string();
        assert!(e.contains("not a classroom evaluator"), "{e}");

        let e = EvaluatorConfig::from_json("{\"format\": 3").unwrap_err().to_string();
        assert!(e.contains("not valid"), "{e}");
    }

    #[test]
    fn argmax_takes_the_first_maximum_and_softmax_sums_to_one() {
        assert_eq!(argmax(&[0.5, 2.0, 2.0, -1.0]), 1);
        assert_eq!(argmax(&[f32::NAN, 1.0]), 1);
        let p = softmax(&[1000.0, 1000.0, 0.0]);
        assert!((p[0] - 0.5).abs() < 1e-6 && (p[1] - 0.5).abs() < 1e-6 && p[2] < 1e-30, "{p:?}");
        let p = softmax(&[0.0, (3f32).ln()]);
        assert!((p[1] - 0.75).abs() < 1e-6, "{p:?}");
    }
}
