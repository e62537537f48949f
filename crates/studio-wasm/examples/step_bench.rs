//! Native baseline for the browser benchmark (scripts/bench-web.sh): runs the studio's own step
//! loop (`engine::generate`, the code the browser runs in wasm) natively on burn's ndarray CPU
//! backend or on wgpu (Mesa llvmpipe without a GPU), and prints the timing as JSON.
//!
//! cargo run --release -p studio-wasm --features bench --example step_bench -- DIR DEVICE SIZE STEPS [REPEATS]
//! DEVICE: ndarray | wgpu. Prompt, seed, guidance 7.5 and DDIM are fixed (the browser uses the same).

use burn::tensor::Device;
use std::path::Path;
use std::time::Instant;
use studio_wasm::engine::{self, Host, Outcome, Progress, StudioParams};
use studio_wasm::files::MapFiles;

struct Clock {
    t0: Instant,
    step_ms: Vec<f64>,
}

impl Host for Clock {
    fn now_ms(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1e3
    }
    async fn yield_now(&mut self) {}
    fn progress(&mut self, p: &Progress) {
        self.step_ms.push(p.step_ms);
    }
    fn cancel_requested(&self) -> bool {
        false
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        // wgpu read-backs complete on the device's own threads.
        std::thread::yield_now();
    }
}

fn read_dir(root: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(root).expect("model folder") {
        let entry = entry.expect("dir entry");
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().expect("file type").is_dir() {
            read_dir(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).expect("file")));
        }
    }
}

#[allow(deprecated)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, device, size, steps, rest @ ..] = args.as_slice() else {
        eprintln!("usage: step_bench DIR ndarray|wgpu SIZE STEPS [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(2);
    let dev = match device.as_str() {
        "ndarray" => Device::ndarray(),
        "wgpu" => Device::wgpu_options().init().expect("a wgpu adapter (Vulkan: llvmpipe without a GPU)"),
        d => panic!("unknown device {d}"),
    };
    let mut files = vec![];
    read_dir(Path::new(dir), "", &mut files);
    let t = Instant::now();
    let model = pipeline::model::StableDiffusion::load(&mut MapFiles::new(files), &dev).expect("model loads");
    let load_ms = t.elapsed().as_secs_f64() * 1e3;
    let size: usize = size.parse().expect("size");
    let params = StudioParams {
        prompt: "a big red star on a blue striped background".into(),
        negative_prompt: String::new(),
        steps: steps.parse().expect("steps"),
        guidance: 7.5,
        width: size,
        height: size,
        seed: 1234,
        scheduler: "ddim".into(),
        clip_skip: None,
        preview_every: 0,
        steering: None,
    };
    // The first run warms up (kernel compilation on wgpu); the median of the rest is reported.
    let mut per_step = vec![];
    let mut total = vec![];
    for _ in 0..repeats + 1 {
        let mut clock = Clock { t0: Instant::now(), step_ms: vec![] };
        match block_on(engine::generate(&model, &params, &mut clock)).expect("generate") {
            Outcome::Done(img) => {
                per_step.push(img.timing.per_step_ms);
                total.push(img.timing.total_ms);
            }
            Outcome::Cancelled { .. } => unreachable!(),
        }
    }
    let median = |v: &mut Vec<f64>| {
        let mut w: Vec<f64> = v[1..].to_vec();
        w.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
        w[w.len() / 2]
    };
    println!(
        "{{\"device\":\"{device}\",\"size\":{size},\"steps\":{},\"loadMs\":{load_ms:.1},\"perStepMs\":{:.2},\"totalMs\":{:.1},\"firstRunPerStepMs\":{:.2}}}",
        params.steps,
        median(&mut per_step),
        median(&mut total),
        per_step[0]
    );
}
