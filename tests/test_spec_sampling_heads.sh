#!/bin/sh
# The end-to-end sampling law test with trained heads drafting from the
# target's features: EAGLE and Hydra as spine trees (multi-draft
# verification), Medusa as a chain; see tests/test_spec_sampling.c. 1500
# runs each (half the default: CI time; the power each keeps against wrong
# verifiers at 1500 is in that file's header); SD_TEST_QUICK keeps the
# test's own 600.
BUILD=${BUILD:-build}
if [ -z "${SD_TEST_QUICK:-}" ]; then
    SPECDEC_SPEC_RUNS=${SPECDEC_SPEC_RUNS:-1500}
    export SPECDEC_SPEC_RUNS
fi
rc=0
for d in eagle medusa-chain hydra; do
    echo "== SPECDEC_SPEC_DRAFTER=$d"
    SPECDEC_SPEC_DRAFTER=$d "$BUILD/tests/test_spec_sampling" || rc=1
done
exit $rc
