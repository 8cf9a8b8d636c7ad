/*
 * test_spec_lossless.c - greedy speculative decoding is lossless: for every
 * prompt of ../shared/bench (24 code + 12 docs, each with its max_tokens),
 * every drafter (draft model, lookup, n-gram cache, draft-model tree,
 * lookup trie, ADED, self-speculative early exit, PEARL's background
 * drafting, the draft model with SpecDec++'s stopping rule, rasd, the
 * trained heads EAGLE, Hydra and Medusa as trees and as chains) and
 * draft-max (tree: node budget) in {1, 2, 4, 8, 16} (the draft model also
 * auto and feedback, tree-draft also auto; the later methods 8, see
 * budget_tested), the generated
 * ids equal plain decoding's exactly, and
 * every method drafted and had drafts accepted (accepted > 0).
 * SD_TEST_QUICK=1 (set for sanitizer runs) uses every 12th prompt.
 */
#include <stdlib.h>
#include <string.h>

#include "specdec.h"
#include "util/check.h"
#include "util/prompts.h"

/* Budgets (index into kmax): the draft model runs 1, 2, 4, 8, 16, auto
 * and feedback, lookup and ngram-cache 1, 4 and 16; the later methods 8
 * (pearl, whose thread oversubscribes the cores, auto only); the trained
 * heads' trees auto (8 under SD_TEST_QUICK), their chains 8 (none under
 * quick). (CI time: the full run is the longest test.)
 * Under SD_TEST_QUICK (sanitizer runs) the other methods run 16 and auto
 * only (pearl auto). */
static bool budget_tested(int drafter, int k, bool quick) {
    if (quick && drafter < 10) return k == 5 || (k == 4 && drafter != 7); /* sanitizer runs: 16 and auto */
    if (drafter == 0) return true;
    if (drafter < 3) return k == 0 || k == 2 || k == 4; /* lookup, ngram-cache: 1, 4, 16 */
    if (drafter == 7) return k == 5;
    if (drafter == 3) return k == 3 || k == 5; /* tree-draft: 8 and auto (the cost rule sizes its trees) */
    if (drafter >= 13) return !quick && k == 3; /* heads chains: 8, not under quick */
    if (drafter >= 10) return quick ? k == 3 : k == 5; /* heads trees: auto (quick: 8) */
    return k == 3; /* the later methods: 8 (auto runs under SD_TEST_QUICK and for the draft model) */
}

