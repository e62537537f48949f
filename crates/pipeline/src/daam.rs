//! DAAM: per-token heat maps from cross-attention (Tang et al., "What the DAAM: Interpreting Stable
//! Diffusion Using Cross Attention", ACL 2023). Official code castorini/daam:
//! - `daam/trace.py`, `DiffusionHeatMapHooker.compute_global_heat_map`: every (layer, head) sum of
//!   probabilities over the steps ([`diffusion::attention_probe`]) is upsampled bicubically to the
//!   latent size, clamped at 0 ("the clamping fixes undershoot"), and the maps are averaged over
//!   all (layer, head) pairs: eq. 3 of the paper, `D_k = Σ_{t,ℓ,h} F↑(A_k^{(t,ℓ,h)})` up to the
//!   constant of the mean. Only the rows of the prompt's tokens are kept (SOT, the tokens, EOT).
//! - `HeatMap.compute_word_heat_map`: a word's map is the mean of its sub-word tokens' rows.
//! - `daam/utils.py`, `expand_image`: for display and for the IoU of §4 the word map is upsampled
//!   bicubically to the image, min-max normalised to [0, 1] and binarised at τ = 0.4 (§4.1).
//!
//! Bicubic upsampling is PyTorch's `F.interpolate(mode='bicubic', align_corners=False)` (cubic
//! convolution with A = −0.75, border samples clamped), written as two interpolation matrices so
//! that it runs on any device as two matmuls.

use crate::tokenizer::{ClipTokenizer, Encoding};
use burn::tensor::{Tensor, TensorData};
use diffusion::attention_probe::LayerAttention;

/// DAAM's binarisation threshold on the normalised heat map (§4.1, τ = 0.4).
pub const DAAM_THRESHOLD: f32 = 0.4;

/// PyTorch's cubic-convolution constant (`upsample_bicubic2d`, A = −0.75).
const A: f64 = -0.75;

fn cubic_near(x: f64) -> f64 {
    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
}

fn cubic_far(x: f64) -> f64 {
    ((A * x - 5.0 * A) * x + 8.0 * A) * x - 4.0 * A
}

/// `[output, input]` (row-major) matrix of PyTorch's 1-D bicubic resampling with
/// `align_corners=False`: source `x = (i + 0.5)·input/output − 0.5`, taps ⌊x⌋−1 … ⌊x⌋+2 clamped to
/// the border (`upsample_get_value_bounded`).
pub fn bicubic_matrix(input: usize, output: usize) -> Vec<f32> {
    let mut m = vec![0f32; output * input];
    let scale = input as f64 / output as f64;
    for i in 0..output {
        let x = scale * (i as f64 + 0.5) - 0.5;
        let x0 = x.floor();
        let t = x - x0;
        let weights = [cubic_far(t + 1.0), cubic_near(t), cubic_near(1.0 - t), cubic_far(2.0 - t)];
        for (j, wgt) in weights.iter().enumerate() {
            let src = (x0 as i64 - 1 + j as i64).clamp(0, input as i64 - 1) as usize;
            m[i * input + src] += *wgt as f32;
        }
    }
    m
}

/// Bicubic resize of `[b, h, w]` maps to `[b, out_h, out_w]` on their device.
pub fn resize_bicubic(x: Tensor<3>, out_h: usize, out_w: usize) -> Tensor<3> {
    let [b, h, w] = x.dims();
    let device = x.device();
    let ry = Tensor::<2>::from_data(TensorData::new(bicubic_matrix(h, out_h), [out_h, h]), &device);
    let rx = Tensor::<2>::from_data(TensorData::new(bicubic_matrix(w, out_w), [out_w, w]), &device);
    let ry = ry.unsqueeze::<3>().expand([b, out_h, h]);
    let rxt = rx.transpose().unsqueeze::<3>().expand([b, w, out_w]);
    ry.matmul(x).matmul(rxt)
}

