// Live equations: each method's update rule as MathML (rendered by the browser as mathematics),
// with its symbols bound to this entry's concepts and numbers, and a legend of the bindings.
// The rules are the ones crates/erasure implements (each file's module docs cite the paper's
// equation and the official code): UCE `uce.rs` (Gandikota et al. 2024), TIME `time.rs`
// (Eq. 5), RECE `rece.rs` (Eq. 8), SPEED `speed.rs` (Eqs. 9–12), MACE `mace_cfr.rs` (Eq. 8),
// SPM `facilitated_transport.rs` (Sec. 3.3), SLD `sld.rs` (Eqs. 3–8), SAFREE `safree.rs`
// (Eq. 2), LEACE `leace.rs` (Theorem 4.3), INLP `inlp.rs`, Ring-A-Bell `ring_a_bell.rs`.
// Text from the user (concept names) only ever becomes text nodes.

import type { EditAnatomy, EntryInfo, SldStepTerms } from '../protocol';
import { sldSummary } from './sld-terms';

const NS = 'http://www.w3.org/1998/Math/MathML';
type Kid = Element | string;

function node(tag: string, ...kids: Kid[]): Element {
  const e = document.createElementNS(NS, tag);
  for (const k of kids) e.append(typeof k === 'string' ? document.createTextNode(k) : k);
  return e;
}
const row = (...k: Kid[]) => node('mrow', ...k);
const mi = (s: string) => node('mi', s);
const mo = (s: string) => node('mo', s);
const mn = (s: string) => node('mn', s);
const sub = (a: Kid, b: Kid) => node('msub', typeof a === 'string' ? mi(a) : a, typeof b === 'string' ? mi(b) : b);
const sup = (a: Kid, b: Kid) => node('msup', typeof a === 'string' ? mi(a) : a, typeof b === 'string' ? mo(b) : b);
const subsup = (a: Kid, b: Kid, c: Kid) => node('msubsup', typeof a === 'string' ? mi(a) : a, typeof b === 'string' ? mi(b) : b, typeof c === 'string' ? mo(c) : c);
const frac = (a: Kid, b: Kid) => node('mfrac', a, b);
const paren = (...k: Kid[]) => row(mo('('), ...k, mo(')'));
const T = (a: Kid) => sup(a, '⊤');
const inv = (...k: Kid[]) => node('msup', paren(...k), row(mo('−'), mn('1')));
/** Lines of one equation, aligned left. */
const lines = (...rows: Element[]) => node('mtable', ...rows.map((r) => node('mtr', node('mtd', r))));
/** `Σ_{i∈S}`. */
const sum = (i: string, set: string) => node('munder', mo('∑'), row(mi(i), mo('∈'), mi(set)));
const W = () => mi('W');
const Wp = () => mi('W′');

/** A number as a person writes it: 0.5, 1, 1e-3. */
export function fmt(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'on' : 'off';
  if (typeof v !== 'number' || !Number.isFinite(v)) return String(v ?? '–');
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e5)) return v.toExponential(1).replace('e', '·10^');
  return String(Number(v.toPrecision(4)));
}

/** `{"skull", "pirate flag"}` (the empty prompt as ""). */
function set(items: string[]): string {
  return items.length ? `{${items.map((c) => `“${c}”`).join(', ')}}` : '∅';
}

/** What a run of this entry showed, for the bindings that depend on the prompt. */
export interface RunFacts {
  prompt?: string;
  /** The SPM's Facilitated Transport permeability for `prompt` (1 with FT off). */
  permeability?: number | null;
  /** The run's steering note (SAFREE's triggers and steps, …). */
  steering?: string | null;
  /** SLD's guidance terms at every step of that run (empty without SLD). */
  sldTerms?: SldStepTerms[];
}

export interface Equation {
  /** Which rule (the method's name). */
  method: string;
  title: string;
  math: Element;
  /** `symbol = value` lines, bound to this entry and run. */
  bindings: string[];
}

/** SLD's presets (crates/erasure/src/sld.rs `SldPreset::params`): guidance s_S, warm-up, threshold λ, momentum s_m, β_m. */
export const SLD_PRESET_PARAMS: Record<string, [number, number, number, number, number]> = {
  weak: [20, 15, 0, 0, 0],
  medium: [1000, 10, 0.01, 0.3, 0.4],
  strong: [2000, 7, 0.025, 0.5, 0.7],
  max: [5000, 0, 1, 0.5, 0.7],
};

