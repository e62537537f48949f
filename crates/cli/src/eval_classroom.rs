//! `studio eval-classroom`: prompt adherence of a classroom model (optionally with erasure edits
//! applied), measured as the model card measures it: generate every prompt of a fixed prompt set
//! with seeds 0..N, score each image with the evaluator CNN shipped in `DIR/evaluator/`
//! ([`classroom::evaluator`]), count hits per attribute with the training script's rule
//! ([`classroom::scoring`]), print a table and write JSON.
//!
//! Images are generated in batches: the loop below is `pipeline::Run` (encode, CFG on
//! `[uncond; cond]`, scheduler step, VAE decode) over `[b, c, h, w]` latents, each image's initial
//! noise drawn from its own `NoiseGenerator::new(seed)` exactly as `model.generate` draws it, so a
//! batch of one is `model.generate` bit for bit (test `batch_of_one_is_generate`). Our noise is
//! not PyTorch's, so numbers differ slightly from the Python-computed `metrics.json`, which is
//! shown beside ours as a cross-check.

use anyhow::{Context, Result, bail};
use burn::tensor::{Device, Tensor, TensorData};
use classroom::evaluator::Evaluator;
use classroom::scoring::{Adherence, score_image};
use classroom::{LabelledPrompt, Labels, erasure_prompt_sets, heldout_prompts};
use erasure::{Edit, EditStack};
use pipeline::noise::NoiseGenerator;
use pipeline::prompt::encode_prompt;
use pipeline::{StableDiffusion, rgb8_from_f32};
use schedulers::SchedulerKind;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PromptSet {
    /// The 122 held-out prompts of the model card (`classroom::heldout_prompts`).
    Heldout,
    /// Every prompt of the erasure sets (`classroom::erasure_prompt_sets`), grouped `<concept>/<part>`.
    Erasure,
}

#[derive(clap::Args)]
pub struct EvalArgs {
    /// The classroom model folder (diffusers layout with an `evaluator/` inside).
    #[arg(long)]
    model: PathBuf,
    /// Edit files (`studio erase` output) applied to the UNet, in order, before generating.
    #[arg(long = "edit")]
    edits: Vec<PathBuf>,
    /// Seeds per prompt (0..N).
    #[arg(long, default_value_t = 16)]
    seeds: usize,
    /// Guidance scale (default: the folder's studio.json, else `recommended_guidance` of its metrics.json, else 3).
    #[arg(long)]
    guidance: Option<f64>,
    /// DDIM steps (default: the folder's studio.json, else 25).
    #[arg(long)]
    steps: Option<usize>,
    #[arg(long, value_enum, default_value = "heldout")]
    prompts: PromptSet,
    /// Write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// ndarray (CPU) or wgpu (GPU).
    #[arg(long, default_value = "ndarray")]
    device: String,
    /// Only the first K prompts (the held-out set is interleaved by group, so K ≥ 7 covers every group).
    #[arg(long)]
    limit: Option<usize>,
    /// Images generated together in one batch.
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// auto (the folder's own scheduler) | ddim | euler | euler-a | lcm | dpm | pndm
    #[arg(long, default_value = "auto")]
    scheduler: String,
    /// Threads generating parts of a batch at once (default: the CPU count on ndarray, 1 on wgpu).
    /// burn-ndarray also splits each matrix product over the cores (its `multi-threads` feature);
    /// on 2 cores, 2 threads gave 0.28 images/s against 0.24 with 1.
    #[arg(long)]
    threads: Option<usize>,
}

/// One prompt to generate and what a faithful image of it shows.
#[derive(Debug, Clone)]
pub struct EvalPrompt {
    pub text: String,
    pub labels: Labels,
    pub group: String,
}

/// The held-out prompts interleaved by group (one of each group in turn), the order in which
/// `train.py`'s `load_prompts` reads them, so a prefix (`--limit`) shows every group.
pub fn interleaved(items: Vec<LabelledPrompt>) -> Vec<EvalPrompt> {
    let mut groups: Vec<(String, std::collections::VecDeque<LabelledPrompt>)> = vec![];
    for x in items {
        match groups.iter_mut().find(|(g, _)| *g == x.group) {
            Some((_, q)) => q.push_back(x),
            None => groups.push((x.group.clone(), [x].into())),
        }
    }
    let mut out = vec![];
    while groups.iter().any(|(_, q)| !q.is_empty()) {
        for (_, q) in groups.iter_mut() {
            if let Some(x) = q.pop_front() {
                out.push(EvalPrompt { text: x.text, labels: x.labels, group: x.group });
            }
        }
    }
    out
}

