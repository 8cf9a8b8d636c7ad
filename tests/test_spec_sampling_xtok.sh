#!/bin/sh
# The end-to-end sampling law test with the cross-tokenizer drafter
# (draft-xtok: one-hot proposals through text, no q); see
# tests/test_spec_sampling.c.
BUILD=${BUILD:-build}
SPECDEC_SPEC_DRAFTER=draft-xtok exec "$BUILD/tests/test_spec_sampling"
