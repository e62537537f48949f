//! `studio`: the native command line of Erasure Studio (batch work, parity checks, benchmarks).

mod adapter_args;
mod anatomy;
mod attention;
mod batch;
mod bench;
mod bench_erase;
mod classroom_tokenizer;
mod erase;
mod erasure_report;
mod eval_classroom;
mod fs_files;
mod merge;
mod shard;
mod steering_args;

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::{Parser, Subcommand};
use diffusion::safetensors_file::{Dtype, SafetensorsBytes, WriteTensor, serialize};
use fs_files::FsFiles;
use pipeline::{GenerateParams, ModelDefaults, StableDiffusion, StepInfo, StudioJson, to_rgb8};
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

#[derive(Parser)]
#[command(name = "studio", about = "Erasure Studio: Stable Diffusion and concept erasure, natively")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

// One Command is parsed per run: its size does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
enum Command {
    /// Text → image with a diffusers model folder.
    Generate(GenerateArgs),
    /// `generate` that also writes DAAM's cross-attention heat map of every prompt token (and their IoU with the object).
    Attention(attention::AttentionArgs),
    /// What an edit file did to each tensor: ‖ΔW‖/‖W‖, rank and spectral norm of ΔW, per block (to_k vs to_v).
    Anatomy(anatomy::AnatomyArgs),
    /// Print a model folder's configuration, parameter counts and dtypes.
    Inspect {
        /// The model folder (diffusers layout).
        dir: PathBuf,
    },
    /// Time text encoding, one UNet step and a VAE decode (SD 1.5-shaped random weights and the tiny fixture).
    Bench(bench::BenchArgs),
    /// Fit a LEACE or INLP eraser for text embeddings from concept / other prompts (use with `generate --leace`).
    FitEraser(steering_args::FitEraserArgs),
    /// Time UCE, RECE and SPEED on SD 1.5-shaped random weights against the PyTorch reference.
    BenchErase(bench_erase::BenchEraseArgs),
    /// What each erasure method does to the classroom model (evaluator-scored table).
    ErasureReport(erasure_report::ReportArgs),
    /// Erase concepts with a closed-form edit (UCE, TIME, RECE, SPEED, MACE) and write the edit file.
    Erase(erase::EraseArgs),
    /// Prompt adherence of a classroom model (with optional edits), scored by its evaluator CNN.
    EvalClassroom(eval_classroom::EvalArgs),
    /// A prompt file × variants → images and a JSONL manifest; sharded (--shard K/N) and resumable.
    Batch(batch::BatchArgs),
    /// Join the shards of `batch` or `erasure-report` into what one process writes.
    Merge(merge::MergeArgs),
    /// Write the classroom model's tokenizer: CLIP's BPE cut, closed under every world word's merges.
    ClassroomTokenizer(classroom_tokenizer::TokenizerArgs),
}

#[derive(clap::Args)]
struct GenerateArgs {
    #[arg(long)]
    model: PathBuf,
    #[arg(long)]
    prompt: String,
    #[arg(long, default_value = "")]
    negative_prompt: String,
    /// Denoising steps (default: the folder's studio.json, else 50 as in diffusers).
    #[arg(long)]
    steps: Option<usize>,
    /// Classifier-free guidance scale (default: the folder's studio.json, else 7.5 as in diffusers).
    #[arg(long)]
    guidance: Option<f64>,
    /// auto (studio.json's `scheduler`, else the folder's own scheduler, as diffusers loads it) | ddim | euler | euler-a | lcm | dpm | pndm
    #[arg(long, default_value = "auto")]
    scheduler: String,
    /// Image height in pixels (default: the UNet's sample_size × the VAE scale factor).
    #[arg(long)]
    height: Option<usize>,
    #[arg(long)]
    width: Option<usize>,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Initial noise: a safetensors file with a tensor `latents` [1, c, h, w].
    #[arg(long)]
    latents: Option<PathBuf>,
    /// Take the text encoder's hidden state this many layers before the last.
    #[arg(long)]
    clip_skip: Option<usize>,
    #[arg(long, default_value = "out.png")]
    out: PathBuf,
    /// Also write `latents` (final, before VAE scaling) and `image` (raw decoder output) here.
    #[arg(long)]
    dump: Option<PathBuf>,
    /// ndarray (CPU) or wgpu (GPU through Vulkan/Metal/DX12).
    #[arg(long, default_value = "ndarray")]
    device: String,
    /// Compute precision: f32, or f16 (wgpu where the adapter has shader-f16; what the page uses
    /// on such an adapter). Weights are converted on load; read-backs are f32.
    #[arg(long, default_value = "f32")]
    dtype: String,
    /// Apply an edit file (from `studio erase` or the official UCE script) before generating; repeatable.
    #[arg(long = "edit")]
    edits: Vec<PathBuf>,
    #[command(flatten)]
    adapters: adapter_args::AdapterArgs,
    #[command(flatten)]
    steering: steering_args::SteeringArgs,
}

