#!/usr/bin/python3
"""Golden reference for the whole remoe model: a from-scratch PyTorch (float32, CPU) implementation of
models/transformer.cpp, routers.cpp, moe_dispatch.cpp, lr_schedule.cpp, sparsity_controller.cpp and
train_step.cpp, used by tests/models/test_golden_model.cpp.

Run with the system interpreter that has torch (Debian's python3-torch 1.13):
    /usr/bin/python3 tests/golden/make_golden_model.py
It writes tests/golden/model_<ffn>.safetensors for ffn in dense, topk, relu, each holding
  param.<name>   the initial weights (BF16: drawn N(0, 0.02) in f32 and rounded to bf16, so that the
                 file is half the size and both sides start from exactly the same f32 values; norm
                 gains are 1 + N(0, 0.1) so that they matter), <name> as Transformer::named_parameters
  inputs, targets                 [B, T] i64
  loss0.total/lm/aux/reg          f64 scalars: compute_loss at the initial weights (λ = lambda0)
  loss0.counts                    [L, E] i64 expert counts of that forward pass (MoE)
  grad.<name>    f32: d loss0.total / d param (absent for an expert that got no token: no gradient)
  traj.<metric>  f64 [steps]: what Trainer::step reports for each of `steps` AdamW steps on the same
                 batch (loss, lm_loss, aux_loss, reg_loss, sparsity, lambda, lr, grad_norm)
  traj.counts    [steps, L, E] i64 expert counts of each step
  final.lm_loss  f64: the LM loss after the last step; final.<router name>: the routers after it
The configuration (and the routing margins this data was checked for) is in "__metadata__".

Routing decisions are discontinuous: a ReLU logit near 0 or a near-tie between the top-2 softmax
probabilities could flip under f32 rounding differences, and then the two sides train different
models. The generator therefore replays every trajectory in float64 from the same weights and keeps a
seed only if, at every step, the smallest decision margin is far (MARGIN_FACTOR times, and at least
MIN_MARGIN) above the f32-vs-f64 difference of the router logits; otherwise it tries the next seed.
"""
import json
import math
import os
import struct

import torch

from make_golden import save_safetensors  # the one safetensors writer of the golden scripts

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64"}

# ---- the model (mirrors ModelConfig; ffn_hidden kept small so that each file stays < 1 MB) ----
BASE = dict(vocab_size=256, d_model=64, n_layers=2, n_heads=4, rope_base=1e6, norm_eps=1e-5, num_experts=4,
            topk=1, aux_loss_coeff=0.01, batch=2, seq=32)
KINDS = {
    # dense: plain multi-head attention; the MoE files use GQA (2 KV heads for 4 query heads).
    "dense": dict(ffn="dense", n_kv_heads=4, ffn_hidden=64),
    "topk": dict(ffn="topk", n_kv_heads=2, ffn_hidden=32),
    # lambda0 = 1e-8 (the paper's) would make λ·L_reg ~1e-8, below f32 resolution of the loss and of
    # the router gradients, so that neither the penalty's value nor its gradient would be tested. A
    # large λ0 makes the penalty matter, drives the sparsity over the target within a few steps, and
    # so makes λ go up and then down: the whole controller is exercised.
    "relu": dict(ffn="relu", n_kv_heads=2, ffn_hidden=32, lambda0=0.01),
}
# ---- the training recipe (spec §3, with a short aggressive schedule so that 10 steps move things) ----
TRAIN = dict(steps=10, peak_lr=5e-3, min_lr=5e-4, warmup_steps=2, total_steps=10, beta1=0.9, beta2=0.999,
             eps=1e-8, weight_decay=0.01, clip_norm=1.0, alpha=1.2)
INIT_STD = 0.02
MARGIN_FACTOR = 100.0
MIN_MARGIN = 1e-4


def param_shapes(c):
    d, hd = c["d_model"], c["d_model"] // c["n_heads"]
    shapes = [("embed", (c["vocab_size"], d)), ("lm_head", (d, c["vocab_size"]))]
    for l in range(c["n_layers"]):
        p = f"layers.{l}."
        shapes += [(p + "attn_norm.weight", (d,)), (p + "attn.wq", (d, c["n_heads"] * hd)),
                   (p + "attn.wk", (d, c["n_kv_heads"] * hd)), (p + "attn.wv", (d, c["n_kv_heads"] * hd)),
                   (p + "attn.wo", (c["n_heads"] * hd, d)), (p + "ffn_norm.weight", (d,))]
        f = c["ffn_hidden"]
        if c["ffn"] == "dense":
            shapes += [(p + "ffn.mlp.w_gate", (d, f)), (p + "ffn.mlp.w_up", (d, f)), (p + "ffn.mlp.w_down", (f, d))]
        else:
            shapes.append((p + "ffn.router", (d, c["num_experts"])))
            for e in range(c["num_experts"]):
                q = f"{p}ffn.experts.{e}."
                shapes += [(q + "w_gate", (d, f)), (q + "w_up", (d, f)), (q + "w_down", (f, d))]
    shapes.append(("final_norm.weight", (d,)))
    return shapes


