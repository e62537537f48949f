//! transformers' `CLIPTextModel` (`transformers/models/clip/modeling_clip.py`, v5.24): the text
//! encoder of Stable Diffusion 1.x (OpenAI CLIP ViT-L/14) and 2.x (OpenCLIP ViT-H/14, converted
//! to the same layout).
//!
//! ```text
//! ids [b, n] ─ token_embedding + position_embedding ─ hidden_states[0]
//!   └ n × (x + attn(layer_norm1(x)) ; x + mlp(layer_norm2(x)))   causal self-attention
//!       hidden_states[1..=layers] ─ final_layer_norm ─ last_hidden_state [b, n, d]
//!                                                      └ row at EOS ─ pooler_output [b, d]
//! ```
//!
//! Key remaps (see [`CLIPTextModel::load`]): the model asks for transformers v4 names
//! (`text_model.embeddings.token_embedding.weight`, as in SD checkpoints on the hub) and also
//! accepts them without the `text_model.` prefix (transformers v5 `save_pretrained`, our
//! fixtures). `…position_ids` buffers found in older files are unused: pass [`IGNORED_KEYS`] to
//! [`WeightLoader::finish`].

use crate::error::LoadError;
use crate::nn::{LayerNorm, Linear};
use crate::weights::{Init, WeightLoader};
use burn::tensor::activation::{gelu, gelu_approximate, sigmoid};
use burn::tensor::module::{attention, embedding};
use burn::tensor::ops::AttentionModuleOptions;
use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};

/// Name fragments of tensors a text-encoder file may hold that the model does not use
/// (`text_model.embeddings.position_ids`, a non-persistent buffer that transformers < 4.31
/// still saved); pass to [`WeightLoader::finish`].
pub const IGNORED_KEYS: &[&str] = &["embeddings.position_ids"];

/// The activation of the MLP (`hidden_act`, transformers `activations.py` `ACT2FN`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HiddenAct {
    /// `x * sigmoid(1.702 x)` (OpenAI CLIP, SD 1.x).
    #[serde(rename = "quick_gelu")]
    QuickGelu,
    /// Exact erf GELU (OpenCLIP, SD 2.x).
    #[serde(rename = "gelu")]
    Gelu,
    /// tanh-approximated GELU; `gelu_pytorch_tanh` is the same function.
    #[serde(rename = "gelu_new", alias = "gelu_pytorch_tanh")]
    GeluNew,
}

impl HiddenAct {
    fn forward(self, x: Tensor<3>) -> Tensor<3> {
        match self {
            HiddenAct::QuickGelu => x.clone() * sigmoid(x * 1.702),
            HiddenAct::Gelu => gelu(x),
            HiddenAct::GeluNew => gelu_approximate(x),
        }
    }
}

/// `text_encoder/config.json` (transformers `CLIPTextConfig`). Keys we do not need
/// (`projection_dim`, dropouts, initializer ranges, `architectures`…) are ignored; missing keys
/// take transformers' defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CLIPTextConfig {
    /// Rows of the token-embedding table (49408 for every SD text encoder).
    pub vocab_size: usize,
    /// Width `d` of every hidden state (768 SD 1.x, 1024 SD 2.x).
    pub hidden_size: usize,
    /// Width of the MLP's inner layer (`fc1` output).
    pub intermediate_size: usize,
    /// Number of encoder layers.
    pub num_hidden_layers: usize,
    /// Attention heads; `hidden_size` must be a multiple of it.
    pub num_attention_heads: usize,
    /// Rows of the position-embedding table: the longest sequence the model accepts (77).
    pub max_position_embeddings: usize,
    /// MLP activation.
    pub hidden_act: HiddenAct,
    /// Epsilon of every layer norm.
    pub layer_norm_eps: f64,
    /// Id of `<|startoftext|>`; informational (the tokenizer inserts it).
    pub bos_token_id: i64,
    /// Id of `<|endoftext|>`; chooses the pooled row. The value 2 marks legacy configs (SD 1.x,
    /// 2.x), for which transformers pools at the largest id instead (see [`CLIPTextModel::pool`]).
    pub eos_token_id: i64,
    /// Id of the padding token; informational (the tokenizer pads).
    pub pad_token_id: i64,
}

