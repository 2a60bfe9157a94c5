#!/usr/bin/env bash
# Train under Slurm: one task per GPU, MMEngine reads the Slurm environment.
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 PARTITION JOB_NAME CONFIG WORK_DIR [train.py args...]" >&2; exit 2; }
exec "$(dirname "$0")/misc/srun.sh" "$1" "$2" train.py "$3" --work-dir="$4" --launcher slurm "${@:5}"
