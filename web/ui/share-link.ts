// The "Copy share link" button: the page's settings in the URL hash (web/ui/share.ts; a hash is
// never sent to any server), put in the address bar, shown and copied. Prompts and concept lists
// and the edit files' names go in only while their boxes are ticked; file contents never do.

import { shareable, shareSummary, toHash, type Shared } from './share';
import { byId, setStatus } from './dom';

export function initShareButton(current: () => Shared): void {
  const button = byId<HTMLButtonElement>('share');
  const field = byId<HTMLInputElement>('share-url');
  const prompts = byId<HTMLInputElement>('share-prompts');
  const fileNames = byId<HTMLInputElement>('share-files');
  const link = () => {
    const s = shareable(current(), { prompts: prompts.checked, fileNames: fileNames.checked });
    return { s, url: `${location.origin}${location.pathname}${location.search}${toHash(s)}` };
  };
  button.addEventListener('click', async () => {
    const { s, url } = link();
    history.replaceState(null, '', url);
    field.value = url;
    field.hidden = false;
    field.select();
    try {
      await navigator.clipboard.writeText(url);
      setStatus(`Share link copied: ${shareSummary(s)}.`);
    } catch {
      setStatus(`Share link ready below: copy it (${shareSummary(s)}).`);
    }
  });
  // A link already shown follows the boxes (so an unticked prompt never stays in the address bar).
  for (const box of [prompts, fileNames])
    box.addEventListener('change', () => {
      if (field.hidden) return;
      const { url } = link();
      history.replaceState(null, '', url);
      field.value = url;
    });
}
