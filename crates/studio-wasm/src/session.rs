//! The JavaScript surface (wasm32 only). Used by the web worker, never by the page itself.
//!
//! ```js
//! import init, { createSession } from './pkg/studio_wasm.js';
//! await init();
//! const s = await createSession('auto');            // 'auto' | 'webgpu' | 'webgpu-f32' | 'cpu'
//! s.backend; s.adapter; s.fallbackReason;           // where it runs, and why not on WebGPU
//! const info = JSON.parse(s.loadModel(new Map([['unet/config.json', bytesOrFile], ...])));
//! // The variant entries (crate::variants): files, or computed here; kept in the session by id.
//! const a = JSON.parse(await s.addEntry('e1', 'uce.safetensors', file));   // {entry: EntryInfo, ms}
//! const b = JSON.parse(await s.computeEntry('e2', JSON.stringify({kind: 'erase', method: 'uce', concepts: ['skull']})));
//! //   kind: 'erase' (EraseRequest) | 'steer' (SLD / SAFREE) | 'fit-eraser' (EraserFitRequest) | 'ring-a-bell'
//! s.removeEntry('e1'); const {file, bytes} = s.exportEntry('e2');
//! const anatomy = JSON.parse(await s.entryAnatomy('e2'));   // `studio anatomy --json`'s object
//! s.setVariant(['e2']);                             // the model holds exactly these, changed by the difference
//! s.facilitatedTransport = false;                   // SPMs apply fully (`--no-ft`)
//! const r = await s.generate(JSON.stringify(params), (p) => ..., (preview) => ...);   // r.status: 'done' | 'cancelled'
//! s.cancel();                                       // from a message handler, between two steps
//! ```
//! Every failure is a rejected promise / thrown `Error` with an actionable message; a panic
//! is logged by `console_error_panic_hook` and surfaces as a `RuntimeError` the worker reports.
//!
//! This file is the API; the WebGPU device is set up in [`crate::webgpu`], the model's files are
//! read from JS (by ranges, for a `File`) in [`crate::js_files`], the loop's host is
//! [`crate::browser_host`], the entries are [`crate::variants`], errors are [`crate::error`] and
//! results are made with serde in [`crate::results`].

