#!/usr/bin/env bash
# The whole `llava4j train` command on the bench model (CLIP-S/16 + 12x768 LLaMA, seeded fp32 weights written by
# io.llava4j.bench.BenchModel; the reference tokenizer), batch 2, over IMAGES distinct 480x360 JPEGs with 24-word
# captions (229-ish positions a sample, the plain template): peak RSS of the process (VmHWM, what PyTorch's ru_maxrss
# reports, from /usr/bin/time) and its peak anonymous RSS (LLAVA4J_MEMORY_REPORT), the median step time and the
# process CPU time, for each stage x precision, and for each VARIANT of the environment:
#   default  — the launcher as it is;
#   nothp    — THP_MEM_ALLOC_ENABLE=0 (libtorch's allocator without transparent huge pages);
#   any other name: its value is taken from the variable VARIANT_<name> (e.g. VARIANT_serial="LLAVA4J_JAVA_OPTS=-XX:+UseSerialGC",
#   VARIANT_glibc="LLAVA4J_MALLOC=glibc");
#   and for any variant, VARIANT_FLAGS_<name> adds train flags (e.g. VARIANT_FLAGS_lowest6="--gradient_checkpointing True
#   --recompute_num_layers 6").
# One JSON line a run, with the load average; the variants alternate within each round.
#   [ROUNDS=1] [STEPS=4] [IMAGES=8] [STAGES="pretrain finetune"] [PRECISIONS="fp32 bf16"] [VARIANTS="default nothp"] \
#   [SKIP_BUILD=1] bench/train-memory.sh [WORK_DIR]
# Needs /usr/bin/python3 with PIL (python3-pil) for the images.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-runs/bench/train-memory}"
ROUNDS="${ROUNDS:-1}" STEPS="${STEPS:-4}" IMAGES="${IMAGES:-8}"
mkdir -p "$W"
[ "${SKIP_BUILD:-0}" = 1 ] || { mvn -q -B -DskipTests package >&2 && mvn -q -B test-compile >&2; }
CP="target/test-classes:target/classes:target/lib/*"
if [ ! -f "$W/model/config.json" ]; then
  java -cp "$CP" io.llava4j.bench.BenchModel "$W/model" >&2
  java -cp "$CP" io.llava4j.bench.SparseCheckpoints bench src/test/resources/reference/tiny-llava "$W/sparse" >/dev/null
  cp "$W/sparse/tokenizer.json" "$W/sparse/tokenizer_config.json" "$W/sparse/preprocessor_config.json" "$W/model/"
  rm -rf "$W/sparse"
fi
/usr/bin/python3 - "$W/data" "$IMAGES" <<'PY'
import json, os, sys, random
from PIL import Image
out, n = sys.argv[1], int(sys.argv[2])
os.makedirs(f"{out}/images", exist_ok=True)
rnd = random.Random(0)
recs = []
for i in range(n):
    img = Image.frombytes("RGB", (480, 360), bytes(rnd.getrandbits(8) for _ in range(480 * 360 * 3)))
    img.save(f"{out}/images/img{i}.jpg", quality=90)
    words = " ".join(rnd.choice(["red", "circle", "square", "blue", "a", "the", "small", "large", "on", "picture"]) for _ in range(24))
    recs.append({"id": str(i), "image": f"img{i}.jpg", "conversations": [{"from": "human", "value": "<image>\n"}, {"from": "gpt", "value": words}]})
json.dump(recs, open(f"{out}/data.json", "w"))
PY
OUT="$W/train-memory.jsonl"
run() { # stage precision variant round
  local stage="$1" prec="$2" variant="$3" round="$4" env=() flags=()
  case "$variant" in
    default) ;;
    nothp) env=(THP_MEM_ALLOC_ENABLE=0) ;;
    *) v="VARIANT_$variant"; read -r -a env <<<"${!v:-}" ;;
  esac
  [ "$prec" = bf16 ] && flags=(--bf16 True)
  local vf="VARIANT_FLAGS_$variant" extra=()
  read -r -a extra <<<"${!vf:-}"
  flags+=("${extra[@]}")
  local name="$stage-$prec-$variant-$round" load
  load="$(cut -d' ' -f1-3 /proc/loadavg)"
  rm -rf "$W/out-$name"
  env "${env[@]}" LLAVA4J_MEMORY_REPORT="$W/$name.mem.json" /usr/bin/time -f '%M %U %S %e' -o "$W/$name.time" \
    ./llava4j train --model_name_or_path "$W/model" --version plain --data_path "$W/data/data.json" \
    --image_folder "$W/data/images" --tune_mm_mlp_adapter "$([ "$stage" = pretrain ] && echo True || echo False)" \
    --per_device_train_batch_size 2 --max_steps "$STEPS" --learning_rate 1e-3 --lr_scheduler_type constant \
    --max_grad_norm 0 --logging_steps 1 --save_strategy no "${flags[@]}" --output_dir "$W/out-$name" >"$W/$name.log" 2>&1
  /usr/bin/python3 - "$W" "$name" "$stage" "$prec" "$variant" "$round" "$load" "$(cut -d' ' -f1-3 /proc/loadavg)" "${env[*]:-}" "${extra[*]:-}" >>"$OUT" <<'PY'
import json, sys, statistics as st
w, name, stage, prec, variant, rnd, load0, load1, env, flags = sys.argv[1:11]
rss_kb, user, sys_s, wall = open(f"{w}/{name}.time").read().split()[-4:]
mem = json.load(open(f"{w}/{name}.mem.json"))
steps = [json.loads(l) for l in open(f"{w}/out-{name}/log.jsonl")]
secs = [s["step_s"] for s in steps if "step_s" in s]
print(json.dumps({"stage": stage, "prec": prec, "variant": variant, "env": env, "flags": flags, "round": int(rnd),
                  "peak_rss_mb": round(int(rss_kb) / 1024), "memory_report": mem,
                  "step_s_median_after_first": st.median(secs[1:]) if len(secs) > 1 else None, "step_s": secs,
                  "process_cpu_s": round(float(user) + float(sys_s), 1), "wall_s": float(wall),
                  "losses": [s.get("loss") for s in steps], "load_before": load0, "load_after": load1}))
PY
  tail -1 "$OUT" >&2
}
for round in $(seq "$ROUNDS"); do
  for stage in ${STAGES:-pretrain finetune}; do
    for prec in ${PRECISIONS:-fp32 bf16}; do
      for variant in ${VARIANTS:-default nothp}; do run "$stage" "$prec" "$variant" "$round"; done
    done
  done
done
echo "raw lines: $OUT" >&2
