"""Trains the classroom model (a genuine diffusers Stable Diffusion) and its evaluator from scratch.

    python scripts/classroom/train.py --data DIR [DIR ...] --heldout DIR --out models/classroom \
        --scale gpu|cpu|smoke [--minutes M] [--seed 0]

Stages (the field's standard latent-diffusion recipe, scaled down):
  1. AutoencoderKL, 64x64 RGB -> 4x16x16 latents (scale factor 4): L1 + L2 + edge reconstruction loss and a
     small KL term; then scaling_factor = 1 / std(latents), as Stable Diffusion did.
  2. Evaluator CNN (evaluator.py), one head per world attribute, on renders and on their VAE reconstructions.
  3. CLIPTextModel + UNet2DConditionModel jointly: epsilon-prediction DDPM loss (SD's scaled_linear betas
     0.00085-0.012, 1000 steps) with min-SNR-5 weighting, 10 % caption dropout (empty caption) for
     classifier-free guidance, AdamW with warm-up + cosine, bf16 autocast on a GPU, EMA weights exported.
  4. Export in diffusers layout (f16 safetensors) with the real CLIP BPE tokenizer; reload with
     StableDiffusionPipeline; sample grid; prompt adherence on held-out captions scored by the evaluator.

Stages are time-budgeted (--minutes is the whole run): each measures its step time on its first steps and
sets its cosine schedule to the number of steps that fit, so the run ends on time on any machine. Fixed step
counts (--vae-steps, --unet-steps, --eval-steps) make a run repeatable step for step.
"""
import time

_T0 = time.time()  # the --minutes budget counts from here, before the heavy imports

import argparse  # noqa: E402
import copy  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "reference"))

import evaluator as evalnet  # noqa: E402
from world_data import Split, build_heads, canonical, class_name, encode_labels  # noqa: E402

# Per scale: batch sizes, learning rates, the share of the time budget each stage gets, evaluation sizes.
SCALES = {
    # One H100/H200, ~7 minutes for train.py (the device run adds data generation and packing).
    "gpu": dict(minutes=7.0, vae_batch=256, vae_lr=6e-4, vae_share=0.15, eval_batch=512, eval_lr=2e-3,
                eval_share=0.08, unet_batch=1024, unet_lr=6e-4, ema=0.998, warmup=150, recon_n=65536,
                max_train=None, reserve_s=70, n_prompts=None, n_seeds=16, grid=64, guidance_sweep=[3.0, 5.0, 7.5], gen_batch=1024),
    # Two CPU cores, ~85 minutes: same model, far fewer samples (quality is correspondingly lower).
    "cpu": dict(minutes=85.0, vae_batch=32, vae_lr=6e-4, vae_share=0.12, eval_batch=64, eval_lr=2e-3,
                eval_share=0.06, unet_batch=48, unet_lr=4e-4, ema=0.995, warmup=100, recon_n=4096,
                max_train=24000, reserve_s=540, n_prompts=None, n_seeds=1, grid=64, guidance_sweep=[7.5], gen_batch=64),
    # Minutes on a CPU: exercises every stage and the export with the real architecture, learns ~nothing.
    "smoke": dict(minutes=10.0, vae_batch=8, vae_lr=6e-4, vae_share=0.1, eval_batch=16, eval_lr=2e-3,
                  eval_share=0.05, unet_batch=8, unet_lr=4e-4, ema=0.99, warmup=10, recon_n=256,
                  max_train=2048, reserve_s=120, n_prompts=8, n_seeds=1, grid=4, guidance_sweep=[7.5], gen_batch=8,
                  vae_steps=40, eval_steps=40, unet_steps=30),
}

# Model architecture (the same at every scale, so a smoke run checks the real export). `--arch` picks
# one of ARCHS below and main() installs it into these module globals before anything is built.
N_MERGES = 10000            # v1: truncated CLIP BPE: vocab = 512 bytes + merges + 2 specials
TOKENIZER_DIR = None        # v2: the committed tokenizer folder (studio classroom-tokenizer)
IMAGE_SIZE = 64
TEXT = dict(hidden_size=192, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
            max_position_embeddings=77, hidden_act="quick_gelu", projection_dim=192)
UNET = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
            block_out_channels=(64, 128, 128),
            down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
            attention_head_dim=8, norm_num_groups=32)
VAE = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 3,
           up_block_types=("UpDecoderBlock2D",) * 3, block_out_channels=(32, 64, 64), layers_per_block=1,
           latent_channels=4, sample_size=64, norm_num_groups=32)
# v2 (issue 12): SD's shapes in miniature. 128 px images, a VAE with SD's factor 8 and 4 latent channels
# (four encoder levels, three downsamplings), so the UNet keeps 16x16 latents; SD 1.x's cross-attention
# layout (CrossAttnDownBlock2D x3 + DownBlock2D, UpBlock2D + CrossAttnUpBlock2D x3, a cross-attention mid
# block); a tokenizer that splits every world word exactly as SD's CLIP does.
UNET_V2 = dict(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
               block_out_channels=(64, 128, 128, 128),
               down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
               attention_head_dim=8, norm_num_groups=32)
VAE_V2 = dict(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
              # 32 channels at 128 and 64 px, as v1 had at 64 px: a decode costs 3.6 GFLOP (v1: 1.26); with
              # (32, 64, 128, 128) it was 7.8 GFLOP, 6x v1's, for capacity these flat scenes do not need.
              up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(32, 32, 64, 128), layers_per_block=1,
              latent_channels=4, sample_size=128, norm_num_groups=32)
