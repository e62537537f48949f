// Heat maps as numbers and colours: a word's DAAM map (the mean of its tokens' rows, min-max
// normalised) and the colour ramp the page and `studio attention`'s PNGs share.

import type { AttentionMaps } from '../protocol';

/** Word `w`'s map `[height * width]`: the mean of its tokens' rows, normalised to [0, 1] (DAAM's `compute_word_heat_map`, `expand_image`). */
export function wordHeat(maps: AttentionMaps, w: number): Float32Array {
  const n = maps.height * maps.width;
  const out = new Float32Array(n);
  const rows = maps.words[w]?.rows ?? [];
  for (const r of rows) for (let i = 0; i < n; i++) out[i] += maps.maps[r * n + i];
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < n; i++) {
    out[i] /= Math.max(1, rows.length);
    lo = Math.min(lo, out[i]);
    hi = Math.max(hi, out[i]);
  }
  for (let i = 0; i < n; i++) out[i] = (out[i] - lo) / (hi - lo + 1e-8);
  return out;
}

/** Heat in [0, 1] → RGB: dark blue → red → yellow (`crates/cli/src/attention.rs::ramp`). */
export function heatColour(t: number): [number, number, number] {
  const x = Math.min(1, Math.max(0, t));
  const r = Math.min(1, x * 2);
  const g = Math.min(1, Math.max(0, x * 2 - 1));
  const b = Math.max(0, 0.6 - x * 1.2);
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}
