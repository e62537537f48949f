// Drag and drop anywhere on the page: a dropped folder loads as a model, dropped files are added
// as edit, SPM, LoRA or eraser files.

import { byId, showError } from './dom';

export interface DropDeps {
  /** Whether a dropped folder may load now (the engine is ready and idle). */
  canLoad(): boolean;
  loadFolder(files: { path: string; item: File }[]): void;
  addFiles(files: File[]): Promise<void>;
}

/** Every file below a dropped directory entry, with its path. */
async function walkEntry(entry: FileSystemEntry, prefix: string, out: { path: string; item: File }[]) {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push({ path: `${prefix}${entry.name}`, item: file });
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const e of batch) await walkEntry(e, `${prefix}${entry.name}/`, out);
    }
  }
}

export function initDrop(deps: DropDeps): void {
  const overlay = byId('drop-overlay');
  const editDrop = byId('edit-drop');

  async function onDrop(ev: DragEvent) {
    ev.preventDefault();
    overlay.hidden = true;
    editDrop.classList.remove('over');
    const dt = ev.dataTransfer;
    if (!dt) return;
    const entries = Array.from(dt.items ?? [])
      .map((i) => (i.kind === 'file' ? i.webkitGetAsEntry?.() : null))
      .filter((e): e is FileSystemEntry => !!e);
    if (entries.some((e) => e.isDirectory)) {
      if (!deps.canLoad()) return;
      const files: { path: string; item: File }[] = [];
      try {
        for (const e of entries) await walkEntry(e, '', files);
      } catch (e) {
        showError('Could not read the dropped folder', e instanceof Error ? e.message : String(e));
        return;
      }
      if (files.length) deps.loadFolder(files);
      return;
    }
    const files = Array.from(dt.files ?? []);
    if (files.length) await deps.addFiles(files);
  }

  let dragDepth = 0;
  window.addEventListener('dragenter', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    dragDepth++;
    overlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) {
      overlay.hidden = true;
      editDrop.classList.remove('over');
    }
  });
  window.addEventListener('dragover', (e) => {
    e.preventDefault();
    editDrop.classList.add('over');
  });
  window.addEventListener('drop', (e) => {
    dragDepth = 0;
    void onDrop(e);
  });
}