impl Default for CLIPTextConfig {
    /// transformers' `CLIPTextConfig()` defaults (`configuration_clip.py`).
    fn default() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 512,
            intermediate_size: 2048,
            num_hidden_layers: 12,
            num_attention_heads: 8,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 49406,
            eos_token_id: 49407,
            pad_token_id: 1,
        }
    }
}

impl CLIPTextConfig {
    /// Parses `text_encoder/config.json`. A full `CLIPModel` config is accepted too: its
    /// `text_config` object is used.
    pub fn from_json(json: &str) -> Result<Self, LoadError> {
        let err = |reason: String| LoadError::Config { file: "text_encoder/config.json".into(), reason };
        let mut value: serde_json::Value = serde_json::from_str(json).map_err(|e| err(e.to_string()))?;
        if let Some(text) = value.get_mut("text_config").filter(|t| t.is_object()) {
            value = text.take();
        }
        let config: Self = crate::config_json::from_value(value).map_err(err)?;
        config.validate().map_err(err)?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("hidden_size", self.hidden_size),
            ("intermediate_size", self.intermediate_size),
            ("num_attention_heads", self.num_attention_heads),
            ("max_position_embeddings", self.max_position_embeddings),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return Err(format!(
                "`hidden_size` {} is not a multiple of `num_attention_heads` {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        Ok(())
    }

    /// SD 1.x: OpenAI CLIP ViT-L/14, `text_config` of
    /// <https://huggingface.co/openai/clip-vit-large-patch14/blob/main/config.json> (identical to
    /// `stable-diffusion-v1-5/text_encoder/config.json`): 768 wide, 12 layers, 12 heads, MLP 3072,
    /// quick_gelu, legacy `eos_token_id` 2.
    pub fn sd15() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::QuickGelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 0,
            eos_token_id: 2,
            pad_token_id: 1,
        }
    }

    /// SD 2.x: OpenCLIP ViT-H/14 text tower,
    /// <https://huggingface.co/stabilityai/stable-diffusion-2-1/blob/main/text_encoder/config.json>:
    /// 1024 wide, 16 heads, MLP 4096, exact gelu, and 23 layers (the 24th was dropped at
    /// conversion because SD 2.x conditions on the penultimate layer), legacy `eos_token_id` 2.
    pub fn sd21() -> Self {
        Self {
            vocab_size: 49408,
            hidden_size: 1024,
            intermediate_size: 4096,
            num_hidden_layers: 23,
            num_attention_heads: 16,
            max_position_embeddings: 77,
            hidden_act: HiddenAct::Gelu,
            layer_norm_eps: 1e-5,
            bos_token_id: 0,
            eos_token_id: 2,
            pad_token_id: 1,
        }
    }
}

/// `CLIPTextEmbeddings`: the two lookup tables.
#[derive(Debug, Clone)]
pub struct CLIPTextEmbeddings {
    /// `[vocab_size, d]`. Public so that textual inversion can append rows and Ring-A-Bell /
    /// SAFREE can read token vectors.
    pub token_embedding: Tensor<2>,
    /// `[max_position_embeddings, d]`.
    pub position_embedding: Tensor<2>,
}

impl CLIPTextEmbeddings {
    /// `inputs_embeds` `[b, n, d]` (token vectors) plus the first `n` position vectors.
    pub fn add_positions(&self, inputs_embeds: Tensor<3>) -> Tensor<3> {
        let n = inputs_embeds.dims()[1];
        inputs_embeds + self.position_embedding.clone().narrow(0, 0, n).unsqueeze::<3>()
    }
}

