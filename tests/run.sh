#!/bin/sh
# Runs every test binary in $BUILD/tests and prints "N passed, M failed".
# Tests exit 0 on success, 77 to skip, anything else on failure.
BUILD=${BUILD:-build}
pass=0; fail=0; skip=0; failed=""
# Compiled tests, then script tests (tests/test_*.sh, run with sh).
for t in "$BUILD"/tests/test_* tests/test_*.sh; do
    case "$t" in *.log) continue;; esac
    [ -f "$t" ] || continue
    name=$(basename "$t")
    start=$(date +%s)
    case "$t" in
        *.sh) BIN=${BIN:-bin/specdec} sh "$t" > "$BUILD/tests/$name.log" 2>&1 ;;
        *) "$t" > "$BUILD/tests/$name.log" 2>&1 ;;
    esac
    rc=$?
    secs=$(( $(date +%s) - start ))
    if [ $rc -eq 0 ]; then
        pass=$((pass+1)); echo "PASS $name (${secs}s)"
    elif [ $rc -eq 77 ]; then
        skip=$((skip+1)); echo "SKIP $name"
    else
        fail=$((fail+1)); failed="$failed $name"
        echo "FAIL $name (exit $rc, ${secs}s); last lines of $BUILD/tests/$name.log:"
        tail -n 30 "$BUILD/tests/$name.log" | sed 's/^/    /'
    fi
done
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
