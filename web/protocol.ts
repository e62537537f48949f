// The typed message protocol between the page (UI) and the web worker that owns the wasm
// Session and the GPU. The UI never imports wasm; it only posts `ToWorker` and reads `FromWorker`.

/** Where a session runs. */
export type Backend = 'webgpu' | 'cpu';
/**
 * What the user asks for. `auto`: WebGPU (in f16 where the adapter has `shader-f16`) on a GPU, the
 * CPU path where the only adapter is a software one (SwiftShader: slower than the CPU path) or
 * WebGPU is unavailable, with a reason; `webgpu`: WebGPU on whatever adapter the browser gives,
 * a software one included (falling back to the CPU only without WebGPU); `webgpu-f32`: the same
 * in f32; `cpu`: the CPU path.
 */
export type BackendChoice = 'auto' | 'webgpu' | 'webgpu-f32' | 'cpu';

export const SCHEDULERS = ['ddim', 'euler', 'euler-a', 'lcm', 'dpm'] as const;
export type SchedulerName = (typeof SCHEDULERS)[number];

/** Mirrors `studio_wasm::engine::StudioParams` (JSON, camelCase); unknown fields are rejected there. */
export interface GenerateParams {
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  seed: number;
  scheduler: SchedulerName;
  /** A VAE-decoded preview of the current latents every this many steps (0 or absent: none). */
  previewEvery?: number;
  /** Record DAAM's cross-attention heat maps of the prompt's words (the image is unchanged). */
  attention?: boolean;
  /** Which steps and layer resolutions the maps aggregate (absent: every step and layer). */
  attentionSelection?: AttentionSelection;
  /** Decode the predicted clean image x̂₀ after every step: the denoising timeline (one VAE decode a step). */
  timeline?: boolean;
}

/**
 * `pipeline::daam::Selection`: the denoising steps `[first, last]` (0-based, inclusive) recorded and
 * the factors (latent side / layer side, DAAM's `factors`) of the layers aggregated; null: all.
 */
export interface AttentionSelection {
  steps?: [number, number] | null;
  factors?: number[] | null;
}

/** `pipeline::daam::Resolution`: the cross-attention layers of one feature-map size in a recording. */
export interface AttentionResolution {
  factor: number;
  height: number;
  width: number;
  layers: number;
  heads: number;
  /** Aggregated into the maps. */
  selected: boolean;
}

/** SLD's guidance terms at one step (`erasure::sld::SldStepTerms`, what `studio generate --sld-terms` writes). */
export interface SldStepTerms {
  step: number;
  /** γ is subtracted at this step (from the warm-up on). */
  applied: boolean;
  /** ‖γ‖ / ‖ε_p − ε_u‖. */
  relative: number;
  gammaNorm: number;
  guidanceNorm: number;
  /** Fraction of the latent with μ > 0. */
  coverage: number;
  meanScale: number;
  momentumNorm: number;
}

/** A word of the prompt and its tokens' rows in `AttentionMaps.maps` (`pipeline::daam::Word`). */
export interface AttentionWord {
  text: string;
  rows: number[];
}

/**
 * DAAM's heat maps of one run (`pipeline::daam::AttentionMaps`, `studio attention` writes the same):
 * `maps` `[tokens, height, width]` at the latent size, the mean over every cross-attention layer and
 * head of the bicubically upsampled probabilities summed over the steps; `scores`: each word's IoU
 * (map binarised at 0.4 after min-max normalisation) with the image's object mask.
 */
export interface AttentionMaps {
  tokens: string[];
  words: AttentionWord[];
  height: number;
  width: number;
  layers: number;
  heads: number;
  steps: number;
  /** The steps recorded, `[first, last]` (0-based, inclusive). */
  stepWindow: [number, number];
  /** Steps of the run the maps were recorded in. */
  runSteps: number;
  /** Every resolution recorded and whether it is in the maps. */
  resolutions: AttentionResolution[];
  scores: { word: string; iou: number | null }[];
  /** Aggregating and reading the maps back, within the run's total. */
  ms: number;
  maps: Float32Array;
}

/**
 * Mirrors `erasure::request::SteeringRequest`: `studio generate --sld PRESET [--sld-concept C]
 * --safree "kw1;kw2" [--safree-alpha A] [--safree-all-steps] [--safree-artist] [--leace FILE]
 * [--ring-a-bell PAIRS]`. The page adds SLD and SAFREE settings as `steer` entries; the Session
 * combines the steering of a run's variant itself (the eraser and the probe are entries too, named
 * by id).
 */