/// The same resize on the CPU, for one map `[h, w]` already read back.
pub fn resize_bicubic_cpu(map: &[f32], h: usize, w: usize, out_h: usize, out_w: usize) -> Vec<f32> {
    let ry = bicubic_matrix(h, out_h);
    let rx = bicubic_matrix(w, out_w);
    let mut rows = vec![0f32; out_h * w];
    for i in 0..out_h {
        for k in 0..h {
            let c = ry[i * h + k];
            if c != 0.0 {
                for j in 0..w {
                    rows[i * w + j] += c * map[k * w + j];
                }
            }
        }
    }
    let mut out = vec![0f32; out_h * out_w];
    for i in 0..out_h {
        for j in 0..out_w {
            out[i * out_w + j] = (0..w).map(|k| rows[i * w + k] * rx[j * w + k]).sum();
        }
    }
    out
}

/// DAAM's global heat maps `[tokens, h, w]` at the latent size `h × w`: the mean over every
/// (layer, head) of the clamped bicubic upsampling of its probabilities summed over the steps.
/// `None` when nothing was recorded.
pub fn aggregate(layers: &[LayerAttention], h: usize, w: usize) -> Option<Tensor<3>> {
    let mut total: Option<Tensor<3>> = None;
    let mut groups = 0usize;
    for layer in layers {
        let [heads, tokens, lh, lw] = layer.maps().dims();
        let up = resize_bicubic(layer.maps().reshape([heads * tokens, lh, lw]), h, w).clamp_min(0.0);
        let summed = up.reshape([heads, tokens, h, w]).sum_dim(0).reshape([tokens, h, w]);
        total = Some(match total {
            Some(t) => t + summed,
            None => summed,
        });
        groups += heads;
    }
    total.map(|t| t / groups as f64)
}

/// What of a recording DAAM's maps aggregate: a window of the denoising steps (recorded by
/// [`diffusion::attention_probe::AttentionProbe::arm_steps`]) and the layers' resolutions, DAAM's
/// `compute_global_heat_map(factors=…)`: a layer's *factor* is the latent side over its feature
/// map's side (1, 2, 4, 8 on SD at 512 px). The default is every step and every layer, the sum of
/// eq. 3 over all of them; the official code at 512 px leaves out factor 8 (the mid block), which
/// `factors: [1, 2, 4]` reproduces.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Selection {
    /// First and last step (0-based, inclusive); `None`: every step.
    #[serde(default)]
    pub steps: Option<[usize; 2]>,
    /// The factors kept; `None`: every layer.
    #[serde(default)]
    pub factors: Option<Vec<usize>>,
}

impl Selection {
    /// Checks the selection against a run of `total` steps on a UNet whose cross-attention layers
    /// have the factors `available` ([`unet_factors`]), with a message that says what to choose.
    pub fn check(&self, total: usize, available: &[usize]) -> Result<(), String> {
        self.check_steps(total)?;
        self.check_factors(available)
    }

    /// The step window against a run of `total` steps.
    pub fn check_steps(&self, total: usize) -> Result<(), String> {
        if let Some([a, b]) = self.steps {
            if a > b {
                return Err(format!("attention steps {a}–{b}: the first step comes after the last; give FIRST-LAST"));
            }
            if b >= total {
                return Err(format!(
                    "attention steps {a}–{b}: this run has {total} steps, numbered 0–{}",
                    total.saturating_sub(1)
                ));
            }
        }
        Ok(())
    }

    /// The factors against those of the UNet's cross-attention layers ([`unet_factors`]).
    pub fn check_factors(&self, available: &[usize]) -> Result<(), String> {
        if let Some(f) = &self.factors {
            let list = || available.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(", ");
            if f.is_empty() {
                return Err(format!("choose at least one attention resolution (this UNet has factors {})", list()));
            }
            if let Some(bad) = f.iter().find(|x| !available.contains(x)) {
                return Err(format!(
                    "no cross-attention layer at 1/{bad} of the latent size: this UNet has factors {}",
                    list()
                ));
            }
        }
        Ok(())
    }

    /// The step window for a run of `total` steps: `[first, last]`.
    pub fn window(&self, total: usize) -> [usize; 2] {
        self.steps.unwrap_or([0, total.saturating_sub(1)])
    }

    /// Whether a layer of factor `factor` is aggregated.
    pub fn keeps(&self, factor: usize) -> bool {
        self.factors.as_ref().is_none_or(|f| f.contains(&factor))
    }
}

