#!/usr/bin/env python3
"""Paired step timing of remoe variants: ReMoE vs TopK, E = 32 vs E = 4, one build vs another.

Each variant is one `remoe bench train-step --serve` process (its model built once); the script
then asks them for one training step each in turn (A B C A B C ...), so that the machine's drift
hits every variant alike, and prints per variant the median ms/step and the median over rounds of
its step time divided by the first variant's (the baseline) in the same round.

    python3 experiments/bench/train_step/pair.py --steps 20 \\
        -v "topk: --config B --router topk" -v "relu: --config B --router relu_target"
    python3 experiments/bench/train_step/pair.py \\
        -v "E4: --config A --router topk --moe.num_experts=4" \\
        -v "E32: --config A --router topk --moe.num_experts=32"

A variant is "NAME: ARGS" (ARGS go to `remoe bench train-step`), or "NAME=BINARY: ARGS" to time
another build. OMP_NUM_THREADS is taken from the environment (default 2).
"""
import argparse
import json
import os
import shlex
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import Server  # noqa: E402  (the --serve protocol)


def parse_variant(text, default_binary):
    name, sep, args = text.partition(":")
    if not sep:
        sys.exit(f"pair.py: variant '{text}' must be 'NAME: ARGS' or 'NAME=BINARY: ARGS'")
    name, _, binary = name.strip().partition("=")
    return name, [binary or default_binary, "bench", "train-step", *shlex.split(args), "--serve"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--variant", action="append", required=True, help="NAME[=BINARY]: ARGS (first = baseline)")
    ap.add_argument("--build", default="build", help="build directory whose experiments/remoe runs by default")
    ap.add_argument("--steps", type=int, default=15, help="timed rounds (one step of every variant each)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    ap.add_argument("--out", help="write every step time as JSON here")
    args = ap.parse_args()

    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "2")
    default_binary = os.path.join(args.build, "experiments", "remoe")
    variants = [parse_variant(v, default_binary) for v in args.variant]
    servers = [Server(name, cmd, env) for name, cmd in variants]
    ms = {name: [] for name, _ in variants}
    for r in range(args.warmup + args.steps):
        for (name, _), server in zip(variants, servers):
            t = server.step()["ms"]
            if r >= args.warmup:
                ms[name].append(t)
    for s in servers:
        s.end()

    base = variants[0][0]
    print(f"{args.steps} paired rounds, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}, baseline {base}")
    print("| variant | median ms/step | min | median ratio to baseline |")
    print("|---|---|---|---|")
    for name, _ in variants:
        ratio = statistics.median(a / b for a, b in zip(ms[name], ms[base]))
        print(f"| {name} | {statistics.median(ms[name]):.1f} | {min(ms[name]):.1f} | {ratio:.3f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"variants": [{"name": n, "cmd": c} for n, c in variants], "step_ms": ms}, f, indent=1)


if __name__ == "__main__":
    main()
