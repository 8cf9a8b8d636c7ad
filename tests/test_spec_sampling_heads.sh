#!/bin/sh
# The end-to-end sampling law test with the trained heads drafting (EAGLE as
# a spine tree, Medusa and Hydra as chains); see tests/test_spec_sampling.c.
BUILD=${BUILD:-build}
for d in eagle medusa-chain hydra; do
    echo "== SPECDEC_SPEC_DRAFTER=$d"
    SPECDEC_SPEC_DRAFTER=$d "$BUILD/tests/test_spec_sampling" || exit 1
done
