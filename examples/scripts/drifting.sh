#!/bin/sh
# A program whose best setting moves: loss = (x - target)^2 plus a small noise fixed by the
# seed, target 0.3, or 0.7 when DRIFT=1; DRIFT=crash makes it fail. For `caviar retest`.
#   command = ["SCRIPTS/drifting.sh", "{x}", "{seed}"]
x=$1
seed=${2:-0}
if [ "$DRIFT" = crash ]; then
    echo "drifting.sh: cannot open the data (DRIFT=crash)" >&2
    exit 3
fi
awk -v x="$x" -v seed="$seed" -v drift="${DRIFT:-0}" 'BEGIN {
    target = (drift == 1) ? 0.7 : 0.3
    noise = ((seed * 7919) % 21 - 10) * 0.0001
    printf "loss=%.6f\n", (x - target) ^ 2 + noise
}'
