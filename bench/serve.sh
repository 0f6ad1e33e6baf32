#!/usr/bin/env bash
# `llava4j serve` under concurrent clients: one at a time (--max_batch 1) against continuous batching (--max_batch 8),
# on llava_ref.py's bench model (CLIP-S/16 at 224 px + a 12-layer 768-wide LLaMA, vocab 32000, random weights) with
# the reference's toy tokenizer padded to the model's 32000 ids (llava_ref.py data). For each count of clients in
# CLIENTS, the two modes run alternately against a fresh server bound to loopback; bench/serve-load.mjs sends
# REQUESTS streamed requests per client (the same image, resized to 224 px = 196 rows, and question; MAX_TOKENS
# tokens each, ignore_eos) and prints aggregate
# generated tokens/s and p50/p95 time to first token. One JSON line per run, with the mode, date and load.
# BF16=1 serves with --bf16 True (weights stored in bf16; GEMMs in bf16 where the CPU has AVX-512 BF16).
#   REF=REF_DIR [THREADS=2] [CLIENTS="1 4 8"] [REQUESTS=2] [MAX_TOKENS=64] [BATCH=8] [ROUNDS=1] [BF16=1] [SKIP_BUILD=1] \
#   bench/serve.sh [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-runs/bench/serve-model}
REF=${REF:-}
THREADS=${THREADS:-2} CLIENTS=${CLIENTS:-"1 4 8"} REQUESTS=${REQUESTS:-2} MAX_TOKENS=${MAX_TOKENS:-64} BATCH=${BATCH:-8}
PORT=${PORT:-18731}
PROMPT=${PROMPT:-"Describe the picture in a few sentences: which shapes are there, what colours do they have, and where is each of them?"}
IMAGE=${IMAGE:-src/test/resources/reference/tiny-data/images/img0.png}
if [ ! -f "$MODEL/tokenizer.json" ]; then
  [ -f "$REF/llava_ref.py" ] || { echo "$(basename "$0"): set REF to the folder that holds the PyTorch reference llava_ref.py (not part of this repository; see bench/README.md)" >&2; exit 1; }
  /usr/bin/python3 "$REF/llava_ref.py" make --config bench --out "$MODEL" >&2
  /usr/bin/python3 "$REF/llava_ref.py" data --model "$MODEL" --out "$MODEL-data" >&2 # tokenizer.json (32000 ids), preprocessor_config.json
fi
[ "${SKIP_BUILD:-0}" = 1 ] || mvn -q -B -DskipTests package >&2
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS
server=""
log=$(mktemp)
stop_server() { [ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; server=""; }; }
trap 'stop_server; rm -f "$log"' EXIT
for round in $(seq "${ROUNDS:-1}"); do for clients in $CLIENTS; do for batch in 1 "$BATCH"; do
  java -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -Dorg.bytedeco.javacpp.maxBytes=0 -jar target/llava4j.jar serve \
    --model_name_or_path "$MODEL" --served_model_name bench --port "$PORT" --max_batch "$batch" --queue 64 \
    --timeout 3600 ${BF16:+--bf16 True} >"$log" 2>&1 &
  server=$!
  # the address the server announces on its first line ("serving ... on URL (...)"), then its health
  base=""
  until [ -n "$base" ] && curl -sf "$base/health" >/dev/null; do
    kill -0 "$server" 2>/dev/null || { echo "the server (max_batch $batch) exited: $(tail -3 "$log")" >&2; exit 1; }
    base=$(sed -n 's#^serving .* on \([^ ]*\)/ (.*#\1#p' "$log" | head -1)
    sleep 0.5
  done
  node bench/serve-load.mjs "$base" 1 1 4 "$PROMPT" "$IMAGE" >/dev/null # warm-up
  load_before=$(cut -d' ' -f1 /proc/loadavg)
  line=$(node bench/serve-load.mjs "$base" "$clients" "$REQUESTS" "$MAX_TOKENS" "$PROMPT" "$IMAGE")
  echo "${line%\}}, \"max_batch\": $batch, \"threads\": $THREADS, \"bf16\": ${BF16:-0}, \"round\": $round, \"date\": \"$(date -u +%FT%TZ)\", \"load1_before\": $load_before, \"load1_after\": $(cut -d' ' -f1 /proc/loadavg)}"
  stop_server
done; done; done