ARCHS = {
    "v1": dict(IMAGE_SIZE=64, UNET=UNET, VAE=VAE, N_MERGES=10000, TOKENIZER_DIR=None,
               QUALITY_BAR={"shape": 0.85, "colour": 0.90, "character": 0.80, "style": 0.75, "skull_direct": 0.80,
                            "skull_indirect": 0.50}),
    "v2": dict(IMAGE_SIZE=128, UNET=UNET_V2, VAE=VAE_V2, N_MERGES=None,
               TOKENIZER_DIR=os.path.join(HERE, "tokenizer"),
               # Issue 12's bars, at the guidance the model folder's studio.json names.
               QUALITY_BAR={"shape": 0.90, "colour": 0.95, "character": 0.90, "style": 0.85, "skull_direct": 0.95,
                            "skull_indirect": 0.85, "position": 0.60, "second_object": 0.70}),
}
# Stable Diffusion's noise schedule.
BETAS = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")
KL_WEIGHT = 1e-6            # per-sample KL sum vs per-sample summed reconstruction loss, as in SD's VAE
CAPTION_DROPOUT = 0.1
TOKEN_INSERT = 0.1
MIN_SNR_GAMMA = 5.0
MAX_BYTES = 40_000_000      # issue 12: the bundled model stays within 40 MB
QUALITY_BAR = {"shape": 0.85, "colour": 0.90, "character": 0.80, "style": 0.75, "skull_direct": 0.80,
               "skull_indirect": 0.50}

_LOG = []


def log(msg):
    line = f"[{time.time() - _T0:7.1f}s] {msg}"
    print(line, flush=True)
    _LOG.append(line)


def fast_paths(device):
    """bf16 autocast, channels_last and fused AdamW: on a GPU, or on a CPU to test them
    (CLASSROOM_FAST_PATHS=1)."""
    return device.type == "cuda" or os.environ.get("CLASSROOM_FAST_PATHS") == "1"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


class Budget:
    """Turns a stage's seconds into a step count, from the step time measured on its first steps."""

    def __init__(self, name, seconds, device, fixed_steps=None, probe=(5, 25)):
        self.name, self.seconds, self.device = name, seconds, device
        self.total = fixed_steps
        self.fixed = fixed_steps is not None
        self.probe = probe
        self.t_start = time.time()
        self.t_probe = None

    def tick(self, step):
        """Call before each step; returns False when the stage should stop."""
        if not self.fixed:
            if step == self.probe[0]:
                sync(self.device)
                self.t_probe = time.time()
            elif step == self.probe[1]:
                sync(self.device)
                dt = (time.time() - self.t_probe) / (self.probe[1] - self.probe[0])
                self.total = max(self.probe[1] + 1, int((self.seconds - (time.time() - self.t_start)) / dt) + step)
                log(f"{self.name}: {dt * 1000:.1f} ms/step -> {self.total} steps in {self.seconds:.0f} s")
            # A hard stop if the machine slows down later.
            if time.time() - self.t_start > 1.1 * self.seconds + 5:
                log(f"{self.name}: time is up at step {step}")
                self.total = step
        return self.total is None or step < self.total

    def frac(self, step, guess):
        return step / (self.total or guess)


def lr_at(step, base, warmup, frac):
    return base * min(1.0, (step + 1) / warmup) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def normalise(u8):
    return u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_u8(x):
    """[B, 3, H, W] in [-1, 1] -> [B, H, W, 3] uint8."""
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


