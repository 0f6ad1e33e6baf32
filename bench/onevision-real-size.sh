#!/usr/bin/env bash
# LLaVA-OneVision-0.5B at real size: a checkpoint shaped as llava-hf/llava-onevision-qwen2-0.5b-ov-hf (its config.json,
# reconstructed, in src/test/resources/real-configs; SigLIP-so400m cut to 26 layers, mlp2x_gelu + image_newline,
# Qwen2-0.5B with tied embeddings, vocab 152000, anyres_max_9 over 36 pinpoints) made from the config alone - the
# llava-hf names and shapes of llava4j's model plus the tied head's copy, BF16, two shards + model.safetensors.index.json,
# the data zeros in sparse files - then
#   1. llava4j inspect --bf16 True (parameter counts; load only),
#   2. llava4j score --bf16 True on one qwen_1_5 sample with a 1024x899 image (3x3 grid + base = 10 tiles, 6,551 image tokens),
#   3. one stage-1 step (--bf16 True --gradient_checkpointing True, projector only) on a 640x480 image (2x2 + base, 2,929),
# each with its wall time and peak resident memory (LLAVA4J_MEMORY_REPORT; anonymous = heap + native tensors, without the
# clean page cache of the memory-mapped shards). The tokenizer is the tiny OneVision toy one (ids < 1040).
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/onevision-real-size}"
REAL=src/test/resources/real-configs/llava-hf__llava-onevision-qwen2-0.5b-ov-hf
TINY=src/test/resources/reference-onevision/tiny-onevision
M="$W/llava-onevision-qwen2-0.5b-ov-hf"
mkdir -p "$W"
if [ -z "${SKIP_BUILD:-}" ]; then mvn -q -B -DskipTests package && mvn -q -B test-compile; fi
CP="target/test-classes:target/classes:target/lib/*"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints onevision "$REAL" "$TINY" "$M"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints image-sample "$W/data" score-1024x899 1024 899 >/dev/null
java -cp "$CP" io.llava4j.bench.SparseCheckpoints image-sample "$W/data" stage1-640x480 640 480 >/dev/null
for n in score-1024x899 stage1-640x480; do
  java -cp "$CP" io.llava4j.bench.SparseCheckpoints positions "$M" "$W/data/$n.json" "$W/data/images" qwen_1_5
done
echo "== $(date -u '+%F %T UTC') $(uptime)"
( time LLAVA4J_MEMORY_REPORT="$W/inspect.json" ./llava4j inspect --bf16 True --model_name_or_path "$M" ) 2>&1 | tail -20
echo "inspect --bf16: $(cat "$W/inspect.json")"
echo "== $(date -u '+%F %T UTC') $(uptime)"
( time LLAVA4J_MEMORY_REPORT="$W/score.json" ./llava4j score --bf16 True --model_name_or_path "$M" \
    --data_path "$W/data/score-1024x899.json" --image_folder "$W/data/images" --version qwen_1_5 \
    --model_max_length 8192 --output_json "$W/score-out.json" ) 2>&1 | tail -6
echo "score --bf16 (1024x899): $(cat "$W/score.json")"
echo "score output: $(cat "$W/score-out.json")"
echo "== $(date -u '+%F %T UTC') $(uptime)"
rm -rf "$W/stage1"
( time LLAVA4J_MEMORY_REPORT="$W/stage1.json" ./llava4j train --bf16 True --gradient_checkpointing True \
    --mm_tunable_parts mm_mlp_adapter --model_name_or_path "$M" --data_path "$W/data/stage1-640x480.json" \
    --image_folder "$W/data/images" --version qwen_1_5 --model_max_length 4096 --per_device_train_batch_size 1 \
    --max_steps 1 --learning_rate 1e-3 --output_dir "$W/stage1" ) 2>&1 | tail -8
echo "stage 1 step --bf16 --gradient_checkpointing (640x480): $(cat "$W/stage1.json")"
echo "== $(date -u '+%F %T UTC') $(uptime)"
