#!/bin/sh
# Makes the benchmark models in bench-models/ (git-ignored): the shipped
# target widened to a real model's size (../shared/tools/widen.py, 226.5 M
# parameters, the same function as the shipped target), its Q4_K_M, Q4_0
# and Q8_0 files (specdec quantize), and the trained heads widened alike, at
# F16, Q8_0 and Q4_K_M (the heads the wide bench runs with: each EAGLE
# level streams its layer, so its bytes are the drafting cost). Files
# already there are kept. Needs Debian's python3 with numpy
# (python3-numpy): installed here when missing and we are root.
#   sh scripts/bench_models.sh [OUT_DIR]      (default bench-models)
set -eu
BIN=${BIN:-bin/specdec}
SHARED=${SHARED:-../shared}
OUT=${1:-bench-models}
PY=/usr/bin/python3
WIDEN="$SHARED/tools/widen.py"

[ -x "$BIN" ] || { echo "error: $BIN not built (make)" >&2; exit 1; }
[ -f "$WIDEN" ] || { echo "error: $WIDEN not found (SHARED=$SHARED)" >&2; exit 1; }
if ! [ -x "$PY" ] || ! "$PY" -c 'import numpy' 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "== installing python3-numpy (Debian)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-numpy >/dev/null
    else
        echo "error: $PY with numpy is needed: apt-get install python3-numpy" >&2
        exit 1
    fi
fi
mkdir -p "$OUT"

# make FILE CMD...: runs CMD (which writes FILE.part) unless FILE exists,
# then renames FILE.part to FILE, so an interrupted run leaves no FILE
make_file() {
    f=$1; shift
    if [ -s "$f" ]; then echo "== $f: kept"; return 0; fi
    echo "== $f"
    rm -f "$f.part"
    "$@"
    mv "$f.part" "$f"
}

T="$OUT/kernel-c-target-wide"
H="$OUT/kernel-c-target-wide-heads"
make_file "$T-F16.gguf" "$PY" "$WIDEN" "$SHARED/models/kernel-c-target.gguf" "$T-F16.gguf.part"
make_file "$H-F16.gguf" "$PY" "$WIDEN" "$SHARED/models/kernel-c-target-heads.gguf" "$H-F16.gguf.part"
for q in Q4_K_M Q4_0 Q8_0; do
    make_file "$T-$q.gguf" "$BIN" quantize "$T-F16.gguf" "$T-$q.gguf.part" "$(echo $q | tr A-Z a-z)" -t 2
done
for q in Q8_0 Q4_K_M; do
    make_file "$H-$q.gguf" "$BIN" quantize "$H-F16.gguf" "$H-$q.gguf.part" "$(echo $q | tr A-Z a-z)" -t 2
done
ls -l "$OUT"
