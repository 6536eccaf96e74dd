#!/usr/bin/env bash
# caviar's samplers against Optuna's TPE inside kurobako (the BENCHMARKS.md "Quality" table).
# Needs: kurobako 0.2.10 (cargo install kurobako --version 0.2.10) and, for the Optuna solver,
# python3 with optuna==4.4.0 and kurobako==0.2.1 (pip). Writes its files to $OUT (default
# target/kurobako).
#   bash benches/kurobako_vs_optuna.sh [REPEATS] [BUDGET]
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-10}
budget=${2:-100}
out=${OUT:-target/kurobako}
mkdir -p "$out"
cargo build --release --quiet
caviar="$PWD/target/release/caviar"

problems=()
for p in "--dim 5 ackley" "hartmann6" "rosenbrock-log" "--dim 5 styblinski-tang" \
         "branin02" "six-hump-camel" "shekel07" "rastrigin" "hartmann3" "--dim 5 michalewicz"; do
  # shellcheck disable=SC2086
  problems+=("$(kurobako problem sigopt $p)")
done
solvers=(
  "$(kurobako solver --name optuna-tpe optuna --sampler TPESampler)"
  "$(kurobako solver --name caviar-tpe command -- "$caviar" kurobako-solver --sampler tpe)"
  "$(kurobako solver --name caviar-tpe-mv command -- "$caviar" kurobako-solver --sampler tpe-mv)"
  "$(kurobako solver --name caviar-gp command -- "$caviar" kurobako-solver --sampler gp)"
  "$(kurobako solver --name caviar-zoom command -- "$caviar" kurobako-solver --sampler zoom)"
  "$(kurobako solver --name caviar-random command -- "$caviar" kurobako-solver --sampler random)"
)
kurobako studies --solvers "${solvers[@]}" --problems "${problems[@]}" \
  --repeats "$repeats" --budget "$budget" --seed 1 > "$out/studies.json"
kurobako run --parallelism 2 < "$out/studies.json" > "$out/results.json"
kurobako report < "$out/results.json" > "$out/report.md"
echo "report: $out/report.md"
# One report per caviar sampler against Optuna's TPE alone (see kurobako_pairs.py for why).
for pair in $(python3 benches/kurobako_pairs.py "$out/results.json" "$out"); do
  kurobako report < "$pair" > "${pair%.json}.md"
  echo "pair report: ${pair%.json}.md"
done
