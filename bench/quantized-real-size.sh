#!/usr/bin/env bash
# Quantized frozen weights at real size on one 24 GB machine (train --bits, score --bits):
#   1. LLaVA-1.5-13B shaped as llava-hf/llava-1.5-13b-hf (its published config.json; CLIP-L/336, 40 x 5120 LLaMA;
#      one F16 file of zeros in a sparse file, so it costs no disk): the load with --bits 4 (each LLM projection
#      quantized to NF4 straight from the mapped file), then the LLM's part of a stage-1 step over the first LAYERS
#      decoder layers (forward, per-layer recompute and backward, bf16 GEMMs, weights dequantized a layer at a time)
#      on POSITIONS positions (io.llava4j.bench.QuantizedLayerSteps) [part "layers"]; the whole stage-1 step
#      (train --bits 4 --gradient_checkpointing True --bf16 True) [part "step13b", not run by default: about 14 minutes
#      with the load on a loaded 2-core machine];
#   2. LLaVA-1.5-7B (llava-hf/llava-1.5-7b-hf's config and weight map, three F16 shards): score --bits 8 --bf16 True
#      on one sample with a 336x336 image [part "score7b"].
# PARTS="layers score7b" (default) chooses the parts.
# Each with its peak anonymous resident memory (LLAVA4J_MEMORY_REPORT: clean pages of the mapped files not counted).
# The tokenizer is the tiny reference one (ids < 1024). REF: the folder holding real-configs/ (see bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/quantized-real-size}"
REF="${REF:-}"
LAYERS="${LAYERS:-2}"
POSITIONS="${POSITIONS:-600}"
PARTS=" ${PARTS:-layers score7b} "
R13="$REF/real-configs/llava-hf__llava-1.5-13b-hf"
R7="$REF/real-configs/llava-hf__llava-1.5-7b-hf"
[ -f "$R13/config.json" ] && [ -f "$R7/model.safetensors.index.json" ] || { echo "quantized-real-size.sh: set REF to the folder whose real-configs/ holds llava-hf__llava-1.5-13b-hf/config.json and llava-hf__llava-1.5-7b-hf (config, index, preprocessor_config.json)" >&2; exit 1; }
mkdir -p "$W"
[ -n "${SKIP_BUILD:-}" ] || { mvn -q -B -DskipTests package && mvn -q -B test-compile; }
CP="target/test-classes:target/classes:target/lib/*"
echo "date $(date -u +%FT%TZ); cpu flags: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints sample "$W/data" 336 >/dev/null

# 1. 13B, 4 bits
M13="$W/llava-1.5-13b-hf"
[ -f "$M13/model.safetensors" ] || java -cp "$CP" io.llava4j.bench.SparseCheckpoints hf "$R13" "$M13" F16
cp "$R7/preprocessor_config.json" "$M13/"
for f in tokenizer.json tokenizer_config.json; do cp src/test/resources/reference/tiny-llava/$f "$M13/"; done
rm -f "$M13/special_tokens_map.json" "$M13/added_tokens.json"
if [[ "$PARTS" == *" layers "* ]]; then
echo "load $(uptime)"
( time OMP_WAIT_POLICY=PASSIVE java -Xmx2g -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 -Dorg.bytedeco.javacpp.maxBytes=0 \
    -cp "$CP" io.llava4j.bench.QuantizedLayerSteps "$M13" 4 nf4 false "$LAYERS" "$POSITIONS" ) 2>&1 | grep -v "^\s*at " | tail -8
echo "load $(uptime)"
fi
if [[ "$PARTS" == *" step13b "* ]]; then
  echo "load $(uptime)"
  rm -rf "$W/stage1-13b"
  ( time LLAVA4J_MEMORY_REPORT="$W/stage1-13b.json" ./llava4j train --bits 4 --bf16 True --gradient_checkpointing True \
      --tune_mm_mlp_adapter True --model_name_or_path "$M13" --data_path "$W/data/data.json" \
      --image_folder "$W/data/images" --version plain --per_device_train_batch_size 1 --max_steps 1 \
      --learning_rate 1e-3 --output_dir "$W/stage1-13b" ) 2>&1 | tail -6
  echo "13B stage-1 step --bits 4: $(cat "$W/stage1-13b.json")"
  echo "load $(uptime)"
fi

# 2. 7B, score --bits 8
[[ "$PARTS" == *" score7b "* ]] || exit 0
M7="$W/llava-1.5-7b-hf"
[ -f "$M7/model.safetensors.index.json" ] || java -cp "$CP" io.llava4j.bench.SparseCheckpoints hf "$R7" "$M7" F16
for f in tokenizer.json tokenizer_config.json; do cp src/test/resources/reference/tiny-llava/$f "$M7/"; done
rm -f "$M7/special_tokens_map.json" "$M7/added_tokens.json"
echo "load $(uptime)"
( time LLAVA4J_MEMORY_REPORT="$W/score-7b.json" ./llava4j score --bits 8 --bf16 True --model_name_or_path "$M7" \
    --data_path "$W/data/data.json" --image_folder "$W/data/images" --version v1 --output_json "$W/score-7b-out.json" ) 2>&1 | tail -5
echo "7B score --bits 8: $(cat "$W/score-7b.json")"
echo "load $(uptime)"
