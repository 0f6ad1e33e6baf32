#!/usr/bin/env bash
# ZeRO-2 against replicas (DDP) on one machine: per-rank peak resident memory of a stage-2 run (projector + LLM train,
# 323 M trainable parameters) at W = 1, 2, 4, and the step time of ZeRO-2 vs DDP at W = 2 (communication cost).
# The model is the benchmark shape with a 20-layer, 1024-wide LLaMA (SparseCheckpoints zero-bench: sparse F16 files,
# zeros), trained in fp32 on 4 records of one 224 px image, per-device batch 4 / W (global batch 4), STEPS steps.
# Each rank's peak anonymous RSS is LLAVA4J_MEMORY_REPORT's (one JSON file per rank); the step time is log.jsonl's
# step_s of the last step. RUNS="zero2-1 ddp-2 zero2-2 zero2-4 ddp-4" chooses runs (a replica of the 323 M model
# peaks at ~7.3 GB: ddp-2 needs ~16 GB, zero2-4 ~4 x 5 GB). MODEL=bench runs the 134 M benchmark shape instead
# (12 layers, width 768). zero2-1 is one process: the replica itself (nothing to shard). zero3-W runs ZeRO stage 3
# (parameters partitioned, decoder layers recomputed); zero3-1 is one rank started by the launcher, so stage 3 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/zero}"
MODEL="${MODEL:-zero-bench}"
STEPS="${STEPS:-2}"
mkdir -p "$W"
[ -n "${NO_BUILD:-}" ] || { mvn -q -B -DskipTests package && mvn -q -B test-compile; }
CP="target/test-classes:target/classes:target/lib/*"
M="$W/model-$MODEL"
[ -f "$M/config.json" ] || java -cp "$CP" io.llava4j.bench.SparseCheckpoints "$MODEL" src/test/resources/reference/tiny-llava "$M" >/dev/null
java -cp "$CP" io.llava4j.bench.SparseCheckpoints sample "$W/data" 224 >/dev/null
answer="A red circle in the middle of a grey square picture, drawn flat, with no other shapes around it."
{ printf '['; for i in 0 1 2 3; do [ $i = 0 ] || printf ','
  printf '{"id": "s%d", "image": "img.png", "conversations": [{"from": "human", "value": "<image>\\nWhat is in the picture?"}, {"from": "gpt", "value": "%s"}]}' $i "$answer"
  done; printf ']\n'; } > "$W/data/data4.json"
cat > "$W/zero2.json" <<'JSON'
{"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
 "gradient_accumulation_steps": "auto", "zero_optimization": {"stage": 2, "overlap_comm": true, "reduce_bucket_size": "auto"}}
JSON
cat > "$W/zero3.json" <<'JSON'
{"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
 "gradient_accumulation_steps": "auto", "zero_optimization": {"stage": 3, "overlap_comm": true, "reduce_bucket_size": "auto",
 "stage3_gather_16bit_weights_on_model_save": true}}
JSON
echo "date $(date -u +%FT%TZ); $(nproc) cores; avx512: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
run() { # name: zero2-W, zero3-W or ddp-W
  local name="$1" kind="${1%-*}" w="${1#*-}"
  local extra=() ; [ "$kind" = zero2 ] && extra=(--deepspeed "$W/zero2.json")
  [ "$kind" = zero3 ] && extra=(--deepspeed "$W/zero3.json")
  if [ "$w" -gt 1 ] || [ "$kind" = zero3 ]; then extra+=(--nproc_per_node "$w" --master_port $((29600 + w))); fi
  name="$MODEL-$name"
  rm -rf "$W/out-$name" "$W/$name".rank-*.json
  echo "$name: load before: $(cut -d' ' -f1-3 /proc/loadavg)"
  LLAVA4J_MEMORY_REPORT="$W/$name.rank-{rank}.json" ./llava4j train --model_name_or_path "$M" --version v1 \
    --data_path "$W/data/data4.json" --image_folder "$W/data/images" --per_device_train_batch_size $((4 / w)) \
    --max_steps "$STEPS" --learning_rate 1e-5 --save_steps 0 --logging_steps 1 --check_resources False \
    --output_dir "$W/out-$name" "${extra[@]}" >"$W/$name.log" 2>&1
  for f in "$W/$name".rank-*.json; do echo "  $(basename "$f" .json): $(cat "$f")"; done
  echo "  last step: $(tail -1 "$W/out-$name/log.jsonl")"
  echo "  load after: $(cut -d' ' -f1-3 /proc/loadavg)"
}
for r in ${RUNS:-zero2-1 ddp-2 zero2-2 zero2-4}; do run "$r"; done
