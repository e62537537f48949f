"""Baseline timings in diffusers/PyTorch for `studio bench --baseline`.

Times, on SD 1.5-shaped models with random weights (no download: configs written out below,
as in runwayml/stable-diffusion-v1-5's config.json files) and optionally a model folder:
text encoding (1×77 tokens), one UNet step (batch 2, 64×64 latents, i.e. one CFG step at
512 px) and a VAE decode (1×4×64×64 → 512 px). Median of `--repeats` after one warm-up.
Writes JSON {"<device>/<model>/<stage>": seconds} where device is cpu, cuda-fp32 or cuda-fp16.

Run: python scripts/reference/bench_diffusers.py --out bench-torch.json [--cuda] [--model DIR]
"""
import argparse
import json
import statistics
import time

import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

SD15_UNET = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
SD15_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, sample_size=512,
)
SD15_CLIP = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                 max_position_embeddings=77, hidden_act="quick_gelu")


def timeit(fn, device, repeats):
    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()
    with torch.no_grad():
        fn()
        sync()
        ts = []
        for _ in range(repeats):
            s = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - s)
    return statistics.median(ts)


def bench(name, te, unet, vae, latent, device, dtype, repeats, out, tag):
    te, unet, vae = te.to(device, dtype), unet.to(device, dtype), vae.to(device, dtype)
    ids = torch.randint(0, te.config.vocab_size - 2, (1, 77), device=device)
    x = torch.randn(2, unet.config.in_channels, latent, latent, device=device, dtype=dtype)
    ctx = torch.randn(2, 77, unet.config.cross_attention_dim, device=device, dtype=dtype)
    t = torch.tensor([500.0, 500.0], device=device)
    z = torch.randn(1, vae.config.latent_channels, latent, latent, device=device, dtype=dtype)
    out[f"{tag}/{name}/text_encoder"] = timeit(lambda: te(ids)[0], device, repeats)
    out[f"{tag}/{name}/unet_step_b2"] = timeit(lambda: unet(x, t, ctx).sample, device, repeats)
    out[f"{tag}/{name}/vae_decode"] = timeit(lambda: vae.decode(z).sample, device, repeats)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        with torch.no_grad():
            unet(x, t, ctx)
            torch.cuda.synchronize()
        out[f"{tag}/{name}/unet_peak_gb"] = torch.cuda.max_memory_allocated() / 1e9
    for k, v in out.items():
        if k.startswith(f"{tag}/{name}/"):
            print(f"{k:<40} {v:.4f}", flush=True)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--cuda", action="store_true")
    p.add_argument("--no-cpu-sd15", action="store_true")
    p.add_argument("--model")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    out = {}
    sd15 = (CLIPTextModel(CLIPTextConfig(**SD15_CLIP)).eval(), UNet2DConditionModel(**SD15_UNET).eval(), AutoencoderKL(**SD15_VAE).eval())
    models = []
    if a.model:
        te = CLIPTextModel.from_pretrained(a.model, subfolder="text_encoder").eval()
        unet = UNet2DConditionModel.from_pretrained(a.model, subfolder="unet").eval()
        vae = AutoencoderKL.from_pretrained(a.model, subfolder="vae").eval()
        models.append((a.model.rstrip("/").split("/")[-1], (te, unet, vae), unet.config.sample_size))
    cpu = torch.device("cpu")
    for name, (te, unet, vae), latent in models:
        bench(name, te, unet, vae, latent, cpu, torch.float32, a.repeats, out, "cpu")
    if not a.no_cpu_sd15:
        bench("sd15", *sd15, 64, cpu, torch.float32, 1, out, "cpu")
    if a.cuda and torch.cuda.is_available():
        gpu = torch.device("cuda")
        for dtype, tag in [(torch.float32, "cuda-fp32"), (torch.float16, "cuda-fp16")]:
            bench("sd15", *sd15, 64, gpu, dtype, max(a.repeats, 10), out, tag)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