/// `FIRST-LAST` or `STEP` (0-based) → `[first, last]`.
pub fn parse_steps(s: &str) -> Result<[usize; 2], String> {
    let num = |t: &str| {
        t.trim()
            .parse::<usize>()
            .map_err(|_| format!("`{s}` is not a step window: give FIRST-LAST (0-based), e.g. 0-9"))
    };
    match s.split_once('-') {
        Some((a, b)) => Ok([num(a)?, num(b)?]),
        None => {
            let a = num(s)?;
            Ok([a, a])
        }
    }
}

/// DAAM's factor of a layer: the latent side over the layer's (`int(sqrt(latent_hw // n))`, rounded).
pub fn factor(latent_side: usize, layer_side: usize) -> usize {
    ((latent_side as f64 / layer_side.max(1) as f64).round() as usize).max(1)
}

/// The factors of a UNet's cross-attention layers, from its config (each down block but the last
/// halves the feature map): what [`Selection::factors`] may hold, before anything runs.
pub fn unet_factors(c: &diffusion::unet_2d_condition_config::UNet2DConditionConfig) -> Vec<usize> {
    let n = c.down_block_types.len();
    let mut out = vec![];
    let mut add = |f: usize| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    for (i, t) in c.down_block_types.iter().enumerate() {
        if t.contains("CrossAttn") {
            add(1 << i);
        }
    }
    if c.mid_block_type.as_deref().unwrap_or("UNetMidBlock2DCrossAttn").contains("CrossAttn") {
        add(1 << n.saturating_sub(1));
    }
    for (j, t) in c.up_block_types.iter().enumerate() {
        if t.contains("CrossAttn") {
            add(1 << n.saturating_sub(1 + j));
        }
    }
    out.sort_unstable();
    out
}

/// The cross-attention layers of one resolution in a recording.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Resolution {
    /// Latent side / the layers' side.
    pub factor: usize,
    pub height: usize,
    pub width: usize,
    pub layers: usize,
    pub heads: usize,
    /// Aggregated into the maps.
    pub selected: bool,
}

/// The resolutions of a recording (`latent_side`: the latent height), smallest factor first.
pub fn resolutions(layers: &[LayerAttention], latent_side: usize, selection: &Selection) -> Vec<Resolution> {
    let mut out: Vec<Resolution> = vec![];
    for l in layers {
        let f = factor(latent_side, l.height);
        match out.iter_mut().find(|r| r.factor == f) {
            Some(r) => {
                r.layers += 1;
                r.heads += l.heads();
            }
            None => out.push(Resolution {
                factor: f,
                height: l.height,
                width: l.width,
                layers: 1,
                heads: l.heads(),
                selected: selection.keeps(f),
            }),
        }
    }
    out.sort_by_key(|r| r.factor);
    out
}

/// The layers `selection` keeps (tensors are shared, not copied).
pub fn select(layers: &[LayerAttention], latent_side: usize, selection: &Selection) -> Vec<LayerAttention> {
    layers.iter().filter(|l| selection.keeps(factor(latent_side, l.height))).cloned().collect()
}

/// [`aggregate`] of the layers of `recorded` that `selection` keeps: `(the kept layers, maps)`;
/// `None` when it keeps none.
pub fn aggregate_selection(
    recorded: &[LayerAttention],
    h: usize,
    w: usize,
    selection: &Selection,
) -> Option<(Vec<LayerAttention>, Tensor<3>)> {
    let kept = select(recorded, h, selection);
    let maps = aggregate(&kept, h, w)?;
    Some((kept, maps))
}

/// A word of the prompt and the rows of its sub-word tokens in [`AttentionMaps::maps`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Word {
    pub text: String,
    pub rows: Vec<usize>,
}

/// The tokens of an encoded prompt as text (SOT and EOT included, `</w>` dropped) and its words:
/// CLIP's BPE ends the last piece of a word with `</w>`.
pub fn prompt_words(tokenizer: &ClipTokenizer, encoding: &Encoding) -> (Vec<String>, Vec<Word>) {
    let n = encoding.n_tokens.min(encoding.ids.len());
    let raw: Vec<String> =
        encoding.ids[..n].iter().map(|&id| tokenizer.decode_token(id).unwrap_or("?").to_owned()).collect();
    let tokens: Vec<String> = raw.iter().map(|t| t.trim_end_matches("</w>").to_owned()).collect();
    let mut words = vec![];
    let mut current = Word { text: String::new(), rows: vec![] };
    for (row, t) in raw.iter().enumerate().take(n.saturating_sub(1)).skip(1) {
        current.text.push_str(t.trim_end_matches("</w>"));
        current.rows.push(row);
        if t.ends_with("</w>") {
            words.push(std::mem::replace(&mut current, Word { text: String::new(), rows: vec![] }));
        }
    }
    if !current.rows.is_empty() {
        words.push(current);
    }
    (tokens, words)
}

