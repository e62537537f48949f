//! What the native benches share: a future polled to completion on this thread, and a model
//! folder read into the path → bytes list the Session's loader takes.

use burn::tensor::Device;
use std::path::Path;
use studio_wasm::files::MapFiles;

pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
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

/// The model folder `dir` as the Session's loader takes it.
pub fn model_files(dir: &str) -> MapFiles {
    let mut files = vec![];
    read_dir(Path::new(dir), "", &mut files);
    MapFiles::new(files)
}

/// The device a bench runs on: `ndarray` or `wgpu` (Vulkan; llvmpipe without a GPU).
#[allow(deprecated)]
pub fn bench_device(name: &str) -> Device {
    match name {
        "ndarray" => Device::ndarray(),
        "wgpu" => Device::wgpu_options().init().expect("a wgpu adapter (Vulkan: llvmpipe without a GPU)"),
        d => panic!("unknown device {d}"),
    }
}
