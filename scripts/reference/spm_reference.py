"""Reference fixtures for SPM / LoRA adapters and Facilitated Transport (crates/erasure adapters).

What the official SPM code (Con6924/SPM) does, re-done here on the tiny fixture models:
- `src/models/spm.py` `SPMNetwork.create_modules`: every `Linear` / `Conv2d` inside each
  `Transformer2DModel` of the UNet gets a rank-r adapter named
  `lora_unet_<module path with '.' replaced by '_'>` with `lora_down.weight` `[r, in]` (conv:
  `[r, in, 1, 1]`), `lora_up.weight` `[out, r]` (conv: `[out, r, 1, 1]`) and a scalar `alpha`;
  `SPMLayer.forward` adds `up(down(x)) * multiplier * alpha / r`.
- `train_spm.py`: file metadata `prompts` (the erased targets joined by ','), `rank`, `alpha`.
- `src/models/merge_spm.py` `merge_to_sd_model`: merged form `W += ratio * (up @ down) * alpha / r`,
  1x1 convs through squeezed `[out, r] @ [r, in]`.
- `infer_spm.py` `calculate_matching_score` (metric `clipcos_tokenuni`): for each erased prompt,
  max(cosine of the flattened [77, d] last hidden states, |prompt tokens ∩ concept tokens| /
  |concept tokens|) with special tokens (bos, eos, unk, pad) removed from both sets; per SPM the
  max over its prompts; then every tensor of SPM k (down, up and alpha) is multiplied by m_k and
  the SPMs are summed tensor by tensor before loading, so with one SPM ΔW = m² · up·down·α/r and
  with several ΔW = (Σ m_k up_k)(Σ m_k down_k)·α/r (the scale α/r from the first SPM's metadata).

This script:
1. makes synthetic SPMs in the official naming for tests/fixtures/tiny-sd1 (two: A and B, f32)
   and tests/fixtures/tiny-sd2 (one, stored f16; SD 2 has linear proj_in/proj_out), rank 1,
   alpha 1, seeded N(0, 0.3²) values, and one plain LoRA for tiny-sd1 (rank 4, alpha 2, F32);
2. computes FT permeabilities for a few prompts as infer_spm.py does (ft.json);
3. merges the adapters into diffusers' UNet the official way and records one UNet output per case
   (unet.safetensors), plus a 3-step DDIM pipeline run from fixed latents on tiny-sd1 with both
   SPMs under FT for one prompt (the weights merged once, for the whole run, as infer_spm.py does).

Run: /var/cache/erasure-studio/venv/bin/python scripts/reference/spm_reference.py
Writes tests/fixtures/reference/spm/ (~60 KB).
"""
import copy
import json
import os

import torch
from diffusers import DDIMScheduler, StableDiffusionPipeline
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
OUT = os.path.join(ROOT, "reference", "spm")

SPM_PROMPTS = {
    "sd1_a": "snoopy, mickey mouse",
    "sd1_b": "van gogh",
    "sd2": "snoopy!,cat",
}
FT_PROMPTS = [
    "snoopy",
    "a photo of mickey on the beach",
    "a painting by van gogh of a mouse",
    "a dog running in a field",
    "",
    "snoopy! van gogh",
]
PIPE_PROMPT = "a photo of mickey on the beach, by gogh"
PIPE_NEGATIVE = "blurry"


def adapter_targets(unet):
    """(kohya name, module) for every Linear/Conv2d inside a Transformer2DModel, in module order."""
    out = []
    for name, module in unet.named_modules():
        if module.__class__.__name__ != "Transformer2DModel":
            continue
        for child_name, child in module.named_modules():
            if child.__class__.__name__ in ("Linear", "Conv2d"):
                out.append((("lora_unet." + name + "." + child_name).replace(".", "_"), child))
    return out


def make_adapter(unet, rank, alpha, seed, sigma=0.3):
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for kname, m in adapter_targets(unet):
        if isinstance(m, torch.nn.Conv2d):
            assert m.kernel_size == (1, 1)
            d_in, d_out, tail = m.in_channels, m.out_channels, (1, 1)
        else:
            d_in, d_out, tail = m.in_features, m.out_features, ()
        sd[kname + ".lora_down.weight"] = sigma * torch.randn((rank, d_in) + tail, generator=g)
        sd[kname + ".lora_up.weight"] = sigma * torch.randn((d_out, rank) + tail, generator=g)
        sd[kname + ".alpha"] = torch.tensor(float(alpha))
    return sd


