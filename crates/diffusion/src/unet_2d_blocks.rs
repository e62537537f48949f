//! The UNet's down, mid and up blocks, after diffusers `models/unets/unet_2d_blocks.py`:
//! `CrossAttnDownBlock2D`, `DownBlock2D`, `UNetMidBlock2DCrossAttn`, `CrossAttnUpBlock2D`,
//! `UpBlock2D` (no dual cross-attention, no FreeU, no ControlNet / T2I-adapter residuals).
//!
//! Like diffusers' `get_down_block` / `get_up_block`, these blocks' resnets always use
//! `output_scale_factor = 1` (the UNet's `resnet_out_scale_factor` only reaches other block
//! types); the mid block's resnets use `mid_block_scale_factor`.

use crate::attention_probe::AttentionProbe;
use crate::nn::{Conv2d, Linear};
use crate::resnet::{Downsample2D, ResnetBlock2D, ResnetBlock2DConfig, Upsample2D};
use crate::transformer_2d::{Transformer2DModel, TransformerConfig};
use crate::weights::WeightLoader;
use burn::tensor::Tensor;

/// Attention settings of a cross-attention block (one entry per block of the UNet config).
#[derive(Debug, Clone, Copy)]
pub struct CrossAttnConfig {
    /// Heads of each `Transformer2DModel`; the head width is `out_channels / heads`.
    pub num_attention_heads: usize,
    /// `BasicTransformerBlock`s per `Transformer2DModel` (`transformer_layers_per_block`).
    pub transformer_layers: usize,
    pub cross_attention_dim: usize,
    pub use_linear_projection: bool,
    pub only_cross_attention: bool,
}

impl CrossAttnConfig {
    fn transformer(&self, channels: usize, groups: usize) -> TransformerConfig {
        TransformerConfig {
            num_attention_heads: self.num_attention_heads,
            attention_head_dim: channels / self.num_attention_heads,
            in_channels: channels,
            num_layers: self.transformer_layers,
            cross_attention_dim: self.cross_attention_dim,
            norm_num_groups: groups,
            use_linear_projection: self.use_linear_projection,
            only_cross_attention: self.only_cross_attention,
        }
    }
}

/// Construction parameters of a down or up block.
#[derive(Debug, Clone, Copy)]
pub struct BlockConfig {
    /// Resnets in the block (`layers_per_block`, plus one in up blocks).
    pub num_layers: usize,
    pub in_channels: usize,
    pub out_channels: usize,
    /// Up blocks only: channels coming from the previous (deeper) up block.
    pub prev_output_channel: usize,
    pub temb_channels: usize,
    /// Down blocks: add a `Downsample2D`; up blocks: add an `Upsample2D`.
    pub add_sample: bool,
    pub resnet_eps: f64,
    pub resnet_groups: usize,
    pub downsample_padding: usize,
    /// `Some` for the `CrossAttn*` variants.
    pub attn: Option<CrossAttnConfig>,
}

fn resnet(w: &mut WeightLoader, prefix: &str, c_in: usize, c_out: usize, c: &BlockConfig, scale: f64) -> ResnetBlock2D {
    ResnetBlock2D::load(
        w,
        prefix,
        ResnetBlock2DConfig {
            in_channels: c_in,
            out_channels: c_out,
            temb_channels: Some(c.temb_channels),
            groups: c.resnet_groups,
            eps: c.resnet_eps,
            output_scale_factor: scale,
        },
    )
}

fn visit_linears(attentions: &[Transformer2DModel], prefix: &str, f: &mut dyn FnMut(&str, &Linear)) {
    for (j, a) in attentions.iter().enumerate() {
        a.for_each_linear(&format!("{prefix}.attentions.{j}"), f);
    }
}

fn visit_linears_mut(attentions: &mut [Transformer2DModel], prefix: &str, f: &mut dyn FnMut(&str, &mut Linear)) {
    for (j, a) in attentions.iter_mut().enumerate() {
        a.for_each_linear_mut(&format!("{prefix}.attentions.{j}"), f);
    }
}

fn set_probes(attentions: &mut [Transformer2DModel], prefix: &str, probe: Option<&AttentionProbe>) {
    for (j, a) in attentions.iter_mut().enumerate() {
        a.set_attention_probe(&format!("{prefix}.attentions.{j}"), probe);
    }
}

