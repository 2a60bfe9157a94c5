#!/usr/bin/env bash
# Run a tool under Slurm, one task per GPU; tools/slurm_train.sh and slurm_test.sh call it.
#   tools/misc/srun.sh PARTITION JOB_NAME TOOL [tool args...]     (TOOL relative to tools/)
# GPUS (total, default 8), GPUS_PER_NODE (default 8), CPUS_PER_TASK (default 5), SRUN_ARGS.
set -euo pipefail
PARTITION=$1
JOB_NAME=$2
TOOL=$3
shift 3
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
TOOLS=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}"
srun -p "$PARTITION" --job-name="$JOB_NAME" --gres=gpu:"$GPUS_PER_NODE" --ntasks="$GPUS" \
    --ntasks-per-node="$GPUS_PER_NODE" --cpus-per-task="${CPUS_PER_TASK:-5}" --kill-on-bad-exit=1 \
    ${SRUN_ARGS:-} "${PYTHON:-python}" -u "$TOOLS/$TOOL" "$@"
