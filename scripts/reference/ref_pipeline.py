"""Reference runs of diffusers' StableDiffusionPipeline on the tiny fixture models.

For each model folder and each deterministic scheduler (DDIM, Euler, DPM-Solver++ 2M, PNDM when
available) runs 3 steps with classifier-free guidance and a negative prompt from fixed initial
latents, and writes the initial latents, the final latents (before VAE scaling) and the raw
decoder output to tests/fixtures/reference/<model>/pipeline.safetensors.

Stochastic schedulers (Euler ancestral, LCM) draw noise from torch's generator, which cannot be
reproduced outside torch; their parity is tested per scheduler with recorded noise instead.

Run: /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_pipeline.py
"""
import json
import os

import torch
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerDiscreteScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
)
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
SCHEDULERS = {"ddim": DDIMScheduler, "euler": EulerDiscreteScheduler, "dpm": DPMSolverMultistepScheduler, "pndm": PNDMScheduler}
PROMPT = "a big red star on a blue striped background"
NEGATIVE = "blurry, ugly"


def run(model, folder=None, schedulers=SCHEDULERS):
    folder = folder or os.path.join(ROOT, model)
    pipe = StableDiffusionPipeline.from_pretrained(folder, safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    pipe = pipe.to(torch.float32)
    size = pipe.unet.config.sample_size
    g = torch.Generator().manual_seed(1234)
    init = torch.randn((1, pipe.unet.config.in_channels, size, size), generator=g)
    out = {"init_latents": init.contiguous()}
    meta = {"prompt": PROMPT, "negative_prompt": NEGATIVE, "steps": "3", "guidance": "7.5"}
    base_config = pipe.scheduler.config
    for name, cls in schedulers.items():
        # Real SD 1.x folders ship PNDM with skip_prk_steps=True (PLMS only).
        extra = {"skip_prk_steps": True} if name == "pndm" else {}
        pipe.scheduler = cls.from_config(base_config, **extra)
        with torch.no_grad():
            latents = pipe(
                PROMPT,
                negative_prompt=NEGATIVE,
                num_inference_steps=3,
                guidance_scale=7.5,
                latents=init.clone(),
                output_type="latent",
            ).images
            image = pipe.vae.decode(latents / pipe.vae.config.scaling_factor).sample
        out[f"{name}.latents"] = latents.contiguous()
        out[f"{name}.image"] = image.contiguous()
        meta[f"{name}.timesteps"] = json.dumps([float(t) for t in pipe.scheduler.timesteps])
    os.makedirs(os.path.join(ROOT, "reference", model), exist_ok=True)
    path = os.path.join(ROOT, "reference", model, "pipeline.safetensors")
    save_file(out, path, metadata=meta)
    print("wrote", path)


for m in ["tiny-sd1", "tiny-sd2"]:
    run(m)
# The bundled classroom model (real trained weights, f16 on disk, run in f32 here and in Rust).
run("classroom", os.path.join(ROOT, "..", "..", "models", "classroom"), {k: SCHEDULERS[k] for k in ["ddim", "euler"]})
