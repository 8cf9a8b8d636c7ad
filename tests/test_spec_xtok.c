/*
 * test_spec_xtok.c - cross-tokenizer drafting (`draft-xtok`,
 * sd_drafter_new_xtok) is lossless: greedy generations with it are
 * identical to plain decoding.
 *
 * Default run:
 *  - constructor argument checks;
 *  - tiny-random-qwen2.gguf (GPT-2 byte-level BPE vocabulary, 50257 tokens,
 *    random weights) drafts for the shipped target (SentencePiece, 8192):
 *    every 4th bench prompt (48 tokens each), p_min 0 so that it always
 *    drafts: ids equal plain decoding's and it drafted (its drafts are
 *    nonsense: accepted may be 0);
 *  - the shipped draft through the cross-tokenizer path (same vocabulary,
 *    but every draft goes through text): ids equal, accepted > 0 and at
 *    least 90% of what `draft` accepts on the same prompts;
 *  - histories the target never tokenizes that way: a prompt of
 *    non-canonical ids (one token per character, "é" and "€" as byte-
 *    fallback tokens, a split inside a character, EOS in the middle): both
 *    drafts stay lossless there.
 * SPECDEC_XTOK_DRAFT=FILE (tests/test_spec_xtok.sh writes the shipped draft
 * re-exported with permuted token ids, `specdec permute-vocab`): every 6th
 * bench prompt (two of each task; SD_TEST_QUICK: every 12th) with its full
 * max_tokens,
 * draft-max 4, p_min 0: the permuted draft's ids equal plain decoding's,
 * accepted > 0, and it drafts and accepts exactly as many tokens as the
 * original draft through the same path (its texts and function over texts
 * are the original's).
 */
#include <stdlib.h>
#include <string.h>

#include "speculative/drafter.h"
#include "specdec.h"
#include "util/check.h"
#include "util/prompts.h"

static bool vocab_differs(const sd_model *a, const sd_model *b) {
    return sd_check_same_vocab(a, b, NULL, 0) == SD_ERR_MISMATCH;
}

typedef struct totals {
    int64_t drafted, accepted, steps, gen;
} totals;

/* Generates with drafter d and compares with ref[0..n_ref); adds stats. */
static void run_check(sd_ctx *ctx, sd_sampler *smp, sd_drafter *d, const char *what, const char *pid,
                      const int32_t *ids, int n, const sd_gen_params *gp, const int32_t *ref, int n_ref,
                      totals *t) {
    int32_t got[1024];
    int n_got = 0;
    sd_spec_stats st;
    memset(&st, 0, sizeof st);
    sd_status rc = sd_generate(ctx, smp, d, ids, n, gp, got, &n_got, &st);
    bool same = rc == SD_OK && n_got == n_ref && memcmp(got, ref, (size_t)n_ref * sizeof *ref) == 0;
    if (!same) {
        int at = 0;
        while (at < n_got && at < n_ref && got[at] == ref[at]) at++;
        CHECK(same, "%s %s: ids differ from plain decoding at token %d (status %d, %d vs %d tokens)", pid, what, at,
              rc, n_got, n_ref);
    }
    t->drafted += st.drafted;
    t->accepted += st.accepted;
    t->steps += st.steps;
    t->gen += st.n_generated;
}

static void print_totals(const char *what, const totals *t) {
    fprintf(stderr, "%-34s drafted %6lld accepted %6lld (%.1f%%), %.2f tokens per target forward\n", what,
            (long long)t->drafted, (long long)t->accepted,
            t->drafted ? 100.0 * (double)t->accepted / (double)t->drafted : 0.0,
            t->steps ? (double)(t->gen - 1) / (double)t->steps : 0.0);
}

static sd_model *load(const char *path) {
    char err[256] = "";
    sd_model *m = NULL;
    CHECK(sd_model_load(path, NULL, &m, err, sizeof err) == SD_OK, "load %s: %s", path, err);
    return m;
}

/* Id of the token whose text is exactly text, or -1. */
static int32_t find_text(const sd_vocab *v, const char *text) {
    for (int32_t id = 0; id < sd_vocab_n_tokens(v); id++)
        if (!strcmp(sd_vocab_token_text(v, id), text)) return id;
    return -1;
}

/* A prompt of ids no tokenizer would produce: BOS, one token per character
 * of "int x = caf" (' ' as U+2581), "é" as its two byte tokens, "=" as a
 * byte token, "€" as three byte tokens, EOS, then "\n\tret" tokenized. */