function sizes(a: EditAnatomy | null | undefined): string[] {
  if (!a?.tensors.length) return [];
  const [r, c] = a.tensors[0].shape;
  const byProj = new Map<string, number[]>();
  for (const t of a.tensors) byProj.set(t.projection, [...(byProj.get(t.projection) ?? []), t.relative]);
  const change = [...byProj].map(([p, v]) => `${p} ${(100 * (v.reduce((x, y) => x + y, 0) / v.length)).toFixed(2)} %`).join(', ');
  const ranks = [...new Set(a.tensors.map((t) => t.rank))].sort((x, y) => x - y).join('–');
  return [
    `W: ${a.tensors.length} cross-attention projections, the first ${r} × ${c} (rows × text width)`,
    `‖W′ − W‖ / ‖W‖ (mean): ${change}; rank of W′ − W: ${ranks}`,
  ];
}

function hp(e: EntryInfo, k: string): unknown {
  return e.hyperparameters[k];
}

function closedForm(e: EntryInfo, a: EditAnatomy | null | undefined, withPreserve: boolean, title: string): Equation {
  const c = (i: string) => sub('c', i);
  const lhs = row(Wp(), mo('='));
  const se = withPreserve ? [sub('s', 'e')] : [];
  const sp = (...k: Kid[]) => (withPreserve ? [mo('+'), sub('s', 'p'), sum('j', 'P'), ...k] : []);
  const left = paren(mi('λ'), W(), mo('+'), ...se, sum('i', 'E'), subsup('v', 'i', '*'), T(c('i')), ...sp(W(), c('j'), T(c('j'))));
  const right = inv(mi('λ'), mi('I'), mo('+'), ...se, sum('i', 'E'), c('i'), T(c('i')), ...sp(c('j'), T(c('j'))));
  const v = row(subsup('v', 'i', '*'), mo('='), W(), subsup('c', 'i', '*'));
  const guides = a?.guides ?? (e.guides.length ? e.guides : e.concepts.map(() => ''));
  const bindings = [
    `E = ${set(e.concepts)} (cᵢ: each concept's last token before EOS)`,
    `c*ᵢ = ${set(guides)} (the guides; "" is the unconditional prompt)`,
    ...(withPreserve ? [`P = ${set(e.preserve)}`] : []),
    `λ = ${fmt(hp(e, 'lamb'))}`,
    ...(withPreserve ? [`sₑ = ${fmt(hp(e, 'erase_scale'))}, sₚ = ${fmt(hp(e, 'preserve_scale'))}`] : []),
    ...sizes(a),
  ];
  return { method: e.method, title, math: node('math', lines(row(lhs, left, right), v)), bindings };
}

/** The equation of an entry, bound to its numbers; null for an entry the studio has no rule for. */
/** The last run's SLD terms in a sentence (none without a run). */
function sldBinding(terms: SldStepTerms[] | undefined): string[] {
  if (!terms?.length) return [];
  const s = sldSummary(terms);
  return s.applied
    ? [`last run: ‖γ‖/‖ε_p − ε_u‖ = ${fmt(s.meanRelative)} on average over steps ${s.firstApplied}–${terms[terms.length - 1].step}, μ > 0 on ${(100 * s.meanCoverage).toFixed(1)} % of the latent`]
    : [`last run: ${s.total} steps, all within the warm-up: γ was never subtracted`];
}

