#!/usr/bin/env bash
# Issue 20's suite: the sigopt problems listed in benches/suite/sigopt.txt and the scikit-learn
# tasks of benches/suite/sklearn_problem.py, each with caviar's samplers and Optuna's, then
# per-problem verdicts (benches/suite/verdicts.py).
# Needs kurobako 0.2.10 (cargo install) and python3 with optuna==4.4.0, kurobako==0.2.1, scipy,
# scikit-learn and "setuptools<81" (kurobako's Optuna solver imports pkg_resources); Optuna's
# GPSampler also needs torch (set OMP_NUM_THREADS=1, or two studies fight over the cores).
#   bash benches/kurobako_suite.sh [REPEATS] [BUDGET]
# Environment: PARTS="sigopt sklearn" (default both), CAVIAR_SAMPLERS="auto" (caviar's
# kurobako-solver samplers; empty for none), OPTUNA_SAMPLERS="TPESampler GPSampler" (empty for
# none), OUT (default target/kurobako-suite), PARALLELISM (default 2), CONCURRENCY (trials each
# study runs at once, as several workers would; default 1), CAVIAR (a caviar binary to use as it
# is), SIGOPT_LIST (a file of sigopt problems in sigopt.txt's form, to run only some of them).
set -euo pipefail
cd "$(dirname "$0")/.."
repeats=${1:-10}
budget=${2:-100}
out=${OUT:-target/kurobako-suite}
parts=${PARTS:-sigopt sklearn}
mkdir -p "$out"
# CAVIAR names a caviar binary to use instead of building one (a copy, so that a long run
# survives rebuilds of target/).
if [ -n "${CAVIAR:-}" ]; then
  caviar=$CAVIAR
elif [ -z "${CAVIAR_SAMPLERS-auto}" ]; then
  caviar=
else
  cargo build --release --quiet
  caviar="$PWD/target/release/caviar"
fi
# One thread per study: scikit-learn's OpenMP and BLAS would otherwise fight over the cores
# between parallel studies (the values do not change).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

problems=()
for part in $parts; do
  case $part in
    sigopt)
      while IFS='|' read -r args _; do
        # shellcheck disable=SC2086
        problems+=("$(kurobako problem sigopt $args < /dev/null)")
      done < <(grep -v '^#' "${SIGOPT_LIST:-benches/suite/sigopt.txt}")
      ;;
    sklearn)
      for task in $(python3 benches/suite/sklearn_problem.py --list | cut -d' ' -f1); do
        problems+=("$(kurobako problem command -- python3 "$PWD/benches/suite/sklearn_problem.py" "$task")")
      done
      ;;
    *) echo "unknown part $part (use sigopt, sklearn)" >&2; exit 2 ;;
  esac
done
solvers=()
for s in ${OPTUNA_SAMPLERS-TPESampler GPSampler}; do
  solvers+=("$(kurobako solver --name "optuna-$s" optuna --sampler "$s")")
done
for s in ${CAVIAR_SAMPLERS-auto}; do
  solvers+=("$(kurobako solver --name "caviar-$s" command -- "$caviar" kurobako-solver --sampler "$s")")
done
kurobako studies --solvers "${solvers[@]}" --problems "${problems[@]}" \
  --repeats "$repeats" --budget "$budget" --seed 1 --concurrency "${CONCURRENCY:-1}" \
  > "$out/studies.json"
kurobako run --parallelism "${PARALLELISM:-2}" < "$out/studies.json" > "$out/results.json"
python3 benches/suite/verdicts.py "$out/results.json" | tee "$out/verdicts.md"
