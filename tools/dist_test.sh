#!/usr/bin/env bash
# Evaluate a checkpoint on GPUS processes per node with torchrun.
#   tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 CONFIG CHECKPOINT GPUS [test.py args...]" >&2; exit 2; }
CHECKPOINT=$2
GPUS=$3
exec "$(dirname "$0")/misc/torchrun.sh" "$GPUS" test.py "$1" "$CHECKPOINT" --launcher pytorch "${@:4}"
