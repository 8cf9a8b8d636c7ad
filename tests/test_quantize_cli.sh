#!/bin/sh
# test_quantize_cli.sh - `specdec quantize` end to end on the shipped target
# (tests/test_quantize.c checks the quantizers and that the tensors equal
# llama.cpp's quantized files byte for byte):
#  - the target quantized to Q8_0, Q6_K, Q4_K and Q4_0: perplexity on a
#    prefix of heldout-btrfs.txt (first 15000 bytes, 12 chunks of 512; the
#    full file: README) within a bound of F16's on the same prefix, and
#    equal (all printed digits) to that of llama.cpp's file of the type
#    (../shared/models/quant; missing: `need`), whose full-file perplexity
#    test_cli.sh checks against the reference's;
#  - the files load, and a file re-quantized from a quantized one loads;
#  - speculative decoding stays lossless with a quantized target and a
#    quantized draft: greedy --spec draft ids == --spec none ids (3 bench
#    prompts, 32 tokens, accepted > 0), target Q4_K + draft Q8_0 and target
#    Q4_0 + draft Q4_0;
#  - quantized heads (Q4_K_M, Q4_0) with the Q4_K target: greedy eagle,
#    hydra and medusa ids == --spec none ids (1 prompt, 32 tokens);
#  - bad input: unknown type, missing file, vocabulary-only input,
#    unwritable output, missing arguments: error message, exit 1, no file.
# SD_TEST_QUICK=1 (sanitizer runs): 4 chunks, Q8_0 and Q4_0 only, 1 prompt.
#
# Bounds (|ppl / F16 ppl - 1|): the measured increase plus 0.25 percentage
# points, rounded up to 0.05. Measured on an AMD EPYC with AVX-512 VNNI, its
# default table / the avx2 table (SPECDEC_CPU_CAP=avx2):
#   12 chunks: q8_0 +0.066% / +0.059%, q6_k +0.040% / +0.010%,
#              q4_k +0.203% / +0.185%, q4_0 +1.260% / +1.255%
#    4 chunks: q8_0 +0.045% / +0.089%, q4_0 +1.501% / +1.467%
# The tables differ by up to 0.045 points; the margin is 5 times that, and a
# quantizer change that costs 0.3% perplexity or more fails.
set -u
. "$(dirname "$0")/util/check.sh"
MODELS=${SPECDEC_MODEL_DIR:-$SHARED/models}
target="$MODELS/kernel-c-target.gguf"
draft="$MODELS/kernel-c-draft.gguf"
# type:bound%:llama.cpp's file
if [ -n "${SD_TEST_QUICK:-}" ]; then bytes=5200; types="q8_0:0.35:Q8_0 q4_0:1.8:Q4_0"; n_prompts=1
else bytes=15000; types="q8_0:0.35:Q8_0 q6_k:0.3:Q6_K q4_k:0.5:Q4_K_M q4_0:1.55:Q4_0"; n_prompts=3; fi
head -c $bytes "$SHARED/reference/heldout-btrfs.txt" > "$tmp/heldout.txt"

