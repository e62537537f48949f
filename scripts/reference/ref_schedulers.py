"""Writes the scheduler parity fixtures of `crates/schedulers/tests/` with diffusers.

Run (from the repository root, ~5 s on a CPU):
    /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_schedulers.py
Needs torch + diffusers 0.42.1 + safetensors (see DESIGN.md). Deterministic: the initial latents and
the scheduler noise come from seeded `torch.Generator`s; no network.

Outputs, under tests/fixtures/reference/schedulers/:
  cases.json            the scheduler configs (as found in real `scheduler_config.json` files) and the
                        list of cases; the Rust test builds each case from exactly this JSON.
  reference.safetensors tensors named after the cases:
      alphas_cumprod/<config>            f32 [T]     DDIMScheduler.alphas_cumprod (no zero-SNR clamp)
      schedule/<case>/timesteps          f64 [m]     scheduler.timesteps after set_timesteps(n) (m = n except
                                                     PNDM: n + 1 for PLMS, n + 9 with Runge-Kutta steps)
      schedule/<case>/sigmas             f32 [n+1]   scheduler.sigmas (Euler, Euler-a, DPM only)
      schedule/<case>/init_noise_sigma   f64 [1]
      run/<case>/latents0                f32 [1,4,8,8] initial noise, before init_noise_sigma
      run/<case>/noise/<k>               f32 [1,4,8,8] noise drawn by step k (Euler-a, LCM)
      run/<case>/step/<k>                f32 [1,4,8,8] latents after step k (every k for PNDM)
      run/<case>/timesteps               f64 [m]     the timesteps run (PNDM only: its list repeats entries)
      run/<case>/x0/<k>                  f32 [1,4,8,8] predicted clean sample x̂₀ of step k, every k: the step
                                                     output's pred_original_sample (DDIM, Euler, Euler-a),
                                                     `denoised` (LCM), convert_model_output's x0 prediction
                                                     (DPM: scheduler.model_outputs[-1] after the step), and for
                                                     PNDM, which returns none, the studio's definition
                                                     (sqrt(ᾱ_t)⁻¹·(x_t − sqrt(1 − ᾱ_t)·ε) at timesteps[k], see pndm_x0)
  A run is the pipeline loop with a stand-in "UNet" both sides can compute:
      latents = latents0 * init_noise_sigma
      for t in timesteps: x = scale_model_input(latents, t); eps = 0.9*x + 0.01*t/1000; latents = step(eps, t, latents)
  PNDM cases are appended after all others, so the existing cases and tensors stay byte-identical.
  The x0/<k> tensors were added later: recording them draws no randomness, so every other tensor is unchanged.
"""
import copy
import json
import os

import numpy as np
import torch
from safetensors.torch import save_file

import diffusers
from diffusers import (
    DDIMScheduler,
    DPMSolverMultistepScheduler,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    LCMScheduler,
    PNDMScheduler,
)
from diffusers.schedulers import scheduling_euler_ancestral_discrete as mod_euler_a
from diffusers.schedulers import scheduling_lcm as mod_lcm

assert diffusers.__version__ == "0.42.1", f"fixtures are pinned to diffusers 0.42.1, found {diffusers.__version__}"

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "schedulers")
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

CLASSES = {
    "ddim": DDIMScheduler,
    "euler": EulerDiscreteScheduler,
    "euler-a": EulerAncestralDiscreteScheduler,
    "lcm": LCMScheduler,
    "dpm": DPMSolverMultistepScheduler,
    "pndm": PNDMScheduler,
}
# The schedulers whose cases came first; PNDM's are appended at the end (see the docstring).
BASE_KINDS = ("ddim", "euler", "euler-a", "lcm", "dpm")


def load_json(path):
    with open(path) as f:
        return json.load(f)


# Real-world configs. sd15_pndm is runwayml/stable-diffusion-v1-5's scheduler_config.json verbatim: it
# has no timestep_spacing / prediction_type, so every scheduler falls back to its own defaults
# (diffusers drops the source class's defaults in from_config, see configuration_utils.extract_init_dict).
CONFIGS = {
    "sd1": load_json(os.path.join(FIXTURES, "tiny-sd1", "scheduler", "scheduler_config.json")),
    "sd2": load_json(os.path.join(FIXTURES, "tiny-sd2", "scheduler", "scheduler_config.json")),
    "sd15_pndm": {
        "_class_name": "PNDMScheduler",
        "_diffusers_version": "0.6.0",
        "beta_end": 0.012,
        "beta_schedule": "scaled_linear",
        "beta_start": 0.00085,
        "num_train_timesteps": 1000,
        "set_alpha_to_one": False,
        "skip_prk_steps": True,
        "steps_offset": 1,
        "trained_betas": None,
        "clip_sample": False,
    },
    "linear": {"_class_name": "DDIMScheduler", "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02,
               "num_train_timesteps": 1000, "clip_sample": False},
    "cosine": {"_class_name": "DDIMScheduler", "beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 1000,
               "clip_sample": False, "timestep_spacing": "trailing"},
    "zsnr": {**load_json(os.path.join(FIXTURES, "tiny-sd2", "scheduler", "scheduler_config.json")),
             "rescale_betas_zero_snr": True},
    # trained_betas with a short training schedule exercises num_train_timesteps != 1000.
    "trained": {"_class_name": "DDIMScheduler", "num_train_timesteps": 100, "clip_sample": False,
                "trained_betas": [round(float(b), 6) for b in np.linspace(0.001, 0.05, 100)],
                "timestep_spacing": "linspace"},
}


