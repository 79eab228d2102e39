#!/bin/sh
# Refreshes results/sensitivity_alpha from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/sensitivity_alpha/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/sensitivity_alpha-micro}
PACK=${PACK:-/tmp/sensitivity_alpha-micro.tar.gz}
"$R" sweep experiments/sweeps/sensitivity_alpha.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/sensitivity_alpha/runs
mkdir -p results/sensitivity_alpha/runs
tar -xzf "$PACK" -C results/sensitivity_alpha/runs
"$R" report results/sensitivity_alpha/runs/sensitivity_alpha-micro --out results/sensitivity_alpha
