//! Closed-form erasure through the studio's asynchronous path (`studio_wasm::erase`, what the
//! browser runs) equals the native path (`erasure` with `ModelEncoder`, what `studio erase`
//! runs) bit for bit on the tiny SD-1 fixture, for every method, including the runs that need
//! prompts not known beforehand (augmentation templates); bad requests say what to change.

use crate::common::{block_on, load};
use erasure::Edit;
use erasure::text::{ModelEncoder, cross_attention};
use studio_wasm::erase::{EraseRequest, compute};

fn same(a: &Edit, b: &Edit, what: &str) {
    assert_eq!(a.tensors.len(), b.tensors.len(), "{what}: tensor count");
    assert!(!a.tensors.is_empty(), "{what}: no tensors");
    for (x, y) in a.tensors.iter().zip(&b.tensors) {
        assert_eq!((&x.name, &x.shape), (&y.name, &y.shape), "{what}");
        let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&x.data), bits(&y.data), "{what}: {} differs", x.name);
    }
    assert_eq!(a.meta, b.meta, "{what}: metadata");
}

fn req(json: &str) -> EraseRequest {
    EraseRequest::from_json(json).unwrap()
}

#[test]
fn every_method_equals_the_native_path() {
    let model = load();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let (c, g, p) = (s(&["a red star"]), s(&["a blue circle"]), s(&["a green square"]));

    let native = |f: &dyn Fn(&mut ModelEncoder) -> Edit| {
        let mut enc = ModelEncoder::new(&model);
        f(&mut enc)
    };
    let kv = cross_attention(&model.unet, true, true);
    let v_only = cross_attention(&model.unet, false, true);

    let ours = block_on(compute(&model, &req(r#"{"method":"uce","concepts":["a red star"],"guides":["a blue circle"],"preserve":["a green square"],"params":{"lamb":0.3}}"#))).unwrap();
    let cfg = erasure::uce::UceConfig { lamb: 0.3, ..Default::default() };
    same(&ours, &native(&|e| erasure::uce::uce(e, &kv, &c, &g, &p, &cfg).unwrap()), "UCE");

    let ours = block_on(compute(
        &model,
        &req(r#"{"method":"time","concepts":["a star"],"guides":["a blue star"],"params":{"augment":true}}"#),
    ))
    .unwrap();
    let cfg = erasure::time::TimeConfig { augment: true, ..Default::default() };
    same(
        &ours,
        &native(&|e| erasure::time::time(e, &v_only, &s(&["a star"]), &s(&["a blue star"]), &cfg).unwrap()),
        "TIME (augmented)",
    );

    let ours = block_on(compute(
        &model,
        &req(r#"{"method":"rece","concepts":["a red star"],"preserve":["a green square"],"params":{"epochs":2}}"#),
    ))
    .unwrap();
    let cfg = erasure::rece::ReceConfig { epochs: 2, ..Default::default() };
    same(&ours, &native(&|e| erasure::rece::rece(e, &kv, &c, &[], &p, &cfg).unwrap().0), "RECE");

    let ours = block_on(compute(&model, &req(r#"{"method":"speed","concepts":["a red star"],"preserve":["a green square","a red circle"],"params":{"seed":3}}"#))).unwrap();
    let cfg = erasure::speed::SpeedConfig::default();
    let reference = native(&|e| {
        use rand::SeedableRng;
        use rand_distr::Distribution;
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut draw = || -> f64 { rand_distr::StandardNormal.sample(&mut rng) };
        erasure::speed::speed(e, &v_only, &c, &[], &s(&["a green square", "a red circle"]), &cfg, &mut draw).unwrap()
    });
    same(&ours, &reference, "SPEED");

    let ours = block_on(compute(
        &model,
        &req(r#"{"method":"mace","concepts":["a red star"],"preserve":["a green square"],"params":{"augment":true}}"#),
    ))
    .unwrap();
    let cfg = erasure::mace_cfr::MaceConfig { augment: true, ..Default::default() };
    same(&ours, &native(&|e| erasure::mace_cfr::mace_cfr(e, &kv, &c, &[], &p, &cfg).unwrap()), "MACE (augmented)");
}

#[test]
fn bad_requests_say_what_to_change() {
    let model = load();
    let err = |json: &str| match EraseRequest::from_json(json) {
        Err(e) => e.to_string(),
        Ok(r) => block_on(compute(&model, &r)).map(|_| String::new()).unwrap_or_else(|e| e.to_string()),
    };
    assert!(err(r#"{"method":"uce","concepts":[]}"#).contains("no concepts to erase"));
    assert!(err(r#"{"method":"esd","concepts":["x"]}"#).contains("unknown method `esd`"));
    assert!(
        err(r#"{"method":"uce","concepts":["x"],"params":{"lambda":1}}"#).contains("unknown hyper-parameter `lambda`")
    );
    assert!(err(r#"{"method":"uce","concepts":["x"],"params":{"lamb":"big"}}"#).contains("`lamb` must be a number"));
    assert!(err(r#"{"method":"uce","concepts":["a","b"],"guides":["x","y","z"]}"#).contains("guide"));
    assert!(
        err(r#"{"method":"uce","concepts":["x"],"params":{"lamb":0}}"#).contains("λ"),
        "{}",
        err(r#"{"method":"uce","concepts":["x"],"params":{"lamb":0}}"#)
    );
}
