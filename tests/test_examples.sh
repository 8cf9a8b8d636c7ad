#!/bin/sh
# test_examples.sh - the programs of examples/ (built on include/specdec.h
# and libspecdec.a alone, see the Makefile) run on the shipped models; the
# speculative ones must print exactly what plain decoding prints (greedy is
# lossless) and draft more than one token per step where drafts hit.
. "$(dirname "$0")/util/check.sh"
ex=${BUILD:-build}/examples/spec_generate
if [ ! -x "$ex" ]; then bad "$ex is not built (make test builds examples/)"; report test_examples; exit 1; fi
if "$ex" "$SHARED/models" none > "$tmp/none" 2> "$tmp/err"; then ok "spec_generate none"
else bad "spec_generate none: $(cat "$tmp/err")"; fi
for m in draft:4 lookup eagle:auto; do
    case $m in eagle*) dir_ok=$([ -f "$SHARED/models/kernel-c-target-heads.gguf" ] && echo y) ;; *) dir_ok=y ;; esac
    [ "$dir_ok" = y ] || continue
    if ! "$ex" "$SHARED/models" "$m" > "$tmp/out" 2> "$tmp/err"; then
        # eagle needs heads the example does not load: a clear error is the contract
        if [ "${m%%:*}" = eagle ] && grep -q "needs trained heads" "$tmp/err"; then ok "spec_generate $m: $(cat "$tmp/err")"
        else bad "spec_generate $m: $(cat "$tmp/err")"; fi
        continue
    fi
    # text identical to plain decoding (every line but the statistics line)
    if [ "$(grep -v '^\[' "$tmp/out")" = "$(grep -v '^\[' "$tmp/none")" ]; then ok "spec_generate $m: text identical to none"
    else bad "spec_generate $m: text differs from none"; fi
    tps=$(sed -n 's/.*: \([0-9.]*\) tokens per step/\1/p' "$tmp/out")
    if [ "$m" = draft:4 ]; then
        if awk -v t="$tps" 'BEGIN { exit !(t > 1.2) }'; then ok "spec_generate $m: $tps tokens per step"
        else bad "spec_generate $m: $tps tokens per step (expected > 1.2)"; fi
    fi
done
if "$ex" "$SHARED/models" nosuch > "$tmp/out" 2> "$tmp/err"; then bad "spec_generate nosuch: exit 0"
elif grep -q "unknown method 'nosuch'" "$tmp/err"; then ok "spec_generate nosuch: $(cat "$tmp/err")"
else bad "spec_generate nosuch: $(cat "$tmp/err")"; fi
report test_examples