/// A run's heat maps, read back.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AttentionMaps {
    /// The prompt's tokens: SOT, the prompt's, EOT.
    pub tokens: Vec<String>,
    pub words: Vec<Word>,
    /// Latent size of the maps.
    pub height: usize,
    pub width: usize,
    /// Cross-attention layers and heads averaged, steps summed.
    pub layers: usize,
    pub heads: usize,
    pub steps: usize,
    /// The denoising steps recorded, `[first, last]` (0-based, inclusive), of the run's `run_steps`.
    pub step_window: [usize; 2],
    pub run_steps: usize,
    /// Every resolution recorded, and whether it is in the maps ([`Selection::factors`]).
    pub resolutions: Vec<Resolution>,
    /// `[tokens, height, width]`, row-major: DAAM's raw maps (Σ over tokens of all 77 rows = steps).
    #[serde(skip)]
    pub maps: Vec<f32>,
}

impl AttentionMaps {
    /// `data`: [`aggregate`]'s `[77, h, w]` read back.
    pub fn new(
        tokenizer: &ClipTokenizer,
        encoding: &Encoding,
        layers: &[LayerAttention],
        h: usize,
        w: usize,
        data: &[f32],
    ) -> Self {
        let (tokens, words) = prompt_words(tokenizer, encoding);
        let rows = tokens.len().min(data.len() / (h * w).max(1));
        Self {
            tokens,
            words,
            height: h,
            width: w,
            layers: layers.len(),
            heads: layers.iter().map(|l| l.heads()).sum(),
            steps: layers.iter().map(|l| l.steps).max().unwrap_or(0),
            step_window: [0, layers.iter().map(|l| l.steps).max().unwrap_or(1).saturating_sub(1)],
            run_steps: layers.iter().map(|l| l.steps).max().unwrap_or(0),
            resolutions: resolutions(layers, h, &Selection::default()),
            maps: data[..rows * h * w].to_vec(),
        }
    }

    /// Records what the maps were chosen from: `recorded`, every layer the probe recorded (the
    /// maps were aggregated from `select(recorded, …)`) in a run of `run_steps` steps.
    pub fn with_selection(mut self, recorded: &[LayerAttention], selection: &Selection, run_steps: usize) -> Self {
        self.resolutions = resolutions(recorded, self.height, selection);
        self.step_window = selection.window(run_steps);
        self.run_steps = run_steps;
        self
    }

    /// Row `row` (a token) `[h, w]`.
    pub fn token_map(&self, row: usize) -> &[f32] {
        let n = self.height * self.width;
        &self.maps[row * n..(row + 1) * n]
    }

    /// A word's map: the mean of its tokens' rows (`compute_word_heat_map`).
    pub fn word_map(&self, word: &Word) -> Vec<f32> {
        let n = self.height * self.width;
        let mut out = vec![0f32; n];
        for &r in &word.rows {
            for (o, v) in out.iter_mut().zip(self.token_map(r)) {
                *o += v;
            }
        }
        let k = word.rows.len().max(1) as f32;
        out.iter_mut().for_each(|o| *o /= k);
        out
    }

    /// A word's map at the image size, min-max normalised to [0, 1] (`expand_image`).
    pub fn word_heat(&self, word: &Word, out_h: usize, out_w: usize) -> Vec<f32> {
        normalise(&resize_bicubic_cpu(&self.word_map(word), self.height, self.width, out_h, out_w))
    }
}

/// What a word's map says about an image: the IoU of the map binarised at τ with an object mask.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WordScore {
    pub word: String,
    /// `None` when neither the binarised map nor the mask has a pixel.
    pub iou: Option<f64>,
}

