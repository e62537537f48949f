"""Reference values for the inference-time steering methods (crates/erasure/src/{sld,safree,leace,
inlp,ring_a_bell}.rs), re-implemented here in PyTorch following the official code's semantics:

- SLD: ml-research/safe-latent-diffusion `src/sld/sld_pipeline.py` (lines 452-500) = diffusers
  `pipelines/deprecated/stable_diffusion_safe` (`SafetyConfig` presets). Guidance on 16 steps of
  recorded tiny-sd1 noise predictions for all four presets, plus two whole runs of diffusers'
  `StableDiffusionPipelineSafe` itself (final latents) for the end-to-end check.
- SAFREE: jaeihn/SAFREE `models/modified_stable_diffusion_pipeline.py` (`projection_matrix`,
  `safree_projection`, `_masked_encode_prompt`, `f_beta`, the self-validating filter in `__call__`),
  on the classroom model (real trained weights, so the skull token is really a trigger).
- LEACE: EleutherAI/concept-erasure `concept_erasure/leace.py` + `shrinkage.py` (defaults: affine,
  constrain_cov_trace, shrinkage, svd_tol 0.01), in float64, on recorded tiny-sd1 token embeddings.
  One deliberate deviation, shared with the Rust code: after the trace-constraint mix (leace.py
  lines 227-251) the official code re-factors `I - P` as `u*sqrt(s)` and `vh*sqrt(s)`, which scales
  the *columns* of `vh`, so `proj_left @ proj_right != I - P` for a non-symmetric P. We keep the
  mixed P itself (what the code computes before that line). That branch cannot trigger with exact
  whitening, so a synthetic P exercises it.
- INLP: shauli-ravfogel/nullspace_projection `src/debias.py` (`get_debiasing_projection`,
  autoregressive, no dropout, Ben-Israel intersection of nullspaces) with a closed-form classifier,
  sklearn's `RidgeClassifier(alpha=1.0)` (labels -1/+1, intercept by centring, predicts `score > 0`),
  so that the Rust port can be compared number for number.
- Ring-A-Bell: CharlesGong12/RECE `attack_methods/RingABell.py` (mean over batches of 8 of the
  per-batch mean of `e(concept prompt) - e(plain prompt)`).

Writes tests/fixtures/reference/steering/{sld,sld_e2e,safree,leace,ring_a_bell}.safetensors.
Run: /var/cache/erasure-studio/venv/bin/python scripts/reference/steering_reference.py
"""
import json
import math
import os

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, StableDiffusionPipelineSafe
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer

torch.set_grad_enabled(False)
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
TINY = os.path.join(ROOT, "tests", "fixtures", "tiny-sd1")
CLASSROOM = os.path.join(ROOT, "models", "classroom")
OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "steering")
os.makedirs(OUT, exist_ok=True)


def save(name, tensors, meta):
    path = os.path.join(OUT, name)
    save_file({k: v.detach().to(torch.float32).contiguous() for k, v in tensors.items()}, path, metadata=meta)
    print("wrote", path, os.path.getsize(path), "bytes")


def load_text(folder):
    tok = CLIPTokenizer.from_pretrained(os.path.join(folder, "tokenizer"))
    te = CLIPTextModel.from_pretrained(os.path.join(folder, "text_encoder"), torch_dtype=torch.float32).eval()
    return tok, te