int main(void) {
    char path[1024], err[256];
    sd_model *target = NULL, *draft = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &target, err, sizeof err) == SD_OK, "load target: %s", err);
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &draft, err, sizeof err) == SD_OK, "load draft: %s", err);
    if (!target || !draft) return check_report("test_spec_lossless");
    sd_heads *heads = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target-heads.gguf", test_model_dir());
    CHECK(sd_heads_load(path, target, &heads, err, sizeof err) == SD_OK, "load heads: %s", err);
    sd_threadpool *pool = NULL;
    sd_threadpool_new(2, &pool);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(target, &cp, &ctx) == SD_OK, "ctx");
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_sampler *smp = NULL;
    CHECK(sd_sampler_new(&sp, sd_vocab_n_tokens(sd_model_vocab(target)), &smp) == SD_OK, "sampler");

    test_prompt prompts[64];
    int n_prompts = test_load_prompts(sd_model_vocab(target), prompts, 64, 1);
    CHECK(n_prompts == 36, "36 bench prompts, got %d", n_prompts);
    const bool quick = getenv("SD_TEST_QUICK") != NULL;

    /* the drafters under test; unavailable ones are a failure */
    enum { ND = 16 };
    const char *names[ND] = {"draft", "lookup", "ngram-cache", "tree-draft", "tree-lookup", "aded", "self", "pearl",
                             "draft-h0.5", "rasd", "eagle", "hydra", "medusa", "eagle-chain", "hydra-chain",
                             "medusa-chain"};
    sd_drafter *drafters[ND] = {NULL};
    CHECK(sd_drafter_new_model(draft, target, pool, 0, 0.0f, &drafters[0], err, sizeof err) == SD_OK, "draft drafter: %s", err);
    CHECK(sd_drafter_new_lookup(1, 4, &drafters[1]) == SD_OK, "lookup drafter");
    CHECK(sd_drafter_new_ngram_cache(NULL, NULL, &drafters[2], err, sizeof err) == SD_OK, "ngram-cache drafter: %s", err);
    CHECK(sd_drafter_new_model_tree(draft, target, pool, 0, NULL, &drafters[3], err, sizeof err) == SD_OK,
          "tree-draft drafter: %s", err);
    CHECK(sd_drafter_new_lookup_tree(1, 4, &drafters[4]) == SD_OK, "tree-lookup drafter");
    CHECK(sd_drafter_new_aded(NULL, NULL, 0, &drafters[5]) == SD_OK, "aded drafter");
    /* self: DEL over the trained exits (2 and 4), drafting on ctx itself */
    CHECK(sd_drafter_new_self(ctx, 0, 0.0f, &drafters[6]) == SD_OK, "self drafter");
    /* pearl: the draft model on a background thread, drafting ahead */
    CHECK(sd_drafter_new_pearl(draft, target, 0, 0.0f, 16, &drafters[7], err, sizeof err) == SD_OK,
          "pearl drafter: %s", err);
    /* the draft model with SpecDec++'s stopping rule */
    CHECK(sd_drafter_new_model(draft, target, pool, 0, 0.0f, &drafters[8], err, sizeof err) == SD_OK &&
              sd_drafter_model_set_reject_max(drafters[8], 0.5f) == SD_OK,
          "draft drafter with reject_max: %s", err);
    CHECK(sd_drafter_model_set_reject_max(drafters[1], 0.5f) == SD_ERR_INVALID_ARG, "reject_max on lookup");
    CHECK(sd_drafter_new_rasd(draft, target, pool, 0, NULL, 1, 4, NULL, 0, &drafters[9], err, sizeof err) == SD_OK,
          "rasd drafter: %s", err);
    /* trained heads on the target's features: trees (method defaults) and
     * chains (no probability floor) */
    for (int t = 0; t < 2 && heads; t++) {
        sd_heads_params hp[3] = {sd_heads_default_params("eagle"), sd_heads_default_params("hydra"),
                                 sd_heads_default_params("medusa")};
        for (int i = 0; i < 3; i++) {
            hp[i].tree = t == 0;
            hp[i].p_min = 0.0f;
        }
        CHECK(sd_drafter_new_eagle(heads, pool, 0, &hp[0], &drafters[10 + 3 * t]) == SD_OK, "eagle drafter");
        CHECK(sd_drafter_new_hydra(heads, pool, &hp[1], &drafters[11 + 3 * t]) == SD_OK, "hydra drafter");
        CHECK(sd_drafter_new_medusa(heads, pool, &hp[2], &drafters[12 + 3 * t]) == SD_OK, "medusa drafter");
    }
    const int kmax[7] = {1, 2, 4, 8, 16, SD_DRAFT_AUTO, SD_DRAFT_FEEDBACK};
    sd_cost_table *costs = NULL;
    CHECK(sd_cost_table_measure(ctx, &costs) == SD_OK, "cost table");
    int64_t accepted[ND][7] = {{0}}, drafted[ND][7] = {{0}}, gen[ND][7] = {{0}}, steps[ND][7] = {{0}};
    int mismatches = 0;

    int32_t *ref = malloc(1024 * sizeof *ref), *got = malloc(1024 * sizeof *got);
    for (int i = 0; i < n_prompts; i++) {
        if (quick && i % 12 != 0) continue;
        test_prompt *p = &prompts[i];
        sd_gen_params gp = sd_gen_default_params();
        gp.n_predict = p->max_tokens;
        gp.ignore_eos = true;
        gp.costs = costs;
        int n_ref = 0, n_got = 0;
        sd_spec_stats st;
        CHECK(sd_generate(ctx, smp, NULL, p->ids, p->n, &gp, ref, &n_ref, &st) == SD_OK, "plain %s", p->id);
        CHECK(n_ref == p->max_tokens, "%s: %d tokens", p->id, n_ref);
        for (int d = 0; d < ND; d++) {
            if (!drafters[d]) continue;
            for (int k = 0; k < 7; k++) {
                if (!budget_tested(d, k, quick)) continue;
                gp.draft_max = kmax[k];
                sd_status rc = sd_generate(ctx, smp, drafters[d], p->ids, p->n, &gp, got, &n_got, &st);
                bool same = rc == SD_OK && n_got == n_ref && memcmp(got, ref, (size_t)n_ref * sizeof *ref) == 0;
                if (!same) {
                    int at = 0;
                    while (at < n_got && at < n_ref && got[at] == ref[at]) at++;
                    mismatches++;
                    CHECK(same, "%s %s draft-max %d: ids differ from plain decoding at token %d (status %d)",
                          p->id, names[d], kmax[k], at, rc);
                }
                accepted[d][k] += st.accepted;
                drafted[d][k] += st.drafted;
                gen[d][k] += st.n_generated;
                steps[d][k] += st.steps;
            }
        }
    }
    for (int d = 0; d < ND; d++) {
        if (!drafters[d]) continue;
        for (int k = 0; k < 7; k++) {
            if (!budget_tested(d, k, quick)) continue;
            fprintf(stderr, "%-12s draft-max %2d: drafted %6lld accepted %6lld (%.1f%%), %.2f tokens per target forward\n",
                    names[d], kmax[k], (long long)drafted[d][k], (long long)accepted[d][k],
                    drafted[d][k] ? 100.0 * (double)accepted[d][k] / (double)drafted[d][k] : 0.0,
                    steps[d][k] ? (double)(gen[d][k] - 1) / (double)steps[d][k] : 0.0);
            CHECK(accepted[d][k] > 0, "%s draft-max %d: nothing accepted", names[d], kmax[k]);
        }
    }
    fprintf(stderr, "mismatching runs: %d (draft-max -1 = auto, -2 = feedback)\n", mismatches);
    sd_cost_table_free(costs);
    free(ref);
    free(got);
    test_free_prompts(prompts, n_prompts);
    for (int d = 0; d < ND; d++) sd_drafter_free(drafters[d]);
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_heads_free(heads);
    sd_model_free(draft);
    sd_model_free(target);
    return check_report("test_spec_lossless");
}
