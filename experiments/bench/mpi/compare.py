#!/usr/bin/env python3
"""Processes vs threads on one machine (issue "Scale-out on MPI", docs/scaling.md).

For every row (config A/B × router) it times the same global training step three ways, in
alternating rounds so that all three see the same machine load however it drifts:
  threads   1 process × N threads                          (remoe bench train-step)
  dp        mpirun -np N, 1 thread each, data parallel     (--expert-parallel 1)
  dp×ep     mpirun -np N, 1 thread each, experts over N    (--expert-parallel N)
Each run takes --warmup untimed steps and --steps timed ones; every rank starts each step at a
barrier, so a step's wall time is the job's. A row's ms/step is the median over all rounds' timed
steps; comm % is the median of (seconds inside collectives on rank 0) / (step time). Bytes are
rank 0's payload per step from the communicator's counters (all-reduce buffers, all-to-all rows
for other ranks), to set beside docs/scaling.md's cost model.

    python3 experiments/bench/mpi/compare.py --build build [--ranks 2 --rounds 3 --steps 10]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys

MPIRUN = ["mpirun", "--allow-run-as-root", "--oversubscribe", "--bind-to", "none"]


def run(cmd, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), REMOE_COMM_TIMEOUT="300")
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def variants(remoe, ranks, config, router, steps, warmup):
    bench = [remoe, "bench", "train-step", "--config", config, "--router", router,
             "--steps", str(steps), "--warmup", str(warmup)]
    mp = MPIRUN + ["-np", str(ranks), "-x", "OMP_NUM_THREADS", "-x", "REMOE_COMM_TIMEOUT"]
    return {
        "threads": (bench, ranks),
        "dp": (mp + bench + ["--expert-parallel", "1"], 1),
        "dp×ep": (mp + bench + ["--expert-parallel", str(ranks)], 1),
    }


def summarize(results):
    ms = [m for r in results for m in r["step_ms"]]
    share = [c / m for r in results for c, m in zip(r["comm_ms"], r["step_ms"])]
    last = results[-1]
    return {
        "median_ms": statistics.median(ms),
        "tokens_per_s": last["tokens_per_step"] / (statistics.median(ms) * 1e-3),
        "comm_share": statistics.median(share) if share else 0.0,
        "all_reduce_mb": last["all_reduce_mb_per_step"],
        "all_to_all_mb": last["all_to_all_mb_per_step"],
        "host": last.get("host", {}),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--ranks", type=int, default=2)
    ap.add_argument("--configs", default="A,B")
    ap.add_argument("--routers", default="topk,relu_target")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--out", default="mpi_compare.json")
    args = ap.parse_args()
    remoe = os.path.join(args.build, "experiments", "remoe")
    table = []
    for config in args.configs.split(","):
        for router in args.routers.split(","):
            runs = variants(remoe, args.ranks, config, router, args.steps, args.warmup)
            raw = {name: [] for name in runs}
            for rnd in range(args.rounds):
                names = list(runs) if rnd % 2 == 0 else list(reversed(runs))
                for name in names:
                    cmd, threads = runs[name]
                    raw[name].append(run(cmd, threads))
            row = {"config": config, "router": router, **{n: summarize(r) for n, r in raw.items()}}
            table.append(row)
            with open(args.out, "w") as f:
                json.dump(table, f, indent=1)
            print(f"{config} {router}: " + ", ".join(f"{n} {row[n]['median_ms']:.0f} ms" for n in runs), file=sys.stderr)
    host = table[0]["threads"]["host"] if table else {}
    print(f"host: {host.get('cpu_model', '?')}, BLAS {host.get('blas', {}).get('core', '?')}, {args.ranks} ranks/threads\n")
    print("| config | router | 1 proc × N thr ms | DP ms | DP / threads | DP comm % | DP all-reduce MB | "
          "EP ms | EP comm % | EP all-reduce MB | EP all-to-all MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in table:
        t, d, e = r["threads"], r["dp"], r["dp×ep"]
        print(f"| {r['config']} | {r['router']} | {t['median_ms']:.0f} | {d['median_ms']:.0f} | "
              f"{d['median_ms'] / t['median_ms']:.2f}× | {100 * d['comm_share']:.0f}% | {d['all_reduce_mb']:.1f} | "
              f"{e['median_ms']:.0f} | {100 * e['comm_share']:.0f}% | {e['all_reduce_mb']:.1f} | {e['all_to_all_mb']:.1f} |")


if __name__ == "__main__":
    main()