# ---------------------------------------------------------------------------------------------- tokenizer
def make_tokenizer(folder, captions_all):
    from clip_bpe import write_tokenizer
    from transformers import CLIPTokenizer

    if TOKENIZER_DIR is not None:
        # v2: CLIP's BPE cut to its first 10,000 merges plus every merge a world word needs, written by
        # `studio classroom-tokenizer` and checked against the full vocabulary by the Rust tests.
        os.makedirs(folder, exist_ok=True)
        for name in ("vocab.json", "merges.txt", "special_tokens_map.json", "tokenizer_config.json"):
            shutil.copyfile(os.path.join(TOKENIZER_DIR, name), os.path.join(folder, name))
        with open(os.path.join(folder, "vocab.json")) as f:
            vocab_size = len(json.load(f))
    else:
        vocab_size = write_tokenizer(folder, N_MERGES, pad="<|endoftext|>")
    tok = CLIPTokenizer.from_pretrained(folder)
    assert len(tok) == vocab_size, (len(tok), vocab_size)
    words = sorted({w for c in captions_all for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", c.lower())})
    unk = tok.convert_tokens_to_ids(tok.unk_token)
    report = {"n_merges": N_MERGES, "source": TOKENIZER_DIR or f"first {N_MERGES} CLIP merges", "vocab_size": vocab_size, "n_words": len(words), "unknown": [],
              "multi_token_words": {}}
    for w in words:
        ids = tok(w, add_special_tokens=False).input_ids
        if unk in ids:
            report["unknown"].append(w)
        if len(ids) > 1:
            report["multi_token_words"][w] = tok.convert_ids_to_tokens(ids)
    return tok, report


def tokenize(tok, captions, seed=0):
    """[N, 77] int64 (BOS, tokens, EOS, padded with EOS as SD 1.x does); each distinct caption once.
    Uses the Rust backend's parallel batch encoder and checks it against the tokenizer's own call on a
    sample (they are the same code; the check guards the padding/truncation settings)."""
    uniq = sorted(set(captions))
    ref = lambda texts: tok(texts, padding="max_length", max_length=77, truncation=True).input_ids  # noqa: E731
    backend = getattr(tok, "backend_tokenizer", None)
    ids = None
    if backend is not None:
        try:
            pad = tok.convert_tokens_to_ids(tok.pad_token)
            backend.enable_padding(length=77, pad_id=pad, pad_token=tok.pad_token)
            backend.enable_truncation(77)
            ids = np.array([e.ids for e in backend.encode_batch(uniq)], dtype=np.int64)
            sample = np.random.default_rng(seed).choice(len(uniq), min(500, len(uniq)), replace=False)
            if ids.shape[1] != 77 or not np.array_equal(ids[sample], np.array(ref([uniq[i] for i in sample]))):
                log("tokenize: the batch encoder disagrees with the tokenizer; using the tokenizer")
                ids = None
        except Exception as e:  # an API difference must not stop the run: fall back to the plain call
            log(f"tokenize: batch encoder unavailable ({e!r}); using the tokenizer")
            ids = None
    if ids is None:
        ids = np.array(ref(uniq), dtype=np.int64)
    eos = tok.convert_tokens_to_ids(tok.eos_token)
    lengths = (ids != eos).sum(1) + 1  # BOS + words + the first EOS
    where = {c: i for i, c in enumerate(uniq)}
    rows = np.array([where[c] for c in captions])
    return torch.from_numpy(ids[rows]), int(lengths.max()), int((lengths >= 77).sum())


# ---------------------------------------------------------------------------------------------------- VAE
def train_vae(images, cfg, budget_s, device, log_hist):
    from diffusers import AutoencoderKL

    vae = AutoencoderKL(**VAE).to(device)
    cuda = fast_paths(device)
    if cuda:
        vae = vae.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(vae.parameters(), lr=cfg["vae_lr"], weight_decay=0.0, betas=(0.9, 0.99),
                            **({"fused": True} if cuda else {}))
    budget = Budget("vae", budget_s, device, cfg.get("vae_steps"))
    g = torch.Generator(device=device).manual_seed(cfg["seed"] + 1)
    n, step, B = images.shape[0], 0, cfg["vae_batch"]
    pixels = 3 * images.shape[1] * images.shape[2]
    while budget.tick(step):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, cfg["vae_lr"], 100, budget.frac(step, 10**9))
        x = normalise(images[torch.randint(0, n, (B,), device=device, generator=g)])
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            post = vae.encode(x).latent_dist
            mean, logvar = post.mean.float(), post.logvar.float()
            z = mean + torch.exp(0.5 * logvar) * torch.randn(mean.shape, device=device, generator=g)
            rec = vae.decode(z).sample.float()
        d = rec - x
        l1, l2 = d.abs().mean(), d.square().mean()
        # Edges carry the shapes: match the image gradients too (a cheap stand-in for a perceptual loss).
        edge = (d[..., 1:, :] - d[..., :-1, :]).abs().mean() + (d[..., :, 1:] - d[..., :, :-1]).abs().mean()
        kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).sum((1, 2, 3)).mean()
        loss = l1 + l2 + 0.5 * edge + KL_WEIGHT * kl / pixels
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        if step % 20 == 0:
            log_hist.append((step, loss.item()))
        if step % 250 == 0:
            log(f"vae step {step}/{budget.total} loss {loss.item():.4f} l1 {l1.item():.4f} kl {kl.item():.1f}")
        step += 1
    vae.eval()
    return vae, step


@torch.no_grad()
def encode_all(vae, images, device, batch=1024):
    """Posterior mean and std of every image, f32 [N, 4, 16, 16] each."""
    means, stds = [], []
    for i in range(0, images.shape[0], batch):
        x = normalise(images[i : i + batch])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_paths(device)):
            post = vae.encode(x).latent_dist
        means.append(post.mean.float())
        stds.append(torch.exp(0.5 * post.logvar.float()))
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def decode_all(vae, latents, device, batch=512):
    out = []
    for i in range(0, latents.shape[0], batch):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=fast_paths(device)):
            out.append(to_u8(vae.decode(latents[i : i + batch]).sample))
    return torch.cat(out)


# ------------------------------------------------------------------------------------ text encoder + UNet
def build_text_unet(vocab_size):
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, bos_token_id=vocab_size - 2,
                                        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **TEXT))
    unet = UNet2DConditionModel(cross_attention_dim=TEXT["hidden_size"], **UNET)
    return text, unet


