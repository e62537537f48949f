//! CLIPTextModel parity with transformers on the tiny fixtures, plus loading and input errors.
//!
//! References: `scripts/reference/ref_clip.py` (transformers 5.24 `CLIPTextModel`, eager
//! attention, f32). Tolerance: max abs error <= 1e-4 × max |reference| (f32 parity).
#![allow(deprecated)]

mod common;

use burn::tensor::{Int, Tensor, TensorData};
use common::{assert_close, component_source, config, device, read, tensor};
use diffusion::clip::{CLIPTextConfig, CLIPTextModel, HiddenAct, IGNORED_KEYS};
use diffusion::error::{LoadError, TensorProblem};
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use diffusion::weights::{SafetensorsSource, WeightLoader, read_all_f32};
use std::collections::BTreeMap;

/// A tensor read back as f32: its values and shape.
type NamedF32 = (Vec<f32>, Vec<usize>);

const REL: f32 = 1e-4;

fn load(model: &str) -> CLIPTextModel {
    let cfg = CLIPTextConfig::from_json(&config(model, "text_encoder", "config.json")).unwrap();
    let mut src = component_source(model, "text_encoder");
    let mut w = WeightLoader::new(&mut src, &device(), "text_encoder");
    let m = CLIPTextModel::load(&cfg, &mut w);
    w.finish(IGNORED_KEYS, "").unwrap();
    m
}

/// The reference's `input_ids` (stored as f32) as an Int tensor `[2, 77]`.
fn ref_ids(reference: &SafetensorsBytes) -> Tensor<2, Int> {
    let (v, shape) = reference.f32("input_ids").unwrap();
    let ids: Vec<i64> = v.iter().map(|&x| x as i64).collect();
    Tensor::from_data(TensorData::new(ids, [shape[0], shape[1]]), &device())
}

fn parity(model: &str) {
    let te = load(model);
    let reference = read(&format!("reference/{model}/text_encoder.safetensors"));
    let ids = ref_ids(&reference);
    assert_eq!(ids.dims(), [2, 77]);
    let dev = device();

    let out = te.forward(ids.clone()).unwrap();
    assert_close(
        &format!("{model} last_hidden_state"),
        out.last_hidden_state,
        tensor(&reference, "last_hidden_state", &dev),
        REL,
        0.0,
    );
    assert_close(
        &format!("{model} pooler_output"),
        out.pooler_output,
        tensor(&reference, "pooler_output", &dev),
        REL,
        0.0,
    );

    let states = te.forward_hidden_states(ids.clone()).unwrap();
    assert_eq!(states.len(), te.config().num_hidden_layers + 1);
    for (i, s) in states.iter().enumerate() {
        assert_close(
            &format!("{model} hidden_states.{i}"),
            s.clone(),
            tensor(&reference, &format!("hidden_states.{i}"), &dev),
            REL,
            0.0,
        );
    }
    // Clip skip 0 through the public pieces equals last_hidden_state.
    let last = te.final_layer_norm(states.last().unwrap().clone());
    assert_close(
        &format!("{model} final_layer_norm(hidden_states[-1])"),
        last,
        tensor(&reference, "last_hidden_state", &dev),
        REL,
        0.0,
    );
}

#[test]
fn tiny_sd1_matches_transformers() {
    parity("tiny-sd1");
}

#[test]
fn tiny_sd2_f16_weights_match_transformers() {
    parity("tiny-sd2");
}