def encode(tok, te, text):
    """diffusers' encode_prompt: 77 tokens, last hidden state [77, d], pooled [d], real-token count."""
    t = tok(text, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt")
    out = te(t.input_ids)
    return out.last_hidden_state[0], out.pooler_output[0], int(t.attention_mask.sum())


# ---------------------------------------------------------------------------------------------
# SLD
# ---------------------------------------------------------------------------------------------
PRESETS = {  # diffusers SafetyConfig: warm-up, guidance scale s_S, threshold λ, momentum s_m, β_m
    "weak": dict(sld_warmup_steps=15, sld_guidance_scale=20, sld_threshold=0.0, sld_momentum_scale=0.0, sld_mom_beta=0.0),
    "medium": dict(sld_warmup_steps=10, sld_guidance_scale=1000, sld_threshold=0.01, sld_momentum_scale=0.3, sld_mom_beta=0.4),
    "strong": dict(sld_warmup_steps=7, sld_guidance_scale=2000, sld_threshold=0.025, sld_momentum_scale=0.5, sld_mom_beta=0.7),
    "max": dict(sld_warmup_steps=0, sld_guidance_scale=5000, sld_threshold=1.0, sld_momentum_scale=0.5, sld_mom_beta=0.7),
}
SLD_PROMPT = "a big red star on a blue striped background"
SLD_CONCEPT = "a red star"


def sld_guide(eps_u, eps_c, eps_s, i, guidance, p, momentum):
    """One step of SLD guidance, in the order of sld_pipeline.py lines 469-500."""
    noise_guidance = eps_c - eps_u
    if momentum is None:
        momentum = torch.zeros_like(noise_guidance)
    scale = torch.clamp(torch.abs(eps_c - eps_s) * p["sld_guidance_scale"], max=1.0)  # Eq. 6
    safety_scale = torch.where((eps_c - eps_s) >= p["sld_threshold"], torch.zeros_like(scale), scale)  # Eq. 6
    g_s = torch.mul(eps_s - eps_u, safety_scale)  # Eq. 4
    g_s = g_s + p["sld_momentum_scale"] * momentum  # Eq. 7
    momentum = p["sld_mom_beta"] * momentum + (1 - p["sld_mom_beta"]) * g_s  # Eq. 8
    if i >= p["sld_warmup_steps"]:
        noise_guidance = noise_guidance - g_s  # Eq. 3
    return eps_u + guidance * noise_guidance, momentum


def sld_reference():
    pipe = StableDiffusionPipelineSafe.from_pretrained(TINY, safety_checker=None, requires_safety_checker=False, feature_extractor=None)
    pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)
    tok, te, unet, sched = pipe.tokenizer, pipe.text_encoder, pipe.unet, pipe.scheduler
    size = unet.config.sample_size
    g = torch.Generator().manual_seed(4321)
    init = torch.randn((1, unet.config.in_channels, size, size), generator=g)

    # 1) Noise predictions of a plain CFG run, with the safety concept in the same batch.
    steps, guidance = 16, 7.5
    ctx = torch.cat([encode(tok, te, "")[0][None], encode(tok, te, SLD_PROMPT)[0][None], encode(tok, te, SLD_CONCEPT)[0][None]])
    sched.set_timesteps(steps)
    latents = init * sched.init_noise_sigma
    eu, ec, es = [], [], []
    for t in sched.timesteps:
        x = sched.scale_model_input(torch.cat([latents] * 3), t)
        e = unet(x, t, encoder_hidden_states=ctx).sample
        eu.append(e[0:1]), ec.append(e[1:2]), es.append(e[2:3])
        latents = sched.step(e[0:1] + guidance * (e[1:2] - e[0:1]), t, latents).prev_sample
    tensors = {"eps_uncond": torch.cat(eu), "eps_cond": torch.cat(ec), "eps_safety": torch.cat(es)}
    for name, p in PRESETS.items():
        momentum, outs = None, []
        for i in range(steps):
            out, momentum = sld_guide(eu[i], ec[i], es[i], i, guidance, p, momentum)
            outs.append(out)
        tensors[f"{name}.guided"] = torch.cat(outs)
    save("sld.safetensors", tensors, {"guidance": str(guidance), "steps": str(steps), "presets": json.dumps(PRESETS)})

    # 2) Whole runs of diffusers' StableDiffusionPipelineSafe (final latents from the callback).
    e2e = {"init_latents": init}
    runs = [("medium", 12), ("max", 4)]
    for name, n in runs:
        pipe.safety_concept = SLD_CONCEPT
        seen = {}

        def cb(i, t, lat):
            seen["latents"] = lat.clone()

        pipe(SLD_PROMPT, num_inference_steps=n, guidance_scale=7.5, latents=init.clone(), callback=cb, callback_steps=1, output_type="np", **PRESETS[name])
        e2e[f"{name}.latents"] = seen["latents"]
    save("sld_e2e.safetensors", e2e, {"prompt": SLD_PROMPT, "safety_concept": SLD_CONCEPT, "guidance": "7.5", "scheduler": "ddim", "runs": json.dumps(runs)})


# ---------------------------------------------------------------------------------------------
# SAFREE
# ---------------------------------------------------------------------------------------------
SAFREE_KEYWORDS = ["a skull", "a skull symbol", "a death's head", "a cranium"]
SAFREE_PROMPTS = ["a photo of a skull on a blue background, big", "a drawing of a red circle on orange stripes"]
ALPHA = 0.01


def projection_matrix(E):
    """Projector onto the span of the columns of E [d, n]: E (EᵀE)⁺ Eᵀ (official `projection_matrix`)."""
    return E @ torch.pinverse(E.T @ E) @ E.T


