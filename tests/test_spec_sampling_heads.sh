#!/bin/sh
# The end-to-end sampling law test with trained heads drafting from the
# target's features: EAGLE as a spine tree (multi-draft verification), and
# Medusa as a chain with fewer runs (the q rows come from the same shared
# spine sampler); see tests/test_spec_sampling.c.
BUILD=${BUILD:-build}
echo "== SPECDEC_SPEC_DRAFTER=eagle"
if [ -z "${SD_TEST_QUICK:-}" ]; then # 1500 runs (half the default): CI time
    SPECDEC_SPEC_RUNS=1500 SPECDEC_SPEC_DRAFTER=eagle "$BUILD/tests/test_spec_sampling" || exit 1
else
    SPECDEC_SPEC_DRAFTER=eagle "$BUILD/tests/test_spec_sampling" || exit 1
fi
echo "== SPECDEC_SPEC_DRAFTER=medusa-chain"
if [ -z "${SD_TEST_QUICK:-}" ]; then
    SPECDEC_SPEC_RUNS=${SPECDEC_SPEC_RUNS:-1000}
    export SPECDEC_SPEC_RUNS
fi
SPECDEC_SPEC_DRAFTER=medusa-chain exec "$BUILD/tests/test_spec_sampling"
