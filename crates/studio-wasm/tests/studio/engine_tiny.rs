//! The studio's step loop on the tiny SD-1 fixture, natively on ndarray: it must give exactly the
//! pipeline's own image (the browser runs this same code), cancel between steps, and report a
//! missing component or a corrupt weight file with a message a user can act on.

use crate::common::{FIXTURE, block_on, read_dir};
use burn::tensor::Device;
use pipeline::generate::NoHooks;
use pipeline::model::StableDiffusion;
use std::path::Path;
use studio_wasm::engine::{self, Host, Outcome, Progress, StudioParams};
use studio_wasm::files::{MapFiles, check_components};

/// The fixture as the folder picker hands it over: every path starts with the folder's name.
fn fixture_files() -> Vec<(String, Vec<u8>)> {
    let mut v = vec![];
    read_dir(Path::new(FIXTURE), "tiny-sd1/", &mut v);
    v
}

#[allow(deprecated)]
fn device() -> Device {
    Device::ndarray()
}

struct TestHost {
    steps_seen: Vec<usize>,
    cancel_after: Option<usize>,
    yields: usize,
    previews: Vec<(usize, usize, usize, Vec<u8>)>,
}

impl Host for TestHost {
    fn now_ms(&self) -> f64 {
        0.0
    }
    async fn yield_now(&mut self) {
        self.yields += 1;
    }
    fn progress(&mut self, p: &Progress) {
        assert_eq!(p.total, 3);
        self.steps_seen.push(p.step);
    }
    fn cancel_requested(&self) -> bool {
        self.cancel_after.is_some_and(|n| self.steps_seen.len() >= n)
    }
    fn preview(&mut self, step: usize, width: usize, height: usize, rgba: &[u8]) {
        self.previews.push((step, width, height, rgba.to_vec()));
    }
}

fn params(scheduler: &str) -> StudioParams {
    StudioParams {
        prompt: "a red star on a blue background".into(),
        negative_prompt: "blurry".into(),
        steps: 3,
        guidance: 7.5,
        width: 16,
        height: 16,
        seed: 42,
        scheduler: scheduler.into(),
        clip_skip: None,
        preview_every: 0,
        attention: false,
        attention_selection: None,
        timeline: false,
        steering: None,
    }
}

#[test]
fn studio_loop_equals_the_pipeline_and_cancels_between_steps() {
    let device = device();
    let files = MapFiles::new(fixture_files());
    check_components(files.paths()).unwrap();
    let mut files = files;
    let model = StableDiffusion::load(&mut files, &device).unwrap();
    let info = engine::ModelInfo::of(&model);
    assert_eq!((info.default_width, info.size_multiple, info.default_scheduler.as_str()), (16, 2, "ddim"));

    for scheduler in ["ddim", "euler-a"] {
        let p = params(scheduler);
        let mut host = TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
        let Outcome::Done(img) = block_on(engine::generate(&model, &p, &mut host)).unwrap() else {
            panic!("cancelled")
        };
        assert_eq!(host.steps_seen, vec![1, 2, 3]);
        assert_eq!(host.yields, 4, "one yield after set-up and one after each step");
        assert_eq!((img.width, img.height, img.rgba.len()), (16, 16, 16 * 16 * 4));

        let reference = model.generate(&p.to_generate_params().unwrap(), &mut NoHooks).unwrap();
        let (h, w, rgb) = pipeline::generate::to_rgb8(&reference.image);
        assert_eq!((h, w), (16, 16));
        let ours: Vec<u8> = img.rgba.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect();
        assert_eq!(ours, rgb, "{scheduler}: the studio loop must give the pipeline's exact pixels");
        assert!(img.rgba.chunks_exact(4).all(|px| px[3] == 255));
        let distinct: std::collections::BTreeSet<&[u8]> = img.rgba.chunks_exact(4).collect();
        assert!(distinct.len() > 10, "{scheduler}: a flat image means the run did nothing");
    }

    let mut host = TestHost { steps_seen: vec![], cancel_after: Some(1), yields: 0, previews: vec![] };
    match block_on(engine::generate(&model, &params("ddim"), &mut host)).unwrap() {
        Outcome::Cancelled { step, total } => assert_eq!((step, total), (1, 3)),
        Outcome::Done(_) => panic!("the run ignored cancel"),
    }
}