export interface SteeringRequest {
  sld?: SldPreset;
  /** Absent or blank: the official list of unsafe concepts. */
  sldConcept?: string;
  /** SAFREE's keywords of the concept to steer away from, `;`-separated. */
  safree?: string;
  /** SAFREE's trigger margin α (default 0.01). */
  safreeAlpha?: number;
  /** Project at every step instead of the self-validating filter's count. */
  safreeAllSteps?: boolean;
  /** The filter calibrated for artist styles. */
  safreeArtist?: boolean;
  /** The id of a LEACE / INLP eraser in the session (`fit-eraser`, or an eraser file added). */
  eraser?: string;
  /** The id of a Ring-A-Bell probe in the session (`ring-a-bell`). */
  ringABell?: string;
}

/** The linear erasers of text embeddings (crates/erasure leace.rs, inlp.rs). */
export const ERASER_METHODS = ['leace', 'inlp'] as const;
export type EraserMethod = (typeof ERASER_METHODS)[number];

/**
 * Mirrors `erasure::request::EraserFitRequest`: `studio fit-eraser --method M --concept-prompts
 * "a;b" --other-prompts "c;d" [--iterations N] [--min-accuracy A]` (INLP's settings only for INLP).
 */
export interface EraserFitRequest {
  method: EraserMethod;
  concepts: string[];
  others: string[];
  iterations?: number;
  minAccuracy?: number;
}

/** Mirrors `erasure::request::RingABellRequest`: `--ring-a-bell "with|without;…" --ring-a-bell-eta η`. */
export interface RingABellFitRequest {
  pairs: string;
  eta?: number;
}

/** Safe Latent Diffusion's presets (crates/erasure/src/sld.rs). */
export const SLD_PRESETS = ['weak', 'medium', 'strong', 'max'] as const;
export type SldPreset = (typeof SLD_PRESETS)[number];

/** What a variant entry of the erase panel is: a weight edit, an adapter, or inference-time steering. */
export type VariantKind = 'edit' | 'spm' | 'lora' | 'sld' | 'safree' | 'leace' | 'inlp' | 'ring-a-bell';

/** One tensor an edit rewrote (`erasure::anatomy::TensorAnatomy`). */
export interface TensorAnatomy {
  tensor: string;
  /** `down_blocks.1.attentions.0`, `mid_block.attentions.0`. */
  block: string;
  /** `to_k` or `to_v`. */
  projection: string;
  shape: number[];
  deltaNorm: number;
  weightNorm: number;
  /** ‖ΔW‖_F / ‖W‖_F. */
  relative: number;
  rank: number;
  spectralNorm: number;
}

/** How a text embedding's key or value moved (`erasure::anatomy::KeyMovement`), averaged over the edited tensors of one projection. */
export interface KeyMovement {
  /** `guide`: concept vs its guide; `preserve`: concept vs a preserved concept; `kept`: a preserved concept vs its own key. */
  kind: 'guide' | 'preserve' | 'kept';
  concept: string;
  target: string;
  projection: string;
  before: number;
  after: number;
  tensors: number;
}

/** The anatomy of an edit entry, as `studio anatomy --json` prints it (`erasure::anatomy::EditAnatomy`). */
export interface EditAnatomy {
  method: string;
  concepts: string[];
  guides: string[];
  preserve: string[];
  tensors: TensorAnatomy[];
  keys: KeyMovement[];
}

/** The closed-form erasure methods (crates/erasure); computing them in the page is the `erase` message. */
export const ERASE_METHODS = ['uce', 'time', 'rece', 'speed', 'mace'] as const;
export type EraseMethod = (typeof ERASE_METHODS)[number];

/**
 * Mirrors `studio_wasm::variants::EntryInfo`: one entry the Session keeps for the loaded model (an
 * edit, an adapter, or steering), listed and toggled alike; `kind` says which.
 */
export interface EntryInfo {
  id: string;
  kind: VariantKind;
  /** The file it came from, or what stands for one (`SLD medium`, `Ring-A-Bell η = 3`). */
  file: string;
  method: string;
  concepts: string[];
  guides: string[];
  preserve: string[];
  hyperparameters: Record<string, unknown>;
  /** The tensors it changes (an edit), the modules it adapts (an adapter), an eraser's tensors. */
  tensors: string[];
  values: number;
  baseModel: string;
  /** Set when an edit was computed on other weights than the loaded model's. */
  warning: string | null;
  /** Whether it exports as a file (edits and erasers). */
  exportable: boolean;
}