impl AttentionMaps {
    /// Each word's IoU with `mask` (`[out_h * out_w]`, the image's object pixels), at τ = 0.4.
    pub fn word_scores(&self, mask: &[bool], out_h: usize, out_w: usize) -> Vec<WordScore> {
        self.words
            .iter()
            .map(|w| WordScore {
                word: w.text.clone(),
                iou: iou(&self.word_heat(w, out_h, out_w), mask, DAAM_THRESHOLD),
            })
            .collect()
    }
}

/// Min-max normalisation to [0, 1] (`(x − min) / (max − min + 1e-8)`, as `expand_image`).
pub fn normalise(x: &[f32]) -> Vec<f32> {
    let lo = x.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    x.iter().map(|v| (v - lo) / (hi - lo + 1e-8)).collect()
}

/// Intersection over union of `heat > τ` with `mask`; `None` when both are empty.
pub fn iou(heat: &[f32], mask: &[bool], threshold: f32) -> Option<f64> {
    let (mut inter, mut union) = (0usize, 0usize);
    for (&h, &m) in heat.iter().zip(mask) {
        let a = h > threshold;
        inter += (a && m) as usize;
        union += (a || m) as usize;
    }
    (union > 0).then(|| inter as f64 / union as f64)
}

/// Runs a closure with a probe attached to `model`'s UNet, then detaches it and returns the
/// recorded layers with the closure's result. Every cross-attention of every step is recorded
/// (DAAM aggregates all timesteps).
pub fn recorded<T>(
    model: &mut crate::StableDiffusion,
    run: impl FnOnce(&crate::StableDiffusion) -> T,
) -> (T, Vec<LayerAttention>) {
    recorded_steps(model, None, run)
}

/// [`recorded`] for the denoising steps `first..=last` only (`None`: every step).
pub fn recorded_steps<T>(
    model: &mut crate::StableDiffusion,
    steps: Option<[usize; 2]>,
    run: impl FnOnce(&crate::StableDiffusion) -> T,
) -> (T, Vec<LayerAttention>) {
    let probe = diffusion::attention_probe::AttentionProbe::new();
    probe.arm_steps(steps);
    model.unet.set_attention_probe(Some(probe.clone()));
    let out = run(model);
    model.unet.set_attention_probe(None);
    (out, probe.take())
}

