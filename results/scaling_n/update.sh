#!/bin/sh
# Refreshes results/scaling_n from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/scaling_n/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/scaling_n-micro}
PACK=${PACK:-/tmp/scaling_n-micro.tar.gz}
"$R" sweep experiments/sweeps/scaling_n.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/scaling_n/runs
mkdir -p results/scaling_n/runs
tar -xzf "$PACK" -C results/scaling_n/runs
"$R" report results/scaling_n/runs/scaling_n-micro --out results/scaling_n
