#!/usr/bin/env bash
# Run a tool on NPROC processes per node with torchrun; tools/dist_train.sh and dist_test.sh call it.
#   tools/misc/torchrun.sh NPROC TOOL [tool args...]     (TOOL relative to tools/, e.g. train.py)
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -euo pipefail
NPROC=$1
TOOL=$2
shift 2
TOOLS=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$TOOLS/..${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$TOOLS/$TOOL" "$@"