#[test]
fn previews_decode_the_current_latents_and_leave_the_image_unchanged() {
    let device = device();
    let mut files = MapFiles::new(fixture_files());
    let model = StableDiffusion::load(&mut files, &device).unwrap();
    let plain = params("euler-a");
    let mut host = TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let Outcome::Done(reference) = block_on(engine::generate(&model, &plain, &mut host)).unwrap() else {
        panic!("cancelled")
    };
    assert!(host.previews.is_empty(), "previews are off by default");
    assert_eq!(reference.timing.previews, 0);

    let with = StudioParams { preview_every: 1, ..plain };
    let mut host = TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let Outcome::Done(img) = block_on(engine::generate(&model, &with, &mut host)).unwrap() else { panic!("cancelled") };
    // After steps 1 and 2; the last step's image is the result itself.
    let steps: Vec<usize> = host.previews.iter().map(|p| p.0).collect();
    assert_eq!(steps, vec![1, 2]);
    assert_eq!(img.timing.previews, 2);
    assert!(host.previews.iter().all(|(_, w, h, rgba)| (*w, *h, rgba.len()) == (16, 16, 16 * 16 * 4)));
    assert_eq!(img.rgba, reference.rgba, "previews must not change the run");
    assert_ne!(host.previews[0].3, img.rgba, "a preview after step 1 of 3 is still noisy");
}

#[test]
fn a_missing_component_and_a_corrupt_file_are_named() {
    let no_vae: Vec<_> = fixture_files().into_iter().filter(|(p, _)| !p.starts_with("tiny-sd1/vae/")).collect();
    let files = MapFiles::new(no_vae);
    let msg = check_components(files.paths()).unwrap_err().to_string();
    assert!(msg.contains("no `vae`") && msg.contains("vae/"), "{msg}");

    let corrupt: Vec<_> = fixture_files()
        .into_iter()
        .map(|(p, b)| {
            if p.ends_with("unet/diffusion_pytorch_model.safetensors") {
                (p, b[..b.len() / 2].to_vec())
            } else {
                (p, b)
            }
        })
        .collect();
    let mut files = MapFiles::new(corrupt);
    let msg = StableDiffusion::load(&mut files, &device()).err().expect("a truncated UNet must not load").to_string();
    assert!(msg.contains("unet/diffusion_pytorch_model.safetensors") && msg.contains("corrupt"), "{msg}");
}

/// SAFREE and SLD in the studio loop: prepared with asynchronous read-backs (what the browser
/// must do on WebGPU), they give exactly the image of the CLI's synchronous `Steering::prepare`
/// (`studio generate --safree … --sld …`), and the note says what SAFREE did.
#[test]
fn steering_with_async_readback_equals_the_cli_path() {
    use erasure::steering::Steering;
    use studio_wasm::engine::SteeringRequest;
    let device = device();
    let mut files = MapFiles::new(fixture_files());
    let model = StableDiffusion::load(&mut files, &device).unwrap();
    let cases = [
        SteeringRequest { safree: Some("red star; crimson".into()), ..Default::default() },
        SteeringRequest {
            safree: Some("red star".into()),
            safree_all_steps: true,
            safree_alpha: Some(-0.5),
            ..Default::default()
        },
        SteeringRequest {
            safree: Some("red star".into()),
            sld: Some("strong".into()),
            sld_concept: Some("red".into()),
            ..Default::default()
        },
    ];
    let plain = model.generate(&params("ddim").to_generate_params().unwrap(), &mut NoHooks).unwrap();
    for req in cases {
        let p = StudioParams { steering: Some(req.clone()), ..params("ddim") };
        let mut host = TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
        let Outcome::Done(img) = block_on(engine::generate(&model, &p, &mut host)).unwrap() else {
            panic!("cancelled")
        };
        let gp = p.to_generate_params().unwrap();
        let mut steering = Steering::prepare(
            &model,
            &gp,
            studio_wasm::steering::SteeringStore::default().config(&req).unwrap().unwrap(),
        )
        .unwrap();
        let reference = model.generate(&gp, &mut steering).unwrap();
        let (_, _, rgb) = pipeline::generate::to_rgb8(&reference.image);
        let ours: Vec<u8> = img.rgba.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect();
        assert_eq!(ours, rgb, "{req:?}: the studio's steered image differs from the CLI path");
        assert_ne!(rgb, pipeline::generate::to_rgb8(&plain.image).2, "{req:?}: steering changed nothing");
        // SLD's guidance terms: the studio's (read back asynchronously) are the CLI's.
        assert_eq!(img.sld_terms, steering.read_sld_terms().unwrap_or_default(), "{req:?}");
        if req.sld.is_some() {
            assert_eq!(img.sld_terms.len(), 3, "one a step");
            assert!(img.sld_terms.iter().all(|t| !t.applied), "strong's warm-up is 7 steps");
            assert!(img.sld_terms.iter().all(|t| t.momentum_norm > 0.0 && t.guidance_norm > 0.0));
        }
        let note = img.steering.expect("a SAFREE note");
        let s = steering.report.safree.as_ref().unwrap();
        assert!(
            note.starts_with(&format!("SAFREE: {} of {} tokens are triggers", s.triggers.len(), s.real_tokens)),
            "{note}"
        );
    }
    // Bad SAFREE settings are refused before anything runs.
    let bad = StudioParams {
        steering: Some(SteeringRequest { safree: Some(" ; ".into()), ..Default::default() }),
        ..params("ddim")
    };
    let mut host = TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let e = block_on(engine::generate(&model, &bad, &mut host)).err().unwrap().to_string();
    assert!(e.contains("at least one keyword"), "{e}");
    assert!(host.steps_seen.is_empty());
}