static int odd_prompt(const sd_vocab *v, int32_t *ids, int max) {
    int n = 0;
    ids[n++] = sd_vocab_bos(v);
    for (const char *c = "int x = caf"; *c; c++) {
        char t[4] = {*c, 0};
        int32_t id = find_text(v, *c == ' ' ? "\xe2\x96\x81" : t);
        CHECK(id >= 0, "no token for '%c'", *c);
        if (id >= 0) ids[n++] = id;
    }
    const char *bytes[] = {"<0xC3>", "<0xA9>", "<0x3D>", "<0xE2>", "<0x82>", "<0xAC>"};
    for (int b = 0; b < 6; b++) {
        int32_t id = find_text(v, bytes[b]);
        CHECK(id >= 0, "no byte token %s", bytes[b]);
        if (id >= 0) ids[n++] = id;
    }
    ids[n++] = sd_vocab_eos(v);
    int k = sd_tokenize(v, "\n\tret", 5, ids + n, max - n, false, false);
    return k > 0 && k <= max - n ? n + k : n;
}

int main(void) {
    char path[1024], err[256];
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    sd_model *target = load(path);
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    sd_model *draft = load(path);
    if (!target || !draft) {
        sd_model_free(target);
        sd_model_free(draft);
        return check_report("test_spec_xtok");
    }
    const char *perm_path = getenv("SPECDEC_XTOK_DRAFT");
    const bool quick = getenv("SD_TEST_QUICK") != NULL;
    sd_threadpool *pool = NULL;
    CHECK(sd_threadpool_new(2, &pool) == SD_OK, "pool");
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(target, &cp, &ctx) == SD_OK, "ctx");
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_sampler *smp = NULL;
    const sd_vocab *tv = sd_model_vocab(target);
    CHECK(sd_sampler_new(&sp, sd_vocab_n_tokens(tv), &smp) == SD_OK, "sampler");
    test_prompt prompts[64];
    int n_prompts = test_load_prompts(tv, prompts, 64, 1);
    CHECK(n_prompts == 36, "36 bench prompts, got %d", n_prompts);
    int32_t *ref = malloc(1024 * sizeof *ref);

    if (perm_path) {
        /* ---------------------------------------------- the permuted draft */
        sd_model *perm = load(perm_path);
        sd_drafter *dp = NULL, *d0 = NULL;
        if (perm) {
            CHECK(vocab_differs(perm, target), "the permuted draft's vocabulary equals the target's");
            CHECK(sd_drafter_new_xtok(perm, target, pool, 0, 0.0f, &dp, err, sizeof err) == SD_OK, "xtok: %s", err);
            CHECK(sd_drafter_new_xtok(draft, target, pool, 0, 0.0f, &d0, err, sizeof err) == SD_OK, "xtok: %s", err);
            /* the plain `draft` method refuses the pair, pointing elsewhere */
            sd_drafter *dm = NULL;
            CHECK(sd_drafter_new_model(perm, target, pool, 0, 0.0f, &dm, err, sizeof err) == SD_ERR_MISMATCH && !dm,
                  "draft accepts a permuted vocabulary");
        }
        totals tp = {0}, t0 = {0};
        int stride = quick ? 12 : 6; /* 6: two prompts of each task */
        for (int i = 0; dp && d0 && i < n_prompts; i += stride) {
            test_prompt *p = &prompts[i];
            sd_gen_params gp = sd_gen_default_params();
            gp.n_predict = p->max_tokens < 1024 ? p->max_tokens : 1024;
            gp.ignore_eos = true;
            gp.draft_max = 4;
            int n_ref = 0;
            CHECK(sd_generate(ctx, smp, NULL, p->ids, p->n, &gp, ref, &n_ref, NULL) == SD_OK, "plain %s", p->id);
            totals a = {0}, b = {0};
            run_check(ctx, smp, dp, "draft-xtok (permuted)", p->id, p->ids, p->n, &gp, ref, n_ref, &a);
            run_check(ctx, smp, d0, "draft-xtok (original)", p->id, p->ids, p->n, &gp, ref, n_ref, &b);
            CHECK(a.drafted == b.drafted && a.accepted == b.accepted,
                  "%s: permuted drafted %lld accepted %lld, original %lld %lld", p->id, (long long)a.drafted,
                  (long long)a.accepted, (long long)b.drafted, (long long)b.accepted);
            tp.drafted += a.drafted, tp.accepted += a.accepted, tp.steps += a.steps, tp.gen += a.gen;
            t0.drafted += b.drafted, t0.accepted += b.accepted, t0.steps += b.steps, t0.gen += b.gen;
        }
        print_totals("draft-xtok, permuted draft", &tp);
        print_totals("draft-xtok, original draft", &t0);
        /* (the per-prompt counts equal the original's above; drafted >=
         * accepted always, so a second clause "drafted > accepted / 2" said
         * nothing and is gone) */
        CHECK(tp.accepted > 0, "permuted: drafted %lld accepted %lld", (long long)tp.drafted,
              (long long)tp.accepted);
        sd_drafter_free(dp);
        sd_drafter_free(d0);
        sd_model_free(perm);
    } else {
        /* ---------------------------------------------- constructor checks */
        sd_drafter *d = NULL;
        CHECK(sd_drafter_new_xtok(NULL, target, pool, 0, 0.5f, &d, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
              "NULL draft");
        CHECK(sd_drafter_new_xtok(draft, target, pool, 0, 1.5f, &d, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
              "p_min 1.5");
        CHECK(sd_drafter_new_xtok(draft, target, pool, -1, 0.5f, &d, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
              "n_ctx -1");
        CHECK(sd_drafter_new_xtok(draft, target, pool, 0, 0.5f, NULL, err, sizeof err) == SD_ERR_INVALID_ARG,
              "out NULL");

        snprintf(path, sizeof path, "%s/tiny-random-qwen2.gguf", test_model_dir());
        sd_model *qwen = load(path);
        sd_drafter *dq = NULL, *d0 = NULL;
        if (qwen) {
            CHECK(vocab_differs(qwen, target), "qwen2 vocabulary equals the target's?");
            CHECK(sd_drafter_new_xtok(qwen, target, pool, 0, 0.0f, &dq, err, sizeof err) == SD_OK, "xtok qwen2: %s",
                  err);
            CHECK(!strcmp(sd_drafter_name(dq), "draft-xtok"), "name %s", sd_drafter_name(dq));
        }
        CHECK(sd_drafter_new_xtok(draft, target, pool, 0, 0.0f, &d0, err, sizeof err) == SD_OK, "xtok: %s", err);
        sd_drafter *dm = NULL; /* the same draft model on ids: the acceptance to keep */
        CHECK(sd_drafter_new_model(draft, target, pool, 0, 0.0f, &dm, err, sizeof err) == SD_OK, "draft: %s", err);
        totals tq = {0}, t0 = {0}, tm = {0};
        int stride = quick ? 12 : 4;
        for (int i = 0; dq && d0 && i < n_prompts; i += stride) {
            test_prompt *p = &prompts[i];
            sd_gen_params gp = sd_gen_default_params();
            gp.n_predict = p->max_tokens < 48 ? p->max_tokens : 48;
            gp.ignore_eos = true;
            gp.draft_max = 4;
            int n_ref = 0;
            CHECK(sd_generate(ctx, smp, NULL, p->ids, p->n, &gp, ref, &n_ref, NULL) == SD_OK, "plain %s", p->id);
            run_check(ctx, smp, dq, "draft-xtok (qwen2 BPE)", p->id, p->ids, p->n, &gp, ref, n_ref, &tq);
            run_check(ctx, smp, d0, "draft-xtok (shipped draft)", p->id, p->ids, p->n, &gp, ref, n_ref, &t0);
            if (dm) run_check(ctx, smp, dm, "draft", p->id, p->ids, p->n, &gp, ref, n_ref, &tm);
        }
        const totals t0_prompts = t0;
        /* odd histories */
        int32_t odd[128];
        int n_odd = odd_prompt(tv, odd, 128);
        CHECK(n_odd > 20, "odd prompt: %d ids", n_odd);
        for (int k = 1; dq && d0 && k <= 8; k *= 2) {
            sd_gen_params gp = sd_gen_default_params();
            gp.n_predict = 40;
            gp.ignore_eos = true;
            gp.draft_max = k;
            int n_ref = 0;
            CHECK(sd_generate(ctx, smp, NULL, odd, n_odd, &gp, ref, &n_ref, NULL) == SD_OK, "plain odd");
            run_check(ctx, smp, dq, "draft-xtok (qwen2 BPE)", "odd prompt", odd, n_odd, &gp, ref, n_ref, &tq);
            run_check(ctx, smp, d0, "draft-xtok (shipped draft)", "odd prompt", odd, n_odd, &gp, ref, n_ref, &t0);
        }
        print_totals("draft-xtok, qwen2 draft (random)", &tq);
        print_totals("draft-xtok, shipped draft (all)", &t0);
        print_totals("draft-xtok, shipped draft (prompts)", &t0_prompts);
        CHECK(tq.drafted > 0, "the qwen2 draft never drafted");
        print_totals("draft (same draft on ids, prompts)", &tm);
        CHECK(t0.accepted > 0, "shipped draft via text: nothing accepted");
        /* through text the draft keeps (nearly) what it accepts on ids:
         * measured the same, 253 of 650 drafted both ways on the 9 prompts
         * (48 tokens); it may lose where the target's continuation is not
         * the canonical tokenization of its text (draft-xtok drafts from
         * the re-tokenized text). The 10% allowance is for that on other
         * machines' greedy paths; no loss was measured here. */
        CHECK(t0_prompts.accepted >= tm.accepted * 9 / 10, "via text %lld accepted, on ids %lld",
              (long long)t0_prompts.accepted, (long long)tm.accepted);
        sd_drafter_free(dm);
        sd_drafter_free(dq);
        sd_drafter_free(d0);
        sd_model_free(qwen);
    }

    free(ref);
    test_free_prompts(prompts, n_prompts);
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_model_free(draft);
    sd_model_free(target);
    return check_report("test_spec_xtok");
}
