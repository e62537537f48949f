"""Reference closed-form erasure edits, written from the official code's semantics in PyTorch (f64).

For the tiny fixture models (and the classroom model) this script computes, with diffusers'
text encoder and UNet:
- UCE, current code (rohitgandikota/unified-concept-editing, trainscripts/uce_sd_erase.py):
  last subject token (attention_mask.sum() - 2), guide "" -> BOS, to_k and to_v.
- UCE, legacy code (train-scripts/train_erase.py, technique 'replace'): tokens from the last
  word through padding; preserved prompts (or "") with all 77 tokens.
- TIME (bahjat-kawar/time-diffusion apply_time.py + train_funcs.py): token alignment, to_v only.
- RECE (CharlesGong12/RECE train.py, close_form_emb_regzero, edit_model_adversarial).
- MACE closed-form refinement (Shilin-LU/MACE src/cfr_utils.py) with a preservation covariance.
- SPEED (Ouxiang-Li/SPEED train_erase_null.py) with deterministic k-means and recorded
  augmentation draws.
Each case writes the edited tensors under their diffusers names to
tests/fixtures/reference/erasure/<model>-<case>.safetensors; metadata holds the arguments.

Run: /var/cache/erasure-studio/venv/bin/python scripts/reference/erasure_reference.py
"""
import json
import os
import re

import torch
from safetensors.torch import save_file
from transformers import CLIPTextModel, CLIPTokenizer
from diffusers import UNet2DConditionModel

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
OUT = os.path.join(ROOT, "tests", "fixtures", "reference", "erasure")
torch.set_grad_enabled(False)
D = torch.float64


class Model:
    def __init__(self, folder):
        self.tok = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer")
        self.te = CLIPTextModel.from_pretrained(folder, subfolder="text_encoder").to(torch.float32).eval()
        self.unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet").to(torch.float32).eval()

    def enc(self, text):
        """[77, d] last hidden state (f64), attention-mask sum, ids without padding."""
        t = self.tok(text, padding="max_length", max_length=self.tok.model_max_length, truncation=True, return_tensors="pt")
        e = self.te(t.input_ids)[0][0].to(D)
        return e, int(t.attention_mask.sum()), self.tok(text).input_ids

    def layers(self, keys=True, values=True):
        """(name, W f64) of attn2.to_k / to_v in module order."""
        out = []
        for name, m in self.unet.named_modules():
            if "attn2" in name and ((keys and name.endswith("to_k")) or (values and name.endswith("to_v"))):
                out.append((name + ".weight", m.weight.detach().to(D)))
        return out


def ridge(W, contexts, values_from, scales, lamb, prior=None):
    """W' = (lamb W + W P + sum s W e c^T)(lamb I + P + sum s c c^T)^-1, the official mat1 @ inverse(mat2)."""
    d = W.shape[1]
    mat1 = lamb * W.clone()
    mat2 = lamb * torch.eye(d, dtype=D)
    for c, e, s in zip(contexts, values_from, scales):
        v = W @ e
        mat1 += s * torch.outer(v, c)
        mat2 += s * torch.outer(c, c)
    if prior is not None:
        mat1 += W @ prior
        mat2 += prior
    return mat1 @ torch.inverse(mat2)


def uce_pairs(m, concepts, guides, preserve, erase_scale, preserve_scale, legacy):
    C, E, S = [], [], []
    if not legacy:
        for c, g in zip(concepts, guides):
            ce, cn, _ = m.enc(c)
            ge, gn, _ = m.enc(g)
            C.append(ce[cn - 2]); E.append(ge[gn - 2]); S.append(erase_scale)
        for p in preserve:
            pe, pn, _ = m.enc(p)
            C.append(pe[pn - 2]); E.append(pe[pn - 2]); S.append(preserve_scale)
    else:
        for c, g in zip(concepts, guides):
            ce, cn, _ = m.enc(c)
            ge, gn, _ = m.enc(g if g != "" else " ")
            fc, fg = cn - 2, gn - 2
            far = max(fc, fg)
            old = ce[fc:len(ce) - max(0, far - fc)]
            new = ge[fg:len(ge) - max(0, far - fg)]
            for k in range(len(old)):
                C.append(old[k]); E.append(new[k]); S.append(erase_scale)
        for p in (preserve if preserve else [""]):
            pe, _, _ = m.enc(p)
            for k in range(len(pe)):
                C.append(pe[k]); E.append(pe[k]); S.append(preserve_scale)
    return C, E, S


