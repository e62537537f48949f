// The erase panel's list of variant entries (edits, SPM / LoRA adapters, steering): on / off,
// export, remove; and the Facilitated Transport switch the SPMs use.

import { formatBytes } from '../logic';
import { variantLabel, variantSub } from '../variants';
import type { Ctx } from '../context';
import type { EditEntry } from '../store';
import { byId, download, setStatus } from '../dom';

/** The row title of an entry (also the grid's column header). */
export function editLabel(e: EditEntry): string {
  const v = variantLabel(e.info);
  if (v) return v;
  const c = e.info.concepts.length ? e.info.concepts.join(', ') : e.info.file;
  return e.info.method && e.info.method !== 'unknown' ? `${e.info.method.toUpperCase()}: ${c}` : c;
}

export function createVariantList(ctx: Ctx) {
  const { store, engine } = ctx;
  const el = {
    list: byId<HTMLUListElement>('edit-list'),
    ftField: byId('ft-field'),
    ft: byId<HTMLInputElement>('ft'),
  };

  function setEnabled(e: EditEntry, enabled: boolean) {
    store.update((s) => (s.edits = s.edits.map((x) => (x.id === e.id ? { ...x, enabled } : x))));
    setStatus(`${editLabel(e)} ${enabled ? 'on' : 'off'}: the next generation ${enabled ? 'uses' : 'leaves out'} it (no recompute needed).`);
  }

  function remove(e: EditEntry) {
    void engine.request({ type: 'entry-remove', id: e.id }).then((m) => {
      if (m?.status === 'error') ctx.failed(m);
    });
    store.update((s) => (s.edits = s.edits.filter((x) => x.id !== e.id)));
  }

  /** The entry's file from the engine, saved as a download. */
  async function exportFile(e: EditEntry) {
    const m = await engine.request({ type: 'entry-export', id: e.id });
    if (m?.status === 'error') return ctx.failed(m);
    if (m?.status === 'exported') download(m.data, m.file, 'application/octet-stream');
  }

  function row(e: EditEntry, i: number): HTMLLIElement {
    const li = document.createElement('li');
    li.className = e.enabled ? '' : 'off';
    li.setAttribute('data-testid', 'edit-row');
    li.dataset.id = e.id;
    const sw = document.createElement('label');
    sw.className = 'switch';
    sw.title = e.enabled ? 'On: used for the edited image. Click to turn off' : 'Off. Click to turn on';
    const cb = document.createElement('input');
    cb.type = 'checkbox';
    cb.checked = e.enabled;
    cb.setAttribute('data-testid', `edit-toggle-${i}`);
    cb.setAttribute('aria-label', `Use edit ${editLabel(e)}`);
    cb.addEventListener('change', () => setEnabled(e, cb.checked));
    sw.append(cb, document.createElement('span'));
    const title = document.createElement('span');
    title.className = 'title';
    title.textContent = editLabel(e);
    const actions = document.createElement('span');
    actions.className = 'row-actions';
    const exp = document.createElement('button');
    exp.type = 'button';
    exp.className = 'link';
    exp.textContent = 'Export';
    exp.setAttribute('data-testid', `edit-export-${i}`);
    exp.addEventListener('click', () => void exportFile(e));
    exp.hidden = !e.info.exportable;
    const rm = document.createElement('button');
    rm.type = 'button';
    rm.className = 'link';
    rm.textContent = 'Remove';
    rm.setAttribute('data-testid', `edit-remove-${i}`);
    rm.addEventListener('click', () => remove(e));
    const why = document.createElement('button');
    why.type = 'button';
    why.className = 'link';
    why.textContent = 'Explain';
    why.title = e.info.kind === 'edit' ? 'Its equation and its anatomy: how much each layer changed, and how the concept’s keys moved' : 'Its equation with this entry’s numbers';
    why.setAttribute('data-testid', `edit-explain-${i}`);
    why.addEventListener('click', () => store.update((s) => (s.explain = { id: e.id, anatomy: null, state: 'pending' })));
    actions.append(why, exp, rm);
    const sub = document.createElement('span');
    sub.className = 'sub';
    const layers = e.info.tensors.length;
    sub.textContent =
      variantSub(e.info) ??
      `${e.info.file} · ${layers} tensor${layers === 1 ? '' : 's'} (${formatBytes(e.info.values * 4)} f32)${e.info.preserve.length ? ` · preserves ${e.info.preserve.join(', ')}` : ''}`;
    li.append(sw, title, actions, sub);
    if (e.info.warning) {
      const w = document.createElement('span');
      w.className = 'warn';
      w.textContent = `⚠ ${e.info.warning}`;
      li.append(w);
    }
    return li;
  }

  let shown: readonly EditEntry[] | null = null;
  store.subscribe((s) => {
    if (s.edits !== shown) {
      shown = s.edits;
      el.list.replaceChildren(...s.edits.map(row));
      el.ftField.hidden = !s.edits.some((e) => e.info.kind === 'spm');
    }
    for (const input of el.list.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, button')) input.disabled = s.busy !== null;
  });

  /** Facilitated Transport for the SPMs (the checkbox under the list). */
  return { ft: () => el.ft.checked };
}