def init_params(c, gen):
    """bf16-exact initial weights (returned as bf16 tensors)."""
    out = {}
    for name, shape in param_shapes(c):
        if name.endswith("norm.weight"):
            t = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            t = INIT_STD * torch.randn(shape, generator=gen)
        out[name] = t.to(torch.bfloat16)
    return out


# ---- the forward pass ----
def rms_norm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, base):
    """x [B, T, H, D]; the pair (x[i], x[i + D/2]) at position t is rotated by t·base^(-2i/D).
    The cos/sin tables are computed in float64 and rounded to x's dtype (as ops/rope.cpp)."""
    T, D = x.shape[1], x.shape[3]
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)[None, :, None, :]  # [1, T, 1, D/2]
    cos, sin = ang.cos().to(x.dtype), ang.sin().to(x.dtype)
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def attention(x, P, p, c):
    B, T, _ = x.shape
    H, Hkv, hd = c["n_heads"], c["n_kv_heads"], c["d_model"] // c["n_heads"]
    q = rope((x @ P[p + "wq"]).view(B, T, H, hd), c["rope_base"])
    k = rope((x @ P[p + "wk"]).view(B, T, Hkv, hd), c["rope_base"])
    v = (x @ P[p + "wv"]).view(B, T, Hkv, hd)
    k = k.repeat_interleave(H // Hkv, dim=2)  # query head h reads kv head h // (H / Hkv)
    v = v.repeat_interleave(H // Hkv, dim=2)
    s = torch.einsum("bthd,bshd->bhts", q, k) / math.sqrt(hd)
    s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    o = torch.einsum("bhts,bshd->bthd", torch.softmax(s, dim=-1), v)
    return o.reshape(B, T, H * hd) @ P[p + "wo"]


def swiglu(x, P, p):
    return (torch.nn.functional.silu(x @ P[p + "w_gate"]) * (x @ P[p + "w_up"])) @ P[p + "w_down"]


def moe(x, P, p, c, stats):
    """x [N, d]. Returns y and appends the layer's routing statistics to stats."""
    N, E, k = x.shape[0], c["num_experts"], c["topk"]
    logits = x @ P[p + "router"]  # [N, E]; f32 already (the paper's fp32 router)
    if c["ffn"] == "topk":
        probs = torch.softmax(logits, dim=-1)
        top = probs.topk(k, dim=-1)
        srt = logits.detach().sort(dim=-1, descending=True).values
        margin = (srt[:, k - 1] - srt[:, k]).min().item()  # the k-th vs the (k+1)-th logit
        tok = torch.arange(N).repeat_interleave(k)
        exp = top.indices.reshape(-1)
        gate = top.values.reshape(-1)
        counts = torch.bincount(exp, minlength=E)
        aux = (probs.sum(0) * counts.to(probs.dtype)).sum() * (c["aux_loss_coeff"] * E / (k * N * N))
        term = aux
    else:
        R = torch.relu(logits)
        active = R.detach() > 0
        margin = logits.detach().abs().min().item()
        tok, exp = active.nonzero(as_tuple=True)
        gate = R[tok, exp]
        counts = active.sum(0)
        f = counts.to(R.dtype) * (E / (k * N))  # Eq. 10: f_e = E/(k·T)·c_e, a constant
        term = (R * f[None, :]).sum() / N  # this layer's Σ_t Σ_e f_e·R_te / T
    y = torch.zeros_like(x)
    for e in range(E):
        sel = exp == e
        if not bool(sel.any()):
            continue  # an expert without tokens takes no part (and gets no gradient)
        t = tok[sel]
        y = y.index_add(0, t, swiglu(x[t], P, f"{p}experts.{e}.") * gate[sel][:, None])
    stats.append(dict(counts=counts.detach().clone(), active=int(counts.sum()), tokens=N, term=term,
                      margin=margin, logits=logits.detach().clone()))
    return y


def forward(P, tokens, c):
    B, T = tokens.shape
    d = c["d_model"]
    x = P["embed"][tokens]
    stats = []
    for l in range(c["n_layers"]):
        p = f"layers.{l}."
        h = x + attention(rms_norm(x, P[p + "attn_norm.weight"], c["norm_eps"]), P, p + "attn.", c)
        z = rms_norm(h, P[p + "ffn_norm.weight"], c["norm_eps"]).reshape(B * T, d)
        f = swiglu(z, P, p + "ffn.mlp.") if c["ffn"] == "dense" else moe(z, P, p + "ffn.", c, stats)
        x = h + f.reshape(B, T, d)
    logits = rms_norm(x, P["final_norm.weight"], c["norm_eps"]).reshape(B * T, d) @ P["lm_head"]
    return logits, stats


def compute_loss(c, logits, stats, targets, lam):
    """As remoe::compute_loss: lm + Σ_l aux_l (topk) or lm + λ·(Σ_l pen_l)/L (relu)."""
    lm = -logits.log_softmax(-1).gather(1, targets.reshape(-1, 1)).mean()
    parts = dict(lm=lm, aux=None, reg=None, total=lm)
    if stats:
        router_term = stats[0]["term"]
        for s in stats[1:]:
            router_term = router_term + s["term"]
        if c["ffn"] == "topk":
            parts["aux"] = router_term
            parts["total"] = lm + router_term
        else:
            reg = router_term / len(stats)
            parts["reg"] = reg
            parts["total"] = lm + reg * lam
    return parts


# ---- the schedule, the controller and one trainer step ----
def lr_at(step):
    W, N, peak, lo = TRAIN["warmup_steps"], TRAIN["total_steps"], TRAIN["peak_lr"], TRAIN["min_lr"]
    if W > 0 and step <= W:
        return peak * step / W
    if step >= N:
        return lo
    return lo + 0.5 * (1 + math.cos(math.pi * (step - W) / (N - W))) * (peak - lo)


def train(c, init, tokens, targets, dtype):
    """TRAIN["steps"] steps of Trainer::step on one batch; returns per-step metrics and final state."""
    names = [n for n, _ in param_shapes(c)]
    P = {n: init[n].to(dtype).clone().requires_grad_(True) for n in names}
    opt = torch.optim.AdamW([{"params": [P[n] for n in names if P[n].dim() >= 2], "weight_decay": TRAIN["weight_decay"]},
                             {"params": [P[n] for n in names if P[n].dim() < 2], "weight_decay": 0.0}],
                            lr=0.0, betas=(TRAIN["beta1"], TRAIN["beta2"]), eps=TRAIN["eps"], foreach=False)
    lam = c.get("lambda0", 1e-8)
    E, k = c["num_experts"], c["topk"]
    target_sparsity = 1.0 - k / E
    traj = []
    for step in range(TRAIN["steps"]):
        for n in names:
            P[n].grad = None
        logits, stats = forward(P, tokens, c)
        lam_used = lam if c["ffn"] == "relu" else 0.0
        parts = compute_loss(c, logits, stats, targets, lam_used)
        parts["total"].backward()
        # clip_grad_norm: the norm in double over every gradient, then one factor for all of them.
        with_grad = [P[n] for n in names if P[n].grad is not None]
        norm = math.sqrt(sum(float((g.grad.double() ** 2).sum()) for g in with_grad))
        coef = TRAIN["clip_norm"] / (norm + 1e-6)
        if coef < 1:
            for q in with_grad:
                q.grad = q.grad * coef
        lr = lr_at(step)
        for g in opt.param_groups:
            g["lr"] = lr
        opt.step()
        m = dict(loss=float(parts["total"]), lm_loss=float(parts["lm"]),
                 aux_loss=float(parts["aux"]) if parts["aux"] is not None else 0.0,
                 reg_loss=float(parts["reg"]) if parts["reg"] is not None else 0.0,
                 sparsity=0.0, **{"lambda": lam_used}, lr=lr, grad_norm=norm,
                 counts=torch.stack([s["counts"] for s in stats]) if stats else None,
                 margin=min((s["margin"] for s in stats), default=math.inf),
                 logits=[s["logits"] for s in stats])
        if stats:
            active = sum(s["active"] for s in stats)
            slots = sum(s["tokens"] for s in stats) * E
            m["sparsity"] = 1.0 - active / slots
            if c["ffn"] == "relu":
                lam = lam * TRAIN["alpha"] if m["sparsity"] < target_sparsity else lam / TRAIN["alpha"]
        traj.append(m)
    with torch.no_grad():
        logits, stats = forward(P, tokens, c)
        final_lm = float(compute_loss(c, logits, stats, targets, 0.0)["lm"])
        final_margin = min((s["margin"] for s in stats), default=math.inf)
        final_logits = [s["logits"] for s in stats]
    return traj, P, final_lm, final_margin, final_logits


def make(kind, seed):
    c = dict(BASE, **KINDS[kind])
    gen = torch.Generator().manual_seed(seed)
    init = init_params(c, gen)
    seq = torch.randint(0, c["vocab_size"], (c["batch"], c["seq"] + 1), generator=gen)
    tokens, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    lam0 = c.get("lambda0", 1e-8)

    # Step 0: loss parts and gradients at the initial weights.
    P = {n: init[n].float().clone().requires_grad_(True) for n, _ in param_shapes(c)}
    logits, stats = forward(P, tokens, c)
    parts = compute_loss(c, logits, stats, targets, lam0)
    parts["total"].backward()

    traj, Pf, final_lm, final_margin, final_logits = train(c, init, tokens, targets, torch.float32)
    margins = [m["margin"] for m in traj] + [final_margin]
    if c["ffn"] != "dense":
        # The same trajectory in float64: how far f32 rounding moves the router logits.
        traj64, _, _, _, final64 = train(c, init, tokens, targets, torch.float64)
        drift = [max(float((a.double() - b).abs().max()) for a, b in zip(m32["logits"], m64["logits"]))
                 for m32, m64 in zip(traj, traj64)]
        drift.append(max(float((a.double() - b).abs().max()) for a, b in zip(final_logits, final64)))
        ok = all(mg > max(MIN_MARGIN, MARGIN_FACTOR * dr) for mg, dr in zip(margins, drift))
        ok = ok and all(bool((a["counts"] == b["counts"]).all()) for a, b in zip(traj, traj64))
        ratio = min(mg / max(dr, 1e-30) for mg, dr in zip(margins, drift))
        print(f"{kind} seed {seed}: min margin {min(margins):.3g}, max f32/f64 logit drift {max(drift):.3g}, "
              f"min margin/drift {ratio:.3g} -> {'ok' if ok else 'rejected'}")
    else:
        ok, drift = True, [0.0]
    if kind == "relu":
        lams = [m["lambda"] for m in traj]
        ups = sum(b > a for a, b in zip(lams, lams[1:]))
        downs = sum(b < a for a, b in zip(lams, lams[1:]))
        sp = [round(m["sparsity"], 4) for m in traj]
        print(f"  sparsity {sp}; λ up {ups}x, down {downs}x")
        ok = ok and ups > 0 and downs > 0
    if not ok:
        return False

    out = {"inputs": tokens, "targets": targets}
    for n, _ in param_shapes(c):
        out["param." + n] = init[n]
        if P[n].grad is not None:
            out["grad." + n] = P[n].grad.detach()
    f64 = lambda v: torch.tensor(float(v), dtype=torch.float64)
    out["loss0.total"] = f64(parts["total"])
    out["loss0.lm"] = f64(parts["lm"])
    out["loss0.aux"] = f64(parts["aux"] if parts["aux"] is not None else 0.0)
    out["loss0.reg"] = f64(parts["reg"] if parts["reg"] is not None else 0.0)
    if stats:
        out["loss0.counts"] = torch.stack([s["counts"] for s in stats]).to(torch.int64)
        out["traj.counts"] = torch.stack([m["counts"] for m in traj]).to(torch.int64)
        for l in range(c["n_layers"]):
            out[f"final.layers.{l}.ffn.router"] = Pf[f"layers.{l}.ffn.router"].detach()
    for key in ["loss", "lm_loss", "aux_loss", "reg_loss", "sparsity", "lambda", "lr", "grad_norm"]:
        out["traj." + key] = torch.tensor([m[key] for m in traj], dtype=torch.float64)
    out["final.lm_loss"] = f64(final_lm)
    meta = {k: v for k, v in c.items()}
    meta.update(TRAIN)
    meta.update(seed=seed, lambda0=lam0, init_std=INIT_STD, min_router_margin=f"{min(margins):.3g}",
                max_f32_f64_logit_drift=f"{max(drift):.3g}")
    save_safetensors(os.path.join(OUT_DIR, f"model_{kind}.safetensors"), out, meta)
    return True


if __name__ == "__main__":
    torch.set_num_threads(1)  # deterministic reductions
    for kind in KINDS:
        for seed in range(1000, 1300):
            if make(kind, seed):
                break
        else:
            raise SystemExit(f"{kind}: no seed in range gave safe routing margins")