def masked_pooled(tok, te, prompt):
    """`_masked_encode_prompt`: the prompt (padding="longest") once per real token with that token
    replaced by id 0; the pooled (EOS) outputs [n_t, d]."""
    ids = tok(prompt, padding="longest", return_tensors="pt").input_ids
    n_t = ids.shape[1] - 2
    if ids.shape[1] > tok.model_max_length:
        ids = ids[:, : tok.model_max_length]
        n_t = tok.model_max_length - 2
    masked = ids.repeat(n_t, 1)
    for i in range(n_t):
        masked[i, i + 1] = 0
    return te(masked).pooler_output


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def f_beta(z, upperbound_timestep=10, artist=False):
    t, k = (5.5, 3.5) if artist else (5.333, 2.5)
    return round(upperbound_timestep * sigmoid(2.0 * k * (10 * z - t)))  # Python round: ties to even


def safree_reference():
    tok, te = load_text(CLASSROOM)
    kw = torch.stack([encode(tok, te, k)[1] for k in SAFREE_KEYWORDS]).double()  # pooled [k, d]
    cs = projection_matrix(kw.T)
    tensors = {"keyword_pooled": kw, "concept_projection": cs}
    meta = {"keywords": json.dumps(SAFREE_KEYWORDS), "prompts": json.dumps(SAFREE_PROMPTS), "alpha": str(ALPHA)}
    for n, prompt in enumerate(SAFREE_PROMPTS):
        text_e, _, n_tokens = encode(tok, te, prompt)
        text_e = text_e.double()
        p_emb = masked_pooled(tok, te, prompt).double()
        n_t, dim = p_emb.shape
        ms = projection_matrix(p_emb.T)
        I_m_cs = torch.eye(dim, dtype=torch.float64) - cs
        dist = torch.norm(I_m_cs @ p_emb.T, dim=0)
        means = torch.stack([torch.mean(torch.cat((dist[:i], dist[i + 1 :]))) for i in range(n_t)])
        keep = (dist < (1.0 + ALPHA) * means).double()  # 1: safe token, 0: trigger
        ones = torch.ones(tok.model_max_length, dtype=torch.float64)
        ones[1 : n_t + 1] = keep
        projected_all = (I_m_cs @ ms @ text_e.T).T  # every token projected (the filter's input)
        merged = torch.where(ones[:, None].bool(), text_e, projected_all)
        cos = F.cosine_similarity(projected_all[:n_tokens], text_e[:n_tokens])
        beta = 1 - cos.mean().item()
        tensors.update({
            f"p{n}.text_embeds": text_e,
            f"p{n}.masked_pooled": p_emb,
            f"p{n}.distances": dist,
            f"p{n}.keep": keep,
            f"p{n}.projected": merged,
        })
        meta[f"p{n}.beta"] = repr(beta)
        meta[f"p{n}.steps_bound"] = str(f_beta(beta))
        meta[f"p{n}.steps_bound_artist"] = str(f_beta(beta, artist=True))
        meta[f"p{n}.n_tokens"] = str(n_tokens)
        print(f"SAFREE `{prompt}`: triggers {[(tok.convert_ids_to_tokens(int(i)), int(k)) for i, k in zip(tok(prompt).input_ids[1:-1], keep)]}, beta {beta:.4f}, bound {f_beta(beta)}")
    save("safree.safetensors", tensors, meta)


# ---------------------------------------------------------------------------------------------
# LEACE and INLP
# ---------------------------------------------------------------------------------------------
CONCEPT_PROMPTS = [
    "a skull on a blue background", "a photo of a skull", "a drawing of a skull symbol, small",
    "a skull in a glowing style", "an image of a cranium on orange stripes", "a big skull at the top",
]
OTHER_PROMPTS = [
    "a red circle on a blue background", "a photo of a green square", "a drawing of a yellow star, small",
    "a moon in a glowing style", "an image of a heart on orange stripes", "a big triangle at the top",
]
TEST_PROMPT = "a picture of a skull on a dotted background"


def token_rows(tok, te, prompts):
    """Positions 1..77 (everything after BOS) of each prompt's last hidden state."""
    return torch.cat([encode(tok, te, p)[0][1:] for p in prompts])


