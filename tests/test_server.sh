#!/bin/sh
# The OpenAI-compatible server end to end over loopback (tests/server_test.py),
# then the OpenAI Node SDK against it (tests/node/, skipped if node or the
# `openai` package is absent). BIN: the specdec binary (bin/specdec, or
# build-san/bin/specdec under make test-san).
BIN=${BIN:-bin/specdec}
export BIN
command -v python3 >/dev/null 2>&1 || { echo "python3 missing"; exit 77; }
python3 "$(dirname "$0")/server_test.py" || exit 1
sh "$(dirname "$0")/node/run.sh"
rc=$?
[ $rc -eq 77 ] && { echo "node SDK test skipped"; exit 0; }
exit $rc
