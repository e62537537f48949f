// Real Stable Diffusion checkpoints on the Hugging Face hub that the studio offers by name.
//
// No SHA-256 is pinned here: this project's machines cannot reach the hub, so no hash could be
// checked before writing it down. Instead every weight file (a git-LFS object) is verified
// against the SHA-256 the hub itself lists for it (`lfs.oid` of the tree API), which catches a
// cut or corrupted download and a stale cache, not a compromised hub. A hash pinned in `pinned`
// (path → hex) takes precedence over the hub's and a mismatch with it is an error.

export interface HubPreset {
  repo: string;
  name: string;
  /** What it is, in a line; shown under the model select. */
  about: string;
  /** Approximate download with the files the studio picks (fp16 weights where offered), bytes. */
  approxBytes: number;
  /** Revision to fetch (a branch, tag or commit). */
  revision: string;
  pinned?: Record<string, string>;
}

export const HUB_ENDPOINT = 'https://huggingface.co';

export const HUB_PRESETS: HubPreset[] = [
  {
    repo: 'CompVis/stable-diffusion-v1-4',
    name: 'Stable Diffusion 1.4 (CompVis)',
    about: 'The model most erasure papers (ESD, UCE, MACE, SPM) report on. 512×512.',
    approxBytes: 2.75e9,
    revision: 'main',
  },
  {
    repo: 'stable-diffusion-v1-5/stable-diffusion-v1-5',
    name: 'Stable Diffusion 1.5',
    about: 'SD 1.5 (the community mirror of runwayml/stable-diffusion-v1-5). 512×512.',
    approxBytes: 2.75e9,
    revision: 'main',
  },
  {
    repo: 'stabilityai/stable-diffusion-2-1-base',
    name: 'Stable Diffusion 2.1-base',
    about: 'SD 2.x family (OpenCLIP text encoder, 1024-d). 512×512.',
    approxBytes: 2.6e9,
    revision: 'main',
  },
  {
    repo: 'stabilityai/sd-turbo',
    name: 'SD-Turbo',
    about: 'Distilled SD 2.1: 1–4 steps, guidance 0. 512×512.',
    approxBytes: 2.6e9,
    revision: 'main',
  },
  {
    repo: 'segmind/tiny-sd',
    name: 'Tiny SD (segmind)',
    about: 'A distilled SD 1.5 with a smaller UNet: faster, less faithful. 512×512.',
    approxBytes: 1.3e9,
    revision: 'main',
  },
  {
    repo: 'nota-ai/bk-sdm-tiny',
    name: 'BK-SDM-Tiny (Nota AI)',
    about: 'Block-removed SD 1.4 (BK-SDM): a 0.32 B-parameter UNet. 512×512.',
    approxBytes: 1.1e9,
    revision: 'main',
  },
];

/** `owner/name` with safe characters only (what the hub accepts as a model id). */
export function isRepoId(s: string): boolean {
  return /^[A-Za-z0-9][A-Za-z0-9._-]{0,95}\/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$/.test(s) && !s.includes('..');
}
