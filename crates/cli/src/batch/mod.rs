//! `studio batch`: a prompt file × variants → images and a JSONL manifest of every image with
//! its full parameters and the model's and the variant's SHA-256; sharded (`--shard K/N`) and
//! resumable (a rerun skips what is done and verified).
//!
//! The run's jobs, in order: for each variant, for each prompt row, for each of `--seeds` seeds
//! (the row's seed, else `--seed`, plus 0, 1, …): one image, `images/<variant>/<row>_<seed>.png`.
//! Each shard records its jobs in `shards/K-of-N.jsonl` ([`crate::shard`]); a run without
//! `--shard` is shard 0/1 and merges itself at the end, so its `manifest.jsonl` and
//! `summary.json` are what `studio merge` writes from N shards: the same bytes.

mod csv;
pub mod prompt_file;
pub mod variant;

use crate::sha256_hex;
use crate::shard::{Shard, ShardLog};
use anyhow::{Context, Result, bail};
use erasure::steering::Steering;
use pipeline::{GenerateParams, Hooks, ModelDefaults, NoHooks, to_rgb8};
use prompt_file::PromptRow;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Instant;
use variant::Variant;

#[derive(clap::Args)]
pub struct BatchArgs {
    /// The model folder (diffusers layout).
    #[arg(long)]
    pub model: PathBuf,
    /// Prompts: CSV with a header (I2P, ESD/UCE layouts: prompt, sd_seed / evaluation_seed,
    /// sd_guidance_scale / evaluation_guidance, case_number, negative_prompt), JSONL with the same
    /// keys, or text with one prompt a line (UnlearnCanvas' prompt files).
    #[arg(long, required_unless_present = "template", conflicts_with = "template")]
    pub prompts: Option<PathBuf>,
    /// Instead of a prompt file: a template whose {NAME}s are filled from --fill NAME=FILE files
    /// (one value a line), every combination, the first fill slowest — UnlearnCanvas' evaluation:
    /// --template "A {object} image in {style} style." --fill style=styles.txt --fill object=class.txt
    #[arg(long, requires = "fill")]
    pub template: Option<String>,
    /// A template's values: NAME=FILE (one value a line; `_` becomes a space in the prompt).
    #[arg(long, value_name = "NAME=FILE")]
    pub fill: Vec<String>,
    /// The output folder: images/, shards/, manifest.jsonl, summary.json.
    #[arg(long)]
    pub out: PathBuf,
    /// A JSON list of variants ({"name", "edits", "spm", "lora", "noFt", "loraUnetOnly",
    /// "steering", "ringABellEta", "negativePrompt"}; see crates/cli/src/batch/variant.rs).
    #[arg(long)]
    pub variants: Option<PathBuf>,
    /// A variant with edit files: NAME=EDIT[+EDIT…] (NAME alone: the unedited model); repeatable.
    #[arg(long = "variant", value_name = "NAME=EDIT")]
    pub variant: Vec<String>,
    /// Images per prompt: seeds s, s+1, … from the row's seed s (else --seed).
    #[arg(long, default_value_t = 1)]
    pub seeds: u64,
    /// The seed of rows without one.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Denoising steps (default: the folder's studio.json, else 50 as in diffusers).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Guidance of rows without one (default: the folder's studio.json, else 7.5).
    #[arg(long)]
    pub guidance: Option<f64>,
    /// auto | ddim | euler | euler-a | lcm | dpm | pndm (auto: as `studio generate`).
    #[arg(long, default_value = "auto")]
    pub scheduler: String,
    #[arg(long)]
    pub height: Option<usize>,
    #[arg(long)]
    pub width: Option<usize>,
    /// Only the first N rows of the prompt file.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Shard K of N (0-based): the jobs j with j mod N = K; `studio merge OUT` joins the shards.
    #[arg(long)]
    pub shard: Option<String>,
    /// ndarray (CPU) or wgpu.
    #[arg(long, default_value = "ndarray")]
    pub device: String,
    /// f32, or f16 (wgpu with shader-f16).
    #[arg(long, default_value = "f32")]
    pub dtype: String,
}

/// SHA-256 of what loading reads from a model folder: `model_index.json`, `studio.json` and every
/// file under `text_encoder/`, `tokenizer/`, `unet/`, `vae/`, `scheduler/`, each as
/// "path sha256" lines in path order (paths relative, so the hash does not depend on where the
/// folder is).
pub fn model_sha256(dir: &Path) -> Result<String> {
    let mut files = vec![];
    for top in ["model_index.json", "studio.json"] {
        if dir.join(top).is_file() {
            files.push(PathBuf::from(top));
        }
    }
    for sub in ["text_encoder", "tokenizer", "unet", "vae", "scheduler"] {
        let d = dir.join(sub);
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let e = e.with_context(|| format!("listing {}", d.display()))?;
            if e.file_type()?.is_file() {
                files.push(PathBuf::from(sub).join(e.file_name()));
            }
        }
    }
    files.sort();
    let mut list = String::new();
    for f in &files {
        let bytes = std::fs::read(dir.join(f)).with_context(|| format!("reading {}", dir.join(f).display()))?;
        list.push_str(&format!("{} {}\n", f.display(), sha256_hex(&bytes)));
    }
    Ok(sha256_hex(list.as_bytes()))
}