def train_diffusion(lat_mean, lat_std, scale, ids, empty_ids, vocab_size, cfg, budget_s, device, log_hist):
    from diffusers import DDPMScheduler

    torch.manual_seed(cfg["seed"] + 2)
    text, unet = build_text_unet(vocab_size)
    text, unet = text.to(device).train(), unet.to(device).train()
    cuda = fast_paths(device)
    if cuda:
        unet = unet.to(memory_format=torch.channels_last)
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=cfg["unet_lr"], betas=(0.9, 0.999), weight_decay=0.01,
                            **({"fused": True} if cuda else {}))
    ema_unet, ema_text = copy.deepcopy(unet).eval(), copy.deepcopy(text).eval()
    ema_params = list(ema_unet.parameters()) + list(ema_text.parameters())
    for p in ema_params:
        p.requires_grad_(False)
    ac = DDPMScheduler(**BETAS).alphas_cumprod.to(device)
    snr = ac / (1 - ac)
    g = torch.Generator(device=device).manual_seed(cfg["seed"] + 3)
    budget = Budget("diffusion", budget_s, device, cfg.get("unet_steps"))
    n, B, step = lat_mean.shape[0], cfg["unet_batch"], 0
    empty = empty_ids.to(device)[None].expand(B, -1)
    eos_id = int(empty_ids[1])
    pos = torch.arange(ids.shape[1], device=device)
    running = None
    while budget.tick(step):
        lr = lr_at(step, cfg["unet_lr"], cfg["warmup"], budget.frac(step, 10**9))
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, n, (B,), device=device, generator=g)
        z = (lat_mean[idx] + lat_std[idx] * torch.randn(lat_mean[idx].shape, device=device, generator=g)) * scale
        tok = ids[idx]
        # Unknown-word robustness: 10 % of captions get one random vocabulary token inserted at a random
        # place between BOS and EOS, so that words never seen in training ("showing", "emblem") do not
        # derail the prompt. The caption's meaning is unchanged.
        eos_at = (tok == eos_id).int().argmax(1)                       # index of the first EOS
        at = 1 + (torch.rand(B, device=device, generator=g) * eos_at).long().clamp(max=eos_at - 1)
        src = torch.where(pos[None] < at[:, None], pos[None], pos[None] - 1)
        noisy = tok.gather(1, src)
        word = torch.randint(0, vocab_size - 2, (B, 1), device=device, generator=g)
        noisy = torch.where(pos[None] == at[:, None], word, noisy)
        insert = torch.rand(B, device=device, generator=g) < TOKEN_INSERT
        tok = torch.where(insert[:, None], noisy, tok)
        drop = torch.rand(B, device=device, generator=g) < CAPTION_DROPOUT
        tok = torch.where(drop[:, None], empty, tok)
        t = torch.randint(0, BETAS["num_train_timesteps"], (B,), device=device, generator=g)
        noise = torch.randn(z.shape, device=device, generator=g)
        a = ac[t].view(-1, 1, 1, 1)
        zt = a.sqrt() * z + (1 - a).sqrt() * noise
        if cuda:
            zt = zt.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            enc = text(tok)[0]
            pred = unet(zt, t, enc).sample
        per = (pred.float() - noise).square().mean((1, 2, 3))
        w = snr[t].clamp(max=MIN_SNR_GAMMA) / snr[t]   # min-SNR-gamma weighting for epsilon prediction
        loss = (per * w).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        d = min(cfg["ema"], (1 + step) / (10 + step))
        with torch.no_grad():
            torch._foreach_lerp_(ema_params, params, 1 - d)
        if step % 20 == 0:
            v = per.detach().mean().item()
            running = v if running is None else 0.9 * running + 0.1 * v
            log_hist.append((step, v))
        if step % 250 == 0:
            log(f"diffusion step {step}/{budget.total} mse {running:.4f} lr {lr:.2e}")
        step += 1
    return ema_text, ema_unet, step


