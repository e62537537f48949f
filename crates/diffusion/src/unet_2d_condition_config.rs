//! diffusers' `UNet2DConditionModel` config (`config.json` of a `unet/` folder): the fields
//! [`crate::unet_2d_condition`] reads, their diffusers defaults, and the check that refuses what it
//! does not support (see that module's doc for the list). Kept beside the model so that the model
//! file holds the model.

use crate::embeddings::Activation;
use crate::error::LoadError;
use serde::{Deserialize, Deserializer};

/// A config value given once for all blocks or once per down block (diffusers' `int | tuple`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum PerBlock<T> {
    One(T),
    Many(Vec<T>),
}

impl<T: Copy + Default> PerBlock<T> {
    /// The value of down block `i` (up blocks index it reversed, as diffusers does).
    pub fn at(&self, i: usize) -> T {
        match self {
            Self::One(v) => *v,
            Self::Many(v) => v.get(i).or(v.last()).copied().unwrap_or_default(),
        }
    }
    fn len(&self) -> Option<usize> {
        match self {
            Self::One(_) => None,
            Self::Many(v) => Some(v.len()),
        }
    }
}

/// `unet/config.json` of a diffusers model folder. Defaults are those of
/// `UNet2DConditionModel.__init__` (diffusers 0.42), which is what diffusers uses for omitted keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default)]
pub struct UNet2DConditionConfig {
    /// Latent training resolution (64 for 512 px SD); an int, or `[h, w]` whose first entry we
    /// keep; absent or null: 64. Pipelines use it for the default image size.
    #[serde(deserialize_with = "sample_size")]
    pub sample_size: usize,
    /// Latent channels in (4; 9 for inpainting UNets).
    pub in_channels: usize,
    /// Channels predicted (4).
    pub out_channels: usize,
    /// Maps the input with `2 * x - 1` first.
    pub center_input_sample: bool,
    /// `[cos, sin]` order of the timestep embedding (true in SD).
    pub flip_sin_to_cos: bool,
    /// `downscale_freq_shift` of the timestep embedding (0 in SD).
    pub freq_shift: f64,
    /// `CrossAttnDownBlock2D` or `DownBlock2D` per level (a `UNetRes` prefix is dropped, as in diffusers).
    pub down_block_types: Vec<String>,
    /// `UNetMidBlock2DCrossAttn`, or null for no mid block.
    pub mid_block_type: Option<String>,
    /// `CrossAttnUpBlock2D` or `UpBlock2D` per level, deepest first.
    pub up_block_types: Vec<String>,
    /// attn1 attends to the text too (bool or per down block; false in SD).
    pub only_cross_attention: PerBlock<bool>,
    /// Width of each level, finest first.
    pub block_out_channels: Vec<usize>,
    /// Resnets per down block (up blocks have one more).
    pub layers_per_block: PerBlock<usize>,
    /// Padding of the downsampling convs; 0 pads (0, 1, 0, 1) first.
    pub downsample_padding: usize,
    /// The mid block's resnets divide their output by it.
    pub mid_block_scale_factor: f64,
    /// Ignored: inference only.
    pub dropout: f64,
    /// Activation of the resnets, time embedding and output; only `silu` (alias `swish`).
    pub act_fn: String,
    /// Groups of every group norm (null, which diffusers allows, is not supported).
    pub norm_num_groups: Option<usize>,
    /// Epsilon of the resnets' and output group norms (the transformers' are fixed: 1e-6 / 1e-5).
    pub norm_eps: f64,
    /// Width of the text embeddings (768 in SD 1.x, 1024 in SD 2.x); a per-block list is accepted
    /// when all entries are equal.
    #[serde(deserialize_with = "cross_attention_dim")]
    pub cross_attention_dim: usize,
    /// `BasicTransformerBlock`s per `Transformer2DModel` (int or per down block).
    pub transformer_layers_per_block: PerBlock<usize>,
    /// Only for asymmetric (SDXL-style) UNets: not supported.
    pub reverse_transformer_layers_per_block: Option<serde_json::Value>,
    /// Text-projection inputs (Kandinsky, unCLIP): not supported.
    pub encoder_hid_dim: Option<usize>,
    /// See `encoder_hid_dim`.
    pub encoder_hid_dim_type: Option<String>,
    /// Despite its name, the NUMBER of attention heads per block (diffusers issue #2011): SD 1.x
    /// has 8 everywhere, SD 2.x `[5, 10, 20, 20]` (64-wide heads). Int or per down block.
    pub attention_head_dim: PerBlock<usize>,
    /// diffusers refuses any value here (its naming fix never landed); so do we.
    pub num_attention_heads: Option<PerBlock<usize>>,
    /// Not supported (only versatile-diffusion uses it).
    pub dual_cross_attention: bool,
    /// `proj_in`/`proj_out` are `Linear` (SD 2.x) rather than 1×1 convs (SD 1.x).
    pub use_linear_projection: bool,
    /// Class conditioning: not supported.
    pub class_embed_type: Option<String>,
    /// Additional embeddings (`text_time` = SDXL): not supported.
    pub addition_embed_type: Option<String>,
    /// SDXL's micro-conditioning width: not supported.
    pub addition_time_embed_dim: Option<usize>,
    /// Class conditioning: not supported.
    pub num_class_embeds: Option<usize>,
    /// Softmax in f32 for f16 models (SD 2.1 768). Read, not needed: in f16 compute the scores and
    /// the softmax always run in f32 (`crate::nn::upcast`).
    pub upcast_attention: bool,
    /// Resnet time conditioning; only `default` (additive) is supported.
    pub resnet_time_scale_shift: String,
    /// Only used by `ResnetDownsampleBlock2D`-style blocks, which are not supported.
    pub resnet_skip_time_act: bool,
    /// Ignored, exactly as in diffusers: the block types supported here never receive it.
    pub resnet_out_scale_factor: f64,
    /// `positional` (sinusoidal); `fourier` is not supported.
    pub time_embedding_type: String,
    /// Width of the time embedding; null: `4 * block_out_channels[0]`.
    pub time_embedding_dim: Option<usize>,
    /// Activation applied to the time embedding before the blocks (null in SD).
    pub time_embedding_act_fn: Option<String>,
    /// Activation at the end of `TimestepEmbedding` (null in SD).
    pub timestep_post_act: Option<String>,
    /// LCM-distilled UNets: width of the guidance embedding added to the sinusoidal embedding.
    pub time_cond_proj_dim: Option<usize>,
    /// Kernel of `conv_in` (padding `(k - 1) / 2`).
    pub conv_in_kernel: usize,
    /// Kernel of `conv_out`.
    pub conv_out_kernel: usize,
    /// Class conditioning: not supported.
    pub projection_class_embeddings_input_dim: Option<usize>,
    /// `default`; GLIGEN's `gated` variants are not supported.
    pub attention_type: String,
    /// Class conditioning: ignored without class embeddings.
    pub class_embeddings_concat: bool,
    /// Only read by `UNetMidBlock2DSimpleCrossAttn`: ignored.
    pub mid_block_only_cross_attention: Option<bool>,
    /// Only read by `SimpleCrossAttn` blocks: ignored.
    pub cross_attention_norm: Option<String>,
    /// Only for `addition_embed_type = "text"`: ignored.
    pub addition_embed_type_num_heads: usize,
}

