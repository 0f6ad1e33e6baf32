#!/usr/bin/env bash
# Progressive unfreezing: forward + backward time per schedule step, the LLM unfrozen top-down ADD layers at a time,
# with the projector frozen (the backward stops at the lowest trainable layer) and trained (it must reach the
# embeddings through every layer). io.llava4j.train.UnfreezeBench on llava_ref.py's bench model. Prints JSON lines.
#   [THREADS=1] [ADD=3] [RUNS=3] bench/progressive.sh [MODEL_DIR] [REF_DIR]   (defaults: runs/bench/model, $REF)
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-runs/bench/model}
REF=${2:-${REF:-}}
[ -f "$REF/llava_ref.py" ] || { echo "$(basename "$0"): set REF to the folder that holds the PyTorch reference llava_ref.py (not part of this repository; see bench/README.md)" >&2; exit 1; }
THREADS=${THREADS:-1}
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=$THREADS
[ -f "$MODEL/model.safetensors" ] || /usr/bin/python3 "$REF/llava_ref.py" make --config bench --out "$MODEL"
mvn -B -q -DskipTests package >&2  # the jar of this tree (stdout stays JSON lines)
java -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -Dorg.bytedeco.javacpp.maxBytes=0 -cp "target/llava4j.jar:target/lib/*" \
  io.llava4j.train.UnfreezeBench "$MODEL" --threads "$THREADS" --add "${ADD:-3}" --runs "${RUNS:-3}"
