// Where each word of the prompt looks: DAAM's cross-attention heat maps (Tang et al. 2023) of the
// original and the edited image, side by side over the images, one word at a time. The maps and
// the IoU come from the engine (`pipeline::daam`, the same numbers `studio attention` writes);
// this panel only draws them, and lets the user choose the steps and the layers' resolutions the
// maps aggregate (attention-choice.ts), which the next run records.

import type { AttentionMaps } from '../../protocol';
import type { Ctx } from '../context';
import type { PageState, Result } from '../store';
import { canAct } from '../store';
import { byId } from '../dom';
import { heatColour, wordHeat } from '../heat';
import { describeChoice, readChoice } from '../attention-choice';

/** The word shown first: the one whose map covers the object best in the original image. */
export function defaultWord(maps: AttentionMaps): number {
  let best = 0;
  let bestIou = -1;
  maps.scores.forEach((s, i) => {
    if (s.iou != null && s.iou > bestIou) {
      bestIou = s.iou;
      best = i;
    }
  });
  return best;
}

export interface AttentionDeps {
  /** Runs Generate again with the form's settings and the attention maps on (the choice is in the store). */
  regenerate(): void;
}

export function createAttentionPanel(ctx: Pick<Ctx, 'store'>, deps: AttentionDeps) {
  const { store } = ctx;
  const el = {
    section: byId('attention'),
    note: byId('attention-note'),
    tokens: byId('attention-tokens'),
    panes: byId('attention-panes'),
    first: byId<HTMLInputElement>('attention-first'),
    last: byId<HTMLInputElement>('attention-last'),
    resolutions: byId('attention-resolutions'),
    apply: byId<HTMLButtonElement>('attention-apply'),
    reset: byId<HTMLButtonElement>('attention-reset'),
    error: byId('attention-choice-error'),
    enable: byId<HTMLInputElement>('attention-maps'),
  };
  /** The maps the choice controls were filled from. */
  let choiceOf: AttentionMaps | null = null;
  let shown: { original: Result | null; edited: Result | null; word: number | null } = { original: null, edited: null, word: null };

  /** The image with word `w`'s normalised heat over it (60 % heat where it is high, as the CLI's PNGs). */
  function draw(canvas: HTMLCanvasElement, r: Result, maps: AttentionMaps, w: number) {
    // Small images are enlarged with hard pixels, the heat over them smoothly (it is a 16×16 map on the classroom model).
    const k = Math.max(1, Math.round(256 / r.width));
    canvas.width = r.width * k;
    canvas.height = r.height * k;
    const g = canvas.getContext('2d');
    const image = document.createElement('canvas');
    image.width = r.width;
    image.height = r.height;
    const ig = image.getContext('2d');
    const small = document.createElement('canvas');
    small.width = maps.width;
    small.height = maps.height;
    const sg = small.getContext('2d');
    if (!g || !ig || !sg) return;
    ig.putImageData(new ImageData(new Uint8ClampedArray(r.rgba), r.width, r.height), 0, 0);
    g.imageSmoothingEnabled = false;
    g.drawImage(image, 0, 0, canvas.width, canvas.height);
    const heat = wordHeat(maps, w);
    const img = sg.createImageData(maps.width, maps.height);
    heat.forEach((h, i) => {
      const [cr, cg, cb] = heatColour(h);
      img.data.set([cr, cg, cb, Math.round(255 * (0.25 + 0.35 * h))], i * 4);
    });
    sg.putImageData(img, 0, 0);
    g.imageSmoothingEnabled = true;
    g.imageSmoothingQuality = 'high';
    g.drawImage(small, 0, 0, canvas.width, canvas.height);
  }

  function pane(kind: 'original' | 'edited', r: Result, w: number): HTMLElement {
    const maps = r.attention as AttentionMaps;
    const fig = document.createElement('figure');
    fig.className = 'attention-pane';
    const cap = document.createElement('figcaption');
    const tag = document.createElement('span');
    tag.className = kind === 'original' ? 'tag' : 'tag edited';
    tag.textContent = kind === 'original' ? 'Original' : 'Edited';
    const iou = document.createElement('span');
    iou.className = 'pane-note';
    iou.setAttribute('data-testid', 'attention-iou');
    iou.dataset.variant = kind;
    const score = maps.scores[w]?.iou;
    iou.dataset.iou = score == null ? '' : score.toFixed(4);
    iou.textContent = score == null ? 'IoU —' : `IoU with the object ${score.toFixed(2)}`;
    iou.title = 'Intersection over union of the map (normalised, above 0.4, as DAAM) with the pixels that are not background';
    cap.append(tag, iou);
    const canvas = document.createElement('canvas');
    canvas.setAttribute('data-testid', 'attention-map');
    canvas.dataset.variant = kind;
    canvas.dataset.word = maps.words[w]?.text ?? '';
    draw(canvas, r, maps, w);
    const frame = document.createElement('div');
    frame.className = 'frame';
    frame.append(canvas);
    fig.append(cap, frame);
    return fig;
  }

  /** The choice controls as the maps were made: their step window and each resolution, ticked when used. */
  function fillChoice(maps: AttentionMaps) {
    if (choiceOf === maps) return;
    choiceOf = maps;
    const last = Math.max(0, maps.runSteps - 1);
    for (const i of [el.first, el.last]) i.max = String(last);
    el.first.value = String(maps.stepWindow[0]);
    el.last.value = String(maps.stepWindow[1]);
    el.resolutions.replaceChildren(
      ...maps.resolutions.map((r) => {
        const label = document.createElement('label');
        label.title = `${r.layers} cross-attention layer${r.layers === 1 ? '' : 's'}, ${r.heads} heads, at 1/${r.factor} of the latent size`;
        const box = document.createElement('input');
        box.type = 'checkbox';
        box.checked = r.selected;
        box.value = String(r.factor);
        box.setAttribute('data-testid', 'attention-resolution');
        box.dataset.factor = String(r.factor);
        const text = document.createElement('span');
        text.textContent = `${r.width}×${r.height}`;
        label.append(box, text);
        return label;
      }),
    );
    el.error.hidden = true;
  }

  function choose(reset: boolean) {
    const maps = choiceOf;
    if (!maps || !canAct(store.state)) return;
    let selection = null;
    if (!reset) {
      const ticked = [...el.resolutions.querySelectorAll<HTMLInputElement>('input[type=checkbox]')].filter((b) => b.checked).map((b) => Number(b.value));
      const c = readChoice(el.first.value, el.last.value, ticked, maps.resolutions, maps.runSteps);
      if (!c.ok) {
        el.error.textContent = c.message;
        el.error.hidden = false;
        return;
      }
      selection = c.selection;
    }
    el.error.hidden = true;
    store.update((st) => (st.attentionSelection = selection));
    el.enable.checked = true;
    deps.regenerate();
  }
  el.apply.addEventListener('click', () => choose(false));
  el.reset.addEventListener('click', () => choose(true));

  function render(s: Readonly<PageState>) {
    const { original, edited } = s.results;
    const first = original?.attention ? original : edited?.attention ? edited : null;
    el.section.hidden = !first;
    el.apply.disabled = el.reset.disabled = !canAct(s);
    if (!first) return;
    const maps = first.attention as AttentionMaps;
    fillChoice(maps);
    const w = Math.min(s.attentionWord ?? defaultWord(maps), maps.words.length - 1);
    if (shown.original === original && shown.edited === edited && shown.word === w) return;
    shown = { original, edited, word: w };
    el.tokens.replaceChildren(
      ...maps.words.map((word, i) => {
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'token';
        b.setAttribute('data-testid', 'attention-token');
        b.dataset.word = String(i);
        b.setAttribute('aria-pressed', String(i === w));
        b.textContent = word.text;
        b.title = `tokens ${word.rows.map((r) => maps.tokens[r]).join(' + ')}`;
        b.addEventListener('click', () => store.update((st) => (st.attentionWord = i)));
        return b;
      }),
    );
    const panes: HTMLElement[] = [];
    if (original?.attention) panes.push(pane('original', original, w));
    if (edited?.attention) panes.push(pane('edited', edited, w));
    el.panes.replaceChildren(...panes);
    el.note.textContent =
      `Mean over ${maps.layers} cross-attention layers and ${maps.heads} heads, summed over ${maps.steps} steps ` +
      `(${describeChoice(maps.stepWindow, maps.runSteps, maps.resolutions)}), ` +
      `at ${maps.width}×${maps.height} (the latent size); each map is normalised to its own maximum. ` +
      `Recording took ${Math.round(maps.ms)} ms.`;
  }

  store.subscribe(render);
  return { render };
}
