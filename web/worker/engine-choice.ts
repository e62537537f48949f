// What "Auto" runs on (pure: the worker asks the browser, this decides). A software WebGPU adapter
// (Chromium's SwiftShader, `GPUAdapterInfo.isFallbackAdapter`) runs the studio slower than the
// CPU path: on this project's 2-core machine the first 3-step classroom image came 82.7 s after
// opening the page there and 5.8 s on the CPU path (tests/browser/studio.mjs; per step 6.5 s
// against 0.3 s, BENCHMARKS.md "Browser"). So Auto takes the CPU path when the adapter
// the browser offers is a software one; an explicit "WebGPU" still uses it.

/** The parts of `GPUAdapterInfo` read here (`type` is Chromium's, behind developer features). */
export interface AdapterInfoLike {
  vendor?: unknown;
  architecture?: unknown;
  description?: unknown;
  isFallbackAdapter?: unknown;
  type?: unknown;
}

/** Whether the adapter is a software renderer (no GPU): the fallback adapter, or a CPU-type one. */
export function isSoftwareAdapter(info: AdapterInfoLike | null | undefined): boolean {
  if (!info) return false;
  return info.isFallbackAdapter === true || (typeof info.type === 'string' && /\bcpu\b/i.test(info.type));
}

/** The adapter's vendor, architecture and description (`fallback` where the browser gives none). */
export function adapterName(info: AdapterInfoLike | null | undefined, fallback: string): string {
  const words = [info?.vendor, info?.architecture, info?.description].filter((w): w is string => typeof w === 'string' && w !== '');
  return words.length ? words.join(' ') : fallback;
}

/** A readable adapter label: browsers leave wgpu's `name` empty and expose vendor/architecture instead. */
export function adapterInfoLabel(info: AdapterInfoLike | null | undefined, fallback: string): string {
  const name = adapterName(info, fallback);
  return isSoftwareAdapter(info) ? `${name} (software)` : name;
}

/** The reason the page shows when Auto passed over the software adapter `name`. */
export function softwareAdapterReason(name: string): string {
  return (
    `The only WebGPU adapter here is a software one (${name}, no GPU), and it runs the studio slower than the CPU path, ` +
    'so Auto chose the CPU. Set Device to WebGPU to use the software adapter anyway.'
  );
}
