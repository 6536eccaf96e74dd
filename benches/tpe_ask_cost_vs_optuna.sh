#!/usr/bin/env bash
# Ask cost of caviar's TPE and Optuna 4.4's TPESampler at 1,000 complete trials with 10
# log-scale parameters, run alternately (the machine's speed drifts) and summarised by medians.
#
#   cargo build --release && pip install optuna==4.4.0
#   bash benches/tpe_ask_cost_vs_optuna.sh [ROUNDS]
set -euo pipefail
rounds=${1:-9}
here=$(cd "$(dirname "$0")" && pwd)
caviar=${CAVIAR:-$here/../target/release/caviar}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for _ in $(seq "$rounds"); do
    "$caviar" bench samplers --samplers tpe --seeds 1 --max-trials 1000 --storage memory: --json \
        | sed -n '/^\[/,$p' \
        | python3 -c '
import json, sys
rows = [r for r in json.load(sys.stdin) if r["kind"] == "ask_cost"]
print(dict((n, v[1]) for n, v in rows[0]["ms_per_ask"])[1000])' >>"$work/caviar"
    python3 "$here/optuna_ask_cost.py" 1000 | awk '{print $(NF-3)}' >>"$work/optuna"
done
median() { sort -g "$1" | awk '{v[NR]=$1} END {print (NR % 2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
c=$(median "$work/caviar")
o=$(median "$work/optuna")
echo "caviar tpe ms per ask at 1000 trials: $(sort -g "$work/caviar" | tr '\n' ' ')"
echo "optuna tpe ms per ask at 1000 trials: $(sort -g "$work/optuna" | tr '\n' ' ')"
echo "medians: caviar $c ms, optuna $o ms, ratio $(python3 -c "print(round($o / $c, 1))")x"
