#!/bin/sh
# Gathers the zero-shot runs of the routers comparison into a report directory: seed 1 of each plain
# router, retrained from its committed config.toml (the original runs kept no checkpoint to evaluate)
# and evaluated with `remoe eval`. Run from the repository root after the loop in README.md:
#   R=build/experiments/remoe Z=/work/sweep-runs/zs sh results/routers/zero_shot/assemble.sh
set -e
R=${R:-build/experiments/remoe}
Z=${Z:?Z: the directory the seed-1 runs were retrained into}
SRC=results/routers/runs/routers-micro
D=results/routers/zero_shot/runs/routers-micro
rm -rf "$D" && mkdir -p "$D"
names=""
for l in dense hash lory sparsemixer expert_choice topk relu; do
  n=$(sed -n 's/^name = "\(.*\)"/\1/p' "$SRC/$l-s1/config.toml" | head -1)
  [ -f "$Z/$n/eval.json" ] || { echo "assemble.sh: $Z/$n has no eval.json yet" >&2; continue; }
  mkdir -p "$D/$l-s1"
  cp "$Z/$n/config.toml" "$Z/$n/metrics.jsonl" "$Z/$n/run.json" "$Z/$n/summary.json" "$Z/$n/eval.json" "$D/$l-s1/"
  cp "$SRC/$l-s1/sweep_point.json" "$D/$l-s1/"
  names="$names $l-s1"
done
# The sweep's index, with only the runs gathered here.
/usr/bin/python3 - "$SRC/sweep.json" "$D/sweep.json" $names <<'PY'
import json, sys
index = json.load(open(sys.argv[1]))
index["runs"] = [r for r in index["runs"] if r["name"] in sys.argv[3:]]
json.dump(index, open(sys.argv[2], "w"), indent=2)
PY
"$R" report "$D" --out results/routers/zero_shot