/// `CLIPAttention`: multi-head self-attention with biased projections, causal in the text model.
#[derive(Debug, Clone)]
pub struct CLIPAttention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

impl CLIPAttention {
    fn load(w: &mut WeightLoader, prefix: &str, d: usize, heads: usize) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        Self {
            q_proj: Linear::load(w, &p("q_proj"), d, d, true),
            k_proj: Linear::load(w, &p("k_proj"), d, d, true),
            v_proj: Linear::load(w, &p("v_proj"), d, d, true),
            out_proj: Linear::load(w, &p("out_proj"), d, d, true),
            heads,
        }
    }

    /// `[b, n, d]` → `[b, n, d]`; position `i` attends to positions `0..=i` only, which is what
    /// transformers' `create_causal_mask` builds (the text model never passes a padding mask).
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let (h, dh) = (self.heads, d / self.heads);
        let split = |t: Tensor<3>| t.reshape([b, n, h, dh]).swap_dims(1, 2);
        let q = split(self.q_proj.forward(x.clone()));
        let k = split(self.k_proj.forward(x.clone()));
        let v = split(self.v_proj.forward(x));
        // Scale defaults to 1/sqrt(head_dim), CLIPAttention's `self.scale`.
        let options = AttentionModuleOptions { is_causal: true, ..Default::default() };
        // In f16 compute the scores and softmax run in f32 (crate::nn::upcast).
        let (q, back) = crate::nn::upcast(q);
        let (k, v) = (crate::nn::upcast(k).0, crate::nn::upcast(v).0);
        let out = crate::nn::downcast(attention(q, k, v, None, None, options), back).swap_dims(1, 2).reshape([b, n, d]);
        self.out_proj.forward(out)
    }
}

/// `CLIPMLP`: `fc2(act(fc1(x)))`.
#[derive(Debug, Clone)]
pub struct CLIPMLP {
    pub fc1: Linear,
    pub fc2: Linear,
    pub act: HiddenAct,
}

impl CLIPMLP {
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.fc2.forward(self.act.forward(self.fc1.forward(x)))
    }
}

/// `CLIPEncoderLayer`: pre-norm transformer block.
#[derive(Debug, Clone)]
pub struct CLIPEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub self_attn: CLIPAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: CLIPMLP,
}

impl CLIPEncoderLayer {
    fn load(w: &mut WeightLoader, prefix: &str, c: &CLIPTextConfig) -> Self {
        let p = |s: &str| format!("{prefix}.{s}");
        let d = c.hidden_size;
        Self {
            layer_norm1: LayerNorm::load(w, &p("layer_norm1"), d, c.layer_norm_eps),
            self_attn: CLIPAttention::load(w, &p("self_attn"), d, c.num_attention_heads),
            layer_norm2: LayerNorm::load(w, &p("layer_norm2"), d, c.layer_norm_eps),
            mlp: CLIPMLP {
                fc1: Linear::load(w, &p("mlp.fc1"), d, c.intermediate_size, true),
                fc2: Linear::load(w, &p("mlp.fc2"), c.intermediate_size, d, true),
                act: c.hidden_act,
            },
        }
    }

    /// `[b, n, d]` → `[b, n, d]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let x = x.clone() + self.self_attn.forward(self.layer_norm1.forward(x));
        x.clone() + self.mlp.forward(self.layer_norm2.forward(x))
    }
}

/// `CLIPEncoder`: the stack of layers.
#[derive(Debug, Clone)]
pub struct CLIPEncoder {
    pub layers: Vec<CLIPEncoderLayer>,
}

/// What [`CLIPTextModel::forward`] returns (transformers' `BaseModelOutputWithPooling`).
#[derive(Debug, Clone)]
pub struct CLIPTextOutput {
    /// `[b, n, d]`, after `final_layer_norm`: the UNet's `encoder_hidden_states`.
    pub last_hidden_state: Tensor<3>,
    /// `[b, d]`, the row of `last_hidden_state` at the EOS token.
    pub pooler_output: Tensor<2>,
}

