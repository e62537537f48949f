// The lessons card: the built-in lessons (web/ui/lessons.ts) and imported ones, started with one
// click and walked through with "Next". Each step's actions go through the page's own fields and
// buttons (so the student sees what was set), then the step's text says what to look at and the
// view is outlined. A teacher turns the page as it is into a step of "My lesson" and exports it as
// a file or a `#lesson=…` link; a lesson file or link opens here.

import type { Ctx } from '../context';
import type { EntryRequest } from '../../protocol';
import { canAct, type PageState } from '../store';
import { byId, clearError, download, setStatus, showError } from '../dom';
import {
  CAPTURED_CHECKS,
  CAPTURED_FIELDS,
  LESSONS,
  captureStep,
  lessonFromHash,
  lessonHash,
  lessonJson,
  parseLesson,
  type Lesson,
  type LessonAction,
  type PageSnapshot,
} from '../lessons';

export interface LessonDeps {
  /** Computes a variant entry as the erase panel's button does (resolves when it is in the list or failed). */
  compute(request: EntryRequest): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const frame = () => new Promise((r) => requestAnimationFrame(() => r(null)));

function q<T extends HTMLElement = HTMLElement>(testid: string, text?: string): T | null {
  const all = Array.from(document.querySelectorAll<T>(`[data-testid="${CSS.escape(testid)}"]`));
  return (text === undefined ? all[0] : all.find((e) => e.textContent?.trim() === text || e.textContent?.includes(text))) ?? null;
}

export function createLessons(ctx: Ctx, deps: LessonDeps) {
  const { store } = ctx;
  const el = {
    list: byId<HTMLOListElement>('lesson-list'),
    start: byId<HTMLButtonElement>('lesson-start'),
    step: byId('lesson-step'),
    progress: byId('lesson-progress'),
    title: byId('lesson-step-title'),
    text: byId('lesson-step-text'),
    next: byId<HTMLButtonElement>('lesson-next'),
    stop: byId<HTMLButtonElement>('lesson-stop'),
    note: byId<HTMLTextAreaElement>('lesson-note'),
    capture: byId<HTMLButtonElement>('lesson-capture'),
    export: byId<HTMLButtonElement>('lesson-export'),
    link: byId<HTMLInputElement>('lesson-link'),
    importInput: byId<HTMLInputElement>('lesson-import'),
  };
  const lessons: Lesson[] = [...LESSONS];
  let selected = lessons[0].id;
  /** The lesson running and its step (0-based), or null. */
  let running: { lesson: Lesson; step: number; acting: boolean; done: boolean } | null = null;
  /** The lesson a teacher builds from the page. */
  let mine: Lesson | null = null;

  function renderList() {
    el.list.replaceChildren(
      ...lessons.map((l, i) => {
        const li = document.createElement('li');
        const b = document.createElement('button');
        b.type = 'button';
        b.className = 'lesson-item';
        b.setAttribute('data-testid', 'lesson-item');
        b.dataset.lesson = l.id;
        b.setAttribute('aria-pressed', String(l.id === selected));
        const t = document.createElement('strong');
        t.textContent = `${i + 1}. ${l.title}`;
        const sub = document.createElement('span');
        sub.textContent = `${l.summary} · ${l.steps.length} step${l.steps.length === 1 ? '' : 's'}`;
        b.append(t, sub);
        b.addEventListener('click', () => {
          selected = l.id;
          renderList();
        });
        li.append(b);
        return li;
      }),
    );
  }

  /** Until nothing runs and the page may act; throws the error box's text if a failure shows. */
  async function idle(timeout = 900_000) {
    await frame();
    await frame();
    const t0 = performance.now();
    for (;;) {
      const err = byId('error');
      if (!err.hidden) throw new Error(err.textContent?.replace(/\s+/g, ' ').trim() ?? 'failed');
      const s = store.state;
      if (canAct(s) && s.run.current === null && s.run.jobs.length === 0) return;
      if (performance.now() - t0 > timeout) throw new Error('the page stayed busy for too long');
      await sleep(50);
    }
  }

  function setValue(testid: string, value: string) {
    const e = q<HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement>(testid);
    if (!e) throw new Error(`the page has no field ${testid}`);
    if (e instanceof HTMLSelectElement && !Array.from(e.options).some((o) => o.value === value)) throw new Error(`${testid} has no option ${value} for this model`);
    e.value = value;
    e.dispatchEvent(new Event('input', { bubbles: true }));
    e.dispatchEvent(new Event('change', { bubbles: true }));
  }

  async function act(a: LessonAction) {
    if ('model' in a) {
      if (store.state.model?.id === a.model) return;
      setValue('model-select', a.model);
      await sleep(100);
      await idle();
      if (store.state.model?.id !== a.model) throw new Error(`the lesson needs the model ${a.model}, which did not load`);
    } else if ('reset' in a) {
      while (store.state.edits.length) {
        const n = store.state.edits.length;
        q('edit-remove-0')?.click();
        await frame();
        if (store.state.edits.length === n) throw new Error('an entry could not be removed');
      }
      for (const c of ['attention-maps', 'timeline-on']) {
        const e = q<HTMLInputElement>(c);
        if (e?.checked) e.click();
      }
      q<HTMLInputElement>('view-side')?.click();
      store.update((s) => (s.explain = null));
    } else if ('set' in a) setValue(a.set, a.value);
    else if ('check' in a) {
      const e = q<HTMLInputElement>(a.check);
      if (!e) throw new Error(`the page has no switch ${a.check}`);
      if (e.checked !== a.on) e.click();
    } else if ('click' in a) {
      const e = q<HTMLButtonElement>(a.click, a.text);
      if (!e) throw new Error(`the page shows no ${a.click}${a.text ? ` “${a.text}”` : ''}`);
      e.click();
    } else if ('entry' in a) {
      const n = store.state.edits.length;
      await deps.compute(a.entry);
      await idle();
      if (store.state.edits.length !== n + 1) throw new Error('the step’s entry was not added');
    } else if ('generate' in a) {
      const b = q<HTMLButtonElement>('generate');
      if (!b || b.disabled) throw new Error('Generate is not available');
      b.click();
      await idle();
    } else if ('explain' in a) {
      const b = q<HTMLButtonElement>(`edit-explain-${a.explain}`);
      if (!b) throw new Error(`there is no entry ${a.explain + 1} to explain`);
      b.click();
      const t0 = performance.now();
      while (store.state.explain?.state === 'pending' && store.state.edits.find((e) => e.id === store.state.explain?.id)?.info.kind === 'edit') {
        if (performance.now() - t0 > 60_000) throw new Error('the anatomy did not come');
        await sleep(30);
      }
    }
    await idle();
  }

  function outline(testid?: string) {
    for (const e of document.querySelectorAll('.lesson-look')) e.classList.remove('lesson-look');
    if (!testid) return;
    const e = q(testid);
    if (e) {
      e.classList.add('lesson-look');
      e.scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    }
  }

  function render() {
    el.step.hidden = !running;
    el.start.disabled = running?.acting ?? false;
    // While a lesson runs its step stands where the list was (the list comes back when it ends).
    el.list.hidden = el.start.hidden = !!running && !running.done;
    if (!running) return outline();
    const { lesson, step, acting, done } = running;
    const st = lesson.steps[step];
    el.step.dataset.lesson = lesson.id;
    el.step.dataset.step = String(step + 1);
    el.step.dataset.steps = String(lesson.steps.length);
    el.step.dataset.done = String(done);
    el.step.dataset.acting = String(acting);
    el.progress.textContent = done ? `${lesson.title}: done` : `${lesson.title} · step ${step + 1} of ${lesson.steps.length}`;
    el.title.textContent = done ? 'Lesson complete' : st.title;
    el.text.textContent = done ? 'Pick another lesson, or change the prompt, the concept or the method and look again.' : acting ? 'Setting the page up and running…' : st.text;
    el.next.disabled = acting || done || !canAct(store.state);
    el.next.textContent = step + 1 === lesson.steps.length ? 'Finish' : 'Next';
    if (!acting) outline(done ? undefined : st.look);
  }

  async function runStep(k: number) {
    if (!running) return;
    running.step = k;
    running.acting = true;
    render();
    clearError(true);
    const st = running.lesson.steps[k];
    try {
      for (const a of st.actions) await act(a);
      setStatus(`Lesson step ${k + 1}: ${st.title}`);
    } catch (e) {
      const msg = e instanceof Error ? e.message : String(e);
      if (byId('error').hidden) showError('This lesson step could not run', `${msg}. The page is as the step left it; try Next again, or start the lesson over.`);
    }
    if (running) running.acting = false;
    render();
  }

  function start() {
    const lesson = lessons.find((l) => l.id === selected) ?? lessons[0];
    running = { lesson, step: 0, acting: false, done: false };
    void runStep(0);
  }

  function next() {
    if (!running || running.acting) return;
    if (running.step + 1 >= running.lesson.steps.length) {
      running.done = true;
      render();
      return;
    }
    void runStep(running.step + 1);
  }

  function snapshot(s: Readonly<PageState>): PageSnapshot {
    const fields: Record<string, string> = {};
    for (const f of CAPTURED_FIELDS) {
      const e = q<HTMLInputElement>(f);
      if (e) fields[f] = e.value;
    }
    const checks: Record<string, boolean> = {};
    for (const c of CAPTURED_CHECKS) checks[c] = !!q<HTMLInputElement>(c)?.checked;
    const on = s.edits.filter((e) => e.enabled);
    const entries = on.flatMap((e) => (e.recipe.type === 'entry-compute' ? [e.recipe.request] : []));
    const bundled = s.model && s.bundled.some((b) => b.id === s.model?.id) ? s.model.id : null;
    return { model: bundled, fields, checks, view: s.view, entries, skipped: on.length - entries.length };
  }

  function capture() {
    const s = store.state;
    if (!s.model) return showError('Load a model first', 'A lesson step sets up the page as it is now: load a model, set it up, then add the step.');
    mine ??= { id: 'my-lesson', title: 'My lesson', summary: 'Steps made from this page', steps: [] };
    const text = el.note.value.trim() || 'Look at the images and what changed.';
    const k = mine.steps.length + 1;
    mine.steps.push(captureStep(snapshot(s), `Step ${k}`, text, s.view === 'grid' ? 'grid' : 'panes'));
    if (!lessons.includes(mine)) lessons.push(mine);
    selected = mine.id;
    el.note.value = '';
    renderList();
    setStatus(`Added step ${k} to “My lesson” (${mine.steps.length} step${mine.steps.length === 1 ? '' : 's'}): Export saves it as a file and a link.`);
  }

  function exportLesson() {
    const l = lessons.find((x) => x.id === selected) ?? lessons[0];
    download(new Blob([lessonJson(l)], { type: 'application/json' }), `lesson-${l.id}.json`, 'application/json');
    el.link.value = `${location.origin}${location.pathname}#${lessonHash(l)}`;
    el.link.hidden = false;
    el.link.select();
    void navigator.clipboard?.writeText(el.link.value).catch(() => {});
    setStatus(`Exported “${l.title}” as lesson-${l.id}.json, and as the link below (it carries the whole lesson; nothing is uploaded).`);
  }

  function addImported(text: string, from: string) {
    const r = parseLesson(text);
    if (!r.ok) return showError('This lesson could not be opened', `${from}: ${r.message}.`);
    const l = r.lesson;
    while (lessons.some((x) => x.id === l.id)) l.id = `${l.id}-2`;
    lessons.push(l);
    selected = l.id;
    renderList();
    setStatus(`Opened the lesson “${l.title}” (${l.steps.length} steps): press Start.`);
  }

  el.start.addEventListener('click', start);
  el.next.addEventListener('click', next);
  el.stop.addEventListener('click', () => {
    running = null;
    render();
  });
  el.capture.addEventListener('click', capture);
  el.export.addEventListener('click', exportLesson);
  el.importInput.addEventListener('change', async () => {
    const f = el.importInput.files?.[0];
    el.importInput.value = '';
    if (f) addImported(await f.text(), f.name);
  });
  const fromLink = lessonFromHash(location.hash);
  if (fromLink?.ok) {
    const l = fromLink.lesson;
    while (lessons.some((x) => x.id === l.id)) l.id = `${l.id}-2`;
    lessons.push(l);
    selected = l.id;
  } else if (fromLink) showError('The link’s lesson could not be opened', fromLink.message);
  renderList();
  store.subscribe(() => render());
  return { lessons: () => lessons.map((l) => l.id) };
}