pub fn prompt_set(set: PromptSet) -> Vec<EvalPrompt> {
    match set {
        PromptSet::Heldout => interleaved(heldout_prompts()),
        PromptSet::Erasure => erasure_prompt_sets()
            .into_iter()
            .flat_map(|s| {
                let concept = s.concept.clone();
                [("direct", s.direct), ("synonym", s.synonyms), ("indirect", s.indirect), ("neighbour", s.neighbours)]
                    .into_iter()
                    .flat_map(move |(part, list)| {
                        let group = format!("{concept}/{part}");
                        list.into_iter().map(move |x| EvalPrompt {
                            text: x.text,
                            labels: x.labels,
                            group: group.clone(),
                        })
                    })
            })
            .collect(),
    }
}

/// Batched text → image with classifier-free guidance: `model.generate` for several prompts and
/// seeds at once.
pub struct BatchSampler<'m> {
    pub model: &'m StableDiffusion,
    pub scheduler: SchedulerKind,
    pub steps: usize,
    pub guidance: f64,
    /// `[1, 77, d]`, the empty prompt (the negative prompt of `studio generate`'s default).
    uncond: Tensor<3>,
    height: usize,
    width: usize,
}

impl<'m> BatchSampler<'m> {
    pub fn new(model: &'m StableDiffusion, scheduler: SchedulerKind, steps: usize, guidance: f64) -> Result<Self> {
        if steps == 0 || !guidance.is_finite() {
            bail!("steps must be at least 1 and guidance a finite number");
        }
        let uncond = encode_prompt(&model.tokenizer, &model.text_encoder, "", None, &model.device)?.embeds;
        let size = model.unet.config().sample_size * model.vae.scale_factor();
        Ok(Self { model, scheduler, steps, guidance, uncond, height: size, width: size })
    }

    /// `[1, 77, d]` embeddings of a prompt.
    pub fn encode(&self, text: &str) -> Result<Tensor<3>> {
        Ok(encode_prompt(&self.model.tokenizer, &self.model.text_encoder, text, None, &self.model.device)?.embeds)
    }

    /// Raw decoder output `[b, 3, H, W]` for `conds[i]` with seed `seeds[i]`.
    pub fn decode_batch(&self, conds: &[Tensor<3>], seeds: &[u64]) -> Result<Tensor<4>> {
        let m = self.model;
        let device = &m.device;
        let b = seeds.len();
        if b == 0 || conds.len() != b {
            bail!("{} prompts for {} seeds", conds.len(), b);
        }
        let [h, w] = m.latent_size(self.height, self.width)?;
        let shape = [1, m.unet.config().in_channels, h, w];
        let mut scheduler = schedulers::build(self.scheduler, &m.scheduler_config, self.steps)
            .map_err(|e| anyhow::anyhow!("scheduler: {e}"))?;
        // Each image's generator draws its initial latents first, then (stochastic schedulers) its step noise.
        let mut noise: Vec<NoiseGenerator> = seeds.iter().map(|&s| NoiseGenerator::new(s)).collect();
        let init: Vec<Tensor<4>> = noise.iter_mut().map(|g| g.tensor(shape, device)).collect();
        let mut latents = Tensor::cat(init, 0) * scheduler.init_noise_sigma();
        let cfg = self.guidance > 1.0;
        let context = if cfg {
            let mut parts = vec![self.uncond.clone(); b];
            parts.extend(conds.iter().cloned());
            Tensor::cat(parts, 0)
        } else {
            Tensor::cat(conds.to_vec(), 0)
        };
        let timesteps = scheduler.timesteps().to_vec();
        for (i, &t) in timesteps.iter().enumerate() {
            let x = scheduler.scale_model_input(latents.clone(), i);
            let n = if cfg { 2 * b } else { b };
            let x = if cfg { Tensor::cat(vec![x.clone(), x], 0) } else { x };
            let ts = Tensor::<1>::from_data(TensorData::new(vec![t as f32; n], [n]), device);
            let eps = m.unet.forward(x, ts, context.clone());
            let eps = if cfg {
                let mut parts = eps.chunk(2, 0);
                let eps_cond = parts.pop().context("two halves")?;
                let eps_uncond = parts.pop().context("two halves")?;
                eps_uncond.clone() + (eps_cond - eps_uncond) * self.guidance
            } else {
                eps
            };
            let step_noise = scheduler
                .needs_noise()
                .then(|| Tensor::cat(noise.iter_mut().map(|g| g.tensor(shape, device)).collect(), 0));
            latents = scheduler.step(eps, i, latents, step_noise).map_err(|e| anyhow::anyhow!("scheduler: {e}"))?;
        }
        if !latents.clone().is_finite().all().into_scalar::<bool>() {
            bail!("the run produced NaN or infinite values; try another guidance or scheduler");
        }
        Ok(m.vae.decode(latents / m.vae.config().scaling_factor))
    }

