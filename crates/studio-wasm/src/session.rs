//! The JavaScript surface (wasm32 only). Used by the web worker, never by the page itself.
//!
//! ```js
//! import init, { createSession } from './pkg/studio_wasm.js';
//! await init();
//! const s = await createSession('auto');            // 'auto' | 'webgpu' | 'cpu'
//! s.backend; s.adapter; s.fallbackReason;           // where it runs, and why not on WebGPU
//! const info = JSON.parse(s.loadModel(new Map([['unet/config.json', bytes], ...])));
//! const r = await s.generate(JSON.stringify(params), (p) => ..., (preview) => ...);   // r.status: 'done' | 'cancelled'
//! s.cancel();                                       // from a message handler, between two steps
//! const e = JSON.parse(await s.applyEdit('e1', 'uce.safetensors', bytes)); // EditInfo; e.warning
//! s.revertEdit('e1'); s.revertAllEdits(); s.activeEdits; s.exportEdit('e1');
//! Session.fileKind(bytes);                          // 'spm' | 'lora' | 'eraser' | 'edit', from the header
//! const a = JSON.parse(s.attachAdapter('a1', 'spm.safetensors', bytes, 'auto', 1.0)); // AdapterInfo
//! s.detachAdapter('a1'); s.detachAllAdapters(); s.activeAdapters; s.facilitatedTransport = false;
//! const f = JSON.parse(await s.fitEraser('e2', 'leace-skull.safetensors', JSON.stringify({method: 'leace', concepts, others})));
//! s.loadEraser('e3', 'skull.safetensors', bytes); s.exportEraser('e2');   // SteererInfo JSON; the file
//! await s.fitRingABell('e4', JSON.stringify({pairs: 'a skull|a star', eta: 3}));
//! s.removeSteering('e2');                           // params.steering = {eraser: 'e2', ringABell: 'e4'}
//! s.dispose();                                      // drops the model's GPU buffers
//! ```
//! Every failure is a rejected promise / thrown `Error` with an actionable message; a panic
//! is logged by `console_error_panic_hook` and surfaces as a `RuntimeError` the worker reports.
//!
//! This file is the API; the WebGPU device is set up in [`crate::webgpu`], the model's files are
//! read from JS in [`crate::js_files`], the loop's host is [`crate::browser_host`], errors are
//! [`crate::error`] and results are made with serde in [`crate::results`].

use crate::adapters::{self, SessionAdapters};
use crate::browser_host::{BrowserHost, now_ms};
use crate::edits::{self, EditInfo};
use crate::engine::{self, ModelInfo, Outcome, StudioParams};
use crate::error::{StudioError, js_err};
use crate::files::check_components;
use crate::js_files::JsFiles;
use crate::readback::encode_all;
use crate::results::{Cancelled, Done, Erased, FittedEraser, FittedProbe, InOrder, to_json, to_object};
use crate::steering::{self, EraserFitRequest, RingABellRequest, Steerer, SteeringStore};
use crate::webgpu::{cpu_device, init_webgpu};
use burn::tensor::Device;
use erasure::EditStack;
use erasure::request::limits::CPU_WEIGHT_LIMIT;
use pipeline::model::StableDiffusion;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

unsafe extern "C" {
    /// The linker-made function that runs the module's static constructors (cubecl registers
    /// its IR dialects with `inventory`, ~5000 of them).
    fn __wasm_call_ctors();
}

/// Runs once when the module is instantiated.
///
/// Calling `__wasm_call_ctors` here, from an exported function, is what matters: a module that
/// never calls it gets "command-style" linkage, where wasm-ld re-runs every constructor at the
/// start of *every* exported function. Each callback into wasm (a resolved promise, a WebGPU
/// map callback) then cost ~15 ms: 96% of a tiny model's step time on SwiftShader was spent
/// there (measured with a Chromium CPU trace). See the `inventory` crate's notes on WebAssembly.
#[wasm_bindgen(start)]
pub fn start() {
    // SAFETY: called once, first, before any other Rust code of this instance runs.
    unsafe { __wasm_call_ctors() };
    console_error_panic_hook::set_once();
}

