// Comparing images: the difference heat-map of two same-size RGBA images, and the variants of
// the grid mode.

export interface Diff {
  /** RGBA heat-map: black (equal) → red → yellow → white (|Δ| ≥ `scale`). */
  rgba: Uint8ClampedArray;
  /** The |Δ| shown as white, in 0–255 units. */
  scale: number;
  /** Mean over pixels of the mean |Δ| over R, G, B, in 0–255 units. */
  mean: number;
  max: number;
  /** Pixels whose mean |Δ| exceeds 8/255. */
  changed: number;
}

/**
 * `scale`: the |Δ| drawn white; by default the largest difference (at least 16, so that noise-level
 * differences stay dark), which makes small edits visible; the stats say what white means.
 */
export function diffHeatmap(a: Uint8ClampedArray, b: Uint8ClampedArray, width: number, height: number, scale?: number): Diff {
  const n = width * height;
  if (a.length !== n * 4 || b.length !== n * 4) throw new Error(`images of different sizes (${a.length / 4} and ${b.length / 4} pixels)`);
  const rgba = new Uint8ClampedArray(n * 4);
  const d = new Float32Array(n);
  let sum = 0;
  let max = 0;
  let changed = 0;
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    d[i] = (Math.abs(a[o] - b[o]) + Math.abs(a[o + 1] - b[o + 1]) + Math.abs(a[o + 2] - b[o + 2])) / 3;
    sum += d[i];
    if (d[i] > max) max = d[i];
    if (d[i] > 8) changed++;
  }
  const s = scale ?? Math.max(16, max);
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    // A three-segment ramp over [0, s]: dark → red → yellow → white.
    const t = Math.min(1, d[i] / s) * 3;
    rgba[o] = Math.round(255 * Math.min(1, t));
    rgba[o + 1] = Math.round(255 * Math.min(1, Math.max(0, t - 1)));
    rgba[o + 2] = Math.round(255 * Math.min(1, Math.max(0, t - 2)));
    rgba[o + 3] = 255;
  }
  return { rgba, scale: s, mean: n ? sum / n : 0, max, changed: n ? changed / n : 0 };
}

export interface Variant {
  label: string;
  /** Edit ids active for it. */
  edits: string[];
}

/** Grid columns: the original, each enabled edit alone, and all of them together when there are several. */
export function gridVariants(enabled: { id: string; label: string }[]): Variant[] {
  const v: Variant[] = [{ label: 'Original', edits: [] }];
  for (const e of enabled) v.push({ label: e.label, edits: [e.id] });
  if (enabled.length > 1) v.push({ label: 'All edits', edits: enabled.map((e) => e.id) });
  return v;
}

/** Prompts the grid starts with: the erased concept(s) and neighbours (classroom model world). */
export function defaultGridPrompts(modelId: string | null, concepts: string[]): string[] {
  const erased = concepts.length ? concepts.map((c) => (/^(a|an|the)\s/i.test(c) ? c : `a ${c}`)) : [];
  if (modelId === 'classroom') return [...(erased.length ? erased : ['a skull', 'the pirate-flag symbol']), 'a red circle', 'a blue star on a striped background'];
  return [...(erased.length ? erased : ['a photo of a cat']), 'a photo of a dog', 'a landscape painting'];
}
