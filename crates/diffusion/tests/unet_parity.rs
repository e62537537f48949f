//! Parity of `UNet2DConditionModel` with diffusers on the tiny fixtures, config parsing, weight
//! problems and the Linear/Conv visitors.
//! References: `scripts/reference/ref_unet.py` → `tests/fixtures/reference/*/unet.safetensors`.
#![allow(deprecated)]

mod common;

use burn::tensor::{Device, Tensor};
use common::{assert_close, component_source, config, device, read, tensor};
use diffusion::error::{LoadError, TensorProblem};
use diffusion::unet_2d_condition::{UNet2DConditionConfig, UNet2DConditionModel};
use diffusion::weights::{SafetensorsSource, WeightLoader};

/// f32 parity: max abs error <= 1e-4 * max abs reference (no absolute slack).
const REL: f32 = 1e-4;

fn load(model: &str) -> UNet2DConditionModel {
    load_on(model, &device())
}

fn load_on(model: &str, dev: &Device) -> UNet2DConditionModel {
    let cfg = UNet2DConditionConfig::from_json(&config(model, "unet", "config.json")).unwrap();
    let mut src = component_source(model, "unet");
    let mut w = WeightLoader::new(&mut src, dev, "unet");
    let unet = UNet2DConditionModel::load(&cfg, &mut w);
    w.finish(&[], "test").unwrap();
    unet
}

fn parity(model: &str) {
    parity_on(model, &device(), REL);
}

fn parity_on(model: &str, dev: &Device, rel: f32) {
    let unet = load_on(model, dev);
    let r = read(&format!("reference/{model}/unet.safetensors"));
    let sample: Tensor<4> = tensor(&r, "sample", dev);
    let timesteps: Tensor<1> = tensor(&r, "timesteps", dev);
    let ehs: Tensor<3> = tensor(&r, "encoder_hidden_states", dev);
    let ts: Vec<f32> = timesteps.clone().into_data().to_vec().unwrap();
    assert_eq!(ts, vec![999.0, 500.5], "the reference covers the largest and a fractional timestep");

    let t_emb = unet.time_proj.forward(timesteps.clone());
    assert_close(&format!("{model} t_emb"), t_emb.clone(), tensor(&r, "t_emb", dev), rel, 0.0);
    let emb = unet.time_embedding.forward(t_emb, None);
    assert_close(&format!("{model} emb"), emb, tensor(&r, "emb", dev), rel, 0.0);

    let out = unet.forward(sample, timesteps, ehs);
    assert_close(&format!("{model} unet out"), out, tensor(&r, "out", dev), rel, 0.0);
}

#[test]
fn tiny_sd1_matches_diffusers() {
    parity("tiny-sd1");
}

#[test]
fn tiny_sd2_matches_diffusers() {
    parity("tiny-sd2");
}

/// The same parity on a GPU through burn-wgpu (needs a Vulkan/Metal adapter, hence ignored in CI:
/// `cargo test -p diffusion --test unet_parity -- --ignored`). Same 1e-4 relative tolerance: the
/// sinusoids at t = 999 are the part most exposed to GPU `sin`/`cos` precision.
#[test]
#[ignore]
fn tiny_models_match_diffusers_on_wgpu() {
    let dev = Device::wgpu_options().init().expect("a wgpu adapter");
    parity_on("tiny-sd1", &dev, REL);
    parity_on("tiny-sd2", &dev, REL);
}

/// Odd latent size 9x7 (upsample to the skip's size), downsample_padding 0, center_input_sample,
/// flip_sin_to_cos false + freq_shift 1, time_embedding_dim, LCM time_cond_proj_dim, time
/// activations, per-block lists, mid_block_scale_factor, ignored resnet_out_scale_factor, one
/// timestep for the batch: see `ref_unet.py`.
#[test]
fn variant_matches_diffusers() {
    let dev = device();
    let file = read("reference/unet-variant/unet.safetensors");
    let cfg = UNet2DConditionConfig::from_json(&file.header.metadata["config"]).unwrap();
    assert_eq!(cfg.sample_size, 9);
    assert_eq!(cfg.resnet_out_scale_factor, 2.0);
    let sample: Tensor<4> = tensor(&file, "ref.sample", &dev);
    let timesteps: Tensor<1> = tensor(&file, "ref.timesteps", &dev);
    let ehs: Tensor<3> = tensor(&file, "ref.encoder_hidden_states", &dev);
    let cond: Tensor<2> = tensor(&file, "ref.timestep_cond", &dev);
    let want_t: Tensor<2> = tensor(&file, "ref.t_emb", &dev);
    let want: Tensor<4> = tensor(&file, "ref.out", &dev);

    let mut src = SafetensorsSource::new(vec![file]);
    let mut w = WeightLoader::new(&mut src, &dev, "unet");
    let unet = UNet2DConditionModel::load(&cfg, &mut w);
    w.finish(&["ref."], "test").unwrap();

    let t_emb = unet.time_proj.forward(timesteps.clone().repeat_dim(0, 2));
    assert_close("variant t_emb", t_emb, want_t, REL, 0.0);
    let out = unet.forward_with_timestep_cond(sample, timesteps, ehs, Some(cond));
    assert_eq!(out.dims(), [2, 3, 9, 7]);
    assert_close("variant unet out", out, want, REL, 0.0);
}