/// transformers' `CLIPTextModel` (the `text_model` inside it in v4).
#[derive(Debug, Clone)]
pub struct CLIPTextModel {
    config: CLIPTextConfig,
    pub embeddings: CLIPTextEmbeddings,
    pub encoder: CLIPEncoder,
    pub final_layer_norm: LayerNorm,
}

/// Called with `(i, hidden_states[i])` for `i = 0` (embeddings) and after each layer `i`;
/// what it returns continues through the model. See [`CLIPTextModel::forward_with_hook`].
pub type HiddenStateHook<'a> = dyn FnMut(usize, Tensor<3>) -> Tensor<3> + 'a;

impl CLIPTextModel {
    /// The file names the model's keys are also found under: transformers' `CLIPTextModel` files
    /// with or without the `text_model.` prefix. [`Self::load`] registers them; so must a caller
    /// that checks [`Self::anchors`] first.
    pub fn register_aliases(w: &mut WeightLoader) {
        w.alias_prefix("text_model.", "");
    }

    /// The tensors whose shapes the config fixes ([`WeightLoader::check_anchors`]).
    pub fn anchors(c: &CLIPTextConfig) -> Vec<crate::weights::Anchor> {
        use crate::weights::Anchor;
        let last = c.num_hidden_layers.saturating_sub(1);
        vec![
            Anchor::new(
                "text_model.embeddings.token_embedding.weight",
                vec![c.vocab_size, c.hidden_size],
                "`vocab_size` and `hidden_size`",
            ),
            Anchor::new(
                "text_model.encoder.layers.0.mlp.fc1.weight",
                vec![c.intermediate_size, c.hidden_size],
                "`intermediate_size` and `hidden_size`",
            ),
            Anchor::new(
                format!("text_model.encoder.layers.{last}.layer_norm1.weight"),
                vec![c.hidden_size],
                "`num_hidden_layers`",
            ),
        ]
    }

    /// Loads `text_model.embeddings.{token,position}_embedding.weight`,
    /// `text_model.encoder.layers.{i}.{layer_norm1,self_attn.{q,k,v,out}_proj,layer_norm2,mlp.fc{1,2}}.*`
    /// and `text_model.final_layer_norm.*`, each also found without the `text_model.` prefix.
    /// Problems are collected in `w`; the caller reports them with
    /// `w.finish(IGNORED_KEYS, hint)`.
    pub fn load(config: &CLIPTextConfig, w: &mut WeightLoader) -> Self {
        Self::register_aliases(w);
        let c = config;
        let d = c.hidden_size;
        let embeddings = CLIPTextEmbeddings {
            token_embedding: w.tensor(
                "text_model.embeddings.token_embedding.weight",
                [c.vocab_size, d],
                Init::Normal(0.02),
            ),
            position_embedding: w.tensor(
                "text_model.embeddings.position_embedding.weight",
                [c.max_position_embeddings, d],
                Init::Normal(0.01),
            ),
        };
        let layers = (0..c.num_hidden_layers)
            .map(|i| CLIPEncoderLayer::load(w, &format!("text_model.encoder.layers.{i}"), c))
            .collect();
        Self {
            config: config.clone(),
            embeddings,
            encoder: CLIPEncoder { layers },
            final_layer_norm: LayerNorm::load(w, "text_model.final_layer_norm", d, c.layer_norm_eps),
        }
    }

    pub fn config(&self) -> &CLIPTextConfig {
        &self.config
    }

    /// Rows of the token-embedding table as loaded (it may have grown by textual inversion).
    pub fn vocab_size(&self) -> usize {
        self.embeddings.token_embedding.dims()[0]
    }

