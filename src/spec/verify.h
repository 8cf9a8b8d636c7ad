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

#endif
