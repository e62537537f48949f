//! Fuzzing, on stable Rust, of every parser that reads outside input (issue 18, item 2):
//! safetensors headers and data, the UNet / text-encoder / VAE / scheduler configs, `studio.json`,
//! the tokenizer's vocab.json and merges.txt (then encoding text), edit, SPM, LoRA and eraser
//! files, the page's request JSON and the Ring-A-Bell pairs. Each target mutates its seeds
//! (`tests/fuzz-corpus/seeds.json`: fixture files and committed reproducers) with
//! [`fuzz_support::mutate::Mutator`] and asserts that the parser returns, `Ok` or `Err`, and never
//! panics. A short run is part of `npm test`; `FUZZ_SECONDS=600 cargo test -p cli --release --test
//! fuzz_parsers -- --nocapture` is the long run (the seconds are shared by the targets).
//! A panicking input is written to `$TMPDIR/studio-fuzz-crashes/` to become a reproducer.

#[path = "fuzz_support/mutate.rs"]
mod mutate;

use mutate::Mutator;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A target parses one input and says whether it was accepted (a measure of how deep the
/// mutations reach).
type Target = fn(&[u8]) -> bool;

fn safetensors(b: &[u8]) -> bool {
    let Ok(f) = diffusion::safetensors_file::SafetensorsBytes::parse("fuzz", b.to_vec()) else { return false };
    for name in f.header.tensors.keys() {
        let _ = f.f32(name);
    }
    let _ = diffusion::safetensors_file::WeightFile::InMemory(f).first_non_finite();
    true
}

fn unet_config(b: &[u8]) -> bool {
    diffusion::unet_2d_condition_config::UNet2DConditionConfig::from_json(&text(b)).is_ok()
}

fn text_encoder_config(b: &[u8]) -> bool {
    diffusion::clip::CLIPTextConfig::from_json(&text(b)).is_ok()
}

fn vae_config(b: &[u8]) -> bool {
    diffusion::autoencoder_kl::AutoencoderKLConfig::from_json(&text(b)).is_ok()
}

fn scheduler_config(b: &[u8]) -> bool {
    let Ok(c) = schedulers::SchedulerConfig::from_json(&text(b)) else { return false };
    let mut any = false;
    for kind in ["ddim", "euler", "euler-a", "lcm", "dpm", "pndm"] {
        let kind: schedulers::SchedulerKind = kind.parse().unwrap();
        any |= schedulers::build(kind, &c, 10).is_ok();
    }
    any
}

fn studio_json(b: &[u8]) -> bool {
    pipeline::StudioJson::parse("studio.json", b).is_ok()
}

/// The tiny fixture's vocab.json and merges.txt, read once: the tokenizer targets mutate one and
/// keep the other.
fn tokenizer_files() -> &'static (String, String) {
    static FILES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let read = |p: &str| std::fs::read_to_string(root().join("tests/fixtures/tiny-sd1/tokenizer").join(p)).unwrap();
        (read("vocab.json"), read("merges.txt"))
    })
}

fn tokenize(t: pipeline::tokenizer::ClipTokenizer) {
    for s in ["a red skull on a striped background", "💀 <|endoftext|> ÄÖ 12,345", ""] {
        let _ = t.encode(s);
    }
}

fn vocab(b: &[u8]) -> bool {
    let (_, merges) = tokenizer_files();
    let Ok(t) = pipeline::tokenizer::ClipTokenizer::from_files(&text(b), merges, None, None) else { return false };
    tokenize(t);
    true
}

fn merges(b: &[u8]) -> bool {
    let (vocab, _) = tokenizer_files();
    let Ok(t) = pipeline::tokenizer::ClipTokenizer::from_files(vocab, &text(b), None, None) else { return false };
    tokenize(t);
    true
}

fn tokenizer_config(b: &[u8]) -> bool {
    let (vocab, merges) = tokenizer_files();
    let t = text(b);
    let mut any = false;
    for (special, config) in [(Some(t.as_str()), None), (None, Some(t.as_str()))] {
        if let Ok(tok) = pipeline::tokenizer::ClipTokenizer::from_files(vocab, merges, special, config) {
            tokenize(tok);
            any = true;
        }
    }
    any
}

fn edit(b: &[u8]) -> bool {
    erasure::Edit::from_safetensors("fuzz", b.to_vec()).is_ok()
}

fn spm(b: &[u8]) -> bool {
    erasure::spm::Spm::parse("fuzz", b.to_vec()).is_ok()
}