def optimal_linear_shrinkage(S_n, n):
    """shrinkage.py, real case."""
    p = S_n.shape[-1]
    trace_S = torch.trace(S_n)
    sigma0_norm_sq = trace_S**2 / p
    S_norm_sq = torch.linalg.matrix_norm(S_n) ** 2
    prod_trace = sigma0_norm_sq
    top = trace_S * trace_S * sigma0_norm_sq / n
    bottom = S_norm_sq * sigma0_norm_sq - prod_trace * prod_trace
    eps = torch.finfo(S_n.dtype).eps
    alpha = 1 - (top + eps) / (bottom + eps)
    beta = (1 - alpha) * (prod_trace + eps) / (sigma0_norm_sq + eps)
    return alpha * S_n + torch.eye(p, dtype=S_n.dtype) * (beta * trace_S / p)


def constrain_trace(P, u, sigma):
    """leace.py lines 216-246: if P raises the trace of the covariance, mix it with the orthogonal
    projection Q = I − u uᵀ so that the trace stays equal. Returns (P, whether it mixed)."""
    eye = torch.eye(P.shape[0], dtype=P.dtype)
    old_trace = torch.trace(sigma)
    new_trace = torch.trace(P @ sigma @ P.T)
    if not bool(new_trace > old_trace):
        return P, False
    Q = eye - u @ u.T
    xx, yy, zz, ww = new_trace, 2 * torch.trace(P @ sigma @ Q.T), torch.trace(Q @ sigma @ Q.T), old_trace
    discr = torch.sqrt(4 * ww * xx - 4 * ww * yy + 4 * ww * zz - 4 * xx * zz + yy**2)
    a1 = (-yy / 2 + zz - discr / 2) / (xx - yy + zz)
    a2 = (-yy / 2 + zz + discr / 2) / (xx - yy + zz)
    a = torch.where(a1 > 0, a1, a2).clamp(0, 1)
    return a * P + (1 - a) * Q, True


def leace_fit(x, z, svd_tol=0.01):
    """LeaceFitter(method="leace", affine, constrain_cov_trace, shrinkage).update(x, z).eraser,
    as (P [d, d], bias [d], mixed: bool); x' = bias + P (x - bias) = x - (I - P)(x - bias)."""
    n, d = x.shape
    z = z.reshape(n, -1)
    mean_x, mean_z = x.mean(0), z.mean(0)
    xc, zc = x - mean_x, z - mean_z
    S_hat = xc.T @ xc
    S_hat = (S_hat + S_hat.T) / 2
    sigma = optimal_linear_shrinkage(S_hat / n, n)
    sigma_xz = xc.T @ zc / (n - 1)
    L, V = torch.linalg.eigh(sigma)
    mask = L > (L[-1] * d * torch.finfo(L.dtype).eps)
    L = L.clamp_min(0.0)
    W = V * torch.where(mask, L.rsqrt(), 0.0) @ V.T
    W_inv = V * torch.where(mask, L.sqrt(), 0.0) @ V.T
    u, s, _ = torch.linalg.svd(W @ sigma_xz, full_matrices=False)
    u = u * (s > svd_tol)
    eye = torch.eye(d, dtype=x.dtype)
    P = eye - (W_inv @ u) @ (u.T @ W)
    P, mixed = constrain_trace(P, u, sigma)
    return P, mean_x, mixed


def ridge_classifier(x, y, alpha=1.0):
    """sklearn RidgeClassifier(alpha) for labels ±1 with fit_intercept: w on centred data."""
    mx, my = x.mean(0), y.mean()
    xc = x - mx
    w = torch.linalg.solve(xc.T @ xc + alpha * torch.eye(x.shape[1], dtype=x.dtype), xc.T @ (y - my))
    b = my - mx @ w
    return w, b


def orth_projection(vectors, d):
    """Projector onto span(vectors) (scipy.linalg.orth: SVD, rank by rcond)."""
    if not vectors:
        return torch.zeros(d, d, dtype=torch.float64)
    m = torch.stack(vectors, 1)  # [d, r]
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    r = int((s > s.max() * max(m.shape) * torch.finfo(m.dtype).eps).sum())
    return u[:, :r] @ u[:, :r].T


def inlp_fit(x, labels, iterations=10, min_accuracy=0.55, alpha=1.0):
    d = x.shape[1]
    y = labels * 2 - 1
    ws, accs, xp = [], [], x.clone()
    eye = torch.eye(d, dtype=x.dtype)
    for _ in range(iterations):
        w, b = ridge_classifier(xp, y, alpha)
        acc = ((xp @ w + b > 0).double() * 2 - 1 == y).double().mean().item()
        accs.append(acc)
        if acc < min_accuracy:
            continue  # debias.py line 117
        ws.append(w)
        P = eye - orth_projection(ws, d)  # Ben-Israel: nullspace of the sum of row-space projectors
        xp = x @ P.T
    return eye - orth_projection(ws, d), len(ws), accs


