#!/usr/bin/env bash
# Decode benchmark: llava4j's KV-cache greedy decoding vs the same loop in PyTorch (generate_ref.py), fp32 and bf16,
# on llava_ref.py's bench model (CLIP-S/16 at 224 px + a 12-layer 768-wide LLaMA, vocab 32000). Prints JSON lines.
#   [THREADS=2] [NEW_TOKENS=32] bench/generate.sh [MODEL_DIR] [REF_DIR]   (defaults: runs/bench/model, $REF)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-runs/bench/model}
REF=${2:-${REF:-}}
[ -f "$REF/llava_ref.py" ] || { echo "$(basename "$0"): set REF to the folder that holds the PyTorch reference llava_ref.py (not part of this repository; see bench/README.md)" >&2; exit 1; }
THREADS=${THREADS:-2}
NEW_TOKENS=${NEW_TOKENS:-32}
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$THREADS
[ -f "$MODEL/model.safetensors" ] || /usr/bin/python3 "$REF/llava_ref.py" make --config bench --out "$MODEL"
mvn -B -q -DskipTests package >&2  # the jar of this tree (stdout stays JSON lines)
# the machine may be shared: the two engines alternate, ROUNDS times, so that both see the same load
for round in $(seq "${ROUNDS:-1}"); do for bf16 in "" "--bf16"; do
  java --add-modules jdk.incubator.vector -cp "target/llava4j.jar:target/lib/*" io.llava4j.generate.DecodeBench "$MODEL" --threads "$THREADS" --new_tokens "$NEW_TOKENS" $bf16
  /usr/bin/python3 bench/generate_ref.py --ref "$REF" --model "$MODEL" --threads "$THREADS" --new_tokens "$NEW_TOKENS" $bf16
done; done
