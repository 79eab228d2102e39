#!/usr/bin/python3
"""Golden reference data for remoe's transformer ops, computed by PyTorch in float64.

Run with the system interpreter that has torch (Debian's python3-torch):
    /usr/bin/python3 tests/golden/make_golden.py
It writes tests/golden/<op>.safetensors: the inputs, a fixed random upstream gradient "gy", the
outputs "y" and the input gradients "g<input>" (= d sum(y * gy) / d input), with the op's
parameters in the "__metadata__" map. tests/ops/test_golden.cpp checks remoe against them.
The reference implementations below are deliberately explicit (no fused torch kernels).
"""
import json
import os
import struct

import torch
import torch.nn.functional as F

OUT_DIR = os.path.dirname(os.path.abspath(__file__))
DTYPES = {torch.float64: "F64", torch.float32: "F32", torch.bfloat16: "BF16", torch.int64: "I64", torch.int32: "I32",
          torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata):
    """A minimal safetensors writer (the safetensors package is not installed with python3-torch)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous()
        raw = t.view(torch.int16) if t.dtype == torch.bfloat16 else t  # numpy has no bfloat16
        data = raw.numpy().tobytes()  # little-endian on every platform this runs on
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # pad so that the data starts 8-byte aligned
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)
    print(f"{os.path.relpath(path)}: {len(tensors)} tensors, {os.path.getsize(path)} bytes")


def leaf(*shape, scale=1.0, shift=0.0):
    return (torch.randn(*shape, dtype=torch.float64) * scale + shift).requires_grad_(True)


def grads(y, inputs):
    """y, the upstream gradient gy, and d sum(y * gy) / d input for each input."""
    gy = torch.randn_like(y)
    gs = torch.autograd.grad(y, inputs, gy)
    return gy, gs


# ---- RMSNorm: y = x / sqrt(mean(x^2, -1) + eps) * w ----
def rms_norm_ref(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def make_rms_norm():
    out, meta = {}, {"eps": "1e-05"}
    # "big": unit-scale rows; "small": rows of size ~3e-3, where eps changes the result.
    for name, xs, scale in [("big", (3, 5, 11), 1.0), ("small", (4, 9), 3e-3)]:
        x = leaf(*xs, scale=scale)
        w = leaf(xs[-1], scale=0.2, shift=1.0)
        y = rms_norm_ref(x, w, 1e-5)
        gy, (gx, gw) = grads(y, (x, w))
        out.update({f"{name}.x": x, f"{name}.w": w, f"{name}.y": y, f"{name}.gy": gy, f"{name}.gx": gx,
                    f"{name}.gw": gw})
    save_safetensors(os.path.join(OUT_DIR, "rms_norm.safetensors"), out, meta)


# ---- RoPE on x [B, T, H, D], non-interleaved halves (HF rotate_half) ----
def rope_ref(x, base, pos_offset):
    B, T, H, D = x.shape
    inv_freq = base ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)  # base^(-2i/D)
    pos = torch.arange(T, dtype=torch.float64) + pos_offset
    freqs = torch.outer(pos, inv_freq)  # [T, D/2]
    emb = torch.cat([freqs, freqs], dim=-1)[None, :, None, :]  # [1, T, 1, D]
    x1, x2 = x[..., : D // 2], x[..., D // 2:]
    rotate_half = torch.cat([-x2, x1], dim=-1)
    return x * emb.cos() + rotate_half * emb.sin()


def make_rope():
    out, meta = {}, {}
    x = leaf(2, 5, 3, 8)
    out["x"] = x
    for name, base, off in [("base1e4", 1e4, 0), ("base1e6", 1e6, 0), ("base1e6_off3", 1e6, 3)]:
        y = rope_ref(x, base, off)
        gy, (gx,) = grads(y, (x,))
        out.update({f"{name}.y": y, f"{name}.gy": gy, f"{name}.gx": gx})
        meta[f"{name}.base"] = repr(base)
        meta[f"{name}.pos_offset"] = str(off)
    save_safetensors(os.path.join(OUT_DIR, "rope.safetensors"), out, meta)


# ---- causal attention with grouped-query heads ----
def attention_ref(q, k, v, causal):
    B, T, Hq, D = q.shape
    Hkv = k.shape[2]
    rep = Hq // Hkv  # query head h reads kv head h // rep
    k = k.repeat_interleave(rep, dim=2)
    v = v.repeat_interleave(rep, dim=2)
    scores = torch.einsum("bthd,bshd->bhts", q, k) / D ** 0.5
    if causal:
        mask = torch.ones(T, T, dtype=torch.bool).triu(1)  # key s > query t is hidden
        scores = scores.masked_fill(mask, float("-inf"))
    p = torch.softmax(scores, dim=-1)
    return torch.einsum("bhts,bshd->bthd", p, v)


def make_attention():
    out, meta = {}, {"scale": "1/sqrt(D)", "kv_head": "h // (Hq / Hkv)"}
    q, k, v = leaf(2, 7, 4, 8), leaf(2, 7, 2, 8), leaf(2, 7, 2, 8)
    out.update({"q": q, "k": k, "v": v})
    for name, causal in [("causal", True), ("full", False)]:
        y = attention_ref(q, k, v, causal)
        gy, (gq, gk, gv) = grads(y, (q, k, v))
        out.update({f"{name}.y": y, f"{name}.gy": gy, f"{name}.gq": gq, f"{name}.gk": gk, f"{name}.gv": gv})
    save_safetensors(os.path.join(OUT_DIR, "attention.safetensors"), out, meta)


# ---- softmax cross-entropy, mean over the rows whose target is not ignore_index ----
def make_cross_entropy():
    logits = leaf(9, 13, scale=2.0)
    targets = torch.randint(0, 13, (9,), dtype=torch.int64)
    targets[[1, 4, 5]] = -100
    y = F.cross_entropy(logits, targets, ignore_index=-100, reduction="mean")
    gy, (glogits,) = grads(y, (logits,))
    out = {"logits": logits, "targets": targets, "y": y, "gy": gy, "glogits": glogits}
    save_safetensors(os.path.join(OUT_DIR, "cross_entropy.safetensors"), out, {"ignore_index": "-100"})


# ---- SwiGLU FFN: down(silu(x @ Wg) * (x @ Wu)), weights [in, out] ----
def make_swiglu_ffn():
    x = leaf(2, 5, 6)
    wg, wu, wd = leaf(6, 10, scale=0.5), leaf(6, 10, scale=0.5), leaf(10, 6, scale=0.5)
    y = (F.silu(x @ wg) * (x @ wu)) @ wd
    gy, (gx, gwg, gwu, gwd) = grads(y, (x, wg, wu, wd))
    out = {"x": x, "wg": wg, "wu": wu, "wd": wd, "y": y, "gy": gy, "gx": gx, "gwg": gwg, "gwu": gwu, "gwd": gwd}
    save_safetensors(os.path.join(OUT_DIR, "swiglu_ffn.safetensors"), out, {})


if __name__ == "__main__":
    torch.manual_seed(20241218)
    make_rms_norm()
    make_rope()
    make_attention()
    make_cross_entropy()
    make_swiglu_ffn()
