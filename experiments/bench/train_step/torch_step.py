#!/usr/bin/python3
"""The PyTorch side of the training-step benchmark (issue "Model and training on CPU").

The same model and training step as remoe's Trainer::step, in PyTorch 1.13 (Debian's python3-torch;
run it with /usr/bin/python3): LLaMA-style decoder (RMSNorm, RoPE, causal multi-head attention,
SwiGLU FFN, untied LM head), dense / TopK / ReLU FFNs with a dropless MoE dispatch, LM loss plus
the router terms, backward, clip_grad_norm_(1.0), AdamW (decay on 2-D weights only) at a constant
learning rate, and the ReMoE λ update. It times each step and prints one JSON object, the same
fields as `remoe bench train-step`.

The model code follows tests/golden/make_golden_model.py (the from-scratch reference of our model),
made into a fair speed baseline: RoPE tables and the causal mask are built once, attention is
batched matmuls over [B, H, T, D], and the MoE layer is dispatched the usual PyTorch way (sort the
(token, expert) pairs by expert, one contiguous block and three matmuls per non-empty expert,
multiply by the gates, index_add back to the tokens). No routing diagnostics are computed.

    OMP_NUM_THREADS=2 LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \\
        /usr/bin/python3 experiments/bench/train_step/torch_step.py --config B --router topk \\
        --init /tmp/init.safetensors

--init loads the weights and the batch written by `remoe bench train-step --save-init`, so both
sides train the same model on the same tokens (same routing); without it the weights are drawn from
the same distribution as remoe's init (N(0, 0.01), output projections N(0, 0.01/sqrt(2L)), gains 1)
and the batch is uniform random tokens. relu_target needs --init (remoe shapes those weights).
"""
import argparse
import json
import math
import os
import statistics
import struct
import sys
import time

import torch
import torch.nn.functional as F

CONFIGS = {
    "A": dict(vocab=4096, d=128, layers=4, heads=4, experts=8, topk=1, width=512, seq=128, batch=16),
    "B": dict(vocab=8192, d=256, layers=6, heads=8, experts=8, topk=1, width=1024, seq=256, batch=8),
}
ROUTERS = ["dense", "topk", "relu", "relu_target"]
INIT_STD = 0.01
ROPE_BASE = 1e6
NORM_EPS = 1e-5
AUX_COEFF = 0.01
LAMBDA0, ALPHA = 1e-8, 1.2


def param_shapes(c, ffn):
    """Names and shapes as remoe's Transformer::named_parameters."""
    d, V = c["d"], c["vocab"]
    shapes = [("embed", (V, d))]
    for l in range(c["layers"]):
        p = f"layers.{l}."
        shapes += [(p + "attn_norm.weight", (d,)), (p + "attn.wq", (d, d)), (p + "attn.wk", (d, d)),
                   (p + "attn.wv", (d, d)), (p + "attn.wo", (d, d)), (p + "ffn_norm.weight", (d,))]
        if ffn == "dense":
            f = c["width"] * c["topk"]  # dense: one SwiGLU of width k·d_ffn
            shapes += [(p + "ffn.mlp.w_gate", (d, f)), (p + "ffn.mlp.w_up", (d, f)), (p + "ffn.mlp.w_down", (f, d))]
        else:
            shapes.append((p + "ffn.router", (d, c["experts"])))
            for e in range(c["experts"]):
                q = f"{p}ffn.experts.{e}."
                shapes += [(q + "w_gate", (d, c["width"])), (q + "w_up", (d, c["width"])),
                           (q + "w_down", (c["width"], d))]
    shapes += [("final_norm.weight", (d,)), ("lm_head", (d, V))]
    return shapes


def init_params(c, ffn, gen):
    out_std = INIT_STD / math.sqrt(2 * c["layers"])
    P = {}
    for name, shape in param_shapes(c, ffn):
        if name.endswith("norm.weight"):
            P[name] = torch.ones(shape)
        elif name.endswith("attn.wo") or name.endswith("w_down"):
            P[name] = out_std * torch.randn(shape, generator=gen)
        else:
            P[name] = INIT_STD * torch.randn(shape, generator=gen)
    return P


SAFETENSORS_DTYPES = {"F32": torch.float32, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32}