def make(kind, config, overrides):
    cfg = copy.deepcopy(CONFIGS[config])
    cfg.update(overrides)
    return CLASSES[kind].from_config(cfg)


def f64(x):
    return torch.as_tensor(np.asarray(x, dtype=np.float64))


tensors = {}
schedules = []
runs = []

for name, cfg in CONFIGS.items():
    tensors[f"alphas_cumprod/{name}"] = DDIMScheduler.from_config(cfg).alphas_cumprod.to(torch.float32).contiguous()


def add_schedule(kind, config, steps, overrides=None):
    overrides = overrides or {}
    tag = "-".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "default"
    name = f"{kind}/{config}/{tag}/{steps}"
    s = make(kind, config, overrides)
    s.set_timesteps(steps)
    tensors[f"schedule/{name}/timesteps"] = f64(s.timesteps.numpy().astype(np.float64))
    if kind in ("euler", "euler-a", "dpm"):
        tensors[f"schedule/{name}/sigmas"] = s.sigmas.to(torch.float32).contiguous()
    tensors[f"schedule/{name}/init_noise_sigma"] = f64([float(s.init_noise_sigma)])
    schedules.append({"name": name, "scheduler": kind, "config": config, "overrides": overrides, "steps": steps})


STEPS = [1, 3, 4, 20, 50]
for kind in ("ddim", "euler", "euler-a", "dpm"):
    for spacing in ("leading", "trailing", "linspace"):
        for n in STEPS:
            add_schedule(kind, "sd1", n, {"timestep_spacing": spacing})
for n in STEPS:
    add_schedule("lcm", "sd1", n)
for kind in BASE_KINDS:
    for config in ("sd15_pndm", "sd2", "linear", "cosine", "zsnr", "trained"):
        add_schedule(kind, config, 20)
for kind in ("euler", "dpm"):
    for n in (3, 20):
        add_schedule(kind, "sd1", n, {"use_karras_sigmas": True})
        add_schedule(kind, "sd1", n, {"final_sigmas_type": "sigma_min"})
add_schedule("euler", "sd2", 20, {"timestep_type": "continuous"})
add_schedule("lcm", "sd1", 4, {"original_inference_steps": 20})
add_schedule("dpm", "sd1", 20, {"lower_order_final": False, "timestep_spacing": "leading"})


# --- 3-step runs -----------------------------------------------------------------------------------
recorded = []


def recording(fn):
    def wrapper(*args, **kwargs):
        out = fn(*args, **kwargs)
        recorded.append(out.clone())
        return out

    return wrapper


# The stochastic schedulers draw their noise inside step(); record what they drew so Rust can feed it.
mod_euler_a.randn_tensor = recording(mod_euler_a.randn_tensor)
mod_lcm.randn_tensor = recording(mod_lcm.randn_tensor)

latents0 = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float32)