use crate::adapters;
use crate::browser_host::{BrowserHost, now_ms};
use crate::edits;
use crate::engine::{self, ModelInfo, Outcome, StudioParams};
use crate::error::{StudioError, format_bytes, js_err};
use crate::files::check_components;
use crate::js_files::{self, JsFiles};
use crate::readback::{self, encode_all};
use crate::results::{Added, AttentionOut, Cancelled, Done, Exported, InOrder, to_json, to_object};
use crate::steering::{self, Steerer};
use crate::variants::{EntryInfo, EntryRequest, Variants, file_slug};
use crate::webgpu::{cpu_device, init_webgpu};
use burn::tensor::Device;
use diffusion::safetensors_file::{Header, parse_header};
use erasure::request::limits::CPU_WEIGHT_LIMIT;
use pipeline::model::StableDiffusion;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
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
    /// Everything the page added to `model` (edits, adapters, steering), and the variant it holds.
    variants: RefCell<Variants>,
    /// The file each entry added from one came from (a `File` / `Blob`, or bytes), exported as it
    /// is: re-serialising a parsed file need not give its bytes back.
    sources: RefCell<BTreeMap<String, JsValue>>,
    /// Set by [`Session::cancel`]; the running generation's host reads it.
    cancel: Rc<Cell<bool>>,
    running: Cell<bool>,
    /// The classroom evaluator (`classroom::evaluator`), once the page loaded it: it scores
    /// images for the sweep chart.
    evaluator: RefCell<Option<Rc<classroom::evaluator::Evaluator>>>,
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
            variants: RefCell::new(Variants::new()),
            sources: RefCell::new(BTreeMap::new()),
            cancel: Rc::new(Cell::new(false)),
            running: Cell::new(false),
            evaluator: RefCell::new(None),
        }
    }

    /// The guard of every call that needs the model to itself: refused with `busy` (which says
    /// what to do instead) while a generation runs.
    fn idle(&self, busy: StudioError) -> Result<(), StudioError> {
        if self.running.get() { Err(busy) } else { Ok(()) }
    }

    /// The loaded model (shared: a generation holds it too).
    fn model(&self) -> Result<Rc<StableDiffusion>, StudioError> {
        self.model.borrow().clone().ok_or(StudioError::NoModel)
    }

    /// The model and its entries, for changing its weights: refused while a generation holds it.
    fn with_model_mut<T>(
        &self,
        f: impl FnOnce(&mut StableDiffusion, &mut Variants) -> Result<T, StudioError>,
    ) -> Result<T, StudioError> {
        self.idle(StudioError::Busy)?;
        let mut slot = self.model.borrow_mut();
        let rc = slot.as_mut().ok_or(StudioError::NoModel)?;
        let model = Rc::get_mut(rc).ok_or(StudioError::Busy)?;
        f(model, &mut self.variants.borrow_mut())
    }

    /// The model with every entry off: the loaded original weights.
    fn to_original(&self) -> Result<(), StudioError> {
        self.with_model_mut(|m, v| v.set_variant(&mut m.unet, &[]))
    }

    /// Keeps an entry made by `f` and returns its info.
    fn add(
        &self,
        f: impl FnOnce(
            &mut diffusion::unet_2d_condition::UNet2DConditionModel,
            &mut Variants,
        ) -> Result<EntryInfo, StudioError>,
    ) -> Result<EntryInfo, StudioError> {
        self.with_model_mut(|m, v| f(&mut m.unet, v))
    }

    /// The entry of a file: an eraser, an SPM / LoRA adapter, or an edit (by its header).
    async fn add_file(&self, id: &str, file: &str, bytes: Vec<u8>) -> Result<EntryInfo, StudioError> {
        match adapters::file_kind(&bytes) {
            "eraser" => {
                // Checked against the model's text width now.
                let eraser = steering::read_eraser(&*self.model()?, file, bytes.clone())?;
                let file = file.to_owned();
                self.add(|unet, v| Ok(v.add_steerer(unet, id, Steerer::Eraser { eraser, file, bytes })?.clone()))
            }
            kind @ ("spm" | "lora") => {
                let parsed = adapters::parse(file, bytes, kind)?;
                self.add(|unet, v| Ok(v.add_adapter(unet, id, parsed, 1.0)?.clone()))
            }
            _ => {
                let edit = edits::parse_and_check(&self.model()?.unet, file, bytes)?;
                // The base-model check compares with the original weights (read back asynchronously).
                self.to_original()?;
                let originals = edits::originals(&self.variants.borrow().edits, &self.model()?.unet, &edit);
                let warning = edits::base_warning(&edit, originals).await?;
                self.add(|unet, v| Ok(v.add_edit(unet, id, file, edit, warning)?.clone()))
            }
        }
    }

    /// The entry of a request computed on the loaded model; returns it with the computation's
    /// milliseconds (read-backs included).
    async fn compute(&self, id: &str, req: EntryRequest) -> Result<(EntryInfo, f64), StudioError> {
        let t0 = now_ms();
        Ok(match req {
            EntryRequest::Erase(r) => {
                // Computed on the original weights, whatever variant the model holds now.
                self.to_original()?;
                let t0 = now_ms();
                let edit = crate::erase::compute(&*self.model()?, &r).await?;
                let ms = now_ms() - t0;
                let file = format!("{}-{}.safetensors", r.method.name(), file_slug(&r.concepts.join("-")));
                (self.add(|unet, v| Ok(v.add_edit(unet, id, &file, edit, None)?.clone()))?, ms)
            }
            EntryRequest::Steer(r) => (self.add(|unet, v| Ok(v.add_steering(unet, id, r)?.clone()))?, 0.0),
            EntryRequest::FitEraser(r) => {
                let file =
                    format!("{}-{}.safetensors", r.method, file_slug(r.concepts.first().map_or("", String::as_str)));
                let (eraser, bytes) = steering::fit_eraser(&*self.model()?, &r).await?;
                let ms = now_ms() - t0;
                (self.add(|unet, v| Ok(v.add_steerer(unet, id, Steerer::Eraser { eraser, file, bytes })?.clone()))?, ms)
            }
            EntryRequest::RingABell(r) => {
                let (probe, pairs) = steering::fit_ring_a_bell(&*self.model()?, &r).await?;
                let ms = now_ms() - t0;
                (self.add(|unet, v| Ok(v.add_steerer(unet, id, Steerer::RingABell { probe, pairs })?.clone()))?, ms)
            }
        })
    }
}

