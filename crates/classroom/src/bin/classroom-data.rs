//! `classroom-data`: writes a dataset of classroom-world renders for training and evaluation.
//!
//! ```text
//! classroom-data --n N --seed S --out DIR [--split train|heldout] [--size 64|128] [--preview FILE.png] [--threads T]
//! ```
//! Writes into DIR:
//! - `images.u8`: N×S×S×3 raw bytes (S = `--size`, default 64; `meta.json` → `image_size`), row-major
//!   HWC RGB (numpy: `np.fromfile(p, np.uint8).reshape(N, S, S, 3)`);
//! - `labels.jsonl`: line i = `{"caption": "...", "labels": {...}}` for image i (every attribute a
//!   lowercase string or null, `skull` a bool, `n_objects` a number);
//! - `meta.json`: vocabularies in the evaluator's class order, colour RGB values, the held-out
//!   triples, N, seed, split and an FNV-1a checksum of `images.u8`;
//! - `prompts.json`: `{"heldout": [...], "erasure": [...]}`, the fixed evaluation prompt sets.
//!
//! Item i depends only on (seed, i, split), so datasets are reproducible and prefixes agree.

use classroom::{
    BgKind, Character, Colour, HELDOUT_TRIPLES, Position, Rng, SIZES, Shape, Size, Split, Style, caption,
    erasure_prompt_sets, fnv1a64, heldout_prompts, png, render_sized, sample_scene,
};
use serde_json::{Value, json};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

struct Args {
    n: u64,
    seed: u64,
    out: PathBuf,
    split: Split,
    preview: Option<PathBuf>,
    threads: usize,
    /// Image side in pixels (one of `classroom::SIZES`).
    size: usize,
}

impl Args {
    fn image_bytes(&self) -> usize {
        self.size * self.size * 3
    }
}

const USAGE: &str = "usage: classroom-data --n N --seed S --out DIR [--split train|heldout] [--size 64|128] [--preview FILE.png] [--threads T]";

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let (mut n, mut seed, mut out, mut split, mut preview) = (None, None, None, Split::Train, None);
    let mut size = classroom::SIZE;
    let mut threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    while let Some(flag) = it.next() {
        if flag == "--help" || flag == "-h" {
            return Err(USAGE.to_string());
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        let num = |v: &str| v.parse::<u64>().map_err(|_| format!("{flag} expects a non-negative integer, got `{v}`"));
        match flag.as_str() {
            "--n" => n = Some(num(&value)?),
            "--seed" => seed = Some(num(&value)?),
            "--out" => out = Some(PathBuf::from(value)),
            "--preview" => preview = Some(PathBuf::from(value)),
            "--threads" => threads = (num(&value)? as usize).max(1),
            "--size" => {
                size = num(&value)? as usize;
                if !SIZES.contains(&size) {
                    return Err(format!("--size is one of {SIZES:?} (pixels), got {size}"));
                }
            }
            "--split" => {
                split = match value.as_str() {
                    "train" => Split::Train,
                    "heldout" => Split::Heldout,
                    _ => return Err(format!("--split is train or heldout, got `{value}`")),
                }
            }
            _ => return Err(format!("unknown option `{flag}`\n{USAGE}")),
        }
    }
    Ok(Args {
        n: n.ok_or_else(|| format!("--n is required\n{USAGE}"))?,
        seed: seed.ok_or_else(|| format!("--seed is required\n{USAGE}"))?,
        out: out.ok_or_else(|| format!("--out is required\n{USAGE}"))?,
        split,
        preview,
        threads,
        size,
    })
}

fn names<T: Copy>(all: &[T], f: impl Fn(T) -> &'static str) -> Value {
    Value::from(all.iter().map(|&v| f(v)).collect::<Vec<_>>())
}

/// Renders items `range` in parallel; returns their bytes and JSONL lines in order.
fn batch(args: &Args, range: std::ops::Range<u64>) -> Result<(Vec<u8>, String), String> {
    let len = (range.end - range.start) as usize;
    let per = len.div_ceil(args.threads).max(1);
    let chunks: Vec<std::ops::Range<u64>> =
        (0..len).step_by(per).map(|s| range.start + s as u64..range.start + ((s + per).min(len)) as u64).collect();
    let results: Vec<Result<(Vec<u8>, String), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|r| {
                let r = r.clone();
                scope.spawn(move || {
                    let mut bytes = Vec::with_capacity((r.end - r.start) as usize * args.image_bytes());
                    let mut lines = String::new();
                    for i in r {
                        // As `classroom::example`, at the requested size: item i is the same scene
                        // and caption at every size.
                        let mut rng = Rng::for_item(args.seed, i);
                        let scene = sample_scene(&mut rng, args.split);
                        let text = caption(&scene, args.split, &mut rng);
                        bytes.extend_from_slice(&render_sized(&scene, args.size));
                        let line = json!({"caption": text, "labels": scene.labels()});
                        lines.push_str(&serde_json::to_string(&line).map_err(|e| e.to_string())?);
                        lines.push('\n');
                    }
                    Ok((bytes, lines))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err("a worker thread panicked".into()))).collect()
    });
    let mut bytes = Vec::with_capacity(len * args.image_bytes());
    let mut lines = String::new();
    for r in results {
        let (b, l) = r?;
        bytes.extend_from_slice(&b);
        lines.push_str(&l);
    }
    Ok((bytes, lines))
}