    /// [`Self::generate`] split over `threads` threads (each image's result does not depend on
    /// the batch it is in, so the images are the same).
    pub fn generate_parallel(&self, conds: &[Tensor<3>], seeds: &[u64], threads: usize) -> Result<Vec<Vec<u8>>> {
        if threads <= 1 || seeds.len() < 2 {
            return self.generate(conds, seeds);
        }
        let per = seeds.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = conds
                .chunks(per)
                .zip(seeds.chunks(per))
                .map(|(c, s)| scope.spawn(move || self.generate(c, s)))
                .collect();
            let mut out = Vec::with_capacity(seeds.len());
            for h in handles {
                out.extend(h.join().map_err(|_| anyhow::anyhow!("a generation thread panicked"))??);
            }
            Ok(out)
        })
    }

    /// RGB8 images `[H, W, 3]`, one per seed.
    pub fn generate(&self, conds: &[Tensor<3>], seeds: &[u64]) -> Result<Vec<Vec<u8>>> {
        let image = self.decode_batch(conds, seeds)?;
        let [b, _, h, w] = image.dims();
        let data = image
            .into_data()
            .convert::<f32>()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("reading images back: {e:?}"))?;
        let per = 3 * h * w;
        Ok((0..b).map(|i| rgb8_from_f32(h, w, &data[i * per..(i + 1) * per]).2).collect())
    }
}

/// The evaluator shipped in `DIR/evaluator/`.
pub fn load_evaluator(model: &Path, device: &Device) -> Result<Evaluator> {
    let dir = model.join("evaluator");
    let config = dir.join("config.json");
    let weights = dir.join("model.safetensors");
    if !config.is_file() || !weights.is_file() {
        bail!(
            "no evaluator in {}: eval-classroom needs the evaluator CNN shipped with the classroom model (evaluator/config.json and evaluator/model.safetensors, see models/classroom/MODEL_CARD.md)",
            dir.display()
        );
    }
    let text = std::fs::read_to_string(&config).with_context(|| format!("reading {}", config.display()))?;
    let bytes = std::fs::read(&weights).with_context(|| format!("reading {}", weights.display()))?;
    Evaluator::load(&text, bytes, device).with_context(|| format!("loading the evaluator in {}", dir.display()))
}

/// Python's `f"{g:g}"` for the guidance values used as metrics.json keys (3.0 → "3", 7.5 → "7.5").
fn guidance_key(g: f64) -> String {
    if g.fract() == 0.0 { format!("guidance_{}", g as i64) } else { format!("guidance_{g}") }
}

fn pct(v: Option<f64>) -> String {
    v.map(|x| format!("{:.1} %", x * 100.0)).unwrap_or_else(|| "—".into())
}

