//! Switching the shown variant, before and after the Session owned the variants (issue 14): the
//! same model, edit and device in one run, the two paths one after the other.
//!
//! - **before** (the worker kept each edit's file bytes and, for every run, reverted all edits and
//!   re-applied the run's from those bytes): per switch to the edited variant the file is copied
//!   worker → wasm, parsed, checked, its base-model fingerprint computed from the original tensors
//!   read back GPU → CPU, and its tensors uploaded CPU → GPU; back to the original, everything is
//!   reverted;
//! - **after** (`studio_wasm::variants::Variants::set_variant`, what the page runs now): the edit
//!   was parsed and uploaded once, when added; a switch sets the weights whose active edits change
//!   from tensors already on the device, and nothing crosses worker ↔ wasm but the ids.
//!
//! Each switch ends with a read-back of one value of a touched weight so that the device's queued
//! work is included in the time. Prints one JSON line per path.
//!
//! cargo run --release --features studio-wasm/bench --example variant_bench -- DIR ndarray|wgpu [SWITCHES]

use burn::tensor::Tensor;
use erasure::{Edit, EditStack};
use pipeline::model::StableDiffusion;
use std::time::Instant;
use studio_wasm::erase::{EraseRequest, compute};
use studio_wasm::variants::Variants;

#[path = "bench_support/mod.rs"]
mod bench_support;
use bench_support::{bench_device, block_on, model_files};

/// One value of the edit's first tensor, read back: waits for the device's queued work.
fn settle(model: &StableDiffusion, name: &str) {
    let mut w: Option<Tensor<2>> = None;
    model.unet.for_each_linear(&mut |n, l| {
        if format!("{n}.weight") == name {
            w = Some(l.weight.clone());
        }
    });
    let w = w.expect("the edit's tensor");
    block_on(studio_wasm::readback::to_f32(w.slice([0..1, 0..1]))).expect("read back");
}

struct Moved {
    ms: Vec<f64>,
    worker_to_wasm: usize,
    cpu_to_gpu: usize,
    gpu_to_cpu: usize,
}

impl Moved {
    fn print(&self, path: &str, switches: usize) {
        // Even switches turn the edit on, odd ones off.
        let median = |odd: usize| {
            let mut ms: Vec<f64> = self.ms.iter().skip(odd).step_by(2).copied().collect();
            ms.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
            ms[ms.len() / 2]
        };
        println!(
            "{{\"path\":\"{path}\",\"switches\":{switches},\"onMedianMs\":{:.3},\"offMedianMs\":{:.3},\"workerToWasmBytesPerSwitch\":{},\"cpuToGpuBytesPerSwitch\":{},\"gpuToCpuBytesPerSwitch\":{}}}",
            median(0),
            median(1),
            self.worker_to_wasm / switches,
            self.cpu_to_gpu / switches,
            self.gpu_to_cpu / switches
        );
    }
}

#[allow(deprecated)]
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, device, rest @ ..] = args.as_slice() else {
        eprintln!("usage: variant_bench DIR ndarray|wgpu [SWITCHES]");
        std::process::exit(2);
    };
    let switches: usize = rest.first().and_then(|r| r.parse().ok()).unwrap_or(40);
    let dev = bench_device(device);
    let mut files = model_files(dir);
    let mut model = StableDiffusion::load(&mut files, &dev).expect("model loads");
    // The flagship demo's edit: UCE on "skull", with its defaults, computed as the page does.
    let req = EraseRequest::from_json(r#"{"method":"uce","concepts":["skull"]}"#).expect("request");
    let edit: Edit = block_on(compute(&model, &req)).expect("UCE");
    let file = "uce-skull.safetensors";
    let bytes = edit.to_safetensors();
    let name = edit.tensors[0].name.clone();
    let values: usize = edit.tensors.iter().map(|t| t.data.len()).sum();
    eprintln!(
        "{} tensors, {values} values, file {} bytes, base model {}",
        edit.tensors.len(),
        bytes.len(),
        edit.meta.base_model
    );

    // Before: the worker's bytes re-applied for every edited run, everything reverted for the original.
    let mut stack = EditStack::new();
    let mut before = Moved { ms: vec![], worker_to_wasm: 0, cpu_to_gpu: 0, gpu_to_cpu: 0 };
    for i in 0..switches {
        let t = Instant::now();
        stack.revert_all(&mut model.unet);
        if i % 2 == 0 {
            let copied = bytes.clone();
            before.worker_to_wasm += copied.len();
            let e = studio_wasm::edits::parse_and_check(&model.unet, file, copied).expect("parse");
            let originals = studio_wasm::edits::originals(&stack, &model.unet, &e);
            if !e.meta.base_model.is_empty() {
                before.gpu_to_cpu +=
                    originals.iter().map(|(_, t)| t.dims().iter().product::<usize>() * 4).sum::<usize>();
            }
            block_on(studio_wasm::edits::base_warning(&e, originals)).expect("fingerprint");
            let up = stack.uploaded_values();
            stack.apply(&mut model.unet, "e1", e, file).expect("apply");
            before.cpu_to_gpu += (stack.uploaded_values() - up) * 4;
        }
        settle(&model, &name);
        before.ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    stack.revert_all(&mut model.unet);

    // After: added once, then only ids.
    let mut v = Variants::new();
    v.add_edit(&mut model.unet, "e1", file, edit, None).expect("add");
    let up0 = v.edits.uploaded_values();
    let mut after = Moved { ms: vec![], worker_to_wasm: 0, cpu_to_gpu: 0, gpu_to_cpu: 0 };
    let on = vec!["e1".to_string()];
    for i in 0..switches {
        let t = Instant::now();
        v.set_variant(&mut model.unet, if i % 2 == 0 { &on } else { &[] }).expect("switch");
        settle(&model, &name);
        after.ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    after.cpu_to_gpu = (v.edits.uploaded_values() - up0) * 4;
    before.print("before", switches);
    after.print("after", switches);
}
