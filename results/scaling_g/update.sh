#!/bin/sh
# Refreshes results/scaling_g from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/scaling_g/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/scaling_g-micro}
PACK=${PACK:-/tmp/scaling_g-micro.tar.gz}
"$R" sweep experiments/sweeps/scaling_g.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/scaling_g/runs
mkdir -p results/scaling_g/runs
tar -xzf "$PACK" -C results/scaling_g/runs
"$R" report results/scaling_g/runs/scaling_g-micro --out results/scaling_g
