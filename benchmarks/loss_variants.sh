#!/usr/bin/env bash
# The loss variants side by side on digits with the default settings, 3 seeds
# (benchmarks/RESULTS.md, "Loss variants"). Usage: benchmarks/loss_variants.sh OUT_DIR [LANE]
# LANE a or b runs half of the runs (two lanes can share two cores); none runs all.
# Summarise with: python benchmarks/loss_variants_table.py OUT_DIR
set -euo pipefail
out=${1:?output folder}
lane=${2:-all}
common=(--nobaseline --noevaluate --noknn_monitor --verbose=0)
run() {
  local name=$1 seed=$2
  shift 2
  [ -f "$out/${name}_$seed/report.json" ] && return
  python -m supcon_tf.train "${common[@]}" --seed="$seed" --model_dir="$out/${name}_$seed" "$@"
}
if [ "$lane" != b ]; then
  for seed in 0 1 2; do run hybrid "$seed" --method=hybrid --hybrid_weight=1.0; done
  run cap4 2 --positives_cap=4
fi
if [ "$lane" != a ]; then
  for seed in 0 1 2; do run one_positive "$seed" --denominator_mode=one_positive; done
  for seed in 0 1 2; do run only_negatives "$seed" --denominator_mode=only_negatives; done
  for seed in 0 1; do run cap4 "$seed" --positives_cap=4; done
fi
