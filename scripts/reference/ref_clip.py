"""Writes the CLIP text-encoder reference tensors of the parity test crates/diffusion/tests/clip_parity.rs.

For each tiny fixture model (tests/fixtures/tiny-sd1, tiny-sd2) it tokenizes two prompts with the
folder's own CLIPTokenizer (77 ids: BOS, tokens, EOS, padding), runs transformers' CLIPTextModel
(eager attention, float32 even for the f16 tiny-sd2 weights, since the Rust side computes in f32
from those same f16 values) and writes
tests/fixtures/reference/<model>/text_encoder.safetensors with

  input_ids          [2, 77]     the ids, stored as float32 (exact: ids < 2^24)
  last_hidden_state  [2, 77, d]  after final_layer_norm
  pooler_output      [2, d]      last_hidden_state at the EOS position
  hidden_states.<i>  [2, 77, d]  i = 0 (embeddings) .. num_hidden_layers, before final_layer_norm

Run from the repository root (needs torch + transformers, see DESIGN.md):
    /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_clip.py
Deterministic: no randomness (weights come from the committed fixtures).
"""
import os

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
PROMPTS = ["a photo of a cat", "a red car on the beach at night, photography"]


def main():
    torch.manual_seed(0)
    for model in ["tiny-sd1", "tiny-sd2"]:
        folder = os.path.join(ROOT, model)
        tok = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
        ids = tok(PROMPTS, padding="max_length", max_length=77, truncation=True, return_tensors="pt").input_ids
        te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), attn_implementation="eager").float().eval()
        with torch.no_grad():
            out = te(ids, output_hidden_states=True)
        assert len(out.hidden_states) == te.config.num_hidden_layers + 1
        tensors = {
            "input_ids": ids.float(),
            "last_hidden_state": out.last_hidden_state,
            "pooler_output": out.pooler_output,
        }
        for i, h in enumerate(out.hidden_states):
            tensors[f"hidden_states.{i}"] = h
        dest = os.path.join(ROOT, "reference", model)
        os.makedirs(dest, exist_ok=True)
        path = os.path.join(dest, "text_encoder.safetensors")
        save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata={"prompts": " | ".join(PROMPTS)})
        print("wrote", path, "ids[:, :14] =", ids[:, :14].tolist())


if __name__ == "__main__":
    main()
