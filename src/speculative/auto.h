/*
 * auto.h - `--draft-max auto`: the draft length (chains) or node budget
 * (trees) of each step, chosen to maximize expected tokens per millisecond
 *
 *     E(k) / (cost(k + 1 rows, context) + draft_ms(k))
 *
 * from the target's cost table (sd_cost_table, measured at start-up) and
 * what this generation has seen so far:
 *  - chains: a_i, the acceptance rate of draft position i given positions
 *    1..i-1 were accepted, from decayed counts of how often position i was
 *    reached and accepted; a position with few observations leans on the
 *    one before it (prior weight 2), position 1 on a = 0.7;
 *    E(k) = 1 + a_1 + a_1 a_2 + ... + a_1...a_k (the bonus token included);
 *  - trees: the mean tokens per step and mean nodes drafted of each
 *    budget tried (forgetting as above; a drafter may draft fewer nodes
 *    than its budget); a budget not yet tried is predicted by the chain
 *    formula;
 *  - a drafter may stop before k on its own (the draft model's p_min):
 *    d_i, the rate at which it drafts position i when allowed to, scales
 *    both the expected rows verified, 1 + d_1 + d_1 d_2 + ..., and E(k)
 *    (a_i then applies to drafted positions);
 *  - draft_ms(k): the drafter's measured fixed cost per call plus its cost
 *    per drafted node times the expected drafted nodes.
 * Budget 0 (plain decoding) is allowed; after 8 plain steps in a row one
 * step probes so that acceptance keeps being measured: with the whole
 * budget when the drafter ends its chains by a confidence rule of its own
 * (probe_full; the rule bounds the probe's cost), else with one token.
 */
#ifndef SD_SPEC_AUTO_H
#define SD_SPEC_AUTO_H

#include "specdec.h"

#define SD_AUTO_KMAX 16

typedef struct sd_auto {
    const sd_cost_table *ct;
    int kmax;                       /* largest budget considered            */
    double offer[SD_AUTO_KMAX + 1]; /* decayed: the drafter could draft i ... */
    double made[SD_AUTO_KMAX + 1];  /* ... and did (it may stop on its own) */
    double reach[SD_AUTO_KMAX + 1]; /* decayed: position i reached ...       */
    double hit[SD_AUTO_KMAX + 1];   /* ... and accepted (index 1..KMAX)      */
    double node_ms, call_ms;        /* drafter: ms per node, ms per call    */
    double tok[SD_AUTO_KMAX + 1];   /* trees: decayed tokens per step ...   */
    double n[SD_AUTO_KMAX + 1];     /* ... and decayed step count, per budget */
    double nodes[SD_AUTO_KMAX + 1]; /* trees: decayed nodes drafted, per budget */
    bool tree;                      /* the drafter drafts trees             */
    bool probe_full;                /* probes get the whole budget: the
                                       drafter stops itself (sd_drafter)    */
    double verify_frac;             /* share of the target's layers a
                                       verification runs (self-speculation
                                       runs only layers [L, N)); EMA        */
    int plain_run;                  /* consecutive steps with budget 0      */
    int n_updates;
} sd_auto;

/* A synthetic table, ms = a + b * rows + c * rows * n_past (for tests). */
sd_status sd_cost_table_linear(double a, double b, double c, sd_cost_table **out);

void sd_auto_init(sd_auto *a, const sd_cost_table *ct, int kmax);
/* The budget for the next step at n_past cells of context. */
int sd_auto_choose(sd_auto *a, int n_past);
/* After a step with budget k: the drafter returned n_drafted nodes
 * (a chain or tree of depth `depth`), j were accepted, drafting took
 * draft_ms. */
void sd_auto_update(sd_auto *a, int k, bool tree, int n_drafted, int depth, int j, double draft_ms);
/* After a step whose verification ran `frac` of the target's layers. */
void sd_auto_verify_share(sd_auto *a, double frac);

#endif