def save_adapter(sd, name, metadata, dtype):
    path = os.path.join(OUT, name)
    save_file({k: v.to(dtype).contiguous() for k, v in sd.items()}, path, metadata=metadata)
    # Everything below uses the values as stored (f16 rounding included), read back in f32.
    return {k: v.float() for k, v in load_file(path).items()}


@torch.no_grad()
def merge(unet, factors, scale_of):
    """W += (up @ down) * scale for each module in `factors` {kohya: (down, up)} (merge_spm.py)."""
    unet = copy.deepcopy(unet)
    for kname, m in adapter_targets(unet):
        if kname not in factors:
            continue
        down, up = factors[kname]
        r = down.shape[0]
        delta = (up.reshape(up.shape[0], r) @ down.reshape(r, -1)) * scale_of(kname)
        m.weight += delta.reshape(m.weight.shape)
    return unet


def factors_of(sd, mult=1.0):
    names = {k[: k.rfind(".lora_down")] for k in sd if k.endswith(".lora_down.weight")}
    return {n: (sd[n + ".lora_down.weight"] * mult, sd[n + ".lora_up.weight"] * mult) for n in names}


def official_sum(sds, mults):
    """infer_spm.py: Σ_k m_k · SPM_k tensor by tensor (down and up each scaled)."""
    out = {}
    for sd, m in zip(sds, mults):
        for n, (d, u) in factors_of(sd, m).items():
            if n in out:
                out[n] = (out[n][0] + d, out[n][1] + u)
            else:
                out[n] = (d, u)
    return out


@torch.no_grad()
def encode(pipe, prompts):
    tok = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    emb = pipe.text_encoder(tok)[0]
    return emb, torch.unique(tok, dim=1)


def special_ids(tokenizer):
    return set(tokenizer.convert_tokens_to_ids(list(tokenizer.special_tokens_map.values())))


@torch.no_grad()
def permeabilities(pipe, spm_prompt_lists, prompt):
    """infer_spm.py calculate_matching_score, metric clipcos_tokenuni; returns per-concept details
    and the per-SPM max."""
    flat = [p for ps in spm_prompt_lists for p in ps]
    e_emb, e_tok = encode(pipe, flat)
    p_emb, p_tok = encode(pipe, [prompt])
    special = special_ids(pipe.tokenizer)
    clipcos = torch.cosine_similarity(p_emb.flatten(1, 2), e_emb.flatten(1, 2), dim=-1)
    p_set = set(p_tok[0].tolist()) - special
    tokenuni = []
    for row in e_tok:
        c_set = set(row.tolist()) - special
        tokenuni.append(len(p_set & c_set) / len(c_set))
    tokenuni = torch.tensor(tokenuni)
    score = torch.max(torch.stack([clipcos, tokenuni]), dim=0)[0]
    per_spm, i = [], 0
    for ps in spm_prompt_lists:
        per_spm.append(float(score[i : i + len(ps)].max()))
        i += len(ps)
    return {
        "prompt": prompt,
        "concepts": flat,
        "clipcos": [float(x) for x in clipcos],
        "tokenuni": [float(x) for x in tokenuni],
        "permeability": per_spm,
    }


def load(model):
    pipe = StableDiffusionPipeline.from_pretrained(os.path.join(ROOT, model), safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    return pipe.to(torch.float32)


@torch.no_grad()
def unet_out(unet, inputs):
    return unet(inputs["sample"], inputs["timesteps"], encoder_hidden_states=inputs["ehs"]).sample.contiguous()


def unet_inputs(unet, seed):
    g = torch.Generator().manual_seed(seed)
    c = unet.config
    return {
        "sample": torch.randn((2, c.in_channels, 8, 8), generator=g),
        "timesteps": torch.tensor([999.0, 500.5]),
        "ehs": torch.randn((2, 77, c.cross_attention_dim), generator=g),
    }


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max())


