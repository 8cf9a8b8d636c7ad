#!/bin/sh
# Runs every test binary in $BUILD/tests and every tests/test_*.sh, and
# prints "N passed, M failed, K skipped" with the skips named.
# A test exits 0 on success, 77 when it cannot run at all here (a skip),
# anything else on failure. A test that ran but could not run some part
# (a kernel table the CPU lacks...) prints "SKIP: <what>" lines
# (tests/util/check.h: check_skip; check.sh: skip); each counts as a skip
# and is named in the summary. A skip is never counted as a pass.
BUILD=${BUILD:-build}
pass=0; fail=0; skip=0; failed=""
skiplist="$BUILD/tests/skips.txt"
: > "$skiplist"
# Compiled tests, then script tests (tests/test_*.sh, run with sh).
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    case "$t" in *.log|*.txt) continue;; esac
    [ -f "$t" ] || continue
    name=$(basename "$t")
    start=$(date +%s)
    case "$t" in
        *.sh) BIN=${BIN:-bin/specdec} sh "$t" > "$BUILD/tests/$name.log" 2>&1 ;;
        *) "$t" > "$BUILD/tests/$name.log" 2>&1 ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    parts=$(grep -c '^SKIP: ' "$BUILD/tests/$name.log")
    grep '^SKIP: ' "$BUILD/tests/$name.log" | sed "s/^SKIP: /$name: /" >> "$skiplist"
    if [ $rc -eq 0 ]; then
        pass=$((pass+1))
        if [ "$parts" -gt 0 ]; then echo "PASS $name (${secs}s; $parts parts skipped)"
        else echo "PASS $name (${secs}s)"; fi
    elif [ $rc -eq 77 ]; then
        echo "$name: the whole test ($(tail -n 1 "$BUILD/tests/$name.log"))" >> "$skiplist"
        echo "SKIP $name"
    else
        fail=$((fail+1)); failed="$failed $name"
        echo "FAIL $name (exit $rc, ${secs}s); last lines of $BUILD/tests/$name.log:"
        tail -n 30 "$BUILD/tests/$name.log" | sed 's/^/    /'
    fi
done
skip=$(wc -l < "$skiplist")
echo "$pass passed, $fail failed, $skip skipped"
if [ "$skip" -gt 0 ]; then
    echo "skipped:"
    sed 's/^/  /' "$skiplist"
fi
[ -n "$failed" ] && echo "failed:$failed"
[ $fail -eq 0 ]