/**
 * Mirrors `studio_wasm::variants::EntryRequest`: an entry computed in the page, tagged by `kind`:
 * a closed-form edit (`studio erase`; `params` by the CLI's names), SLD / SAFREE settings, a LEACE
 * / INLP eraser (`studio fit-eraser`), a Ring-A-Bell probe.
 */
export type EntryRequest =
  | { kind: 'erase'; method: EraseMethod; concepts: string[]; guides: string[]; preserve: string[]; params: Record<string, number | string | boolean> }
  | ({ kind: 'steer' } & SteeringRequest)
  | ({ kind: 'fit-eraser' } & EraserFitRequest)
  | ({ kind: 'ring-a-bell' } & RingABellFitRequest);

/** One file of a hub download (web/hub/download.ts `FileProgress`). */
export interface DownloadFile {
  path: string;
  size: number | null;
  loaded: number;
  state: 'queued' | 'cached' | 'downloading' | 'verifying' | 'done' | 'failed';
  bytesPerSec: number;
  resumedFrom: number;
  verified: 'pinned' | 'hub' | 'size' | null;
}

/** Mirrors `studio_wasm::engine::ModelInfo`. */
export interface ModelInfo {
  defaultWidth: number;
  defaultHeight: number;
  sizeMultiple: number;
  latentChannels: number;
  textWidth: number;
  textLayers: number;
  unetChannels: number[];
  schedulerClass: string | null;
  defaultScheduler: string;
  predictionType: string | null;
  /** The folder's recommended guidance and steps (its `studio.json`), when it has one. */
  defaultGuidance?: number | null;
  defaultSteps?: number | null;
}

/** Mirrors `studio_wasm::engine::Timing` (milliseconds). */
export interface Timing {
  startMs: number;
  stepsMs: number;
  perStepMs: number;
  decodeMs: number;
  /** Intermediate previews (excluded from `stepsMs`) and how many. */
  previewMs?: number;
  previews?: number;
  totalMs: number;
}

export interface FileEntry {
  /** Relative to the model folder, `/`-separated (`unet/config.json`). */
  path: string;
  size: number;
}

/** A model the page serves itself (bundled), or one the user picked from disk. */
export type ModelSource =
  | { kind: 'url'; id: string; name: string; base: string; files: FileEntry[] }
  | { kind: 'local'; name: string; files: { path: string; file: File }[] }
  /** A repo on the Hugging Face hub (or a server with its URL layout), downloaded into the OPFS cache. */
  | { kind: 'hub'; id: string; name: string; endpoint: string; repo: string; revision: string; pinned?: Record<string, string> };

/** The worker's WebGPU buffers (web/worker/gpu-memory.ts counts them). */
export interface GpuMemoryStats {
  /** Buffers created and not yet released (destroyed, or collected without `destroy()`). */
  liveBuffers: number;
  /** Their sizes, summed (bytes). */
  liveBytes: number;
  /** The most `liveBytes` ever was. */
  peakBytes: number;
  /** Buffers created since the worker started. */
  created: number;
  /** Buffers destroyed (each counted once), by `destroy()` or by their device's `destroy()`. */
  destroyed: number;
  /**
   * Buffers garbage-collected without `destroy()`. wgpu's WebGPU backend does not destroy a
   * buffer it drops (wgpu 30 `WebBuffer::drop` is a no-op) and cubecl's `dealloc` only drops it,
   * so the browser frees such a buffer when the worker's garbage collector reclaims the object.
   */
  collected: number;
}