/// Creates a session. `prefer`: `auto` or `webgpu` (WebGPU, in f16 where the adapter has
/// `shader-f16`, falling back to the CPU with a reason), `webgpu-f32` (the same, always f32) or
/// `cpu`. `tasks_max`: kernels recorded per WebGPU submit (burn's default 32); it
/// only applies to the first WebGPU session of the page.
#[wasm_bindgen(js_name = createSession)]
pub async fn create_session(prefer: String, tasks_max: Option<u32>) -> Result<Session, JsError> {
    let inner = match prefer.as_str() {
        "cpu" => Inner::new(cpu_device(), "cpu", "CPU (ndarray, single thread)".into(), None),
        "auto" | "webgpu" | "webgpu-f32" => match init_webgpu(tasks_max, prefer != "webgpu-f32").await {
            Ok(gpu) => {
                let mut i = Inner::new(gpu.device.clone(), "webgpu", gpu.adapter.clone(), None);
                i.max_storage_buffer = Some(gpu.max_storage_buffer);
                i.shader_f16 = gpu.shader_f16;
                i.f16 = gpu.f16;
                i
            }
            Err(why) => Inner::new(
                cpu_device(),
                "cpu",
                "CPU (ndarray, single thread)".into(),
                Some(format!("WebGPU is unavailable: {why}. Running on the CPU instead, which is much slower.")),
            ),
        },
        other => return Err(JsError::new(&format!("unknown backend `{other}`: use auto, webgpu, webgpu-f32 or cpu"))),
    };
    Ok(Session { inner: Rc::new(inner) })
}

struct Inner {
    device: Device,
    backend: &'static str,
    adapter: String,
    fallback_reason: Option<String>,
    max_storage_buffer: Option<u64>,
    shader_f16: bool,
    /// Computes in f16 (see `webgpu::Gpu::f16`).
    f16: bool,
    model: RefCell<Option<Rc<StableDiffusion>>>,
    /// The edits applied to `model` (and the original values of the tensors they touch).
    edits: RefCell<EditStack>,
    /// SPM / LoRA adapters, on top of the edits.
    adapters: RefCell<SessionAdapters>,
    /// LEACE / INLP erasers and Ring-A-Bell probes that runs name in their steering.
    steering: RefCell<SteeringStore>,
    /// Set by [`Session::cancel`]; the running generation's host reads it.
    cancel: Rc<Cell<bool>>,
    running: Cell<bool>,
}

impl Inner {
    /// The guard of every call that needs the model to itself: refused with `busy` (which says
    /// what to do instead) while a generation runs.
    fn idle(&self, busy: StudioError) -> Result<(), StudioError> {
        if self.running.get() { Err(busy) } else { Ok(()) }
    }

    /// The loaded model (shared: a generation holds it too).
    fn model(&self) -> Result<Rc<StableDiffusion>, StudioError> {
        self.model.borrow().clone().ok_or(StudioError::NoModel)
    }

    /// The model for changing its weights: refused while a generation holds it.
    fn with_model_mut<T>(&self, f: impl FnOnce(&mut StableDiffusion, &mut EditStack) -> Result<T, StudioError>) -> Result<T, StudioError> {
        self.idle(StudioError::Busy)?;
        let mut slot = self.model.borrow_mut();
        let rc = slot.as_mut().ok_or(StudioError::NoModel)?;
        let model = Rc::get_mut(rc).ok_or(StudioError::Busy)?;
        f(model, &mut self.edits.borrow_mut())
    }

    /// The UNet and the edits, for changing the edits: the adapters are taken off around `f`
    /// and put back on the new weights (each stack restores the values it found).
    fn with_edits_mut<T>(
        &self,
        f: impl FnOnce(&mut diffusion::unet_2d_condition::UNet2DConditionModel, &mut EditStack) -> Result<T, StudioError>,
    ) -> Result<T, StudioError> {
        self.with_model_mut(|m, stack| self.adapters.borrow_mut().suspended(&mut m.unet, |unet| f(unet, stack)))
    }
}

