#!/bin/sh
# Refreshes results/load_balance from the sweep's run directories: packs the compact files of every
# run that has started (no checkpoints), unpacks them under runs/, and reports from there.
# Run from the repository root:  sh results/load_balance/update.sh
set -e
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/load_balance-micro}
PACK=${PACK:-/tmp/load_balance-micro.tar.gz}
"$R" sweep experiments/sweeps/load_balance.toml --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf results/load_balance/runs
mkdir -p results/load_balance/runs
tar -xzf "$PACK" -C results/load_balance/runs
"$R" report results/load_balance/runs/load_balance-micro --out results/load_balance
