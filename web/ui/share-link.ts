// The "Copy share link" button: every setting of the page in the URL hash (web/ui/share.ts),
// put in the address bar, shown and copied.

import { toHash, type Shared } from './share';
import { byId, setStatus } from './dom';

export function initShareButton(current: () => Shared): void {
  const button = byId<HTMLButtonElement>('share');
  const field = byId<HTMLInputElement>('share-url');
  button.addEventListener('click', async () => {
    const url = `${location.origin}${location.pathname}${location.search}${toHash(current())}`;
    history.replaceState(null, '', url);
    field.value = url;
    field.hidden = false;
    field.select();
    try {
      await navigator.clipboard.writeText(url);
      setStatus('Share link copied: it holds every setting (no images, no files).');
    } catch {
      setStatus('Share link ready below: copy it (it holds every setting, no images, no files).');
    }
  });
}
