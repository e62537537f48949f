"""DAAM heat maps from diffusers + PyTorch, the reference of `pipeline::daam` (crates/pipeline/tests/daam_parity.rs).

DAAM as its official code computes it (castorini/daam `daam/trace.py`): a processor on every
cross-attention (`attn2`) records softmax(QKᵀ·scale) of the conditional half of the batch
(`UNetCrossAttentionHooker._unravel_attn`: `map_[map_.size(0) // 2:]`), summed over the steps per
(layer, head) (`RawHeatMapCollection.update`); `compute_global_heat_map` upsamples each (layer, head)
sum bicubically to the latent size, clamps at 0, averages over all of them and keeps the rows
`[:len(tokenize(prompt)) + 2]`. Run with DDIM and classifier-free guidance from fixed initial latents
(the `init_latents` of tests/fixtures/reference/<model>/pipeline.safetensors' seed), on the tiny SD-1
and SD-2 fixtures and the bundled classroom model.

Writes tests/fixtures/reference/<model>/daam.safetensors: `init_latents`, `maps` [tokens, h, w]
(f32), metadata prompt / negative_prompt / steps / guidance.

Run (repository root): python scripts/reference/ref_daam.py   (torch, diffusers 0.42.1, safetensors)
"""
import os

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipeline
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "tests", "fixtures")


class Recorder:
    """The DAAM hook as a diffusers attention processor (diffusers' classic `AttnProcessor` math)."""

    def __init__(self):
        self.sums = {}  # layer name -> [heads, n, tokens] summed over steps
        self.order = []

    def processor(self, name):
        rec = self

        class Proc:
            def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, **kw):
                b = hidden_states.shape[0]
                query = attn.to_q(hidden_states)
                key = attn.to_k(encoder_hidden_states)
                value = attn.to_v(encoder_hidden_states)
                query = attn.head_to_batch_dim(query)
                key = attn.head_to_batch_dim(key)
                value = attn.head_to_batch_dim(value)
                probs = attn.get_attention_scores(query, key, None)  # [b*heads, n, tokens]
                cond = probs[probs.shape[0] // 2 :] if b > 1 else probs  # DAAM drops the unconditional half
                if name not in rec.sums:
                    rec.sums[name] = torch.zeros_like(cond)
                    rec.order.append(name)
                rec.sums[name] += cond
                out = torch.bmm(probs, value)
                out = attn.batch_to_head_dim(out)
                return attn.to_out[1](attn.to_out[0](out))

        return Proc()


def run(model, folder, prompt, negative, steps, guidance):
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    pipe = pipe.to(torch.float32)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    size = pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(1234)
    init = torch.randn((1, pipe.unet.config.in_channels, size, size), generator=g)
    rec = Recorder()
    procs = {}
    for name in pipe.unet.attn_processors.keys():
        procs[name] = rec.processor(name) if name.endswith("attn2.processor") else pipe.unet.attn_processors[name]
    pipe.unet.set_attn_processor(procs)
    with torch.no_grad():
        pipe(prompt, negative_prompt=negative, num_inference_steps=steps, guidance_scale=guidance, latents=init.clone(), output_type="latent")
    maps = []
    for name in rec.order:
        s = rec.sums[name]  # [heads, n, tokens]
        heads, n, tokens = s.shape
        side = int(round(n**0.5))
        per_head = s.view(heads, side, side, tokens).permute(0, 3, 1, 2)  # [heads, tokens, h, w]
        for head in per_head:
            up = F.interpolate(head.unsqueeze(1), size=(size, size), mode="bicubic").clamp_(min=0)  # [tokens, 1, size, size]
            maps.append(up)
    maps = torch.stack(maps, 0).mean(0)[:, 0]
    n_tokens = len(pipe.tokenizer.tokenize(prompt)) + 2
    maps = maps[:n_tokens].contiguous()
    out_dir = os.path.join(FIXTURES, "reference", model)
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, "daam.safetensors")
    meta = {"prompt": prompt, "negative_prompt": negative, "steps": str(steps), "guidance": str(guidance), "layers": str(len(rec.order))}
    save_file({"init_latents": init.contiguous(), "maps": maps}, path, metadata=meta)
    print("wrote", path, tuple(maps.shape), "layers", len(rec.order))


run("tiny-sd1", os.path.join(FIXTURES, "tiny-sd1"), "a big red star on a blue striped background", "blurry", 4, 7.5)
run("tiny-sd2", os.path.join(FIXTURES, "tiny-sd2"), "a big red star on a blue striped background", "blurry", 4, 7.5)
run("classroom", os.path.join(HERE, "..", "..", "models", "classroom"), "a skull on a blue background", "", 10, 3.0)
