/* topk.h - the k best tokens of a logits row with their log-probabilities,
 * shared by the tree drafters (draft_tree.c, draft_heads.c). */
#ifndef SD_SPEC_TOPK_H
#define SD_SPEC_TOPK_H

#include "kernels/kernels.h"

/* The k best (token, log-prob) of logits l (V), best first (k <= 16), ties
 * to the lower id. Logits that are -inf (VocabTrim) or NaN are never
 * returned; returns how many were found (< k when fewer are finite). */
int sd_draft_top_k(const sd_kernels *kern, const float *l, int V, int k, int32_t *tok, double *lp);

#endif