/// [`device`] computing in `dtype` (`f32` or `f16`): every float tensor made on it afterwards,
/// weights included, has that type (burn's per-device default float dtype).
pub fn device_with_dtype(name: &str, dtype: &str) -> Result<Device> {
    let mut device = device(name)?;
    match dtype {
        "f32" => {}
        "f16" => {
            if !diffusion::nn::compute_in_f16(&mut device)
                .map_err(|e| anyhow::anyhow!("setting f16 on the {name} device: {e}"))?
            {
                bail!(
                    "the {name} device cannot compute in f16 (a GPU adapter without shader-f16, or the CPU): use --dtype f32"
                );
            }
        }
        other => bail!("unknown --dtype `{other}`: use f32 or f16"),
    }
    Ok(device)
}

#[allow(deprecated)]
pub fn device(name: &str) -> Result<Device> {
    Ok(match name {
        "ndarray" | "cpu" => Device::ndarray(),
        "wgpu" | "gpu" => Device::wgpu_options()
            .init()
            .context("no wgpu adapter (install a Vulkan driver, e.g. Debian mesa-vulkan-drivers)")?,
        other => bail!("unknown device `{other}`: use ndarray or wgpu"),
    })
}

pub fn load_model(dir: &Path, device: &Device) -> Result<StableDiffusion> {
    if !dir.is_dir() {
        bail!("model folder {} does not exist", dir.display());
    }
    let mut files = FsFiles { root: dir.to_path_buf() };
    StableDiffusion::load(&mut files, device).with_context(|| format!("loading {}", dir.display()))
}

/// Lower-case hex SHA-256 of `bytes` (the hashes in batch manifests, shard protocols and reports).
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// The first weight of the model folder that is NaN or infinite ("unet/…safetensors: tensor `x`
/// holds NaN"), for the message of a run that produced non-finite values. It reads the files
/// loading chose (`pipeline::model::component_weights`: not an unused `.fp16.` variant beside them).
pub fn non_finite_weight(dir: &Path) -> Option<String> {
    let mut files = FsFiles { root: dir.to_path_buf() };
    for component in ["text_encoder", "unet", "vae"] {
        let Ok(weights) = pipeline::model::component_weights(&mut files, component) else { continue };
        for mut f in weights {
            if let Some((tensor, x)) = f.first_non_finite() {
                let what = if x.is_nan() { "NaN" } else { "an infinite value" };
                return Some(format!(
                    "{}: tensor `{tensor}` holds {what}: the weights are damaged, download them again",
                    f.name()
                ));
            }
        }
    }
    None
}

/// A generation error, with the damaged weight named when the run produced NaN or infinities.
pub fn explain(dir: &Path, e: pipeline::GenerateError) -> anyhow::Error {
    let not_finite = matches!(e, pipeline::GenerateError::NotFinite(_));
    match not_finite.then(|| non_finite_weight(dir)).flatten() {
        Some(why) => anyhow::anyhow!("{e}: {why}"),
        None => e.into(),
    }
}

fn read_latents(path: &PathBuf) -> Result<Vec<f32>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let file = SafetensorsBytes::parse(&path.display().to_string(), bytes)?;
    let (v, shape) =
        file.f32("latents").with_context(|| format!("{} has no float tensor named `latents`", path.display()))?;
    if shape.len() != 4 || shape[0] != 1 {
        bail!("`latents` in {} has shape {shape:?}, expected [1, c, h, w]", path.display());
    }
    Ok(v)
}

