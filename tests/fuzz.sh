#!/bin/sh
# Runs libFuzzer targets: tests/fuzz.sh SECONDS BIN...
# Each binary build-fuzz/fuzz_<name> runs for SECONDS on a temp copy of the
# seed corpus tests/fuzz_corpus/<name>/. Exits non-zero if any target finds a
# crash, leak or timeout (the reproducer is kept in build-fuzz/artifacts/).
set -u
if [ $# -lt 2 ]; then
    echo "usage: $0 SECONDS BIN..." >&2
    exit 2
fi
secs=$1; shift
here=$(cd "$(dirname "$0")" && pwd)
status=0
for bin in "$@"; do
    name=$(basename "$bin"); name=${name#fuzz_}
    work=$(mktemp -d "${TMPDIR:-/tmp}/fuzz_$name.XXXXXX") || exit 1
    if [ -d "$here/fuzz_corpus/$name" ]; then
        cp "$here/fuzz_corpus/$name"/* "$work"/ 2>/dev/null
    fi
    art=$(dirname "$bin")/artifacts/$name
    mkdir -p "$art"
    echo "== $bin: ${secs}s, corpus $here/fuzz_corpus/$name"
    "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=65536 -timeout=10 \
        -print_final_stats=1 -artifact_prefix="$art/" "$work" > "$work.log" 2>&1
    rc=$?
    grep -E "^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)" "$work.log"
    if [ $rc -ne 0 ] || grep -qE "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$work.log"; then
        echo "FAIL $bin (exit $rc):"
        grep -m1 -A30 -E "ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:" "$work.log" | sed 's/^/    /'
        grep -E "Test unit written to" "$work.log" | sed 's/^/    /'
        status=1
    else
        echo "PASS $bin"
    fi
    rm -rf "$work" "$work.log"
done
exit $status
