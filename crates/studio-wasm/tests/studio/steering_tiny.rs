//! LEACE / INLP erasers and Ring-A-Bell probes through the studio's asynchronous path
//! (`studio_wasm::steering`, what the browser runs) equal the CLI's synchronous path on the tiny
//! SD-1 fixture: the fitted eraser's file equals `studio fit-eraser`'s byte for byte, and the
//! studio loop's image equals `studio generate --leace FILE` / `--ring-a-bell PAIRS` pixel for
//! pixel (both run the same ndarray kernels, so no tolerance is needed). Bad eraser files and
//! requests are refused with what to change.

use crate::common::{Quiet, block_on, load};
use erasure::inlp::InlpConfig;
use erasure::leace::{EraserMethod, LeaceConfig, LinearEraser};
use erasure::linalg::Mat;
use erasure::steering::{Steering, SteeringConfig};
use erasure::text::ModelEncoder;
use pipeline::generate::NoHooks;
use pipeline::model::StableDiffusion;
use studio_wasm::engine::{self, Outcome, SteeringRequest, StudioParams};
use studio_wasm::steering::{
    EraserFitRequest, RingABellRequest, Steerer, SteeringStore, fit_eraser, fit_ring_a_bell, read_eraser,
};

fn params(steering: Option<SteeringRequest>) -> StudioParams {
    StudioParams {
        prompt: "a big skull on a blue background".into(),
        negative_prompt: "blurry".into(),
        steps: 3,
        guidance: 7.5,
        width: 16,
        height: 16,
        seed: 42,
        scheduler: "ddim".into(),
        clip_skip: None,
        preview_every: 0,
        attention: false,
        attention_selection: None,
        timeline: false,
        steering,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

/// The studio loop's image (RGB) and its steering note.
fn studio_image(model: &StableDiffusion, store: &SteeringStore, req: SteeringRequest) -> (Vec<u8>, Option<String>) {
    let Outcome::Done(img) = block_on(engine::generate_steered(model, &params(Some(req)), store, &mut Quiet)).unwrap()
    else {
        panic!("cancelled")
    };
    (img.rgba.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect(), img.steering)
}

/// The CLI's image: `Steering::prepare` (synchronous read-backs) and `model.generate`, as
/// `studio generate` runs it.
fn cli_image(model: &StableDiffusion, config: SteeringConfig) -> Vec<u8> {
    let gp = params(None).to_generate_params().unwrap();
    let mut steering = Steering::prepare(model, &gp, config).unwrap();
    pipeline::generate::to_rgb8(&model.generate(&gp, &mut steering).unwrap().image).2
}

const CONCEPTS: &[&str] = &["a skull", "a photo of a skull", "a big skull", "a skull on a red background"];
const OTHERS: &[&str] = &["a star", "a photo of a star", "a big moon", "a circle on a red background"];

#[test]
fn fitted_erasers_and_probes_equal_the_cli_path() {
    let model = load();
    let plain = pipeline::generate::to_rgb8(
        &model.generate(&params(None).to_generate_params().unwrap(), &mut NoHooks).unwrap().image,
    )
    .2;
    let mut store = SteeringStore::default();

    for (method, iterations) in [("leace", None), ("inlp", Some(3))] {
        // The page: prompts encoded with asynchronous read-backs, fitted, kept as its file says.
        let req = EraserFitRequest {
            method: method.into(),
            concepts: s(CONCEPTS),
            others: s(OTHERS),
            iterations,
            min_accuracy: None,
        };
        let (eraser, bytes) = block_on(fit_eraser(&model, &req)).unwrap();
        let info = store
            .insert(method, Steerer::Eraser { eraser, file: format!("{method}.safetensors"), bytes: bytes.clone() });
        assert_eq!((info.kind, info.d_text, info.concepts.len(), info.others.len()), (method, 32, 4, 4));
        assert!(info.rank >= 1, "{method}: nothing erased");
        // `studio fit-eraser`: ModelEncoder (synchronous), the same fit, the file it writes.
        let mut enc = ModelEncoder::new(&model);
        let cli = match EraserMethod::parse(method).unwrap() {
            EraserMethod::Leace => {
                erasure::leace::fit_prompts(&mut enc, &s(CONCEPTS), &s(OTHERS), LeaceConfig::default()).unwrap()
            }
            EraserMethod::Inlp => {
                let config = InlpConfig { iterations: 3, ..Default::default() };
                erasure::inlp::fit_prompts(&mut enc, &s(CONCEPTS), &s(OTHERS), config).unwrap().0
            }
        };
        let cli_file = cli.to_safetensors();
        assert!(bytes == cli_file, "{method}: the page's eraser file differs from studio fit-eraser's");
        assert!(
            store.export(method).unwrap() == cli_file,
            "{method}: the export differs from studio fit-eraser's file"
        );
        // `studio generate --leace FILE`: the file read back, then the steered run.
        let read = LinearEraser::from_safetensors("cli.safetensors", cli_file).unwrap();
        let config = SteeringConfig { eraser: Some(read), ..Default::default() };
        let reference = cli_image(&model, config);
        let (ours, note) =
            studio_image(&model, &store, SteeringRequest { eraser: Some(method.into()), ..Default::default() });
        assert_eq!(ours, reference, "{method}: the page's image differs from studio generate --leace");
        let changed = ours.iter().zip(&plain).filter(|(a, b)| a != b).count();
        assert!(changed > 50, "{method}: the eraser changed only {changed} bytes of the image");
        assert_eq!(
            note.as_deref(),
            Some(format!("{} eraser applied to the prompt's tokens", method.to_uppercase()).as_str())
        );
    }

    // Ring-A-Bell: the concept vector from pairs, alone and on top of the LEACE eraser.
    let pairs = "a skull|a star; a photo of a skull|a photo of a star; a big skull on a red background|a big star on a red background";
    let (probe, fitted_pairs) =
        block_on(fit_ring_a_bell(&model, &RingABellRequest { pairs: pairs.into(), eta: Some(0.9) })).unwrap();
    let parsed = erasure::ring_a_bell::parse_pairs(pairs).unwrap();
    assert_eq!(fitted_pairs, parsed);
    let cli_probe = erasure::ring_a_bell::from_prompts(&mut ModelEncoder::new(&model), &parsed, 0.9).unwrap();
    assert_eq!(probe.vector.shape(), (77, 32));
    assert!(
        probe.vector == cli_probe.vector && probe.eta == 0.9,
        "the page's Ring-A-Bell vector differs from the CLI's"
    );
    let info = store.insert("rab", Steerer::RingABell { probe, pairs: parsed });
    assert_eq!((info.kind, info.concepts[0].as_str(), info.others[0].as_str()), ("ring-a-bell", "a skull", "a star"));

    let (ours, note) =
        studio_image(&model, &store, SteeringRequest { ring_a_bell: Some("rab".into()), ..Default::default() });
    assert_eq!(
        ours,
        cli_image(&model, SteeringConfig { ring_a_bell: Some(cli_probe.clone()), ..Default::default() }),
        "Ring-A-Bell: the page differs from the CLI"
    );
    assert!(ours.iter().zip(&plain).filter(|(a, b)| a != b).count() > 50, "the probe changed nothing");
    assert_eq!(note.as_deref(), Some("Ring-A-Bell probe added (η = 0.9)"));

    let both = SteeringRequest {
        eraser: Some("leace".into()),
        ring_a_bell: Some("rab".into()),
        safree: Some("skull".into()),
        ..Default::default()
    };
    let (ours, note) = studio_image(&model, &store, both.clone());
    let config = SteeringConfig { ring_a_bell: Some(cli_probe), ..store.config(&both).unwrap().unwrap() };
    assert_eq!(ours, cli_image(&model, config), "Ring-A-Bell + LEACE + SAFREE: the page differs from the CLI");
    let note = note.unwrap();
    assert!(
        note.starts_with("SAFREE: ")
            && note.contains("; LEACE eraser applied")
            && note.ends_with("; Ring-A-Bell probe added (η = 0.9)"),
        "{note}"
    );

    // Ids the store does not hold, or of the other kind, are named.
    let err = |store: &SteeringStore, req: SteeringRequest| {
        block_on(engine::generate_steered(&model, &params(Some(req)), store, &mut Quiet)).err().unwrap().to_string()
    };
    assert!(
        err(&store, SteeringRequest { eraser: Some("e9".into()), ..Default::default() })
            .contains("no eraser `e9` in this session")
    );
    assert!(
        err(&store, SteeringRequest { eraser: Some("rab".into()), ..Default::default() })
            .contains("is a Ring-A-Bell probe, not an eraser")
    );
    assert!(store.remove("rab") && !store.remove("rab"));
    assert!(
        err(&store, SteeringRequest { ring_a_bell: Some("rab".into()), ..Default::default() })
            .contains("no Ring-A-Bell probe `rab`")
    );
    // The page's JSON names (camelCase), unknown fields refused.
    let p = StudioParams::from_json(r#"{"prompt":"a","steps":1,"guidance":2,"width":16,"height":16,"seed":0,"scheduler":"ddim","steering":{"eraser":"e1","ringABell":"e2"}}"#).unwrap();
    assert_eq!(
        p.steering.unwrap(),
        SteeringRequest { eraser: Some("e1".into()), ring_a_bell: Some("e2".into()), ..Default::default() }
    );
    assert!(StudioParams::from_json(r#"{"prompt":"a","steps":1,"guidance":2,"width":16,"height":16,"seed":0,"scheduler":"ddim","steering":{"leace":"e1"}}"#).is_err());
}

#[test]
fn bad_eraser_files_and_requests_say_what_to_change() {
    let model = load();
    // An eraser of another text width (48, e.g. fitted on another model) on tiny-sd1 (32).
    let wide = LinearEraser {
        method: EraserMethod::Leace,
        proj_left: Mat::from_element(48, 1, 0.1),
        proj_right: Mat::from_element(1, 48, 0.1),
        bias: None,
        concepts: s(&["a skull"]),
        others: s(&["a star"]),
        hyperparameters: Default::default(),
    };
    let bytes = wide.to_safetensors();
    assert_eq!(studio_wasm::adapters::file_kind(&bytes), "eraser");
    let e = read_eraser(&model, "wide.safetensors", bytes.clone()).unwrap_err().to_string();
    assert!(
        e.contains("`wide.safetensors`")
            && e.contains("[32, 1]")
            && e.contains("[48, 1]")
            && e.contains("text width 48")
            && e.contains("text width 32"),
        "{e}"
    );
    // Cut short.
    let e = read_eraser(&model, "cut.safetensors", bytes[..bytes.len() / 3].to_vec()).unwrap_err().to_string();
    assert!(e.starts_with("`cut.safetensors` is not a valid eraser file") && e.contains("studio fit-eraser"), "{e}");
    // Not an eraser at all: an edit file.
    let edit = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors"
    ))
    .unwrap();
    assert_eq!(studio_wasm::adapters::file_kind(&edit), "edit");
    let e = read_eraser(&model, "edit.safetensors", edit).unwrap_err().to_string();
    assert!(e.contains("not a valid eraser file") && e.contains("no float tensor `proj_left`"), "{e}");
    // A good file of the right width reads, and equals what was written.
    let (fitted, bytes) = block_on(fit_eraser(
        &model,
        &EraserFitRequest::from_json(r#"{"concepts":["a skull"],"others":["a star"]}"#).unwrap(),
    ))
    .unwrap();
    let read = read_eraser(&model, "ok.safetensors", bytes).unwrap();
    assert!(read.projection() == fitted.projection() && read.bias == fitted.bias);

    let fit_err = |json: &str| match EraserFitRequest::from_json(json) {
        Err(e) => e.to_string(),
        Ok(r) => block_on(fit_eraser(&model, &r)).err().map(|e| e.to_string()).unwrap_or_default(),
    };
    assert!(
        fit_err(r#"{"method":"pca","concepts":["a"],"others":["b"]}"#)
            .contains("unknown eraser method `pca`: use leace or inlp")
    );
    assert!(fit_err(r#"{"concepts":[" ", ""],"others":["b"]}"#).contains("no concept prompts"));
    assert!(fit_err(r#"{"concepts":["a"],"others":[]}"#).contains("no other prompts"));
    assert!(fit_err(r#"{"concepts":["a"],"others":["b"],"iterations":3}"#).contains("INLP's settings"));
    assert!(fit_err(r#"{"concepts":["a"],"others":["b"],"lamb":3}"#).contains("unknown field `lamb`"));
    let rab_err = |pairs: &str, eta: Option<f64>| {
        block_on(fit_ring_a_bell(&model, &RingABellRequest { pairs: pairs.into(), eta })).err().unwrap().to_string()
    };
    assert!(rab_err("a skull", None).contains("`a skull` has no `|`"));
    assert!(rab_err(" ; ", None).contains("at least one prompt pair"));
    assert!(rab_err("a|b", Some(f64::INFINITY)).contains("finite"));
}