impl Session {
    /// Refuses, with the numbers, a model this device cannot hold (`headers`: each weight file's
    /// component and parsed header), before anything is downloaded or the loaded model dropped:
    /// on the CPU path the weights live in wasm memory as f32 (4 GB at most); on WebGPU every
    /// tensor is one storage buffer, at most the device's `maxStorageBufferBindingSize`.
    fn check_fits<'a>(&self, headers: impl IntoIterator<Item = (&'a str, &'a Header)>) -> Result<(), String> {
        let tensors: Vec<(&str, &str, usize)> = headers
            .into_iter()
            .flat_map(|(c, h)| h.tensors.iter().map(move |(n, t)| (c, n.as_str(), t.shape.iter().product::<usize>())))
            .collect();
        if self.inner.backend == "cpu" {
            let numel: usize = tensors.iter().map(|t| t.2).sum();
            if numel * 4 > CPU_WEIGHT_LIMIT {
                return Err(format!(
                    "this model has {:.2} billion parameters, {:.1} GB as f32: more than the CPU path can hold in a browser tab (WebAssembly memory stops at 4 GB, and images need room too; the limit is {:.1} GB of weights). Set Device to Auto (WebGPU) in a browser with WebGPU, or a smaller model such as the classroom model or BK-SDM-Tiny",
                    numel as f64 / 1e9,
                    (numel * 4) as f64 / 1e9,
                    CPU_WEIGHT_LIMIT as f64 / 1e9
                ));
            }
        } else if let Some(limit) = self.inner.max_storage_buffer
            && let Some(&(component, name, n)) = tensors.iter().max_by_key(|t| t.2)
        {
            let width = if self.inner.f16 { 2 } else { 4 };
            if (n * width) as u64 > limit {
                return Err(format!(
                    "{component}'s tensor `{name}` needs {} on this GPU ({n} values × {width} bytes), more than its largest storage buffer ({}, maxStorageBufferBindingSize): the model cannot run on this GPU. Try a browser or GPU with a larger limit (chrome://gpu lists it), or Device: CPU only for a model under {:.1} GB",
                    format_bytes((n * width) as f64),
                    format_bytes(limit as f64),
                    CPU_WEIGHT_LIMIT as f64 / 1e9
                ));
            }
        }
        Ok(())
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
    if inner.variants.borrow().adapters.is_empty() {
        return Ok(vec![]);
    }
    let needed = inner.variants.borrow().adapters.prompts_to_encode(prompt);
    let mut enc = if needed.is_empty() {
        erasure::text::PrecomputedEncoder(Default::default())
    } else {
        encode_all(&*inner.model()?, &needed).await?
    };
    let perms = inner.with_model_mut(|m, v| v.adapters.prepare(m, prompt, &mut enc))?;
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

    /// Loads a diffusers-layout model from `Map<relativePath, Uint8Array | File>` (a `File` is
    /// read by ranges: its header, then one tensor at a time; the folder name
    /// in front of every path, as a folder picker gives it, is accepted). Returns the model's
    /// info as JSON. The previous model is dropped first, so two never share memory.
    #[wasm_bindgen(js_name = loadModel)]
    pub fn load_model(&self, files: js_sys::Map) -> Result<String, JsError> {
        self.inner.idle(StudioError::BusyLoading).map_err(js_err)?;
        let mut files = JsFiles::new(files).map_err(js_err)?;
        check_components(files.paths.iter().map(|(p, _)| p.as_str())).map_err(js_err)?;
        // Everything that can be checked without reading a weight is checked before the loaded
        // model is dropped: a broken folder leaves it (and its entries) as they were.
        let checked = StableDiffusion::check(&mut files, &self.inner.device).map_err(js_err)?;
        // A malformed studio.json refuses the load with the file and field named, as the CLI does.
        let defaults = match pipeline::ModelFiles::read(&mut files, pipeline::StudioJson::FILE).map_err(js_err)? {
            Some(bytes) => Some(pipeline::StudioJson::parse(pipeline::StudioJson::FILE, &bytes).map_err(js_err)?),
            None => None,
        };
        self.check_fits(checked.weight_files().map(|(c, f)| (c, f.header()))).map_err(|e| JsError::new(&e))?;
        self.inner.model.borrow_mut().take();
        self.inner.variants.borrow_mut().clear();
        self.inner.sources.borrow_mut().clear();
        let mut model = StableDiffusion::build(checked, &self.inner.device).map_err(js_err)?;
        // Idle until a run asks for attention maps (`attention: true`).
        model.unet.set_attention_probe(Some(diffusion::attention_probe::AttentionProbe::new()));
        let mut info = ModelInfo::of(&model);
        if let Some(d) = defaults {
            (info.default_guidance, info.default_steps) = (d.guidance_scale, d.num_inference_steps);
        }
        *self.inner.model.borrow_mut() = Some(Rc::new(model));
        to_json(&info)
    }