export function equationFor(e: EntryInfo, a?: EditAnatomy | null, run: RunFacts = {}): Equation | null {
  const m = e.kind === 'edit' ? e.method.toLowerCase() : e.kind;
  const eps = (s: string) => sub('ε', s);
  switch (m) {
    case 'uce':
      return closedForm(e, a, true, "UCE's closed form (Gandikota et al., WACV 2024)");
    case 'time':
      return closedForm(e, a, false, "TIME's closed form (Orgad et al. 2023, Eq. 5)");
    case 'mace': {
      const c = (i: string) => sub('c', i);
      const math = node(
        'math',
        row(Wp(), mo('='), paren(mi('λ'), W(), mo('+'), sum('i', 'C'), W(), sub('e', 'i'), T(c('i')), mo('+'), W(), mi('P')), inv(mi('λ'), mi('I'), mo('+'), sum('i', 'C'), c('i'), T(c('i')), mo('+'), mi('P'))),
      );
      return { method: m, title: "MACE's closed-form refinement (Lu et al. 2024, Eq. 8)", math, bindings: [`concepts ${set(e.concepts)} → ${set(e.guides)}`, `λ = ${fmt(hp(e, 'lamb'))}`, `P: the preserved prompts' covariance, scale ${fmt(hp(e, 'preserve_scale'))}`, ...sizes(a)] };
    }
    case 'rece': {
      const math = node(
        'math',
        row(mi('c′'), mo('='), inv(mi('γ'), mi('I'), mo('+'), node('munder', mo('∑'), mi('l')), T(sub('W′', 'l')), sub('W′', 'l')), paren(node('munder', mo('∑'), mi('l')), T(sub('W′', 'l')), sub('W', 'l')), mi('c')),
      );
      return {
        method: m,
        title: 'RECE: the embedding that still regenerates the concept (Gong et al. 2024, Eq. 8), then UCE erases it',
        math,
        bindings: [`c: ${set(e.concepts)}`, `γ = ${fmt(hp(e, 'gamma'))}, epochs = ${fmt(hp(e, 'epochs'))}, λ = ${fmt(hp(e, 'lamb'))}`, ...sizes(a)],
      };
    }
    case 'speed': {
      const S = (x: string) => sub('S', x);
      const M = mi('M');
      const K = sub('K', mn('2'));
      const math = node(
        'math',
        row(mi('Δ'), W(), mo('='), W(), paren(S('at'), mo('−'), S('tt')), mi('P'), row(mo('['), mi('I'), mo('−'), M, K, inv(T(K), mi('P'), M, K, mo('+'), mi('λ'), mi('I')), T(K), mi('P'), mo(']')), M),
      );
      return { method: m, title: "SPEED's null-space constrained edit (Li et al. 2025, Eqs. 9–12)", math, bindings: [`targets ${set(e.concepts)} → anchors ${set(e.guides)}`, `P: null space of the retain set ${set(e.preserve)}, threshold ${fmt(hp(e, 'threshold'))}`, `λ = ${fmt(hp(e, 'lamb'))}`, ...sizes(a)] };
    }
    case 'spm':
    case 'lora': {
      const scale = hp(e, 'scale');
      const rank = hp(e, 'rank');
      const delta = row(mi('s'), mi('B'), mi('A'));
      if (m === 'lora')
        return { method: m, title: 'A LoRA adapter', math: node('math', row(Wp(), mo('='), W(), mo('+'), delta)), bindings: [`s = ${fmt(scale)}, rank r = ${fmt(rank)}`, `${e.tensors.length} modules`] };
      const gamma = row(mi('γ'), paren(mi('p')));
      const def = row(
        mo(',\u2003'),
        gamma,
        mo('='),
        node('munder', mo('max'), row(mi('c'), mo('∈'), mi('C'))),
        mo('max'),
        paren(mi('cos'), paren(sub('e', 'p'), mo(','), sub('e', 'c')), mo(','), frac(row(mo('|'), mi('T'), paren(mi('p')), mo('∩'), mi('T'), paren(mi('c')), mo('|')), row(mo('|'), mi('T'), paren(mi('c')), mo('|')))),
      );
      const p = run.permeability;
      return {
        method: m,
        title: 'SPM with Facilitated Transport (Lyu et al. 2024, Sec. 3.3)',
        math: node('math', row(Wp(), mo('='), W(), mo('+'), gamma, mi('s'), mi('B'), mi('A'), def)),
        bindings: [
          `C = ${set(e.concepts)}`,
          `s = ${fmt(scale)}, rank r = ${fmt(rank)}, ${e.tensors.length} modules`,
          run.prompt !== undefined && p != null ? `p = “${run.prompt}”: γ(p) = ${p.toFixed(4)}` : 'γ(p): generate with the SPM on to see it for your prompt',
        ],
      };
    }
    case 'sld': {
      const preset = String(hp(e, 'preset') ?? 'medium');
      const [sS, warm, lambda, sm, beta] = SLD_PRESET_PARAMS[preset] ?? SLD_PRESET_PARAMS.medium;
      const math = node(
        'math',
        node(
          'mtable',
          node('mtr', node('mtd', row(mi('ε̃'), mo('='), eps('u'), mo('+'), sub('s', 'g'), paren(eps('p'), mo('−'), eps('u'), mo('−'), mi('γ'))))),
          node('mtr', node('mtd', row(mi('γ'), mo('='), mi('μ'), mo('⊙'), paren(eps('S'), mo('−'), eps('u')), mo('+'), sub('s', 'm'), mi('ν')))),
          node('mtr', node('mtd', row(mi('μ'), mo('='), mi('clamp'), paren(sub('s', 'S'), mo('|'), eps('p'), mo('−'), eps('S'), mo('|'), mo(','), mn('1')), mo('\u2003where'), eps('p'), mo('−'), eps('S'), mo('<'), mi('λ')))),
        ),
      );
      return {
        method: m,
        title: 'Safe Latent Diffusion (Schramowski et al. 2023, Eqs. 3–8)',
        math,
        bindings: [
          `S = ${set(e.concepts)}`,
          `preset ${preset}: s_S = ${fmt(sS)}, γ subtracted from step ${warm} on (0-based; warm-up ${warm}), λ = ${fmt(lambda)}, s_m = ${fmt(sm)}, β_m = ${fmt(beta)}`,
          'ν ← β_m ν + (1 − β_m) γ at every step; s_g: the run\'s guidance',
          ...sldBinding(run.sldTerms),
        ],
      };
    }
    case 'safree': {
      const C = mi('C');
      const math = node(
        'math',
        node(
          'mtable',
          node('mtr', node('mtd', row(sub('p̃', 'i'), mo('='), paren(mi('I'), mo('−'), sub('P', 'C')), sub('p', 'i'), mo('\u2003for the trigger tokens'), mi('i'), mo(':'), sub('d', 'i'), mo('≥'), paren(mn('1'), mo('+'), mi('α')), node('munder', mi('mean'), row(mi('j'), mo('≠'), mi('i'))), sub('d', 'j')))),
          node('mtr', node('mtd', row(sub('P', 'C'), mo('='), C, sup(paren(T(C), C), '+'), T(C), mo(',\u2003'), sub('d', 'i'), mo('='), mo('‖'), paren(mi('I'), mo('−'), sub('P', 'C')), sub('p', 'i'), mo('‖')))),
        ),
      );
      return {
        method: m,
        title: "SAFREE's token projection (Yoon et al., ICLR 2025, Eq. 2)",
        math,
        bindings: [`C: the pooled embeddings of ${set(e.concepts)}`, `α = ${fmt(hp(e, 'alpha'))}${hp(e, 'allSteps') ? ', every step' : ', steps chosen by the self-validating filter'}`, run.steering ? `this run: ${run.steering}` : 'generate with it on to see which tokens trigger'],
      };
    }
    case 'leace':
      return {
        method: m,
        title: 'LEACE, least-squares concept erasure (Belrose et al. 2023, Theorem 4.3)',
        math: node('math', row(mi('x′'), mo('='), mi('x'), mo('−'), sup('W', '+'), mi('U'), T(mi('U')), W(), paren(mi('x'), mo('−'), mi('μ')), mo(',\u2003'), W(), mo('='), sup(sub('Σ', 'xx'), '−1/2'))),
        bindings: [`z = 1: ${set(e.concepts)}; z = 0: ${fmt(hp(e, 'others'))} other prompts`, `rank of UUᵀ: ${fmt(hp(e, 'rank'))} of ${fmt(hp(e, 'dText'))} dimensions`],
      };
    case 'inlp':
      return {
        method: m,
        title: 'INLP, iterative nullspace projection (Ravfogel et al. 2020)',
        math: node('math', row(mi('x′'), mo('='), paren(mi('I'), mo('−'), sub('P', 'R'), paren(sub('w', mn('1')), mo(','), mo('…'), mo(','), sub('w', 'n'))), mi('x'))),
        bindings: [`concept ${set(e.concepts)}`, `n = ${fmt(hp(e, 'rank'))} classifier directions removed`],
      };
    case 'ring-a-bell':
      return {
        method: m,
        title: "Ring-A-Bell's concept probe (Tsai et al. 2024)",
        math: node('math', row(mi('ẽ'), mo('='), mi('e'), mo('+'), mi('η'), mi('v'), mo(',\u2003'), mi('v'), mo('='), mi('mean'), paren(mi('e'), paren(mi('with')), mo('−'), mi('e'), paren(mi('without'))))),
        bindings: [`η = ${fmt(hp(e, 'eta'))}`, `pairs: ${e.concepts.length ? set(e.concepts) : e.file}`],
      };
    default:
      if (e.kind !== 'edit') return null;
      return { method: m, title: `A weight edit (${e.method})`, math: node('math', row(Wp(), mo('='), W(), mo('+'), mi('Δ'), W())), bindings: sizes(a) };
  }
}
