/*
 * test_loader.c - the model loader misreads nothing (issue: no silent
 * misreads). Copies of tiny-random-llama3.gguf, each changed in one way,
 * written with the GGUF writer:
 *  - unchanged: loads (the control);
 *  - an extra tensor (a bias llama does not use, a tensor of another
 *    architecture): refused, naming the tensor;
 *  - a required tensor missing: refused, naming it;
 *  - rope.scaling.type yarn (and an unknown type): refused, naming the type;
 *    linear with factor 2: loads and its logits differ from the original's
 *    (positions scaled), while factor 1 gives the original's exactly;
 *  - an architecture key the loader does not know (attn_logit_softcapping,
 *    attention.sliding_window): refused, naming the key;
 *  - attention.key_length other than n_embd / n_head, expert_count 8, a
 *    rope.scaling.factor without a type: refused;
 *  - rope_freqs.weight with a zero, or of the wrong length: refused;
 *    rope_freqs all ones: the logits of a file without rope_freqs.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "model/gguf.h"
#include "model/gguf_write.h"
#include "specdec.h"
#include "util/check.h"

typedef struct change {
    const char *what;
    const char *drop_tensor;  /* leave this tensor out                   */
    const char *add_tensor;   /* add a 64-float F32 tensor of this name  */
    const char *key, *sval;   /* set a string key                         */
    const char *fkey;         /* set an f32 key to fval                   */
    float fval;
    const char *ukey;         /* set a u32 key to uval                    */
    uint32_t uval;
    int freqs;                /* rope_freqs: 0 as is, 1 a zero, 2 all ones, 3 wrong length */
    const char *expect;       /* NULL: loads; else a substring of the error */
} change;

static char src_path[1024];

/* Writes the changed copy to path; 0 on success. */
static int write_copy(const change *c, const char *path) {
    char err[256];
    sd_gguf *g = NULL;
    if (sd_gguf_open(src_path, &g, err, sizeof err) != SD_OK) return -1;
    sd_gguf_writer *w = NULL;
    int rc = -1;
    if (sd_gguf_writer_new(&w) != SD_OK || sd_gguf_writer_copy_kvs(w, g) != SD_OK) goto done;
    if (c->key && sd_gguf_writer_set_str(w, c->key, c->sval, strlen(c->sval)) != SD_OK) goto done;
    if (c->fkey && sd_gguf_writer_set_f32(w, c->fkey, c->fval) != SD_OK) goto done;
    if (c->ukey && sd_gguf_writer_set_u32(w, c->ukey, c->uval) != SD_OK) goto done;
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        if (c->drop_tensor && !strcmp(t->name, c->drop_tensor)) continue;
        if (c->freqs && !strcmp(t->name, "rope_freqs.weight")) {
            int64_t n = t->ne[0] + (c->freqs == 3 ? 1 : 0);
            float *f = malloc((size_t)n * sizeof *f);
            if (!f) goto done;
            for (int64_t k = 0; k < n; k++) f[k] = c->freqs == 2 ? 1.0f : k < t->ne[0] ? ((const float *)t->data)[k] : 1.0f;
            if (c->freqs == 1) f[3] = 0.0f;
            if (sd_gguf_writer_add_tensor(w, t->name, SD_TYPE_F32, 1, &n, f, (uint64_t)n * 4, true) != SD_OK) goto done;
            continue;
        }
        if (sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, false) != SD_OK)
            goto done;
    }
    if (c->add_tensor) {
        int64_t n = 64;
        float *f = calloc((size_t)n, sizeof *f);
        if (!f || sd_gguf_writer_add_tensor(w, c->add_tensor, SD_TYPE_F32, 1, &n, f, 256, true) != SD_OK) goto done;
    }
    rc = sd_gguf_writer_write(w, path, err, sizeof err) == SD_OK ? 0 : -1;
done:
    sd_gguf_writer_free(w);
    sd_gguf_close(g);
    return rc;
}

/* Greedy logits of a fixed 40-token prompt (positions far enough for the
 * rope changes to show); NULL if the model does not load. */
static float *logits_of(const char *path, int *n_vocab) {
    sd_model *m = NULL;
    sd_ctx *ctx = NULL;
    char err[256];
    sd_model_params mp = sd_model_default_params();
    if (sd_model_load(path, &mp, &m, err, sizeof err) != SD_OK) return NULL;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = 64;
    float *out = NULL;
    if (sd_ctx_new(m, &cp, &ctx) == SD_OK) {
        int32_t ids[40];
        for (int i = 0; i < 40; i++) ids[i] = 1000 + 37 * i;
        sd_batch b = {.n_tokens = 40, .token = ids}; /* causal, the last row's logits */
        if (sd_ctx_decode(ctx, &b) == SD_OK) {
            sd_model_info info;
            sd_model_get_info(m, &info);
            *n_vocab = info.n_vocab;
            out = malloc((size_t)info.n_vocab * sizeof *out);
            if (out) memcpy(out, sd_ctx_logits(ctx, 0), (size_t)info.n_vocab * sizeof *out);
        }
    }
    sd_ctx_free(ctx);
    sd_model_free(m);
    return out;
}

