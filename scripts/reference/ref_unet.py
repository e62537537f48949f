"""Writes the reference outputs of diffusers' UNet2DConditionModel for the Rust UNet parity tests.

Run (from the repository root, after make_tiny_models.py):
    /var/cache/erasure-studio/venv/bin/python scripts/reference/ref_unet.py
(torch + diffusers, see DESIGN.md; CPU, float32; deterministic: every input comes from a seeded
torch.Generator.)

Writes tests/fixtures/reference/<model>/unet.safetensors for
  tiny-sd1, tiny-sd2:  the model folders' UNets (tiny-sd2 is stored in f16 and is run in f32 after
                       loading, as the Rust code computes in f32 from the f16 weights).
      sample                 [2, 4, 8, 8]        seeded N(0,1)
      timesteps              [2]                 [999, 500.5] (the largest training step: the
                                                 largest sinusoid arguments; and a fractional one)
      encoder_hidden_states  [2, 77, cross_dim]  seeded N(0,1)
      t_emb                  [2, block_out[0]]   time_proj output (sinusoidal embedding)
      emb                    [2, time_embed_dim] time_embedding output
      down.<i>, mid, up.<i>  [2, c, h, w]        each block's output (for locating a mismatch)
      out                    [2, 4, 8, 8]        unet(sample, timesteps, encoder_hidden_states).sample
  unet-variant:        a UNet built here that exercises what the folders do not: odd latent size
                       9x7 (forward_upsample_size), downsample_padding 0, center_input_sample,
                       flip_sin_to_cos false + freq_shift 1, time_embedding_dim, time_cond_proj_dim
                       (+ timestep_cond), time_embedding_act_fn, timestep_post_act,
                       per-block layers_per_block / transformer_layers_per_block /
                       only_cross_attention, mid_block_scale_factor, resnet_out_scale_factor (which
                       these block types ignore), in/out channels 5/3, conv_out_kernel 1, one
                       timestep broadcast over the batch. Its weights are stored in the same file
                       (under their diffusers names) and its config in the metadata `config`; the
                       reference tensors are prefixed `ref.` so the loader can skip them.
"""
import json
import os

import torch
from diffusers import UNet2DConditionModel
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
def run(unet, hw, timesteps, seed, with_cond=False):
    unet = unet.float().eval()
    g = torch.Generator().manual_seed(seed)
    c = unet.config
    h, w = hw
    sample = torch.randn((2, c.in_channels, h, w), generator=g)
    cross = c.cross_attention_dim if isinstance(c.cross_attention_dim, int) else c.cross_attention_dim[0]
    ehs = torch.randn((2, 77, cross), generator=g)
    timesteps = torch.tensor(timesteps, dtype=torch.float32)
    cond = torch.randn((2, c.time_cond_proj_dim), generator=g) if with_cond else None

    captured = {}

    def hook(name):
        def f(_module, _inputs, output):
            captured[name] = output[0] if isinstance(output, tuple) else output
        return f

    handles = [unet.time_proj.register_forward_hook(hook("t_emb")), unet.time_embedding.register_forward_hook(hook("emb"))]
    for i, b in enumerate(unet.down_blocks):
        handles.append(b.register_forward_hook(hook(f"down.{i}")))
    if unet.mid_block is not None:
        handles.append(unet.mid_block.register_forward_hook(hook("mid")))
    for i, b in enumerate(unet.up_blocks):
        handles.append(b.register_forward_hook(hook(f"up.{i}")))
    out = unet(sample, timesteps, ehs, timestep_cond=cond).sample
    for hd in handles:
        hd.remove()

    tensors = {"sample": sample, "timesteps": timesteps, "encoder_hidden_states": ehs, **captured, "out": out}
    if cond is not None:
        tensors["timestep_cond"] = cond
    return tensors


def write(name, tensors, metadata=None):
    folder = os.path.join(ROOT, "reference", name)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "unet.safetensors")
    save_file({k: v.contiguous() for k, v in tensors.items()}, path, metadata=metadata)
    print(path, {k: list(v.shape) for k, v in tensors.items() if not any(s in k for s in ("_blocks.", "mid_block.", "conv_", "time_embedding."))})


def main():
    torch.manual_seed(0)
    for i, model in enumerate(["tiny-sd1", "tiny-sd2"]):
        unet = UNet2DConditionModel.from_pretrained(os.path.join(ROOT, model, "unet"))
        write(model, run(unet, (8, 8), [999.0, 500.5], 300 + i))

    config = dict(
        sample_size=[9, 7],
        in_channels=5,
        out_channels=3,
        center_input_sample=True,
        flip_sin_to_cos=False,
        freq_shift=1,
        down_block_types=["CrossAttnDownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"],
        mid_block_type="UNetMidBlock2DCrossAttn",
        up_block_types=["CrossAttnUpBlock2D", "UpBlock2D", "CrossAttnUpBlock2D"],
        only_cross_attention=[True, False, True],  # the mid block ignores it
        block_out_channels=[8, 12, 16],
        layers_per_block=[1, 2, 1],
        downsample_padding=0,
        mid_block_scale_factor=1.5,
        norm_num_groups=4,
        norm_eps=1e-6,
        cross_attention_dim=12,
        transformer_layers_per_block=[2, 1, 1],
        attention_head_dim=[2, 2, 4],
        use_linear_projection=False,
        resnet_out_scale_factor=2.0,
        time_embedding_dim=24,
        time_embedding_act_fn="silu",
        timestep_post_act="silu",
        time_cond_proj_dim=6,
        conv_in_kernel=3,
        conv_out_kernel=1,
    )
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**config)
    randomize(unet, 11)
    out = {f"ref.{k}": v for k, v in run(unet, (9, 7), [37.25], 400, with_cond=True).items()}
    weights = {k: v.detach().clone() for k, v in unet.state_dict().items()}
    write("unet-variant", {**weights, **out}, metadata={"config": json.dumps(config)})


if __name__ == "__main__":
    main()