/// One image of the run.
struct Job<'a> {
    variant: usize,
    row: usize,
    prompt: &'a PromptRow,
    seed: u64,
}

/// The run's settings, fixed before any image.
struct Plan {
    rows: Vec<PromptRow>,
    variants: Vec<Variant>,
    seeds: u64,
    default_seed: u64,
    steps: usize,
    guidance: f64,
    scheduler: schedulers::SchedulerKind,
    height: usize,
    width: usize,
    model_sha256: String,
}

impl Plan {
    fn jobs(&self) -> u64 {
        self.variants.len() as u64 * self.rows.len() as u64 * self.seeds
    }

    fn job(&self, j: u64) -> Result<Job<'_>> {
        let per_variant = self.rows.len() as u64 * self.seeds;
        let variant = (j / per_variant) as usize;
        let row = ((j % per_variant) / self.seeds) as usize;
        let prompt = &self.rows[row];
        let base = prompt.seed.unwrap_or(self.default_seed);
        let seed = base
            .checked_add(j % self.seeds)
            .with_context(|| format!("prompt row {row}: seed {base} + {} overflows 64 bits", j % self.seeds))?;
        Ok(Job { variant, row, prompt, seed })
    }

    fn params(&self, job: &Job) -> GenerateParams {
        let v = &self.variants[job.variant].spec;
        GenerateParams {
            prompt: job.prompt.prompt.clone(),
            negative_prompt: job.prompt.negative_prompt.clone().or(v.negative_prompt.clone()).unwrap_or_default(),
            steps: self.steps,
            guidance: job.prompt.guidance.unwrap_or(self.guidance),
            height: self.height,
            width: self.width,
            seed: job.seed,
            scheduler: self.scheduler,
            ..Default::default()
        }
    }

    /// The manifest line of a job, without its image's SHA-256.
    fn entry(&self, job: &Job) -> Value {
        let p = self.params(job);
        let v = &self.variants[job.variant];
        json!({
            "variant": v.spec.name,
            "row": job.row,
            "id": job.prompt.id,
            "prompt": p.prompt,
            "negative_prompt": p.negative_prompt,
            "seed": p.seed,
            "guidance": p.guidance,
            "steps": p.steps,
            "scheduler": p.scheduler.name(),
            "width": p.width,
            "height": p.height,
            "image": format!("images/{}/{:05}_{}.png", v.spec.name, job.row, job.seed),
            "model_sha256": self.model_sha256,
            "variant_sha256": v.sha256,
        })
    }
}

/// Whether a recorded job is what this run would do and its image is there, unchanged.
fn verified(out: &Path, expected: &Value, recorded: &Value) -> bool {
    let mut rest = recorded.clone();
    let Some(sha) = rest.as_object_mut().and_then(|o| o.remove("image_sha256")) else { return false };
    if &rest != expected {
        return false;
    }
    let Some(image) = expected["image"].as_str() else { return false };
    std::fs::read(out.join(image)).is_ok_and(|b| sha.as_str() == Some(sha256_hex(&b).as_str()))
}

