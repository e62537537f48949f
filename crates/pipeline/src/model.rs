//! A whole Stable Diffusion model loaded from a diffusers folder layout.
//!
//! The folder is reached through [`ModelFiles`], so the same code loads from disk (CLI), from
//! files the user dropped into the page, or from the hub cache (browser worker). Layout:
//! `text_encoder/{config.json, *.safetensors}`, `tokenizer/{vocab.json, merges.txt, ...}`,
//! `unet/…`, `vae/…`, `scheduler/scheduler_config.json` (`model_index.json` is optional).
//! Weight files: every `*.safetensors` of the component (sharded checkpoints are several);
//! when both `x.safetensors` and a variant `x.fp16.safetensors` are present, the plain one wins.

use crate::tokenizer::ClipTokenizer;
use burn::tensor::Device;
use diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
use diffusion::clip::{CLIPTextConfig, CLIPTextModel};
use diffusion::error::LoadError;
use diffusion::safetensors_file::{SafetensorsBytes, WeightFile};
use diffusion::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
use diffusion::weights::{SafetensorsSource, WeightLoader};
use schedulers::SchedulerConfig;

/// Read access to a model folder.
pub trait ModelFiles {
    /// The bytes of `path` (relative to the folder, `/`-separated), `None` if absent.
    fn read(&mut self, path: &str) -> Result<Option<Vec<u8>>, LoadError>;
    /// File names (not paths) directly inside `dir`; empty if it does not exist.
    fn list(&mut self, dir: &str) -> Result<Vec<String>, LoadError>;
    /// A weight file, ready to be read tensor by tensor. By default it is read whole; the browser
    /// worker overrides this to copy one tensor at a time out of the file's JS buffer, so that
    /// wasm32's 4 GB never has to hold a whole checkpoint (DESIGN.md, "Big models in a browser tab").
    fn open_weights(&mut self, path: &str) -> Result<WeightFile, LoadError> {
        let bytes = self.read(path)?.unwrap_or_default();
        Ok(WeightFile::InMemory(SafetensorsBytes::parse(path, bytes)?))
    }
}

/// The model parts a text-to-image run needs.
pub struct StableDiffusion {
    pub tokenizer: ClipTokenizer,
    pub text_encoder: CLIPTextModel,
    pub unet: UNet2DConditionModel,
    pub vae: AutoencoderKL,
    pub scheduler_config: SchedulerConfig,
    pub device: Device,
}

fn read_text(files: &mut dyn ModelFiles, path: &str, component: &str) -> Result<String, LoadError> {
    let bytes = files
        .read(path)?
        .ok_or_else(|| LoadError::MissingComponent { component: component.into(), path: path.into() })?;
    String::from_utf8(bytes).map_err(|_| LoadError::Config { file: path.into(), reason: "not UTF-8 text".into() })
}

/// The weight files of a component, their headers parsed.
pub fn component_weights(files: &mut dyn ModelFiles, component: &str) -> Result<Vec<WeightFile>, LoadError> {
    let names = files.list(component)?;
    let mut chosen: Vec<&String> = names.iter().filter(|n| n.ends_with(".safetensors")).collect();
    // Prefer full-precision files over `.fp16.`-style variants of the same weights.
    let plain: Vec<&String> = chosen.iter().copied().filter(|n| n.matches('.').count() == 1).collect();
    if !plain.is_empty() {
        chosen = plain;
    }
    if chosen.is_empty() {
        return Err(LoadError::MissingComponent {
            component: component.into(),
            path: format!(
                "{component}/*.safetensors (only safetensors weights are supported; convert .bin/.ckpt files first)"
            ),
        });
    }
    let mut out = vec![];
    for name in chosen {
        let path = format!("{component}/{name}");
        out.push(files.open_weights(&path)?);
    }
    Ok(out)
}

/// A model folder whose configs, tokenizer and weight headers have been read and checked
/// against each other ([`StableDiffusion::check`]), before any weight is read or allocated.
pub struct CheckedModel {
    pub tokenizer: ClipTokenizer,
    pub scheduler_config: SchedulerConfig,
    pub text_encoder: (CLIPTextConfig, Vec<WeightFile>),
    pub unet: (UNet2DConditionConfig, Vec<WeightFile>),
    pub vae: (AutoencoderKLConfig, Vec<WeightFile>),
}

