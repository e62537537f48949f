"""An SD 1.5-shaped model with random weights, saved as the hub serves SD 1.5: diffusers layout,
fp16 variant files (`*.fp16.safetensors`, what the studio's hub downloader picks), the real CLIP
tokenizer of tests/fixtures/tokenizer-clip and SD's DDIM scheduler config.

Its images are noise; it exists to prove that a checkpoint of SD 1.5's size (1.7 GB UNet in
f16, 2.1 GB in all) loads and runs in the browser studio (tests/browser/large.mjs), since no real
weights can be downloaded on our machines. Configs: scripts/reference/bench_diffusers.py.

Run: python scripts/reference/make_sd15_random.py OUT_DIR
"""
import json
import shutil
import sys
from pathlib import Path

import torch
from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel

sys.path.insert(0, str(Path(__file__).parent))
from bench_diffusers import SD15_CLIP, SD15_UNET, SD15_VAE  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def main(out: Path) -> None:
    torch.manual_seed(0)
    out.mkdir(parents=True, exist_ok=True)
    for name, model in [
        ("text_encoder", CLIPTextModel(CLIPTextConfig(**SD15_CLIP))),
        ("unet", UNet2DConditionModel(**SD15_UNET)),
        ("vae", AutoencoderKL(**SD15_VAE)),
    ]:
        model.half().save_pretrained(out / name, variant="fp16", safe_serialization=True)
        del model
    shutil.copytree(ROOT / "tests/fixtures/tokenizer-clip", out / "tokenizer", dirs_exist_ok=True)
    DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                  set_alpha_to_one=False, steps_offset=1).save_pretrained(out / "scheduler")
    shutil.copy(ROOT / "tests/fixtures/tiny-sd1/model_index.json", out / "model_index.json")
    sizes = {str(p.relative_to(out)): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    print(json.dumps({"out": str(out), "bytes": sum(sizes.values()), "files": sizes}, indent=1))


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