#[test]
fn configs_and_presets() {
    let c1 = CLIPTextConfig::from_json(&config("tiny-sd1", "text_encoder", "config.json")).unwrap();
    assert_eq!((c1.hidden_size, c1.num_hidden_layers, c1.num_attention_heads, c1.intermediate_size), (32, 5, 4, 37));
    assert_eq!((c1.hidden_act, c1.vocab_size, c1.eos_token_id), (HiddenAct::QuickGelu, 2514, 2513));
    let c2 = CLIPTextConfig::from_json(&config("tiny-sd2", "text_encoder", "config.json")).unwrap();
    assert_eq!((c2.hidden_size, c2.hidden_act), (48, HiddenAct::Gelu));

    let sd15 = CLIPTextConfig::sd15();
    assert_eq!(
        (sd15.hidden_size, sd15.num_hidden_layers, sd15.hidden_act, sd15.eos_token_id),
        (768, 12, HiddenAct::QuickGelu, 2)
    );
    let sd21 = CLIPTextConfig::sd21();
    assert_eq!(
        (sd21.hidden_size, sd21.num_hidden_layers, sd21.num_attention_heads, sd21.hidden_act),
        (1024, 23, 16, HiddenAct::Gelu)
    );

    // A full CLIPModel config: its `text_config` is used; missing keys take transformers' defaults.
    let full = CLIPTextConfig::from_json(r#"{"text_config": {"hidden_size": 768, "num_attention_heads": 12, "hidden_act": "gelu_pytorch_tanh"}, "vision_config": {}}"#).unwrap();
    assert_eq!(
        (full.hidden_size, full.num_hidden_layers, full.vocab_size, full.hidden_act),
        (768, 12, 49408, HiddenAct::GeluNew)
    );

    let bad = CLIPTextConfig::from_json(r#"{"hidden_size": 30, "num_attention_heads": 4}"#).unwrap_err().to_string();
    assert!(bad.contains("not a multiple of `num_attention_heads`"), "{bad}");
    let bad = CLIPTextConfig::from_json(r#"{"hidden_act": "relu"}"#).unwrap_err().to_string();
    assert!(bad.contains("text_encoder/config.json") && bad.contains("relu"), "{bad}");
}

#[test]
fn loads_keys_with_text_model_prefix() {
    // The fixture is saved by transformers v5 (no prefix); SD checkpoints on the hub carry
    // `text_model.` and an `embeddings.position_ids` buffer. Rewrite the file that way.
    let (v, shape) = read("tiny-sd1/text_encoder/model.safetensors").f32("embeddings.token_embedding.weight").unwrap();
    assert_eq!(shape, [2514, 32]);
    let original = read_all_f32(&read("tiny-sd1/text_encoder/model.safetensors"));
    let renamed: Vec<(String, NamedF32)> =
        original.iter().map(|(k, t)| (format!("text_model.{k}"), t.clone())).collect();
    let position_ids: Vec<f32> = (0..77).map(|i| i as f32).collect();
    let mut tensors: Vec<WriteTensor> = renamed
        .iter()
        .map(|(k, (d, s))| WriteTensor { name: k, shape: s.clone(), data: d, dtype: Dtype::F32 })
        .collect();
    tensors.push(WriteTensor {
        name: "text_model.embeddings.position_ids",
        shape: vec![1, 77],
        data: &position_ids,
        dtype: Dtype::F32,
    });
    let bytes = serialize(&tensors, &BTreeMap::new());
    let mut src = SafetensorsSource::new(vec![SafetensorsBytes::parse("prefixed.safetensors", bytes).unwrap()]);

    let cfg = CLIPTextConfig::from_json(&config("tiny-sd1", "text_encoder", "config.json")).unwrap();
    let mut w = WeightLoader::new(&mut src, &device(), "text_encoder");
    let te = CLIPTextModel::load(&cfg, &mut w);
    w.finish(IGNORED_KEYS, "").unwrap();
    let table: Vec<f32> = te.embeddings.token_embedding.clone().into_data().to_vec().unwrap();
    assert_eq!(table, v);

    let reference = read("reference/tiny-sd1/text_encoder.safetensors");
    let out = te.forward(ref_ids(&reference)).unwrap();
    assert_close(
        "prefixed last_hidden_state",
        out.last_hidden_state,
        tensor(&reference, "last_hidden_state", &device()),
        REL,
        0.0,
    );

    // Without IGNORED_KEYS the buffer is reported, so the constant is what makes it load.
    let mut w = WeightLoader::new(&mut src, &device(), "text_encoder");
    CLIPTextModel::load(&cfg, &mut w);
    let err = w.finish(&[], "").unwrap_err().to_string();
    assert!(err.contains("unexpected tensor `text_model.embeddings.position_ids`"), "{err}");
}

#[test]
fn wrong_shapes_are_all_listed() {
    // tiny-sd2 weights (48 wide, 3 layers, MLP 64) with tiny-sd1's config (32 wide, 5 layers, MLP 37).
    let cfg = CLIPTextConfig::from_json(&config("tiny-sd1", "text_encoder", "config.json")).unwrap();
    let mut src = component_source("tiny-sd2", "text_encoder");
    let mut w = WeightLoader::new(&mut src, &device(), "text_encoder");
    CLIPTextModel::load(&cfg, &mut w);
    let err = w.finish(IGNORED_KEYS, "this text encoder belongs to another model").unwrap_err();
    let msg = err.to_string();
    let LoadError::Tensors { problems, .. } = err else { panic!("{msg}") };
    let wrong = |name: &str| {
        problems.iter().find_map(|p| match p {
            TensorProblem::WrongShape { name: n, expected, found } if n == name => {
                Some((expected.clone(), found.clone()))
            }
            _ => None,
        })
    };
    assert_eq!(wrong("embeddings.token_embedding.weight"), Some((vec![2514, 32], vec![2514, 48])));
    assert_eq!(wrong("encoder.layers.0.mlp.fc1.weight"), Some((vec![37, 32], vec![64, 48])));
    assert_eq!(wrong("final_layer_norm.weight"), Some((vec![32], vec![48])));
    assert!(
        msg.contains(
            "tensor `encoder.layers.2.self_attn.q_proj.weight` has shape [48, 48], the model expects [32, 32]"
        ),
        "{msg}"
    );
    // Layers 3 and 4 are not in the file at all.
    assert!(
        problems.contains(&TensorProblem::Missing {
            name: "text_model.encoder.layers.4.mlp.fc2.bias".into(),
            expected: vec![32]
        }),
        "{msg}"
    );
    let wrong_shapes = problems.iter().filter(|p| matches!(p, TensorProblem::WrongShape { .. })).count();
    let missing = problems.iter().filter(|p| matches!(p, TensorProblem::Missing { .. })).count();
    // 4 embedding/final-norm tensors + 3 layers × 16 tensors have the wrong shape; 2 layers × 16 are missing.
    assert_eq!((wrong_shapes, missing), (4 + 3 * 16, 2 * 16), "{msg}");
    assert!(msg.contains("this text encoder belongs to another model"), "{msg}");
}

#[test]
fn bad_ids_are_errors() {
    let te = load("tiny-sd1");
    let dev = device();
    let ids = |v: Vec<i64>| {
        let n = v.len();
        Tensor::<2, Int>::from_data(TensorData::new(v, [1, n]), &dev)
    };
    let err = te.forward(ids(vec![2512, 320, 2514, 2513])).unwrap_err().to_string();
    assert!(err.contains("token id 2514") && err.contains("vocabulary of 2514 tokens"), "{err}");
    let err = te.forward(ids(vec![2512, -1, 2513])).unwrap_err().to_string();
    assert!(err.contains("token id -1"), "{err}");
    let err = te.forward_hidden_states(ids(vec![7; 78])).unwrap_err().to_string();
    assert!(err.contains("78 tokens") && err.contains("at most 77"), "{err}");
    assert!(te.check_ids(&[2512u32, 2513]).is_ok());
    assert!(te.check_ids(&[2512u32, 9999]).is_err());
    // Short sequences are fine (positions 0..n).
    let out = te.forward(ids(vec![2512, 320, 2513])).unwrap();
    assert_eq!(out.last_hidden_state.dims(), [1, 3, 32]);
}

#[test]
fn pooling_rules() {
    let reference = read("reference/tiny-sd1/text_encoder.safetensors");
    let dev = device();
    let want = tensor::<2>(&reference, "pooler_output", &dev);
    let mut te = load("tiny-sd1");
    let ids = ref_ids(&reference);
    let out = te.forward(ids.clone()).unwrap();
    // The EOS positions of the two prompts are 6 and 11 (padding is EOS too: first one wins).
    let rows = |h: &Tensor<3>, p: [usize; 2]| {
        Tensor::cat(vec![h.clone().narrow(0, 0, 1).narrow(1, p[0], 1), h.clone().narrow(0, 1, 1).narrow(1, p[1], 1)], 0)
            .reshape([2, 32])
    };
    assert_close("pooled = rows 6, 11", out.pooler_output.clone(), rows(&out.last_hidden_state, [6, 11]), 0.0, 0.0);
    assert_close("pooled vs transformers", out.pooler_output.clone(), want, REL, 0.0);

    // Legacy configs (eos_token_id 2, SD 1.x/2.x): argmax of the ids, here the same EOS rows.
    let mut legacy = te.config().clone();
    legacy.eos_token_id = 2;
    let mut src = component_source("tiny-sd1", "text_encoder");
    let mut w = WeightLoader::new(&mut src, &dev, "text_encoder");
    let te_legacy = CLIPTextModel::load(&legacy, &mut w);
    assert_close("legacy pooled", te_legacy.forward(ids.clone()).unwrap().pooler_output, out.pooler_output, 0.0, 0.0);
    // Legacy with no EOS (nor BOS): the largest id, 2368 at position 5.
    let no_eos: Vec<i64> = vec![5, 320, 1125, 539, 320, 2368, 7, 7];
    let no_eos = Tensor::<2, Int>::from_data(TensorData::new(no_eos, [1, 8]), &dev);
    let out = te_legacy.forward(no_eos.clone()).unwrap();
    let row5 = out.last_hidden_state.clone().narrow(1, 5, 1).reshape([1, 32]);
    assert_close("legacy argmax row", out.pooler_output, row5, 0.0, 0.0);
    // New rule with no EOS: position 0, as torch's argmax of an all-false mask.
    let out = te.forward(no_eos).unwrap();
    let row0 = out.last_hidden_state.clone().narrow(1, 0, 1).reshape([1, 32]);
    assert_close("no-EOS row 0", out.pooler_output, row0, 0.0, 0.0);

    // A hook that records layer 3 sees hidden_states[3]; one that changes it changes the output.
    let mut seen = None;
    te.forward_with_hook(ids.clone(), &mut |i, x: Tensor<3>| {
        if i == 3 {
            seen = Some(x.clone());
        }
        x
    })
    .unwrap();
    assert_close("hook layer 3", seen.unwrap(), tensor(&reference, "hidden_states.3", &dev), REL, 0.0);
    let zeroed =
        te.forward_with_hook(ids.clone(), &mut |i, x: Tensor<3>| if i == 5 { x.zeros_like() } else { x }).unwrap();
    let bias: Tensor<1> = te.final_layer_norm.bias.clone();
    assert_close("hook replaces the state", zeroed.pooler_output.narrow(0, 0, 1).reshape([32]), bias, 0.0, 1e-6);

    // Token vectors in place of ids give the same result.
    let vectors = burn::tensor::module::embedding(te.embeddings.token_embedding.clone(), ids.clone());
    let from_vectors = te.forward_inputs_embeds(vectors, ids.clone()).unwrap();
    assert_close(
        "forward_inputs_embeds",
        from_vectors.last_hidden_state,
        te.forward(ids.clone()).unwrap().last_hidden_state,
        0.0,
        0.0,
    );
    assert!(te.forward_inputs_embeds(Tensor::zeros([2, 78, 32], &dev), ids.clone()).is_err());

    // Textual inversion: a new row appended to the public table is usable as token 2514.
    let extra = Tensor::<2>::ones([1, 32], &dev);
    te.embeddings.token_embedding = Tensor::cat(vec![te.embeddings.token_embedding.clone(), extra], 0);
    assert!(te.forward(Tensor::<2, Int>::from_data(TensorData::new(vec![2512i64, 2514, 2513], [1, 3]), &dev)).is_ok());
}