fn visit_convs_mut(attentions: &mut [Transformer2DModel], prefix: &str, f: &mut dyn FnMut(&str, &mut Conv2d)) {
    for (j, a) in attentions.iter_mut().enumerate() {
        a.for_each_conv_mut(&format!("{prefix}.attentions.{j}"), f);
    }
}

/// `DownBlock2D` (no `attentions`) or `CrossAttnDownBlock2D` (a transformer after each resnet).
#[derive(Debug, Clone)]
pub struct DownBlock {
    pub resnets: Vec<ResnetBlock2D>,
    /// Empty for `DownBlock2D`.
    pub attentions: Vec<Transformer2DModel>,
    /// `downsamplers.0`.
    pub downsamplers: Option<Downsample2D>,
}

impl DownBlock {
    /// Loads `down_blocks.{i}` (`prefix`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &BlockConfig) -> Self {
        let mut resnets = vec![];
        let mut attentions = vec![];
        for i in 0..c.num_layers {
            let c_in = if i == 0 { c.in_channels } else { c.out_channels };
            resnets.push(resnet(w, &format!("{prefix}.resnets.{i}"), c_in, c.out_channels, c, 1.0));
            if let Some(a) = &c.attn {
                let tc = a.transformer(c.out_channels, c.resnet_groups);
                attentions.push(Transformer2DModel::load(w, &format!("{prefix}.attentions.{i}"), &tc));
            }
        }
        let downsamplers = c.add_sample.then(|| {
            Downsample2D::load(
                w,
                &format!("{prefix}.downsamplers.0"),
                c.out_channels,
                c.out_channels,
                c.downsample_padding,
            )
        });
        Self { resnets, attentions, downsamplers }
    }

    /// `x`: `[b, c_in, h, w]`, `temb`: `[b, temb]`, `context`: `[b, seq, cross]` → the output and
    /// the skip connections it leaves for the up blocks (each resnet/transformer output, then the
    /// downsampled map).
    pub fn forward(&self, x: Tensor<4>, temb: &Tensor<2>, context: &Tensor<3>) -> (Tensor<4>, Vec<Tensor<4>>) {
        let mut h = x;
        let mut states = vec![];
        for (i, r) in self.resnets.iter().enumerate() {
            h = r.forward(h, Some(temb));
            if let Some(a) = self.attentions.get(i) {
                h = a.forward(h, context);
            }
            states.push(h.clone());
        }
        if let Some(d) = &self.downsamplers {
            h = d.forward(h);
            states.push(h.clone());
        }
        (h, states)
    }

    pub fn for_each_linear(&self, prefix: &str, f: &mut dyn FnMut(&str, &Linear)) {
        visit_linears(&self.attentions, prefix, f);
    }
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Linear)) {
        visit_linears_mut(&mut self.attentions, prefix, f);
    }
    pub fn for_each_conv_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Conv2d)) {
        visit_convs_mut(&mut self.attentions, prefix, f);
    }
    pub fn set_attention_probe(&mut self, prefix: &str, probe: Option<&AttentionProbe>) {
        set_probes(&mut self.attentions, prefix, probe);
    }
}

/// `UNetMidBlock2DCrossAttn` with `num_layers=1`: resnet, transformer, resnet.
#[derive(Debug, Clone)]
pub struct UNetMidBlock2DCrossAttn {
    pub resnets: Vec<ResnetBlock2D>,
    pub attentions: Vec<Transformer2DModel>,
}

