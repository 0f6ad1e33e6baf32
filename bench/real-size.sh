#!/usr/bin/env bash
# LLaVA-1.5-7B at real size on one machine: a checkpoint shaped exactly as llava-hf/llava-1.5-7b-hf (its published
# config.json and weight map: CLIP-L/336, 32 x 4096 LLaMA, vocab 32064, three F16 shards; the data are zeros in sparse
# files, so it costs no disk), then
#   1. llava4j score --bf16 True on one sample with a 336x336 image,
#   2. one stage-1 step with --bf16 True --gradient_checkpointing True,
# each with its peak anonymous resident memory (clean pages of the memory-mapped weight files are not counted).
# The tokenizer is the tiny reference one (ids < 1024); every other file is the published one.
# Takes 15-30 minutes on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/real-size}"
REF="${REF:-}"
[ -f "$REF/real-configs/llava-hf__llava-1.5-7b-hf/model.safetensors.index.json" ] || { echo "real-size.sh: set REF to the PyTorch reference folder whose real-configs/llava-hf__llava-1.5-7b-hf holds the published config and model.safetensors.index.json (not part of this repository; see bench/README.md)" >&2; exit 1; }
REAL="$REF/real-configs/llava-hf__llava-1.5-7b-hf"
mkdir -p "$W"
mvn -q -B -DskipTests package && mvn -q -B test-compile
CP="target/test-classes:target/classes:target/lib/*"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints hf "$REAL" "$W/llava-1.5-7b-hf" F16
for f in tokenizer.json tokenizer_config.json; do cp src/test/resources/reference/tiny-llava/$f "$W/llava-1.5-7b-hf/"; done
rm -f "$W/llava-1.5-7b-hf/special_tokens_map.json" "$W/llava-1.5-7b-hf/added_tokens.json"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints sample "$W/data" 336 >/dev/null
( time LLAVA4J_MEMORY_REPORT="$W/score.json" ./llava4j score --bf16 True --model_name_or_path "$W/llava-1.5-7b-hf" \
    --data_path "$W/data/data.json" --image_folder "$W/data/images" --version v1 --output_json "$W/score-out.json" ) 2>&1 | tail -4
echo "score --bf16: $(cat "$W/score.json")"
rm -rf "$W/stage1"
( time LLAVA4J_MEMORY_REPORT="$W/stage1.json" ./llava4j train --bf16 True --gradient_checkpointing True \
    --tune_mm_mlp_adapter True --model_name_or_path "$W/llava-1.5-7b-hf" --data_path "$W/data/data.json" \
    --image_folder "$W/data/images" --version plain --per_device_train_batch_size 1 --max_steps 1 \
    --learning_rate 1e-3 --output_dir "$W/stage1" ) 2>&1 | tail -4
echo "stage 1 step --bf16 --gradient_checkpointing: $(cat "$W/stage1.json")"
