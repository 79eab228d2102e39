#!/bin/sh
# Quiet re-measurement for issue 12: sweeps paused, A and B, all routers, f32 and bf16, both kernel choices.
cd /work/main
trap '/work/sweep-runs/pause.sh CONT' EXIT INT TERM
/work/sweep-runs/pause.sh STOP
sleep 5
ps -eo stat,args | grep -E "train -c|remoe sweep" | grep -v grep | cut -c1-60
R=${R:-/work/build-nocuda/experiments/remoe}
for kern in haswell native; do
  if [ $kern = haswell ]; then export OPENBLAS_CORETYPE=Haswell OPENBLAS_L2_SIZE=512; else unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE; fi
  echo "== $kern $(date -u)"
  /usr/bin/python3 experiments/bench/train_step/compare.py --remoe $R --configs A,B \
     --routers dense,topk,relu,relu_target --precisions f32,bf16 --rounds 2 --steps 10 --warmup 2 \
     --workdir /work/bench/inits --reuse-inits --out /work/bench/$kern.json > /work/bench/$kern.md 2>&1
  echo "== $kern rc=$? $(date -u)"
done