/// Latent size of the maps for an image of `height × width`.
pub fn latent_size(model: &crate::StableDiffusion, height: usize, width: usize) -> [usize; 2] {
    let f = model.vae.scale_factor().max(1);
    [height.div_ceil(f), width.div_ceil(f)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;

    #[test]
    fn step_windows_parse_and_are_checked() {
        assert_eq!(parse_steps("3-9"), Ok([3, 9]));
        assert_eq!(parse_steps(" 4 "), Ok([4, 4]));
        assert!(parse_steps("a-3").unwrap_err().contains("FIRST-LAST"));
        assert!(parse_steps("-3").is_err());
        let s = Selection { steps: Some([5, 20]), factors: None };
        assert!(s.check(20, &[1]).unwrap_err().contains("this run has 20 steps, numbered 0–19"));
        assert_eq!(s.check(21, &[1]), Ok(()));
        assert_eq!(s.window(21), [5, 20]);
        assert_eq!(Selection::default().window(30), [0, 29]);
    }

    #[test]
    fn factors_of_sd_and_their_check() {
        // SD 1.5 at 512 px: cross-attention at 64², 32², 16² (down and up) and 8² (mid).
        let sd15 = diffusion::unet_2d_condition_config::UNet2DConditionConfig::sd15();
        assert_eq!(unet_factors(&sd15), [1, 2, 4, 8]);
        let mut no_mid = sd15.clone();
        no_mid.mid_block_type = Some("UNetMidBlock2D".into());
        no_mid.up_block_types[1] = "UpBlock2D".into();
        assert_eq!(unet_factors(&no_mid), [1, 2, 4], "the 16² down block still attends");
        let daam = Selection { steps: None, factors: Some(vec![1, 2, 4]) };
        assert_eq!(daam.check(50, &[1, 2, 4, 8]), Ok(()));
        assert!(!daam.keeps(8) && daam.keeps(2));
        let bad = Selection { steps: None, factors: Some(vec![3]) };
        assert!(
            bad.check(50, &[1, 2, 4, 8])
                .unwrap_err()
                .contains("no cross-attention layer at 1/3 of the latent size: this UNet has factors 1, 2, 4, 8")
        );
        assert_eq!(factor(64, 8), 8);
        assert_eq!(factor(60, 8), 8, "60 → 30 → 15 → 8: DAAM's rounding");
    }

    #[test]
    fn resolutions_group_layers_and_select_keeps_them() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let layer = |key: &str, side: usize, heads: usize| LayerAttention {
            key: key.into(),
            sum: Tensor::<3>::ones([heads, side * side, 77], &device),
            height: side,
            width: side,
            steps: 1,
        };
        let layers = vec![layer("down.0", 8, 2), layer("down.1", 4, 2), layer("mid", 2, 4), layer("up.1", 4, 2)];
        let sel = Selection { steps: None, factors: Some(vec![2]) };
        let r = resolutions(&layers, 8, &sel);
        assert_eq!(
            r.iter().map(|r| (r.factor, r.layers, r.heads, r.selected)).collect::<Vec<_>>(),
            [(1, 1, 2, false), (2, 2, 4, true), (4, 1, 4, false)]
        );
        let kept = select(&layers, 8, &sel);
        assert_eq!(kept.iter().map(|l| l.key.as_str()).collect::<Vec<_>>(), ["down.1", "up.1"]);
        assert!(aggregate_selection(&layers, 8, 8, &Selection { steps: None, factors: Some(vec![16]) }).is_none());
    }

    /// `torch.nn.functional.interpolate(torch.arange(4.).view(1,1,1,4), size=(1,8), mode='bicubic')`
    /// (align_corners=False), printed by PyTorch 2.15.0.
    #[test]
    fn bicubic_matches_pytorch() {
        let m = bicubic_matrix(4, 8);
        let x = [0f32, 1.0, 2.0, 3.0];
        let y: Vec<f32> = (0..8).map(|i| (0..4).map(|j| m[i * 4 + j] * x[j]).sum()).collect();
        let want = [-0.10546875f64, 0.19140625, 0.66796875, 1.296875, 1.703125, 2.33203125, 2.80859375, 3.10546875];
        for (a, b) in y.iter().zip(want) {
            assert!((*a as f64 - b).abs() < 1e-6, "{y:?}");
        }
        // Every row sums to one: a constant map stays constant.
        for i in 0..8 {
            let s: f32 = m[i * 4..i * 4 + 4].iter().sum();
            assert!((s - 1.0).abs() < 1e-6);
        }
    }

    /// A 3×4 map `(7i mod 5)` resized to 6×10: the first output row from
    /// `F.interpolate(m.view(1,1,3,4), size=(6,10), mode='bicubic', align_corners=False)` (PyTorch 2.15.0).
    #[test]
    fn two_dimensional_bicubic_matches_pytorch() {
        let map: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32).collect();
        let got = resize_bicubic_cpu(&map, 3, 4, 6, 10);
        let want = [
            -0.595_045_4f32,
            -0.122_663_36,
            0.759_765_6,
            1.882_196_4,
            3.214_244_4,
            4.161_244,
            4.043_195,
            2.634_765_6,
            0.986_334_8,
            0.294_705_12,
        ];
        for (a, b) in got.iter().zip(want) {
            assert!((a - b).abs() < 1e-5, "{:?}", &got[..10]);
        }
    }

    #[test]
    fn device_and_cpu_resize_agree() {
        #[allow(deprecated)]
        let device = Device::ndarray();
        let map: Vec<f32> = (0..12).map(|i| ((i * 7) % 5) as f32).collect();
        let t = Tensor::<3>::from_data(TensorData::new(map.clone(), [1, 3, 4]), &device);
        let dev = resize_bicubic(t, 6, 10).into_data().try_to_vec::<f32>().unwrap();
        let cpu = resize_bicubic_cpu(&map, 3, 4, 6, 10);
        for (a, b) in dev.iter().zip(&cpu) {
            assert!((a - b).abs() < 1e-5);
        }
    }

    #[test]
    fn iou_counts_pixels() {
        let heat = [0.9, 0.5, 0.1, 0.0];
        let mask = [true, false, true, false];
        assert_eq!(iou(&heat, &mask, 0.4), Some(1.0 / 3.0));
        assert_eq!(iou(&[0.0; 4], &[false; 4], 0.4), None);
    }
}
