#!/usr/bin/env bash
# `llava4j validate` on a generated file shaped like llava_v1_5_mix665k (665,298 records, 94 % with an image, 1-8
# rounds), its images drawn from IMAGES distinct 640x480 JPEGs, tokenized with the tiny reference tokenizer
# (tokenizer.json, vocabulary 1024); the words are whole words of that vocabulary, so a word is about one token, as
# with LLaMA's tokenizer on English. Prints the wall and CPU time and peak memory; the data check itself reports its
# own seconds (JSON reading excluded).
#   RECORDS=665298 IMAGES=2000 THREADS=2 bench/validate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
W="${BENCH_DIR:-runs/bench/validate}"
RECORDS="${RECORDS:-665298}"
IMAGES="${IMAGES:-2000}"
THREADS="${THREADS:-$(nproc)}"
mkdir -p "$W"
mvn -q -B -DskipTests package && mvn -q -B test-compile
rm -rf "$W/app" && mkdir -p "$W/app" && cp -r target/llava4j.jar target/lib "$W/app/"   # the build may change while this runs
if [ ! -f "$W/data-$RECORDS.json" ] || [ -n "${REGENERATE:-}" ]; then
  cp -r target/test-classes "$W/app/"
  java -cp "$W/app/test-classes:$W/app/llava4j.jar:$W/app/lib/*" io.llava4j.bench.LargeData "$W" "$RECORDS" "$IMAGES" \
    src/test/resources/reference/tiny-llava/tokenizer.json
  mv "$W/data.json" "$W/data-$RECORDS.json"
fi
ls -la "$W/data-$RECORDS.json"; du -sh "$W/images"
echo "load: $(cat /proc/loadavg)"
( time LLAVA4J_MEMORY_REPORT="$W/validate.json" OMP_WAIT_POLICY=PASSIVE java -Dorg.bytedeco.javacpp.maxPhysicalBytes=0 \
    -Dorg.bytedeco.javacpp.maxBytes=0 -jar "$W/app/llava4j.jar" validate --model_name_or_path src/test/resources/reference/tiny-llava \
    --data_path "$W/data-$RECORDS.json" --image_folder "$W/images" --version v1 --model_max_length 2048 \
    --threads "$THREADS" --list 3 ) 2>&1 | tail -12
echo "validate: $(cat "$W/validate.json")"
echo "load: $(cat /proc/loadavg)"