within() { awk -v v="$1" -v r="$2" -v t="$3" 'BEGIN { d = (v - r) / r * 100; if (d < 0) d = -d; exit !(d <= t) }'; }
ppl() { "$BIN" perplexity -m "$1" -f "$tmp/heldout.txt" -t 2 --json 2>/dev/null | sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p'; }

ref=$(ppl "$target")
[ -n "$ref" ] && ok "F16 perplexity on the prefix: $ref" || bad "F16 perplexity failed"
for tt in $types; do
    t=${tt%%:*}; rest=${tt#*:}; tol=${rest%%:*}; lfile="$MODELS/quant/kernel-c-target-${rest#*:}.gguf"
    if "$BIN" quantize "$target" "$tmp/t-$t.gguf" $t 2> "$tmp/q.err"; then
        ok "quantize $t: $(tail -n 1 "$tmp/q.err" | sed 's/^ *//')"
    else bad "quantize $t failed: $(cat "$tmp/q.err")"; continue; fi
    p=$(ppl "$tmp/t-$t.gguf")
    if [ -n "$p" ] && [ -n "$ref" ] && within "$p" "$ref" "$tol"; then
        ok "perplexity $t = $p within $tol% of F16 $ref"
    else bad "perplexity $t = '$p' not within $tol% of F16 $ref"; fi
    if [ ! -f "$lfile" ]; then need "$lfile"; continue; fi
    pl=$(ppl "$lfile")
    if [ -n "$p" ] && [ "$p" = "$pl" ]; then ok "perplexity $t = that of llama.cpp's $(basename "$lfile") ($pl)"
    else bad "perplexity $t = '$p', llama.cpp's $(basename "$lfile") '$pl'"; fi
done

# Re-quantizing a quantized file (dequantize + quantize) gives a loadable model.
if "$BIN" quantize "$tmp/t-q8_0.gguf" "$tmp/re.gguf" q4_0 2> "$tmp/q.err" &&
   out=$("$BIN" generate -m "$tmp/re.gguf" -p "static int" -n 8 --temp 0 -t 2 2>/dev/null) && [ -n "$out" ]; then
    ok "a file re-quantized from Q8_0 to Q4_0 loads and generates"
else bad "re-quantized file: $(cat "$tmp/q.err")"; fi

# Lossless speculation with quantized target and draft.
"$BIN" quantize "$draft" "$tmp/d-q8_0.gguf" q8_0 2>/dev/null || bad "quantize draft q8_0"
"$BIN" quantize "$draft" "$tmp/d-q4_0.gguf" q4_0 2>/dev/null || bad "quantize draft q4_0"
python3 - "$SHARED/bench/code-btrfs.jsonl" "$tmp" "$n_prompts" <<'PY' || bad "prompt extraction"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
for i in range(int(sys.argv[3])):
    open("%s/prompt%d.txt" % (sys.argv[2], i), "w").write(json.loads(lines[i * 7])["prompt"])
PY
for pair in "q4_k:q8_0" "q4_0:q4_0"; do
    tq=${pair%%:*}; dq=${pair#*:}
    [ -f "$tmp/t-$tq.gguf" ] || continue
    i=0
    while [ $i -lt $n_prompts ]; do
        "$BIN" generate -m "$tmp/t-$tq.gguf" -f "$tmp/prompt$i.txt" -n 32 --temp 0 -t 2 --spec none --json > "$tmp/a.json" 2>/dev/null
        "$BIN" generate -m "$tmp/t-$tq.gguf" -md "$tmp/d-$dq.gguf" -f "$tmp/prompt$i.txt" -n 32 --temp 0 -t 2 \
            --spec draft --json > "$tmp/b.json" 2>/dev/null
        python3 - "$tmp/a.json" "$tmp/b.json" <<'PY' && ok "target $tq + draft $dq, prompt $i: --spec draft ids == --spec none ids" || bad "target $tq + draft $dq, prompt $i: speculation differs"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert len(a["ids"]) == 32 and a["ids"] == b["ids"], (a["ids"], b["ids"])
assert b["spec"]["accepted"] > 0, b["spec"]
print("   accepted %d of %d drafted" % (b["spec"]["accepted"], b["spec"]["drafted"]))
PY
        i=$((i+1))
    done
done

# Quantized heads (a heads file through `specdec quantize`; their matrices
# run as stored, packed, with no Q8_0 copy): with the Q4_K target, greedy
# eagle / hydra / medusa ids == --spec none ids, drafts accepted.
heads="$MODELS/kernel-c-target-heads.gguf"
for hq in q4_k_m q4_0; do
    [ -f "$tmp/t-q4_k.gguf" ] || break
    if ! "$BIN" quantize "$heads" "$tmp/h-$hq.gguf" $hq 2> "$tmp/q.err"; then
        bad "quantize heads $hq: $(cat "$tmp/q.err")"; continue
    fi
    "$BIN" generate -m "$tmp/t-q4_k.gguf" -f "$tmp/prompt0.txt" -n 32 --temp 0 -t 2 --spec none --json > "$tmp/a.json" 2>/dev/null
    for m in eagle hydra medusa; do
        "$BIN" generate -m "$tmp/t-q4_k.gguf" -mh "$tmp/h-$hq.gguf" -f "$tmp/prompt0.txt" -n 32 --temp 0 -t 2 \
            --spec $m --json > "$tmp/b.json" 2> "$tmp/g.err"
        python3 - "$tmp/a.json" "$tmp/b.json" <<'PY' && ok "target q4_k + heads $hq, $m: ids == --spec none ids" || bad "target q4_k + heads $hq, $m: $(tail -n 2 "$tmp/g.err")"
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
assert len(a["ids"]) == 32 and a["ids"] == b["ids"], (a["ids"], b["ids"])
assert b["spec"]["accepted"] > 0, b["spec"]
print("   accepted %d of %d drafted" % (b["spec"]["accepted"], b["spec"]["drafted"]))
PY
    done
done

expect_usage_error "unknown type" "$BIN" quantize "$target" "$tmp/x.gguf" q3_k
expect_usage_error "missing input" "$BIN" quantize /nonexistent.gguf "$tmp/x.gguf" q8_0
expect_usage_error "vocabulary-only input" "$BIN" quantize "$SHARED/vocab/ggml-vocab-llama-spm.gguf" "$tmp/x.gguf" q8_0
expect_usage_error "unwritable output" "$BIN" quantize "$target" /nonexistent-dir/x.gguf q8_0
expect_usage_error "missing arguments" "$BIN" quantize "$target" "$tmp/x.gguf"
head -c 100000 "$target" > "$tmp/trunc.gguf"
expect_usage_error "truncated input" "$BIN" quantize "$tmp/trunc.gguf" "$tmp/x.gguf" q8_0
[ ! -e "$tmp/x.gguf" ] && ! ls "$tmp" | grep -q tmp- && ok "no output or temporary file after errors" || bad "files left behind: $(ls "$tmp")"

report test_quantize_cli