/// DAAM's maps in the studio loop: the image is the one without maps, the maps are the pipeline's
/// (what `studio attention` writes), and over all 77 tokens they sum to the number of steps at
/// every latent pixel (softmax rows sum to 1; the mean over layers and heads keeps that; the
/// clamp after bicubic upsampling can only add).
#[test]
fn attention_maps_change_nothing_and_equal_the_pipelines() {
    let device = device();
    let mut files = MapFiles::new(fixture_files());
    let mut model = StableDiffusion::load(&mut files, &device).unwrap();
    let host = || TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let plain = params("ddim");
    let with = StudioParams { attention: true, ..plain.clone() };
    let err = block_on(engine::generate(&model, &with, &mut host())).err().expect("no probe attached");
    assert!(err.to_string().contains("reload"), "{err}");

    model.unet.set_attention_probe(Some(diffusion::attention_probe::AttentionProbe::new()));
    let Outcome::Done(reference) = block_on(engine::generate(&model, &plain, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    assert!(reference.attention.is_none());
    let Outcome::Done(img) = block_on(engine::generate(&model, &with, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    assert_eq!(img.rgba, reference.rgba, "recording the maps must not change the image");
    let (maps, scores) = img.attention.expect("maps asked for");
    let encoding = model.tokenizer.encode(&with.prompt);
    assert_eq!(maps.tokens.len(), encoding.n_tokens, "SOT, the prompt's tokens, EOT");
    assert_eq!(
        maps.words.iter().map(|w| w.text.as_str()).collect::<Vec<_>>(),
        ["a", "red", "star", "on", "a", "blue", "background"]
    );
    assert_eq!(scores.len(), maps.words.len());
    assert_eq!(maps.steps, 3);

    // The pipeline's own run, recorded the way the CLI records it.
    let gp = with.to_generate_params().unwrap();
    let (out, layers) = pipeline::daam::recorded(&mut model, |m| m.generate(&gp, &mut NoHooks).unwrap());
    let (_, _, rgb) = pipeline::generate::to_rgb8(&out.image);
    let ours: Vec<u8> = img.rgba.chunks_exact(4).flat_map(|px| [px[0], px[1], px[2]]).collect();
    assert_eq!(ours, rgb);
    let [lh, lw] = pipeline::daam::latent_size(&model, 16, 16);
    assert_eq!((maps.height, maps.width), (lh, lw));
    assert!(layers.len() >= 2 && layers.iter().all(|l| l.steps == 3), "{} layers", layers.len());
    let full = pipeline::daam::aggregate(&layers, lh, lw).unwrap().into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(full.len(), 77 * lh * lw);
    assert_eq!(maps.maps, full[..maps.tokens.len() * lh * lw], "the studio's maps are the pipeline's");
    for p in 0..lh * lw {
        let total: f32 = (0..77).map(|t| full[t * lh * lw + p]).sum();
        assert!(total > 3.0 - 1e-4 && total < 3.0 * 1.05, "pixel {p}: Σ over tokens {total}, want ≈ 3 steps");
    }
}

/// Choosing the steps and the resolutions: the maps are those of the pipeline's run recorded over
/// the same steps with the same layers kept, they sum over the 77 tokens to the number of steps
/// chosen, and a window or a factor the run does not have is refused before any step runs.
#[test]
fn attention_maps_of_chosen_steps_and_resolutions() {
    let device = device();
    let mut files = MapFiles::new(fixture_files());
    let mut model = StableDiffusion::load(&mut files, &device).unwrap();
    model.unet.set_attention_probe(Some(diffusion::attention_probe::AttentionProbe::new()));
    let host = || TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let available = pipeline::daam::unet_factors(model.unet.config());
    assert!(available.len() >= 2, "the tiny UNet attends at {available:?}");
    let coarsest = *available.last().unwrap();
    let selection = pipeline::daam::Selection { steps: Some([1, 2]), factors: Some(vec![coarsest]) };
    let with = StudioParams { attention: true, attention_selection: Some(selection.clone()), ..params("ddim") };
    let Outcome::Done(img) = block_on(engine::generate(&model, &with, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    let (maps, _) = img.attention.expect("maps asked for");
    assert_eq!((maps.steps, maps.step_window), (2, [1, 2]));
    assert_eq!(maps.resolutions.len(), available.len(), "every resolution is listed: {:?}", maps.resolutions);
    for r in &maps.resolutions {
        assert_eq!(r.selected, r.factor == coarsest, "{r:?}");
    }
    let kept = maps.resolutions.iter().find(|r| r.selected).unwrap();
    assert_eq!((maps.layers, maps.heads), (kept.layers, kept.heads));

    let gp = with.to_generate_params().unwrap();
    let (_, recorded) =
        pipeline::daam::recorded_steps(&mut model, Some([1, 2]), |m| m.generate(&gp, &mut NoHooks).unwrap());
    let [lh, lw] = pipeline::daam::latent_size(&model, 16, 16);
    let (layers, t) = pipeline::daam::aggregate_selection(&recorded, lh, lw, &selection).unwrap();
    assert!(layers.len() < recorded.len() && layers.iter().all(|l| l.steps == 2));
    let full = t.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(maps.maps, full[..maps.tokens.len() * lh * lw], "the studio's maps are the pipeline's");
    for p in 0..lh * lw {
        let total: f32 = (0..77).map(|t| full[t * lh * lw + p]).sum();
        assert!(total > 2.0 - 1e-4 && total < 2.0 * 1.05, "pixel {p}: Σ over tokens {total}, want ≈ 2 steps");
    }
    // The whole run, every layer: different maps (the pipeline's recording detached the probe).
    model.unet.set_attention_probe(Some(diffusion::attention_probe::AttentionProbe::new()));
    let all = StudioParams { attention: true, ..params("ddim") };
    let Outcome::Done(img_all) = block_on(engine::generate(&model, &all, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    assert_eq!(img_all.rgba, img.rgba, "the choice changes no pixel");
    assert_ne!(img_all.attention.unwrap().0.maps, maps.maps);

    for (sel, want) in [
        (pipeline::daam::Selection { steps: Some([2, 5]), factors: None }, "this run has 3 steps, numbered 0–2"),
        (pipeline::daam::Selection { steps: Some([2, 1]), factors: None }, "comes after the last"),
        (pipeline::daam::Selection { steps: None, factors: Some(vec![64]) }, "no cross-attention layer at 1/64"),
        (pipeline::daam::Selection { steps: None, factors: Some(vec![]) }, "at least one"),
    ] {
        let bad = StudioParams { attention: true, attention_selection: Some(sel), ..params("ddim") };
        let mut h = host();
        let err = block_on(engine::generate(&model, &bad, &mut h)).err().expect("refused").to_string();
        assert!(err.contains(want), "{err}");
        assert!(h.steps_seen.is_empty(), "refused before any step");
    }
}

/// The denoising timeline: one decoded x̂₀ a step, the image unchanged, and the last frame is the
/// final image up to DDIM's last step to ᾱ₀ (the tiny fixture's `set_alpha_to_one` is false).
#[test]
fn timeline_frames_are_the_predicted_images_and_end_at_the_image() {
    let device = device();
    let mut files = MapFiles::new(fixture_files());
    let model = StableDiffusion::load(&mut files, &device).unwrap();
    let host = || TestHost { steps_seen: vec![], cancel_after: None, yields: 0, previews: vec![] };
    let plain = params("ddim");
    let Outcome::Done(reference) = block_on(engine::generate(&model, &plain, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    assert!(reference.timeline.is_empty());
    let with = StudioParams { timeline: true, ..plain };
    let Outcome::Done(img) = block_on(engine::generate(&model, &with, &mut host())).unwrap() else {
        panic!("cancelled")
    };
    assert_eq!(img.rgba, reference.rgba, "decoding the timeline must not change the image");
    assert_eq!(img.timeline.len(), 3, "one frame a step");
    assert!(img.timeline.iter().all(|f| f.len() == img.rgba.len()));
    let max_diff = |a: &[u8], b: &[u8]| a.iter().zip(b).map(|(x, y)| x.abs_diff(*y)).max().unwrap_or(0);
    let last = max_diff(&img.timeline[2], &img.rgba);
    let first = max_diff(&img.timeline[0], &img.rgba);
    assert!(last <= 8, "the last x̂₀ decodes to the image (max |Δ| {last})");
    assert!(first > last, "the first x̂₀ ({first}) is farther from the image than the last ({last})");
}
