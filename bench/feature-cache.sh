#!/usr/bin/env bash
# --cache_vision_features and --dataloader_num_workers measured with `llava4j train` itself: stage 1 (STAGE=finetune:
# stage 2, the LLM trains; the tower stays frozen, so the cache applies) on llava_ref.py's
# bench model (random weights from `llava_ref.py make --config bench`) over IMAGES distinct 480x360 JPEGs (decoded,
# resized and cropped to 224 as CLIP's processor does), batch 2, EPOCHS epochs, three runs:
#   plain   — no cache;
#   cache   — --cache_vision_features: epoch 1 fills the cache, later epochs read it;
#   again   — a later run on the same cache (a learning-rate sweep's second run): every image read from the cache.
# Prints each run's median step time per epoch and checks the three runs' losses are equal.
#   [STAGE=pretrain|finetune] [IMAGES=8] [EPOCHS=2] [THREADS=2] [WORKERS=0] [SKIP_BUILD=1: use the built jar] \
#   bench/feature-cache.sh [WORK_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-runs/bench/cache}"
IMAGES="${IMAGES:-8}" EPOCHS="${EPOCHS:-2}" WORKERS="${WORKERS:-0}" STAGE="${STAGE:-pretrain}"
case "$STAGE" in pretrain) ADAPTER_ONLY=True;; finetune) ADAPTER_ONLY=False;; *) echo "STAGE=$STAGE: use pretrain or finetune" >&2; exit 2;; esac
export OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS="${THREADS:-2}"
REF="${REF:-}"
[ -f "$REF/llava_ref.py" ] || { echo "$(basename "$0"): set REF to the folder that holds the PyTorch reference llava_ref.py (not part of this repository; see bench/README.md)" >&2; exit 1; }
mkdir -p "$W"
[ "${SKIP_BUILD:-0}" = 1 ] || { mvn -q -B -DskipTests package >&2 && mvn -q -B test-compile >&2; }
CP="target/test-classes:target/classes:target/lib/*"
if [ ! -f "$W/model/model.safetensors" ]; then
  /usr/bin/python3 "$REF/llava_ref.py" make --config bench --out "$W/model" >&2
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
rm -rf "$W/cache"
run() { # name, extra flags
  local name="$1"; shift
  rm -rf "$W/out-$name"
  echo "$name: load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  ./llava4j train --model_name_or_path "$W/model" --version plain --data_path "$W/data/data.json" --image_folder "$W/data/images" \
    --tune_mm_mlp_adapter "$ADAPTER_ONLY" --per_device_train_batch_size 2 --num_train_epochs "$EPOCHS" --learning_rate 1e-3 \
    --lr_scheduler_type constant --max_grad_norm 0 --logging_steps 1 --save_strategy no --dataloader_num_workers "$WORKERS" \
    --output_dir "$W/out-$name" "$@" >"$W/$name.log" 2>&1
}
run plain
run cache --cache_vision_features "$W/cache"
run again --cache_vision_features "$W/cache"
/usr/bin/python3 - "$W" "$IMAGES" <<'PY'
import json, sys, statistics as st
w, n = sys.argv[1], int(sys.argv[2])
steps_per_epoch = (n + 1) // 2
logs = {k: [json.loads(l) for l in open(f"{w}/out-{k}/log.jsonl")] for k in ("plain", "cache", "again")}
for k, rows in logs.items():
    per = {}
    for r in rows: per.setdefault((r["step"] - 1) // steps_per_epoch + 1, []).append(r["step_s"])
    print(f"{k:6s} " + "  ".join(f"epoch {e}: {st.median(v):.2f} s/step" for e, v in sorted(per.items())))
same = all(a["loss"] == b["loss"] == c["loss"] for a, b, c in zip(*logs.values()))
print("losses equal in all three runs:", same, [round(r["loss"], 6) for r in logs["plain"]])
PY
