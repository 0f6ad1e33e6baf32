#!/usr/bin/env bash
# llava4j bench against llava_ref.py bench (PyTorch eager), same model, shapes and steps, the two engines alternated
# (which goes first swaps every round) for ROUNDS rounds in one run, then the ratios llava4j / PyTorch per stage and
# precision (median over rounds; each round's figure is the median step of STEPS after one warm-up step).
#   [ROUNDS=3] [STEPS=5] [THREADS=2] [STAGES="pretrain finetune"] [PRECISIONS="fp32 bf16"] bench/compare.sh [OUT_DIR]
# bf16: llava4j --bf16 True against torch.autocast('cpu', bfloat16). Needs Debian's python3-torch and
# libopenblas0-pthread (without the latter Debian's torch uses a one-thread reference BLAS). Every line records the
# load average when it ran: on a shared machine only figures taken under the same load compare.
set -euo pipefail
cd "$(dirname "$0")/.."
W="${1:-runs/bench/compare}"
REF="${REF:-}"
[ -f "$REF/llava_ref.py" ] || { echo "$(basename "$0"): set REF to the folder that holds the PyTorch reference llava_ref.py (not part of this repository; see bench/README.md)" >&2; exit 1; }
REF="$REF/llava_ref.py"
ROUNDS="${ROUNDS:-3}" STEPS="${STEPS:-5}" THREADS="${THREADS:-2}"
export OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS="$THREADS"
/usr/bin/python3 -c 'import torch' 2>/dev/null || { echo "compare.sh: /usr/bin/python3 has no torch (apt-get install -y python3-torch libopenblas0-pthread)" >&2; exit 1; }
mkdir -p "$W"
OUT="$W/compare.jsonl"
: >"$OUT"
mvn -q -B -DskipTests package >&2
line() { # engine stage precision round json-file
  /usr/bin/python3 - "$@" "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT" <<'PY'
import json, sys
engine, stage, prec, rnd, f, load = sys.argv[1:7]
text = open(f).read().strip()
try:
    r = json.loads(text)  # llava4j's --output_json (one object, indented)
except ValueError:
    r = json.loads(text.splitlines()[-1])  # llava_ref.py prints its object last
r.update(engine_name=engine, stage=stage, prec=prec, round=int(rnd), loadavg=load)
print(json.dumps(r))
PY
}
run_llava4j() { # stage precision round
  local flag=(); [ "$2" = bf16 ] && flag=(--bf16 True)
  ./llava4j bench --stage "$1" "${flag[@]}" --per_device_train_batch_size 2 --steps "$STEPS" --threads "$THREADS" \
    --output_json "$W/llava4j-$1-$2-$3.json" >"$W/llava4j-$1-$2-$3.log" 2>&1
  line llava4j "$1" "$2" "$3" "$W/llava4j-$1-$2-$3.json"
}
run_pytorch() {
  local flag=(); [ "$2" = bf16 ] && flag=(--bf16)
  /usr/bin/python3 "$REF" bench --stage "$1" "${flag[@]}" --batch 2 --steps "$STEPS" --threads "$THREADS" \
    >"$W/pytorch-$1-$2-$3.json" 2>"$W/pytorch-$1-$2-$3.log"
  line pytorch "$1" "$2" "$3" "$W/pytorch-$1-$2-$3.json"
}
for round in $(seq "$ROUNDS"); do
  for stage in ${STAGES:-pretrain finetune}; do
    for prec in ${PRECISIONS:-fp32 bf16}; do
      echo "round $round $stage $prec (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2
      if [ $((round % 2)) = 1 ]; then run_llava4j "$stage" "$prec" "$round"; run_pytorch "$stage" "$prec" "$round"
      else run_pytorch "$stage" "$prec" "$round"; run_llava4j "$stage" "$prec" "$round"; fi
    done
  done
done
echo "raw lines: $OUT" >&2
/usr/bin/python3 - "$OUT" <<'PY'
import json, sys, statistics as st
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
keys = sorted({(r["stage"], r["prec"]) for r in rows}, key=lambda k: (k[0] != "pretrain", k[1]))
print(f"{'stage':9s} {'prec':5s} {'llava4j s':>10s} {'PyTorch s':>10s} {'time ratio':>10s} {'RSS MB l4j/pt':>15s} {'RSS ratio':>9s} {'l4j GFLOP/s':>11s} {'of peak':>8s}  per-round ratios, load")
for stage, prec in keys:
    sel = [r for r in rows if r["stage"] == stage and r["prec"] == prec]
    rounds = sorted({r["round"] for r in sel})
    pairs = []
    for n in rounds:
        l = [r for r in sel if r["round"] == n and r["engine_name"] == "llava4j"]
        p = [r for r in sel if r["round"] == n and r["engine_name"] == "pytorch"]
        if l and p: pairs.append((l[0], p[0]))
    if not pairs: continue
    lt = st.median(l["step_s_median"] for l, _ in pairs); pt = st.median(p["step_s_median"] for _, p in pairs)
    ratio = st.median(l["step_s_median"] / p["step_s_median"] for l, p in pairs)
    lm = st.median(l["peak_rss_mb"] for l, _ in pairs); pm = st.median(p["peak_rss_mb"] for _, p in pairs)
    gf = st.median(l["achieved_gflops"] for l, _ in pairs); fr = st.median(l["fraction_of_gemm_peak"] for l, _ in pairs)
    per = ", ".join(f"{l['step_s_median'] / p['step_s_median']:.2f} ({l['loadavg'].split()[0]})" for l, p in pairs)
    print(f"{stage:9s} {prec:5s} {lt:10.3f} {pt:10.3f} {ratio:9.2f}x {lm:7.0f}/{pm:<7.0f} {lm / pm:8.2f}x {gf:11.1f} {fr:7.0%}  {per}")
PY
