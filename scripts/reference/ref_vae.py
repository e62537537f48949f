"""Writes the reference outputs of diffusers' AutoencoderKL for the Rust VAE parity tests.

Run (from the repository root, after make_tiny_models.py):
    /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_vae.py
(torch + diffusers, see DESIGN.md; CPU, float32; deterministic: every input comes from a seeded
torch.Generator.)

Writes tests/fixtures/reference/<model>/vae.safetensors for
  tiny-sd1, tiny-sd2:  the model folders' VAEs (tiny-sd2 is stored in f16 and is run in f32 after
                       loading, as the Rust code computes in f32 from the f16 weights).
      latents  [2, 4, 8, 8]        seeded N(0,1), already divided by scaling_factor
      decoded  [2, 3, 8s, 8s]      vae.decode(latents).sample (raw decoder output)
      image    [2, 3, 8s, 8s]      seeded U(-1, 1)
      mean, logvar [2, 4, 8, 8]    vae.encode(image).latent_dist.{mean, logvar} (logvar clamped)
  vae-variant:         a VAE built here that exercises what the folders do not: layers_per_block 2,
                       no mid-block attention, no quant_conv / post_quant_conv, 3 levels with
                       unequal widths, non-square latents. Its weights are stored in the same file
                       (under their diffusers names) and its config in the metadata `config`; the
                       reference tensors are prefixed `ref.` so the loader can skip them.
"""
import json
import os

import torch
from diffusers import AutoencoderKL
from safetensors.torch import save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")


def randomize(module, seed):
    # Same scheme as make_tiny_models.py: every weight random, norms' weights near 1.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5 if p.dim() > 1 else 0.1 * torch.randn(p.shape, generator=g))


@torch.no_grad()
def run(vae, latent_hw, seed):
    vae = vae.float().eval()
    g = torch.Generator().manual_seed(seed)
    s = 2 ** (len(vae.config.block_out_channels) - 1)
    h, w = latent_hw
    latents = torch.randn((2, vae.config.latent_channels, h, w), generator=g)
    image = torch.rand((2, vae.config.in_channels, h * s, w * s), generator=g) * 2 - 1
    decoded = vae.decode(latents).sample
    dist = vae.encode(image).latent_dist
    return {
        "latents": latents,
        "decoded": decoded,
        "image": image,
        "mean": dist.mean,
        "logvar": dist.logvar,
    }


def write(name, tensors, metadata=None):
    folder = os.path.join(ROOT, "reference", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "vae.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    print(path, {k: list(v.shape) for k, v in tensors.items() if "coder." not in k})


def main():
    torch.manual_seed(0)
    for i, model in enumerate(["tiny-sd1", "tiny-sd2"]):
        vae = AutoencoderKL.from_pretrained(os.path.join(ROOT, model, "vae"))
        write(model, run(vae, (8, 8), 100 + i))

    config = dict(
        in_channels=3,
        out_channels=3,
        down_block_types=["DownEncoderBlock2D"] * 3,
        up_block_types=["UpDecoderBlock2D"] * 3,
        block_out_channels=[4, 8, 12],
        layers_per_block=2,
        latent_channels=4,
        norm_num_groups=2,
        sample_size=16,
        scaling_factor=0.13025,
        shift_factor=0.0609,
        use_quant_conv=False,
        use_post_quant_conv=False,
        mid_block_add_attention=False,
    )
    vae = AutoencoderKL(**config)
    randomize(vae, 7)
    out = {f"ref.{k}": v for k, v in run(vae, (3, 5), 200).items()}
    weights = {k: v.detach().clone() for k, v in vae.state_dict().items()}
    write("vae-variant", {**weights, **out}, metadata={"config": json.dumps(config)})


if __name__ == "__main__":
    main()
