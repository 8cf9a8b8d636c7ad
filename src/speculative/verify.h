/*
 * verify.h - lossless verification of a drafted chain: pure functions of
 * the draft, the target's distributions and a generator, so the statistical
 * tests can run them alone on synthetic distributions (tests/test_verify.c).
 *
 * Letters: k = drafted tokens, V = vocabulary size. p rows are the exact
 * distributions the sampler would draw from (sd_sampler_dist), row i being
 * the target's distribution for the position of draft token i (row k: the
 * position after the last draft).
 */
#ifndef SD_SPEC_VERIFY_H
#define SD_SPEC_VERIFY_H

#include "specdec.h"
#include "speculative/verify_hooks.h"

/* Greedy chain. argmax: (k + 1) target argmaxes. Accepts draft[i] while it
 * equals argmax[i]; returns the number accepted j (0..k) and sets *next to
 * argmax[j] (the correction or bonus token). */
int sd_verify_greedy(const int32_t *draft, int k, const int32_t *argmax, int32_t *next);

/* Speculative sampling (Leviathan et al. 2023; Chen et al. 2023).
 * p: (k + 1, V) target distributions; q: (k, V) draft distributions, or NULL
 * for one-hot drafts (q_i = delta(draft[i])). For i = 0..k-1: accept draft[i]
 * with probability min(1, p_i(x)/q_i(x)); on rejection draw *next from
 * norm(max(0, p_i - q_i)) and stop. If all are accepted, draw *next from
 * p_k. Returns the number accepted j (0..k). scratch: (V) floats.
 * The emitted token sequence is distributed exactly as sampling from p. */
int sd_verify_sample(const int32_t *draft, int k, const float *p, const float *q, int V,
                     sd_rng *rng, float *scratch, int32_t *next);

/* sd_verify_sample with a deliberate fault (verify_hooks.h; the power
 * checks of the sampling tests). SD_VERIFY_EXACT: sd_verify_sample. */
int sd_verify_sample_faulty(const int32_t *draft, int k, const float *p, const float *q, int V,
                            sd_rng *rng, float *scratch, int32_t *next, sd_verify_fault fault);

/* ---- token trees (node i: tok[i], parent[i] = -1 for the root's
 * children, else < i; siblings distinct). Target rows: row 0 = the root (the
 * last accepted token), row 1 + i = node i. Accepted path: node indices
 * path[0..j) from the root downwards (path[0] a child of the root). */

/* Greedy tree: from the root, follow the child whose token equals the
 * target's argmax at the current node. argmax: (n + 1). Returns j, writes
 * path, sets *next = the argmax at the last accepted node (or the root).
 * Returns -1 (and *next = -1) on an invalid tree (a parent out of order,
 * equal siblings). */
int sd_verify_tree_greedy(const int32_t *tok, const int32_t *parent, int n, const int32_t *argmax,
                          int32_t *path, int32_t *next);

/* Multi-draft speculative sampling over a tree (recursive rejection
 * sampling; SpecTr, "Towards Optimal Multi-draft Speculative Decoding").
 * At the current node with target distribution r (initially p of that
 * node) its children x_1..x_m are tried in sibling order: x_i is accepted
 * with probability min(1, r(x_i) / s_i(x_i)); on acceptance descend into
 * x_i; on rejection r <- norm(max(0, r - s_i)) and try the next child. When
 * no child is accepted, *next is drawn from r and the walk stops; at a
 * leaf, *next is drawn from its p.
 * s_i is child i's proposal: with q (rows per node, see drafter.h: siblings
 * drawn without replacement from the parent's q), s_1 = q and s_{i+1} =
 * s_i with x_i removed, renormalized; with q == NULL, s_i = delta(x_i).
 * p: (n + 1, V) target distributions (row 0 root). q: (n, V) or NULL.
 * scratch: (3 * V) floats. Returns j, writes path (n entries max).
 * The emitted tokens are distributed exactly as sampling from p. Returns
 * -1 (and *next = -1) on invalid input (a parent out of order, equal
 * siblings, a token outside [0, V), a visited p row with no finite mass). */
int sd_verify_tree_sample(const int32_t *tok, const int32_t *parent, int n, const float *p,
                          const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                          int32_t *next);

/* sd_verify_tree_sample with a deliberate fault (verify_hooks.h).
 * SD_VERIFY_EXACT: sd_verify_tree_sample. */
int sd_verify_tree_sample_faulty(const int32_t *tok, const int32_t *parent, int n, const float *p,
                                 const float *q, int V, sd_rng *rng, float *scratch, int32_t *path,
                                 int32_t *next, sd_verify_fault fault);

#endif