export type ToWorker =
  /** `gpuLimits: 'default'`: a WebGPU device with the default limits, not the adapter's (a test of a small GPU). */
  /** `gpuBudget`: a stand-in GPU with that many bytes of memory (the out-of-memory test). */
  | { type: 'init'; backend: BackendChoice; tasksMax?: number; gpuLimits?: 'default'; gpuBudget?: number }
  | { type: 'load'; requestId: number; source: ModelSource }
  /**
   * `edits`: the ids of the variant entries of this run, in order (the Session's `setVariant`:
   * it changes only what differs from the variant the model holds). `ft`: Facilitated Transport
   * for the SPMs (default on).
   */
  | { type: 'generate'; requestId: number; params: GenerateParams; edits: string[]; ft?: boolean }
  /**
   * Adds a file as entry `id` (off until a run names it): an edit, an SPM or LoRA adapter (kohya
   * `lora_unet_…` tensors), or a LEACE / INLP eraser (`proj_left` / `proj_right`), by its header.
   * `data` is the picked or dropped `File`: the Session reads it by ranges.
   */
  | { type: 'entry-add'; requestId: number; id: string; file: string; data: Blob }
  /** Computes entry `id` in the page (`Session.computeEntry`; every read-back asynchronous). */
  | { type: 'entry-compute'; requestId: number; id: string; request: EntryRequest }
  | { type: 'entry-remove'; requestId: number; id: string }
  /** The file of an edit or eraser entry (`studio generate --edit` / `--leace` read it). */
  | { type: 'entry-export'; requestId: number; id: string }
  /**
   * The classroom evaluator's classes for `count` RGB8 images one after another (`Session.evaluate`);
   * the evaluator is fetched from `evaluator` (same-origin URLs of its config.json and weights) the first time.
   */
  | { type: 'evaluate'; requestId: number; evaluator: { config: string; weights: string }; rgb: Uint8Array; count: number }
  /** The anatomy of an edit entry (`Session.entryAnatomy`: ‖ΔW‖/‖W‖, rank, key movement). */
  | { type: 'entry-anatomy'; requestId: number; id: string }
  /** SHA-256 of the loaded weights as they are now (`Session.weightsDigest`; the bad-input tests compare it). */
  | { type: 'digest'; requestId: number }
  /** The engine's memory now: wasm memory and live GPU buffers (the soak test samples it). Bypasses the queue. */
  | { type: 'stats'; requestId: number }
  /** Test hook: destroys the engine's GPU device (the device-loss test). Bypasses the queue. */
  | { type: 'lose-device' }
  | { type: 'cancel' };

export type Phase = 'init' | 'load' | 'generate' | 'edit' | 'erase';

export type FromWorker =
  | {
      status: 'ready';
      backend: Backend;
      adapter: string;
      fallbackReason: string | null;
      /** The software WebGPU adapter `auto` passed over for the CPU path (its label), if it did. */
      skippedAdapter?: string;
      maxStorageBuffer: number | null;
      shaderF16: boolean;
      /** What the engine computes in: f16 on WebGPU with `shader-f16` (unless `webgpu-f32` was asked), else f32. */
      precision: 'f16' | 'f32';
      initMs: number;
    }
  | { status: 'loading'; requestId: number; file: string; fileIndex: number; fileCount: number; loaded: number; total: number }
  | { status: 'download'; requestId: number; repo: string; files: DownloadFile[]; offline: boolean }
  | {
      status: 'loaded';
      requestId: number;
      name: string;
      info: ModelInfo;
      bytes: number;
      ms: number;
      /** The engine's wasm memory after loading, bytes (wasm32 stops at 4 GiB; weights read one tensor at a time stay far below). */
      wasmBytes?: number;
    }
  | { status: 'progress'; requestId: number; step: number; total: number; elapsedMs: number; stepMs: number; recordMs: number }
  | { status: 'preview'; requestId: number; step: number; width: number; height: number; rgba: Uint8ClampedArray }
  /** An entry is in the session. `ms`: reading and checking a file, or computing it (`computed`). */
  | { status: 'entry'; requestId: number; entry: EntryInfo; ms: number; computed: boolean }
  | { status: 'entry-removed'; requestId: number; id: string; removed: boolean }
  /** `data`: the file the entry was added from, or the file of one computed in the page. */
  | { status: 'exported'; requestId: number; id: string; file: string; data: Blob }
  | {
      status: 'image';
      requestId: number;
      width: number;
      height: number;
      rgba: Uint8ClampedArray;
      timing: Timing;
      params: GenerateParams;
      promptTruncated: boolean;
      /** What the run's steering did (SAFREE's trigger tokens and steps), when it says something. */
      steering?: string | null;
      backend: Backend;
      /** The edits that were active. */
      edits: string[];
      /** Each SPM's Facilitated Transport permeability for this prompt, by id (1 with FT off). */
      permeabilities?: Record<string, number>;
      /** With `params.attention`. */
      attention?: AttentionMaps | null;
      /** With `params.timeline`: x̂₀ after each step, RGBA of `width × height`, the frames one after another. */
      timeline?: Uint8ClampedArray | null;
      /** With SLD steering: its guidance terms at every step (`erasure::sld::SldStepTerms`). */
      sldTerms?: SldStepTerms[];
    }
  | { status: 'cancelled'; requestId: number; step: number; total: number }
  | { status: 'anatomy'; requestId: number; id: string; anatomy: EditAnatomy }
  /** One `{head: class}` an image (`classroom::evaluator::Prediction::classes`). */
  | { status: 'evaluation'; requestId: number; classes: Record<string, string>[] }
  | { status: 'digest'; requestId: number; sha256: string }
  /**
   * `wasmBytes`: the wasm memory's size (it grows, never shrinks; 0 before the module started);
   * `gpu`: the live WebGPU buffers (null without WebGPU in this worker).
   */
  | { status: 'stats'; requestId: number; wasmBytes: number; gpu: GpuMemoryStats | null }
  /** The GPU device went away (`GPUDevice.lost`): the page restarts the engine and loads the model and its entries again. */
  | { status: 'device-lost'; reason: string; message: string }
  | {
      status: 'error';
      requestId: number | null;
      phase: Phase;
      message: string;
      /** The wasm module trapped (a panic): the worker must be replaced. */
      fatal: boolean;
      /** A failed load that got as far as dropping the previous model (`load` only). */
      modelDropped?: boolean;
    };

