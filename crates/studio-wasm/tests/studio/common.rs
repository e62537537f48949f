//! What every studio-wasm test module needs: the tiny SD-1 fixture read into memory as the page
//! hands files over, loaded on ndarray, and a poll loop for the session's futures.

use burn::tensor::Device;
use diffusion::unet_2d_condition::UNet2DConditionModel;
use pipeline::model::StableDiffusion;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use studio_wasm::engine::{Host, Progress};
use studio_wasm::files::MapFiles;

pub const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/tiny-sd1");

/// Every future here completes without waiting (ndarray read-backs are immediate).
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future did not complete");
}

/// Every file under `root` as `(prefix + relative path, bytes)`.
pub fn read_dir(root: &Path, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for entry in std::fs::read_dir(root).unwrap() {
        let entry = entry.unwrap();
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        if entry.file_type().unwrap().is_dir() {
            read_dir(&entry.path(), &format!("{name}/"), out);
        } else {
            out.push((name, std::fs::read(entry.path()).unwrap()));
        }
    }
}

/// The tiny SD-1 fixture loaded from in-memory files on ndarray.
#[allow(deprecated)]
pub fn load() -> StableDiffusion {
    let mut v = vec![];
    read_dir(Path::new(FIXTURE), "", &mut v);
    StableDiffusion::load(&mut MapFiles::new(v), &Device::ndarray()).unwrap()
}

/// A host that never cancels, reports nothing and reads a clock stopped at 0.
pub struct Quiet;
impl Host for Quiet {
    fn now_ms(&self) -> f64 {
        0.0
    }
    async fn yield_now(&mut self) {}
    fn progress(&mut self, _: &Progress) {}
    fn cancel_requested(&self) -> bool {
        false
    }
}

/// Every Linear / Conv weight of the UNet, as bits.
pub fn weights(unet: &mut UNet2DConditionModel) -> BTreeMap<String, Vec<u32>> {
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    let mut out = BTreeMap::new();
    unet.for_each_linear(&mut |n, l| {
        drop(out.insert(n.to_owned(), bits(l.weight.clone().into_data().try_to_vec::<f32>().unwrap())))
    });
    unet.for_each_conv_mut(&mut |n, c| {
        drop(out.insert(n.to_owned(), bits(c.weight.clone().into_data().try_to_vec::<f32>().unwrap())))
    });
    out
}
