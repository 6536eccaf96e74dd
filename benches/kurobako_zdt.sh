#!/usr/bin/env bash
# Several objectives: caviar's NSGA-II and TPE against Optuna's NSGA-II and multi-objective TPE
# on kurobako's ZDT problems, by hypervolume (the BENCHMARKS.md "Several objectives" table).
# Needs kurobako 0.2.10 (cargo install) and python3 with optuna==4.4.0, kurobako==0.2.1 and
# scipy (pip); Optuna runs through benches/optuna_mo_solver.py. Writes its files to $OUT (default target/kurobako-zdt).
#   bash benches/kurobako_zdt.sh [REPEATS] [BUDGET] [PROBLEMS...]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-10}
budget=${2:-200}
shift $(( $# > 2 ? 2 : $# ))
numbers=("${@:-1 2 3}")
out=${OUT:-target/kurobako-zdt}
mkdir -p "$out"
cargo build --release --quiet
caviar="$PWD/target/release/caviar"

problems=()
# shellcheck disable=SC2068
for n in ${numbers[@]}; do
  problems+=("$(kurobako problem zdt "$n")")
done
solvers=(
  "$(kurobako solver --name optuna-nsga2 command -- python3 "$PWD/benches/optuna_mo_solver.py" NSGAIISampler)"
  "$(kurobako solver --name optuna-motpe command -- python3 "$PWD/benches/optuna_mo_solver.py" TPESampler)"
  "$(kurobako solver --name caviar-nsga2 command -- "$caviar" kurobako-solver --sampler nsga2)"
  "$(kurobako solver --name caviar-tpe command -- "$caviar" kurobako-solver --sampler tpe)"
  "$(kurobako solver --name caviar-random command -- "$caviar" kurobako-solver --sampler random)"
)
kurobako studies --solvers "${solvers[@]}" --problems "${problems[@]}" \
  --repeats "$repeats" --budget "$budget" --seed 1 > "$out/studies.json"
kurobako run --parallelism 2 < "$out/studies.json" > "$out/results.json"
python3 benches/zdt_hypervolume.py "$out/results.json" | tee "$out/hypervolume.md"