const isObj = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null;
const isNum = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
const isStr = (x: unknown): x is string => typeof x === 'string';

/** Checks a message from the worker before the UI trusts it (a stale build or a bug shows up here). */
export function isFromWorker(x: unknown): x is FromWorker {
  if (!isObj(x) || !isStr(x.status)) return false;
  switch (x.status) {
    case 'ready':
      return (
        (x.backend === 'webgpu' || x.backend === 'cpu') &&
        isStr(x.adapter) &&
        (x.fallbackReason === null || isStr(x.fallbackReason)) &&
        (x.skippedAdapter === undefined || isStr(x.skippedAdapter)) &&
        (x.precision === 'f16' || x.precision === 'f32')
      );
    case 'loading':
      return isNum(x.requestId) && isStr(x.file) && isNum(x.loaded) && isNum(x.total);
    case 'loaded':
      return isNum(x.requestId) && isStr(x.name) && isObj(x.info) && isNum(x.info.defaultWidth) && isNum(x.info.sizeMultiple);
    case 'download':
      return isNum(x.requestId) && isStr(x.repo) && Array.isArray(x.files);
    case 'progress':
      return isNum(x.requestId) && isNum(x.step) && isNum(x.total) && x.step >= 0 && x.step <= x.total;
    case 'preview':
      return isNum(x.requestId) && isNum(x.width) && isNum(x.height) && x.rgba instanceof Uint8ClampedArray && x.rgba.length === x.width * x.height * 4;
    case 'entry':
      return isNum(x.requestId) && isObj(x.entry) && isStr(x.entry.id) && isStr(x.entry.kind) && Array.isArray(x.entry.tensors) && isNum(x.ms);
    case 'entry-removed':
      return isNum(x.requestId) && isStr(x.id) && typeof x.removed === 'boolean';
    case 'exported':
      return isNum(x.requestId) && isStr(x.id) && isStr(x.file) && x.data instanceof Blob;
    case 'image':
      return (
        isNum(x.requestId) &&
        isNum(x.width) &&
        isNum(x.height) &&
        x.rgba instanceof Uint8ClampedArray &&
        x.rgba.length === x.width * x.height * 4 &&
        isObj(x.timing) &&
        Array.isArray(x.edits)
      );
    case 'cancelled':
      return isNum(x.requestId) && isNum(x.step) && isNum(x.total);
    case 'evaluation':
      return isNum(x.requestId) && Array.isArray(x.classes) && x.classes.every(isObj);
    case 'anatomy':
      return isNum(x.requestId) && isStr(x.id) && isObj(x.anatomy) && Array.isArray(x.anatomy.tensors) && Array.isArray(x.anatomy.keys);
    case 'digest':
      return isNum(x.requestId) && isStr(x.sha256) && /^[0-9a-f]{64}$/.test(x.sha256);
    case 'stats':
      return (
        isNum(x.requestId) &&
        isNum(x.wasmBytes) &&
        (x.gpu === null || (isObj(x.gpu) && ['liveBuffers', 'liveBytes', 'peakBytes', 'created', 'destroyed', 'collected'].every((k) => isNum((x.gpu as Record<string, unknown>)[k]))))
      );
    case 'device-lost':
      return isStr(x.reason) && isStr(x.message);
    case 'error':
      return isStr(x.message) && ['init', 'load', 'generate', 'edit', 'erase'].includes(x.phase as string) && typeof x.fatal === 'boolean';
    default:
      return false;
  }
}

/** The text of any thrown value (wasm-bindgen's JsError arrives as an Error). */
export function errorMessage(e: unknown): string {
  if (e instanceof Error) return e.message || e.name;
  if (isStr(e)) return e;
  try {
    return JSON.stringify(e);
  } catch {
    return String(e);
  }
}
