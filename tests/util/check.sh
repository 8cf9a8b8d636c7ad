# check.sh - the shell tests' counters, sourced by tests/test_*.sh
# (`. "$(dirname "$0")/util/check.sh"`): ok / bad count checks, a temporary
# folder $tmp removed on exit, and report NAME, which prints the totals and
# fails unless every check passed and there was at least one.
BIN=${BIN:-bin/specdec}
SHARED=${SHARED:-../shared}
fails=0; checks=0
ok()   { checks=$((checks+1)); echo "ok   $1"; }
bad()  { checks=$((checks+1)); fails=$((fails+1)); echo "FAIL $1"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
report() {
    echo "$1: $checks checks, $fails failed"
    [ $fails -eq 0 ] && [ $checks -gt 0 ]
}
# expect_usage_error NAME CMD...: CMD exits 1 with "error" or "usage" on stderr.
expect_usage_error() {
    name=$1; shift
    "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?
    if [ $rc -eq 1 ] && grep -qi "error\|usage" "$tmp/err"; then ok "$name: exit $rc, $(head -n 1 "$tmp/err")"
    else bad "$name: exit $rc, stderr: $(head -c 200 "$tmp/err")"; fi
}
