#!/usr/bin/env bash
# Slurm job array: each array task is one caviar worker joining the same stored study.
# Create the study once (anywhere that reaches the database), then submit:
#   caviar --storage "$CAVIAR_STORAGE" run mnist_full.toml --trials 0
#   sbatch --array=0-15 examples/cluster/slurm-workers.sh mnist-full
#SBATCH --job-name=caviar-worker
#SBATCH --cpus-per-task=2
#SBATCH --time=04:00:00
set -euo pipefail
study=${1:?usage: sbatch --array=0-N slurm-workers.sh STUDY}
# Every worker reads the study definition from the database: no shared file system needed.
export CAVIAR_STORAGE=${CAVIAR_STORAGE:-postgres://caviar@db.example:5432/studies}
exec caviar worker "$study" --workers "${SLURM_CPUS_PER_TASK:-1}"