fn sample_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    Ok(match Option::<PerBlock<usize>>::deserialize(d)? {
        None => 64,
        Some(PerBlock::One(s)) => s,
        Some(PerBlock::Many(v)) => v.first().copied().unwrap_or(64),
    })
}

fn cross_attention_dim<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    match PerBlock::<usize>::deserialize(d)? {
        PerBlock::One(s) => Ok(s),
        PerBlock::Many(v) => match v.first() {
            Some(&first) if v.iter().all(|&x| x == first) => Ok(first),
            _ => Err(serde::de::Error::custom(format!(
                "per-block `cross_attention_dim` {v:?} is not supported: one text-embedding width for all blocks is"
            ))),
        },
    }
}

impl Default for UNet2DConditionConfig {
    fn default() -> Self {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        Self {
            sample_size: 64,
            in_channels: 4,
            out_channels: 4,
            center_input_sample: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
            down_block_types: s(&[
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "CrossAttnDownBlock2D",
                "DownBlock2D",
            ]),
            mid_block_type: Some("UNetMidBlock2DCrossAttn".into()),
            up_block_types: s(&["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]),
            only_cross_attention: PerBlock::One(false),
            block_out_channels: vec![320, 640, 1280, 1280],
            layers_per_block: PerBlock::One(2),
            downsample_padding: 1,
            mid_block_scale_factor: 1.0,
            dropout: 0.0,
            act_fn: "silu".into(),
            norm_num_groups: Some(32),
            norm_eps: 1e-5,
            cross_attention_dim: 1280,
            transformer_layers_per_block: PerBlock::One(1),
            reverse_transformer_layers_per_block: None,
            encoder_hid_dim: None,
            encoder_hid_dim_type: None,
            attention_head_dim: PerBlock::One(8),
            num_attention_heads: None,
            dual_cross_attention: false,
            use_linear_projection: false,
            class_embed_type: None,
            addition_embed_type: None,
            addition_time_embed_dim: None,
            num_class_embeds: None,
            upcast_attention: false,
            resnet_time_scale_shift: "default".into(),
            resnet_skip_time_act: false,
            resnet_out_scale_factor: 1.0,
            time_embedding_type: "positional".into(),
            time_embedding_dim: None,
            time_embedding_act_fn: None,
            timestep_post_act: None,
            time_cond_proj_dim: None,
            conv_in_kernel: 3,
            conv_out_kernel: 3,
            projection_class_embeddings_input_dim: None,
            attention_type: "default".into(),
            class_embeddings_concat: false,
            mid_block_only_cross_attention: None,
            cross_attention_norm: None,
            addition_embed_type_num_heads: 64,
        }
    }
}

/// `runwayml/stable-diffusion-v1-5` `unet/config.json` (diffusers 0.6.0), verbatim.
pub const SD15_CONFIG_JSON: &str = r#"{
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.6.0", "act_fn": "silu",
  "attention_head_dim": 8, "block_out_channels": [320, 640, 1280, 1280], "center_input_sample": false,
  "cross_attention_dim": 768,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
  "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32, "out_channels": 4, "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
}"#;

/// `stabilityai/stable-diffusion-2-1-base` `unet/config.json` (diffusers 0.10.0.dev0), verbatim.
pub const SD21_BASE_CONFIG_JSON: &str = r#"{
  "_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0", "act_fn": "silu",
  "attention_head_dim": [5, 10, 20, 20], "block_out_channels": [320, 640, 1280, 1280],
  "center_input_sample": false, "cross_attention_dim": 1024,
  "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
  "downsample_padding": 1, "dual_cross_attention": false, "flip_sin_to_cos": true, "freq_shift": 0,
  "in_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1, "norm_eps": 1e-05,
  "norm_num_groups": 32, "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
  "sample_size": 64,
  "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
  "upcast_attention": false, "use_linear_projection": true
}"#;

