import { describe, expect, it } from 'vitest';
import { Store, canAct, enabledEdits, initialState, nextEditId, type EditEntry } from '../ui/store';

const entry = (id: string, enabled: boolean): EditEntry => ({
  id,
  enabled,
  recipe: { type: 'entry-compute', request: { kind: 'erase', method: 'uce', concepts: ['skull'], guides: [], preserve: [], params: {} } },
  info: { id, kind: 'edit', file: `${id}.safetensors`, method: 'uce', concepts: [], guides: [], preserve: [], hyperparameters: {}, tensors: [], values: 0, baseModel: '', warning: null, exportable: true },
});

describe('Store', () => {
  it('calls a subscriber at once and after every update', () => {
    const store = new Store(initialState('auto', {}));
    const busy: (string | null)[] = [];
    store.subscribe((s) => busy.push(s.busy));
    store.update((s) => (s.busy = 'load'));
    store.update((s) => (s.busy = null));
    expect(busy).toEqual([null, 'load', null]);
  });

  it('starts from a share link: the view and which fields the user set', () => {
    const s = initialState('cpu', { view: 'grid', scheduler: 'euler', gridPrompts: ['a star'], size: 32 });
    expect(s).toMatchObject({ backendChoice: 'cpu', view: 'grid', schedulerTouched: true, gridPromptsTouched: true, restore: { size: 32 } });
    expect(initialState('auto', {})).toMatchObject({ view: 'side', schedulerTouched: false, gridPromptsTouched: false });
  });

  it('derives what the controls show', () => {
    const store = new Store(initialState('auto', {}));
    expect(canAct(store.state)).toBe(false);
    store.update((s) => {
      s.engine = { status: 'ready', backend: 'cpu', label: 'CPU', title: '' };
      s.model = { name: 'tiny', id: 'tiny', source: { kind: 'url', id: 'tiny', name: 'tiny', base: '', files: [] }, info: {} as never };
      s.edits = [entry('e1', true), entry('e2', false)];
    });
    expect(canAct(store.state)).toBe(true);
    expect(enabledEdits(store.state).map((e) => e.id)).toEqual(['e1']);
    store.update((s) => (s.busy = 'generate'));
    expect(canAct(store.state)).toBe(false);
  });

  it('numbers variant entries e1, e2, …', () => {
    const store = new Store(initialState('auto', {}));
    expect([nextEditId(store), nextEditId(store)]).toEqual(['e1', 'e2']);
  });
});