impl CheckedModel {
    /// Every weight file of the three components, with its component.
    pub fn weight_files(&self) -> impl Iterator<Item = (&'static str, &WeightFile)> {
        let te = self.text_encoder.1.iter().map(|f| ("text_encoder", f));
        let unet = self.unet.1.iter().map(|f| ("unet", f));
        te.chain(unet).chain(self.vae.1.iter().map(|f| ("vae", f)))
    }
}

/// The weight files of `component` as a loader's source, with the config's anchors checked.
fn anchored(
    files: Vec<WeightFile>,
    device: &Device,
    component: &str,
    aliases: fn(&mut WeightLoader),
    anchors: &[diffusion::weights::Anchor],
) -> Result<Vec<WeightFile>, LoadError> {
    let mut src = SafetensorsSource::from_weight_files(files);
    let mut w = WeightLoader::new(&mut src, device, component);
    aliases(&mut w);
    w.check_anchors(anchors)?;
    drop(w);
    Ok(src.files)
}

impl StableDiffusion {
    /// Loads every component; all problems of one component are reported together.
    pub fn load(files: &mut dyn ModelFiles, device: &Device) -> Result<Self, LoadError> {
        let checked = Self::check(files, device)?;
        Self::build(checked, device)
    }

    /// Everything [`Self::load`] checks before it reads a weight: the tokenizer, the configs, the
    /// weight files' headers (offsets, dtypes, sizes) and the tensors each config fixes
    /// (anchors), and that the components fit each other. The browser checks a folder this way
    /// before it drops the model it holds.
    pub fn check(files: &mut dyn ModelFiles, device: &Device) -> Result<CheckedModel, LoadError> {
        let tokenizer = load_tokenizer(files)?;
        let scheduler_config =
            SchedulerConfig::from_json(&read_text(files, "scheduler/scheduler_config.json", "scheduler")?).map_err(
                |e| LoadError::Config { file: "scheduler/scheduler_config.json".into(), reason: e.to_string() },
            )?;

        let te_config = CLIPTextConfig::from_json(&read_text(files, "text_encoder/config.json", "text_encoder")?)?;
        let te_files = anchored(
            component_weights(files, "text_encoder")?,
            device,
            "text_encoder",
            CLIPTextModel::register_aliases,
            &CLIPTextModel::anchors(&te_config),
        )?;
        if tokenizer.vocab_size() > te_config.vocab_size {
            return Err(LoadError::Unsupported(format!(
                "the tokenizer has {} tokens but the text encoder only {}: tokenizer/ and text_encoder/ come from different models",
                tokenizer.vocab_size(),
                te_config.vocab_size
            )));
        }
        if let Some((id, token)) = tokenizer.max_id().filter(|&(id, _)| id as usize >= te_config.vocab_size) {
            return Err(LoadError::Unsupported(format!(
                "the tokenizer (tokenizer/) gives the token `{}` the id {id}, outside the text encoder's vocabulary of {} (`vocab_size` in text_encoder/config.json): tokenizer/ and text_encoder/ come from different models",
                token.escape_debug(),
                te_config.vocab_size
            )));
        }

        let unet_config = UNet2DConditionConfig::from_json(&read_text(files, "unet/config.json", "unet")?)?;
        if unet_config.cross_attention_dim != te_config.hidden_size {
            return Err(LoadError::Unsupported(format!(
                "the UNet expects text embeddings {} wide (`cross_attention_dim` in unet/config.json) but the text encoder makes {} (`hidden_size` in text_encoder/config.json): unet/ and text_encoder/ come from different models",
                unet_config.cross_attention_dim, te_config.hidden_size
            )));
        }
        let unet_files = anchored(
            component_weights(files, "unet")?,
            device,
            "unet",
            |_| {},
            &UNet2DConditionModel::anchors(&unet_config),
        )?;

        let vae_config = AutoencoderKLConfig::from_json(&read_text(files, "vae/config.json", "vae")?)?;
        let vae_files =
            anchored(component_weights(files, "vae")?, device, "vae", |_| {}, &AutoencoderKL::anchors(&vae_config))?;

        Ok(CheckedModel {
            tokenizer,
            scheduler_config,
            text_encoder: (te_config, te_files),
            unet: (unet_config, unet_files),
            vae: (vae_config, vae_files),
        })
    }

