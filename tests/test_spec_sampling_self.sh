#!/bin/sh
# The end-to-end sampling law test with self-speculation (`self`: the
# target's early exits, DEL's exit choice, q from the exits' Q8_0 drafting
# head, verification continuing from the exit layer); see
# tests/test_spec_sampling.c. 1500 runs (half the default) to keep CI short
# (the power each test keeps at 1500 against wrong verifiers is in that
# file's header).
BUILD=${BUILD:-build}
if [ -z "${SD_TEST_QUICK:-}" ]; then
    SPECDEC_SPEC_RUNS=${SPECDEC_SPEC_RUNS:-1500}
    export SPECDEC_SPEC_RUNS
fi
SPECDEC_SPEC_DRAFTER=self exec "$BUILD/tests/test_spec_sampling"