impl UNet2DConditionConfig {
    /// Parses and checks a `unet/config.json`.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let config_err = |reason: String| LoadError::Config { file: "unet/config.json".into(), reason };
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| config_err(e.to_string()))?;
        // Nested per-layer lists belong to asymmetric (SDXL-style) UNets; say so rather than
        // fail on their type.
        if let Some(serde_json::Value::Array(v)) = value.get("transformer_layers_per_block")
            && v.iter().any(|x| x.is_array())
        {
            return Err(LoadError::Unsupported(
                "unet/config.json: nested `transformer_layers_per_block` (asymmetric SDXL-style UNet) is not supported"
                    .into(),
            ));
        }
        let config: Self = crate::config_json::from_value(value).map_err(config_err)?;
        config.validate()?;
        Ok(config)
    }

    /// SD 1.5: [`SD15_CONFIG_JSON`].
    pub fn sd15() -> Self {
        Self::from_json(SD15_CONFIG_JSON).expect("the built-in SD 1.5 UNet config is valid")
    }

    /// SD 2.1 base (512 px): [`SD21_BASE_CONFIG_JSON`].
    pub fn sd21_base() -> Self {
        Self::from_json(SD21_BASE_CONFIG_JSON).expect("the built-in SD 2.1 base UNet config is valid")
    }

    pub(crate) fn levels(&self) -> usize {
        self.block_out_channels.len()
    }

    /// The `BasicTransformerBlock` heads of down block `i` (diffusers: `num_attention_heads or
    /// attention_head_dim`, and `num_attention_heads` must be null).
    pub fn heads(&self, i: usize) -> usize {
        self.attention_head_dim.at(i)
    }

    /// Width of the time embedding.
    pub fn time_embed_dim(&self) -> usize {
        self.time_embedding_dim.unwrap_or(4 * self.block_out_channels.first().copied().unwrap_or(0))
    }

    /// Rejects what this implementation cannot run, with a message saying what is unsupported.
    pub fn validate(&self) -> Result<(), LoadError> {
        let unsupported = |m: String| Err(LoadError::Unsupported(format!("unet/config.json: {m}")));
        let levels = self.levels();
        if levels == 0 || levels > 16 {
            return unsupported(format!("{levels} entries in `block_out_channels`"));
        }
        if self.down_block_types.len() != levels || self.up_block_types.len() != levels {
            return unsupported(format!(
                "{} down blocks and {} up blocks for {levels} entries of `block_out_channels`; they must match",
                self.down_block_types.len(),
                self.up_block_types.len()
            ));
        }
        for t in &self.down_block_types {
            if has_attention(t, "Down").is_none() {
                return unsupported(format!(
                    "down block type `{t}` is not supported (only CrossAttnDownBlock2D, DownBlock2D)"
                ));
            }
        }
        for t in &self.up_block_types {
            if has_attention(t, "Up").is_none() {
                return unsupported(format!(
                    "up block type `{t}` is not supported (only CrossAttnUpBlock2D, UpBlock2D)"
                ));
            }
        }
        if let Some(t) = self.mid_block_type.as_deref().filter(|t| *t != "UNetMidBlock2DCrossAttn") {
            return unsupported(format!(
                "mid block type `{t}` is not supported (only UNetMidBlock2DCrossAttn or null)"
            ));
        }
        if self.addition_embed_type.is_some() || self.addition_time_embed_dim.is_some() {
            return unsupported(format!(
                "`addition_embed_type` {:?} is not supported: this is an SDXL-style (or Kandinsky) UNet; only SD 1.x/2.x UNets are",
                self.addition_embed_type
            ));
        }
        if self.class_embed_type.is_some()
            || self.num_class_embeds.is_some()
            || self.projection_class_embeddings_input_dim.is_some()
        {
            return unsupported("class embeddings (`class_embed_type`, `num_class_embeds`) are not supported".into());
        }
        if self.encoder_hid_dim.is_some() || self.encoder_hid_dim_type.is_some() {
            return unsupported("`encoder_hid_dim` projections are not supported".into());
        }
        if self.num_attention_heads.is_some() {
            // The same refusal as diffusers' UNet2DConditionModel.__init__.
            return unsupported("`num_attention_heads` must be null (diffusers refuses it too; `attention_head_dim` holds the head count)".into());
        }
        if self.reverse_transformer_layers_per_block.as_ref().is_some_and(|v| !v.is_null()) {
            return unsupported("`reverse_transformer_layers_per_block` (asymmetric UNet) is not supported".into());
        }
        let checks: [(&str, bool); 5] = [
            ("`dual_cross_attention` true", self.dual_cross_attention),
            ("`attention_type` other than \"default\"", self.attention_type != "default"),
            ("`resnet_time_scale_shift` other than \"default\"", self.resnet_time_scale_shift != "default"),
            ("`time_embedding_type` other than \"positional\"", self.time_embedding_type != "positional"),
            ("`act_fn` other than silu", self.act_fn != "silu" && self.act_fn != "swish"),
        ];
        if let Some((what, _)) = checks.iter().find(|(_, bad)| *bad) {
            return unsupported(format!("{what} is not supported"));
        }
        for (name, act) in
            [("time_embedding_act_fn", &self.time_embedding_act_fn), ("timestep_post_act", &self.timestep_post_act)]
        {
            if let Some(a) = act {
                Activation::parse(a, name)?;
            }
        }
        let lens = [
            ("only_cross_attention", self.only_cross_attention.len()),
            ("layers_per_block", self.layers_per_block.len()),
            ("transformer_layers_per_block", self.transformer_layers_per_block.len()),
            ("attention_head_dim", self.attention_head_dim.len()),
        ];
        if let Some((name, Some(n))) = lens.iter().find(|(_, n)| n.is_some_and(|n| n != levels)) {
            return unsupported(format!("`{name}` has {n} entries for {levels} blocks"));
        }
        let Some(g) = self.norm_num_groups.filter(|&g| g > 0) else {
            return unsupported("`norm_num_groups` must be a positive number".into());
        };
        for (i, &c) in self.block_out_channels.iter().enumerate() {
            if c == 0 || c % g != 0 {
                return unsupported(format!(
                    "`block_out_channels` entry {i} is {c}, not a positive multiple of `norm_num_groups` {g}"
                ));
            }
            let h = self.heads(i);
            if h == 0 || h > c {
                return unsupported(format!(
                    "{h} attention heads for block {i} of width {c} (from `num_attention_heads`, else `attention_head_dim`): give 1 to {c}"
                ));
            }
            if self.layers_per_block.at(i) == 0 {
                return unsupported(format!("`layers_per_block` of block {i} is 0"));
            }
        }
        if self.in_channels == 0
            || self.out_channels == 0
            || self.cross_attention_dim == 0
            || self.time_embed_dim() == 0
        {
            return unsupported(
                "`in_channels`, `out_channels`, `cross_attention_dim` and the time embedding width must be positive"
                    .into(),
            );
        }
        if self.conv_in_kernel == 0 || self.conv_out_kernel == 0 || self.time_cond_proj_dim == Some(0) {
            return unsupported("`conv_in_kernel`, `conv_out_kernel` and `time_cond_proj_dim` must be positive".into());
        }
        Ok(())
    }
}

/// For a supported block type of `kind` (`Down` / `Up`): `Some(has cross-attention)`.
pub(crate) fn has_attention(t: &str, kind: &str) -> Option<bool> {
    let t = t.strip_prefix("UNetRes").unwrap_or(t);
    let plain = t.strip_suffix("Block2D").filter(|k| *k == kind).is_some();
    let cross = t.strip_prefix("CrossAttn").and_then(|r| r.strip_suffix("Block2D")).is_some_and(|k| k == kind);
    (plain || cross).then_some(cross)
}
