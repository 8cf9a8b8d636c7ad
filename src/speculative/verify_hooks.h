/*
 * verify_hooks.h - the decode loop's test hooks around sampling
 * verification, for the power checks of the end-to-end sampling tests
 * (tests/test_spec_sampling.c); not in the public API.
 *  - a fault: a deliberately wrong verifier set on one generation
 *    (sd_gen_set_verify_fault); the test checks that its statistics reject
 *    what that generation emits. Each fault is a bug a real verifier could
 *    have.
 *  - an observer: called after each sampling verification of one
 *    generation with what the verifier saw and did (sd_verify_event), so a
 *    test can compare each acceptance and each correction or bonus token
 *    with its exact conditional law.
 * A generation with neither set runs the exact verifiers (verify.h); the
 * decode loop pays one predictable branch per verification for each.
 */
#ifndef SD_SPEC_VERIFY_HOOKS_H
#define SD_SPEC_VERIFY_HOOKS_H

#include "specdec.h"

typedef enum sd_verify_fault {
    SD_VERIFY_EXACT = 0,
    /* chain and tree: a draft (child) is accepted with probability
     * min(1, r(x) / s(x))^0.8 instead of min(1, r(x) / s(x)): a wrong
     * exponent, e.g. a temperature applied to the ratio. Drafts the
     * drafter over-proposes (s > r) are accepted too often. */
    SD_FAULT_ACCEPT_POW,
    /* chain and tree: the correction token after a rejection is drawn with
     * one uniform u in [0, 1) against the cumulative sums of the residual
     * max(0, r - s) as computed, i.e. without dividing by its mass Z; when u
     * falls past Z (probability 1 - Z) the draw falls back to the node's p,
     * as the exact code does when the residual has no mass. The correction
     * then follows Z norm(max(0, r - s)) + (1 - Z) p instead of
     * norm(max(0, r - s)): the rejected draft itself and the other tokens
     * the drafter over-proposes come back. */
    SD_FAULT_RESIDUAL_UNNORMALIZED,
    /* chain and tree: the correction token after a rejection is drawn from
     * the node's p instead of the residual (q never subtracted): the
     * coarsest of the three, the one the law tests alone can see. */
    SD_FAULT_RESIDUAL_IS_P,
    /* tree with q: a rejected sibling is not removed from the proposal of
     * the next sibling (s_{i+1} = s_i, as if siblings were drawn with
     * replacement, while the tree drafters draw them without). The next
     * sibling's s(x) misses the renormalization by 1 / (1 - s(x_i)), so
     * later siblings are accepted too often and the residuals they leave
     * keep too much mass. */
    SD_FAULT_TREE_SIBLINGS_KEPT,
    SD_VERIFY_FAULT_COUNT
} sd_verify_fault;

/* Short names of the faults ("exact", "accept-pow", ...), for messages. */
const char *sd_verify_fault_name(sd_verify_fault f);

/* Sets the verifier fault of one generation (after sd_gen_begin, before
 * its first sd_gen_finish). SD_ERR_INVALID_ARG for a NULL g or an unknown
 * fault. */
sd_status sd_gen_set_verify_fault(sd_gen *g, sd_verify_fault f);

/* One sampling verification as the decode loop ran it (valid during the
 * observer's call only). Rows as in verify.h: p row 0 is the law of the
 * root's children, row 1 + c the law of node c's children (a chain's node
 * i has parent i - 1, so row i is the law at draft i); q row c is the
 * proposal node c was drawn from. */
typedef struct sd_verify_event {
    int n;                 /* drafted nodes (0: a plain step)                */
    const int32_t *tok;    /* (n)                                           */
    const int32_t *parent; /* (n) a tree's parents; NULL for a chain        */
    const float *p;        /* (n + 1, V) the target's distributions         */
    const float *q;        /* (n, V) the proposals; NULL: one-hot drafts     */
    int V;
    int j;                 /* accepted nodes                                */
    const int32_t *path;   /* (j) a tree's accepted nodes, root downwards;
                              NULL for a chain (nodes 0..j-1)               */
    int32_t next;          /* the correction or bonus token                 */
} sd_verify_event;

typedef void (*sd_verify_observer)(void *user, const sd_verify_event *ev);

/* Sets the observer of one generation (NULL: none), called after each of
 * its sampling verifications (not in greedy decoding). SD_ERR_INVALID_ARG
 * for a NULL g. */
sd_status sd_gen_set_verify_observer(sd_gen *g, sd_verify_observer fn, void *user);

#endif
