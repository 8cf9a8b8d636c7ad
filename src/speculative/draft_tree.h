/*
 * draft_tree.h - what another drafter may read of a `tree-draft` drafter
 * (draft_tree.c): the candidates of its last greedy draft, with the draft
 * model's probabilities. The `rasd` drafter (draft_rasd.c) scores retrieval
 * nodes with them.
 */
#ifndef SD_SPEC_DRAFT_TREE_H
#define SD_SPEC_DRAFT_TREE_H

#include "speculative/drafter.h"

/* Most candidates one draft holds. */
#define SD_TREE_MAX_CAND 512

/* One candidate of a greedy draft: the `topk` most likely children of the
 * root and of every expanded node, whether or not it made the tree. */
typedef struct sd_tree_cand {
    int32_t tok;
    int parent;      /* candidate index (< own index), -1 = root          */
    bool expanded;   /* the draft model ran on this node: its topk children
                        are candidates too                                */
    double logp;     /* log cumulative draft probability of the path      */
} sd_tree_cand;

/* The candidates of d's last draft, valid between its draft() and
 * accept(): copies up to cap of them (in creation order: parents first)
 * into out and returns how many there are (the root is expanded iff that
 * is > 0). 0 when the last draft drew samples (temp > 0), drafted nothing,
 * or d is not a `tree-draft` drafter. */
int sd_tree_draft_candidates(const sd_drafter *d, sd_tree_cand *out, int cap);

#endif
