// "Downloaded models…": what the hub downloads left in this browser's private storage (OPFS),
// per repo, and deleting it.

import { OpfsStore, clearCache, opfsAvailable, summarize } from '../../hub/store';
import { formatBytes } from '../logic';
import type { Ctx } from '../context';
import { byId, setStatus } from '../dom';

export function createCachePanel(ctx: Pick<Ctx, 'store'>) {
  const { store } = ctx;
  const el = {
    open: byId<HTMLButtonElement>('cache-open'),
    panel: byId('cache-panel'),
    list: byId<HTMLUListElement>('cache-list'),
    usage: byId('cache-usage'),
    clear: byId<HTMLButtonElement>('cache-clear'),
    close: byId<HTMLButtonElement>('cache-close'),
  };

  async function refresh() {
    if (!(await opfsAvailable())) {
      el.list.replaceChildren();
      el.usage.textContent = 'This browser offers no private file storage (OPFS): downloads are kept for this visit only.';
      return;
    }
    const opfs = new OpfsStore();
    const repos = await summarize(opfs);
    const est = await navigator.storage.estimate?.().catch(() => null);
    el.usage.textContent = est?.usage !== undefined ? `${formatBytes(est.usage)} used of ${formatBytes(est.quota ?? 0)} allowed` : '';
    if (!repos.length) {
      const li = document.createElement('li');
      li.className = 'hint';
      li.textContent = 'Nothing downloaded yet.';
      el.list.replaceChildren(li);
      return;
    }
    el.list.replaceChildren(
      ...repos.map((r) => {
        const li = document.createElement('li');
        li.setAttribute('data-testid', 'cache-row');
        li.dataset.repo = r.repo;
        const what = document.createElement('span');
        what.className = 'what';
        const partial = r.complete < r.files ? ` · ${r.files - r.complete} partial (resumes)` : '';
        what.textContent = `${r.repo}@${r.revision} · ${formatBytes(r.bytes)} · ${r.complete}/${r.files} files, ${r.verified} SHA-256-verified${partial}`;
        const del = document.createElement('button');
        del.type = 'button';
        del.className = 'link';
        del.textContent = 'Delete';
        del.disabled = store.state.busy === 'load';
        del.addEventListener('click', async () => {
          await clearCache(opfs, r.id);
          setStatus(`Deleted ${r.repo} from this browser's cache.`);
          await refresh();
        });
        li.append(what, del);
        return li;
      }),
    );
  }

  el.open.addEventListener('click', () => {
    el.panel.hidden = !el.panel.hidden;
    if (!el.panel.hidden) void refresh();
  });
  el.close.addEventListener('click', () => (el.panel.hidden = true));
  el.clear.addEventListener('click', async () => {
    if (!(await opfsAvailable())) return;
    const n = await clearCache(new OpfsStore(), null);
    setStatus(`Deleted ${n} cached file${n === 1 ? '' : 's'}.`);
    await refresh();
  });
  store.subscribe((s) => (el.clear.disabled = s.busy === 'load'));
}
