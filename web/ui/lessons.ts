// Guided lessons: a few steps each that set the page up (the same fields and buttons a student
// would use, so the page shows what was set), run, and ask the student to look at one view. The
// built-in ones run on the bundled classroom model; a teacher turns the page as it is into a step
// (`captureStep`) and exports a lesson as a file or a link (`#lesson=…`, base64url JSON).
// This file is data and pure functions; web/ui/panels/lessons.ts runs them.

import type { EntryRequest } from '../protocol';

export type LessonAction =
  /** Loads a bundled model unless it is the one loaded. */
  | { model: string }
  /** Removes every entry, turns the teaching views off, shows original vs edited. */
  | { reset: true }
  /** An input, textarea or select by `data-testid`. */
  | { set: string; value: string }
  | { check: string; on: boolean }
  /** A button by `data-testid` (with `text`: the one of those whose text is this). */
  | { click: string; text?: string }
  /** Computes a variant entry, on for the next run (what the erase panel's button asks for). */
  | { entry: EntryRequest }
  /** Generate, and wait for every image. */
  | { generate: true }
  /** The Explain of entry row `explain` (0-based), and wait for its anatomy. */
  | { explain: number };

export interface LessonStep {
  title: string;
  /** What to look at and think about (plain text). */
  text: string;
  /** The `data-testid` of the view to look at (scrolled to and outlined). */
  look?: string;
  actions: LessonAction[];
}

export interface Lesson {
  id: string;
  title: string;
  summary: string;
  steps: LessonStep[];
}

export const LESSON_FORMAT = 'erasure-studio-lesson/1';

/** The classroom settings every built-in lesson starts from (studio.json's guidance and steps). */
const SETUP: LessonAction[] = [
  { model: 'classroom' },
  { reset: true },
  { set: 'seed', value: '3' },
  { set: 'steps', value: '25' },
  { set: 'guidance', value: '3' },
  { set: 'size', value: '64' },
  { set: 'scheduler', value: 'ddim' },
  { set: 'negative-prompt', value: '' },
];

/**
 * UCE on "skull" as its first code did it (`tokens=legacy`: every token from the concept's last
 * word through the padding): on the classroom model the concept also rides on the EOS and padding
 * embeddings, and editing the last token alone (the current code's default) leaves the skull in
 * place — lesson 2 shows both.
 */
const UCE_SKULL: LessonAction = { entry: { kind: 'erase', method: 'uce', concepts: ['skull'], guides: [], preserve: [], params: { tokens: 'legacy' } } };
const UCE_SKULL_LAST: LessonAction = { entry: { kind: 'erase', method: 'uce', concepts: ['skull'], guides: [], preserve: [], params: {} } };

