#!/bin/sh
# Refreshes results/scaling_k from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/scaling_k/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/scaling_k-micro}
PACK=${PACK:-/tmp/scaling_k-micro.tar.gz}
"$R" sweep experiments/sweeps/scaling_k.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/scaling_k/runs
mkdir -p results/scaling_k/runs
tar -xzf "$PACK" -C results/scaling_k/runs
"$R" report results/scaling_k/runs/scaling_k-micro --out results/scaling_k