impl UNetMidBlock2DCrossAttn {
    /// Loads `mid_block`; `c.in_channels` is the deepest width, `scale` is
    /// `mid_block_scale_factor` (every resnet's output is divided by it).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &BlockConfig, attn: &CrossAttnConfig, scale: f64) -> Self {
        let ch = c.in_channels;
        let tc = attn.transformer(ch, c.resnet_groups);
        Self {
            resnets: vec![
                resnet(w, &format!("{prefix}.resnets.0"), ch, ch, c, scale),
                resnet(w, &format!("{prefix}.resnets.1"), ch, ch, c, scale),
            ],
            attentions: vec![Transformer2DModel::load(w, &format!("{prefix}.attentions.0"), &tc)],
        }
    }

    /// `[b, c, h, w]` → `[b, c, h, w]`.
    pub fn forward(&self, x: Tensor<4>, temb: &Tensor<2>, context: &Tensor<3>) -> Tensor<4> {
        let mut h = self.resnets[0].forward(x, Some(temb));
        for (a, r) in self.attentions.iter().zip(&self.resnets[1..]) {
            h = a.forward(h, context);
            h = r.forward(h, Some(temb));
        }
        h
    }

    pub fn for_each_linear(&self, prefix: &str, f: &mut dyn FnMut(&str, &Linear)) {
        visit_linears(&self.attentions, prefix, f);
    }
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Linear)) {
        visit_linears_mut(&mut self.attentions, prefix, f);
    }
    pub fn for_each_conv_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Conv2d)) {
        visit_convs_mut(&mut self.attentions, prefix, f);
    }
    pub fn set_attention_probe(&mut self, prefix: &str, probe: Option<&AttentionProbe>) {
        set_probes(&mut self.attentions, prefix, probe);
    }
}

/// `UpBlock2D` (no `attentions`) or `CrossAttnUpBlock2D`: each resnet takes the running map
/// concatenated with one skip connection.
#[derive(Debug, Clone)]
pub struct UpBlock {
    pub resnets: Vec<ResnetBlock2D>,
    /// Empty for `UpBlock2D`.
    pub attentions: Vec<Transformer2DModel>,
    /// `upsamplers.0`.
    pub upsamplers: Option<Upsample2D>,
}

impl UpBlock {
    /// Loads `up_blocks.{i}` (`prefix`).
    pub fn load(w: &mut WeightLoader, prefix: &str, c: &BlockConfig) -> Self {
        let mut resnets = vec![];
        let mut attentions = vec![];
        for i in 0..c.num_layers {
            // The last resnet receives the skip of the shallower level (its `in_channels`).
            let skip = if i == c.num_layers - 1 { c.in_channels } else { c.out_channels };
            let c_in = if i == 0 { c.prev_output_channel } else { c.out_channels };
            resnets.push(resnet(w, &format!("{prefix}.resnets.{i}"), c_in + skip, c.out_channels, c, 1.0));
            if let Some(a) = &c.attn {
                let tc = a.transformer(c.out_channels, c.resnet_groups);
                attentions.push(Transformer2DModel::load(w, &format!("{prefix}.attentions.{i}"), &tc));
            }
        }
        let upsamplers = c
            .add_sample
            .then(|| Upsample2D::load(w, &format!("{prefix}.upsamplers.0"), c.out_channels, c.out_channels));
        Self { resnets, attentions, upsamplers }
    }

    /// `x`: `[b, c_prev, h, w]`; pops one skip connection per resnet from the end of `skips`;
    /// `upsample_size` (`[h, w]`) forces the upsampled size when a skip has an odd size.
    pub fn forward(
        &self,
        x: Tensor<4>,
        skips: &mut Vec<Tensor<4>>,
        temb: &Tensor<2>,
        context: &Tensor<3>,
        upsample_size: Option<[usize; 2]>,
    ) -> Tensor<4> {
        let mut h = x;
        for (i, r) in self.resnets.iter().enumerate() {
            // The UNet checks the skip count before calling, so this never runs dry.
            if let Some(skip) = skips.pop() {
                h = Tensor::cat(vec![h, skip], 1);
            }
            h = r.forward(h, Some(temb));
            if let Some(a) = self.attentions.get(i) {
                h = a.forward(h, context);
            }
        }
        match &self.upsamplers {
            Some(u) => u.forward(h, upsample_size),
            None => h,
        }
    }

    pub fn for_each_linear(&self, prefix: &str, f: &mut dyn FnMut(&str, &Linear)) {
        visit_linears(&self.attentions, prefix, f);
    }
    pub fn for_each_linear_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Linear)) {
        visit_linears_mut(&mut self.attentions, prefix, f);
    }
    pub fn for_each_conv_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut Conv2d)) {
        visit_convs_mut(&mut self.attentions, prefix, f);
    }
    pub fn set_attention_probe(&mut self, prefix: &str, probe: Option<&AttentionProbe>) {
        set_probes(&mut self.attentions, prefix, probe);
    }
}