    /// Generates one image with the variant set last ([`Self::set_variant`]): its edits and
    /// adapters are on the weights, its steering steers the run. `params`: JSON of
    /// [`StudioParams`] (without `steering`: that comes from the variant).
    /// `on_progress({step, total, timestep, elapsedMs, stepMs})` is called after each step,
    /// `on_preview({step, width, height, rgba})` every `previewEvery` steps. Resolves to
    /// `{status: 'done', width, height, rgba: Uint8ClampedArray, timing, promptTruncated,
    /// steering, permeabilities}` or `{status: 'cancelled', step, total}`.
    pub fn generate(
        &self,
        params: String,
        on_progress: Option<js_sys::Function>,
        on_preview: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::BusyGenerating).map_err(js_err)?;
            let mut params = StudioParams::from_json(&params).map_err(js_err)?;
            if params.steering.is_some() {
                return Err(js_err(StudioError::Params(
                    "a run's steering comes from its variant: add the steering as an entry and name it in setVariant"
                        .into(),
                ))
                .into());
            }
            params.steering = inner.variants.borrow().steering_now().cloned();
            let perms = prepare_adapters(&inner, &params.prompt).await.map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            inner.cancel.set(false);
            inner.running.set(true);
            let mut host = BrowserHost { cancel: inner.cancel.clone(), on_progress, on_preview };
            // A copy: no borrow of the store is held across the run's awaits.
            let store = inner.variants.borrow().steering.clone();
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
                        attention: img.attention.as_ref().map(|(m, s)| AttentionOut {
                            maps: m,
                            words: s,
                            ms: img.attention_ms,
                        }),
                        timeline_frames: img.timeline.len(),
                        timeline_ms: img.timeline_ms,
                        sld_terms: &img.sld_terms,
                    };
                    Ok(done.to_js(&img.rgba, img.attention.as_ref().map(|(m, _)| m.maps.as_slice()), &img.timeline)?)
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

    /// Adds a file as entry `id` (replacing an entry with that id), off until a variant names it:
    /// an edit (`.safetensors`, DESIGN.md "Edit file"; `warning` is set when it was computed on
    /// other weights), an SPM or LoRA adapter (kohya `lora_unet_…` tensors), or a LEACE / INLP
    /// eraser (`proj_left` / `proj_right`). `data`: a `File` / `Blob` (read by ranges into wasm
    /// memory) or a `Uint8Array`. Resolves to `{entry: EntryInfo, ms}` as JSON. A bad file
    /// (unknown tensor, wrong shape, NaN, another architecture or text width) rejects with the
    /// reason and leaves the model and the other entries unchanged.
    #[wasm_bindgen(js_name = addEntry)]
    pub fn add_entry(&self, id: String, file: String, data: JsValue) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            inner.model().map_err(js_err)?;
            let t0 = now_ms();
            let bytes = js_files::read_all(&data, &file).await.map_err(js_err)?;
            let entry = inner.add_file(&id, &file, bytes).await.map_err(js_err)?;
            inner.sources.borrow_mut().insert(id, data);
            Ok(JsValue::from_str(&to_json(&Added { entry: &entry, ms: now_ms() - t0 })?))
        })
    }

    /// Computes entry `id` on the loaded model (`request`: JSON of [`EntryRequest`], tagged by
    /// `kind`: `erase` (a closed-form edit: method uce | time | rece | speed | mace, concepts,
    /// guides, preserve, params, computed on the original weights), `steer` (SLD or SAFREE
    /// settings), `fit-eraser` (LEACE / INLP: method, concepts, others, iterations, minAccuracy)
    /// or `ring-a-bell` (pairs, eta); the defaults and checks of the CLI). Resolves to `{entry:
    /// EntryInfo, ms}` as JSON (`ms`: the computation, read-backs included). Every read-back is
    /// asynchronous; on error nothing is kept.
    #[wasm_bindgen(js_name = computeEntry)]
    pub fn compute_entry(&self, id: String, request: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let req = EntryRequest::from_json(&request).map_err(js_err)?;
            inner.model().map_err(js_err)?;
            let (entry, ms) = inner.compute(&id, req).await.map_err(js_err)?;
            inner.sources.borrow_mut().remove(&id);
            Ok(JsValue::from_str(&to_json(&Added { entry: &entry, ms })?))
        })
    }

    /// The anatomy of edit entry `id` (`erasure::anatomy::edit_anatomy`, as `studio anatomy
    /// --json` prints it): ‖ΔW‖/‖W‖, rank and spectral norm per tensor, and how the concept's
    /// keys and values moved towards the guide and the preserved concepts. The model goes back to
    /// its original weights to read them (asynchronously); the next run sets its own variant.
    /// Rejects for an entry that is not a weight edit, or while a generation runs.
    #[wasm_bindgen(js_name = entryAnatomy)]
    pub fn entry_anatomy(&self, id: String) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            inner.idle(StudioError::Busy).map_err(js_err)?;
            let edit = inner.variants.borrow().edits.get(&id).cloned();
            let Some(edit) = edit else {
                let what = inner.variants.borrow().info(&id).map(|i| i.kind);
                return Err(js_err(match what {
                    Some(kind) => format!(
                        "entry {id} is {kind}, not a weight edit: the anatomy shows what an edit did to the weights (an SPM's permeability shows under each image, steering's terms in its note)"
                    ),
                    None => format!("there is no entry {id}: add or compute an edit first"),
                })
                .into());
            };
            inner.to_original().map_err(js_err)?;
            let model = inner.model().map_err(js_err)?;
            let mut originals = vec![];
            let tensors = edits::originals(&inner.variants.borrow().edits, &model.unet, &edit);
            for (name, t) in tensors {
                originals.push((name, readback::to_f32(t).await.map_err(js_err)?));
            }
            let mut enc = encode_all(&model, &erasure::anatomy::texts(&edit)).await.map_err(js_err)?;
            let anatomy = erasure::anatomy::edit_anatomy(&edit, &originals, &mut enc).map_err(js_err)?;
            Ok(JsValue::from_str(&to_json(&anatomy)?))
        })
    }

    /// Loads the classroom evaluator (`config.json` text and `model.safetensors` bytes, as
    /// `models/classroom/evaluator/` ships them) on this session's device; a damaged file throws
    /// the reason and keeps the evaluator loaded before, if any.
    #[wasm_bindgen(js_name = loadEvaluator)]
    pub fn load_evaluator(&self, config: String, weights: Vec<u8>) -> Result<(), JsError> {
        let e = classroom::evaluator::Evaluator::load(&config, weights, &self.inner.device).map_err(js_err)?;
        *self.inner.evaluator.borrow_mut() = Some(Rc::new(e));
        Ok(())
    }

    /// The evaluator's classes for RGB8 images `[n, 64, 64, 3]` one after another: JSON `[{head:
    /// class}]`, one object an image (`Prediction::classes`, what `studio eval-classroom` scores).
    #[wasm_bindgen(js_name = evaluate)]
    pub fn evaluate(&self, rgb: Vec<u8>) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let e = inner.evaluator.borrow().clone();
            let e = e.ok_or_else(|| js_err("the evaluator is not loaded: it ships with the classroom model"))?;
            let per = e.config.image_bytes();
            if rgb.is_empty() || !rgb.len().is_multiple_of(per) {
                return Err(js_err(format!(
                    "the evaluator scores {}×{} RGB images ({per} bytes each), got {} bytes: generate at the classroom model's 64 × 64",
                    e.config.input.width, e.config.input.height, rgb.len()
                ))
                .into());
            }
            let n = rgb.len() / per;
            let mut values = vec![];
            for t in e.logits(&rgb).map_err(js_err)? {
                values.push(readback::to_f32(t).await.map_err(js_err)?);
            }
            let preds = e.predictions(&values, n).map_err(js_err)?;
            let classes: Vec<_> = preds.iter().map(|p| p.classes()).collect();
            Ok(JsValue::from_str(&to_json(&classes)?))
        })
    }

    /// Drops entry `id` (it comes off the weights first where a variant had it on). Returns
    /// whether it was there.
    #[wasm_bindgen(js_name = removeEntry)]
    pub fn remove_entry(&self, id: String) -> Result<bool, JsError> {
        if !self.has_model() {
            return Ok(false);
        }
        self.inner.sources.borrow_mut().remove(&id);
        self.inner.with_model_mut(|m, v| v.remove(&mut m.unet, &id)).map_err(js_err)
    }

    /// Makes the model hold exactly the entries `ids` (in that order), changing only what differs
    /// from the variant it holds; their steering steers the next runs. An id that is not an
    /// entry is refused and nothing changes.
    #[wasm_bindgen(js_name = setVariant)]
    pub fn set_variant(&self, ids: Vec<String>) -> Result<(), JsError> {
        self.inner.with_model_mut(|m, v| v.set_variant(&mut m.unet, &ids)).map_err(js_err)
    }

    /// The file of an edit or eraser entry (`studio generate --edit` / `--leace` read it):
    /// `{file, data}`, `data` the file it was added from as it was given (`File`, `Blob` or
    /// `Uint8Array`), or, for one computed here, a `Uint8Array` of its file (f32 tensors and its
    /// metadata).
    #[wasm_bindgen(js_name = exportEntry)]
    pub fn export_entry(&self, id: String) -> Result<JsValue, JsError> {
        let variants = self.inner.variants.borrow();
        if let (Some(source), Some(info)) = (self.inner.sources.borrow().get(&id), variants.info(&id)) {
            if !info.exportable {
                return Err(JsError::new(&format!("{} is not a file the studio can export", info.file)));
            }
            return Exported { file: &info.file }.to_js(source.clone());
        }
        let (file, bytes) = variants.export(&id).map_err(js_err)?;
        Exported { file: &file }.to_js(js_sys::Uint8Array::from(bytes.as_slice()).into())
    }

    /// Checks that a model fits this device before it is downloaded: `paths[i]` (e.g.
    /// `unet/diffusion_pytorch_model.fp16.safetensors`) is `sizes[i]` bytes long and begins with
    /// `prefixes[i]` (its 8-byte header length and JSON header, fetched by range). Throws the
    /// reason, with the numbers, for a damaged header or a model too large for the CPU path or
    /// for this GPU's largest storage buffer.
    #[wasm_bindgen(js_name = checkWeightHeaders)]
    pub fn check_weight_headers(
        &self,
        paths: Vec<String>,
        sizes: Vec<f64>,
        prefixes: Vec<js_sys::Uint8Array>,
    ) -> Result<(), JsError> {
        let mut headers = vec![];
        for ((path, size), prefix) in paths.iter().zip(sizes).zip(prefixes) {
            let header = parse_header(&prefix.to_vec(), size as usize, path).map_err(js_err)?;
            headers.push((path.split('/').next().unwrap_or_default(), header));
        }
        self.check_fits(headers.iter().map(|(c, h)| (*c, h))).map_err(|e| JsError::new(&e))
    }

    /// SHA-256 (hex) of the loaded model's weights ([`readback::weights_digest`]: every weight an
    /// entry can change, and a few that tell one load from another), with every entry off: the
    /// variant a run left in place is not part of "the model" (each run sets its own). Tests
    /// compare it before and after a bad input; refused while a generation runs.
    #[wasm_bindgen(js_name = weightsDigest)]
    pub fn weights_digest(&self) -> js_sys::Promise {
        let inner = self.inner.clone();
        wasm_bindgen_futures::future_to_promise(async move {
            let tensors = inner
                .with_model_mut(|m, v| {
                    v.set_variant(&mut m.unet, &[])?;
                    Ok(readback::digest_tensors(m))
                })
                .map_err(js_err)?;
            Ok(JsValue::from_str(&readback::weights_digest(tensors).await.map_err(js_err)?))
        })
    }

    /// Bytes of edit tensors copied host → device since the model was loaded (each entry's once,
    /// when added; switching variants copies none).
    #[wasm_bindgen(getter, js_name = editUploadBytes)]
    pub fn edit_upload_bytes(&self) -> f64 {
        (self.inner.variants.borrow().edits.uploaded_values() * 4) as f64
    }

    /// Facilitated Transport (on by default): each SPM applies in proportion to how close the
    /// prompt is to the concepts it erases. Off: every SPM applies fully (`--no-ft`).
    #[wasm_bindgen(getter, js_name = facilitatedTransport)]
    pub fn facilitated_transport(&self) -> bool {
        self.inner.variants.borrow().adapters.ft
    }

    #[wasm_bindgen(setter, js_name = facilitatedTransport)]
    pub fn set_facilitated_transport(&self, on: bool) {
        self.inner.variants.borrow_mut().adapters.ft = on;
    }
}