impl Inner {
    fn new(device: Device, backend: &'static str, adapter: String, fallback_reason: Option<String>) -> Self {
        Self {
            device,
            backend,
            adapter,
            fallback_reason,
            max_storage_buffer: None,
            shader_f16: false,
            f16: false,
            model: RefCell::new(None),
            edits: RefCell::new(EditStack::new()),
            adapters: RefCell::new(SessionAdapters::new()),
            steering: RefCell::new(SteeringStore::default()),
            cancel: Rc::new(Cell::new(false)),
            running: Cell::new(false),
        }
    }
}

/// A loaded-model session on one device.
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
}

/// Sets the adapters' weights for `prompt` before a run, as `studio generate` does after
/// attaching them: the prompts Facilitated Transport compares are encoded and read back
/// asynchronously first. Returns each SPM's permeability.
async fn prepare_adapters(inner: &Rc<Inner>, prompt: &str) -> Result<Vec<(String, f64)>, StudioError> {
    if inner.adapters.borrow().is_empty() {
        return Ok(vec![]);
    }
    let needed = inner.adapters.borrow().prompts_to_encode(prompt);
    let mut enc = if needed.is_empty() { erasure::text::PrecomputedEncoder(Default::default()) } else { encode_all(&*inner.model()?, &needed).await? };
    let perms = inner.with_model_mut(|m, _| inner.adapters.borrow_mut().prepare(m, prompt, &mut enc))?;
    Ok(perms.into_iter().map(|p| (p.id, p.value)).collect())
}

