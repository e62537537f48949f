//! WebGPU device setup (wasm32 only): the adapter, its limits and features, and f16 compute.

use crate::browser_host::get;
use burn::tensor::Device;
use std::cell::RefCell;
use std::rc::Rc;

/// The WebGPU device, made once per page: burn registers one runtime per adapter and refuses a
/// second initialisation, so later sessions reuse it.
pub(crate) struct Gpu {
    pub device: Device,
    pub adapter: String,
    pub max_storage_buffer: u64,
    pub shader_f16: bool,
    /// The device computes in f16 (burn's per-device default float dtype: weights, latents and
    /// every intermediate; read-backs are converted to f32). Set once, before any tensor.
    pub f16: bool,
    /// What the first session asked for (`want_f16` of [`init_webgpu`]).
    pub f16_requested: bool,
}

thread_local! {
    static GPU: RefCell<Option<Rc<Gpu>>> = const { RefCell::new(None) };
}

/// `want_f16`: compute in f16 where the adapter has `shader-f16` (the page's default, as
/// diffusers runs SD in fp16 on GPUs); `false` keeps f32 everywhere.
pub(crate) async fn init_webgpu(tasks_max: Option<u32>, want_f16: bool) -> Result<Rc<Gpu>, String> {
    if let Some(g) = GPU.with(|g| g.borrow().clone()) {
        if g.f16_requested != want_f16 && g.shader_f16 {
            // burn fixes a device's dtype before its first tensor; the page restarts its worker
            // (a fresh engine) to switch, so this is only reached by another embedding.
            return Err(format!(
                "WebGPU already computes in {} in this engine; start a new engine (reload the page) to switch precision",
                if g.f16 { "f16" } else { "f32" }
            ));
        }
        return Ok(g);
    }
    let navigator = get(&js_sys::global(), "navigator");
    if get(&navigator, "gpu").is_undefined() {
        return Err("this browser exposes no WebGPU (navigator.gpu is missing; in Chromium it may be switched off or \
                    blocked for this GPU, see chrome://gpu)"
            .into());
    }
    let mut options = Device::wgpu_options();
    if let Some(n) = tasks_max.filter(|&n| n > 0) {
        options = options.tasks_max(n as usize);
    }
    let (device, setup) = options.init_with_setup_async().await.map_err(|e| match e {
        burn::tensor::wgpu::WgpuInitError::AdapterUnavailable { .. } => {
            "the browser offers no WebGPU adapter (WebGPU may be \
             switched off, or blocked for this GPU: see chrome://gpu)"
                .to_string()
        }
        e => e.to_string(),
    })?;
    let info = setup.adapter.get_info();
    // The device's limits (what it was granted), not the adapter's (what it could have asked).
    let limits = setup.device.limits();
    let shader_f16 = setup.adapter.features().contains(burn::tensor::wgpu::wgpu::Features::SHADER_F16);
    let mut device = device;
    // f16 only where burn agrees the device runs it (its check looks at the same feature).
    let f16 = want_f16
        && shader_f16
        && diffusion::nn::compute_in_f16(&mut device).map_err(|e| format!("could not switch WebGPU to f16: {e}"))?;
    let gpu = Rc::new(Gpu {
        device,
        adapter: if info.name.is_empty() { format!("{:?}", info.backend) } else { info.name.clone() },
        max_storage_buffer: limits.max_storage_buffer_binding_size,
        shader_f16,
        f16,
        f16_requested: want_f16,
    });
    GPU.with(|g| *g.borrow_mut() = Some(gpu.clone()));
    Ok(gpu)
}

#[allow(deprecated)] // burn 0.22 marks ndarray deprecated in favour of flex; ndarray is the tested CPU path.
pub(crate) fn cpu_device() -> Device {
    Device::ndarray()
}
