#!/usr/bin/env bash
# GRPO with generation on a separate vLLM server (`trl vllm-serve`), the layout of configs/gpu-vllm-server.yaml:
# GPU 0 runs the server, GPUs 1-3 train with accelerate. Both commands come from
# `toolrl train grpo --dry-run`, so they always match params.yaml + the profile.
#
#   infra/vllm/server-mode.sh                 # profile gpu-vllm-server
#   PROFILE=my-profile infra/vllm/server-mode.sh
#
# Needs a GPU host with `pip install -e '.[gpu]'` and the SFT model in models/sft (or -S grpo.init=base).
set -euo pipefail
cd "$(dirname "$0")/../.."
PROFILE=${PROFILE:-gpu-vllm-server}
TOOLRL=${TOOLRL:-.venv/bin/toolrl}
OVERRIDES=$("$TOOLRL" params profile "$PROFILE" --args)

# The dry run validates the setup and prints "# 1. server", the server command, "# 2. trainer", the trainer command.
PLAN=$(eval "$TOOLRL train grpo --dry-run $OVERRIDES")
SERVER=$(printf '%s\n' "$PLAN" | sed -n '2p')
TRAIN=$(printf '%s\n' "$PLAN" | sed -n '4p')
[[ $SERVER == *"trl vllm-serve"* ]] || { echo "the profile does not use vLLM server mode:"; echo "$PLAN"; exit 2; }

echo "[server-mode] starting: $SERVER"
eval "$SERVER" > vllm-server.log 2>&1 &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
# The trainer waits for the server itself (grpo.vllm.server_timeout); wait for its health route first
# so a failing server shows its log instead of a timeout.
PORT=$(printf '%s' "$SERVER" | sed -n 's/.*--port \([0-9]*\).*/\1/p')
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:${PORT}/health" >/dev/null && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "vLLM server died:"; tail -50 vllm-server.log; exit 1; }
  sleep 5
done
echo "[server-mode] training: $TRAIN"
eval "$TRAIN"
