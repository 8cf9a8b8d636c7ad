/*
 * sample_collision.c - how likely are two independent samples of n tokens
 * to be the same sequence? tests/test_cli.sh checks that different seeds
 * give different samples; this measures how often that check could fail on
 * a correct engine.
 *
 * Two independent samples coincide with probability c = sum over sequences
 * s of P(s)^2. With U(prefix) = sum_t p(t | prefix)^2 U(prefix t) and
 * U = 1 after n tokens (or at the end of generation: counted as 1, which
 * only raises the bound), c = U(prompt). The recursion expands every
 * prefix whose squared probability exceeds eps and bounds the rest by
 * U <= 1, so the printed value is an upper bound on c (eps only loosens
 * it). p is the exact distribution the sampler draws from
 * (sd_sampler_dist) with the sampler's defaults except --temp, top-k,
 * top-p and min-p as given; the prompt is tokenized as `specdec generate`
 * does (BOS as the vocabulary says).
 *
 * Build and run (from the repository root, after `make`):
 *   cc -O2 -Iinclude bench/sample_collision.c build/libspecdec.a -ljansson -lm -pthread -o bin/sample-collision
 *   bin/sample-collision -p "static int" -n 32 --temp 0.8 --eps 1e-9
 * Measured (main at 918d09f): "static int", 32 tokens, temp 0.8, top-k 40,
 * top-p 0.95, min-p 0.05: c <= 3.4e-4 (38540 forwards); 16 tokens: 2.6e-3.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specdec.h"

typedef struct search {
    sd_ctx *ctx;
    sd_sampler *smp;
    int n_vocab, n_tokens; /* tokens per sample */
    double eps;
    long forwards;
} search;

/* The bound for the continuation after the last decoded token (its logits
 * are the context's output), depth tokens into the sample, w = P(prefix)^2.
 * Returns a negative value on a decode error. */
static double bound(search *s, int depth, double w) {
    float *probs = malloc((size_t)s->n_vocab * sizeof *probs);
    if (!probs) return -1.0;
    sd_sampler_dist(s->smp, sd_ctx_logits(s->ctx, 0), probs);
    const int kv = sd_ctx_kv_min(s->ctx);
    double u = 0.0;
    for (int t = 0; t < s->n_vocab && u >= 0.0; t++) {
        const double p = probs[t];
        if (!(p > 0.0)) continue;
        if (depth + 1 < s->n_tokens && w * p * p > s->eps) {
            const int32_t id = t;
            sd_batch b = sd_batch_simple(&id, 1);
            if (sd_ctx_decode(s->ctx, &b) != SD_OK) {
                u = -1.0;
                break;
            }
            s->forwards++;
            const double child = bound(s, depth + 1, w * p * p);
            u = child < 0.0 ? -1.0 : u + p * p * child;
            sd_ctx_kv_truncate(s->ctx, kv);
        } else {
            u += p * p; /* U(child) <= 1 */
        }
    }
    free(probs);
    return u;
}

int main(int argc, char **argv) {
    const char *model = "../shared/models/kernel-c-target.gguf", *prompt = NULL, *file = NULL;
    sd_sampler_params sp = sd_sampler_default_params();
    search s = {.n_tokens = 32, .eps = 1e-9};
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        if (!strcmp(a, "-m")) model = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "-f")) file = v;
        else if (!strcmp(a, "-n")) s.n_tokens = atoi(v);
        else if (!strcmp(a, "--temp")) sp.temp = (float)atof(v);
        else if (!strcmp(a, "--top-k")) sp.top_k = atoi(v);
        else if (!strcmp(a, "--top-p")) sp.top_p = (float)atof(v);
        else if (!strcmp(a, "--min-p")) sp.min_p = (float)atof(v);
        else if (!strcmp(a, "--eps")) s.eps = atof(v);
        else {
            fprintf(stderr, "unknown option %s\n", a);
            return 1;
        }
    }
    static char text[1 << 16];
    if (file) {
        FILE *f = fopen(file, "rb");
        size_t k = f ? fread(text, 1, sizeof text - 1, f) : 0;
        if (f) fclose(f);
        text[k] = '\0';
        prompt = text;
    }
    if (!prompt || s.n_tokens < 1) {
        fprintf(stderr, "usage: sample-collision [-m MODEL] (-p TEXT | -f FILE) [-n N] [--temp T] [--top-k K] "
                        "[--top-p P] [--min-p P] [--eps E]\n");
        return 1;
    }
    sd_model *m = NULL;
    char err[256];
    sd_model_params mp = sd_model_default_params();
    if (sd_model_load(model, &mp, &m, err, sizeof err) != SD_OK) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }
    const sd_vocab *v = sd_model_vocab(m);
    s.n_vocab = sd_vocab_n_tokens(v);
    static int32_t ids[1 << 14];
    const int n = sd_tokenize(v, prompt, strlen(prompt), ids, 1 << 14, sd_vocab_add_bos(v), false);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n + s.n_tokens + 8;
    int rc = 1;
    if (n > 0 && n <= (1 << 14) && sd_ctx_new(m, &cp, &s.ctx) == SD_OK &&
        sd_sampler_new(&sp, s.n_vocab, &s.smp) == SD_OK) {
        sd_batch b = sd_batch_simple(ids, n);
        const double u = sd_ctx_decode(s.ctx, &b) == SD_OK ? bound(&s, 0, 1.0) : -1.0;
        if (u >= 0.0) {
            printf("%d tokens at temp %g (top-k %d, top-p %g, min-p %g): P(two samples coincide) <= %.3g "
                   "(eps %g, %ld forwards)\n", s.n_tokens, sp.temp, sp.top_k, sp.top_p, sp.min_p, u, s.eps,
                   s.forwards);
            rc = 0;
        } else {
            fprintf(stderr, "decode failed\n");
        }
    } else {
        fprintf(stderr, "cannot tokenize the prompt or create the context\n");
    }
    sd_sampler_free(s.smp);
    sd_ctx_free(s.ctx);
    sd_model_free(m);
    return rc;
}
