/*
 * stop.h - when a chain drafter stops drafting under `--draft-max auto`:
 * a cost-aware stopping rule on calibrated draft confidence (SpecDec++'s
 * idea - stop once another token is more likely to waste its row than to
 * pay for it - with the acceptance estimate learned online instead of by
 * a trained head).
 *
 * Calibration. The drafter's confidence c in a token (the top probability
 * of its distribution) is not the chance that the target accepts it: the
 * shipped draft model is underconfident in the loops of code completion
 * (tokens at c = 0.3-0.5 accepted most of the time there) and
 * overconfident in prose. a(c) is learned per confidence bin from what
 * verification reports: decayed counts of the drafted tokens in the bin
 * that were reached (every earlier token accepted) and accepted; a bin
 * with few observations leans on c itself (prior weight 2).
 *
 * Rule. With i tokens drafted, P the estimated probability that all i are
 * accepted, E = 1 + sum of those P (expected tokens of the step, the bonus
 * token included) and T the step's cost (the drafter's call, its tokens,
 * the verification of i + 1 rows: the target's cost table), token i + 1
 * of confidence c is kept when it raises the step's expected rate:
 *     (E + P a(c)) / (T + node_ms + verify(i + 2) - verify(i + 1)) >= E / T,
 * else drafting stops. Rows are dear where the forward turns compute-bound
 * (beyond 4 rows here), so the same confidence may be drafted at position 2
 * and not at position 6. The rule only extends the drafter's own: a token
 * the drafter is sure of (the draft model: confidence >= p_min) is kept
 * anyway, since its chains along copied text run long at high acceptance,
 * which a per-token rule undervalues (code editing: 3.2 tokens per step
 * with the rule alone, 3.75 with p_min alone).
 *
 * Trees (tree-draft under --draft-max auto). The same calibration applies
 * to a node's local confidence c (the drafter's probability of the node's
 * token given its parent): v = a(c) * v(parent), v(root) = 1, estimates
 * the chance that the target accepts the node's whole path. Since a <= 1 a
 * child never outranks its parent, so the m nodes of highest value form a
 * subtree, and the tree keeps the m (at least the sure nodes: every node
 * on their path is one the drafter is sure of) maximizing the step's rate
 *     (1 + v_1 + ... + v_m) / (spent_ms + verify(m + 1)),
 * spent_ms = what drafting has cost so far. A verified tree reports for
 * every node whether it was reached (its parent on the accepted path) and
 * accepted.
 *
 * The rule changes only how many tokens are drafted, never which, so
 * verification stays exactly as lossless as before.
 */
#ifndef SD_SPEC_STOP_H
#define SD_SPEC_STOP_H

#include <stdbool.h>

#include "speculative/drafter.h"

#define SD_STOP_BINS 20

typedef struct sd_stop {
    /* decayed counts per confidence bin: accepted (hit) of reached (seen);
     * bins [SD_STOP_BINS, 2 SD_STOP_BINS) hold tree nodes that are not
     * their parent's most likely child (a runner-up at confidence c is
     * accepted far less often than a first choice at c) */
    double hit[2 * SD_STOP_BINS], seen[2 * SD_STOP_BINS];
    float conf[SD_MAX_DRAFT];   /* confidences of the current draft's tokens */
    int n;                      /* tokens in the current draft               */
    double e, t, p;             /* the running E, T, P of the rule above     */
} sd_stop;

void sd_stop_init(sd_stop *s);
/* a(c): the calibrated acceptance probability of a token of confidence c. */
double sd_stop_accept_prob(const sd_stop *s, float c);
/* Starts a draft under costs c. */
void sd_stop_begin(sd_stop *s, const sd_draft_costs *c);
/* Whether to keep the next token, of confidence conf (records it if so):
 * always when sure (the drafter's own rule keeps it; the running E, T, P
 * still account for it), else by the rule above. Drafting stops at the
 * first false. */
bool sd_stop_keep(sd_stop *s, const sd_draft_costs *c, float conf, bool sure);
/* Verification accepted n_accepted of the current draft's tokens. */
void sd_stop_observe(sd_stop *s, int n_accepted);

/* Tree sizing (above): candidates 0..n) with parent[i] (< i; -1 = the
 * root), local confidence conf[i], alt[i] (not the parent's most likely
 * child: calibrated apart) and sure[i] (the drafter keeps it anyway: a
 * sure node's parent must be sure). Writes the chosen nodes,
 * best first, into keep (n entries; a node's parent precedes it) and
 * returns m <= max_nodes (and <= c->max_rows - 1, SD_MAX_DRAFT). v (n
 * entries) receives every candidate's value. */
int sd_stop_tree_select(const sd_stop *s, const sd_draft_costs *c, double spent_ms, int n, const int *parent,
                        const float *conf, const bool *alt, const bool *sure, int max_nodes, double *v, int *keep);
/* A verified tree of n nodes: parent[i] (< i; -1 = root), conf[i], alt[i]
 * as above, on_path[i] = node i was accepted. */
void sd_stop_observe_tree(sd_stop *s, int n, const int32_t *parent, const float *conf, const bool *alt,
                          const bool *on_path);

#endif
