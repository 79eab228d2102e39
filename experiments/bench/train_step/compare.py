#!/usr/bin/env python3
"""remoe vs PyTorch training-step speed (issue "Model and training on CPU").

For every row (config A/B × router dense/topk/relu/relu_target) it builds the initial model once
(`remoe bench train-step --init-only --save-init`), then starts remoe and PyTorch side by side on
that same model and batch (`--serve`: each process builds its model, then takes one training step
per command) and alternates their steps, A B A B ..., swapping which goes first in every pair, so
that both see the same machine load however it drifts. The first --warmup steps of each are
dropped; a row's ms/step is the median of its timed steps over all rounds, and the pair ratio is
the median of torch/remoe over adjacent steps. Each process times its own step (forward,
backward, clipping, AdamW). Both run with OMP_NUM_THREADS=--threads. Before every row, the GEMM
rate is measured (`remoe bench gemm`, same thread count): Eigen's own product, the issue's reference
peak, and remoe::matmul's (OpenBLAS when remoe is built with it).
With --precisions f32,bf16 every row runs once per precision: remoe with train.precision = bf16
(GEMM inputs rounded to bf16, f32 accumulation, oneDNN), PyTorch with the forward and loss under
torch.autocast("cpu", dtype=torch.bfloat16); both keep f32 weights and AdamW state. The OpenBLAS
kernel choice is the environment's (OPENBLAS_CORETYPE, recorded in --out) and applies to both sides.
It prints a markdown table and writes every raw number to --out (rewritten after each row, so an
interrupted run keeps what it measured).

    python3 experiments/bench/train_step/compare.py --build build [--rounds 1 --steps 20 --warmup 3]

Model FLOPs per step come from remoe (experiments/train/throughput.cpp, the runner's MFU formula):
matmuls only, forward + backward = 3 × forward, the causal half of the attention scores, the
active experts' SwiGLU (relu: E·(1 − sparsity) measured on the timed steps), router and LM head.
% peak = model FLOP/s over the median GEMM rate (Eigen's, and remoe::matmul's library's).

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
CONFIGS = {  # as in experiments/train/step_bench.cpp and torch_step.py
    "A": dict(vocab=4096, d=128, layers=4, heads=4, experts=8, topk=1, width=512, seq=128, batch=16),
    "B": dict(vocab=8192, d=256, layers=6, heads=8, experts=8, topk=1, width=1024, seq=256, batch=8),
}
ROUTERS = ["dense", "topk", "relu", "relu_target"]
IMPLS = ("remoe", "torch")
OPENBLAS_OPENMP = "/usr/lib/x86_64-linux-gnu/openblas-openmp"


def run_json(cmd, env):
    p = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit(f"compare.py: {' '.join(cmd)} failed ({p.returncode}):\n{p.stderr}")
    return json.loads(p.stdout.strip().splitlines()[-1])


class Server:
    """A benchmark process in --serve mode: one training step per request."""

    def __init__(self, name, cmd, env):
        self.name, self.cmd = name, cmd
        self.p = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self.ready = self._read()

    def _read(self):
        line = self.p.stdout.readline()
        if not line:
            self.p.wait()
            sys.exit(f"compare.py: {self.name} ({' '.join(self.cmd)}) stopped (exit {self.p.returncode})")
        return json.loads(line)

    def step(self):
        self.p.stdin.write("step\n")
        self.p.stdin.flush()
        return self._read()

    def end(self):
        self.p.stdin.write("end\n")
        self.p.stdin.flush()
        final = self._read()
        self.p.wait()
        return final


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(REPO, "build"), help="CMake build directory")
    ap.add_argument("--remoe", help="path of the remoe binary (default: under --build)")
    ap.add_argument("--python", default="/usr/bin/python3", help="interpreter with torch 1.13")
    ap.add_argument("--configs", default="A,B")
    ap.add_argument("--routers", default=",".join(ROUTERS))
    ap.add_argument("--rounds", type=int, default=1, help="passes over all rows")
    ap.add_argument("--steps", type=int, default=20, help="timed steps per side, row and round")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=1e-7, help="constant; tiny so that the routing stays put")
    ap.add_argument("--gemm", type=int, default=2048, help="n of the n×n×n GEMM peak measurement")
    ap.add_argument("--gemm-reps", type=int, default=3)
    ap.add_argument("--workdir", default="/tmp/remoe_train_step_bench", help="initial-model files")
    ap.add_argument("--reuse-inits", action="store_true", help="keep initial-model files already in --workdir")
    ap.add_argument("--out", default="train_step_results.json")
    ap.add_argument("--torch-foreach", type=int, default=0, help="torch AdamW foreach (1) or loop (0)")
    ap.add_argument("--precisions", default="f32", help="f32,bf16: each row once per precision (remoe "
                    "train.precision; torch: autocast to bfloat16 on the CPU)")
    args = ap.parse_args()

    remoe = args.remoe or os.path.join(args.build, "experiments", "remoe")
    if not os.access(remoe, os.X_OK):
        sys.exit(f"compare.py: {remoe} not found; build the target remoe first")
    bench = [remoe, "bench", "train-step"]
    configs, routers = args.configs.split(","), args.routers.split(",")
    for c in configs:
        if c not in CONFIGS:
            sys.exit(f"compare.py: --configs: '{c}' is not one of {sorted(CONFIGS)}")
    for r in routers:
        if r not in ROUTERS:
            sys.exit(f"compare.py: --routers: '{r}' is not one of {ROUTERS}")
    if args.steps < 1 or args.warmup < 0 or args.rounds < 1:
        sys.exit("compare.py: need --steps >= 1, --warmup >= 0, --rounds >= 1")
    precisions = args.precisions.split(",")
    for pr in precisions:
        if pr not in ("f32", "bf16"):
            sys.exit(f"compare.py: --precisions: '{pr}' is not one of ['bf16', 'f32']")
    rows = [(c, r) for c in configs for r in routers]
    os.makedirs(args.workdir, exist_ok=True)

    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    torch_env = dict(env)
    if os.path.isdir(OPENBLAS_OPENMP):
        torch_env["LD_LIBRARY_PATH"] = OPENBLAS_OPENMP + (":" + env["LD_LIBRARY_PATH"] if env.get("LD_LIBRARY_PATH") else "")
    else:
        print(f"warning: {OPENBLAS_OPENMP} missing (apt-get install libopenblas0-openmp): torch steps may be "
              "much slower than they should", file=sys.stderr)

    results = dict(args=vars(args), platform=platform.platform(), nproc=os.cpu_count(), rows=[], gemm=[], inits={},
                   blas_env={k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")})

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
        out = run_json(bench + ["--config", c, "--router", r, "--init-only", "--save-init", path], env)
        results["inits"][f"{c}/{r}"] = out
        print(f"init {c}/{r}: {out.get('setup_s', 0):.1f} s"
              + (f", layer sparsity {out['relu_target_layer_sparsity']}" if "relu_target_layer_sparsity" in out else ""),
              file=sys.stderr)

    for rnd in range(args.rounds):
        for c, r, pr in [(c, r, pr) for c, r in rows for pr in precisions]:
            g = run_json([remoe, "bench", "gemm", "--n", str(args.gemm), "--reps", str(args.gemm_reps)], env)
            g.update(round=rnd, row=f"{c}/{r}", loadavg=load())
            results["gemm"].append(g)

            init = os.path.join(args.workdir, f"init_{c}_{r}.safetensors")
            common = ["--config", c, "--router", r, "--init", init, "--lr", str(args.lr), "--serve", "--precision", pr]
            t0, la = time.time(), load()
            servers = {
                "remoe": Server("remoe", bench + common, env),
                "torch": Server("torch", [args.python, os.path.join(HERE, "torch_step.py"), "--threads", str(args.threads),
                                          "--foreach", str(args.torch_foreach)] + common, torch_env),
            }
            steps = {impl: [] for impl in IMPLS}
            for i in range(args.warmup + args.steps):
                for impl in (IMPLS if i % 2 == 0 else IMPLS[::-1]):  # A B, B A, A B, ...
                    steps[impl].append(servers[impl].step())
            finals = {impl: servers[impl].end() for impl in IMPLS}
            timed = {impl: steps[impl][args.warmup:] for impl in IMPLS}
            row = dict(config=c, router=r, precision=pr, round=rnd, loadavg_start=la, loadavg_end=load(), wall_s=time.time() - t0,
                       remoe_ms=[s["ms"] for s in timed["remoe"]], torch_ms=[s["ms"] for s in timed["torch"]],
                       remoe_sparsity=[s["sparsity"] for s in timed["remoe"]],
                       torch_sparsity=[s["sparsity"] for s in timed["torch"]],
                       remoe_loss=[s["loss"] for s in timed["remoe"]], torch_loss=[s["loss"] for s in timed["torch"]],
                       warmup_ms={impl: [s["ms"] for s in steps[impl][:args.warmup]] for impl in IMPLS},
                       setup_s={impl: servers[impl].ready.get("setup_s") for impl in IMPLS},
                       torch_blas=finals["torch"].get("blas"), gemm_gflops=g["eigen"]["median_gflops"],
                       model_gflop_per_step=finals["remoe"]["model_gflop_per_step"])
            results["rows"].append(row)
            save()
            print(f"round {rnd} {c}/{r}/{pr}: remoe {statistics.median(row['remoe_ms']):.1f} ms, torch "
                  f"{statistics.median(row['torch_ms']):.1f} ms, GEMM Eigen {g['eigen']['median_gflops']:.1f} / "
                  f"{g['host']['blas']['library']} {g['matmul']['median_gflops']:.1f} GFLOP/s, "
                  f"load {la} -> {row['loadavg_end']}", file=sys.stderr)

    # ---- the table ----
    gemm_peak = statistics.median(g["eigen"]["median_gflops"] for g in results["gemm"])
    gemm_best = max(g["eigen"]["best_gflops"] for g in results["gemm"])
    lib = results["gemm"][0]["host"]["blas"]["library"]
    lib_peak = statistics.median(g["matmul"]["median_gflops"] for g in results["gemm"])
    table = []
    lines = ["| config | router | precision | sparsity | remoe ms/step | torch ms/step | remoe tok/s | torch tok/s | "
             f"remoe/torch | median pair ratio | remoe GFLOP/s | % Eigen peak | % {lib} peak |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for c, r, pr in [(c, r, pr) for c, r in rows for pr in precisions]:
        mine = [x for x in results["rows"] if x["config"] == c and x["router"] == r and x["precision"] == pr]
        ms = {impl: statistics.median([t for x in mine for t in x[impl + "_ms"]]) for impl in IMPLS}
        pair = statistics.median([b / a for x in mine for a, b in zip(x["remoe_ms"], x["torch_ms"])])
        sparsity = statistics.mean([s for x in mine for s in x["remoe_sparsity"]])
        tokens = CONFIGS[c]["batch"] * CONFIGS[c]["seq"]
        tps = {impl: tokens / (v / 1e3) for impl, v in ms.items()}
        flops = statistics.median(x["model_gflop_per_step"] for x in mine) * 1e9
        gflops = flops / (ms["remoe"] / 1e3) * 1e-9
        row = dict(config=c, router=r, precision=pr, sparsity=sparsity, remoe_ms=ms["remoe"], torch_ms=ms["torch"],
                   remoe_tokens_per_s=tps["remoe"], torch_tokens_per_s=tps["torch"],
                   ratio=tps["remoe"] / tps["torch"], median_pair_ratio=pair, model_gflop_per_step=flops * 1e-9,
                   remoe_gflops=gflops, pct_gemm_peak=100 * gflops / gemm_peak,
                   pct_matmul_peak=100 * gflops / lib_peak)
        table.append(row)
        lines.append(f"| {c} | {r} | {pr} | {sparsity:.3f} | {ms['remoe']:.1f} | {ms['torch']:.1f} | {tps['remoe']:.0f} | "
                     f"{tps['torch']:.0f} | {row['ratio']:.2f}× | {pair:.2f}× | {gflops:.1f} | "
                     f"{row['pct_gemm_peak']:.0f}% | {row['pct_matmul_peak']:.0f}% |")
    lines.append("")
    lines.append(f"f32 GEMM {args.gemm}³ on {args.threads} threads, median over {len(results['gemm'])} measurements: "
                 f"Eigen {gemm_peak:.1f} GFLOP/s (best single product {gemm_best:.1f}), remoe::matmul ({lib}) "
                 f"{lib_peak:.1f} GFLOP/s; the % peak columns use the medians (f32 peaks, also for bf16 rows). Pair ratio: torch ms / remoe ms of adjacent steps.")
    results["table"] = table
    results["gemm_peak_gflops"] = gemm_peak
    results["matmul_peak_gflops"] = lib_peak
    results["markdown"] = "\n".join(lines)
    save()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