static double max_diff(const float *a, const float *b, int n) {
    double d = 0;
    for (int i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

int main(void) {
    snprintf(src_path, sizeof src_path, "%s/tiny-random-llama3.gguf", test_model_dir());
    if (access(src_path, R_OK) != 0) {
        CHECK(0, "%s missing", src_path);
        return check_report("test_loader");
    }
    const change cases[] = {
        {.what = "unchanged copy"},
        {.what = "extra bias", .add_tensor = "blk.0.attn_output.bias", .expect = "blk.0.attn_output.bias"},
        {.what = "extra tensor of another architecture", .add_tensor = "blk.1.attn_q_norm.weight",
         .expect = "blk.1.attn_q_norm.weight"},
        {.what = "missing tensor", .drop_tensor = "blk.1.ffn_up.weight", .expect = "missing tensor blk.1.ffn_up.weight"},
        {.what = "rope scaling yarn", .key = "llama.rope.scaling.type", .sval = "yarn", .expect = "'yarn'"},
        {.what = "rope scaling unknown", .key = "llama.rope.scaling.type", .sval = "longrope", .expect = "'longrope'"},
        {.what = "softcapping key", .fkey = "llama.attn_logit_softcapping", .fval = 50.0f,
         .expect = "llama.attn_logit_softcapping"},
        {.what = "sliding window key", .ukey = "llama.attention.sliding_window", .uval = 512,
         .expect = "llama.attention.sliding_window"},
        {.what = "key_length", .ukey = "llama.attention.key_length", .uval = 64, .expect = "key_length"},
        {.what = "experts", .ukey = "llama.expert_count", .uval = 8, .expect = "mixture-of-experts"},
        {.what = "factor without type", .fkey = "llama.rope.scaling.factor", .fval = 4.0f,
         .expect = "without a scaling type"},
        {.what = "rope_freqs with a zero", .freqs = 1, .expect = "rope_freqs.weight[3]"},
        {.what = "rope_freqs of the wrong length", .freqs = 3, .expect = "rope_freqs.weight"},
    };
    char path[256];
    snprintf(path, sizeof path, "/tmp/sd_test_loader_%d.gguf", (int)getpid());
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        const change *c = &cases[i];
        if (write_copy(c, path) != 0) {
            CHECK(0, "%s: cannot write the copy", c->what);
            continue;
        }
        sd_model *m = NULL;
        char err[512] = "";
        sd_model_params mp = sd_model_default_params();
        sd_status st = sd_model_load(path, &mp, &m, err, sizeof err);
        if (!c->expect) CHECK(st == SD_OK && m, "%s: loads (%s)", c->what, err);
        else
            CHECK(st != SD_OK && !m && strstr(err, c->expect), "%s: refused naming '%s' (status %d: %s)", c->what,
                  c->expect, st, err);
        if (st != SD_OK) printf("%-38s -> %s\n", c->what, err);
        sd_model_free(m);
    }
    /* arithmetic: linear scaling, rope_freqs all ones against none */
    int nv = 0, nv2 = 0;
    float *base = logits_of(src_path, &nv);
    change lin2 = {.key = "llama.rope.scaling.type", .sval = "linear", .fkey = "llama.rope.scaling.factor", .fval = 2};
    change lin1 = {.key = "llama.rope.scaling.type", .sval = "linear", .fkey = "llama.rope.scaling.factor", .fval = 1};
    change ones = {.freqs = 2};
    change none = {.drop_tensor = "rope_freqs.weight"};
    float *l2 = !write_copy(&lin2, path) ? logits_of(path, &nv2) : NULL;
    float *l1 = !write_copy(&lin1, path) ? logits_of(path, &nv2) : NULL;
    float *o1 = !write_copy(&ones, path) ? logits_of(path, &nv2) : NULL;
    float *nf = !write_copy(&none, path) ? logits_of(path, &nv2) : NULL;
    CHECK(base && l2 && l1 && o1 && nf && nv == nv2, "logits of the copies");
    if (base && l2 && l1 && o1 && nf) {
        double d2 = max_diff(base, l2, nv), d1 = max_diff(base, l1, nv), dn = max_diff(o1, nf, nv),
               df = max_diff(base, nf, nv);
        printf("max |logit diff|: linear x2 %.4g, linear x1 %.4g, rope_freqs ones vs none %.4g, rope_freqs vs none %.4g\n",
               d2, d1, dn, df);
        CHECK(d2 > 1e-3, "linear factor 2 changes the logits (%g)", d2);
        CHECK(d1 == 0.0, "linear factor 1 leaves them exactly (%g)", d1);
        CHECK(dn == 0.0, "rope_freqs of ones equals no rope_freqs exactly (%g)", dn);
        CHECK(df > 1e-3, "the file's rope_freqs change the logits (%g)", df);
    }
    free(base), free(l2), free(l1), free(o1), free(nf);
    unlink(path);
    return check_report("test_loader");
}
