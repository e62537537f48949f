"""Writes the edit files the browser tests apply to the tiny SD-1 fixture (tests/fixtures/tiny-sd1).

  tiny-sd1-mid-to_v-x3.safetensors   mid_block ... attn2.to_v.weight scaled by 3, with the
                                     studio's metadata and the base-model fingerprint of the
                                     fixture (so it applies without a warning)
  tiny-sd1-wrong-shape.safetensors   the same tensor name with an SD 1.x-like shape [8, 768]: must be
                                     refused with its reason, leaving the model untouched

Format: DESIGN.md "Edit file" / crates/erasure/src/edit.rs. Run with any Python that has numpy
and safetensors: python tests/browser/make_edit_fixtures.py
"""

import json
import struct
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "fixtures"
NAME = "mid_block.attentions.0.transformer_blocks.0.attn2.to_v.weight"


def fingerprint(tensors):
    """crates/erasure/src/edit.rs `fingerprint`: FNV-1a 64 over names, shapes (u64 LE) and the f32
    bits of every 61st value, tensors sorted by name."""
    h = 0xCBF29CE484222325
    for name in sorted(tensors):
        t = tensors[name]
        data = name.encode() + b"".join(struct.pack("<Q", s) for s in t.shape)
        data += t.astype("<f4").reshape(-1)[::61].tobytes()
        for b in data:
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


def meta(base):
    return {
        "format": "erasure-studio-edit/1",
        "method": "scale",
        "concepts": json.dumps(["star"]),
        "guides": json.dumps([]),
        "preserve": json.dumps([]),
        "hyperparameters": json.dumps({"scale": 3.0, "tensor": NAME}),
        "base_model": base,
    }


def main():
    OUT.mkdir(exist_ok=True)
    w0 = load_file(str(ROOT / "tests/fixtures/tiny-sd1/unet/diffusion_pytorch_model.safetensors"))[NAME].astype(np.float32)
    assert w0.shape == (64, 32), w0.shape
    base = fingerprint({NAME: w0})
    save_file({NAME: np.ascontiguousarray(w0 * 3.0)}, str(OUT / "tiny-sd1-mid-to_v-x3.safetensors"), metadata=meta(base))
    save_file({NAME: np.zeros((8, 768), np.float32)}, str(OUT / "tiny-sd1-wrong-shape.safetensors"), metadata=meta(base))
    print("base-model fingerprint", base)


if __name__ == "__main__":
    main()