def load_safetensors(path):
    """A minimal safetensors reader (the safetensors package does not come with python3-torch)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[b:e]), dtype=SAFETENSORS_DTYPES[info["dtype"]])
        out[name] = t.reshape(info["shape"]).clone()
    return out


# ---- the model ----
class Tables:
    """What every layer shares and is built once: RoPE cos/sin and the causal mask."""

    def __init__(self, T, hd):
        inv_freq = ROPE_BASE ** (-torch.arange(0, hd, 2, dtype=torch.float64) / hd)
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)  # [T, hd/2]
        self.cos = ang.cos().float()[None, None]  # [1, 1, T, hd/2]: q, k are [B, H, T, hd]
        self.sin = ang.sin().float()[None, None]
        self.mask = torch.ones(T, T, dtype=torch.bool).triu(1)


def rms_norm(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + NORM_EPS) * w


def rope(x, tb):
    """Rotates the pairs (x[i], x[i + D/2]) as ops/rope.cpp."""
    h = x.shape[-1] // 2
    x1, x2 = x[..., :h], x[..., h:]
    return torch.cat([x1 * tb.cos - x2 * tb.sin, x2 * tb.cos + x1 * tb.sin], dim=-1)


def attention(x, P, p, c, tb):
    B, T, d = x.shape
    H = c["heads"]
    hd = d // H
    q = rope((x @ P[p + "wq"]).view(B, T, H, hd).transpose(1, 2), tb)  # [B, H, T, hd]
    k = rope((x @ P[p + "wk"]).view(B, T, H, hd).transpose(1, 2), tb)
    v = (x @ P[p + "wv"]).view(B, T, H, hd).transpose(1, 2)
    s = (q @ k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    s = s.masked_fill(tb.mask, float("-inf"))
    o = torch.softmax(s, dim=-1) @ v  # [B, H, T, hd]
    return o.transpose(1, 2).reshape(B, T, d) @ P[p + "wo"]


def swiglu(x, P, p):
    return (F.silu(x @ P[p + "w_gate"]) * (x @ P[p + "w_up"])) @ P[p + "w_down"]


def moe(x, P, p, c, ffn):
    """x [N, d] -> (y [N, d], router loss term, active pairs): dropless dispatch."""
    N, E, k = x.shape[0], c["experts"], c["topk"]
    logits = x @ P[p + "router"]  # [N, E]
    if ffn == "topk":
        probs = torch.softmax(logits, dim=-1)
        gate, exp = probs.topk(k, dim=-1)
        tok = torch.arange(N).repeat_interleave(k)
        exp, gate = exp.reshape(-1), gate.reshape(-1)
        counts = torch.bincount(exp, minlength=E)
        term = (probs.sum(0) * counts.to(probs.dtype)).sum() * (AUX_COEFF * E / (k * N * N))
    else:
        R = torch.relu(logits)
        active = R.detach() > 0
        tok, exp = active.nonzero(as_tuple=True)
        gate = R[tok, exp]
        counts = active.sum(0)
        f = counts.to(R.dtype) * (E / (k * N))  # Eq. 10: load-balanced L1 weights (constants)
        term = (R * f[None, :]).sum() / N
    exp_sorted, order = torch.sort(exp, stable=True)
    tok_sorted = tok[order]
    rows = x.index_select(0, tok_sorted)  # expert e's rows are contiguous
    blocks, off = [], 0
    count_list = counts.tolist()
    for e in range(E):
        n = count_list[e]
        if n == 0:
            continue  # no token: no work, no gradient
        blocks.append(swiglu(rows[off:off + n], P, f"{p}experts.{e}."))
        off += n
    if not blocks:
        return torch.zeros_like(x), term, 0
    y = torch.cat(blocks) * gate[order][:, None]
    y = y.to(x.dtype)  # bf16 under autocast; the residual stream stays f32
    return torch.zeros_like(x).index_add(0, tok_sorted, y), term, sum(count_list)


def forward(P, tokens, c, ffn, tb):
    B, T = tokens.shape
    d = c["d"]
    x = F.embedding(tokens, P["embed"])
    terms, active = [], 0
    for l in range(c["layers"]):
        p = f"layers.{l}."
        h = x + attention(rms_norm(x, P[p + "attn_norm.weight"]), P, p + "attn.", c, tb)
        z = rms_norm(h, P[p + "ffn_norm.weight"]).reshape(B * T, d)
        if ffn == "dense":
            f = swiglu(z, P, p + "ffn.mlp.")
        else:
            f, term, a = moe(z, P, p + "ffn.", c, ffn)
            terms.append(term)
            active += a
        x = h + f.reshape(B, T, d)
    logits = rms_norm(x, P["final_norm.weight"]).reshape(B * T, d) @ P["lm_head"]
    return logits, terms, active


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", choices=sorted(CONFIGS), default="A")
    ap.add_argument("--router", choices=ROUTERS, default="topk")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--lr", type=float, default=1e-7, help="constant; tiny so that the routing stays put")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--init", help="weights and batch from remoe bench train-step --save-init")
    ap.add_argument("--serve", action="store_true", help="one step per 'step' line on stdin (compare.py)")
    ap.add_argument("--foreach", type=int, default=0, help="AdamW foreach implementation (1) or per-tensor loop (0)")
    ap.add_argument("--precision", choices=["f32", "bf16"], default="f32",
                    help="bf16: forward and loss under torch.autocast('cpu', bfloat16) (matmuls in bf16, "
                         "f32 weights and optimizer), the counterpart of remoe's train.precision = bf16")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    c = CONFIGS[args.config]
    ffn = "relu" if args.router == "relu_target" else args.router
    t_setup = time.perf_counter()
    names = [n for n, _ in param_shapes(c, ffn)]
    if args.init:
        loaded = load_safetensors(args.init)
        missing = [n for n in names if n not in loaded]
        if missing:
            sys.exit(f"torch_step.py: {args.init} lacks {missing[:3]}... (another config or router?)")
        P = {n: loaded[n].float() for n in names}
        tokens, targets = loaded["__inputs"].long(), loaded["__targets"].long()
    else:
        if args.router == "relu_target":
            sys.exit("torch_step.py: --router relu_target needs --init (the weights remoe shaped)")
        gen = torch.Generator().manual_seed(args.seed)
        P = init_params(c, ffn, gen)
        seq = torch.randint(0, c["vocab"], (c["batch"], c["seq"] + 1), generator=gen)
        tokens, targets = seq[:, :-1].contiguous(), seq[:, 1:].contiguous()
    for n in names:
        P[n].requires_grad_(True)
    params = [P[n] for n in names]
    opt = torch.optim.AdamW([{"params": [q for q in params if q.dim() >= 2], "weight_decay": 0.01},
                             {"params": [q for q in params if q.dim() < 2], "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8, foreach=bool(args.foreach))
    tb = Tables(c["seq"], c["d"] // c["heads"])
    E, k = c["experts"], c["topk"]
    slots = c["layers"] * c["batch"] * c["seq"] * E
    lam = LAMBDA0
    setup_s = time.perf_counter() - t_setup

    ms, sparsity, losses = [], [], []

    def one_step(record):
        nonlocal lam
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            logits, terms, active = forward(P, tokens, c, ffn, tb)
            loss = F.cross_entropy(logits, targets.reshape(-1))  # autocast runs it in f32
        if ffn == "topk":
            loss = loss + sum(terms)
        elif ffn == "relu":
            loss = loss + (sum(terms) / len(terms)) * lam
        total = loss.item()
        if not math.isfinite(total):
            sys.exit("torch_step.py: non-finite loss")
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sp = 1.0 - active / slots if ffn != "dense" else 0.0
        if ffn == "relu":
            lam = lam * ALPHA if sp < 1.0 - k / E else lam / ALPHA
        t = (time.perf_counter() - t0) * 1e3
        if record:
            ms.append(t)
            sparsity.append(sp)
            losses.append(total)
        return dict(ms=t, sparsity=sp, loss=total)

    if args.serve:
        # Driven by compare.py (see remoe_bench_train_step --serve): one JSON line per "step".
        print(json.dumps(dict(ready=True, setup_s=setup_s)), flush=True)
        for line in sys.stdin:
            cmd = line.strip()
            if cmd == "end":
                break
            if cmd != "step":
                sys.exit(f"torch_step.py --serve: unknown command '{cmd}' (step, end)")
            print(json.dumps(one_step(True)), flush=True)
    else:
        for i in range(args.warmup + args.steps):
            one_step(i >= args.warmup)
    if not ms:
        sys.exit("torch_step.py: no step was timed")

    with open("/proc/self/maps") as f:
        blas = sorted({line.split()[-1] for line in f if "blas" in line.lower() and "/" in line})
    print(json.dumps(dict(impl="torch", torch_version=torch.__version__, config=args.config, router=args.router,
                          threads=torch.get_num_threads(), batch=c["batch"], seq=c["seq"],
                          tokens_per_step=c["batch"] * c["seq"], num_parameters=sum(q.numel() for q in params),
                          lr=args.lr, warmup=0 if args.serve else args.warmup, foreach=bool(args.foreach),
                          precision=args.precision, blas=blas, setup_s=setup_s,
                          step_ms=ms, median_ms=statistics.median(ms), sparsity=sparsity, loss=losses)))


if __name__ == "__main__":
    main()
