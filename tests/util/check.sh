# check.sh - the shell tests' counters, sourced by tests/test_*.sh
# (`. "$(dirname "$0")/util/check.sh"`): ok / bad count checks, a temporary
# folder $tmp removed on exit, and report NAME, which prints the totals and
# fails unless every check passed and there was at least one.
BIN=${BIN:-bin/specdec}
SHARED=${SHARED:-../shared}
fails=0; checks=0; skips=0
ok()   { checks=$((checks+1)); echo "ok   $1"; }
bad()  { checks=$((checks+1)); fails=$((fails+1)); echo "FAIL $1"; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
report() {
    if [ $skips -gt 0 ]; then echo "$1: $checks checks, $fails failed, $skips parts skipped"
    else echo "$1: $checks checks, $fails failed"; fi
    [ $fails -eq 0 ] && [ $checks -gt 0 ]
}
# expect_usage_error NAME CMD...: CMD exits 1 with "error" or "usage" on stderr.
expect_usage_error() {
    name=$1; shift
    "$@" > "$tmp/out" 2> "$tmp/err"; rc=$?
    if [ $rc -eq 1 ] && grep -qi "error\|usage" "$tmp/err"; then ok "$name: exit $rc, $(head -n 1 "$tmp/err")"
    else bad "$name: exit $rc, stderr: $(head -c 200 "$tmp/err")"; fi
}
# skip WHAT: a part that could not run here; printed as "SKIP: WHAT", which
# tests/run.sh collects and names in its summary (a skip is never a pass).
skip() { skips=$((skips+1)); echo "SKIP: $1"; }
# in_ci: true under CI=true (or 1), where .ci/run provides every dependency.
in_ci() { [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ]; }
# need WHAT: a dependency is missing: a skip outside CI, a failure in CI.
need() { if in_ci; then bad "$1 is missing, and CI (CI=true) must provide it"; else skip "$1 is missing"; fi; }
