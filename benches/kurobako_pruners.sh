#!/usr/bin/env bash
# caviar's pruners against Optuna 4.4's inside kurobako, on a 27-step learning-curve problem
# (benches/kurobako_curve_problem.py). Needs kurobako 0.2.10 and pip optuna==4.4.0 kurobako==0.2.1.
#
#   cargo build --release && OUT=target/kurobako-pruners bash benches/kurobako_pruners.sh [REPEATS] [BUDGET]
# SAMPLERS (default "tpe") names the caviar samplers run with each pruner.
set -euo pipefail
repeats=${1:-10}
budget=${2:-30}
here=$(cd "$(dirname "$0")" && pwd)
caviar=${CAVIAR:-$here/../target/release/caviar}
out=${OUT:-target/kurobako-pruners}
mkdir -p "$out"
cd "$out"
kurobako problem command -- python3 "$here/kurobako_curve_problem.py" > problem.json
kurobako solver optuna > optuna-tpe.json
kurobako solver --name optuna-tpe-median optuna --pruner MedianPruner > optuna-median.json
kurobako solver --name optuna-tpe-asha optuna --pruner SuccessiveHalvingPruner > optuna-asha.json
solvers=()
for f in optuna-tpe optuna-median optuna-asha; do
  solvers+=("$(cat "$f.json")")
done
# caviar's samplers to pair with each pruner (SAMPLERS="auto tpe" compares the default with TPE).
for s in ${SAMPLERS:-tpe}; do
  solvers+=("$(kurobako solver --name "caviar-$s" command -- "$caviar" kurobako-solver --sampler "$s")")
  for p in median asha hyperband; do
    solvers+=("$(kurobako solver --name "caviar-$s-$p" command -- "$caviar" kurobako-solver --sampler "$s" --pruner "$p")")
  done
done
kurobako studies --solvers "${solvers[@]}" --problems "$(cat problem.json)" \
  --repeats "$repeats" --budget "$budget" --seed 1 > studies.json
kurobako run --parallelism 2 < studies.json > results.json
kurobako report < results.json > report.md
python3 - <<'PY'
import json, statistics
rows = {}
for line in open("results.json"):
    r = json.loads(line)
    name = r["solver"]["spec"]["name"]
    evals = [e for t in r["trials"] for e in t["evaluations"]]
    best = min(e["values"][0] for e in evals if e["values"])
    rows.setdefault(name, []).append((best, len(r["trials"])))
print("| solver | best value (mean ± sd) | trials started (mean) |")
print("|---|---|---|")
for name, v in rows.items():
    b = [x[0] for x in v]
    print(f"| {name} | {statistics.mean(b):.4f} ± {statistics.stdev(b):.4f} | {statistics.mean(x[1] for x in v):.0f} |")
PY
