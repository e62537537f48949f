//! Recording the UNet's cross-attention probabilities, the raw material of DAAM (Tang et al.,
//! "What the DAAM: Interpreting Stable Diffusion Using Cross Attention", ACL 2023, §3 eq. 2–3;
//! official code castorini/daam `daam/trace.py`, `UNetCrossAttentionHooker._hooked_attention`
//! and `RawHeatMapCollection.update`).
//!
//! While recording, every `attn2` computes softmax(QKᵀ/√d) `[heads, n, 77]` for the conditional
//! batch element (DAAM drops the unconditional half: `map_[map_.size(0) // 2:]`) and adds it to
//! its layer's sum over steps, kept at the layer's own resolution `[heads, 77, h, w]` as DAAM's
//! `ids_to_heatmaps[(factor, layer, head)]` are. The attention output itself is computed as without
//! the probe, so a recorded run draws the same image bit for bit. Upsampling and the mean over
//! layers and heads are `pipeline::daam`'s.

use burn::tensor::Tensor;
use std::sync::{Arc, Mutex, MutexGuard};

/// One `attn2`'s probabilities summed over the recorded steps.
#[derive(Debug, Clone)]
pub struct LayerAttention {
    /// diffusers key of the layer, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn2`.
    pub key: String,
    /// `[heads, h * w, tokens]` (f32, as the attention computes them): Σ over steps of the softmax
    /// probabilities. [`Self::maps`] gives them as `[heads, tokens, h, w]`.
    pub sum: Tensor<3>,
    /// The layer's feature-map size.
    pub height: usize,
    pub width: usize,
    /// Steps added into `sum`.
    pub steps: usize,
}

impl LayerAttention {
    /// The sums as maps `[heads, tokens, h, w]`.
    pub fn maps(&self) -> Tensor<4> {
        let [heads, _, tokens] = self.sum.dims();
        self.sum.clone().reshape([heads, self.height, self.width, tokens]).permute([0, 3, 1, 2])
    }

    pub fn heads(&self) -> usize {
        self.sum.dims()[0]
    }
}

#[derive(Debug, Default)]
struct ProbeState {
    /// Runs are recorded only while armed: a probe can stay attached at no cost.
    armed: bool,
    /// The batch element to record (`Some` while a recorded UNet call runs).
    batch_index: Option<usize>,
    /// First and last denoising step (0-based, inclusive) recorded; `None`: every step.
    steps: Option<[usize; 2]>,
    /// In the order the layers ran in the first recorded call (down, mid, up).
    layers: Vec<LayerAttention>,
}

/// Shared by every `attn2` of a UNet while attached ([`crate::unet_2d_condition::UNet2DConditionModel::set_attention_probe`]).
#[derive(Debug, Clone, Default)]
pub struct AttentionProbe(Arc<Mutex<ProbeState>>);

impl AttentionProbe {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, ProbeState> {
        // A panic while recording leaves sums that are still valid tensors: keep going.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Arms the probe: the UNet calls of the next runs are recorded until [`Self::take`].
    pub fn arm(&self) {
        self.arm_steps(None);
    }

    /// Arms the probe for the denoising steps `first..=last` only (`None`: every step), DAAM's
    /// `time_idx` restricted to a window: the maps of the early steps show the layout, those of
    /// the late steps the details.
    pub fn arm_steps(&self, steps: Option<[usize; 2]>) {
        let mut s = self.state();
        s.armed = true;
        s.steps = steps;
        s.layers.clear();
    }

    /// Whether denoising step `step` (0-based) is recorded when armed.
    pub fn records_step(&self, step: usize) -> bool {
        self.state().steps.is_none_or(|[a, b]| (a..=b).contains(&step))
    }

    pub fn is_armed(&self) -> bool {
        self.state().armed
    }

    /// Records the next UNet call's cross-attention for batch element `batch_index` when armed
    /// (`None`: the next call is not recorded).
    pub fn set_recording(&self, batch_index: Option<usize>) {
        let mut s = self.state();
        s.batch_index = if s.armed { batch_index } else { None };
    }

    /// [`Self::set_recording`] for the UNet call of denoising step `step`: recorded only when the
    /// step is in the armed window.
    pub fn set_recording_step(&self, step: usize, batch_index: usize) {
        let mut s = self.state();
        let inside = s.steps.is_none_or(|[a, b]| (a..=b).contains(&step));
        s.batch_index = (s.armed && inside).then_some(batch_index);
    }

    /// The batch element being recorded, if a recorded call runs.
    pub fn recording(&self) -> Option<usize> {
        self.state().batch_index
    }

    /// Adds one layer's probabilities `[1, heads, h*w, tokens]` (from [`crate::attention::Attention::probabilities`])
    /// for a feature map of `h × w`. Kept in that layout: one addition a layer and step.
    pub fn add(&self, key: &str, h: usize, w: usize, probs: Tensor<4>) {
        let [_, heads, n, tokens] = probs.dims();
        debug_assert_eq!(n, h * w);
        let map = probs.reshape([heads, n, tokens]);
        let mut s = self.state();
        match s.layers.iter_mut().find(|l| l.key == key) {
            Some(l) => {
                l.sum = l.sum.clone() + map;
                l.steps += 1;
            }
            None => s.layers.push(LayerAttention { key: key.to_owned(), sum: map, height: h, width: w, steps: 1 }),
        }
    }

    /// The layers recorded so far, leaving the probe empty and disarmed.
    pub fn take(&self) -> Vec<LayerAttention> {
        let mut s = self.state();
        s.batch_index = None;
        s.armed = false;
        s.steps = None;
        std::mem::take(&mut s.layers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_window_records_only_its_steps() {
        let p = AttentionProbe::new();
        p.arm_steps(Some([2, 3]));
        let recorded: Vec<bool> = (0..6)
            .map(|step| {
                p.set_recording_step(step, 1);
                p.recording().is_some()
            })
            .collect();
        assert_eq!(recorded, [false, false, true, true, false, false]);
        assert!(!p.records_step(4) && p.records_step(3));
        p.take();
        // Taking disarms and forgets the window: the next arm records every step.
        p.set_recording_step(2, 1);
        assert_eq!(p.recording(), None, "disarmed");
        p.arm();
        assert!((0..6).all(|s| p.records_step(s)));
        p.set_recording_step(5, 0);
        assert_eq!(p.recording(), Some(0));
    }
}
