#!/bin/sh
# The end-to-end sampling law test with the tree drafter (multi-draft
# verification over spine trees); see tests/test_spec_sampling.c.
BUILD=${BUILD:-build}
SPECDEC_SPEC_DRAFTER=tree-draft exec "$BUILD/tests/test_spec_sampling"
