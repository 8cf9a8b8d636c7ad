/*
 * draft_lookup.h - what another drafter may read of a `tree-lookup`
 * drafter (draft_lookup.c): its trie of continuations with the support of
 * each node. The `rasd` drafter (draft_rasd.c) scores retrieval nodes by it.
 */
#ifndef SD_SPEC_DRAFT_LOOKUP_H
#define SD_SPEC_DRAFT_LOOKUP_H

#include "speculative/drafter.h"

/* Drafts exactly as d's draft() would (same index, trie and kept nodes:
 * out->tok, out->parent, is_tree) and also gives each kept node's support:
 * w[i] (max entries) = the summed n-gram sizes of the occurrences whose
 * continuation passes through node i, *w_root = that sum over every
 * occurrence collected (so w[i] <= w[parent] <= *w_root). Each occurrence
 * continues for `len` tokens (the trie depth; a draft() uses len = max).
 * SD_ERR_INVALID_ARG when d is not a `tree-lookup` drafter; SD_ERR_NOMEM. */
sd_status sd_lookup_tree_draft_weighted(sd_drafter *d, const int32_t *ids, int n, int max, int len,
                                        sd_draft *out, double *w, double *w_root);

#endif
