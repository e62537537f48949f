// The guided lessons (issue 15) in headless Chromium, on the CPU path with the classroom model:
// every built-in lesson runs from Start to its end by clicking Next only (no typing), each step
// leaves no error and outlines the view it asks the student to look at; a teacher's step made
// from the page exports as a file and as a link, and the link opens the lesson in a fresh page
// that runs to its end.
// Run by studio.mjs (`lessonCases`).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { OUT, assert, openPage, runCase, tid, visibleError } from './lib.mjs';

/** Waits until the lesson's step finished acting; returns the step panel's state. */
async function stepDone(page) {
  await page.waitForFunction(() => document.querySelector('[data-testid="lesson-step"]')?.dataset.acting === 'false', null, { timeout: 900_000, polling: 100 });
  return page.$eval(tid('lesson-step'), (e) => ({ ...e.dataset, title: document.getElementById('lesson-step-title').textContent, look: document.querySelector('.lesson-look')?.getAttribute('data-testid') ?? null }));
}

/** Runs the selected lesson from Start to its end by clicking Next; returns each step's record. */
async function runLesson(page, id, shots = false) {
  if (id) await page.click(`[data-testid="lesson-item"][data-lesson="${id}"]`);
  await page.click(tid('lesson-start'));
  const steps = [];
  for (;;) {
    const st = await stepDone(page);
    const err = await visibleError(page);
    assert(!err, `lesson ${st.lesson} step ${st.step} (${st.title}): ${err}`);
    if (st.done === 'true') break;
    steps.push({ step: Number(st.step), title: st.title, look: st.look });
    if (shots) await page.screenshot({ path: join(OUT, `lesson-${st.lesson}-${st.step}.png`), clip: { x: 0, y: 0, width: 1280, height: 820 } });
    await page.click(tid('lesson-next'));
  }
  return steps;
}

export async function lessonCases({ ctx, url }) {
  await runCase('lessons: every built-in lesson runs to its end by clicking Next (classroom, CPU path); a teacher exports one as a file and a link', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=classroom&backend=cpu`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    const ids = await page.$$eval('[data-testid="lesson-item"]', (bs) => bs.map((b) => b.dataset.lesson));
    assert(ids.length >= 5, `${ids.length} lessons`);
    const out = {};
    for (const id of ids) {
      const t = Date.now();
      const steps = await runLesson(page, id, id === 'erase-uce');
      assert(steps.length >= 1, `${id}: no steps`);
      for (const s of steps) assert(s.look === null || (await page.isVisible(tid(s.look))) || s.look === 'attention-map', `${id} step ${s.step} asks to look at a hidden ${s.look}`);
      out[id] = { steps: steps.length, looks: steps.map((s) => s.look), ms: Date.now() - t };
      // What each lesson must have shown.
      if (id === 'where-skull') assert((await page.$$(tid('attention-map'))).length >= 1, 'no attention map after the first lesson');
      if (id === 'erase-uce') {
        assert(await page.isVisible('[data-testid="anatomy-chart"]'), 'the UCE lesson ends without the anatomy');
        await page.screenshot({ path: join(OUT, 'lesson-erase-uce-end.png'), fullPage: true });
      }
      if (id === 'neighbours') assert((await page.$$('[data-testid="grid"] canvas')).length >= 6, 'the neighbours grid is not there');
      if (id === 'timeline') assert(await page.isVisible(tid('timeline')), 'the timeline lesson ends without the timeline');
    }
    // A teacher: the page as the last lesson left it becomes a step, exported as a file and a link.
    await page.click('details.teacher summary');
    await page.fill(tid('lesson-note'), 'Find the step where the skull fades.');
    await page.click(tid('lesson-capture'));
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(tid('lesson-export'))]);
    const file = join(OUT, 'lesson-my-lesson.json');
    await dl.saveAs(file);
    const lesson = JSON.parse(readFileSync(file, 'utf8'));
    assert(lesson.format === 'erasure-studio-lesson/1' && lesson.steps.length === 1, `exported ${JSON.stringify(lesson).slice(0, 200)}`);
    const acts = lesson.steps[0].actions;
    assert(acts.some((a) => a.entry?.method === 'uce') && acts.some((a) => a.check === 'timeline-on') && acts.some((a) => a.set === 'prompt' && a.value === 'a skull'), `captured actions ${JSON.stringify(acts)}`);
    const link = await page.inputValue(tid('lesson-link'));
    assert(link.includes('#lesson='), `link ${link}`);
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    // The link in a fresh page: the lesson is there, selected, and runs to its end.
    const fresh = await openPage(ctx, `${url}?model=classroom&backend=cpu${link.slice(link.indexOf('#'))}`);
    await fresh.page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    const selected = await fresh.page.$eval('[data-testid="lesson-item"][aria-pressed="true"]', (b) => b.dataset.lesson);
    assert(selected === 'my-lesson', `the link selected ${selected}`);
    const steps = await runLesson(fresh.page, null);
    assert(steps.length === 1 && (await fresh.page.isVisible(tid('timeline'))), 'the linked lesson did not set the page up');
    await fresh.page.close();
    return { lessons: out, linkChars: link.length };
  });
}