export const LESSONS: Lesson[] = [
  {
    id: 'where-skull',
    title: 'Where does the model draw the skull?',
    summary: 'Cross-attention maps: which pixels listen to which word.',
    steps: [
      {
        title: 'A skull, and what each word looks at',
        text: 'The model drew “a skull”. Under the image, each word of the prompt has a heat map: the cross-attention from the image’s pixels to that word’s tokens, summed over every layer, head and step (DAAM). Which word is brightest where the skull is?',
        look: 'attention',
        actions: [...SETUP, { set: 'prompt', value: 'a skull' }, { check: 'attention-maps', on: true }, { generate: true }],
      },
      {
        title: 'Click a word',
        text: 'Now the map of “skull” shows. The number under it is the IoU of the map (thresholded at 0.4) with the object the image shows: 1 would be a perfect outline. A small model’s maps are coarse (16 × 16 latents); what does it attend to instead?',
        look: 'attention-map',
        actions: [{ click: 'attention-token', text: 'skull' }],
      },
      {
        title: 'Another word, another place',
        text: 'A red triangle on a striped background: compare the maps of “triangle” and “striped”. Words that name the object and words that name the background should light up different pixels.',
        look: 'attention',
        actions: [{ set: 'prompt', value: 'a red triangle on a blue striped background' }, { generate: true }, { click: 'attention-token', text: 'triangle' }],
      },
    ],
  },
  {
    id: 'erase-uce',
    title: 'Erase the skull with UCE',
    summary: 'A closed-form edit of the cross-attention keys and values.',
    steps: [
      {
        title: 'Before: the original model',
        text: 'The original model draws the skull for “a skull”. Next, UCE rewrites every cross-attention key and value projection so that “skull” maps where the empty prompt maps: one least-squares solve per layer, no training.',
        look: 'panes',
        actions: [...SETUP, { set: 'prompt', value: 'a skull' }, { generate: true }],
      },
      {
        title: 'Erase it: the last token only',
        text: 'UCE’s current code edits one embedding: the concept’s last token before EOS. Same seed, edited on the right, their difference beside it. Is the skull gone? On this small model, hardly: the text encoder also spreads “skull” over the end-of-text and padding tokens, which this edit leaves alone.',
        look: 'panes',
        actions: [UCE_SKULL_LAST, { generate: true }],
      },
      {
        title: 'Erase it: the word and everything after it',
        text: 'UCE’s first code edited every token from the concept’s last word through the padding (tokens=legacy). Now the skull is gone. Which tokens carry a concept depends on the text encoder: that is why the two versions of the official code differ.',
        look: 'panes',
        actions: [{ reset: true }, { set: 'prompt', value: 'a skull' }, UCE_SKULL, { generate: true }],
      },
      {
        title: 'What did UCE change?',
        text: 'UCE’s closed form with this edit’s numbers, and how much each layer changed: ‖ΔW‖/‖W‖ per block for the keys (to_k) and values (to_v). The rank of ΔW is the number of text directions the edit moved. The table shows the skull’s key and value moving onto the empty prompt’s (cosine after → 1).',
        look: 'edit-anatomy',
        actions: [{ explain: 0 }],
      },
    ],
  },
  {
    id: 'neighbours',
    title: 'What else did we break? Neighbours',
    summary: 'An erasure should leave other concepts alone.',
    steps: [
      {
        title: 'A grid of prompts × variants',
        text: 'Each row is a prompt, each column a variant (the original, then UCE on “skull”). The skull should go; the triangle and the star should stay as they were. Compare the rows that never asked for a skull: did their shapes, colours or backgrounds change?',
        look: 'grid',
        actions: [...SETUP, UCE_SKULL, { click: 'view-grid' }, { set: 'grid-prompts', value: 'a skull\na red triangle\na yellow star on a green background' }, { generate: true }],
      },
      {
        title: 'Preserve the neighbours',
        text: 'UCE has a second term for concepts to keep: s_p Σ W c_j c_jᵀ holds their keys and values where they were. The same erasure with “triangle” and “star” preserved: are the neighbours back, and is the skull still gone?',
        look: 'grid',
        actions: [{ reset: true }, { entry: { kind: 'erase', method: 'uce', concepts: ['skull'], guides: [], preserve: ['a red triangle', 'a yellow star on a green background'], params: { tokens: 'legacy' } } }, { click: 'view-grid' }, { generate: true }],
      },
      {
        title: 'Words that mean a skull',
        text: 'Erasing the word is not always erasing the idea: “a cranium” and “the pirate symbol” ask for a skull without the word “skull”. Did UCE on “skull” remove them too?',
        look: 'grid',
        actions: [{ set: 'grid-prompts', value: 'a cranium\nthe pirate symbol\na red triangle' }, { generate: true }],
      },
    ],
  },
  {
    id: 'ring-a-bell',
    title: 'Break the erasure with Ring-A-Bell',
    summary: 'An attack that adds a concept vector to the prompt’s embedding.',
    steps: [
      {
        title: 'The erased model',
        text: 'UCE erased the skull (lesson 2). The prompt “a star” asks for no skull, and neither image has one. Next we attack the erased model.',
        look: 'panes',
        actions: [...SETUP, { set: 'prompt', value: 'a star' }, UCE_SKULL, { generate: true }],
      },
      {
        title: 'Add the skull direction back',
        text: 'Ring-A-Bell takes prompt pairs with and without the concept, averages the difference of their text embeddings into a concept vector v, and adds η·v (η = 3) to the prompt’s embedding. The edited image has UCE and the probe on: what comes back although the prompt says “a star”, and what does a push this large do to the rest of the image?',
        look: 'panes',
        actions: [{ entry: { kind: 'ring-a-bell', pairs: 'a skull|a star; a big skull|a big star; a small skull|a small star; a skull on a red background|a star on a red background', eta: 3 } }, { generate: true }],
      },
      {
        title: 'The probe’s equation',
        text: 'The attack never touches the weights: it moves the text embedding. UCE edited W for the embedding of “skull”; a nearby embedding that is not the word can still reach the concept.',
        look: 'edit-anatomy',
        actions: [{ explain: 1 }],
      },
    ],
  },
  {
    id: 'weights-vs-steering',
    title: 'Weights vs inference-time steering',
    summary: 'UCE edits weights; SAFREE projects embeddings; SLD steers the noise.',
    steps: [
      {
        title: 'Three ways to say “no skull”',
        text: 'Columns: the original, UCE (an edit of the weights), SAFREE (projects the prompt’s tokens away from the skull’s subspace, no weights changed) and SLD (a third UNet pass per step that pushes the noise away from “skull”). Which removes the skull, and which leaves the triangle alone?',
        look: 'grid',
        actions: [
          ...SETUP,
          UCE_SKULL,
          { entry: { kind: 'steer', safree: 'skull' } },
          { entry: { kind: 'steer', sld: 'strong', sldConcept: 'skull' } },
          { click: 'view-grid' },
          { set: 'grid-prompts', value: 'a skull\na red triangle' },
          { generate: true },
        ],
      },
      {
        title: 'SLD’s guidance',
        text: 'SLD changes classifier-free guidance: where the prompt’s prediction and the skull’s differ little (μ), the noise is pushed away from the skull’s direction, after a warm-up and with momentum. Nothing in the model is changed, and every step costs a third UNet pass.',
        look: 'edit-anatomy',
        actions: [{ explain: 2 }],
      },
      {
        title: 'SAFREE’s projection',
        text: 'SAFREE finds the prompt tokens close to the skull’s subspace (the triggers) and projects them out, for as many steps as its self-validating filter decides.',
        look: 'edit-anatomy',
        actions: [{ explain: 1 }],
      },
    ],
  },
  {
    id: 'timeline',
    title: 'When does the skull disappear?',
    summary: 'The denoising timeline of the original and the edited model.',
    steps: [
      {
        title: 'x̂₀ at every step',
        text: 'At every step the scheduler predicts the final image x̂₀ from the noisy latents. Scrub through the steps: the original’s skull and the edited image start from the same noise. At which step do they part, and what does the difference curve show?',
        look: 'timeline',
        actions: [...SETUP, { set: 'prompt', value: 'a skull' }, UCE_SKULL, { check: 'timeline-on', on: true }, { generate: true }],
      },
    ],
  },
];

