#!/usr/bin/env bash
# Stage-1 peak memory on the benchmark shape of the PyTorch reference llava_ref.py ($REF, see bench/README.md) (CLIP-S/16 at 224 px + a 12-layer
# 768-wide LLaMA, vocab 32000; batch 2, plain template): llava4j fp32, fp32 --gradient_checkpointing, --bf16
# (VARIANTS="fp32 fp32-ckpt bf16 bf16-ckpt" to choose), against PyTorch fp32 (llava_ref.py bench; PYTORCH=0 skips it). llava4j's figure is its peak anonymous RSS (the weights it holds; the
# clean page cache of the memory-mapped checkpoint is not counted); PyTorch builds its weights in memory.
# Needs Debian's python3-torch and libopenblas0-pthread for the PyTorch side (skipped when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/bf16}"
STEPS="${STEPS:-3}"
mkdir -p "$W"
mvn -q -B -DskipTests package && mvn -q -B test-compile
CP="target/test-classes:target/classes:target/lib/*"
java -cp "$CP" io.llava4j.bench.SparseCheckpoints bench src/test/resources/reference/tiny-llava "$W/model" >/dev/null
java -cp "$CP" io.llava4j.bench.SparseCheckpoints sample "$W/data" 224 >/dev/null
run() { # name, extra flags...
  local name="$1"; shift
  rm -rf "$W/out-$name"
  LLAVA4J_MEMORY_REPORT="$W/$name.json" ./llava4j train --model_name_or_path "$W/model" --version plain \
    --data_path "$W/data/data.json" --image_folder "$W/data/images" --tune_mm_mlp_adapter True \
    --per_device_train_batch_size 2 --max_steps "$STEPS" --learning_rate 1e-3 --save_steps 0 \
    --output_dir "$W/out-$name" "$@" >"$W/$name.log" 2>&1
  echo "$name: $(cat "$W/$name.json")"
}
for v in ${VARIANTS:-fp32 fp32-ckpt bf16}; do
  case "$v" in
    fp32) run fp32 ;;
    fp32-ckpt) run fp32-ckpt --gradient_checkpointing True ;;
    bf16) run bf16 --bf16 True ;;
    bf16-ckpt) run bf16-ckpt --bf16 True --gradient_checkpointing True ;;
  esac
done
if [ "${PYTORCH:-1}" = 1 ] && [ -f "${REF:-}/llava_ref.py" ] && /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=2 /usr/bin/python3 "$REF/llava_ref.py" bench --stage pretrain \
    --batch 2 --steps "$STEPS" > "$W/pytorch.json"
  echo "pytorch fp32: $(cat "$W/pytorch.json")"
  /usr/bin/python3 - "$W" <<'PY'
import json, sys, pathlib
w = pathlib.Path(sys.argv[1])
pt = json.loads((w / "pytorch.json").read_text().strip().splitlines()[-1])["peak_rss_mb"]
for name in ("fp32", "fp32-ckpt", "bf16", "bf16-ckpt"):
    if not (w / f"{name}.json").exists(): continue
    r = json.loads((w / f"{name}.json").read_text())
    print(f"{name:10s} llava4j peak anon RSS {r['peak_rss_anon_mb']:8.0f} MB = {r['peak_rss_anon_mb'] / pt:.2f} x PyTorch fp32 ({pt} MB)")
PY
else
  echo "PyTorch side skipped: it needs REF (the folder holding the PyTorch reference llava_ref.py, see bench/README.md), /usr/bin/python3 with torch, and PYTORCH=1" >&2
fi
