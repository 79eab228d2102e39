#!/usr/bin/env python3
"""remoe vs PyTorch training-step speed (issue "Model and training on CPU").

For every row (config A/B × router dense/topk/relu/relu_target) it first builds the initial model once
(`remoe_bench_train_step --init-only --save-init`), then runs, per round, remoe and PyTorch one after
the other (A B A B ...: remoe, torch, for each row, then the next round), both on that same model and
batch, with OMP_NUM_THREADS=2, plus one Eigen GEMM measurement per round. Each run times `--steps`
steps after `--warmup` untimed ones; a row's ms/step is the median over all timed steps of all rounds.
It prints a markdown table and writes every raw number to --out (rewritten after each run, so an
interrupted run keeps what it measured).

    python3 experiments/bench/train_step/compare.py --build build [--rounds 3 --steps 20 --warmup 3]

Model FLOPs per step (training = forward + backward ≈ 3 × forward; PaLM's MFU convention):
    tokens · (6·N_active + 12·L·d·T)
    N_active = L·(4·d² + 3·d·w·a + d·E [MoE router]) + d·V [LM head]    (matmul weights a token uses)
where a = experts per token (dense: 1 SwiGLU of width w = k·d_ffn; topk: k; relu: E·(1 − sparsity)
measured on the timed steps), and 12·L·d·T counts the attention scores QKᵀ and P·V (2·2·T·d per token
and layer forward, ×3 for training) without halving for the causal mask. The embedding lookup, norms
and elementwise work are not counted. The GEMM peak is Eigen's single-precision n×n×n product rate
on the same two threads (median over rounds).

The PyTorch side runs /usr/bin/python3 (Debian's python3-torch 1.13) with the OpenMP build of
OpenBLAS (apt-get install libopenblas0-openmp) first on LD_LIBRARY_PATH: Debian's default pthread
OpenBLAS pool fights torch's OpenMP threads.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
CONFIGS = {  # as in train_step_bench.cpp / torch_step.py
    "A": dict(vocab=4096, d=128, layers=4, heads=4, experts=8, topk=1, width=512, seq=128, batch=16),
    "B": dict(vocab=8192, d=256, layers=6, heads=8, experts=8, topk=1, width=1024, seq=256, batch=8),
}
ROUTERS = ["dense", "topk", "relu", "relu_target"]
OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def model_flops_per_step(cfg, router, sparsity):
    c = CONFIGS[cfg]
    L, d, V, E, k, w, T = c["layers"], c["d"], c["vocab"], c["experts"], c["topk"], c["width"], c["seq"]
    if router == "dense":
        ffn = 3 * d * (k * w)
    else:
        a = k if router == "topk" else E * (1.0 - sparsity)
        ffn = 3 * d * w * a + d * E
    n_active = L * (4 * d * d + ffn) + d * V
    tokens = c["batch"] * T
    return tokens * (6 * n_active + 12 * L * d * T)


def run_json(cmd, env):
    t0 = time.time()
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["wall_s"] = time.time() - t0
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="CMake build directory")
    ap.add_argument("--bench", help="path of remoe_bench_train_step (default: under --build)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch 1.13")
    ap.add_argument("--configs", default="A,B")
    ap.add_argument("--routers", default=",".join(ROUTERS))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gemm", type=int, default=2048, help="n of the n×n×n GEMM peak measurement")
    ap.add_argument("--gemm-reps", type=int, default=5)
    ap.add_argument("--workdir", default="/tmp/remoe_train_step_bench", help="initial-model files")
    ap.add_argument("--reuse-inits", action="store_true", help="keep initial-model files already in --workdir")
    ap.add_argument("--out", default="train_step_results.json")
    ap.add_argument("--torch-foreach", type=int, default=0, help="torch AdamW foreach (1) or loop (0)")
    args = ap.parse_args()

    bench = args.bench or os.path.join(args.build, "experiments", "bench", "train_step", "remoe_bench_train_step")
    if not os.access(bench, os.X_OK):
        sys.exit(f"compare.py: {bench} not found; build the target remoe_bench_train_step first")
    configs = args.configs.split(",")
    routers = args.routers.split(",")
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"compare.py: --configs: '{c}' is not one of {sorted(CONFIGS)}")
    for r in routers:
        if r not in ROUTERS:
            sys.exit(f"compare.py: --routers: '{r}' is not one of {ROUTERS}")
    rows = [(c, r) for c in configs for r in routers]
    os.makedirs(args.workdir, exist_ok=True)

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    torch_env = dict(env)
    if os.path.isdir(OPENBLAS_OPENMP):
        torch_env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    else:
        print(f"warning: {OPENBLAS_OPENMP} missing (apt-get install libopenblas0-openmp): torch steps may be "
              "much slower than they should", file=sys.stderr)

    results = dict(args=vars(args), platform=platform.platform(), nproc=os.cpu_count(), runs=[], gemm=[], inits={})

    def save():
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)

    def load():
        return " ".join(f"{x:.2f}" for x in os.getloadavg())

    # The initial model of each row, built once (relu_target calibrates its routers here).
    for c, r in rows:
        path = os.path.join(args.workdir, f"init_{c}_{r}.safetensors")
        if args.reuse_inits and os.path.exists(path):
            print(f"init {c}/{r}: reusing {path}", file=sys.stderr)
            continue
        out = run_json([bench, "--config", c, "--router", r, "--init-only", "--save-init", path], env)
        results["inits"][f"{c}/{r}"] = out
        print(f"init {c}/{r}: {out.get('setup_s', 0):.1f} s"
              + (f", layer sparsity {out['relu_target_layer_sparsity']}" if "relu_target_layer_sparsity" in out else ""),
              file=sys.stderr)

    common = ["--steps", str(args.steps), "--warmup", str(args.warmup)]
    for rnd in range(args.rounds):
        g = run_json([bench, "--gemm-only", "--gemm", str(args.gemm), "--gemm-reps", str(args.gemm_reps)], env)["gemm"]
        g.update(round=rnd, loadavg=load())
        results["gemm"].append(g)
        print(f"round {rnd}: Eigen GEMM {g['median_gflops']:.1f} GFLOP/s (best {g['best_gflops']:.1f}), "
              f"load {g['loadavg']}", file=sys.stderr)
        save()
        for c, r in rows:
            init = os.path.join(args.workdir, f"init_{c}_{r}.safetensors")
            for impl in ("remoe", "torch"):
                la = load()
                if impl == "remoe":
                    out = run_json([bench, "--config", c, "--router", r, "--init", init] + common, env)
                else:
                    out = run_json([args.python, os.path.join(HERE, "torch_step.py"), "--config", c, "--router", r,
                                    "--init", init, "--threads", str(args.threads),
                                    "--foreach", str(args.torch_foreach)] + common, torch_env)
                out.update(round=rnd, loadavg=la)
                results["runs"].append(out)
                save()
                print(f"round {rnd} {c}/{r} {impl}: median {out['median_ms']:.1f} ms/step "
                      f"(load {la})", file=sys.stderr)

    # ---- the table ----
    gemm_peak = statistics.median(g["median_gflops"] for g in results["gemm"])
    gemm_best = max(g["best_gflops"] for g in results["gemm"])
    table = []
    lines = ["| config | router | sparsity | remoe ms/step | torch ms/step | remoe tok/s | torch tok/s | "
             "remoe/torch | remoe GFLOP/s | % GEMM peak |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for c, r in rows:
        steps = {impl: [t for x in results["runs"] if x["impl"] == impl and x["config"] == c and x["router"] == r
                        for t in x["step_ms"]] for impl in ("remoe", "torch")}
        sp = [s for x in results["runs"] if x["impl"] == "remoe" and x["config"] == c and x["router"] == r
              for s in x["sparsity"]]
        sparsity = statistics.mean(sp)
        ms = {impl: statistics.median(v) for impl, v in steps.items()}
        tokens = CONFIGS[c]["batch"] * CONFIGS[c]["seq"]
        tps = {impl: tokens / (v / 1e3) for impl, v in ms.items()}
        flops = model_flops_per_step(c, r, sparsity)
        gflops = flops / (ms["remoe"] / 1e3) * 1e-9
        per_round = {impl: [x["median_ms"] for x in results["runs"]
                            if x["impl"] == impl and x["config"] == c and x["router"] == r]
                     for impl in ("remoe", "torch")}
        row = dict(config=c, router=r, sparsity=sparsity, remoe_ms=ms["remoe"], torch_ms=ms["torch"],
                   remoe_tokens_per_s=tps["remoe"], torch_tokens_per_s=tps["torch"],
                   ratio=tps["remoe"] / tps["torch"], model_gflop_per_step=flops * 1e-9,
                   remoe_gflops=gflops, pct_gemm_peak=100 * gflops / gemm_peak, per_round_median_ms=per_round)
        table.append(row)
        lines.append(f"| {c} | {r} | {sparsity:.3f} | {ms['remoe']:.1f} | {ms['torch']:.1f} | {tps['remoe']:.0f} | "
                     f"{tps['torch']:.0f} | {row['ratio']:.2f}× | {gflops:.1f} | {row['pct_gemm_peak']:.0f}% |")
    lines.append("")
    lines.append(f"Eigen f32 GEMM {args.gemm}³ on {args.threads} threads: median {gemm_peak:.1f} GFLOP/s "
                 f"(best single product {gemm_best:.1f}); % GEMM peak uses the median.")
    results["table"] = table
    results["gemm_peak_gflops"] = gemm_peak
    results["markdown"] = "\n".join(lines)
    save()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
