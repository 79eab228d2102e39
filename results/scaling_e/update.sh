#!/bin/sh
# Refreshes results/scaling_e from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/scaling_e/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/scaling_e-micro}
PACK=${PACK:-/tmp/scaling_e-micro.tar.gz}
"$R" sweep experiments/sweeps/scaling_e.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/scaling_e/runs
mkdir -p results/scaling_e/runs
tar -xzf "$PACK" -C results/scaling_e/runs
"$R" report results/scaling_e/runs/scaling_e-micro --out results/scaling_e