fn lora(b: &[u8]) -> bool {
    erasure::lora::LoraFile::parse("fuzz", b.to_vec()).is_ok()
}

fn eraser(b: &[u8]) -> bool {
    erasure::leace::LinearEraser::from_safetensors("fuzz", b.to_vec()).is_ok()
}

fn requests(b: &[u8]) -> bool {
    let t = text(b);
    let a = erasure::request::EraseRequest::from_json(&t).is_ok_and(|r| r.to_config().is_ok());
    let e = erasure::request::EraserFitRequest::from_json(&t).is_ok_and(|r| r.to_config().is_ok());
    let r = erasure::request::RingABellRequest::from_json(&t).is_ok_and(|r| r.to_config().is_ok());
    a || e || r
}

fn ring_a_bell_pairs(b: &[u8]) -> bool {
    let _ = erasure::safree::SafreeConfig::parse_keywords(&text(b));
    erasure::ring_a_bell::parse_pairs(&text(b)).is_ok()
}

const TARGETS: [(&str, Target); 15] = [
    ("safetensors", safetensors),
    ("unet-config", unet_config),
    ("text-encoder-config", text_encoder_config),
    ("vae-config", vae_config),
    ("scheduler-config", scheduler_config),
    ("studio-json", studio_json),
    ("vocab", vocab),
    ("merges", merges),
    ("tokenizer-config", tokenizer_config),
    ("edit", edit),
    ("spm", spm),
    ("lora", lora),
    ("eraser", eraser),
    ("requests", requests),
    ("ring-a-bell-pairs", ring_a_bell_pairs),
];

fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let list: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root().join("tests/fuzz-corpus/seeds.json")).unwrap()).unwrap();
    let mut out = vec![];
    for v in list["targets"][target].as_array().unwrap_or_else(|| panic!("seeds.json has no target {target}")) {
        let v = v.as_str().unwrap();
        let bytes = match v.strip_prefix("text:") {
            Some(t) => t.as_bytes().to_vec(),
            None => std::fs::read(root().join(v)).unwrap_or_else(|e| panic!("{v}: {e}")),
        };
        out.push((v.to_owned(), bytes));
    }
    // Reproducers of earlier findings, replayed as they are.
    if let Ok(dir) = std::fs::read_dir(root().join("tests/fuzz-corpus").join(target)) {
        for e in dir.flatten() {
            out.push((e.path().display().to_string(), std::fs::read(e.path()).unwrap()));
        }
    }
    out
}

fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let seconds: Option<f64> = std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok());
    let per_target_iterations: usize =
        std::env::var("FUZZ_ITERATIONS").ok().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let budget = seconds.map(|s| Duration::from_secs_f64(s / TARGETS.len() as f64));
    let crashes = std::env::temp_dir().join("studio-fuzz-crashes");
    std::panic::set_hook(Box::new(|_| {}));
    let mut failures = vec![];
    let mut total = 0usize;
    for (ti, (name, target)) in TARGETS.iter().enumerate() {
        let seeds = seeds(name);
        let mut m = Mutator::new(0x5eed_0000 + ti as u64);
        let start = Instant::now();
        let mut runs = 0usize;
        let (mut panics, mut accepted) = (0usize, 0usize);
        // Every seed as it is, then mutations of them in turn.
        loop {
            let done = match budget {
                Some(b) => start.elapsed() >= b,
                None => runs >= per_target_iterations + seeds.len(),
            };
            if done {
                break;
            }
            let input = if runs < seeds.len() { seeds[runs].1.clone() } else { m.mutate(&seeds[runs % seeds.len()].1) };
            let result = catch_unwind(AssertUnwindSafe(|| target(&input)));
            if let Ok(true) = result {
                accepted += 1;
            }
            if let Err(p) = result {
                panics += 1;
                std::fs::create_dir_all(&crashes).ok();
                let path = crashes.join(format!("{name}-{runs}.bin"));
                std::fs::write(&path, &input).ok();
                if failures.len() < 20 {
                    failures.push(format!("{name}, run {runs}: {} (input: {})", panic_message(p), path.display()));
                }
            }
            runs += 1;
        }
        total += runs;
        eprintln!(
            "{name}: {runs} inputs in {:.1} s, {accepted} accepted, {panics} panics",
            start.elapsed().as_secs_f64()
        );
    }
    let _ = std::panic::take_hook();
    eprintln!("{total} inputs in all");
    assert!(failures.is_empty(), "parsers panicked:\n{}", failures.join("\n"));
}
