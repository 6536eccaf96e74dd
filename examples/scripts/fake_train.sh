#!/bin/sh
# A stand-in training program for tests and the tour: behaves as told by its first argument.
#   fake_train.sh MODE LR [EPOCHS]
# It reports `epoch=N val_acc=X` lines; the accuracy peaks at lr = 0.01 (log scale).
mode=$1
lr=$2
epochs=${3:-3}
case "$mode" in
  ok)
    echo "starting: lr=$lr env_lr=$CAVIAR_PARAM_LR file=$CAVIAR_TRIAL_FILE"
    test -f "$CAVIAR_TRIAL_FILE" || { echo "no trial file" >&2; exit 9; }
    i=1
    while [ "$i" -le "$epochs" ]; do
      awk -v lr="$lr" -v e="$i" -v n="$epochs" 'BEGIN {
        d = log(lr) / log(10) + 2; acc = (0.95 - 0.1 * d * d) * e / n;
        printf "epoch=%d val_acc=%.6f loss=%.4f\n", e, acc, 1 - acc }'
      i=$((i + 1))
    done
    ;;
  quiet)
    # Silent for EPOCHS tenths of a second, then one value: a trial that writes nothing for a while.
    sleep "$(awk -v n="$epochs" 'BEGIN { printf "%.1f", n / 10 }')"
    awk -v lr="$lr" 'BEGIN { d = log(lr) / log(10) + 2; printf "val_acc=%.6f\n", 0.95 - 0.1 * d * d }'
    ;;
  slow)
    i=1
    while [ "$i" -le "$epochs" ]; do
      sleep 0.2
      echo "epoch=$i val_acc=0.$i"
      i=$((i + 1))
    done
    ;;
  params)
    # The three ways parameters arrive must agree.
    [ "$lr" = "$CAVIAR_PARAM_LR" ] || { echo "argument $lr != env $CAVIAR_PARAM_LR" >&2; exit 5; }
    grep -q "\"lr\":$lr" "$CAVIAR_TRIAL_FILE" || { echo "trial file lacks lr" >&2; exit 6; }
    grep -q "\"trial\":$CAVIAR_TRIAL_NUMBER" "$CAVIAR_TRIAL_FILE" || { echo "trial file lacks number" >&2; exit 7; }
    echo "val_acc=$CAVIAR_PARAM_LR"
    ;;
  final)
    echo "epoch=1 val_acc=0.2"
    echo "epoch=2 val_acc=0.3"
    echo "final val_acc=0.25"
    ;;
  crash)
    echo "epoch=1 val_acc=0.1"
    echo "Traceback: something broke" >&2
    echo "ValueError: bad shape" >&2
    exit 3
    ;;
  segv)
    kill -SEGV $$
    ;;
  hang)
    # A child that outlives a careless kill: the whole group must go.
    sleep 1000 &
    echo "$!" > "${CHILD_PID_FILE:-/dev/null}"
    echo "epoch=1 val_acc=0.5"
    wait
    ;;
  stubborn)
    # Ignores TERM, as does the child it starts: only KILL after the grace period stops them.
    trap '' TERM
    sh -c 'trap "" TERM; while :; do sleep 0.05; done' &
    echo "$!" > "${CHILD_PID_FILE:-/dev/null}"
    i=1
    while :; do
      echo "epoch=$i val_acc=0.$i"
      i=$((i + 1))
      sleep 0.05
    done
    ;;
  nan)
    echo "epoch=1 val_acc=0.4"
    echo "epoch=2 val_acc=nan"
    ;;
  silent)
    echo "I print no reports"
    ;;
  *)
    echo "unknown mode $mode" >&2
    exit 2
    ;;
esac
