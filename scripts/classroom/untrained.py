"""Writes an untrained (randomly initialised) classroom model folder of a given architecture.

    python scripts/classroom/untrained.py --arch v2 --out /tmp/classroom-v2-untrained

The same diffusers layout, tokenizer, scheduler and dtype (f16) as `train.py` exports, with seeded random
weights: for timing the next architecture in the studio before it is trained (BENCHMARKS.md, "Classroom
v2 vs v1") and for checking that it loads. Its images are noise.
"""
import argparse
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import train  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", choices=sorted(train.ARCHS), default="v2")
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    vars(train).update(train.ARCHS[args.arch])
    from diffusers import AutoencoderKL

    torch.manual_seed(args.seed)
    tok, _ = train.make_tokenizer(os.path.join(args.out, "tokenizer"), [])
    text, unet = train.build_text_unet(len(tok))
    vae = AutoencoderKL(**train.VAE)
    train.write_model(args.out, vae, text, unet, scale=1.0)
    n = {k: sum(p.numel() for p in m.parameters()) for k, m in (("unet", unet), ("vae", vae), ("text_encoder", text))}
    print(f"{args.out}: {args.arch}, {train.folder_bytes(args.out) / 1e6:.1f} MB, parameters {n}")


if __name__ == "__main__":
    main()