    /// Reads the weights of a checked folder onto `device`.
    pub fn build(checked: CheckedModel, device: &Device) -> Result<Self, LoadError> {
        let CheckedModel { tokenizer, scheduler_config, text_encoder: (te_config, te_files), unet, vae } = checked;
        let mut src = SafetensorsSource::from_weight_files(te_files);
        let mut w = WeightLoader::new(&mut src, device, "text_encoder");
        CLIPTextModel::register_aliases(&mut w);
        let text_encoder = CLIPTextModel::load(&te_config, &mut w);
        w.finish(
            diffusion::clip::IGNORED_KEYS,
            "check that text_encoder/ holds a CLIPTextModel matching its config.json",
        )?;

        let mut src = SafetensorsSource::from_weight_files(unet.1);
        let mut w = WeightLoader::new(&mut src, device, "unet");
        let unet = UNet2DConditionModel::load(&unet.0, &mut w);
        w.finish(&[], "check that unet/ holds a UNet2DConditionModel matching its config.json")?;

        let mut src = SafetensorsSource::from_weight_files(vae.1);
        let mut w = WeightLoader::new(&mut src, device, "vae");
        let vae = AutoencoderKL::load(&vae.0, &mut w);
        w.finish(&[], "check that vae/ holds an AutoencoderKL matching its config.json")?;

        Ok(Self { tokenizer, text_encoder, unet, vae, scheduler_config, device: device.clone() })
    }

    /// Latent height/width for an image size, or an error if the size does not divide.
    pub fn latent_size(&self, height: usize, width: usize) -> Result<[usize; 2], LoadError> {
        let f = self.vae.scale_factor();
        if height == 0 || width == 0 || !height.is_multiple_of(f) || !width.is_multiple_of(f) {
            return Err(LoadError::Unsupported(format!(
                "height and width must be positive multiples of {f} for this model (got {height}×{width})"
            )));
        }
        Ok([height / f, width / f])
    }
}

/// The folder's tokenizer, or the built-in CLIP vocabulary when it ships none.
pub fn load_tokenizer(files: &mut dyn ModelFiles) -> Result<ClipTokenizer, LoadError> {
    let vocab = files.read("tokenizer/vocab.json")?;
    let merges = files.read("tokenizer/merges.txt")?;
    let config_err = |file: &str, reason: String| LoadError::Config { file: file.into(), reason };
    let as_text = |name: &str, b: Option<Vec<u8>>| -> Result<Option<String>, LoadError> {
        b.map(|b| String::from_utf8(b).map_err(|_| config_err(name, "not UTF-8 text: the file is damaged".into())))
            .transpose()
    };
    let vocab = as_text("tokenizer/vocab.json", vocab)?;
    let merges = as_text("tokenizer/merges.txt", merges)?;
    let tok = match (vocab, merges) {
        (Some(v), Some(m)) => {
            let special =
                as_text("tokenizer/special_tokens_map.json", files.read("tokenizer/special_tokens_map.json")?)?;
            let config = as_text("tokenizer/tokenizer_config.json", files.read("tokenizer/tokenizer_config.json")?)?;
            ClipTokenizer::from_files(&v, &m, special.as_deref(), config.as_deref())
        }
        // A folder without a tokenizer gets CLIP's (every SD 1.x/2.x model uses it).
        (None, None) => ClipTokenizer::builtin(),
        (Some(_), None) => {
            return Err(config_err(
                "tokenizer/merges.txt",
                "is missing but tokenizer/vocab.json is there: the tokenizer needs both (download the folder again)"
                    .into(),
            ));
        }
        (None, Some(_)) => {
            return Err(config_err(
                "tokenizer/vocab.json",
                "is missing but tokenizer/merges.txt is there: the tokenizer needs both (download the folder again)"
                    .into(),
            ));
        }
    };
    tok.map_err(|e| config_err("tokenizer/", e.to_string()))
}
