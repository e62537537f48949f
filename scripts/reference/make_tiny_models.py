"""Writes the tiny random Stable Diffusion folders used by the parity tests (diffusers layout).

  tiny-sd1: SD 1.x style  — quick_gelu CLIP, conv proj_in/out, single attention_head_dim, epsilon,
            DDIM-style scheduler config with "leading" spacing, VAE with 2 levels (scale 2).
  tiny-sd2: SD 2.x style  — gelu CLIP, use_linear_projection, per-block attention_head_dim,
            upcast_attention, v_prediction with "trailing" spacing, pad token "!", VAE with 3
            levels (scale 4), f16 weights on disk.

Run: python scripts/reference/make_tiny_models.py   (needs torch + diffusers; see DESIGN.md)
Deterministic: torch.manual_seed per component.
"""
import os
import sys

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from clip_bpe import write_tokenizer  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "fixtures")
N_MERGES = 2000  # truncated vocabulary keeps the token table small


def randomize(module, seed):
    # diffusers zero-initialises some layers (conv_out, proj_out); random everything so parity
    # tests exercise every weight.
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p[0].numel() if p.dim() > 1 else 1
                p.copy_(torch.randn(p.shape, generator=g) / max(fan_in, 1) ** 0.5 if p.dim() > 1 else 0.1 * torch.randn(p.shape, generator=g))


def model_index(folder, scheduler_class):
    import json

    with open(os.path.join(folder, "model_index.json"), "w") as f:
        json.dump(
            {
                "_class_name": "StableDiffusionPipeline",
                "_diffusers_version": "0.42.1",
                "feature_extractor": [None, None],
                "requires_safety_checker": False,
                "safety_checker": [None, None],
                "scheduler": ["diffusers", scheduler_class],
                "text_encoder": ["transformers", "CLIPTextModel"],
                "tokenizer": ["transformers", "CLIPTokenizer"],
                "unet": ["diffusers", "UNet2DConditionModel"],
                "vae": ["diffusers", "AutoencoderKL"],
            },
            f,
            indent=2,
        )


def make(name, clip_kw, unet_kw, vae_kw, sched_kw, pad, dtype):
    folder = os.path.join(ROOT, name)
    vocab = write_tokenizer(os.path.join(folder, "tokenizer"), N_MERGES, pad=pad)
    torch.manual_seed(0)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=vocab, max_position_embeddings=77, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=1, **clip_kw))
    randomize(te, 1)
    te.to(dtype).save_pretrained(os.path.join(folder, "text_encoder"), safe_serialization=True)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_kw)
    randomize(unet, 2)
    unet.to(dtype).save_pretrained(os.path.join(folder, "unet"), safe_serialization=True)
    torch.manual_seed(0)
    vae = AutoencoderKL(**vae_kw)
    randomize(vae, 3)
    vae.to(dtype).save_pretrained(os.path.join(folder, "vae"), safe_serialization=True)
    DDIMScheduler(**sched_kw).save_pretrained(os.path.join(folder, "scheduler"))
    model_index(folder, "DDIMScheduler")
    print("wrote", folder)


COMMON_SCHED = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)

make(
    "tiny-sd1",
    dict(hidden_size=32, intermediate_size=37, num_hidden_layers=5, num_attention_heads=4, hidden_act="quick_gelu", layer_norm_eps=1e-5),
    dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=2,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32,
        attention_head_dim=8,
        norm_num_groups=32,
    ),
    dict(block_out_channels=(32, 64), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=32, sample_size=16, scaling_factor=0.18215),
    dict(COMMON_SCHED, prediction_type="epsilon", timestep_spacing="leading"),
    "<|endoftext|>",
    torch.float32,
)

make(
    "tiny-sd2",
    dict(hidden_size=48, intermediate_size=64, num_hidden_layers=3, num_attention_heads=3, hidden_act="gelu", layer_norm_eps=1e-5, projection_dim=48),
    dict(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 32, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=48,
        attention_head_dim=(2, 4, 8),
        use_linear_projection=True,
        upcast_attention=True,
        norm_num_groups=16,
        flip_sin_to_cos=True,
        freq_shift=0,
    ),
    dict(block_out_channels=(16, 32, 32), in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, latent_channels=4, norm_num_groups=16, layers_per_block=1, sample_size=32, scaling_factor=0.18215),
    dict(COMMON_SCHED, prediction_type="v_prediction", timestep_spacing="trailing", rescale_betas_zero_snr=False),
    "!",
    torch.float16,
)