fn file_name(p: &Path) -> String {
    p.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

/// The rows of `--prompts FILE` or of `--template … --fill …`, and what the protocol records of
/// them (file names and SHA-256, not paths: shards on other machines see other paths).
fn prompt_rows(a: &BatchArgs) -> Result<(Vec<PromptRow>, Value)> {
    if let Some(path) = &a.prompts {
        let bytes = std::fs::read(path).with_context(|| format!("reading the prompt file {}", path.display()))?;
        return Ok((prompt_file::read(path)?, json!({ "file": file_name(path), "sha256": sha256_hex(&bytes) })));
    }
    let template = a.template.clone().unwrap_or_default();
    let mut fills = vec![];
    let mut record = vec![];
    for f in &a.fill {
        let Some((name, file)) = f.split_once('=') else { bail!("--fill `{f}`: use NAME=FILE") };
        let path = Path::new(file);
        let text = std::fs::read_to_string(path).with_context(|| format!("--fill {name}: reading {file}"))?;
        record.push(json!({ "name": name, "file": file_name(path), "sha256": sha256_hex(text.as_bytes()) }));
        fills.push((name.to_owned(), prompt_file::values(&text)));
    }
    let rows = prompt_file::grid(&template, &fills).map_err(|e| anyhow::anyhow!("{e}"))?;
    Ok((rows, json!({ "template": template, "fills": record })))
}

pub fn run(a: BatchArgs) -> Result<()> {
    let shard = a.shard.as_deref().map(Shard::parse).transpose()?.unwrap_or(Shard::ALL);
    if a.seeds == 0 {
        bail!("--seeds must be at least 1");
    }
    let (mut rows, prompts_protocol) = prompt_rows(&a)?;
    if let Some(n) = a.limit {
        if n == 0 {
            bail!("--limit must be at least 1");
        }
        rows.truncate(n);
    }
    let variants = variant::read(a.variants.as_deref(), &a.variant)?;
    let defaults = crate::run_defaults(&a.model, a.guidance, a.steps, ModelDefaults::default(), "diffusers' default")?;
    let scheduler = crate::scheduler_kind(&a.scheduler, &a.model)?;
    let device = crate::device_with_dtype(&a.device, &a.dtype)?;
    let mut model = crate::load_model(&a.model, &device)?;
    let default_size = model.unet.config().sample_size * model.vae.scale_factor();
    let plan = Plan {
        rows,
        variants,
        seeds: a.seeds,
        default_seed: a.seed,
        steps: defaults.steps,
        guidance: defaults.guidance,
        scheduler,
        height: a.height.unwrap_or(default_size),
        width: a.width.unwrap_or(default_size),
        model_sha256: model_sha256(&a.model)?,
    };
    crate::check_size(plan.height, plan.width, model.vae.scale_factor())?;
    let jobs = plan.jobs();
    let protocol = json!({
        "model_sha256": plan.model_sha256,
        "prompts": prompts_protocol,
        "rows": plan.rows.len(),
        "variants": plan.variants.iter().map(|v| json!({ "sha256": v.sha256, "identity": v.identity })).collect::<Vec<_>>(),
        "seeds_per_prompt": plan.seeds,
        "default_seed": plan.default_seed,
        "steps": plan.steps,
        "default_guidance": plan.guidance,
        "scheduler": plan.scheduler.name(),
        "height": plan.height,
        "width": plan.width,
        "device": a.device,
        "dtype": a.dtype,
    });
    let header = crate::shard::header("batch", shard, jobs, &protocol);
    let mut log = ShardLog::open(&a.out, shard, &header, |j, recorded| {
        plan.job(j).is_ok_and(|job| verified(&a.out, &plan.entry(&job), recorded))
    })?;
    let mine = shard.share(jobs);
    let resumed = log.done.len() as u64;
    eprintln!(
        "batch: {} prompt(s) × {} variant(s) × {} seed(s) = {jobs} image(s); shard {shard}: {mine}, {resumed} already done; {}×{}, {}, {}",
        plan.rows.len(),
        plan.variants.len(),
        plan.seeds,
        plan.width,
        plan.height,
        plan.scheduler.name(),
        defaults.note
    );

    let start = Instant::now();
    let mut applied: Option<(usize, variant::Applied)> = None;
    let mut made = 0u64;
    let todo: Vec<u64> = (0..jobs).filter(|j| shard.owns(*j) && !log.done.contains_key(j)).collect();
    for j in todo {
        let job = plan.job(j)?;
        if applied.as_ref().map(|(v, _)| *v) != Some(job.variant) {
            if let Some((_, old)) = applied.take() {
                old.revert(&mut model);
            }
            applied = Some((job.variant, plan.variants[job.variant].apply(&mut model)?));
        }
        let Some((_, active)) = applied.as_mut() else { unreachable!("a variant was applied above") };
        let params = plan.params(&job);
        active.prepare(&mut model, &params.prompt)?;
        let mut hooks: Box<dyn Hooks> = match &active.steering {
            Some(cfg) => Box::new(Steering::prepare(&model, &params, cfg.clone())?),
            None => Box::new(NoHooks),
        };
        let out = model.generate(&params, hooks.as_mut()).map_err(|e| crate::explain(&a.model, e))?;
        let (h, w, rgb) = to_rgb8(&out.image);
        let mut png = std::io::Cursor::new(vec![]);
        image::RgbImage::from_raw(w as u32, h as u32, rgb)
            .context("image buffer")?
            .write_to(&mut png, image::ImageFormat::Png)
            .context("encoding the PNG")?;
        let png = png.into_inner();
        let mut entry = plan.entry(&job);
        let rel = entry["image"].as_str().unwrap_or_default().to_owned();
        let path = a.out.join(&rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        // A killed shard leaves no half image under the final name.
        crate::shard::write_whole(&path, &png)?;
        entry["image_sha256"] = sha256_hex(&png).into();
        log.append(j, entry)?;
        made += 1;
        eprint!("\rshard {shard}: {}/{mine} images   ", resumed + made);
    }
    if let Some((_, old)) = applied.take() {
        old.revert(&mut model);
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "\rshard {shard}: {made} image(s) made in {secs:.1} s ({:.3} images/s), {resumed} resumed; {}/{mine} done",
        if secs > 0.0 { made as f64 / secs } else { 0.0 },
        log.done.len()
    );
    if shard == Shard::ALL {
        crate::merge::merge(&a.out, &[])?;
    } else {
        eprintln!("when every shard is done: studio merge {}", a.out.display());
    }
    Ok(())
}