def uce(m, concepts, guides, preserve, erase_scale=1.0, preserve_scale=1.0, lamb=0.5, legacy=False):
    C, E, S = uce_pairs(m, concepts, guides, preserve, erase_scale, preserve_scale, legacy)
    return {n: ridge(W, C, E, S, lamb) for n, W in m.layers()}


def time_align(ta, tb, an, a):
    ta = [a if t == an else t for t in ta]
    tb = [a if t == an else t for t in tb]
    idx, j = [], 0
    for t in ta:
        while tb[j] != t:
            j += 1
        idx.append(j)
        j += 1
    while j < 77:
        idx.append(j)
        j += 1
    while len(idx) < 77:
        idx.append(76)
    return idx


def time_edit(m, sources, dests, lamb=0.1, with_to_k=False):
    an = m.tok.encode("an")[1]
    a = m.tok.encode("a ")[1]
    C, E = [], []
    for s, t in zip(sources, dests):
        se, _, sids = m.enc(s)
        te, _, tids = m.enc(t)
        idx = time_align(sids, tids, an, a)
        for k in range(77):
            C.append(se[k]); E.append(te[idx[k]])
    return {n: ridge(W, C, E, [1.0] * len(C), lamb) for n, W in m.layers(keys=with_to_k)}


def rece(m, concepts, guides, preserve, epochs=1, gamma=0.1, lamb=0.1, erase_scale=1.0, preserve_scale=0.1,
         uce_lamb=0.5, uce_erase=1.0, uce_preserve=1.0):
    layers = m.layers()
    W0 = {n: W for n, W in layers}
    cur = uce(m, concepts, guides, preserve, uce_erase, uce_preserve, uce_lamb)
    retain = preserve if preserve else [""] * len(concepts)
    for _ in range(epochs):
        d = layers[0][1].shape[1]
        m1 = torch.eye(d, dtype=D) * gamma
        m2 = torch.zeros(d, d, dtype=D)
        for n, _ in layers:
            m1 += cur[n].T @ cur[n]
            m2 += cur[n].T @ W0[n]
        coef = torch.inverse(m1) @ m2
        C, E, S = [], [], []
        for c, g in zip(concepts, guides):
            ce, _, _ = m.enc(c)
            ge, _, _ = m.enc(g if g != "" else " ")
            adv = ce @ coef.T
            for t in range(77):
                C.append(adv[t]); E.append(ge[t]); S.append(erase_scale)
        for r in retain:
            re_, _, _ = m.enc(r if r != "" else " ")
            for t in range(77):
                C.append(re_[t]); E.append(re_[t]); S.append(preserve_scale)
        cur = {n: ridge(cur[n], C, E, S, lamb) for n, _ in layers}
    return cur


def matching(old, new):
    start = 0
    for i, j in zip(old, new):
        if i == j:
            start += 1
        else:
            break
    eo, en = len(old) - 1, len(new) - 1
    while eo >= start and en >= start:
        if old[eo] == new[en]:
            eo -= 1; en -= 1
        else:
            break
    return list(range(start)) + list(range(eo + 1, len(old))), list(range(start)) + list(range(en + 1, len(new)))


