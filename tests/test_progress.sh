#!/bin/sh
# test_progress.sh - the progress line of the long-running commands
# (tools/progress.c):
#  - stderr not a terminal (a file): bench, perplexity, quantize, vocabtrim
#    and ngram-build write no progress: no '\r', no escape sequence, no
#    "ETA" on stderr (their output is byte for byte what it was without the
#    meter; the other tests compare it);
#  - on a pseudo-terminal (`script`, util-linux; missing: `need`), perplexity
#    draws "perplexity: N/41 chunks (P%), ... ETA ..." and erases it
#    ("\r\033[K") before printing its result, which equals the result
#    without a terminal.
# The whole heldout file (41 chunks, ~3 s with 2 threads) keeps perplexity
# well past the meter's first draw (0.2 s) on a much faster machine.
# SD_TEST_QUICK=1 (sanitizer runs): a 15000-byte prefix (12 chunks).
set -u
. "$(dirname "$0")/util/check.sh"
MODELS=${SPECDEC_MODEL_DIR:-$SHARED/models}
draft="$MODELS/kernel-c-draft.gguf"
text="$SHARED/reference/heldout-btrfs.txt"
if [ -n "${SD_TEST_QUICK:-}" ]; then head -c 15000 "$text" > "$tmp/heldout.txt"; text="$tmp/heldout.txt"; fi
head -c 15000 "$SHARED/reference/heldout-btrfs.txt" > "$tmp/small.txt"
cr=$(printf '\r'); esc=$(printf '\033')

# no_meter NAME FILE: FILE (a command's stderr) holds no trace of the meter.
no_meter() {
    if grep -q "$cr\|$esc\|ETA" "$2"; then bad "$1: progress output on a non-terminal stderr: $(head -c 200 "$2")"
    else ok "$1: no progress output on a non-terminal stderr"; fi
}

# Not a terminal: stderr to a file.
if "$BIN" perplexity -f "$text" -t 2 --json > "$tmp/ppl.json" 2> "$tmp/ppl.err"; then
    no_meter "perplexity --json" "$tmp/ppl.err"
    [ -s "$tmp/ppl.err" ] && bad "perplexity --json: stderr not empty: $(head -c 200 "$tmp/ppl.err")" \
                          || ok "perplexity --json: stderr empty"
else bad "perplexity --json failed: $(tail -n 2 "$tmp/ppl.err")"; fi
ppl=$(sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p' "$tmp/ppl.json")
"$BIN" perplexity -f "$tmp/small.txt" -t 2 > /dev/null 2> "$tmp/ppl2.err" || bad "perplexity failed"
no_meter "perplexity" "$tmp/ppl2.err"
n=$(grep -c '^\[[0-9]*/12\] ppl so far [0-9.]*$' "$tmp/ppl2.err")
[ "$n" -eq 12 ] && [ "$(wc -l < "$tmp/ppl2.err")" -eq 12 ] && ok "perplexity: stderr is its 12 chunk lines" \
    || bad "perplexity: stderr: $(head -c 300 "$tmp/ppl2.err")"
"$BIN" quantize "$draft" "$tmp/d.gguf" q8_0 2> "$tmp/q.err" || bad "quantize failed: $(cat "$tmp/q.err")"
no_meter "quantize" "$tmp/q.err"
"$BIN" vocabtrim -m "$draft" -f "$tmp/small.txt" -n 256 --gen 0 -c 128 -k 64 -o "$tmp/vt.txt" 2> "$tmp/vt.err" ||
    bad "vocabtrim failed: $(cat "$tmp/vt.err")"
no_meter "vocabtrim" "$tmp/vt.err"
"$BIN" ngram-build -m "$draft" -f "$tmp/small.txt" -o "$tmp/ng.bin" 2> "$tmp/ng.err" ||
    bad "ngram-build failed: $(cat "$tmp/ng.err")"
no_meter "ngram-build" "$tmp/ng.err"
"$BIN" bench --prompts "$SHARED/bench/code-btrfs.jsonl" --limit 2 -n 8 --methods none,lookup:2 -t 2 \
    > /dev/null 2> "$tmp/bench.err" || bad "bench failed: $(tail -n 2 "$tmp/bench.err")"
no_meter "bench" "$tmp/bench.err"

# A pseudo-terminal: the meter is drawn, then erased before the result.
if ! command -v script > /dev/null 2>&1; then
    need "script (util-linux / bsdutils)"
else
    script -qec "\"$BIN\" perplexity -f \"$text\" -t 2 --json" /dev/null < /dev/null > "$tmp/tty.out" 2>&1
    rc=$?
    if [ $rc -eq 0 ] && grep -q "perplexity: [0-9]*/[0-9]* chunks ([0-9]*%), [0-9.]* s elapsed, ETA " "$tmp/tty.out"
    then ok "perplexity on a terminal: $(grep -o "perplexity: [^$esc]*ETA [0-9.]* s" "$tmp/tty.out" | tail -n 1)"
    else bad "perplexity on a terminal (exit $rc): no progress line: $(head -c 300 "$tmp/tty.out")"; fi
    grep -qF "$cr$esc[K{\"ppl\": " "$tmp/tty.out" && ok "the line is erased before the result" ||
        bad "the result does not follow an erased line: $(tail -c 200 "$tmp/tty.out")"
    p=$(sed -n 's/.*"ppl": \([0-9.]*\).*/\1/p' "$tmp/tty.out")
    [ -n "$p" ] && [ "$p" = "$ppl" ] && ok "same perplexity on a terminal ($p)" ||
        bad "perplexity '$p' on a terminal, '$ppl' off"
fi

report test_progress
