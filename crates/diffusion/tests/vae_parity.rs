//! AutoencoderKL parity with diffusers 0.42.1 (references written by scripts/reference/ref_vae.py).
//! Tolerance: f32, max abs error <= 1e-4 * max |reference| (no absolute slack).
#![allow(deprecated)]

mod common;

use burn::tensor::Tensor;
use common::{assert_close, component_source, config, device, read, tensor};
use diffusion::autoencoder_kl::{AutoencoderKL, AutoencoderKLConfig};
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use diffusion::weights::{SafetensorsSource, WeightLoader, read_all_f32};
use diffusion::{LoadError, TensorProblem};
use std::collections::BTreeMap;

/// A tensor read back as f32: its values and shape.
type NamedF32 = (Vec<f32>, Vec<usize>);

const REL: f32 = 1e-4;

fn load(model: &str) -> AutoencoderKL {
    let cfg = AutoencoderKLConfig::from_json(&config(model, "vae", "config.json")).unwrap();
    let mut src = component_source(model, "vae");
    AutoencoderKL::from_source(&cfg, &mut src, &device()).unwrap()
}

/// Decode of seeded latents and encode (mean, logvar) of a seeded image against diffusers.
fn check(model: &str, vae: &AutoencoderKL, reference: &SafetensorsBytes, prefix: &str) {
    let d = device();
    let latents: Tensor<4> = tensor(reference, &format!("{prefix}latents"), &d);
    let decoded = vae.decode(latents);
    assert_close(&format!("{model} decode"), decoded, tensor(reference, &format!("{prefix}decoded"), &d), REL, 0.0);

    let posterior = vae.encode(tensor(reference, &format!("{prefix}image"), &d));
    assert_close(
        &format!("{model} encode mean"),
        posterior.mean,
        tensor(reference, &format!("{prefix}mean"), &d),
        REL,
        0.0,
    );
    assert_close(
        &format!("{model} encode logvar"),
        posterior.logvar,
        tensor(reference, &format!("{prefix}logvar"), &d),
        REL,
        0.0,
    );
}

#[test]
fn tiny_sd1_matches_diffusers() {
    let vae = load("tiny-sd1");
    assert_eq!(vae.scale_factor(), 2);
    check("tiny-sd1", &vae, &read("reference/tiny-sd1/vae.safetensors"), "");
}

#[test]
fn tiny_sd2_f16_weights_match_diffusers() {
    let vae = load("tiny-sd2");
    assert_eq!(vae.scale_factor(), 4);
    assert_eq!(vae.decoder.up_blocks.len(), 3);
    check("tiny-sd2", &vae, &read("reference/tiny-sd2/vae.safetensors"), "");
}

/// layers_per_block 2, no mid-block attention, no quant convs, unequal widths, non-square latents:
/// the weights and the config travel in the reference file itself.
#[test]
fn variant_without_attention_or_quant_convs_matches_diffusers() {
    let reference = read("reference/vae-variant/vae.safetensors");
    let cfg = AutoencoderKLConfig::from_json(&reference.header.metadata["config"]).unwrap();
    assert!(!cfg.mid_block_add_attention && !cfg.use_quant_conv && !cfg.use_post_quant_conv);
    assert_eq!(cfg.shift_factor, Some(0.0609));
    let mut src = SafetensorsSource::new(vec![reference.clone()]);
    let mut w = WeightLoader::new(&mut src, &device(), "vae");
    let vae = AutoencoderKL::load(&cfg, &mut w);
    w.finish(&["ref."], "").unwrap();
    assert!(vae.quant_conv.is_none() && vae.decoder.mid_block.attention.is_none());
    assert_eq!(vae.decoder.up_blocks[0].resnets.len(), 3);
    assert_eq!(vae.scale_factor(), 4);
    check("vae-variant", &vae, &reference, "ref.");
}