fn run(args: &Args) -> Result<(), String> {
    let io = |what: &str, e: std::io::Error| format!("cannot write {what}: {e}");
    std::fs::create_dir_all(&args.out).map_err(|e| io(&args.out.display().to_string(), e))?;
    let images_path = args.out.join("images.u8");
    let mut images = std::io::BufWriter::new(std::fs::File::create(&images_path).map_err(|e| io("images.u8", e))?);
    let mut labels = std::io::BufWriter::new(
        std::fs::File::create(args.out.join("labels.jsonl")).map_err(|e| io("labels.jsonl", e))?,
    );
    let start = std::time::Instant::now();
    let mut hash = 0xCBF2_9CE4_8422_2325u64;
    let mut first: Vec<u8> = Vec::new();
    const BATCH: u64 = 4096;
    let mut i = 0;
    while i < args.n {
        let end = (i + BATCH).min(args.n);
        let (bytes, lines) = batch(args, i..end)?;
        for &b in &bytes {
            hash ^= b as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01B3);
        }
        if first.len() < 64 * args.image_bytes() {
            let take = (64 * args.image_bytes() - first.len()).min(bytes.len());
            first.extend_from_slice(&bytes[..take]);
        }
        images.write_all(&bytes).map_err(|e| io("images.u8", e))?;
        labels.write_all(lines.as_bytes()).map_err(|e| io("labels.jsonl", e))?;
        i = end;
        eprintln!("{i}/{} images ({:.1} s)", args.n, start.elapsed().as_secs_f32());
    }
    images.flush().map_err(|e| io("images.u8", e))?;
    labels.flush().map_err(|e| io("labels.jsonl", e))?;
    debug_assert!(args.n > 0 || hash == fnv1a64(&[]));

    let colour_rgb: serde_json::Map<String, Value> =
        Colour::ALL.iter().map(|c| (c.name().to_string(), json!(c.rgb()))).collect();
    let meta = json!({
        "format_version": 1,
        "n": args.n,
        "seed": args.seed,
        "split": args.split,
        "image_size": args.size,
        "channels": 3,
        "dtype": "uint8",
        "layout": "NHWC",
        "images_fnv1a64": format!("{hash:016x}"),
        "shapes": names(Shape::ALL, Shape::name),
        "colours": names(Colour::ALL, Colour::name),
        "colour_rgb": colour_rgb,
        "backgrounds": names(BgKind::ALL, BgKind::name),
        "styles": names(Style::ALL, Style::name),
        "characters": names(Character::ALL, Character::name),
        "sizes": names(Size::ALL, Size::name),
        "positions": names(Position::ALL, Position::name),
        "heldout_triples": HELDOUT_TRIPLES.iter().map(|(s, c, b)| json!([s.name(), c.name(), b.name()])).collect::<Vec<_>>(),
    });
    let write_json = |name: &str, v: &Value| -> Result<(), String> {
        let text = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
        std::fs::write(args.out.join(name), text + "\n").map_err(|e| io(name, e))
    };
    write_json("meta.json", &meta)?;
    write_json("prompts.json", &json!({"heldout": heldout_prompts(), "erasure": erasure_prompt_sets()}))?;

    if let Some(path) = &args.preview {
        let imgs: Vec<&[u8]> = first.chunks_exact(args.image_bytes()).collect();
        let (w, h, rgb) = png::grid(&imgs, args.size, 8, 2, 4);
        let bytes = png::encode_png_rgb(w, h, &rgb)?;
        std::fs::write(path, bytes).map_err(|e| io(&path.display().to_string(), e))?;
    }
    eprintln!(
        "wrote {} images to {} in {:.1} s (images.u8 fnv1a64 {hash:016x})",
        args.n,
        args.out.display(),
        start.elapsed().as_secs_f32()
    );
    Ok(())
}

fn main() -> ExitCode {
    match parse_args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("classroom-data: {e}");
            ExitCode::FAILURE
        }
    }
}
