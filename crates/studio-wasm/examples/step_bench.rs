//! Native baseline for the browser benchmark (scripts/bench-web.sh): runs the studio's own step
//! loop (`engine::generate`, the code the browser runs in wasm) natively on burn's ndarray CPU
//! backend or on wgpu (Mesa llvmpipe without a GPU), and prints the timing as JSON.
//!
//! cargo run --release -p studio-wasm --features bench --example step_bench -- DIR DEVICE SIZE STEPS [REPEATS]
//! DEVICE: ndarray | wgpu. Prompt, seed, guidance 7.5 and DDIM are fixed (the browser uses the same).

use std::time::Instant;
use studio_wasm::engine::{self, Host, Outcome, Progress, StudioParams};

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{bench_device, block_on, model_files};

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

#[allow(deprecated)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, device, size, steps, rest @ ..] = args.as_slice() else {
        eprintln!("usage: step_bench DIR ndarray|wgpu SIZE STEPS [REPEATS]");
        std::process::exit(2);
    };
    let repeats: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(2);
    let dev = bench_device(device);
    let mut files = model_files(dir);
    let t = Instant::now();
    let model = pipeline::model::StableDiffusion::load(&mut files, &dev).expect("model loads");
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
        attention: false,
        attention_selection: None,
        timeline: false,
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