def main():
    os.makedirs(OUT, exist_ok=True)
    tensors, ft = {}, {}

    # --- tiny-sd1: two SPMs and a LoRA -------------------------------------------------------
    pipe = load("tiny-sd1")
    unet = pipe.unet.eval()
    targets = adapter_targets(unet)
    print(f"tiny-sd1: {len(targets)} adapter targets")
    md = lambda p: {"prompts": p, "rank": "1", "alpha": "1.0"}
    spm_a = save_adapter(make_adapter(unet, 1, 1.0, 11), "sd1_spm_a.safetensors", md(SPM_PROMPTS["sd1_a"]), torch.float32)
    spm_b = save_adapter(make_adapter(unet, 1, 1.0, 12), "sd1_spm_b.safetensors", md(SPM_PROMPTS["sd1_b"]), torch.float32)
    lora = save_adapter(make_adapter(unet, 4, 2.0, 13, sigma=0.15), "sd1_lora_r4.safetensors", {"ss_network_dim": "4", "ss_network_alpha": "2.0"}, torch.float32)

    inputs = unet_inputs(unet, 2024)
    tensors["sd1.sample"], tensors["sd1.timesteps"], tensors["sd1.ehs"] = inputs["sample"], inputs["timesteps"], inputs["ehs"]
    base = unet_out(unet, inputs)
    tensors["sd1.base"] = base
    # One SPM at multiplier 1 (FT off): ΔW = up·down·α/r.
    tensors["sd1.spm_a"] = unet_out(merge(unet, factors_of(spm_a), lambda _: 1.0 / 1), inputs)
    # FT off with an assigned multiplier 0.5 (infer_spm --spm_multiplier): both factors scaled.
    tensors["sd1.spm_a_x0.5"] = unet_out(merge(unet, official_sum([spm_a], [0.5]), lambda _: 1.0), inputs)
    # Plain LoRA at scale 0.7: W += 0.7 · up·down·α/r (kohya / diffusers fuse_lora, linear in the scale).
    tensors["sd1.lora_x0.7"] = unet_out(merge(unet, factors_of(lora, 1.0), lambda _: 0.7 * 2.0 / 4), inputs)
    # Two SPMs under FT for PIPE_PROMPT, composed the official way.
    lists = [SPM_PROMPTS["sd1_a"].split(","), SPM_PROMPTS["sd1_b"].split(",")]
    ft["tiny-sd1"] = [permeabilities(pipe, lists, p) for p in FT_PROMPTS + [PIPE_PROMPT]]
    m = ft["tiny-sd1"][-1]["permeability"]
    print("tiny-sd1 permeabilities for the pipeline prompt:", m)
    merged = merge(unet, official_sum([spm_a, spm_b], m), lambda _: 1.0)
    tensors["sd1.spm_ab_ft"] = unet_out(merged, inputs)
    for k in ["sd1.spm_a", "sd1.spm_a_x0.5", "sd1.lora_x0.7", "sd1.spm_ab_ft"]:
        print(f"  {k}: output differs from the base by {rel(tensors[k], base):.3f} (relative)")

    # Pipeline: 3 DDIM steps, CFG 7.5, negative prompt, fixed latents, the FT-weighted SPMs merged.
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    g = torch.Generator().manual_seed(77)
    init = torch.randn((1, 4, 8, 8), generator=g)
    pipe.unet = merged
    with torch.no_grad():
        lat = pipe(PIPE_PROMPT, negative_prompt=PIPE_NEGATIVE, num_inference_steps=3, guidance_scale=7.5, latents=init.clone(), output_type="latent").images
    tensors["sd1.pipe.init_latents"] = init
    tensors["sd1.pipe.latents"] = lat.contiguous()

    # --- tiny-sd2 (f16 on disk, linear proj_in/proj_out): one SPM ------------------------------
    pipe2 = load("tiny-sd2")
    unet2 = pipe2.unet.eval()
    print(f"tiny-sd2: {len(adapter_targets(unet2))} adapter targets")
    spm2 = save_adapter(make_adapter(unet2, 1, 1.0, 21), "sd2_spm.safetensors", md(SPM_PROMPTS["sd2"]), torch.float16)
    inputs2 = unet_inputs(unet2, 2025)
    tensors["sd2.sample"], tensors["sd2.timesteps"], tensors["sd2.ehs"] = inputs2["sample"], inputs2["timesteps"], inputs2["ehs"]
    base2 = unet_out(unet2, inputs2)
    tensors["sd2.base"] = base2
    tensors["sd2.spm"] = unet_out(merge(unet2, factors_of(spm2), lambda _: 1.0), inputs2)
    print(f"  sd2.spm: output differs from the base by {rel(tensors['sd2.spm'], base2):.3f} (relative)")
    ft["tiny-sd2"] = [permeabilities(pipe2, [SPM_PROMPTS["sd2"].split(",")], p) for p in FT_PROMPTS]

    meta = {
        "pipe.prompt": PIPE_PROMPT,
        "pipe.negative_prompt": PIPE_NEGATIVE,
        "pipe.steps": "3",
        "pipe.guidance": "7.5",
        "pipe.permeability": json.dumps(m),
    }
    save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "unet.safetensors"), metadata=meta)
    with open(os.path.join(OUT, "ft.json"), "w") as f:
        json.dump(ft, f, indent=1)
    print("wrote", OUT)


if __name__ == "__main__":
    main()
