#!/bin/sh
# Refreshes results/SWEEP from the sweep's run directories: packs the compact files of every run
# that has started (no checkpoints), unpacks them under results/SWEEP/runs/, and reports from there.
# Run from the repository root:  sh results/update.sh SWEEP   (SWEEP: a file under experiments/sweeps/)
# R (the remoe binary), RUNS (the sweep's --runs directory) and PACK (the archive) can be overridden.
set -e
S=${1:?usage: sh results/update.sh SWEEP, e.g. scaling_g}
[ -f "experiments/sweeps/$S.toml" ] || { echo "results/update.sh: no sweep file experiments/sweeps/$S.toml" >&2; exit 2; }
R=${R:-build/experiments/remoe}
RUNS=${RUNS:-/work/sweep-runs/$S-micro}
PACK=${PACK:-/tmp/$S-micro.tar.gz}
"$R" sweep "experiments/sweeps/$S.toml" --scale micro --runs "$RUNS" --pack "$PACK"
rm -rf "results/$S/runs"
mkdir -p "results/$S/runs"
tar -xzf "$PACK" -C "results/$S/runs"
"$R" report "results/$S/runs/$S-micro" --out "results/$S"
