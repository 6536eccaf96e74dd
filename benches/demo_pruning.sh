#!/usr/bin/env bash
# `caviar demo` (100 trials × 50 epochs) with full-budget random search against the same search
# stopped early by ASHA, for several seeds: best validation accuracy, epochs trained, wall time.
#   cargo build --release && bash benches/demo_pruning.sh [SEEDS...]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
caviar=${CAVIAR:-$here/../target/release/caviar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(4 0 1 2)
echo "| seed | pruner | best val_acc | epochs trained | study wall time |"
echo "|---|---|---|---|---|"
for seed in "${seeds[@]}"; do
  for pruner in none asha; do
    "$caviar" --storage "sqlite:$work/demo.db" demo --seed "$seed" --pruner "$pruner" \
      --study "s$seed-$pruner" --plot "$work/curves.svg" --json 2>/dev/null |
      python3 -c "
import json, sys
d = json.load(sys.stdin)
print(f\"| $seed | $pruner | {d['best'][0]['value']:.2f} | {d['epochs_trained']} | {d['elapsed_s']:.1f} s |\")"
  done
done
