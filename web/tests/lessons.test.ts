import { describe, expect, it } from 'vitest';
import { LESSONS, LESSON_FORMAT, captureStep, lessonFromHash, lessonHash, lessonJson, parseLesson, type LessonAction } from '../ui/lessons';
import html from '../index.html?raw';

/** Test ids the panels create at run time (not in index.html). */
const DYNAMIC = new Set(['attention-token', 'attention-map', 'anatomy-chart', 'grid']);
const hasTestid = (id: string) => DYNAMIC.has(id) || html.includes(`data-testid="${id}"`);

describe('built-in lessons', () => {
  it('are at least five, on the classroom model, each starting from a clean page', () => {
    expect(LESSONS.length).toBeGreaterThanOrEqual(5);
    expect(new Set(LESSONS.map((l) => l.id)).size).toBe(LESSONS.length);
    for (const l of LESSONS) {
      const first = l.steps[0].actions;
      expect(first[0]).toEqual({ model: 'classroom' });
      expect(first).toContainEqual({ reset: true });
    }
  });
  it('name only fields, switches, buttons and views the page has', () => {
    for (const l of LESSONS)
      for (const st of l.steps) {
        if (st.look) expect(hasTestid(st.look), `${l.id}: look ${st.look}`).toBe(true);
        for (const a of st.actions as LessonAction[]) {
          const id = 'set' in a ? a.set : 'check' in a ? a.check : 'click' in a ? a.click : null;
          if (id) expect(hasTestid(id), `${l.id}: ${JSON.stringify(a)}`).toBe(true);
        }
      }
  });
  it('each run something: a generation in every lesson', () => {
    for (const l of LESSONS) expect(l.steps.some((s) => s.actions.some((a) => 'generate' in a)), l.id).toBe(true);
  });
});

describe('lesson files and links', () => {
  it('a lesson survives its file and its link', () => {
    const l = LESSONS[1];
    const f = parseLesson(lessonJson(l));
    expect(f.ok && f.lesson).toEqual(l);
    const h = lessonFromHash(`#${lessonHash(l)}`);
    expect(h?.ok && h.lesson).toEqual(l);
    expect(lessonHash(l)).toMatch(/^lesson=[A-Za-z0-9_-]+$/);
  });
  it('refuses what is not a lesson, saying why', () => {
    expect(parseLesson('nope')).toMatchObject({ ok: false, message: expect.stringContaining('not JSON') });
    expect(parseLesson('{"format":"x"}')).toMatchObject({ ok: false, message: expect.stringContaining(LESSON_FORMAT) });
    expect(parseLesson(JSON.stringify({ format: LESSON_FORMAT, title: 't', steps: [] }))).toMatchObject({ ok: false, message: expect.stringContaining('1 to 50') });
    const odd = { format: LESSON_FORMAT, title: 't', steps: [{ title: 's', text: 'x', actions: [{ eval: 'alert(1)' }] }] };
    expect(parseLesson(JSON.stringify(odd))).toMatchObject({ ok: false, message: expect.stringContaining('does not know') });
    expect(lessonFromHash('#lesson=%%%')).toMatchObject({ ok: false });
    expect(lessonFromHash('#seed=3')).toBeNull();
  });
  it('a captured step sets the page up again and generates', () => {
    const st = captureStep(
      { model: 'classroom', fields: { prompt: 'a skull', seed: '3' }, checks: { 'timeline-on': true, 'attention-maps': false }, view: 'grid', entries: [{ kind: 'steer', sld: 'strong' }], skipped: 1 },
      'Step 1',
      'Look.',
      'grid',
    );
    expect(st.actions).toEqual([
      { model: 'classroom' },
      { reset: true },
      { set: 'prompt', value: 'a skull' },
      { set: 'seed', value: '3' },
      { entry: { kind: 'steer', sld: 'strong' } },
      { click: 'view-grid' },
      { check: 'timeline-on', on: true },
      { generate: true },
    ]);
    expect(st.text).toContain('1 entry from files left out');
  });
});
