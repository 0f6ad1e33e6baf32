#!/usr/bin/env bash
# ZeRO-2 against replicas (DDP) on one machine: per-rank peak resident memory of a stage-2 run (projector + LLM train,
# 323 M trainable parameters) at W = 1, 2, 4, and the step time of ZeRO-2 vs DDP at W = 2 (communication cost).
# The model is the benchmark shape with a 20-layer, 1024-wide LLaMA (SparseCheckpoints zero-bench: sparse F16 files,
# zeros), trained in fp32 on 4 records of one 224 px image, per-device batch 4 / W (global batch 4), STEPS steps.
# Each rank's peak anonymous RSS is LLAVA4J_MEMORY_REPORT's (one JSON file per rank); the step time is log.jsonl's
# step_s of the last step. RUNS chooses runs, each KIND-W:
#   one-1        one process without --deepspeed (a replica; nothing to shard)
#   ddp-W        W ranks, DDP (replicas, bucketed all-reduce overlapped with the backward)
#   zero2-W      W ranks (W = 1 too, through the launcher), ZeRO-2 with overlap_comm true (reduce-scatter in the backward)
#   zero2after-W W ranks, ZeRO-2 with overlap_comm false (reduce-scatter after the backward)
#   zero3-W      W ranks (W = 1 too, through the launcher), ZeRO-3 (parameters partitioned, decoder layers recomputed)
# (at 323 M a DDP rank peaked at 6.9 GB: ddp-2 needs ~14 GB, zero2-4 ~4 x 4 GB). MODEL=bench runs the 134 M
# benchmark shape instead (12 layers, width 768). Each run appends one JSON line to $BENCH_DIR/zero.jsonl (needs jq).
# MASTER_PORT sets the rendezvous port (default: a random one in 20000-31999, so runs beside others do not collide).
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
for overlap in true false; do
cat > "$W/zero2-overlap-$overlap.json" <<JSON
{"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
 "gradient_accumulation_steps": "auto", "zero_optimization": {"stage": 2, "overlap_comm": $overlap, "reduce_bucket_size": "auto"}}
JSON
done
cat > "$W/zero3.json" <<'JSON'
{"bf16": {"enabled": "auto"}, "train_micro_batch_size_per_gpu": "auto", "train_batch_size": "auto",
 "gradient_accumulation_steps": "auto", "zero_optimization": {"stage": 3, "overlap_comm": true, "reduce_bucket_size": "auto",
 "stage3_gather_16bit_weights_on_model_save": true}}
JSON
echo "date $(date -u +%FT%TZ); $(nproc) cores; avx512: $(grep -o 'avx512[a-z_0-9]*' /proc/cpuinfo | sort -u | tr '\n' ' ')"
run() { # name: KIND-W
  local name="$1" kind="${1%-*}" w="${1#*-}"
  local extra=()
  case "$kind" in
    zero2) extra=(--deepspeed "$W/zero2-overlap-true.json") ;;
    zero2after) extra=(--deepspeed "$W/zero2-overlap-false.json") ;;
    zero3) extra=(--deepspeed "$W/zero3.json") ;;
    ddp|one) ;;
    *) echo "unknown run $name" >&2; exit 2 ;;
  esac
  [ "$kind" != one ] && extra+=(--nproc_per_node "$w" --master_port "${MASTER_PORT:-$((20000 + RANDOM % 12000))}")
  name="$MODEL-$name"
  rm -rf "$W/out-$name" "$W/$name".rank-*.json
  local load_before; load_before="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "$name: load before: $load_before; free: $(free -m | awk '/^Mem:/ {print $7}') MB available"
  LLAVA4J_MEMORY_REPORT="$W/$name.rank-{rank}.json" ./llava4j train --model_name_or_path "$M" --version v1 \
    --data_path "$W/data/data4.json" --image_folder "$W/data/images" --per_device_train_batch_size $((4 / w)) \
    --max_steps "$STEPS" --learning_rate 1e-5 --save_steps 0 --logging_steps 1 --check_resources False \
    --output_dir "$W/out-$name" "${extra[@]}" >"$W/$name.log" 2>&1
  local ranks="{}"
  for f in "$W/$name".rank-*.json; do
    echo "  $(basename "$f" .json): $(cat "$f")"
    local r="${f##*.rank-}"; r="${r%.json}"
    ranks="$(jq -c --arg r "$r" --slurpfile v "$f" '. + {($r): $v[0]}' <<<"$ranks")"
  done
  local last; last="$(tail -1 "$W/out-$name/log.jsonl")"
  echo "  last step: $last"
  local load_after; load_after="$(cut -d' ' -f1-3 /proc/loadavg)"
  echo "  load after: $load_after"
  jq -cn --arg date "$(date -u +%FT%TZ)" --arg model "$MODEL" --arg run "$name" --argjson steps "$STEPS" \
    --arg lb "$load_before" --arg la "$load_after" --argjson ranks "$ranks" --argjson last "$last" \
    '{date: $date, model: $model, run: $run, steps: $steps, load_before: $lb, ranks: $ranks, last_step: $last, load_after: $la}' \
    >>"$W/zero.jsonl"
}
for r in ${RUNS:-one-1 zero2-1 ddp-2 zero2-2 zero2-4}; do run "$r"; done