#[wasm_bindgen]
impl Session {
    /// `webgpu` or `cpu`.
    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend.to_string()
    }

    /// The adapter's name (WebGPU) or a description of the CPU path.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.inner.adapter.clone()
    }

    /// Why this session is not on WebGPU although WebGPU was asked for.
    #[wasm_bindgen(getter, js_name = fallbackReason)]
    pub fn fallback_reason(&self) -> Option<String> {
        self.inner.fallback_reason.clone()
    }

    /// `maxStorageBufferBindingSize` of the adapter (bytes); every tensor must fit in it.
    #[wasm_bindgen(getter, js_name = maxStorageBuffer)]
    pub fn max_storage_buffer(&self) -> Option<f64> {
        self.inner.max_storage_buffer.map(|b| b as f64)
    }

    /// Whether the adapter offers `shader-f16`.
    #[wasm_bindgen(getter, js_name = shaderF16)]
    pub fn shader_f16(&self) -> bool {
        self.inner.shader_f16
    }

    /// The precision the engine computes in: `f16` (WebGPU with `shader-f16`) or `f32`.
    #[wasm_bindgen(getter)]
    pub fn precision(&self) -> String {
        if self.inner.f16 { "f16" } else { "f32" }.into()
    }

    /// Whether a model is loaded.
    #[wasm_bindgen(getter, js_name = hasModel)]
    pub fn has_model(&self) -> bool {
        self.inner.model.borrow().is_some()
    }

    /// Loads a diffusers-layout model from `Map<relativePath, Uint8Array>` (the folder name
    /// in front of every path, as a folder picker gives it, is accepted). Returns the model's
    /// info as JSON. The previous model is dropped first, so two never share memory.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&self, files: js_sys::Map) -> Result<String, JsError> {
        self.inner.idle(StudioError::BusyLoading).map_err(js_err)?;
        let mut files = JsFiles::new(files).map_err(js_err)?;
        check_components(files.paths.iter().map(|(p, _)| p.as_str())).map_err(js_err)?;
        if self.inner.backend == "cpu" {
            // On the CPU path the weights live in wasm memory as f32: refuse, with the numbers,
            // what cannot fit, before dropping the loaded model.
            let mut numel = 0usize;
            for c in ["text_encoder", "unet", "vae"] {
                for f in pipeline::model::component_weights(&mut files, c).map_err(js_err)? {
                    numel += f.header().tensors.values().map(|t| t.shape.iter().product::<usize>()).sum::<usize>();
                }
            }
            if numel * 4 > CPU_WEIGHT_LIMIT {
                return Err(JsError::new(&format!(
                    "this model has {:.2} billion parameters, {:.1} GB as f32: more than the CPU path can hold in a browser tab (WebAssembly memory stops at 4 GB, and images need room too; the limit is {:.1} GB of weights). Set Device to Auto (WebGPU) in a browser with WebGPU, or a smaller model such as the classroom model or BK-SDM-Tiny",
                    numel as f64 / 1e9,
                    (numel * 4) as f64 / 1e9,
                    CPU_WEIGHT_LIMIT as f64 / 1e9
                )));
            }
        }
        self.inner.model.borrow_mut().take();
        *self.inner.edits.borrow_mut() = EditStack::new();
        *self.inner.adapters.borrow_mut() = SessionAdapters::new();
        self.inner.steering.borrow_mut().clear();
        // A malformed studio.json refuses the load with the file and field named, as the CLI does.
        let defaults = match pipeline::ModelFiles::read(&mut files, pipeline::StudioJson::FILE).map_err(js_err)? {
            Some(bytes) => Some(pipeline::StudioJson::parse(pipeline::StudioJson::FILE, &bytes).map_err(js_err)?),
            None => None,
        };
        let model = StableDiffusion::load(&mut files, &self.inner.device).map_err(js_err)?;
        let mut info = ModelInfo::of(&model);
        if let Some(d) = defaults {
            (info.default_guidance, info.default_steps) = (d.guidance_scale, d.num_inference_steps);
        }
        *self.inner.model.borrow_mut() = Some(Rc::new(model));
        to_json(&info)
    }

    /// Generates one image with the edits applied now. `params`: JSON of [`StudioParams`].
    /// `on_progress({step, total, timestep, elapsedMs, stepMs})` is called after each step,
    /// `on_preview({step, width, height, rgba})` every `previewEvery` steps. Resolves to
    /// `{status: 'done', width, height, rgba: Uint8ClampedArray, timing, promptTruncated}` or
    /// `{status: 'cancelled', step, total}`.
    pub fn generate(&self, params: String, on_progress: Option<js_sys::Function>, on_preview: Option<js_sys::Function>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::BusyGenerating).map_err(js_err)?;
            let params = StudioParams::from_json(&params).map_err(js_err)?;
            let perms = prepare_adapters(&inner, &params.prompt).await.map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            inner.cancel.set(false);
            inner.running.set(true);
            let mut host = BrowserHost { cancel: inner.cancel.clone(), on_progress, on_preview };
            // A copy: no borrow of the store is held across the run's awaits.
            let store = inner.steering.borrow().clone();
            let result = engine::generate_steered(&model, &params, &store, &mut host).await;
            inner.running.set(false);
            inner.cancel.set(false);
            match result.map_err(js_err)? {
                Outcome::Cancelled { step, total } => Ok(to_object(&Cancelled { status: "cancelled", step, total })?),
                Outcome::Done(img) => {
                    let done = Done {
                        status: "done",
                        width: img.width,
                        height: img.height,
                        prompt_truncated: img.prompt_truncated,
                        steering: img.steering.as_deref(),
                        permeabilities: InOrder(&perms),
                        timing: &img.timing,
                    };
                    Ok(done.to_js(&img.rgba)?)
                }
            }
        })
    }

    /// Asks a running generation to stop after its current step.
    pub fn cancel(&self) {
        if self.inner.running.get() {
            self.inner.cancel.set(true);
        }
    }

    /// Applies an edit file (`.safetensors`, DESIGN.md "Edit file") under `id`, replacing an
    /// edit with the same id. Resolves to [`EditInfo`] as JSON; `warning` is set when the file
    /// was computed on other weights. A bad file (unknown tensor, wrong shape, NaN) rejects with
    /// the reason and leaves the model unchanged. Nothing is read back synchronously.
    #[wasm_bindgen(js_name = applyEdit)]
    pub fn apply_edit(&self, id: String, file: String, bytes: js_sys::Uint8Array) -> js_sys::Promise {
        let inner = self.inner.clone();
        let bytes = bytes.to_vec();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            let edit = edits::parse_and_check(&model.unet, &file, bytes).map_err(js_err)?;
            let originals = if inner.adapters.borrow().is_empty() {
                let o = edits::originals(&inner.edits.borrow(), &model.unet, &edit);
                drop(model);
                o
            } else {
                // The weights under the adapters (tensors are values: taken while the adapters
                // are off, they stay the unadapted ones after the adapters go back on).
                drop(model);
                inner
                    .with_model_mut(|m, stack| inner.adapters.borrow_mut().suspended(&mut m.unet, |unet| Ok(edits::originals(stack, unet, &edit))))
                    .map_err(js_err)?
            };
            let warning = edits::base_warning(&edit, originals).await.map_err(js_err)?;
            let info = EditInfo::of(&id, &file, &edit, warning);
            inner
                .with_edits_mut(|unet, stack| stack.apply(unet, &id, edit, &file).map_err(StudioError::from))
                .map_err(js_err)?;
            Ok(JsValue::from_str(&to_json(&info)?))
        })
    }

    /// Computes a closed-form edit (`request`: JSON of [`crate::erase::EraseRequest`]: method
    /// uce | time | rece | speed | mace, concepts, guides, preserve, params) on the loaded model
    /// and applies it under `id`, named `file`. Resolves to `{edit: EditInfo, ms}` as JSON (`ms`:
    /// the computation alone, read-backs included). The model is unchanged on error.
    pub fn erase(&self, id: String, file: String, request: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let req = crate::erase::EraseRequest::from_json(&request).map_err(StudioError::from).map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            // The original weights: compute on the unedited model, whatever is applied now.
            let active: Vec<String> = inner.edits.borrow().active().into_iter().map(str::to_owned).collect();
            drop(model);
            let suspended = !inner.adapters.borrow().is_empty();
            if !active.is_empty() || suspended {
                inner
                    .with_model_mut(|m, stack| {
                        inner.adapters.borrow_mut().suspend(&mut m.unet);
                        stack.revert_all(&mut m.unet);
                        Ok(())
                    })
                    .map_err(js_err)?;
            }
            let model = inner.model().map_err(js_err)?;
            let t0 = now_ms();
            let edit = crate::erase::compute(&model, &req).await;
            let ms = now_ms() - t0;
            drop(model);
            // Whatever happened, the adapters go back on (on the new edit when there is one).
            let applied = edit.and_then(|edit| {
                let info = EditInfo::of(&id, &file, &edit, None);
                inner.with_model_mut(|m, stack| stack.apply(&mut m.unet, &id, edit, &file).map_err(StudioError::from)).map(|_| info)
            });
            if suspended {
                inner.with_model_mut(|m, _| inner.adapters.borrow_mut().resume(&mut m.unet)).map_err(js_err)?;
            }
            let info = applied.map_err(js_err)?;
            Ok(JsValue::from_str(&to_json(&Erased { edit: &info, ms })?))
        })
    }

    /// Reverts one edit (the tensors only it touched get their original values back, bit for
    /// bit). Returns whether it was applied.
    #[wasm_bindgen(js_name = revertEdit)]
    pub fn revert_edit(&self, id: String) -> Result<bool, JsError> {
        self.inner.with_edits_mut(|unet, stack| Ok(stack.revert(unet, &id))).map_err(js_err)
    }

    /// Reverts every edit: the model is the loaded original again.
    #[wasm_bindgen(js_name = revertAllEdits)]
    pub fn revert_all_edits(&self) -> Result<(), JsError> {
        self.inner
            .with_edits_mut(|unet, stack| {
                stack.revert_all(unet);
                Ok(())
            })
            .map_err(js_err)
    }

    /// Ids of the applied edits, in the order they were applied.
    #[wasm_bindgen(getter, js_name = activeEdits)]
    pub fn active_edits(&self) -> Vec<String> {
        self.inner.edits.borrow().active().into_iter().map(str::to_owned).collect()
    }

    /// The edit file of an applied edit (f32 tensors and its metadata), for download.
    #[wasm_bindgen(js_name = exportEdit)]
    pub fn export_edit(&self, id: String) -> Result<js_sys::Uint8Array, JsError> {
        let stack = self.inner.edits.borrow();
        let edit = stack.get(&id).ok_or_else(|| JsError::new(&format!("no edit `{id}` is applied")))?;
        Ok(js_sys::Uint8Array::from(edit.to_safetensors().as_slice()))
    }

    /// What a `.safetensors` file holds, from its header: `spm`, `lora` or `edit`.
    #[wasm_bindgen(js_name = fileKind)]
    pub fn file_kind(bytes: js_sys::Uint8Array) -> String {
        let len = bytes.length();
        let head = bytes.subarray(0, len.min(8)).to_vec();
        let n = head.get(..8).map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])));
        // A header larger than 100 MB is not a safetensors header: the edit parser says why.
        let end = if n <= 100_000_000 { (8 + n as u32).min(len) } else { len.min(8) };
        adapters::file_kind(&bytes.subarray(0, end).to_vec()).to_string()
    }

    /// Attaches an SPM or LoRA file (`kind`: `spm`, `lora` or `auto`) under `id` with user scale
    /// `scale` (an SPM's scale multiplies both factors, as `studio generate --spm FILE:SCALE`),
    /// on top of the applied edits. Returns [`adapters::AdapterInfo`] as JSON. A bad file (wrong
    /// architecture, truncated, a LoRA given as SPM) throws with the tensor, shapes and file
    /// named, and leaves the model unchanged.
    #[wasm_bindgen(js_name = attachAdapter)]
    pub fn attach_adapter(&self, id: String, file: String, bytes: js_sys::Uint8Array, kind: String, scale: f32) -> Result<String, JsError> {
        let parsed = adapters::parse(&file, bytes.to_vec(), &kind).map_err(js_err)?;
        let info = self
            .inner
            .with_model_mut(|m, _| self.inner.adapters.borrow_mut().attach(&mut m.unet, &id, parsed, scale))
            .map_err(js_err)?;
        to_json(&info)
    }

    /// Detaches one adapter: the layers it alone touched get their tensors back bit for bit.
    #[wasm_bindgen(js_name = detachAdapter)]
    pub fn detach_adapter(&self, id: String) -> Result<bool, JsError> {
        self.inner.with_model_mut(|m, _| Ok(self.inner.adapters.borrow_mut().detach(&mut m.unet, &id))).map_err(js_err)
    }

    /// Detaches every adapter.
    #[wasm_bindgen(js_name = detachAllAdapters)]
    pub fn detach_all_adapters(&self) -> Result<(), JsError> {
        self.inner
            .with_model_mut(|m, _| {
                self.inner.adapters.borrow_mut().detach_all(&mut m.unet);
                Ok(())
            })
            .map_err(js_err)
    }

    /// Ids of the attached adapters, in attach order.
    #[wasm_bindgen(getter, js_name = activeAdapters)]
    pub fn active_adapters(&self) -> Vec<String> {
        self.inner.adapters.borrow().active()
    }

    /// The attached adapters as a JSON array of [`adapters::AdapterInfo`].
    #[wasm_bindgen(getter)]
    pub fn adapters(&self) -> Result<String, JsError> {
        to_json(&self.inner.adapters.borrow().infos())
    }

    /// Facilitated Transport (on by default): each SPM applies in proportion to how close the
    /// prompt is to the concepts it erases. Off: every SPM applies fully (`--no-ft`).
    #[wasm_bindgen(getter, js_name = facilitatedTransport)]
    pub fn facilitated_transport(&self) -> bool {
        self.inner.adapters.borrow().ft
    }

    #[wasm_bindgen(setter, js_name = facilitatedTransport)]
    pub fn set_facilitated_transport(&self, on: bool) {
        self.inner.adapters.borrow_mut().ft = on;
    }

    /// Fits a LEACE or INLP eraser on the loaded model's text encoder (`request`: JSON of
    /// [`EraserFitRequest`]: method, concepts, others, iterations, minAccuracy; the defaults and
    /// checks of `studio fit-eraser`) and keeps it under `id`, named `file`. Resolves to
    /// `{eraser: SteererInfo, ms}` as JSON; a run uses it with `steering.eraser = id`. Every
    /// read-back is asynchronous.
    #[wasm_bindgen(js_name = fitEraser)]
    pub fn fit_eraser(&self, id: String, file: String, request: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let req = EraserFitRequest::from_json(&request).map_err(StudioError::from).map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            let t0 = now_ms();
            let (eraser, bytes) = steering::fit_eraser(&model, &req).await.map_err(js_err)?;
            let ms = now_ms() - t0;
            let info = inner.steering.borrow_mut().insert(&id, Steerer::Eraser { eraser, file, bytes });
            Ok(JsValue::from_str(&to_json(&FittedEraser { eraser: &info, ms })?))
        })
    }

    /// Reads an eraser file (from `studio fit-eraser` or [`Self::export_eraser`]) and keeps it
    /// under `id`. Returns `SteererInfo` as JSON. A file that is not an eraser, is damaged or was
    /// made for another text width throws with the reason, and nothing is kept.
    #[wasm_bindgen(js_name = loadEraser)]
    pub fn load_eraser(&self, id: String, file: String, bytes: js_sys::Uint8Array) -> Result<String, JsError> {
        let model = self.inner.model().map_err(js_err)?;
        let bytes = bytes.to_vec();
        let eraser = steering::read_eraser(&model, &file, bytes.clone()).map_err(js_err)?;
        let info = self.inner.steering.borrow_mut().insert(&id, Steerer::Eraser { eraser, file, bytes });
        to_json(&info)
    }

    /// The file of the eraser `id` (`studio generate --leace FILE` reads it).
    #[wasm_bindgen(js_name = exportEraser)]
    pub fn export_eraser(&self, id: String) -> Result<js_sys::Uint8Array, JsError> {
        let bytes = self.inner.steering.borrow().export(&id).map_err(js_err)?;
        Ok(js_sys::Uint8Array::from(bytes.as_slice()))
    }

    /// Computes a Ring-A-Bell concept vector (`request`: JSON of [`RingABellRequest`]: pairs
    /// "with|without;…", eta) on the loaded model and keeps it under `id`. Resolves to
    /// `{probe: SteererInfo, ms}` as JSON; a run uses it with `steering.ringABell = id`.
    #[wasm_bindgen(js_name = fitRingABell)]
    pub fn fit_ring_a_bell(&self, id: String, request: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let req = RingABellRequest::from_json(&request).map_err(StudioError::from).map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            let t0 = now_ms();
            let (probe, pairs) = steering::fit_ring_a_bell(&model, &req).await.map_err(js_err)?;
            let ms = now_ms() - t0;
            let info = inner.steering.borrow_mut().insert(&id, Steerer::RingABell { probe, pairs });
            Ok(JsValue::from_str(&to_json(&FittedProbe { probe: &info, ms })?))
        })
    }

    /// Drops the eraser or probe `id`. Returns whether it was there.
    #[wasm_bindgen(js_name = removeSteering)]
    pub fn remove_steering(&self, id: String) -> bool {
        self.inner.steering.borrow_mut().remove(&id)
    }

    /// Ids of the stored erasers and probes.
    #[wasm_bindgen(getter, js_name = steeringIds)]
    pub fn steering_ids(&self) -> Vec<String> {
        self.inner.steering.borrow().ids()
    }

    /// Drops the model (and its GPU buffers), its edits, adapters, erasers and probes. The
    /// session stays usable for another load.
    pub fn dispose(&self) {
        self.inner.cancel.set(true);
        self.inner.model.borrow_mut().take();
        *self.inner.edits.borrow_mut() = EditStack::new();
        *self.inner.adapters.borrow_mut() = SessionAdapters::new();
        self.inner.steering.borrow_mut().clear();
    }
}