/** The page's fields a captured step sets again (generation, views, the erase form). */
export const CAPTURED_FIELDS = ['prompt', 'negative-prompt', 'seed', 'steps', 'guidance', 'size', 'scheduler', 'grid-prompts'] as const;
export const CAPTURED_CHECKS = ['attention-maps', 'timeline-on'] as const;

/** What `captureStep` reads from the page. */
export interface PageSnapshot {
  model: string | null;
  fields: Record<string, string>;
  checks: Record<string, boolean>;
  view: 'side' | 'grid';
  /** The computed entries that are on, in order (files added from disk cannot be part of a link). */
  entries: EntryRequest[];
  skipped: number;
}

/** A step that brings the page back to `snap` and generates. */
export function captureStep(snap: PageSnapshot, title: string, text: string, look?: string): LessonStep {
  const actions: LessonAction[] = [];
  if (snap.model) actions.push({ model: snap.model });
  actions.push({ reset: true });
  for (const [k, v] of Object.entries(snap.fields)) actions.push({ set: k, value: v });
  for (const e of snap.entries) actions.push({ entry: e });
  if (snap.view === 'grid') actions.push({ click: 'view-grid' });
  for (const [k, on] of Object.entries(snap.checks)) if (on) actions.push({ check: k, on });
  actions.push({ generate: true });
  const note = snap.skipped ? ` (${snap.skipped} entr${snap.skipped === 1 ? 'y' : 'ies'} from files left out: add them by hand)` : '';
  return { title, text: text + note, look, actions };
}