#[test]
fn presets_and_config_parsing() {
    let sd15 = UNet2DConditionConfig::sd15();
    assert_eq!(sd15.block_out_channels, vec![320, 640, 1280, 1280]);
    assert_eq!(sd15.cross_attention_dim, 768);
    assert_eq!((0..4).map(|i| sd15.heads(i)).collect::<Vec<_>>(), vec![8, 8, 8, 8]);
    assert!(!sd15.use_linear_projection);
    assert_eq!((sd15.sample_size, sd15.time_embed_dim(), sd15.norm_num_groups), (64, 1280, Some(32)));
    // Everything SD 1.5's config omits takes diffusers' defaults, which equal SD 1.5 except the text width.
    assert_eq!(sd15, UNet2DConditionConfig { cross_attention_dim: 768, ..Default::default() });

    let sd21 = UNet2DConditionConfig::sd21_base();
    assert_eq!(sd21.cross_attention_dim, 1024);
    assert_eq!((0..4).map(|i| sd21.heads(i)).collect::<Vec<_>>(), vec![5, 10, 20, 20]);
    assert!(sd21.use_linear_projection && !sd21.upcast_attention);
    // 64-wide heads everywhere in SD 2.x: 320/5, 640/10, 1280/20.
    assert!((0..4).all(|i| sd21.block_out_channels[i] / sd21.heads(i) == 64));

    let tiny2 = UNet2DConditionConfig::from_json(&config("tiny-sd2", "unet", "config.json")).unwrap();
    assert_eq!((0..3).map(|i| tiny2.heads(i)).collect::<Vec<_>>(), vec![2, 4, 8]);
    assert!(tiny2.upcast_attention && tiny2.use_linear_projection);
    assert_eq!((tiny2.norm_num_groups, tiny2.cross_attention_dim), (Some(16), 48));

    // Lists that repeat one value are accepted; `sample_size` may be [h, w].
    let c =
        UNet2DConditionConfig::from_json(r#"{"cross_attention_dim": [768, 768, 768, 768], "sample_size": [96, 64]}"#)
            .unwrap();
    assert_eq!((c.cross_attention_dim, c.sample_size), (768, 96));

    let unsupported = |json: &str, needle: &str| {
        let e = UNet2DConditionConfig::from_json(json).unwrap_err();
        assert!(matches!(e, LoadError::Unsupported(_)), "{json}: {e}");
        assert!(e.to_string().contains(needle), "{json}: {e}");
    };
    unsupported(r#"{"addition_embed_type": "text_time", "addition_time_embed_dim": 256}"#, "SDXL");
    unsupported(r#"{"num_attention_heads": 8}"#, "num_attention_heads");
    unsupported(r#"{"class_embed_type": "timestep"}"#, "class embeddings");
    unsupported(
        r#"{"down_block_types": ["SimpleCrossAttnDownBlock2D", "DownBlock2D", "DownBlock2D", "DownBlock2D"]}"#,
        "SimpleCrossAttnDownBlock2D",
    );
    unsupported(r#"{"transformer_layers_per_block": [[1, 1], [2, 2], [1, 1], [1, 1]]}"#, "nested");
    unsupported(r#"{"attention_head_dim": [8, 8]}"#, "`attention_head_dim` has 2 entries for 4 blocks");
    unsupported(r#"{"block_out_channels": [320, 640, 1280, 1000]}"#, "1000");
    unsupported(r#"{"time_embedding_type": "fourier"}"#, "time_embedding_type");
    unsupported(r#"{"timestep_post_act": "mish"}"#, "mish");
    unsupported(r#"{"mid_block_type": "UNetMidBlock2DSimpleCrossAttn"}"#, "UNetMidBlock2DSimpleCrossAttn");

    let e = UNet2DConditionConfig::from_json(r#"{"cross_attention_dim": [768, 1024, 768, 768]}"#).unwrap_err();
    assert!(matches!(e, LoadError::Config { .. }) && e.to_string().contains("cross_attention_dim"), "{e}");
    let e = UNet2DConditionConfig::from_json("{ not json").unwrap_err();
    assert!(matches!(e, LoadError::Config { .. }), "{e}");
    // A null mid block is allowed (diffusers builds none).
    assert_eq!(UNet2DConditionConfig::from_json(r#"{"mid_block_type": null}"#).unwrap().mid_block_type, None);
}

/// tiny-sd1's weights with tiny-sd2's config: every problem is reported at once, with names and
/// both shapes.
#[test]
fn wrong_weights_list_every_problem() {
    let cfg = UNet2DConditionConfig::from_json(&config("tiny-sd2", "unet", "config.json")).unwrap();
    let mut src = component_source("tiny-sd1", "unet");
    let dev = device();
    let err = UNet2DConditionModel::from_source(&cfg, &mut src, &dev).unwrap_err();
    let LoadError::Tensors { component, problems, .. } = &err else { panic!("{err}") };
    assert_eq!(component, "unet");
    let name = "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight";
    assert!(problems.contains(&TensorProblem::WrongShape {
        name: name.into(),
        expected: vec![32, 48],
        found: vec![32, 32]
    }));
    assert!(problems.contains(&TensorProblem::Missing {
        name: "down_blocks.1.attentions.0.norm.weight".into(),
        expected: vec![32]
    }));
    assert!(problems.contains(&TensorProblem::Unexpected {
        name: "down_blocks.0.resnets.1.conv1.weight".into(),
        found: vec![32, 32, 3, 3]
    }));
    let msg = err.to_string();
    assert!(msg.contains(&format!("tensor `{name}` has shape [32, 32], the model expects [32, 48]")), "{msg}");
    assert!(msg.contains("missing tensor `down_blocks.1.attentions.0.norm.weight` (expected shape [32])"), "{msg}");
    assert!(
        msg.contains("unexpected tensor `down_blocks.0.resnets.1.conv1.weight` with shape [32, 32, 3, 3]"),
        "{msg}"
    );
    assert!(problems.len() > 20, "{} problems", problems.len());
}

/// The visitors reach every projection of every transformer block, under names the checkpoint
/// uses, with the checkpoint's shapes; edits through the `_mut` visitor stick.
#[test]
fn visitors_cover_the_transformers() {
    for (model, blocks, has_conv_proj) in [("tiny-sd1", 6, true), ("tiny-sd2", 7, false)] {
        let mut unet = load(model);
        let file = component_source(model, "unet");
        let shapes = |n: &str| file.files.iter().find_map(|f| f.header().tensors.get(n).map(|t| t.shape.clone()));
        let mut names = vec![];
        unet.for_each_linear(&mut |name, l| {
            assert_eq!(shapes(&format!("{name}.weight")), Some(l.weight_torch().dims().to_vec()), "{name}");
            names.push(name.to_string());
        });
        let to_k = names.iter().filter(|n| n.ends_with("attn2.to_k")).count();
        assert_eq!(to_k, blocks, "{model}: one attn2.to_k per transformer block");
        let projections = if has_conv_proj { 0 } else { 2 * blocks };
        assert_eq!(names.len(), 10 * blocks + projections, "{model}: linears");
        assert!(names.contains(&"down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k".to_string()));
        assert!(names.contains(&"mid_block.attentions.0.transformer_blocks.0.ff.net.0.proj".to_string()));
        assert!(names.contains(&"up_blocks.1.attentions.1.transformer_blocks.0.attn1.to_out.0".to_string()));

        let mut mut_names = vec![];
        unet.for_each_linear_mut(&mut |name, l| {
            mut_names.push(name.to_string());
            if name.ends_with("attn2.to_v") {
                let dims = l.weight.dims();
                l.weight = Tensor::zeros(dims, &l.weight.device());
            }
        });
        assert_eq!(mut_names, names, "{model}: both visitors agree");
        let mut zero = 0;
        unet.for_each_linear(&mut |name, l| {
            if name.ends_with("attn2.to_v") {
                assert_eq!(l.weight.clone().abs().sum().into_scalar::<f32>(), 0.0);
                zero += 1;
            }
        });
        assert_eq!(zero, blocks);

        let mut convs = vec![];
        unet.for_each_conv_mut(&mut |name, c| {
            assert_eq!(shapes(&format!("{name}.weight")), Some(c.weight.dims().to_vec()), "{name}");
            convs.push(name.to_string());
        });
        assert_eq!(convs.len(), if has_conv_proj { 2 * blocks } else { 0 }, "{model}: conv projections");
    }
}
