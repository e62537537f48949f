"""PyTorch reference timings for `studio bench-erase` (same shapes, same algorithms, float32 on the
CPU as the official scripts run on a GPU): UCE (trainscripts/uce_sd_erase.py), one RECE epoch
(close_form_emb_regzero + edit_model_adversarial) after UCE, and SPEED (train_erase_null.py,
to_v, aug_num 10, prior filtering, lamb 0.1). Random weights N(0, 0.02) for the 32 SD 1.5
attn2.to_k/to_v matrices and N(0, 1) token embeddings. Prints JSON {"<method>/<n>": seconds}.
"""
import argparse
import json
import time

import torch

torch.set_grad_enabled(False)
SD15_OUT = [320, 320, 640, 640, 1280, 1280, 1280, 1280, 1280, 1280, 640, 640, 640, 320, 320, 320]
D = 768


def ridge(W, C, V, lamb):
    """(lamb W + V C^T)(lamb I + C C^T)^-1 with C [d, n], V [d_out, n] (the official sums, batched)."""
    mat1 = lamb * W + V @ C.T
    mat2 = lamb * torch.eye(D) + C @ C.T
    return mat1 @ torch.inverse(mat2)


def uce(Ws, emb, guide, n, lamb=0.5):
    C = emb[:n, 3].T  # last subject token of each concept
    G = guide[0:1].T.expand(D, n)  # BOS of ""
    return [ridge(W, C, W @ G, lamb) for W in Ws]


def rece(Ws, emb, guide, n):
    cur = uce(Ws, emb, guide, n)
    m1 = torch.eye(D) * 0.1
    m2 = torch.zeros(D, D)
    for Wc, W0 in zip(cur, Ws):
        m1 += Wc.T @ Wc
        m2 += Wc.T @ W0
    coef = torch.inverse(m1) @ m2
    adv = emb[:n] @ coef.T  # [n, 77, d]
    C = torch.cat([adv.reshape(-1, D), guide.repeat(n, 1)]).T
    E = torch.cat([guide.repeat(n, 1), guide.repeat(n, 1)]).T
    S = torch.cat([torch.ones(n * 77), torch.full((n * 77,), 0.1)])
    out = []
    for W in cur:
        mat1 = 0.1 * W + (W @ E) @ (C * S).T
        mat2 = 0.1 * torch.eye(D) + (C * S) @ C.T
        out.append(mat1 @ torch.inverse(mat2))
    return out


def speed(Ws, emb, guide, n, aug_num=10, lamb=0.1, threshold=0.1):
    I = torch.eye(D)
    t = emb[:n, 3]
    a = guide[0:1].expand(n, D)
    stt = (t.T @ t) / n
    sat = (a.T @ t) / n
    K2 = torch.cat([guide[[0]], guide[1:4]]).T
    ret = guide[1:]
    out = []
    for W in Ws[1::2]:
        erase = W @ (sat - stt) @ torch.inverse(I + stt)
        _, _, V = torch.svd(W)
        v = V[:, -1]
        nn_ = (ret @ erase.T).norm(dim=1)
        r = ret[nn_ > nn_.mean()]
        pert = (r.repeat(aug_num, 1) + torch.randn(len(r) * aug_num, 1) * v[None])
        pn = (pert @ erase.T).norm(dim=1)
        r = torch.cat([r, pert[pn > pn.mean()]])
        S = r.T @ r / len(r)
        U, Sv, _ = torch.svd(S)
        P = U[:, Sv < threshold] @ U[:, Sv < threshold].T
        M = torch.inverse(stt @ P + I)
        delta = W @ (sat - stt) @ P @ (I - M @ K2 @ torch.inverse(K2.T @ P @ M @ K2 + lamb * torch.eye(4)) @ K2.T @ P) @ M
        out.append(W + delta)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--concepts", default="1,100")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(0)
    Ws = [torch.randn(o, D, generator=g) * 0.02 for o in SD15_OUT for _ in (0, 1)]
    res = {}
    for n in [int(x) for x in args.concepts.split(",")]:
        emb = torch.randn(n, 77, D, generator=g)
        guide = torch.randn(77, D, generator=g)
        for name, fn in (("uce", uce), ("rece", rece), ("speed", speed)):
            ts = []
            for _ in range(max(1, args.repeat)):
                t0 = time.perf_counter()
                fn(Ws, emb, guide, n)
                ts.append(time.perf_counter() - t0)
            res[f"{name}/{n}"] = sorted(ts)[len(ts) // 2]
    print(json.dumps(res))


if __name__ == "__main__":
    main()
