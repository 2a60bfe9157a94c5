#!/usr/bin/env bash
# Train on GPUS processes per node with torchrun (NCCL on CUDA, gloo on CPU).
#   tools/dist_train.sh CONFIG GPUS [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CONFIG GPUS [train.py args...]" >&2; exit 2; }
CONFIG=$1
GPUS=$2
shift 2
exec "$(dirname "$0")/misc/torchrun.sh" "$GPUS" train.py "$CONFIG" --launcher pytorch "$@"
