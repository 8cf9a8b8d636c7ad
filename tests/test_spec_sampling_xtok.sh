#!/bin/sh
# The end-to-end sampling law test with the cross-tokenizer drafter
# (draft-xtok: one-hot proposals through text, no q); see
# tests/test_spec_sampling.c. 1000 runs per condition (the default 3000
# costs minutes more; the power each test keeps at 1000 against wrong
# verifiers is in that file's header); SD_TEST_QUICK keeps the test's own
# 600.
BUILD=${BUILD:-build}
if [ -z "${SD_TEST_QUICK:-}" ]; then
    SPECDEC_SPEC_RUNS=${SPECDEC_SPEC_RUNS:-1000}
    export SPECDEC_SPEC_RUNS
fi
SPECDEC_SPEC_DRAFTER=draft-xtok exec "$BUILD/tests/test_spec_sampling"