/// The folder's `studio.json` ([`StudioJson`]), or `None` where it has none. A file that cannot
/// be read or parsed is an error that names it.
pub fn studio_json(model: &Path) -> Result<Option<(PathBuf, StudioJson)>> {
    let path = model.join(StudioJson::FILE);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some((path.clone(), StudioJson::parse(&path.display().to_string(), &bytes)?))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Guidance and steps of a run, and where each came from (for the log line).
#[derive(Debug, Clone, PartialEq)]
pub struct RunDefaults {
    pub guidance: f64,
    pub steps: usize,
    /// e.g. "guidance 3 (models/classroom/studio.json), 2 steps (--steps)".
    pub note: String,
}

/// Each value from its flag when given, else from the folder's `studio.json`, else from `base`
/// (`base_source` says what `base` is, e.g. "diffusers' default").
pub fn run_defaults(
    model: &Path,
    guidance: Option<f64>,
    steps: Option<usize>,
    base: ModelDefaults,
    base_source: &str,
) -> Result<RunDefaults> {
    let file = studio_json(model)?;
    let from_file = |set: bool| match (&file, set) {
        (Some((path, _)), true) => path.display().to_string(),
        _ => base_source.to_owned(),
    };
    let set = file.as_ref().map(|(_, s)| *s).unwrap_or_default();
    let resolved = set.over(base);
    let (guidance, g_src) = match guidance {
        Some(g) => (g, "--guidance".to_owned()),
        None => (resolved.guidance_scale, from_file(set.guidance_scale.is_some())),
    };
    let (steps, s_src) = match steps {
        Some(s) => (s, "--steps".to_owned()),
        None => (resolved.num_inference_steps, from_file(set.num_inference_steps.is_some())),
    };
    use erasure::request::limits::{MAX_GUIDANCE, MAX_STEPS};
    if steps == 0 || steps > MAX_STEPS {
        bail!("steps {steps} (from {s_src}): give 1 to {MAX_STEPS}, the studio's limit");
    }
    if !(0.0..=MAX_GUIDANCE).contains(&guidance) {
        bail!("guidance {guidance} (from {g_src}): give a number from 0 to {MAX_GUIDANCE}");
    }
    Ok(RunDefaults { guidance, steps, note: format!("guidance {guidance} ({g_src}), {steps} steps ({s_src})") })
}

/// Refuses an image size the studio does not run: zero, above `MAX_SIDE`, or not a multiple of
/// the VAE's factor (before any work, so a huge size cannot exhaust memory).
pub fn check_size(height: usize, width: usize, factor: usize) -> Result<()> {
    use erasure::request::limits::MAX_SIDE;
    for (flag, v) in [("--height", height), ("--width", width)] {
        if v == 0 || v > MAX_SIDE || !v.is_multiple_of(factor) {
            bail!("{flag} {v}: give a multiple of {factor} (this model's VAE factor) from {factor} to {MAX_SIDE}");
        }
    }
    Ok(())
}

/// What the classroom commands (`eval-classroom`, `erasure-report`) fall back to for a folder
/// without `studio.json` (classroom folders made before it existed): the `recommended_guidance`
/// of its `metrics.json`, else 3, and the model card's 25 DDIM steps.
pub fn classroom_base(model: &Path) -> (ModelDefaults, &'static str) {
    let metrics: Option<serde_json::Value> =
        std::fs::read_to_string(model.join("metrics.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    match metrics.as_ref().and_then(|m| m["recommended_guidance"].as_f64()) {
        Some(g) => (
            ModelDefaults { guidance_scale: g, num_inference_steps: 25, scheduler: None },
            "metrics.json's recommended_guidance; 25 steps: the classroom default",
        ),
        None => {
            (ModelDefaults { guidance_scale: 3.0, num_inference_steps: 25, scheduler: None }, "the classroom default")
        }
    }
}

/// `auto` picks `studio.json`'s `scheduler` when the folder has one, else the scheduler class
/// named in `scheduler/scheduler_config.json`, as diffusers' `from_pretrained` does; a class we
/// do not implement falls back to DDIM with a warning.
pub fn scheduler_kind(name: &str, model: &std::path::Path) -> Result<schedulers::SchedulerKind> {
    if name != "auto" {
        return name.parse().map_err(|e| anyhow::anyhow!("{e}"));
    }
    if let Some(kind) = studio_json(model)?.and_then(|(_, s)| s.scheduler) {
        return Ok(kind);
    }
    let text = std::fs::read_to_string(model.join("scheduler/scheduler_config.json")).unwrap_or_default();
    let class = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| v.get("_class_name").and_then(|c| c.as_str()).map(str::to_owned))
        .unwrap_or_default();
    Ok(class.parse().unwrap_or_else(|_| {
        eprintln!("note: scheduler `{class}` is not implemented; using DDIM (choose one with --scheduler)");
        schedulers::SchedulerKind::Ddim
    }))
}

fn generate(a: GenerateArgs) -> Result<()> {
    generate_recorded(&a, None)
}

/// `generate`, recording the cross-attention maps when `attention` is given.
fn generate_recorded(a: &GenerateArgs, attention: Option<&attention::AttentionArgs>) -> Result<()> {
    // Before loading the weights, so a bad studio.json is reported at once.
    let defaults = run_defaults(&a.model, a.guidance, a.steps, ModelDefaults::default(), "diffusers' default")?;
    eprintln!("generate: {}", defaults.note);
    let device = device_with_dtype(&a.device, &a.dtype)?;
    let selection = attention.map(attention::AttentionArgs::selection).unwrap_or_default();
    // The step window before the weights load; the resolutions need the UNet's config.
    selection.check_steps(defaults.steps).map_err(anyhow::Error::msg)?;
    let mut model = load_model(&a.model, &device)?;
    let _edits = erase::apply_edits(&mut model, &a.edits)?;
    if attention.is_some() {
        selection.check_factors(&pipeline::daam::unet_factors(model.unet.config())).map_err(anyhow::Error::msg)?;
        let probe = diffusion::attention_probe::AttentionProbe::new();
        probe.arm_steps(selection.steps);
        model.unet.set_attention_probe(Some(probe));
    }
    let factor = model.vae.scale_factor();
    let default_size = model.unet.config().sample_size * factor;
    check_size(a.height.unwrap_or(default_size), a.width.unwrap_or(default_size), factor)?;
    let params = GenerateParams {
        prompt: a.prompt.clone(),
        negative_prompt: a.negative_prompt.clone(),
        steps: defaults.steps,
        guidance: defaults.guidance,
        height: a.height.unwrap_or(default_size),
        width: a.width.unwrap_or(default_size),
        seed: a.seed,
        scheduler: scheduler_kind(&a.scheduler, &a.model)?,
        latents: a.latents.as_ref().map(read_latents).transpose()?,
        clip_skip: a.clip_skip,
    };
    let _adapters = adapter_args::attach(&a.adapters, &mut model, &params.prompt)?;
    struct Progress;
    impl pipeline::Hooks for Progress {
        fn on_step(&mut self, info: &StepInfo) -> ControlFlow<()> {
            eprint!("\rstep {}/{} (t = {:.1})", info.step, info.total, info.timestep);
            ControlFlow::Continue(())
        }
    }
    let start = std::time::Instant::now();
    let out =
        steering_args::generate(&a.steering, &model, &params, &mut Progress).map_err(|e| match e
            .downcast::<pipeline::GenerateError>()
        {
            Ok(g) => explain(&a.model, g),
            Err(e) => e,
        })?;
    eprintln!("\rgenerated {}×{} in {:.2} s", params.width, params.height, start.elapsed().as_secs_f64());
    if out.prompt_truncated {
        eprintln!("warning: the prompt is longer than 77 tokens and was truncated");
    }
    let (h, w, rgb) = to_rgb8(&out.image);
    image::RgbImage::from_raw(w as u32, h as u32, rgb.clone())
        .context("image buffer")?
        .save(&a.out)
        .with_context(|| format!("writing {}", a.out.display()))?;
    eprintln!("wrote {}", a.out.display());
    if let (Some(att), Some(probe)) = (attention, model.unet.attention_probe()) {
        let recorded = probe.take();
        let [lh, lw] = pipeline::daam::latent_size(&model, params.height, params.width);
        let (layers, data): (_, Vec<f32>) = match pipeline::daam::aggregate_selection(&recorded, lh, lw, &selection) {
            Some((l, t)) => (l, t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default()),
            None => bail!("the UNet has no cross-attention: there are no attention maps to record"),
        };
        let encoding = model.tokenizer.encode(&params.prompt);
        let maps = pipeline::daam::AttentionMaps::new(&model.tokenizer, &encoding, &layers, lh, lw, &data)
            .with_selection(&recorded, &selection, defaults.steps);
        attention::write(att, &maps, &rgb, w, h, &params.prompt)?;
    }
    if let Some(path) = &a.dump {
        let lat: Vec<f32> = out.latents.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let img: Vec<f32> = out.image.clone().into_data().convert::<f32>().try_to_vec::<f32>().unwrap_or_default();
        let bytes = serialize(
            &[
                WriteTensor { name: "latents", shape: out.latents.dims().to_vec(), data: &lat, dtype: Dtype::F32 },
                WriteTensor { name: "image", shape: out.image.dims().to_vec(), data: &img, dtype: Dtype::F32 },
            ],
            &BTreeMap::new(),
        );
        std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn inspect(dir: PathBuf) -> Result<()> {
    let mut files = FsFiles { root: dir.to_path_buf() };
    for component in ["text_encoder", "unet", "vae"] {
        let weights = pipeline::model::component_weights(&mut files, component)?;
        let mut params = 0usize;
        let mut dtypes = BTreeMap::new();
        let mut bytes = 0usize;
        for f in &weights {
            for info in f.header().tensors.values() {
                let n: usize = info.shape.iter().product();
                params += n;
                bytes += n * info.dtype.size();
                *dtypes.entry(info.dtype.name()).or_insert(0usize) += 1;
            }
        }
        let config = std::fs::read_to_string(dir.join(component).join("config.json")).unwrap_or_default();
        let config: serde_json::Value = serde_json::from_str(&config).unwrap_or_default();
        let class =
            config.get("_class_name").or(config.get("architectures")).map(|v| v.to_string()).unwrap_or_default();
        println!("{component}: {class}");
        println!(
            "  parameters: {params} ({:.1} M), {:.1} MB on disk, tensors by dtype: {dtypes:?}",
            params as f64 / 1e6,
            bytes as f64 / 1e6
        );
        let keys: &[&str] = match component {
            "text_encoder" => &["hidden_size", "num_hidden_layers", "num_attention_heads", "hidden_act", "vocab_size"],
            "unet" => &[
                "block_out_channels",
                "cross_attention_dim",
                "attention_head_dim",
                "use_linear_projection",
                "sample_size",
                "down_block_types",
            ],
            _ => &["block_out_channels", "latent_channels", "scaling_factor", "sample_size"],
        };
        for k in keys {
            if let Some(v) = config.get(*k) {
                println!("  {k}: {v}");
            }
        }
    }
    let sched = std::fs::read_to_string(dir.join("scheduler/scheduler_config.json"))
        .context("scheduler/scheduler_config.json")?;
    let sched: serde_json::Value = serde_json::from_str(&sched)?;
    println!("scheduler: {}", sched.get("_class_name").map(|v| v.to_string()).unwrap_or_default());
    for k in ["prediction_type", "timestep_spacing", "beta_schedule", "num_train_timesteps"] {
        if let Some(v) = sched.get(k) {
            println!("  {k}: {v}");
        }
    }
    // Loading proves the folder is complete and consistent.
    let device = device("ndarray")?;
    load_model(&dir, &device)?;
    println!("loads: ok");
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Generate(a) => generate(a),
        Command::Attention(a) => generate_recorded(&a.generate, Some(&a)),
        Command::Inspect { dir } => inspect(dir),
        Command::Anatomy(a) => anatomy::run(a),
        Command::Bench(a) => bench::run(a),
        Command::FitEraser(a) => steering_args::fit_eraser(a),
        Command::Erase(a) => erase::run(a),
        Command::ErasureReport(a) => erasure_report::run(a),
        Command::BenchErase(a) => bench_erase::run(a),
        Command::EvalClassroom(a) => eval_classroom::run(a),
        Command::ClassroomTokenizer(a) => classroom_tokenizer::run(a),
        Command::Batch(a) => batch::run(a),
        Command::Merge(a) => merge::run(a),
    };
    if let Err(e) = result {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