pub fn run(a: EvalArgs) -> Result<()> {
    if !a.model.is_dir() {
        bail!("model folder {} does not exist", a.model.display());
    }
    if a.seeds == 0 || a.batch == 0 || a.threads == Some(0) {
        bail!("--seeds, --batch and --threads must be at least 1");
    }
    let threads = a.threads.unwrap_or_else(|| match a.device.as_str() {
        "ndarray" | "cpu" => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        _ => 1,
    });
    let device = crate::device(&a.device)?;
    let evaluator = load_evaluator(&a.model, &device)?;
    let metrics: Option<serde_json::Value> =
        std::fs::read_to_string(a.model.join("metrics.json")).ok().and_then(|t| serde_json::from_str(&t).ok());
    let (base, base_source) = crate::classroom_base(&a.model);
    let defaults = crate::run_defaults(&a.model, a.guidance, a.steps, base, base_source)?;
    let (guidance, steps) = (defaults.guidance, defaults.steps);
    let scheduler = crate::scheduler_kind(&a.scheduler, &a.model)?;
    let mut model = crate::load_model(&a.model, &device)?;

    let mut stack = EditStack::new();
    let mut edits_json = vec![];
    for path in &a.edits {
        let file = path.display().to_string();
        let bytes = std::fs::read(path).with_context(|| format!("reading {file}"))?;
        let edit = Edit::from_safetensors(&file, bytes)?;
        if let Some(warning) = stack.base_mismatch(&model.unet, &edit) {
            eprintln!("warning: {file}: {warning}");
        }
        edits_json.push(json!({"file": file, "method": edit.meta.method, "concepts": edit.meta.concepts}));
        let n = stack.apply(&mut model.unet, &file, edit.clone(), &file)?;
        eprintln!("applied {file}: {} ({}), {n} tensor(s)", edit.meta.method, edit.meta.concepts.join(", "));
    }

    let mut prompts = prompt_set(a.prompts);
    if let Some(k) = a.limit {
        prompts.truncate(k);
    }
    if prompts.is_empty() {
        bail!("--limit 0 leaves no prompts");
    }
    let sampler = BatchSampler::new(&model, scheduler, steps, guidance)?;
    let conds = prompts.iter().map(|p| sampler.encode(&p.text)).collect::<Result<Vec<_>>>()?;
    // Seed-major order: after every pass over the prompts the checkpoint is a complete
    // "all prompts × k seeds" evaluation (the totals do not depend on the order).
    let jobs: Vec<(usize, u64)> = (0..a.seeds as u64).flat_map(|s| (0..prompts.len()).map(move |p| (p, s))).collect();
    eprintln!(
        "eval-classroom: {} prompts × {} seeds = {} images, {} {} steps, guidance {guidance}, {} ({threads} thread(s))",
        prompts.len(),
        a.seeds,
        jobs.len(),
        scheduler,
        steps,
        a.device
    );
    // The Python numbers of metrics.json are comparable when the setup is the model card's.
    let python = metrics.as_ref().filter(|_| a.prompts == PromptSet::Heldout).and_then(|m| {
        let key = guidance_key(guidance);
        let adh = m["adherence"].get(&key)?.clone();
        Some((key, adh))
    });
    let comparable =
        a.edits.is_empty() && a.limit.is_none() && a.seeds == 16 && steps == 25 && scheduler == SchedulerKind::Ddim;
    let setup = Setup {
        args: &a,
        prompts: &prompts,
        edits: &edits_json,
        scheduler,
        guidance,
        steps,
        size: sampler.height,
        threads,
        python: python.as_ref(),
        comparable,
    };

    let start = Instant::now();
    let mut adherence = Adherence::new();
    // Every image's score in job order, so a checkpoint can count exactly the complete seed passes.
    let mut scores = Vec::with_capacity(jobs.len());
    let n = prompts.len();
    for chunk in jobs.chunks(a.batch) {
        let c: Vec<Tensor<3>> = chunk.iter().map(|&(p, _)| conds[p].clone()).collect();
        let seeds: Vec<u64> = chunk.iter().map(|&(_, s)| s).collect();
        let images = sampler.generate_parallel(&c, &seeds, threads)?;
        let preds = evaluator.predict(&images.concat())?;
        let passes_before = scores.len() / n;
        for (&(p, _), pred) in chunk.iter().zip(&preds) {
            let score = score_image(&pred.classes(), &prompts[p].labels);
            adherence.add(&prompts[p].group, &score);
            scores.push((p, score));
        }
        let done = scores.len();
        let elapsed = start.elapsed().as_secs_f64();
        let rate = done as f64 / elapsed;
        eprint!(
            "\r{done}/{} images, {rate:.3} images/s, {:.0} s left   ",
            jobs.len(),
            (jobs.len() - done) as f64 / rate
        );
        // After each complete pass over the prompts (one more seed), a checkpoint of exactly
        // "all prompts × k seeds", so a long CPU run leaves usable numbers if it is stopped.
        let passes = done / n;
        if let Some(path) = &a.json
            && passes > passes_before
            && done < jobs.len()
        {
            let mut partial = Adherence::new();
            for (p, score) in &scores[..passes * n] {
                partial.add(&prompts[*p].group, score);
            }
            write_json(path, &setup.json(&partial, passes * n, jobs.len(), elapsed))?;
        }
    }
    let done = scores.len();
    let seconds = start.elapsed().as_secs_f64();
    eprintln!();
    print_table(&adherence, python.as_ref().map(|(_, v)| v), comparable, prompts.len(), a.seeds, seconds, setup.size);
    if let Some(path) = &a.json {
        write_json(path, &setup.json(&adherence, done, jobs.len(), seconds))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

fn write_json(path: &Path, v: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// What the JSON report records about the run besides the numbers.
struct Setup<'a> {
    args: &'a EvalArgs,
    prompts: &'a [EvalPrompt],
    edits: &'a [serde_json::Value],
    scheduler: SchedulerKind,
    guidance: f64,
    steps: usize,
    size: usize,
    threads: usize,
    python: Option<&'a (String, serde_json::Value)>,
    comparable: bool,
}

impl Setup<'_> {
    fn json(&self, adherence: &Adherence, done: usize, total: usize, seconds: f64) -> serde_json::Value {
        let a = self.args;
        let bar: serde_json::Map<String, serde_json::Value> = adherence
            .quality_bar_of(classroom::scoring::quality_bar_for_size(self.size))
            .iter()
            .map(|b| (b.name.to_string(), json!({"bar": b.bar, "measured": b.measured, "met": b.met})))
            .collect();
        let mut groups = serde_json::Map::new();
        for p in self.prompts {
            let e = groups.entry(p.group.clone()).or_insert(json!(0));
            *e = json!(e.as_u64().unwrap_or(0) + 1);
        }
        json!({
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "complete": done == total,
            "images": {"done": done, "total": total, "seeds_complete": done / self.prompts.len().max(1)},
            "model": a.model.display().to_string(),
            "edits": self.edits,
            "prompts": {"set": format!("{:?}", a.prompts).to_lowercase(), "n": self.prompts.len(), "groups": groups, "limit": a.limit},
            "seeds": (0..a.seeds).collect::<Vec<_>>(),
            "steps": self.steps,
            "scheduler": self.scheduler.diffusers_class(),
            "guidance": self.guidance,
            "height": self.size,
            "width": self.size,
            "device": a.device,
            "threads": self.threads,
            "noise": "pipeline::noise::NoiseGenerator (StdRng ChaCha12 seeded with the seed, StandardNormal), not PyTorch's generator",
            "scoring": "classroom::scoring::score_image, a port of score_image in scripts/classroom/train.py (metrics.json heldout_prompts.scoring)",
            "adherence": adherence.to_json(),
            "quality_bar": bar,
            "python_reference": self.python.map(|(key, v)| json!({
                "source": format!("metrics.json adherence.{key} (diffusers, PyTorch noise)"),
                "comparable_setup": self.comparable,
                "headline": v["headline"],
                "all": v["all"],
            })),
            "seconds": (seconds * 10.0).round() / 10.0,
            "images_per_second": ((done as f64 / seconds.max(1e-9)) * 1000.0).round() / 1000.0,
        })
    }
}

fn print_table(
    a: &Adherence,
    python: Option<&serde_json::Value>,
    comparable: bool,
    n_prompts: usize,
    seeds: usize,
    seconds: f64,
    size: usize,
) {
    let py = |path: &[&str]| python.and_then(|v| path.iter().try_fold(v, |v, k| v.get(*k))).and_then(|v| v.as_f64());
    let py_title = if comparable { "python (metrics.json)" } else { "python (other setup)" };
    println!("{n_prompts} prompts × {seeds} seeds in {seconds:.1} s");
    println!("{:<18} {:>9} {:>22} {:>7}", "attribute", "studio", py_title, "images");
    for (k, t) in &a.all.0 {
        println!("{k:<18} {:>9} {:>22} {:>7}", pct(t.rate()), pct(py(&["all", k])), t.n);
    }
    println!("\nby group:");
    for (g, t) in &a.by_group {
        let cells: Vec<String> = t.0.iter().map(|(k, t)| format!("{k} {}", pct(t.rate()))).collect();
        println!("  {g:<16} {}", cells.join(", "));
    }
    println!("\nquality bar ({}):", if size >= 128 { "issue 12, the 128 px classroom model" } else { "issue 3" });
    println!("{:<18} {:>6} {:>9} {:>8} {:>22}", "", "bar", "studio", "verdict", py_title);
    for b in a.quality_bar_of(classroom::scoring::quality_bar_for_size(size)) {
        let verdict = if b.measured.is_none() {
            "n/a"
        } else if b.met {
            "met"
        } else {
            "MISSED"
        };
        println!(
            "{:<18} {:>6} {:>9} {:>8} {:>22}",
            b.name,
            pct(Some(b.bar)),
            pct(b.measured),
            verdict,
            pct(py(&["headline", b.name]))
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pipeline::{GenerateParams, NoHooks};

    fn classroom() -> (StableDiffusion, PathBuf) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/classroom");
        #[allow(deprecated)]
        let device = Device::ndarray();
        (crate::load_model(&dir, &device).unwrap(), dir)
    }

    fn read(t: Tensor<4>) -> Vec<f32> {
        t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()
    }

    /// The batched loop with one image is `model.generate` for the same prompt and seed, bit for
    /// bit; with three images (and split over two threads) each equals its own single run (on
    /// ndarray exactly, in fact; the tolerance allows for a backend that reorders sums per batch).
    #[test]
    fn batch_of_one_is_generate() {
        let (model, _) = classroom();
        let steps = 6;
        let prompts = [
            "an image showing a skull on a red background",
            "an image showing Zorbo, on a red background",
            "a red star",
        ];
        let sampler = BatchSampler::new(&model, SchedulerKind::Ddim, steps, 3.0).unwrap();
        let conds: Vec<Tensor<3>> = prompts.iter().map(|p| sampler.encode(p).unwrap()).collect();
        let mut singles = vec![];
        for (i, p) in prompts.iter().enumerate() {
            let params = GenerateParams {
                prompt: p.to_string(),
                steps,
                guidance: 3.0,
                height: 64,
                width: 64,
                seed: 10 + i as u64,
                scheduler: SchedulerKind::Ddim,
                ..GenerateParams::default()
            };
            singles.push(read(model.generate(&params, &mut NoHooks).unwrap().image));
        }
        let one = read(sampler.decode_batch(&conds[..1], &[10]).unwrap());
        assert_eq!(one, singles[0], "a batch of one must equal model.generate exactly");

        let three = read(sampler.decode_batch(&conds, &[10, 11, 12]).unwrap());
        let per = 3 * 64 * 64;
        for (i, single) in singles.iter().enumerate() {
            let err = three[i * per..(i + 1) * per].iter().zip(single).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
            eprintln!("image {i} in a batch of 3: max abs difference {err:e}");
            assert!(err <= 1e-5, "image {i}: {err}");
        }
        let par = sampler.generate_parallel(&conds, &[10, 11, 12], 2).unwrap();
        for (i, single) in singles.iter().enumerate() {
            let want = rgb8_from_f32(64, 64, single).2;
            let diff = par[i].iter().zip(&want).map(|(a, b)| a.abs_diff(*b)).max().unwrap_or(0);
            assert!(diff <= 1, "image {i} on 2 threads: pixel difference {diff}");
        }
        // The three images differ from each other (different prompts and seeds).
        assert!(three[..per].iter().zip(&three[per..2 * per]).any(|(a, b)| (a - b).abs() > 0.1));
    }

    #[test]
    fn heldout_order_interleaves_groups_like_train_py() {
        let p = prompt_set(PromptSet::Heldout);
        assert_eq!(p.len(), 122);
        let first: Vec<&str> = p[..7].iter().map(|x| x.group.as_str()).collect();
        assert_eq!(first, ["combo", "style", "character", "skull", "skull_indirect", "size_position", "two_objects"]);
        // metrics.json records the first grid prompts in this order.
        assert_eq!(p[0].text, "an image showing a big red circle on the left on a yellow background");
        assert_eq!(p[1].text, "an image showing a red star on a blue striped background in a flat style");
        assert_eq!(p[2].text, "an image showing Zorbo, on a red background");
        let e = prompt_set(PromptSet::Erasure);
        assert!(e.iter().any(|x| x.group == "skull/indirect") && e.iter().any(|x| x.group == "zorbo/neighbour"));
    }

    #[test]
    fn guidance_keys_follow_python_format() {
        assert_eq!(guidance_key(3.0), "guidance_3");
        assert_eq!(guidance_key(7.5), "guidance_7.5");
    }
}
