#!/bin/sh
# A toy "training run" for the tour: a learning curve whose final accuracy depends on the
# learning rate (best near 3e-3, on a log scale), beta1, the width and the activation, with
# a little seeded noise. Prints one `epoch=N val_acc=X loss=Y` line per epoch.
#   toy_train.sh LR BETA1 UNITS ACTIVATION EPOCHS
lr=$1 beta1=$2 units=$3 act=$4 epochs=${5:-5}
awk -v lr="$lr" -v b="$beta1" -v u="$units" -v act="$act" -v n="$epochs" -v seed="${CAVIAR_TRIAL_NUMBER:-0}" 'BEGIN {
  srand(seed + 1)
  d = log(lr) / log(10) + 2.5          # decades away from lr = 10^-2.5
  m = log(1 - b) / log(10) + 2         # best beta1 near 0.99
  peak = 0.97 - 0.08 * d * d - 0.03 * m * m - 0.0004 * (u - 90) ^ 2 / 10 - (act == "tanh" ? 0.02 : 0)
  if (peak < 0.1) peak = 0.1
  for (e = 1; e <= n; e++) {
    acc = peak * (1 - exp(-1.5 * e)) + 0.005 * (rand() - 0.5)
    printf "epoch=%d val_acc=%.4f loss=%.4f\n", e, acc, 1 - acc
  }
}'