def mace(m, concepts, mappings, preserve, lamb=0.1, preserve_scale=1.0, templates=("A photo of {}",)):
    C, E = [], []
    for c, mp in zip(concepts, mappings):
        for t in templates:
            oe, _, oids = m.enc(t.format(c))
            ne, _, nids = m.enc(t.format(mp))
            oi, ni = matching(oids, nids)
            if oi[-1] >= ni[-1]:
                eo = oi + list(range(oi[-1] + 1, 77)); enn = ni + list(range(ni[-1] + 1, 77 - (oi[-1] - ni[-1])))
            else:
                enn = ni + list(range(ni[-1] + 1, 77)); eo = oi + list(range(oi[-1] + 1, 77 - (ni[-1] - oi[-1])))
            for a, b in zip(eo, enn):
                C.append(oe[a]); E.append(ne[b])
    d = m.layers()[0][1].shape[1]
    prior = None
    if preserve:
        prior = torch.zeros(d, d, dtype=D)
        for p in preserve:
            pe, _, _ = m.enc(p)
            prior += pe.T @ pe
        prior *= preserve_scale
    return {n: ridge(W, C, E, [1.0] * len(C), lamb, prior) for n, W in m.layers()}


def kmeans_det(X, k=3):
    """Deterministic k-means: farthest points from row 0, Lloyd until the assignment is stable."""
    centres = [X[0]]
    while len(centres) < k:
        dmin = torch.stack([((X - c) ** 2).sum(1) for c in centres]).min(0).values
        centres.append(X[int(torch.argmax(dmin))])
    centres = torch.stack(centres)
    assign = None
    for _ in range(300):
        new = torch.cdist(X, centres).argmin(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            sel = X[assign == j]
            if len(sel):
                centres[j] = sel.mean(0)
    return centres


def smallest_v(W):
    """Right singular vector of the smallest of the reduced SVD's singular values, largest entry positive."""
    _, _, V = torch.svd(W)
    v = V[:, -1]
    return -v if v[torch.argmax(v.abs())] < 0 else v


def speed(m, targets, anchors, retain, retain_scale=1.0, lamb=0.0, threshold=0.1, aug_num=10, filt=True, seed=0):
    """SPEED (train_erase_null.py, edit_model, baseline SPEED) on to_v; returns (edit, draws)."""
    gen = torch.Generator().manual_seed(seed)
    draws = []
    null, _, _ = m.enc("")
    d = null.shape[1]
    I = torch.eye(d, dtype=D)
    cent = kmeans_det(null[1:], 3)
    K2 = torch.cat([null[[0]], cent], 0).T
    I2 = torch.eye(K2.shape[1], dtype=D)
    all_tokens = targets == ["nudity"]
    stt, sat = [], []
    for t, a in zip(targets, anchors):
        te, tn, _ = m.enc(t)
        ae, an, _ = m.enc(a)
        tm, am = (te[1:], ae[1:]) if all_tokens else (te[[tn - 2]], ae[[an - 2]])
        stt.append(tm.T @ tm); sat.append(am.T @ tm)
    stt, sat = torch.stack(stt).mean(0), torch.stack(sat).mean(0)
    kept = [r for r in retain if not any(re.search(r"\b" + re.escape(c.lower()) + r"\b", r.lower()) for c in targets)]
    if not kept:
        ret = [null[i] for i in range(1, 77)]
    else:
        ret = []
        for r in kept:
            e, n, _ = m.enc(r)
            ret.append(e[n - 2])
    ret = torch.stack(ret)
    out = {}
    for name, W in m.layers(keys=False):
        erase = W @ (sat - stt) @ torch.inverse(I + stt)
        v = smallest_v(W)
        lr = ret
        if aug_num > 0 and filt:
            nn_ = (lr @ erase.T).norm(dim=1)
            lr = lr[nn_ > nn_.mean()]
        S, cnt = torch.zeros(d, d, dtype=D), 0
        for j in range(0, len(lr), 128):
            ch = lr[j:j + 128]
            if aug_num > 0:
                pert = []
                for i in range(0, len(ch), 8):
                    mini = ch[i:i + 8]
                    for _ in range(aug_num):
                        z = torch.randn(len(mini), generator=gen, dtype=D)
                        draws.append(z)
                        pert.append(mini + z[:, None] * v[None, :])
                pert = torch.cat(pert)
                nn_ = (pert @ erase.T).norm(dim=1)
                ch = torch.cat([ch, pert[nn_ > nn_.mean()]])
            cnt += len(ch)
            S += ch.T @ ch
        S /= cnt
        U, Sv, _ = torch.svd(S)
        P = U[:, Sv < threshold] @ U[:, Sv < threshold].T
        M = torch.inverse(stt @ P + retain_scale * I)
        delta = W @ (sat - stt) @ P @ (I - M @ K2 @ torch.inverse(K2.T @ P @ M @ K2 + lamb * I2) @ K2.T @ P) @ M
        out[name] = W + delta
    return out, torch.cat(draws) if draws else torch.zeros(0, dtype=D)


def save(model_name, case, tensors, meta):
    path = os.path.join(OUT, f"{model_name}-{case}.safetensors")
    save_file({k: v.to(torch.float32).contiguous() for k, v in tensors.items()}, path, metadata={k: json.dumps(v) for k, v in meta.items()})
    print("wrote", path, sum(v.numel() for v in tensors.values()), "values")


def main():
    os.makedirs(OUT, exist_ok=True)
    models = {
        "tiny-sd1": os.path.join(ROOT, "tests", "fixtures", "tiny-sd1"),
        "tiny-sd2": os.path.join(ROOT, "tests", "fixtures", "tiny-sd2"),
    }
    for name, folder in models.items():
        m = Model(folder)
        args = dict(concepts=["a photo of a cat", "Van Gogh"], guides=["a photo of a dog", ""], preserve=["a red car", "Monet"])
        save(name, "uce", uce(m, args["concepts"], args["guides"], args["preserve"]), dict(args, erase_scale=1.0, preserve_scale=1.0, lamb=0.5))
        args1 = dict(concepts=["skull"], guides=[], preserve=[])
        save(name, "uce-single", uce(m, ["skull"], [""], []), dict(args1, erase_scale=1.0, preserve_scale=1.0, lamb=0.5))
        save(name, "uce-legacy", uce(m, ["Van Gogh"], [""], ["Monet", "a red car"], 1.0, 0.5, 0.5, legacy=True),
             dict(concepts=["Van Gogh"], guides=[""], preserve=["Monet", "a red car"], erase_scale=1.0, preserve_scale=0.5, lamb=0.5))
        save(name, "time", time_edit(m, ["a pack of roses", "an apple"], ["a pack of blue roses", "a green apple"]),
             dict(sources=["a pack of roses", "an apple"], destinations=["a pack of blue roses", "a green apple"], lamb=0.1))
        save(name, "rece", rece(m, ["skull", "nudity"], ["", ""], [], epochs=2, gamma=0.1),
             dict(concepts=["skull", "nudity"], guides=["", ""], preserve=[], epochs=2, gamma=0.1, lamb=0.1, erase_scale=1.0, preserve_scale=0.1))
        save(name, "mace", mace(m, ["Ann Graham"], ["a woman"], ["a photo of a dog", "a red car on a street", "a painting"], lamb=0.1, preserve_scale=1.0),
             dict(concepts=["Ann Graham"], mappings=["a woman"], preserve=["a photo of a dog", "a red car on a street", "a painting"], lamb=0.1, preserve_scale=1.0))
        e, z = speed(m, ["Van Gogh"], ["a painting"], ["Monet", "a red car", "Van Gogh style"], lamb=0.1)
        save(name, "speed", e, dict(targets=["Van Gogh"], anchors=["a painting"], retain=["Monet", "a red car", "Van Gogh style"], lamb=0.1))
        save_file({"draws": z.to(torch.float64).contiguous()}, os.path.join(OUT, f"{name}-speed-draws.safetensors"))
        e, _ = speed(m, ["skull"], [""], [], lamb=0.1, aug_num=0)
        save(name, "speed-noaug", e, dict(targets=["skull"], anchors=[""], retain=[], lamb=0.1, aug_num=0))


if __name__ == "__main__":
    main()