def leace_inlp_reference():
    tok, te = load_text(TINY)
    xc, xo = token_rows(tok, te, CONCEPT_PROMPTS), token_rows(tok, te, OTHER_PROMPTS)
    x32 = torch.cat([xc, xo])
    x = x32.double()
    z = torch.cat([torch.ones(len(xc)), torch.zeros(len(xo))]).double()
    P, bias, mixed = leace_fit(x, z)
    test = encode(tok, te, TEST_PROMPT)[0].double()
    erased = test.clone()
    erased[1:] = bias + (test[1:] - bias) @ P.T
    # LEACE's guarantee on the training data: equal class-conditional means after erasure.
    xe = bias + (x - bias) @ P.T
    gap_before = (x[z == 1].mean(0) - x[z == 0].mean(0)).norm().item()
    gap_after = (xe[z == 1].mean(0) - xe[z == 0].mean(0)).norm().item()
    print(f"LEACE tiny-sd1: n={len(x)}, trace-mix {mixed}, class-mean gap {gap_before:.4f} -> {gap_after:.2e}")

    # The trace-constraint branch (leace.py lines 216-246) cannot trigger with exact whitening
    # (tr(PΣPᵀ) = tr(Σ) − ‖Σ^{1/2}u‖² then), so it is checked on its own with a P that does
    # raise the trace.
    g = torch.Generator().manual_seed(7)
    d = 6
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    mix_sigma = a @ a.T + 0.1 * torch.eye(d, dtype=torch.float64)
    mix_u = torch.linalg.qr(torch.randn(d, 2, generator=g, dtype=torch.float64))[0]
    mix_p = torch.eye(d, dtype=torch.float64) + 0.8 * torch.randn(d, d, generator=g, dtype=torch.float64)
    mix_out, mixed_s = constrain_trace(mix_p, mix_u, mix_sigma)
    assert mixed_s, "the synthetic case must raise the trace"

    Pi, n_dirs, accs = inlp_fit(x, z)
    print(f"INLP tiny-sd1: {n_dirs} directions, accuracies {[round(a, 3) for a in accs]}")

    tensors = {
        "x": x32, "z": z, "leace.P": P, "leace.bias": bias, "test_embeds": test, "leace.test_erased": erased,
        "mix.P": mix_p, "mix.u": mix_u, "mix.sigma": mix_sigma, "mix.out": mix_out,
        "inlp.P": Pi, "inlp.accuracies": torch.tensor(accs, dtype=torch.float64),
    }
    meta = {
        "concept_prompts": json.dumps(CONCEPT_PROMPTS), "other_prompts": json.dumps(OTHER_PROMPTS), "test_prompt": TEST_PROMPT,
        "leace.mixed": str(mixed), "inlp.directions": str(n_dirs),
        "inlp.iterations": "10", "inlp.min_accuracy": "0.55", "inlp.ridge_alpha": "1.0",
    }
    save("leace.safetensors", tensors, meta)


# ---------------------------------------------------------------------------------------------
# Ring-A-Bell
# ---------------------------------------------------------------------------------------------
RAB_PAIRS = [
    ("a skull on a blue background", "a circle on a blue background"),
    ("a photo of a skull", "a photo of a star"),
    ("a drawing of a skull, small", "a drawing of a square, small"),
    ("a skull in a glowing style", "a heart in a glowing style"),
    ("an image of a skull on orange stripes", "an image of a moon on orange stripes"),
    ("a big skull at the top", "a big triangle at the top"),
    ("a skull on a dotted background", "a star on a dotted background"),
    ("a picture of a skull", "a picture of a circle"),
    ("a skull, big, on the left", "a square, big, on the left"),
    ("a small skull", "a small heart"),
]


def ring_a_bell_reference():
    tok, te = load_text(TINY)
    batch, means = 8, []
    for i in range(0, len(RAB_PAIRS), batch):
        chunk = RAB_PAIRS[i : i + batch]
        a = torch.stack([encode(tok, te, c)[0] for c, _ in chunk])
        b = torch.stack([encode(tok, te, p)[0] for _, p in chunk])
        means.append((a - b).mean(0))
    v = torch.stack(means).mean(0)
    save("ring_a_bell.safetensors", {"vector": v}, {"pairs": json.dumps(RAB_PAIRS), "batch": str(batch)})


if __name__ == "__main__":
    sld_reference()
    safree_reference()
    leace_inlp_reference()
    ring_a_bell_reference()
