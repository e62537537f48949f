// What every panel shares of the page: element lookup, the status line, the error box, saving a
// file. Each panel looks up its own elements (web/index.html keeps the ids).

/** The element with `id`; a missing one is a bug in web/index.html, reported at boot. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

export function setStatus(text: string): void {
  byId('status').textContent = text;
}

/** The WebGPU-fallback notice stays until dismissed; other errors go when the next action starts. */
let stickyError = false;

export function showError(title: string, message: string, sticky = false): void {
  stickyError = sticky;
  byId('error-title').textContent = title;
  byId('error-text').textContent = message;
  byId('error').hidden = false;
}

export function clearError(force = false): void {
  if (stickyError && !force) return;
  stickyError = false;
  byId('error').hidden = true;
  byId('error-text').textContent = '';
}

/** The error box's close button. */
export function initErrorBox(): void {
  byId<HTMLButtonElement>('error-close').addEventListener('click', () => clearError(true));
}

/** Marks `input` as the field to fix (or not). */
export function markInvalid(input: HTMLElement, invalid: boolean): void {
  input.classList.toggle('invalid', invalid);
}

/** Saves `bytes` as a download named `name`. */
export function download(data: Uint8Array | Blob, name: string, type: string): void {
  const url = URL.createObjectURL(data instanceof Blob ? data : new Blob([data as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
