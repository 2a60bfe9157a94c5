#!/usr/bin/env bash
# Evaluate under Slurm: one task per GPU.
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS.
set -euo pipefail
[ $# -ge 4 ] || { echo "usage: $0 PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]" >&2; exit 2; }
exec "$(dirname "$0")/misc/srun.sh" "$1" "$2" test.py "$3" "$4" --launcher slurm "${@:5}"
