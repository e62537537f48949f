"""The classroom evaluator: a small CNN with one classification head per world attribute.

Forward pass of the exported model (what `config.json` documents and the Rust port reproduces), on an
8-bit RGB image [B, 3, S, S] (NCHW; S = 64, or 128 for the classroom v2 model):
    x = pixel / 127.5 - 1                                  # pixel in 0..255
    for each conv i in config["convs"]:                   # 3x3, padding 1, stride 1 or 2, bias (BatchNorm folded in)
        x = relu(conv2d(x, convs.i.weight, convs.i.bias, stride, padding=1))
    x = x.flatten(1)                                       # [B, C*H*W] in C, H, W order (PyTorch flatten of NCHW)
    h = relu(fc.weight @ x + fc.bias)                      # [B, hidden]
    logits[name] = heads.<name>.weight @ h + heads.<name>.bias   # one [B, n_classes] per head
The predicted class is argmax(logits[name]), named by config["heads"][k]["classes"].
The spatial map is flattened rather than pooled so that position ("left", "top", ...) stays readable.
"""
import json
import math
import os
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

# (out_channels, stride) of each 3x3 conv: 64 -> 32 -> 16 -> 8 -> 4 pixels.
CONVS = [(32, 1), (64, 2), (64, 1), (128, 2), (128, 1), (128, 2), (128, 1), (64, 2)]
# The same network for 128 px images (classroom v2): one more stride-2 conv in front, so the map
# reaching the first 64-channel conv is 64 px again and the flattened features keep their size.
CONVS_BY_SIZE = {64: CONVS, 128: [(32, 1), (32, 2)] + CONVS[1:]}
HIDDEN = 256


class Evaluator(nn.Module):
    def __init__(self, heads, size=64):
        super().__init__()
        self.head_names = list(heads)
        self.size = size
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        cin, s = 3, size
        for cout, stride in CONVS_BY_SIZE[size]:
            self.convs.append(nn.Conv2d(cin, cout, 3, stride, 1, bias=False))
            self.norms.append(nn.BatchNorm2d(cout))
            cin, s = cout, s // stride
        self.fc = nn.Linear(cin * s * s, HIDDEN)
        self.heads = nn.ModuleDict({k: nn.Linear(HIDDEN, len(v)) for k, v in heads.items()})

    def forward(self, x):
        for conv, norm in zip(self.convs, self.norms):
            x = F.relu(norm(conv(x)))
        h = F.relu(self.fc(x.flatten(1)))
        return [self.heads[k](h) for k in self.head_names]


def normalise(images_u8):
    """[B, 64, 64, 3] uint8 (HWC) -> [B, 3, 64, 64] float in [-1, 1]."""
    return images_u8.permute(0, 3, 1, 2).float() / 127.5 - 1.0


def folded_state(model):
    """Plain conv weights with BatchNorm (eval statistics) folded in, as exported."""
    out = {}
    for i, (conv, norm) in enumerate(zip(model.convs, model.norms)):
        scale = norm.weight / torch.sqrt(norm.running_var + norm.eps)
        out[f"convs.{i}.weight"] = conv.weight * scale[:, None, None, None]
        out[f"convs.{i}.bias"] = norm.bias - norm.running_mean * scale
    out["fc.weight"], out["fc.bias"] = model.fc.weight, model.fc.bias
    for k in model.head_names:
        out[f"heads.{k}.weight"], out[f"heads.{k}.bias"] = model.heads[k].weight, model.heads[k].bias
    return {k: v.detach().float().cpu().contiguous() for k, v in out.items()}


class ExportedEvaluator:
    """Runs the exported safetensors exactly as documented above (f16 weights, computed in f32)."""

    def __init__(self, folder, device="cpu"):
        with open(os.path.join(folder, "config.json")) as f:
            self.config = json.load(f)
        self.w = {k: v.float().to(device) for k, v in load_file(os.path.join(folder, "model.safetensors")).items()}
        self.heads = {h["name"]: h["classes"] for h in self.config["heads"]}
        self.device = device

    @torch.no_grad()
    def logits(self, images_u8):
        x = normalise(images_u8.to(self.device))
        for i, layer in enumerate(self.config["convs"]):
            x = F.relu(F.conv2d(x, self.w[f"convs.{i}.weight"], self.w[f"convs.{i}.bias"], layer["stride"], 1))
        h = F.relu(F.linear(x.flatten(1), self.w["fc.weight"], self.w["fc.bias"]))
        return {k: F.linear(h, self.w[f"heads.{k}.weight"], self.w[f"heads.{k}.bias"]) for k in self.heads}

    def predict(self, images_u8, batch=1024):
        """{head: [N] class indices} for uint8 images [N, 64, 64, 3]."""
        out = {k: [] for k in self.heads}
        for i in range(0, images_u8.shape[0], batch):
            for k, v in self.logits(images_u8[i : i + batch]).items():
                out[k].append(v.argmax(-1).cpu())
        return {k: torch.cat(v) for k, v in out.items()}


