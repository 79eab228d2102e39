#!/usr/bin/env python3
"""The communication cost model of docs/scaling.md, as numbers.

Per optimizer step and per rank: the bytes all-reduced (gradients: f32, 4 bytes per parameter)
and exchanged by the experts' all-to-all, against the model FLOPs the rank computes; and the link
bandwidth at which communication would take as long as compute (without overlap). Edit the
configs below or pass --d/--layers/... to price your own model.

    python3 experiments/bench/mpi/cost_model.py            # the table of docs/scaling.md
    python3 experiments/bench/mpi/cost_model.py --check A  # the formula for bench config A (rank 0 of 2)
"""
import argparse


def params(c):
    """Shared (replicated) and expert parameters, as models/transformer.cpp builds them."""
    d, hd = c["d"], c["d"] // c["heads"]
    q, kv = c["heads"] * hd, c["kv_heads"] * hd
    per_layer = d * (q + 2 * kv) + q * d + 2 * d + d * c["experts"]  # attention, 2 norms, router
    shared = 2 * c["vocab"] * d + c["layers"] * per_layer + d          # embed, lm_head, final norm
    expert = c["layers"] * c["experts"] * 3 * d * c["width"]
    return shared, expert


def flops_per_token(c):
    """experiments/train/throughput.cpp: forward + backward = 3 × forward, matmuls only."""
    d, hd = c["d"], c["d"] // c["heads"]
    q, kv = c["heads"] * hd, c["kv_heads"] * hd
    attn = 2 * d * (q + 2 * kv) + 2 * q * d + 2 * 2 * q * c["seq"] / 2
    ffn = 2 * 3 * d * c["width"] * c["pairs"] + 2 * d * c["experts"]
    return 3 * (c["layers"] * (attn + ffn) + 2 * d * c["vocab"])


def ring(group, payload):
    """Bytes a rank sends in a ring all-reduce of `payload` bytes over `group` ranks."""
    return 2 * (group - 1) / group * payload if group > 1 else 0.0


def step_bytes(c, world, P):
    """This rank's payload per step (all-reduce, all-to-all) and what it puts on the wire."""
    shared, expert = params(c)
    dp = world // P
    if P == 1:  # data parallel: every gradient over the world
        ar = 4 * (shared + expert)
        return ar, 0.0, ring(world, ar)
    # DP x EP: shared gradients over the world, held experts' over their dp replicas
    ar_shared, ar_expert = 4 * shared, (4 * expert / P if dp > 1 else 0.0)
    rows = c["tokens"] / world * c["pairs"] * (P - 1) / P  # pairs for experts held elsewhere (uniform)
    a2a = c["layers"] * (4 * rows * c["d"] * 4 + (P - 1) * (c["experts"] // P) * 8)
    return ar_shared + ar_expert, a2a, ring(world, ar_shared) + ring(dp, ar_expert) + a2a


CONFIGS = {
    # The paper's 182M MoE (docs/model.md): E = 8, k = 1, 512 × 1024 tokens a step, vocab 50k.
    "182M": dict(vocab=50257, d=768, layers=12, heads=12, kv_heads=4, experts=8, width=3072, pairs=1, seq=1024,
                 tokens=512 * 1024),
    # The micro scale of our sweeps (experiments/sweeps/README.md): 8 × 128 tokens a step.
    "micro": dict(vocab=8192, d=128, layers=4, heads=4, kv_heads=4, experts=8, width=512, pairs=1, seq=128,
                  tokens=8 * 128),
    # remoe bench train-step --config A (experiments/train/step_bench.cpp).
    "A": dict(vocab=4096, d=128, layers=4, heads=4, kv_heads=4, experts=8, width=512, pairs=1, seq=128,
              tokens=16 * 128),
}


def table(rate_flops, layouts):
    print(f"rank compute rate: {rate_flops / 1e12:g} TFLOP/s\n")
    print("| model | world | EP | all-reduce MB | all-to-all MB | ring traffic MB | compute ms | break-even GB/s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, world, P in layouts:
        c = CONFIGS[name]
        ar, a2a, traffic = step_bytes(c, world, P)
        compute_s = flops_per_token(c) * c["tokens"] / world / rate_flops
        print(f"| {name} | {world} | {P} | {ar / 1e6:.1f} | {a2a / 1e6:.1f} | {traffic / 1e6:.1f} | "
              f"{compute_s * 1e3:.1f} | {traffic / compute_s / 1e9:.2f} |")
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", help="print the payload formula's bytes for one config at world 2, EP 1 and 2")
    args = ap.parse_args()
    if args.check:
        c = CONFIGS[args.check]
        for P in (1, 2):
            ar, a2a, _ = step_bytes(c, 2, P)
            print(f"{args.check}: world 2, EP {P}: all-reduce {ar / 1e6:.3f} MB, all-to-all {a2a / 1e6:.3f} MB")
        return
    table(400e12, [("182M", 8, 1), ("182M", 8, 8), ("182M", 64, 1), ("182M", 64, 8)])  # H100 bf16, ~40% MFU
    table(60e9, [("micro", 2, 1), ("micro", 2, 2), ("micro", 16, 1), ("micro", 16, 8)])  # one CPU core


if __name__ == "__main__":
    main()