def pndm_x0(s, model_output, sample, t):
    """x̂₀ of a PNDM step (diffusers returns none): the DDIM estimate at the step's own timestep from the
    sample the step receives and the raw model output, float32 like the rest of PNDM's arithmetic."""
    alpha_prod_t = s.alphas_cumprod[int(t)]
    beta_prod_t = 1 - alpha_prod_t
    if s.config.prediction_type == "epsilon":
        return (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
    if s.config.prediction_type == "v_prediction":
        return (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
    return model_output  # "sample" (PNDMScheduler rejects it in step)


def add_run(kind, config, steps, overrides=None, record_all=False):
    overrides = overrides or {}
    tag = "-".join(f"{k}={v}" for k, v in sorted(overrides.items())) or "default"
    name = f"{kind}/{config}/{tag}/{steps}"
    s = make(kind, config, overrides)
    s.set_timesteps(steps)
    recorded.clear()
    gen = torch.Generator().manual_seed(1)
    latents = latents0 * s.init_noise_sigma
    tensors[f"run/{name}/latents0"] = latents0.clone()
    x0s = []
    for k, t in enumerate(s.timesteps):
        x = s.scale_model_input(latents, t)
        eps = 0.9 * x + 0.01 * float(t) / 1000.0
        if kind == "pndm":
            x0 = pndm_x0(s, eps, latents, t)
        if kind in ("euler-a", "lcm"):
            out = s.step(eps, t, latents, generator=gen)
        else:
            out = s.step(eps, t, latents)
        latents = out.prev_sample
        if kind == "lcm":
            x0 = out.denoised
        elif kind == "dpm":
            x0 = s.model_outputs[-1]  # convert_model_output's x0 prediction of this step
        elif kind != "pndm":
            x0 = out.pred_original_sample
        x0s.append(x0.to(torch.float32).clone().contiguous())
        if steps <= 3 or k == steps - 1 or record_all:
            tensors[f"run/{name}/step/{k}"] = latents.clone().contiguous()
    if record_all:
        tensors[f"run/{name}/timesteps"] = f64(s.timesteps.numpy().astype(np.float64))
    for k, noise in enumerate(recorded):
        tensors[f"run/{name}/noise/{k}"] = noise.contiguous()
    for k, x0 in enumerate(x0s):
        tensors[f"run/{name}/x0/{k}"] = x0
    runs.append({"name": name, "scheduler": kind, "config": config, "overrides": overrides, "steps": steps,
                 "noise_draws": len(recorded)})


for kind in BASE_KINDS:
    add_run(kind, "sd1", 3)  # epsilon, leading
    add_run(kind, "sd2", 3)  # v_prediction, trailing
    if kind != "euler-a":  # diffusers: EulerAncestral raises NotImplementedError for "sample"
        add_run(kind, "sd1", 3, {"prediction_type": "sample", "timestep_spacing": "linspace"})
add_run("dpm", "sd1", 20)  # exercises the second-order multistep update
add_run("euler", "zsnr", 3)
add_run("ddim", "sd1", 3, {"clip_sample": True, "set_alpha_to_one": True})
add_run("dpm", "sd1", 4, {"use_karras_sigmas": True})

# --- PNDM (appended) ---------------------------------------------------------------------------------
# sd15_pndm has skip_prk_steps true (PLMS); the DDIM-written configs lack the key, so PNDMScheduler's
# default False applies there (Runge-Kutta warm-up, which needs >= 4 steps in diffusers).
PLMS = {"skip_prk_steps": True}
PRK = {"skip_prk_steps": False}
for spacing in ("leading", "trailing", "linspace"):
    for n in STEPS:
        add_schedule("pndm", "sd15_pndm", n, {"timestep_spacing": spacing})
    for n in STEPS[2:]:
        add_schedule("pndm", "sd15_pndm", n, {**PRK, "timestep_spacing": spacing})
add_schedule("pndm", "sd15_pndm", 2)
for config in ("sd1", "sd2", "linear", "cosine", "zsnr", "trained"):
    add_schedule("pndm", config, 20)
    add_schedule("pndm", config, 20, PLMS)
# Every step recorded: the PLMS warm-up (steps 0-1), AB2, AB3, then AB4; PRK's 12 Runge-Kutta evaluations.
for n in (1, 2, 3, 20):
    add_run("pndm", "sd15_pndm", n, record_all=True)  # epsilon, leading, PLMS
for n in (3, 20):
    add_run("pndm", "sd2", n, PLMS, record_all=True)  # v_prediction, trailing
add_run("pndm", "sd15_pndm", 20, {"prediction_type": "v_prediction", "timestep_spacing": "linspace"}, record_all=True)
add_run("pndm", "sd15_pndm", 4, {"set_alpha_to_one": True, "timestep_spacing": "trailing"}, record_all=True)
add_run("pndm", "sd1", 4, record_all=True)  # PRK, epsilon
add_run("pndm", "sd1", 20, record_all=True)  # PRK then 4th-order multistep
add_run("pndm", "sd2", 6, record_all=True)  # PRK, v_prediction, trailing
add_run("pndm", "zsnr", 3, PLMS, record_all=True)  # PNDM has no zero-SNR option: from_config drops it
add_run("pndm", "trained", 20, PLMS, record_all=True)  # T = 100, trained betas, linspace
add_run("pndm", "cosine", 5, record_all=True)  # PRK on the cosine schedule, trailing

os.makedirs(OUT, exist_ok=True)
save_file({k: v.contiguous() for k, v in tensors.items()}, os.path.join(OUT, "reference.safetensors"))
with open(os.path.join(OUT, "cases.json"), "w") as f:
    json.dump({"configs": CONFIGS, "schedules": schedules, "runs": runs}, f, indent=1)
    f.write("\n")
print(f"{len(schedules)} schedules, {len(runs)} runs, {len(tensors)} tensors -> {OUT}")
