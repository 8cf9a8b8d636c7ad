#!/bin/sh
# The wide-target benchmarks (`make bench-wide`, after `make bench-models`):
#  - bench-forward on the four wide files (plain decoding, the cost of an
#    n-row forward, the roofline against this machine's measured read
#    bandwidth and int8 / FMA peaks), text and JSON;
#  - one bench run on the wide Q4_K_M over the code and docs prompts with
#    every method, greedy, 2 threads (outputs checked equal to plain
#    decoding), the heads at Q4_K_M: table, JSON and SVG chart.
# Everything goes to OUT (default bench-models/results), each file stamped
# with the date; the machine (CPU model, kernel table) is in the outputs.
set -eu
BIN=${BIN:-bin/specdec}
SHARED=${SHARED:-../shared}
DIR=${DIR:-bench-models}
OUT=${1:-$DIR/results}
T="$DIR/kernel-c-target-wide"
for f in "$T-F16.gguf" "$T-Q4_K_M.gguf" "$T-Q4_0.gguf" "$T-Q8_0.gguf" "$T-heads-Q4_K_M.gguf"; do
    [ -f "$f" ] || { echo "error: $f missing: make bench-models" >&2; exit 1; }
done
mkdir -p "$OUT"
stamp=$(date -u +%Y%m%d-%H%M)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
echo "== $cpu, $(nproc) CPUs, $(date -u)" | tee "$OUT/machine-$stamp.txt"
for q in Q4_K_M Q4_0 Q8_0 F16; do
    echo "== bench-forward $q"
    "$BIN" bench-forward -m "$T-$q.gguf" --single -t 2 | tee "$OUT/forward-$q-$stamp.txt"
    "$BIN" bench-forward -m "$T-$q.gguf" --single -t 2 --json > "$OUT/forward-$q-$stamp.json"
done
echo "== bench (every method, wide Q4_K_M)"
"$BIN" bench -m "$T-Q4_K_M.gguf" -md "$SHARED/models/kernel-c-draft.gguf" -mh "$T-heads-Q4_K_M.gguf" \
    --prompts "$SHARED/bench/code-btrfs.jsonl" --prompts "$SHARED/bench/docs-filesystems.jsonl" \
    --methods none,draft,lookup,ngram-cache,tree-draft,aded,rasd,self,eagle,hydra,medusa -t 2 \
    --out "$OUT/bench-wide-Q4_K_M-$stamp.json" --svg "$OUT/bench-wide-Q4_K_M-$stamp.svg" \
    | tee "$OUT/bench-wide-Q4_K_M-$stamp.txt"