    /// Checks token ids on the host: each must be a row of the embedding table. Callers that
    /// build the id tensor themselves on wasm (where [`forward`](Self::forward) cannot read ids
    /// back to check them) should call this first.
    pub fn check_ids<I: Copy + Into<i64>>(&self, ids: &[I]) -> Result<(), LoadError> {
        let vocab = self.vocab_size();
        match ids.iter().enumerate().find(|&(_, &id)| !(0..vocab as i64).contains(&id.into())) {
            None => Ok(()),
            Some((pos, &id)) => Err(LoadError::Unsupported(format!(
                "token id {} (at flat position {pos}) is outside the text encoder's vocabulary of {vocab} tokens: \
                 the tokenizer and text_encoder/ come from different models, or a textual-inversion token was not \
                 added to the embedding table",
                id.into()
            ))),
        }
    }

    /// Validates `[b, n]` ids: non-empty, `n <= max_position_embeddings` and (natively) every id
    /// in the vocabulary. On wasm, synchronous read-back is impossible, so the ids are not read:
    /// out-of-vocabulary ids are clamped on the device instead of failing (see [`check_ids`](Self::check_ids)).
    fn checked_ids(&self, input_ids: Tensor<2, Int>) -> Result<Tensor<2, Int>, LoadError> {
        let [b, n] = input_ids.dims();
        let max = self.config.max_position_embeddings;
        if b == 0 || n == 0 {
            return Err(LoadError::Unsupported(format!("the text encoder got an empty batch of token ids [{b}, {n}]")));
        }
        if n > max {
            return Err(LoadError::Unsupported(format!(
                "the text encoder got {n} tokens but accepts at most {max} (max_position_embeddings): truncate the prompt"
            )));
        }
        #[cfg(not(target_family = "wasm"))]
        {
            let data = input_ids.clone().try_into_data().map_err(|e| {
                LoadError::Unsupported(format!("could not read the token ids back from the device: {e:?}"))
            })?;
            let ids: Vec<i64> = data.iter::<i64>().collect();
            self.check_ids(&ids)?;
        }
        Ok(input_ids.clamp(0, self.vocab_size() as i64 - 1))
    }

    /// Token plus position embeddings: `[b, n]` ids → `hidden_states[0]` `[b, n, d]`.
    pub fn embed(&self, input_ids: Tensor<2, Int>) -> Result<Tensor<3>, LoadError> {
        let ids = self.checked_ids(input_ids)?;
        Ok(self.embeddings.add_positions(embedding(self.embeddings.token_embedding.clone(), ids)))
    }

    /// Runs the layers on `hidden_states[0]` calling `hook` on every hidden state; returns the
    /// last one, before `final_layer_norm`.
    fn run_layers(&self, mut x: Tensor<3>, hook: &mut HiddenStateHook<'_>) -> Tensor<3> {
        x = hook(0, x);
        for (i, layer) in self.encoder.layers.iter().enumerate() {
            x = hook(i + 1, layer.forward(x));
        }
        x
    }

    /// `[b, n]` ids → last hidden state `[b, n, d]` and pooled EOS state `[b, d]`, as
    /// transformers' `CLIPTextModel.forward`. Errors on an empty batch, more than
    /// `max_position_embeddings` tokens, or (natively) an id outside the vocabulary.
    pub fn forward(&self, input_ids: Tensor<2, Int>) -> Result<CLIPTextOutput, LoadError> {
        self.forward_with_hook(input_ids, &mut |_, x| x)
    }

    /// [`forward`](Self::forward) with `hook` applied to each hidden state (index 0 = embeddings,
    /// `i` = after layer `i`) before it flows on, e.g. to steer or record a middle layer.
    pub fn forward_with_hook(
        &self,
        input_ids: Tensor<2, Int>,
        hook: &mut HiddenStateHook<'_>,
    ) -> Result<CLIPTextOutput, LoadError> {
        let x = self.embed(input_ids.clone())?;
        let last_hidden_state = self.final_layer_norm(self.run_layers(x, hook));
        let pooler_output = self.pool(last_hidden_state.clone(), input_ids);
        Ok(CLIPTextOutput { last_hidden_state, pooler_output })
    }

