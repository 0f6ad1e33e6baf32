#!/usr/bin/env bash
# Decoding as generate/chat/serve run it, from model folders on disk: the bench LLM (12x768) and TinyLlama-1.1B's
# shape (22x2048), fp32 and bf16, the plain layout against the LLM packed as generate/chat/serve hold it where the
# weights compute in their storage type (packed: row-major for Java's vector products; onednn: oneDNN's blocked
# layout, what the same runs hold on a JVM without the vector API).
# Each line: decode tokens/s, the weight GB/s that implies against a STREAM-style copy measured in the same process,
# time to first token and the prompt positions a second through the LLM (prefill_tokens_per_s: the LLM's pass over
# the prompt timed alone, without the image encoding), the kernels that ran, and the peak RSS beside the weight file's size. JSON lines.
# LAYOUTS picks among plain, packed, onednn, int8, int4 and nf4 (the bf16 folders loaded as generate --load_8bit / --load_4bit /
# --load_4bit True --load_4bit_format nf4 load them: libtorch's weight-only int8 and int4 kernels, or NF4 with
# double-quantized scales dequantized a layer at a time; the rest held as generate holds it: the head packed, the
# decoding step in Java where the JVM has the vector API).
# SHAPES also takes qwen2-0.5b (LLaVA-OneVision-0.5B's LLM: Qwen2 with q/k/v biases and a tied head).
#   [THREADS=2] [NEW_TOKENS=32] [ROUNDS=2] [SHAPES="bench tinyllama-1.1b"] [LAYOUTS="plain packed"] bench/decode.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/bench/decode}
THREADS=${THREADS:-2}
NEW_TOKENS=${NEW_TOKENS:-32}
# the environment the launcher gives generate/chat/serve (./llava4j): passive OpenMP waits, huge pages for libtorch's
# large tensors, OpenBLAS's kernels for this CPU
export OMP_WAIT_POLICY=PASSIVE THP_MEM_ALLOC_ENABLE=1
unset OPENBLAS_CORETYPE
mvn -B -q -DskipTests package >&2
cp="target/llava4j.jar:target/lib/*"
for shape in ${SHAPES:-bench tinyllama-1.1b}; do for dtype in fp32 bf16; do
  dir="$OUT/$shape-$dtype"
  [ -f "$dir/config.json" ] || java -cp "$cp" io.llava4j.bench.BenchModel "$dir" --llm "$shape" $([ "$dtype" = bf16 ] && echo --bf16) >&2
done; done
# the two layouts alternate, ROUNDS times, so that both see the same load
for round in $(seq "${ROUNDS:-2}"); do
  for shape in ${SHAPES:-bench tinyllama-1.1b}; do for dtype in fp32 bf16; do for layout in ${LAYOUTS:-plain packed}; do
    case "$layout" in int8|int4|nf4) [ "$dtype" = bf16 ] || continue ;; esac
    dir="$OUT/$shape-$dtype"
    file_mb=$(( $(cat "$dir"/*.safetensors | wc -c) / 1048576 ))
    flag="" jvm=""
    case "$layout" in packed) flag=--packed_weights ;; onednn) flag=--packed_weights jvm=-Dllava4j.vectorGemv=false ;; int8) flag="--packed_weights --load_8bit" ;; int4) flag="--packed_weights --load_4bit" ;; nf4) flag="--packed_weights --load_4bit_nf4" ;; esac
    line=$(java --add-modules jdk.incubator.vector $jvm -cp "$cp" io.llava4j.generate.DecodeBench "$dir" --threads "$THREADS" --new_tokens "$NEW_TOKENS" \
      $([ "$dtype" = bf16 ] && echo --bf16) $flag)
    echo "${line%\}}, \"shape\": \"$shape\", \"file_mb\": $file_mb, \"round\": $round, \"load\": \"$(cut -d' ' -f1-3 /proc/loadavg)\"}"
  done; done; done
done