def export(model, heads, folder, train_info):
    os.makedirs(folder, exist_ok=True)
    state = {k: v.half() for k, v in folded_state(model).items()}
    save_file(state, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    size = side = model.size
    convs = []
    cin = 3
    for i, (cout, stride) in enumerate(CONVS_BY_SIZE[side]):
        convs.append({"name": f"convs.{i}", "in": cin, "out": cout, "kernel": 3, "stride": stride, "padding": 1,
                      "activation": "relu", "out_size": size // stride})
        cin, size = cout, size // stride
    config = {
        "format": "erasure-studio classroom evaluator v1",
        "input": {"height": side, "width": side, "layout": "NCHW, RGB", "dtype": "uint8 image",
                  "normalisation": "x = pixel / 127.5 - 1"},
        "convs": convs,
        "flatten": {"order": "C, H, W (PyTorch x.flatten(1) of NCHW)", "features": cin * size * size},
        "fc": {"name": "fc", "in": cin * size * size, "out": HIDDEN, "activation": "relu"},
        "heads": [{"name": k, "tensor": f"heads.{k}", "classes": v} for k, v in heads.items()],
        "weights_dtype": "float16 (compute in float32)",
        "forward": "x = pixel/127.5-1; for each conv: x = relu(conv2d_3x3(x, w, b, stride, padding=1)); "
                   "h = relu(fc(x.flatten(1))); logits[head] = heads.<head>(h); class = argmax",
        "training": train_info,
    }
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=1)


def accuracy(pred, labels, heads):
    """{head: accuracy} over the rows where the attribute is labelled."""
    out = {}
    for j, k in enumerate(heads):
        m = labels[:, j] >= 0
        if m.sum() > 0:
            out[k] = float((pred[k][m] == labels[m, j]).float().mean())
    return out


def train(images, labels, heads, budget_s, batch, lr, device, seed, recon=None, max_steps=None, log=print):
    """images: [N, 64, 64, 3] uint8 tensor on `device`; labels: [N, n_heads] int64 on `device`;
    recon: optional [R, 64, 64, 3] uint8 VAE reconstructions of images[:R] (generated images look like these).
    Trains for `budget_s` seconds (or max_steps); returns (model, loss history)."""
    g = torch.Generator(device=device).manual_seed(seed)
    torch.manual_seed(seed)
    model = Evaluator(heads, size=images.shape[1]).to(device).to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    use_amp = device.type == "cuda" or os.environ.get("CLASSROOM_FAST_PATHS") == "1"
    n = images.shape[0]
    hist, t0, step, total = [], time.time(), 0, max_steps
    warm = 50
    while True:
        # Step time measured on steps 5..30 sets the cosine schedule's length to fit budget_s.
        if total is None and step in (5, 30):
            if device.type == "cuda":
                torch.cuda.synchronize()
            if step == 5:
                t5 = time.time()
            else:
                dt = (time.time() - t5) / 25
                total = max(60, int((budget_s - (time.time() - t0)) / dt) + step)
                log(f"evaluator: {dt * 1000:.1f} ms/step -> {total} steps in {budget_s:.0f} s")
        if total is None and time.time() - t0 > 1.1 * budget_s + 5:
            total = step
        horizon = total or 10**9
        if step >= horizon:
            break
        frac = step / horizon
        cur = lr * min(1.0, (step + 1) / warm) * (0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = cur
        idx = torch.randint(0, n, (batch,), device=device, generator=g)
        x = images[idx]
        if recon is not None:
            # Half the batch (where a reconstruction exists) is seen through the VAE.
            use = (torch.rand(batch, device=device, generator=g) < 0.5) & (idx < recon.shape[0])
            x = torch.where(use[:, None, None, None], recon[idx.clamp(max=recon.shape[0] - 1)], x)
        x = normalise(x).contiguous(memory_format=torch.channels_last)
        sigma = torch.rand(batch, 1, 1, 1, device=device, generator=g) * 0.06
        x = x + sigma * torch.randn(x.shape, device=device, generator=g)
        y = labels[idx]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            outs = model(x)
        # Mean over labelled rows per head (a head with no labelled row in the batch adds 0, not NaN).
        loss = sum(F.cross_entropy(o.float(), y[:, j], ignore_index=-100, reduction="sum")
                   / (y[:, j] >= 0).sum().clamp(min=1) for j, o in enumerate(outs))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 25 == 0:
            hist.append((step, loss.item()))
        if step % 500 == 0:
            log(f"evaluator step {step}/{total} loss {loss.item():.4f} lr {cur:.2e}")
        step += 1
    model.eval()
    return model, hist