    /// [`forward`](Self::forward) from token vectors `inputs_embeds` `[b, n, d]` instead of ids
    /// (soft prompts, optimised embeddings); positions are added here, and `input_ids` `[b, n]`
    /// only choose the pooled row (transformers' `CLIPTextEmbeddings(inputs_embeds=…)`).
    pub fn forward_inputs_embeds(
        &self,
        inputs_embeds: Tensor<3>,
        input_ids: Tensor<2, Int>,
    ) -> Result<CLIPTextOutput, LoadError> {
        let [b, n, d] = inputs_embeds.dims();
        if input_ids.dims() != [b, n]
            || b == 0
            || n == 0
            || d != self.config.hidden_size
            || n > self.config.max_position_embeddings
        {
            return Err(LoadError::Unsupported(format!(
                "inputs_embeds {:?} and input_ids {:?} must be [b, n, {}] and [b, n] with 0 < n <= {}",
                [b, n, d],
                input_ids.dims(),
                self.config.hidden_size,
                self.config.max_position_embeddings
            )));
        }
        let x = self.embeddings.add_positions(inputs_embeds);
        let last_hidden_state = self.final_layer_norm(self.run_layers(x, &mut |_, x| x));
        let pooler_output = self.pool(last_hidden_state.clone(), input_ids);
        Ok(CLIPTextOutput { last_hidden_state, pooler_output })
    }

    /// transformers' `output_hidden_states`: `num_hidden_layers + 1` tensors `[b, n, d]`, the
    /// embeddings then each layer's output, all before `final_layer_norm`. diffusers' clip skip
    /// `k` uses `final_layer_norm(hidden_states[len - 1 - k])`.
    pub fn forward_hidden_states(&self, input_ids: Tensor<2, Int>) -> Result<Vec<Tensor<3>>, LoadError> {
        let mut states = Vec::with_capacity(self.encoder.layers.len() + 1);
        let x = self.embed(input_ids)?;
        self.run_layers(x, &mut |_, x: Tensor<3>| {
            states.push(x.clone());
            x
        });
        Ok(states)
    }

    /// The model's `final_layer_norm` on any hidden state `[b, n, d]` (clip skip).
    pub fn final_layer_norm(&self, x: Tensor<3>) -> Tensor<3> {
        self.final_layer_norm.forward(x)
    }

    /// The row of `hidden` `[b, n, d]` at each sequence's EOS token → `[b, d]`, by transformers'
    /// rule: with a legacy `eos_token_id == 2` the position of the largest id (the EOS id is the
    /// largest in CLIP's vocabulary), otherwise the first position holding `eos_token_id`; the
    /// first such position on ties, and position 0 when no id matches (torch `argmax` of zeros).
    /// Computed on the device so that it needs no read-back.
    pub fn pool(&self, hidden: Tensor<3>, input_ids: Tensor<2, Int>) -> Tensor<2> {
        let [b, n, d] = hidden.dims();
        let device = input_ids.device();
        let is_eos = if self.config.eos_token_id == 2 {
            let max = input_ids.clone().max_dim(1).expand([b, n]);
            input_ids.equal(max)
        } else {
            input_ids.equal_elem(self.config.eos_token_id)
        };
        let positions = Tensor::<1, Int>::arange(0..n as i64, &device).unsqueeze::<2>().expand([b, n]);
        // Non-matching positions become n, so the minimum is the first match, or n (→ 0) if none.
        let first = positions.mask_fill(is_eos.bool_not(), n as i64).min_dim(1).remainder_scalar(n as i64);
        let index = first.reshape([b, 1, 1]).expand([b, 1, d]);
        hidden.gather(1, index).reshape([b, d])
    }
}