/// Checkpoints converted long ago: `query/key/value/proj_attn` stored as 1×1 convs `[C, C, 1, 1]`.
#[test]
fn old_attention_key_names_load() {
    let all = read_all_f32(&read("tiny-sd1/vae/diffusion_pytorch_model.safetensors"));
    let mut renamed: Vec<(String, Vec<usize>, Vec<f32>)> = vec![];
    let mut n_old = 0;
    for (name, (data, mut shape)) in all {
        let mut new = name.clone();
        if name.contains(".mid_block.attentions.0.") {
            for (from, to) in
                [(".to_q.", ".query."), (".to_k.", ".key."), (".to_v.", ".value."), (".to_out.0.", ".proj_attn.")]
            {
                new = new.replace(from, to);
            }
            if new != name {
                n_old += 1;
                if shape.len() == 2 {
                    shape.extend([1, 1]);
                }
            }
        }
        renamed.push((new, shape, data));
    }
    assert_eq!(n_old, 16, "8 weights and 8 biases in the two mid-block attentions");
    let tensors: Vec<WriteTensor> = renamed
        .iter()
        .map(|(name, shape, data)| WriteTensor { name, shape: shape.clone(), data, dtype: Dtype::F32 })
        .collect();
    let bytes = serialize(&tensors, &BTreeMap::new());
    let file = SafetensorsBytes::parse("old.safetensors", bytes).unwrap();
    assert_eq!(file.header.tensors["decoder.mid_block.attentions.0.query.weight"].shape, vec![64, 64, 1, 1]);
    assert!(!file.header.tensors.contains_key("decoder.mid_block.attentions.0.to_q.weight"));

    let cfg = AutoencoderKLConfig::from_json(&config("tiny-sd1", "vae", "config.json")).unwrap();
    let mut src = SafetensorsSource::new(vec![file]);
    let vae = AutoencoderKL::from_source(&cfg, &mut src, &device()).unwrap();
    let reference = read("reference/tiny-sd1/vae.safetensors");
    let d = device();
    let decoded = vae.decode(tensor(&reference, "latents", &d));
    assert_close("tiny-sd1 decode, old key names", decoded, tensor(&reference, "decoded", &d), REL, 0.0);
}

#[test]
fn missing_tensor_is_reported_with_name_and_shape() {
    let kept: Vec<(String, NamedF32)> = read_all_f32(&read("tiny-sd1/vae/diffusion_pytorch_model.safetensors"))
        .into_iter()
        .filter(|(k, _)| k != "decoder.up_blocks.1.resnets.0.conv_shortcut.weight")
        .collect();
    let tensors: Vec<WriteTensor> = kept
        .iter()
        .map(|(name, (data, shape))| WriteTensor { name, shape: shape.clone(), data, dtype: Dtype::F32 })
        .collect();
    let file = SafetensorsBytes::parse("cut.safetensors", serialize(&tensors, &BTreeMap::new())).unwrap();
    let cfg = AutoencoderKLConfig::from_json(&config("tiny-sd1", "vae", "config.json")).unwrap();
    let mut src = SafetensorsSource::new(vec![file]);
    let err = AutoencoderKL::from_source(&cfg, &mut src, &device()).unwrap_err();
    match &err {
        LoadError::Tensors { component, problems, .. } => {
            assert_eq!(component, "vae");
            assert_eq!(
                problems,
                &vec![TensorProblem::Missing {
                    name: "decoder.up_blocks.1.resnets.0.conv_shortcut.weight".into(),
                    expected: vec![32, 64, 1, 1]
                }]
            );
        }
        other => panic!("expected a tensor error, got {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("decoder.up_blocks.1.resnets.0.conv_shortcut.weight") && msg.contains("[32, 64, 1, 1]"),
        "{msg}"
    );
}

/// A config that does not match the weights (wrong layers_per_block) reports every problem.
#[test]
fn mismatched_config_lists_unexpected_tensors() {
    let mut cfg = AutoencoderKLConfig::from_json(&config("tiny-sd1", "vae", "config.json")).unwrap();
    cfg.mid_block_add_attention = false;
    let mut src = component_source("tiny-sd1", "vae");
    let err = AutoencoderKL::from_source(&cfg, &mut src, &device()).unwrap_err();
    let LoadError::Tensors { problems, .. } = &err else { panic!("{err}") };
    // 2 attentions × (group_norm 2 + q/k/v/out 8) tensors.
    assert_eq!(problems.len(), 20, "{err}");
    assert!(
        problems
            .iter()
            .all(|p| matches!(p, TensorProblem::Unexpected { name, .. } if name.contains("mid_block.attentions.0"))),
        "{err}"
    );
}
