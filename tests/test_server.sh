#!/bin/sh
# The OpenAI-compatible server end to end over loopback (tests/server_test.py),
# under hostile load (tests/server_hostile.py), then the OpenAI Node SDK
# against it (tests/node/). BIN: the specdec binary (bin/specdec, or
# build-san/bin/specdec under make test-san).
# python3, node and the `openai` package (tests/node/node_modules, `npm
# install` there) are dependencies that .ci/run installs: without one, its
# part is a named skip ("SKIP: ...") or, without python3, the whole test
# (exit 77); under CI=true each is a failure.
. "$(dirname "$0")/util/check.sh"
export BIN
dir=$(dirname "$0")
if ! command -v python3 >/dev/null 2>&1; then
    in_ci || { echo "python3 missing"; exit 77; } # nothing here can run
    need "python3 (tests/server_test.py)"
else
    if python3 "$dir/server_test.py"; then ok "tests/server_test.py"; else bad "tests/server_test.py"; fi
    # hostile load: idle, half-sent and slow clients, floods, oversize input
    if python3 "$dir/server_hostile.py"; then ok "tests/server_hostile.py"; else bad "tests/server_hostile.py"; fi
fi
if ! command -v node >/dev/null 2>&1; then
    need "node (the OpenAI Node SDK test, tests/node)"
elif [ ! -d "$dir/node/node_modules/openai" ]; then
    need "the openai package in tests/node/node_modules (the OpenAI Node SDK test; npm install in tests/node)"
elif sh "$dir/node/run.sh"; then
    ok "the OpenAI Node SDK test (tests/node)"
else
    bad "the OpenAI Node SDK test (tests/node)"
fi
report test_server
