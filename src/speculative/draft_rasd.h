/*
 * draft_rasd.h - the fusion step of the `rasd` drafter (draft_rasd.c) as a
 * pure function, so tests/test_rasd.c can check it on synthetic trees.
 *
 * Inputs: the draft model's greedy candidates (draft_tree.h: tokens, parents,
 * log cumulative probabilities, which nodes the draft model expanded) and
 * one or more retrieval trees whose nodes carry a conditional support rho in
 * [0, 1] (an estimate of P(node's token | its parent's path was right)).
 *
 * Every node of the fused trie gets a score S = the estimated probability
 * that the target accepts its whole path: S(child) = S(parent) * a(child),
 * with a(child) the child's conditional acceptance estimate (qd = the
 * draft's conditional probability of the child, r = the draft's mass
 * outside its top-k at the parent):
 *   draft candidate, no retrieval support:   a = qd^beta (the draft model is
 *                                            overconfident; a draft-only tree
 *                                            ranks exactly as in tree-draft);
 *   draft candidate with retrieval support:  a = 1 - (1 - qd^beta)(1 - rho)
 *                                            (two sources agree);
 *   retrieval node under a node the draft model expanded, but not among the
 *   draft's top-k there (pruning: the draft disagrees):
 *                                            logit a = logit rho - mu (1 - r);
 *   retrieval node elsewhere:                a = rho.
 * a <= 1, so a child never outscores its parent: the `max` best nodes with
 * S >= p_min (ties: creation order, parents first) always form a tree.
 *
 * The default knobs are maximum-likelihood fits of these forms to the
 * observed acceptance (target greedy continuation known) of every
 * retrieval node and draft candidate on decodes of prompts cut from
 * ../shared/reference/heldout-btrfs.txt (not the bench prompts): e.g. a
 * draft-only candidate with qd in [0.7, 0.9) was right 54% of the time,
 * a history retrieval node whose supporting occurrences all agree 98%.
 * Tokens per step move by ~1-2% across a wide range of the knobs.
 */
#ifndef SD_SPEC_DRAFT_RASD_H
#define SD_SPEC_DRAFT_RASD_H

#include "speculative/draft_tree.h"

/* A retrieval node: parent < own index within its array, -1 = root. */
typedef struct sd_rasd_rnode {
    int32_t tok;
    int parent;
    double rho;       /* conditional support in [0, 1] */
} sd_rasd_rnode;

/* Knobs of the scoring above (defaults: sd_rasd_default_tune()). */
typedef struct sd_rasd_tune {
    double beta;        /* draft candidates: ad = qd^beta                      */
    double alpha;       /* history support: logit rho = alpha logit(w / (w_parent + kappa)) */
    double kappa;
    double mu;          /* draft disagreement: logit a = logit rho - mu (1 - r) */
    double p_min;       /* fused nodes need S >= p_min                         */
    double kappa_c;     /* corpus support: rho = corpus_w count / (total + kappa_c) */
    double corpus_w;
    double skip;        /* the draft model is skipped when the retrieval-only
                           tree expects >= skip * max accepted drafts (sum of
                           S); > 1: never                                     */
} sd_rasd_tune;

sd_rasd_tune sd_rasd_default_tune(void);
/* Replaces the knobs of a `rasd` drafter (tests, tuning); SD_ERR_INVALID_ARG
 * if d is not one. */
sd_status sd_rasd_set_tune(sd_drafter *d, const sd_rasd_tune *t);

/* Fuses the draft candidates dc[0..n_dc) and the retrieval nodes
 * rn[0..n_rn) (several trees may be concatenated: each node's parent is an
 * index into rn, -1 for the root; nodes with equal paths merge, their rho
 * combine as 1 - prod(1 - rho)) into out: at most max (<= SD_MAX_DRAFT)
 * nodes, parents first, siblings distinct, is_tree = true, has_q = false.
 * n_dc == 0: no draft information (nothing was expanded). Nodes with
 * invalid parents (not earlier) are ignored with their subtrees. Returns
 * SD_OK, or SD_ERR_NOMEM (out->n = 0). expected (may be NULL): the sum of
 * the kept nodes' scores, the expected number of accepted drafts. */
sd_status sd_rasd_fuse(const sd_tree_cand *dc, int n_dc, const sd_rasd_rnode *rn, int n_rn,
                       const sd_rasd_tune *t, int max, sd_draft *out, double *expected);

#endif
