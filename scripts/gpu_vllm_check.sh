#!/usr/bin/env bash
# The production LLM path on a GPU host: start vLLM with tool calling on a local Hugging Face-format
# model folder (no model hub is reached), wait until it serves, then run the same end-to-end check
# the embedded model passes here (structured output, auto and forced tool choice on the shop's five
# tools, the model-driven tool loop) and the demo dialogue suite through vLLM.
#
#   scripts/gpu_vllm_check.sh /path/to/Qwen2.5-7B-Instruct [port]
#
# Needs: `pip install vllm` (GPU) in the active environment and this repo's .venv. Results:
# benchmarks/results/llm-tools-<date>.json and $OUT/ (or /tmp) logs. Exit status 1 when a check fails.
set -euo pipefail
MODEL_DIR=${1:?usage: scripts/gpu_vllm_check.sh MODEL_DIR [PORT]}
PORT=${2:-8000}
OUT=${OUT:-/tmp}
cd "$(dirname "$0")/.."
VLLM=${VLLM:-vllm}
"$VLLM" serve "$MODEL_DIR" --port "$PORT" --host 127.0.0.1 --served-model-name shop-llm \
  --enable-auto-tool-choice --tool-call-parser hermes --max-model-len 8192 \
  >"$OUT/vllm.log" 2>&1 &
VPID=$!
trap 'kill $VPID 2>/dev/null || true' EXIT
for _ in $(seq 1 180); do
  curl -sf "http://127.0.0.1:$PORT/v1/models" >/dev/null && break
  kill -0 $VPID 2>/dev/null || { echo "vLLM exited; see $OUT/vllm.log"; tail -30 "$OUT/vllm.log"; exit 1; }
  sleep 2
done
BASE="http://127.0.0.1:$PORT/v1"
.venv/bin/python benchmarks/check_llm_tools.py --base-url "$BASE" --model shop-llm \
  --out "$OUT/llm-tools-vllm.json" | tee "$OUT/llm-tools-vllm.txt"
.venv/bin/shopassist eval dialogues --suite demo --limit 45 --llm-base-url "$BASE" --llm-model shop-llm --json \
  >"$OUT/dialogues-demo-vllm.json"
echo "done: $OUT/llm-tools-vllm.json, $OUT/dialogues-demo-vllm.json"