# ------------------------------------------------------------------------------------------------- export
def write_model(out, vae, text, unet, scale):
    from diffusers import DDIMScheduler

    vae = copy.deepcopy(vae).to("cpu", torch.float32)
    vae.register_to_config(scaling_factor=float(scale))
    vae.to(torch.float16).save_pretrained(os.path.join(out, "vae"), safe_serialization=True)
    copy.deepcopy(unet).to("cpu", torch.float16).save_pretrained(os.path.join(out, "unet"), safe_serialization=True)
    copy.deepcopy(text).to("cpu", torch.float16).save_pretrained(os.path.join(out, "text_encoder"),
                                                                 safe_serialization=True)
    DDIMScheduler(**BETAS, clip_sample=False, set_alpha_to_one=False, steps_offset=1,
                  prediction_type="epsilon").save_pretrained(os.path.join(out, "scheduler"))
    import diffusers

    index = {"_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
             "feature_extractor": [None, None], "image_encoder": [None, None], "requires_safety_checker": False,
             "safety_checker": [None, None], "scheduler": ["diffusers", "DDIMScheduler"],
             "text_encoder": ["transformers", "CLIPTextModel"], "tokenizer": ["transformers", "CLIPTokenizer"],
             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    with open(os.path.join(out, "model_index.json"), "w") as f:
        json.dump(index, f, indent=2)


def folder_bytes(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def check_f16(out):
    from safetensors import safe_open

    dtypes = {}
    for part in ("vae", "unet", "text_encoder"):
        for name in os.listdir(os.path.join(out, part)):
            if name.endswith(".safetensors"):
                with safe_open(os.path.join(out, part, name), "pt") as f:
                    dtypes[part] = sorted({str(f.get_slice(k).get_dtype()) for k in f.keys()})
    return dtypes


# ---------------------------------------------------------------------------------- sampling and metrics
def load_prompts(held, n, seed):
    """The world's fixed held-out prompt set (prompts.json "heldout": text, labels, group), interleaved by
    group so that any prefix (the grid) shows every group; the first n (all when n is None). Without a
    prompts.json, n distinct held-out captions labelled by their renders (group "caption")."""
    path = os.path.join(held.folders[0], "prompts.json")
    if os.path.exists(path):
        with open(path) as f:
            items = json.load(f)["heldout"]
        items = [{"text": x["text"], "labels": x["labels"], "group": x.get("group", "all")} for x in items]
    else:
        rng = np.random.default_rng(seed)
        seen, items = set(), []
        for i in rng.permutation(len(held)):
            if held.captions[i] not in seen:
                seen.add(held.captions[i])
                items.append({"text": held.captions[i], "labels": held.labels[i], "group": "caption"})
    by = {}
    for x in items:
        by.setdefault(x["group"], []).append(x)
    order = []
    while any(by.values()):
        for k in list(by):
            if by[k]:
                order.append(by[k].pop(0))
    return order if n is None else order[:n]


SCORED = ("shape", "colour", "bg", "bg_colour", "style", "size", "position", "shape2", "colour2", "position2")


def score_image(pred, want):
    """{attribute: hit (bool)} for one generated image. pred: {head: class name} from the evaluator;
    want: the prompt's labels, where null means "not asked for" (not scored), except `character` (null:
    no character) and `skull` (false: no skull). Two-object prompts follow the evaluator's canonical
    order (left/top object first); when a two-object prompt names no positions, the object order that
    matches the image better is used."""
    wants = [want]
    if want.get("n_objects") == 2:
        swapped = dict(want)
        for a, b in (("shape", "shape2"), ("colour", "colour2"), ("position", "position2")):
            swapped[a], swapped[b] = want.get(b), want.get(a)
        wants = [want, swapped] if want.get("position") is None else [canonical(want)]

    def hits(w):
        out = {}
        for k in SCORED:
            if w.get(k) is not None and k in pred:
                out[k] = pred[k] == class_name(w[k])
        return out

    best = max((hits(w) for w in wants), key=lambda h: sum(h.values()))
    if "character" in pred:
        if want.get("character") is not None:
            best["character"] = pred["character"] == class_name(want["character"])
        else:
            best["character_absent"] = pred["character"] == "none"
    if "skull" in pred:
        best["skull" if want.get("skull") else "skull_absent"] = pred["skull"] == class_name(bool(want.get("skull")))
    if "n_objects" in pred and want.get("n_objects"):
        best["n_objects"] = pred["n_objects"] == class_name(want["n_objects"])
    return best


def adherence(pred, heads, items):
    """Accuracy per attribute over all images, per prompt group, and the quality-bar numbers.
    pred: {head: [N] class indices}; items: the N images' prompts (dicts with labels and group)."""
    totals, groups = {}, {}
    for i, item in enumerate(items):
        names = {k: heads[k][int(pred[k][i])] for k in heads}
        for k, hit in score_image(names, item["labels"]).items():
            for bucket in (totals, groups.setdefault(item["group"], {})):
                bucket.setdefault(k, []).append(hit)
    mean = lambda d: {k: round(sum(v) / len(v), 4) for k, v in d.items()}  # noqa: E731
    res = {"all": mean(totals), "by_group": {g: mean(d) for g, d in groups.items()},
           "n_images": {k: len(v) for k, v in totals.items()}}
    skull_direct = [h for g, d in groups.items() if g in ("skull", "skull_direct", "skull_synonyms") for h in d.get("skull", [])]
    skull_indirect = [h for g, d in groups.items() if "indirect" in g for h in d.get("skull", [])]
    head = {k: res["all"].get(k) for k in ("shape", "colour", "style")}
    head["character"] = res["by_group"].get("character", {}).get("character", res["all"].get("character"))
    head["skull_direct"] = round(sum(skull_direct) / len(skull_direct), 4) if skull_direct else None
    head["skull_indirect"] = round(sum(skull_indirect) / len(skull_indirect), 4) if skull_indirect else None
    # Where the objects are, and the second object of two-object prompts (its shape).
    head["position"] = res["all"].get("position")
    head["second_object"] = res["all"].get("shape2")
    res["headline"] = head
    return res


@torch.no_grad()
def generate(pipe, prompts, seeds, guidance, steps, device, batch):
    """uint8 [len(prompts), S, S, 3]; image i uses prompts[i] and a generator seeded with seeds[i]."""
    out = []
    for i in range(0, len(prompts), batch):
        gens = [torch.Generator(device=device).manual_seed(int(s)) for s in seeds[i : i + batch]]
        img = pipe(prompt=list(prompts[i : i + batch]), num_inference_steps=steps, guidance_scale=guidance,
                   generator=gens, output_type="np").images
        out.append(torch.from_numpy((np.asarray(img) * 255).round().clip(0, 255).astype(np.uint8)))
    return torch.cat(out)


def save_grid(images_u8, path, cols, zoom=2, pad=2):
    from PIL import Image

    n = images_u8.shape[0]
    rows = (n + cols - 1) // cols
    s = images_u8.shape[1] * zoom
    canvas = Image.new("RGB", (cols * (s + pad) + pad, rows * (s + pad) + pad), (255, 255, 255))
    for i in range(n):
        tile = Image.fromarray(images_u8[i].numpy()).resize((s, s), Image.NEAREST)
        canvas.paste(tile, (pad + (i % cols) * (s + pad), pad + (i // cols) * (s + pad)))
    canvas.save(path)


def plot_losses(path, hists):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(hists), figsize=(5 * len(hists), 3.6))
    for ax, (title, hist) in zip(np.atleast_1d(axes), hists.items()):
        if hist:
            s, v = zip(*hist)
            ax.plot(s, v, lw=0.6, alpha=0.45, color="C0")
            k = max(1, len(v) // 40)
            if len(v) > k:
                sm = np.convolve(v, np.ones(k) / k, mode="valid")
                ax.plot(s[k - 1 :], sm, lw=1.6, color="C1", label=f"mean of {k}")
                ax.legend()
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------------------------------------------- main
def evaluate_model(out, held, scorer, cfg, args, device, metrics, deadline, mark):
    """Reloads the exported folder with StableDiffusionPipeline, scores prompt adherence on the held-out
    prompts x seeds for each guidance scale, and draws a grid per scale (seed 0 of the first prompts: the
    same images that are scored). samples.png is the grid of the recommended (best-scoring) scale."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline.from_pretrained(out, dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    items = load_prompts(held, cfg["n_prompts"], args.seed)
    prompts = [x["text"] for x in items]
    n_grid = min(cfg["grid"], len(prompts))
    n_seeds = cfg["n_seeds"] if scorer is not None else 1
    if scorer is None:
        items = items[:n_grid]
        cfg = {**cfg, "guidance_sweep": [args.guidance]}
    all_items = [x for x in items for _ in range(n_seeds)]
    all_p = [x["text"] for x in all_items]
    all_s = [s for _ in items for s in range(n_seeds)]
    metrics["heldout_prompts"] = {
        "n": len(items), "seeds": list(range(n_seeds)), "steps": args.steps, "scheduler": "DDIMScheduler",
        "height": IMAGE_SIZE, "width": IMAGE_SIZE, "source": "prompts.json 'heldout' of the held-out folder (interleaved by group)",
        "groups": {g: sum(x["group"] == g for x in items) for g in dict.fromkeys(x["group"] for x in items)},
        "scoring": score_image.__doc__.strip()}
    metrics["adherence"] = {}
    sweep = [args.guidance] + [g for g in cfg["guidance_sweep"] if g != args.guidance]
    cols = int(math.ceil(math.sqrt(n_grid)))
    grid_index = [i * n_seeds for i in range(n_grid)]
    for gscale in sweep:
        if time.time() > deadline + 30 and gscale != args.guidance:
            log(f"skipping guidance {gscale}: out of time")
            continue
        imgs = generate(pipe, all_p, all_s, gscale, args.steps, device, cfg["gen_batch"])
        save_grid(imgs[grid_index], os.path.join(out, f"samples_guidance{gscale:g}.png"), cols)
        if gscale == args.guidance:
            mark("grid")
        if scorer is None:
            break
        res = adherence(scorer.predict(imgs), scorer.heads, all_items)
        metrics["adherence"][f"guidance_{gscale:g}"] = res
        log(f"adherence at guidance {gscale:g} ({len(items)} prompts x {n_seeds} seeds): "
            + ", ".join(f"{k} {v}" for k, v in res["headline"].items()))
        log("    all attributes: " + ", ".join(f"{k} {v:.3f}" for k, v in res["all"].items()))
    # The recommended guidance: the best mean of the headline numbers (all scales are recorded above).
    best = args.guidance
    if metrics["adherence"]:
        score = lambda r: np.mean([v for v in r["headline"].values() if v is not None])  # noqa: E731
        best = float(max(metrics["adherence"].items(), key=lambda kv: score(kv[1]))[0].split("_")[1])
        head = metrics["adherence"][f"guidance_{best:g}"]["headline"]
        metrics["recommended_guidance"] = best
        metrics["quality_bar"] = {k: {"bar": b, "measured": head.get(k), "met": head.get(k) is not None and head[k] >= b}
                                  for k, b in QUALITY_BAR.items()}
        metrics["quality_bar"]["guidance"] = best
        log(f"recommended guidance {best:g}: " + ", ".join(
            f"{k} {v['measured']} ({'met' if v['met'] else 'MISSED'})" for k, v in metrics["quality_bar"].items()
            if isinstance(v, dict)))
    shutil.copyfile(os.path.join(out, f"samples_guidance{best:g}.png"), os.path.join(out, "samples.png"))
    # The model folder names its own defaults: `studio generate` and the page read them
    # (pipeline::ModelDefaults), so the recommended guidance is what a user gets without asking.
    with open(os.path.join(out, "studio.json"), "w") as f:
        json.dump({"guidance_scale": best, "num_inference_steps": args.steps}, f, indent=2)
        f.write("\n")
    metrics["grid"] = {"file": "samples.png", "prompts": prompts[:n_grid], "seed": 0, "guidance": best,
                       "steps": args.steps, "scheduler": "DDIMScheduler",
                       "layout": f"{cols} columns, row-major, 2x nearest zoom",
                       "other_guidance": [f"samples_guidance{g:g}.png" for g in sweep
                                          if os.path.exists(os.path.join(out, f"samples_guidance{g:g}.png"))]}
    mark("metrics")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", nargs="+", help="training dataset folder(s) from classroom-data")
    ap.add_argument("--heldout", nargs="+", required=True, help="held-out dataset folder(s) (--split heldout)")
    ap.add_argument("--out", default="models/classroom")
    ap.add_argument("--scale", choices=sorted(SCALES), default="gpu")
    ap.add_argument("--minutes", type=float, help="wall-clock budget of this script (default: per scale)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vae-steps", type=int)
    ap.add_argument("--eval-steps", type=int)
    ap.add_argument("--unet-steps", type=int)
    ap.add_argument("--guidance", type=float, default=7.5, help="guidance of the grid and the headline numbers")
    ap.add_argument("--steps", type=int, default=25, help="DDIM steps for the grid and the metrics")
    ap.add_argument("--n-seeds", type=int, help="seeds per held-out prompt (default: per scale)")
    ap.add_argument("--arch", choices=sorted(ARCHS), default="v2",
                    help="v2: 128 px, VAE factor 8, SD's cross-attention layout, SD-exact tokenizer (issue 12); "
                         "v1: the first classroom model (64 px, factor 4)")
    ap.add_argument("--eval-only", action="store_true",
                    help="no training: reload --out (model + evaluator), redraw the grid, rescore adherence")
    args = ap.parse_args()
    if not args.eval_only and not args.data:
        ap.error("--data is required unless --eval-only")

    globals().update(ARCHS[args.arch])
    cfg = dict(SCALES[args.scale])
    cfg["seed"] = args.seed
    cfg["arch"] = args.arch
    for k in ("vae_steps", "eval_steps", "unet_steps", "n_seeds"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    if args.minutes is not None:
        cfg["minutes"] = args.minutes
    if args.guidance not in cfg["guidance_sweep"]:
        cfg["guidance_sweep"] = sorted(cfg["guidance_sweep"] + [args.guidance])
    total_s = cfg["minutes"] * 60
    deadline = _T0 + total_s
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    log(f"scale {args.scale}, device {device} "
        f"({torch.cuda.get_device_name() if device.type == 'cuda' else f'{torch.get_num_threads()} threads'}), "
        f"budget {total_s:.0f} s, torch {torch.__version__}")

    out = args.out
    os.makedirs(out, exist_ok=True)
    metrics_path = os.path.join(out, "metrics.json")
    metrics = {"scale": args.scale, "seed": args.seed, "command": " ".join(sys.argv),
               "device": torch.cuda.get_device_name() if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)",
               "versions": {"torch": torch.__version__}, "config": dict(cfg), "timings_s": {}}
    if args.eval_only and os.path.exists(metrics_path):
        with open(metrics_path) as f:
            metrics = {**json.load(f), "eval_only_command": " ".join(sys.argv)}
    hists = {"VAE loss (L1+L2+edge+KL)": [], "diffusion MSE (epsilon)": [], "evaluator loss (sum of CE)": []}
    marks = {"start": time.time()}

    def mark(name):
        marks[name] = time.time()
        metrics.setdefault("timings_s", {})[name] = round(marks[name] - marks[list(marks)[-2]], 1)

    def save(final=False):
        if final:
            metrics["timings_s"]["total"] = round(time.time() - _T0, 1)
        with open(metrics_path, "w") as f:
            json.dump(metrics, f, indent=1)
        with open(os.path.join(out, "training_log.txt" if not args.eval_only else "eval_log.txt"), "w") as f:
            f.write(" ".join(sys.argv) + "\n" + "\n".join(_LOG) + "\n")
        if any(hists.values()):
            try:
                plot_losses(os.path.join(out, "loss.png"), hists)
            except Exception as e:  # a plot must never cost the trained weights
                log(f"loss plot failed: {e!r}")

    held = Split(args.heldout)
    if args.eval_only:
        scorer = evalnet.ExportedEvaluator(os.path.join(out, "evaluator"), device)
        evaluate_model(out, held, scorer, cfg, args, device, metrics, deadline, mark)
        save()
        log(f"done in {time.time() - _T0:.0f} s: {out}")
        return

    for part in ("vae", "unet", "text_encoder", "tokenizer", "scheduler", "evaluator"):
        shutil.rmtree(os.path.join(out, part), ignore_errors=True)
    for name in ("samples.png", "loss.png", "metrics.json", "model_index.json"):
        if os.path.exists(os.path.join(out, name)):
            os.remove(os.path.join(out, name))

    # ---- data
    train = Split(args.data)
    if cfg["max_train"] and len(train) > cfg["max_train"]:
        # Every training image is encoded by the VAE once: on a CPU that alone would take hours.
        log(f"data: using the first {cfg['max_train']} of {len(train)} training images (--scale {args.scale})")
        train.truncate(cfg["max_train"])
    for name, sp in (("training", train), ("held-out", held)):
        if sp.images.shape[1] != IMAGE_SIZE:
            sys.exit(f"the {name} data has {sp.images.shape[1]} px images, --arch {args.arch} trains on {IMAGE_SIZE} px: "
                     f"write it with `classroom-data --size {IMAGE_SIZE}`")
    heads = build_heads(train.meta, [train, held])
    log(f"data: {len(train)} training images from {len(args.data)} folder(s), {len(held)} held-out; "
        f"heads: {', '.join(f'{k}({len(v)})' for k, v in heads.items())}")
    images = torch.from_numpy(train.images).to(device)
    held_images = torch.from_numpy(held.images).to(device)
    labels = torch.from_numpy(encode_labels(train, heads)).to(device)
    held_labels = torch.from_numpy(encode_labels(held, heads))
    prompt_texts = {x["text"] for x in load_prompts(held, None, args.seed)}
    metrics["data"] = {"train": len(train), "heldout": len(held), "train_folders": args.data,
                       "heldout_folders": args.heldout, "unique_train_captions": len(set(train.captions)),
                       "heldout_prompts_seen_in_training": len(prompt_texts & set(train.captions))}

    tok, tok_report = make_tokenizer(os.path.join(out, "tokenizer"),
                                     train.captions + held.captions + sorted(prompt_texts))
    vocab_size = tok_report["vocab_size"]
    ids, max_len, n_trunc = tokenize(tok, train.captions)
    empty_ids = tok("", padding="max_length", max_length=77, return_tensors="pt").input_ids[0]
    tok_report.update(max_tokens=max_len, truncated_captions=n_trunc)
    metrics["tokenizer"] = tok_report
    log(f"tokenizer: vocab {vocab_size}, {tok_report['n_words']} caption words, "
        f"unknown {tok_report['unknown']}, longest caption {max_len} tokens ({n_trunc} truncated)")
    ids = ids.to(device)
    mark("data")

    # ---- stage 1: VAE
    vae, vae_steps = train_vae(images, cfg, cfg["vae_share"] * total_s, device,
                               hists["VAE loss (L1+L2+edge+KL)"])
    with torch.no_grad():
        m, s = encode_all(vae, images[: min(4096, len(images))], device)
        z = m + s * torch.randn_like(s)
        lat_std, lat_mean = float(z.std()), float(z.mean())
        scale = 1.0 / lat_std
        hm, _ = encode_all(vae, held_images[:1024], device)
        rec = decode_all(vae, hm, device)
        err = (rec.float() - held_images[:1024].float()) / 255.0
        psnr = float((10 * torch.log10(1.0 / err.square().mean((1, 2, 3)).clamp(min=1e-10))).mean())
    metrics["vae"] = {"steps": vae_steps, "batch": cfg["vae_batch"], "lr": cfg["vae_lr"], "kl_weight": KL_WEIGHT,
                      "latent_mean": lat_mean, "latent_std": lat_std, "scaling_factor": scale,
                      "heldout_l1_pixels": float(err.abs().mean() * 255), "heldout_psnr_db": psnr}
    log(f"vae: {vae_steps} steps, latent mean {lat_mean:.3f} std {lat_std:.3f} -> scaling_factor {scale:.4f}; "
        f"held-out PSNR {psnr:.1f} dB, L1 {float(err.abs().mean() * 255):.2f}/255")
    lat_m, lat_s = encode_all(vae, images, device)
    mark("vae")
    save()

    # ---- stage 2: evaluator (a failure here must not cost the diffusion model)
    evaluator_dir = os.path.join(out, "evaluator")
    scorer = None
    try:
        recon = decode_all(vae, lat_m[: cfg["recon_n"]], device)
        model, ev_hist = evalnet.train(images, labels, heads, cfg["eval_share"] * total_s, cfg["eval_batch"],
                                       cfg["eval_lr"], device, args.seed + 4, recon=recon,
                                       max_steps=cfg.get("eval_steps"), log=log)
        hists["evaluator loss (sum of CE)"] = ev_hist
        evalnet.export(model, heads, evaluator_dir, {
            "data": "classroom-data renders (training split) and, for half of each batch, their VAE "
                    "reconstructions; Gaussian pixel noise (sigma <= 0.06 after normalisation)",
            "batch": cfg["eval_batch"], "lr": cfg["eval_lr"], "seed": args.seed + 4,
            "two_objects": "shape/colour/position = the left (or top) object, shape2/colour2/position2 = the other"})
        scorer = evalnet.ExportedEvaluator(evaluator_dir, device)
        model.eval()
        with torch.no_grad():
            before = {k: [] for k in heads}
            for i in range(0, len(held), 1024):
                outs = model(evalnet.normalise(held_images[i : i + 1024]))
                for k, o in zip(heads, outs):
                    before[k].append(o.argmax(-1).cpu())
            before = {k: torch.cat(v) for k, v in before.items()}
            hm, _ = encode_all(vae, held_images, device)
            held_rec = decode_all(vae, hm, device)
        acc = evalnet.accuracy(scorer.predict(held_images), held_labels, heads)
        acc_rec = evalnet.accuracy(scorer.predict(held_rec), held_labels, heads)
        metrics["evaluator"] = {
            "steps": ev_hist[-1][0] + 1 if ev_hist else 0, "heldout_images": len(held),
            "heldout_accuracy": acc, "min_heldout_accuracy": min(acc.values()), "bar": 0.98,
            "heldout_vae_reconstruction_accuracy": acc_rec,
            "heldout_accuracy_before_export": evalnet.accuracy(before, held_labels, heads)}
        log("evaluator held-out accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc.items()))
        log("  on VAE reconstructions:    " + ", ".join(f"{k} {v:.4f}" for k, v in acc_rec.items()))
        del model, recon
    except Exception:
        import traceback

        log("evaluator stage FAILED, continuing without it:\n" + traceback.format_exc())
    mark("evaluator")
    save()

    # ---- stage 3: text encoder + UNet
    left = deadline - time.time() - cfg["reserve_s"]
    text, unet, unet_steps = train_diffusion(lat_m, lat_s, scale, ids, empty_ids, vocab_size, cfg, left, device,
                                             hists["diffusion MSE (epsilon)"])
    last = [v for _, v in hists["diffusion MSE (epsilon)"][-20:]]
    metrics["diffusion"] = {"steps": unet_steps, "batch": cfg["unet_batch"],
                            "samples_seen": unet_steps * cfg["unet_batch"], "lr": cfg["unet_lr"],
                            "warmup": cfg["warmup"], "ema": cfg["ema"],
                            "final_mse": float(np.mean(last)) if last else None,
                            "caption_dropout": CAPTION_DROPOUT, "random_token_insertion": TOKEN_INSERT,
                            "min_snr_gamma": MIN_SNR_GAMMA}
    del lat_m, lat_s, images
    mark("diffusion")

    # ---- export
    write_model(out, vae, text, unet, scale)
    sizes = {p: folder_bytes(os.path.join(out, p)) for p in ("vae", "unet", "text_encoder", "tokenizer", "scheduler")}
    total_bytes = sum(sizes.values()) + os.path.getsize(os.path.join(out, "model_index.json"))
    params = {"vae": sum(p.numel() for p in vae.parameters()), "unet": sum(p.numel() for p in unet.parameters()),
              "text_encoder": sum(p.numel() for p in text.parameters())}
    metrics["model"] = {"params": params, "bytes": sizes, "total_bytes": total_bytes,
                        "evaluator_bytes": folder_bytes(evaluator_dir) if scorer else None,
                        "dtypes": check_f16(out), "within_25MB": total_bytes <= MAX_BYTES}
    log(f"export: {total_bytes / 1e6:.2f} MB ({', '.join(f'{k} {v / 1e6:.2f}' for k, v in sizes.items())}), "
        f"params {params}, dtypes {metrics['model']['dtypes']}")
    del vae, text, unet
    mark("export")
    save()

    # ---- reload with diffusers, sample grid, prompt adherence
    try:
        evaluate_model(out, held, scorer, cfg, args, device, metrics, deadline, mark)
    except Exception:
        import traceback

        log("evaluation FAILED (the model is exported):\n" + traceback.format_exc())
        metrics["evaluation_error"] = traceback.format_exc()
    save(final=True)
    log(f"done in {time.time() - _T0:.0f} s: {out}")


if __name__ == "__main__":
    main()