function b64url(bytes: Uint8Array): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

function fromB64url(s: string): Uint8Array {
  const bin = atob(s.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(bin, (c) => c.charCodeAt(0));
}

/** The lesson as a file's text. */
export function lessonJson(l: Lesson): string {
  return JSON.stringify({ format: LESSON_FORMAT, ...l }, null, 2);
}

/** `#lesson=…`: the lesson in the URL's hash (nothing leaves the machine; the link carries it). */
export function lessonHash(l: Lesson): string {
  return `lesson=${b64url(new TextEncoder().encode(JSON.stringify({ format: LESSON_FORMAT, ...l })))}`;
}

const ACTION_KEYS = ['model', 'reset', 'set', 'check', 'click', 'entry', 'generate', 'explain'];

/** A lesson from a file or link, checked; the reason when it is not one. */
export function parseLesson(text: string): { ok: true; lesson: Lesson } | { ok: false; message: string } {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return { ok: false, message: 'this is not a lesson file: it is not JSON (export one with “Export lesson”)' };
  }
  const o = v as Record<string, unknown>;
  if (typeof o !== 'object' || o === null || o.format !== LESSON_FORMAT)
    return { ok: false, message: `this is not a lesson file: its "format" is not "${LESSON_FORMAT}"` };
  if (typeof o.title !== 'string' || !o.title.trim()) return { ok: false, message: 'the lesson has no title' };
  if (!Array.isArray(o.steps) || o.steps.length === 0 || o.steps.length > 50) return { ok: false, message: 'a lesson has 1 to 50 steps' };
  for (const [i, st] of (o.steps as Record<string, unknown>[]).entries()) {
    if (typeof st !== 'object' || st === null || typeof st.title !== 'string' || typeof st.text !== 'string' || !Array.isArray(st.actions))
      return { ok: false, message: `step ${i + 1} needs a title, a text and a list of actions` };
    for (const a of st.actions as Record<string, unknown>[]) {
      const key = typeof a === 'object' && a !== null ? Object.keys(a).find((k) => ACTION_KEYS.includes(k)) : undefined;
      if (!key) return { ok: false, message: `step ${i + 1} has an action the studio does not know: ${JSON.stringify(a)}` };
    }
  }
  const id = typeof o.id === 'string' && /^[\w-]{1,64}$/.test(o.id) ? o.id : 'imported';
  return { ok: true, lesson: { id, title: o.title, summary: typeof o.summary === 'string' ? o.summary : '', steps: o.steps as LessonStep[] } };
}

/** The lesson a `#lesson=…` hash carries, if any. */
export function lessonFromHash(hash: string): ReturnType<typeof parseLesson> | null {
  const v = new URLSearchParams(hash.replace(/^#/, '')).get('lesson');
  if (v === null) return null;
  try {
    return parseLesson(new TextDecoder().decode(fromB64url(v)));
  } catch {
    return { ok: false, message: 'the link’s lesson is damaged (it was cut short?): ask for the link again' };
  }
}
