#!/usr/bin/env bash
# The demo benchmark of BENCHMARKS.md: wall time and peak memory of the 100-trial `caviar demo`
# (3 runs), beside the single-threaded numpy float64 reference of the same study.
#   bash benches/demo.sh            # needs python3 with numpy for the reference
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
nproc_line="$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "machine: $nproc_line"
for run in 1 2 3; do
  /usr/bin/time -f "caviar demo run $run: %e s wall, %M KB peak" \
    ./target/release/caviar --storage memory: demo --json >/dev/null 2>/tmp/caviar-demo-bench.err || {
      cat /tmp/caviar-demo-bench.err; exit 1; }
  grep -E "trials \(|caviar demo run" /tmp/caviar-demo-bench.err
done
if python3 -c "import numpy" 2>/dev/null; then
  OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 python3 benches/numpy_reference.py 100
else
  echo "numpy reference skipped: python3 has no numpy (pip install numpy)"
fi
