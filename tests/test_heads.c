/*
 * test_heads.c - trained draft heads (Medusa, Hydra, EAGLE) beside the
 * shipped target:
 *  (a) numerical agreement with ../shared/reference/kernel-c-target-heads.
 *      code-btrfs.jsonl (an independent float32 implementation): for each
 *      code prompt, next_token, medusa_top1, hydra_chain and eagle_chain
 *      equal the reference for >= 22 of 24 prompts each (SD_TEST_QUICK=1:
 *      every 4th prompt, at most one miss each), and every miss is a near
 *      tie (K_NEAR_TIE); the drafters' first greedy chain after the prompt
 *      equals the probe's;
 *  (b) head(f) of a target feature reproduces the target's logits bit for
 *      bit (the heads share output_norm + output with it);
 *  (c) the loader refuses mismatched and corrupt heads files (rewritten
 *      copies of the shipped file) with the right status and a message;
 *  (d) the features hook hands a drafter exactly the hidden states (bit for
 *      bit) that one direct decode of the same tokens gives, for chains and
 *      trees, prompt included.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compute/ctx.h"
#include "model/gguf.h"
#include "model/heads.h"
#include "specdec.h"
#include "speculative/drafter.h"
#include "util/check.h"

typedef struct ref_line {
    char id[64];
    int32_t *ids;
    int n;
    int32_t next, medusa[4], hydra[4], eagle[4];
} ref_line;

static void ids4(json_t *a, int32_t *out) {
    for (int i = 0; i < 4; i++) out[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
}

static int load_refs(const sd_vocab *v, ref_line *out, int max) {
    char path[1024];
    snprintf(path, sizeof path, "%s/bench/code-btrfs.jsonl", test_shared_dir());
    FILE *fb = fopen(path, "r");
    snprintf(path, sizeof path, "%s/reference/kernel-c-target-heads.code-btrfs.jsonl", test_shared_dir());
    FILE *fr = fopen(path, "r");
    CHECK(fb && fr, "open bench / reference files");
    if (!fb || !fr) {
        if (fb) fclose(fb);
        if (fr) fclose(fr);
        return 0;
    }
    json_error_t jerr;
    json_t *jb, *jr;
    int n = 0;
    while (n < max && (jb = json_loadf(fb, JSON_DISABLE_EOF_CHECK, &jerr)) != NULL) {
        if (!(jr = json_loadf(fr, JSON_DISABLE_EOF_CHECK, &jerr))) {
            json_decref(jb);
            break;
        }
        ref_line *r = &out[n++];
        snprintf(r->id, sizeof r->id, "%s", json_string_value(json_object_get(jb, "id")));
        CHECK(strcmp(r->id, json_string_value(json_object_get(jr, "id"))) == 0, "line order %s", r->id);
        const char *text = json_string_value(json_object_get(jb, "prompt"));
        r->ids = malloc(4096 * sizeof *r->ids);
        r->n = sd_tokenize(v, text, strlen(text), r->ids, 4096, true, false);
        r->next = (int32_t)json_integer_value(json_object_get(jr, "next_token"));
        ids4(json_object_get(jr, "medusa_top1"), r->medusa);
        ids4(json_object_get(jr, "hydra_chain"), r->hydra);
        ids4(json_object_get(jr, "eagle_chain"), r->eagle);
        json_decref(jb);
        json_decref(jr);
    }
    fclose(fb);
    fclose(fr);
    return n;
}

static bool same4(const int32_t *a, const int32_t *b) { return memcmp(a, b, 4 * sizeof *a) == 0; }

/* ------------------------------------------------------------ (a), (b) */

/* A disagreement with the reference may only be a near tie: at the first
 * token where this engine's argmax a differs from the reference's token b,
 * logit[a] - logit[b] (this engine's logits, given the same tokens before)
 * must be below K_NEAR_TIE. The reference is float32 numpy over the same
 * weights, so the two differ by rounding only. Measured (AVX2, every
 * prompt agrees): the smallest top-2 margins along the 24 probes are next
 * 0.73, medusa 0.0019 (code 18, head 3 or 4), hydra 0.026, eagle 0.020 in
 * logits; the rule lets such a tie flip and no more: 0.1, the bound the
 * quantized files' comparison uses for the same purpose (issue 16). */
#define K_NEAR_TIE 0.1

/* gap[k] for k = next, medusa, hydra, eagle: logit[a] - logit[b] at the
 * first position where this engine's token a differs from the reference's
 * b (computed as sd_heads_run_probe computes its tokens, src/model/heads.c), or
 * 0 where all agree; a chain after a different next token is judged by
 * next's gap alone. Returns false on an error. */
static bool probe_gaps(const sd_heads *h, sd_ctx *ctx, const ref_line *r, double gap[4]) {
    const int E = h->n_embd, V = h->n_vocab, n = r->n;
    sd_threadpool *pool = ctx->pool;
    float *feat = malloc((size_t)n * (size_t)E * sizeof(float)), *l = malloc((size_t)V * sizeof(float));
    float *z = malloc((size_t)E * sizeof(float)), *in = malloc((size_t)(SD_HEADS_MAX + 2) * (size_t)E * sizeof(float));
    float *g = malloc((size_t)n * (size_t)E * sizeof(float)), *fh = malloc((size_t)E * sizeof(float));
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    uint8_t *rows = malloc((size_t)n);
    sd_ctx *ectx = NULL;
    bool ok = feat && l && z && in && g && fh && tok && rows;
    for (int k = 0; k < 4; k++) gap[k] = 0.0;
    /* features of every prompt row, the target's logits after the last */
    sd_ctx_kv_clear(ctx);
    if (ok && n > 1) {
        memset(rows, 1, (size_t)n);
        sd_batch b = sd_batch_simple(r->ids, n - 1);
        b.output = rows;
        b.out_flags = SD_OUTPUT_HIDDEN;
        ok = sd_ctx_decode(ctx, &b) == SD_OK;
        for (int i = 0; ok && i < n - 1; i++)
            memcpy(feat + (size_t)i * E, sd_ctx_hidden(ctx, i), (size_t)E * sizeof(float));
    }
    sd_batch b = sd_batch_simple(r->ids + n - 1, 1);
    b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    ok = ok && sd_ctx_decode(ctx, &b) == SD_OK;
    if (!ok) goto done;
    memcpy(feat + (size_t)(n - 1) * E, sd_ctx_hidden(ctx, 0), (size_t)E * sizeof(float));
    const float *tl = sd_ctx_logits(ctx, 0);
    const int32_t next = sd_argmax(tl, V);
    gap[0] = tl[next] - tl[r->next];
    const float *f = feat + (size_t)(n - 1) * E;
    for (int k = 1; ok && k <= 4 && k <= h->n_medusa; k++) { /* Medusa head k */
        ok = sd_heads_medusa(h, pool, k, f, 1, z) == SD_OK && sd_heads_logits(h, pool, false, z, 1, l) == SD_OK;
        const int32_t a = ok ? sd_argmax(l, V) : -1;
        if (ok && a != r->medusa[k - 1]) {
            gap[1] = l[a] - l[r->medusa[k - 1]];
            break;
        }
    }
    if (next != r->next) goto done; /* the chains start elsewhere */
    memcpy(in, f, (size_t)E * sizeof(float)); /* Hydra: [f; E(next); E(d1); ..] */
    sd_heads_embed(h, next, in + E);
    for (int k = 1; ok && k <= 4 && k <= h->n_hydra; k++) {
        ok = sd_heads_hydra(h, pool, k, in, 1, z) == SD_OK && sd_heads_logits(h, pool, false, z, 1, l) == SD_OK;
        const int32_t a = ok ? sd_argmax(l, V) : -1;
        if (ok && a != r->hydra[k - 1]) {
            gap[2] = l[a] - l[r->hydra[k - 1]];
            break;
        }
        if (ok) sd_heads_embed(h, a, in + (size_t)(k + 1) * E);
    }
    /* EAGLE: its block over g = fc([f_i; token i + 1]), then its chain */
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n + 8;
    cp.pool = pool;
    ok = ok && h->has_eagle && sd_ctx_new(&h->eagle, &cp, &ectx) == SD_OK;
    for (int i = 0; ok && i < n; i++) tok[i] = i + 1 < n ? r->ids[i + 1] : next;
    ok = ok && sd_heads_eagle_fc(h, pool, false, feat, tok, n, g) == SD_OK;
    b = sd_batch_simple(NULL, n);
    b.embd = g;
    b.out_flags = SD_OUTPUT_HIDDEN;
    ok = ok && sd_ctx_decode(ectx, &b) == SD_OK;
    for (int c = 0; ok && c < 4; c++) {
        memcpy(fh, sd_ctx_hidden(ectx, 0), (size_t)E * sizeof(float));
        ok = sd_heads_logits(h, pool, false, fh, 1, l) == SD_OK;
        const int32_t a = ok ? sd_argmax(l, V) : -1;
        if (ok && a != r->eagle[c]) {
            gap[3] = l[a] - l[r->eagle[c]];
            break;
        }
        ok = ok && sd_heads_eagle_fc(h, pool, false, fh, &a, 1, g) == SD_OK;
        b = sd_batch_simple(NULL, 1);
        b.embd = g;
        b.out_flags = SD_OUTPUT_HIDDEN;
        ok = ok && sd_ctx_decode(ectx, &b) == SD_OK;
    }
done:
    sd_ctx_free(ectx);
    free(feat), free(l), free(z), free(in), free(g), free(fh), free(tok), free(rows);
    return ok;
}

static void test_agreement(const sd_heads *h, sd_ctx *ctx, ref_line *refs, int n_refs, bool quick) {
    int n = 0, ok_next = 0, ok_medusa = 0, ok_hydra = 0, ok_eagle = 0, far = 0;
    for (int i = 0; i < n_refs; i++) {
        if (quick && i % 4 != 0) continue;
        const ref_line *r = &refs[i];
        sd_heads_probe p;
        sd_status st = sd_heads_run_probe(h, ctx, r->ids, r->n, 4, &p);
        CHECK(st == SD_OK, "probe %s: %s", r->id, sd_status_str(st));
        if (st != SD_OK) continue;
        CHECK(p.n_medusa == 4 && p.n_hydra == 4 && p.n_eagle == 4, "probe counts");
        n++;
        ok_next += p.next_token == r->next;
        ok_medusa += same4(p.medusa_top1, r->medusa);
        ok_hydra += same4(p.hydra_chain, r->hydra);
        ok_eagle += same4(p.eagle_chain, r->eagle);
        if (!same4(p.medusa_top1, r->medusa) || !same4(p.hydra_chain, r->hydra) || !same4(p.eagle_chain, r->eagle) ||
            p.next_token != r->next) {
            double gap[4];
            CHECK(probe_gaps(h, ctx, r, gap), "%s: probe gaps", r->id);
            const bool tie = gap[0] < K_NEAR_TIE && gap[1] < K_NEAR_TIE && gap[2] < K_NEAR_TIE && gap[3] < K_NEAR_TIE;
            far += !tie;
            fprintf(stderr, "  %s: logit gaps at the first difference: next %.4f medusa %.4f hydra %.4f eagle %.4f%s\n",
                    r->id, gap[0], gap[1], gap[2], gap[3], tie ? " (near ties)" : "");
            fprintf(stderr, "  %s: next %d/%d medusa [%d %d %d %d]/[%d %d %d %d] hydra [%d %d %d %d]/[%d %d %d %d] "
                            "eagle [%d %d %d %d]/[%d %d %d %d]\n",
                    r->id, p.next_token, r->next, p.medusa_top1[0], p.medusa_top1[1], p.medusa_top1[2],
                    p.medusa_top1[3], r->medusa[0], r->medusa[1], r->medusa[2], r->medusa[3], p.hydra_chain[0],
                    p.hydra_chain[1], p.hydra_chain[2], p.hydra_chain[3], r->hydra[0], r->hydra[1], r->hydra[2],
                    r->hydra[3], p.eagle_chain[0], p.eagle_chain[1], p.eagle_chain[2], p.eagle_chain[3], r->eagle[0],
                    r->eagle[1], r->eagle[2], r->eagle[3]);
        }
    }
    fprintf(stderr, "agreement over %d prompts: next_token %d, medusa_top1 %d, hydra_chain %d, eagle_chain %d\n", n,
            ok_next, ok_medusa, ok_hydra, ok_eagle);
    const int need = quick ? n - 1 : 22;
    CHECK(n == (quick ? (n_refs + 3) / 4 : n_refs), "prompts probed: %d", n);
    CHECK(ok_next >= need, "next_token agrees on %d of %d", ok_next, n);
    CHECK(ok_medusa >= need, "medusa_top1 agrees on %d of %d", ok_medusa, n);
    CHECK(ok_hydra >= need, "hydra_chain agrees on %d of %d", ok_hydra, n);
    CHECK(ok_eagle >= need, "eagle_chain agrees on %d of %d", ok_eagle, n);
    CHECK(far == 0, "%d prompts differ from the reference where this engine's logit gap is %g or more", far,
          K_NEAR_TIE);
}

/* head(f) of the target's own feature reproduces its logits bit for bit. */
static void test_head_is_target(const sd_heads *h, sd_ctx *ctx, sd_threadpool *pool, const ref_line *r) {
    const int V = h->n_vocab;
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(r->ids, r->n);
    b.out_flags = SD_OUTPUT_LOGITS | SD_OUTPUT_HIDDEN;
    CHECK(sd_ctx_decode(ctx, &b) == SD_OK, "decode");
    float *l = malloc((size_t)V * sizeof(float));
    CHECK(sd_heads_logits(h, pool, false, sd_ctx_hidden(ctx, 0), 1, l) == SD_OK, "heads logits");
    CHECK(memcmp(l, sd_ctx_logits(ctx, 0), (size_t)V * sizeof(float)) == 0, "head(f) != target logits");
    free(l);
}

/* ------------------------------------------------------------ recorder */

/* A drafter wrapping another: records the first draft and every feature
 * row the decode loop hands over (by position). */
typedef struct rec_state {
    sd_drafter *inner;
    int E;
    float *feat;          /* (cap, E) by position */
    int cap, n_feat;
    bool feat_ok;         /* rows arrived contiguously, none twice */
    int32_t first[SD_MAX_DRAFT];
    int n_first;          /* -1: no draft yet */
} rec_state;

static sd_status rec_begin(void *self, const int32_t *ids, int n) {
    rec_state *r = self;
    return r->inner->ops->begin ? r->inner->ops->begin(r->inner->self, ids, n) : SD_OK;
}

static sd_status rec_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env, sd_draft *out) {
    rec_state *r = self;
    sd_status st = r->inner->ops->draft(r->inner->self, ids, n, max, env, out);
    if (st == SD_OK && r->n_first < 0) {
        r->n_first = out->n;
        memcpy(r->first, out->tok, (size_t)out->n * sizeof *out->tok);
    }
    return st;
}

static void rec_accept(void *self, const int32_t *ids, int n, int n_acc) {
    rec_state *r = self;
    if (r->inner->ops->accept) r->inner->ops->accept(r->inner->self, ids, n, n_acc);
}

static void rec_end(void *self) {
    rec_state *r = self;
    if (r->inner->ops->end) r->inner->ops->end(r->inner->self);
}

static void rec_free(void *self) { (void)self; /* the test owns the state */ }

static void rec_features(void *self, const float *h, int n_rows, int pos0) {
    rec_state *r = self;
    if (pos0 == 0) r->n_feat = 0, r->feat_ok = true;
    if (pos0 != r->n_feat || pos0 + n_rows > r->cap) r->feat_ok = false;
    else {
        memcpy(r->feat + (size_t)pos0 * r->E, h, (size_t)n_rows * r->E * sizeof(float));
        r->n_feat = pos0 + n_rows;
    }
    if (r->inner->ops->features) r->inner->ops->features(r->inner->self, h, n_rows, pos0);
}

static const sd_drafter_ops rec_ops = {rec_begin, rec_draft, rec_accept, rec_end, rec_free, rec_features};

/* The drafters' first greedy chain after the prompt is the probe's. */
static void test_first_chain(const sd_heads *h, sd_ctx *ctx, sd_threadpool *pool, const ref_line *r) {
    sd_heads_probe p;
    CHECK(sd_heads_run_probe(h, ctx, r->ids, r->n, 4, &p) == SD_OK, "probe");
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_sampler *smp = NULL;
    sd_sampler_new(&sp, h->n_vocab, &smp);
    const char *names[3] = {"medusa", "hydra", "eagle"};
    const int32_t *want[3] = {p.medusa_top1, p.hydra_chain, p.eagle_chain};
    for (int m = 0; m < 3; m++) {
        sd_heads_params hp = sd_heads_default_params(names[m]);
        hp.tree = false;
        hp.p_min = 0.0f;
        hp.q8 = false; /* the F16 heads, as the probe */
        sd_drafter *inner = NULL;
        sd_status st = m == 0 ? sd_drafter_new_medusa(h, pool, &hp, &inner)
                       : m == 1 ? sd_drafter_new_hydra(h, pool, &hp, &inner)
                                : sd_drafter_new_eagle(h, pool, 0, &hp, &inner);
        CHECK(st == SD_OK, "%s drafter", names[m]);
        if (st != SD_OK) continue;
        rec_state rs = {.inner = inner, .E = h->n_embd, .n_first = -1};
        sd_drafter *rec = sd_drafter_make("rec", &rec_ops, &rs);
        sd_gen_params gp = sd_gen_default_params();
        gp.n_predict = 8; /* the loop drafts at most n_predict - 2 after the first token */
        gp.draft_max = 4;
        gp.ignore_eos = true;
        int32_t out[16];
        int n_out = 0;
        CHECK(sd_generate(ctx, smp, rec, r->ids, r->n, &gp, out, &n_out, NULL) == SD_OK, "generate");
        CHECK(out[0] == p.next_token, "%s: first token", names[m]);
        CHECK(rs.n_first == 4 && memcmp(rs.first, want[m], 4 * sizeof(int32_t)) == 0,
              "%s: first chain [%d %d %d %d] (%d), probe [%d %d %d %d]", names[m], rs.first[0], rs.first[1],
              rs.first[2], rs.first[3], rs.n_first, want[m][0], want[m][1], want[m][2], want[m][3]);
        sd_drafter_free(rec);
        sd_drafter_free(inner);
    }
    sd_sampler_free(smp);
}

/* (d) every accepted position's feature, bit for bit that of one direct
 * decode of prompt + output (kernels are batch-invariant). */
static void test_features(const sd_heads *h, sd_ctx *ctx, sd_threadpool *pool, const ref_line *r, const char *method,
                          bool tree, float temp) {
    const int E = h->n_embd, n_gen = 48;
    sd_heads_params hp = sd_heads_default_params(method);
    hp.tree = tree;
    sd_drafter *inner = NULL;
    sd_status st = !strcmp(method, "eagle") ? sd_drafter_new_eagle(h, pool, 0, &hp, &inner)
                   : !strcmp(method, "hydra") ? sd_drafter_new_hydra(h, pool, &hp, &inner)
                                              : sd_drafter_new_medusa(h, pool, &hp, &inner);
    CHECK(st == SD_OK, "%s drafter", method);
    if (st != SD_OK) return;
    rec_state rs = {.inner = inner, .E = E, .n_first = -1, .cap = r->n + n_gen + 8};
    rs.feat = malloc((size_t)rs.cap * E * sizeof(float));
    sd_drafter *rec = sd_drafter_make("rec", &rec_ops, &rs);
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = temp;
    sp.seed = 7;
    sd_sampler *smp = NULL;
    sd_sampler_new(&sp, h->n_vocab, &smp);
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = n_gen;
    gp.draft_max = 8;
    gp.ignore_eos = true;
    int32_t out[64];
    int n_out = 0;
    sd_spec_stats stats;
    CHECK(sd_generate(ctx, smp, rec, r->ids, r->n, &gp, out, &n_out, &stats) == SD_OK, "generate");
    CHECK(stats.accepted > 0, "%s %s temp %.1f: nothing accepted", method, tree ? "tree" : "chain", (double)temp);
    /* positions 0 .. n + n_out - 2 are accepted and seen by the target */
    const int n_all = r->n + n_out;
    CHECK(rs.feat_ok && rs.n_feat == n_all - 1, "%s: features arrived for %d of %d positions (ok %d)", method,
          rs.n_feat, n_all - 1, rs.feat_ok);
    int32_t *all = malloc((size_t)n_all * sizeof *all);
    memcpy(all, r->ids, (size_t)r->n * sizeof *all);
    memcpy(all + r->n, out, (size_t)n_out * sizeof *all);
    uint8_t *rows = malloc((size_t)n_all);
    memset(rows, 1, (size_t)n_all);
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(all, n_all - 1);
    b.output = rows;
    b.out_flags = SD_OUTPUT_HIDDEN;
    CHECK(sd_ctx_decode(ctx, &b) == SD_OK, "direct decode");
    int bad = -1;
    for (int i = 0; i < rs.n_feat && i < n_all - 1 && bad < 0; i++)
        if (memcmp(rs.feat + (size_t)i * E, sd_ctx_hidden(ctx, i), (size_t)E * sizeof(float)) != 0) bad = i;
    CHECK(bad < 0, "%s %s temp %.1f: feature of position %d differs from a direct decode", method,
          tree ? "tree" : "chain", (double)temp, bad);
    free(all);
    free(rows);
    free(rs.feat);
    sd_drafter_free(rec);
    sd_drafter_free(inner);
    sd_sampler_free(smp);
}

/* ------------------------------------------------------------ (c) loader */

typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *src, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s, size_t n) {
    put_u64(b, n);
    put(b, s, n);
}
static void pad(buf *b, size_t align) {
    static const uint8_t z[64] = {0};
    while (b->n % align) put(b, z, 1);
}

/* A modification of the shipped heads file. */
typedef struct mod {
    const char *key;          /* replace this key's value ...               */
    const char *str;          /* ... by a string, or                        */
    int64_t u32;              /* ... by a uint32 (when str is NULL)         */
    const char *tensor;       /* this tensor ...                            */
    bool drop;                /* ... is left out, or                        */
    int64_t ne1;              /* ... gets ne[1] = ne1 (> 0), or             */
    bool nan;                 /* ... gets a NaN first element (F32), or     */
    int type;                 /* ... is stored as this type (> 0, zeros)    */
} mod;

/* The shipped file rewritten with one modification (GGUF v3, alignment 32). */
static void rewrite(const sd_gguf *g, const mod *m, buf *b) {
    b->n = 0;
    int64_t nt = sd_gguf_n_tensors(g), nkv = sd_gguf_n_kv(g);
    int64_t keep = 0;
    for (int64_t i = 0; i < nt; i++) keep += !(m->drop && !strcmp(sd_gguf_tensor_at(g, i)->name, m->tensor));
    put(b, "GGUF", 4);
    put_u32(b, 3);
    put_u64(b, (uint64_t)keep);
    put_u64(b, (uint64_t)nkv);
    for (int64_t i = 0; i < nkv; i++) {
        const char *key = sd_gguf_key(g, i);
        put_str(b, key, strlen(key));
        sd_gguf_vtype t = sd_gguf_kv_type(g, i);
        bool ours = m->key && !strcmp(key, m->key);
        if (ours) t = m->str ? SD_GGUF_STRING : SD_GGUF_UINT32;
        put_u32(b, (uint32_t)t);
        if (t == SD_GGUF_STRING) {
            sd_gguf_str s;
            if (ours) s = (sd_gguf_str){.ptr = m->str, .len = strlen(m->str)};
            else sd_gguf_get_str(g, key, &s, NULL, 0);
            put_str(b, s.ptr, (size_t)s.len);
        } else if (t == SD_GGUF_UINT32) {
            uint32_t v = 0;
            if (ours) v = (uint32_t)m->u32;
            else sd_gguf_get_u32(g, key, &v, NULL, 0);
            put_u32(b, v);
        } else if (t == SD_GGUF_FLOAT32) {
            float f = 0;
            sd_gguf_get_f32(g, key, &f, NULL, 0);
            put(b, &f, 4);
        }
    }
    /* tensor infos, then the data (each at a multiple of 32) */
    size_t *size = calloc((size_t)nt, sizeof *size);
    uint64_t off = 0;
    for (int64_t i = 0; i < nt; i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        bool ours = m->tensor && !strcmp(t->name, m->tensor);
        if (ours && m->drop) continue;
        int64_t ne[4] = {t->ne[0], t->ne[1], t->ne[2], t->ne[3]};
        int type = t->type;
        if (ours && m->ne1 > 0) ne[1] = m->ne1;
        if (ours && m->type > 0) type = m->type;
        size[i] = sd_type_row_size(type, ne[0]) * (size_t)ne[1];
        put_str(b, t->name, strlen(t->name));
        put_u32(b, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++) put_u64(b, (uint64_t)ne[d]);
        put_u32(b, (uint32_t)type);
        put_u64(b, off);
        off += (size[i] + 31) / 32 * 32;
    }
    pad(b, 32);
    for (int64_t i = 0; i < nt; i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        bool ours = m->tensor && !strcmp(t->name, m->tensor);
        if (ours && m->drop) continue;
        size_t at = b->n;
        if (ours && m->type > 0) {
            uint8_t *z = calloc(1, size[i]);
            put(b, z, size[i]);
            free(z);
        } else {
            put(b, t->data, size[i] < t->size ? size[i] : (size_t)t->size);
        }
        if (ours && m->nan) {
            float nanv = NAN;
            memcpy(b->p + at, &nanv, 4);
        }
        pad(b, 32);
    }
    free(size);
}

static char *write_temp(const buf *b, size_t n) {
    char *path = malloc(4096);
    const char *dir = getenv("TMPDIR");
    snprintf(path, 4096, "%s/test_heads_XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    if (fd < 0) {
        free(path);
        return NULL;
    }
    ssize_t w = write(fd, b->p, n);
    close(fd);
    if (w != (ssize_t)n) {
        unlink(path);
        free(path);
        return NULL;
    }
    return path;
}

/* Loads b[0..n) as heads for target: want status and a message naming msg. */
static void expect(const char *what, const buf *b, size_t n, const sd_model *target, sd_status want, const char *msg) {
    char *path = write_temp(b, n);
    CHECK(path != NULL, "%s: temp file", what);
    if (!path) return;
    char err[512] = "";
    sd_heads *h = NULL;
    sd_status st = sd_heads_load(path, target, &h, err, sizeof err);
    CHECK(st == want, "%s: status %s, want %s (%s)", what, sd_status_str(st), sd_status_str(want), err);
    CHECK(want == SD_OK ? h != NULL : h == NULL, "%s: heads handle", what);
    if (want != SD_OK) CHECK(msg && strstr(err, msg) != NULL, "%s: message '%s' lacks '%s'", what, err, msg);
    sd_heads_free(h);
    unlink(path);
    free(path);
}

static void test_loader(const sd_model *target, const sd_model *draft) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/kernel-c-target-heads.gguf", test_model_dir());
    sd_gguf *g = NULL;
    CHECK(sd_gguf_open(path, &g, err, sizeof err) == SD_OK, "open heads: %s", err);
    if (!g) return;
    buf b = {0};
    const mod none = {0};
    rewrite(g, &none, &b);
    expect("unchanged copy", &b, b.n, target, SD_OK, NULL);
    expect("truncated file", &b, b.n / 2, target, SD_ERR_FORMAT, "offset");
    expect("empty file", &b, 0, target, SD_ERR_FORMAT, "");
    expect("against the draft model (width 128)", &b, b.n, draft, SD_ERR_MISMATCH, "width 384");
    static const struct {
        const char *what;
        mod m;
        sd_status want;
        const char *msg;
    } cases[] = {
        {"architecture llama", {.key = "general.architecture", .str = "llama"}, SD_ERR_FORMAT, "not specdec-heads"},
        {"width 256", {.key = "specdec-heads.embedding_length", .u32 = 256}, SD_ERR_MISMATCH, "width 256"},
        {"width 0", {.key = "specdec-heads.embedding_length", .u32 = 0}, SD_ERR_FORMAT, "out of range"},
        {"99 medusa heads", {.key = "medusa.head_count", .u32 = 99}, SD_ERR_FORMAT, "medusa.head_count"},
        {"5 hydra heads", {.key = "hydra.head_count", .u32 = 5}, SD_ERR_FORMAT, "missing tensor hydra.5.weight"},
        {"EAGLE heads 5", {.key = "eagle.attention.head_count", .u32 = 5}, SD_ERR_FORMAT, "do not fit"},
        {"EAGLE KV heads 4", {.key = "eagle.attention.head_count_kv", .u32 = 4}, SD_ERR_FORMAT, "do not fit"},
        {"EAGLE FFN 512", {.key = "eagle.feed_forward_length", .u32 = 512}, SD_ERR_FORMAT, "eagle.blk.0.ffn_gate.weight"},
        {"medusa.2.weight 384 x 192", {.tensor = "medusa.2.weight", .ne1 = 192}, SD_ERR_FORMAT, "medusa.2.weight has shape"},
        {"hydra.3.weight 384 x 383", {.tensor = "hydra.3.weight", .ne1 = 383}, SD_ERR_FORMAT, "hydra.3.weight"},
        {"eagle.fc.weight missing", {.tensor = "eagle.fc.weight", .drop = true}, SD_ERR_FORMAT, "missing tensor eagle.fc"},
        {"hydra.4.bias missing", {.tensor = "hydra.4.bias", .drop = true}, SD_ERR_FORMAT, "missing tensor hydra.4.bias"},
        {"NaN in eagle.fc.bias", {.tensor = "eagle.fc.bias", .nan = true}, SD_ERR_FORMAT, "non-finite"},
        {"NaN in ffn_norm", {.tensor = "eagle.blk.0.ffn_norm.weight", .nan = true}, SD_ERR_FORMAT, "non-finite"},
        {"Q4_0 attn_q (taken: the target's weight types)", {.tensor = "eagle.blk.0.attn_q.weight", .type = SD_TYPE_Q4_0}, SD_OK, NULL},
        {"Q2_K hydra.1.weight", {.tensor = "hydra.1.weight", .type = SD_TYPE_Q2_K}, SD_ERR_UNSUPPORTED, "type q2_K is not supported"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        rewrite(g, &cases[i].m, &b);
        expect(cases[i].what, &b, b.n, target, cases[i].want, cases[i].msg);
    }
    /* a file with only Medusa heads: loads; the other drafters are unsupported */
    static const mod medusa_only[] = {{.key = "hydra.head_count", .u32 = 0}};
    rewrite(g, &medusa_only[0], &b);
    char *p = write_temp(&b, b.n);
    sd_heads *h = NULL;
    CHECK(p && sd_heads_load(p, target, &h, err, sizeof err) == SD_OK, "no hydra: %s", err);
    sd_drafter *d = NULL;
    CHECK(h && sd_drafter_new_hydra(h, NULL, NULL, &d) == SD_ERR_UNSUPPORTED && !d, "hydra unsupported");
    CHECK(h && sd_drafter_new_medusa(h, NULL, NULL, &d) == SD_OK && d, "medusa supported");
    sd_drafter_free(d);
    sd_heads_info info;
    sd_heads_get_info(h, &info);
    CHECK(info.n_medusa == 4 && info.n_hydra == 0 && info.has_eagle && info.n_embd == 384, "info");
    sd_heads_free(h);
    if (p) unlink(p);
    free(p);
    /* bad arguments and files */
    CHECK(sd_heads_load("/nonexistent/heads.gguf", target, &h, err, sizeof err) == SD_ERR_IO && !h, "missing file");
    CHECK(sd_heads_load(NULL, target, &h, err, sizeof err) == SD_ERR_INVALID_ARG, "NULL path");
    CHECK(sd_heads_load(path, NULL, &h, err, sizeof err) == SD_ERR_INVALID_ARG, "NULL target");
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    CHECK(sd_heads_load(path, target, &h, err, sizeof err) == SD_ERR_FORMAT && strstr(err, "llama"),
          "a model file is not heads: %s", err);
    free(b.p);
    sd_gguf_close(g);
}

/* ------------------------------------------------------------ VocabTrim */

/* A drafter wrapping another that checks every drafted token is allowed. */
typedef struct trim_state {
    sd_drafter *inner;
    const uint8_t *allowed; /* (V) */
    int64_t drafted, outside;
} trim_state;

static sd_status trim_begin(void *self, const int32_t *ids, int n) {
    trim_state *t = self;
    return t->inner->ops->begin ? t->inner->ops->begin(t->inner->self, ids, n) : SD_OK;
}
static sd_status trim_draft(void *self, const int32_t *ids, int n, int max, const sd_draft_env *env, sd_draft *out) {
    trim_state *t = self;
    sd_status st = t->inner->ops->draft(t->inner->self, ids, n, max, env, out);
    for (int i = 0; st == SD_OK && i < out->n; i++) {
        t->drafted++;
        t->outside += !t->allowed[out->tok[i]];
    }
    return st;
}
static void trim_accept(void *self, const int32_t *ids, int n, int n_acc) {
    trim_state *t = self;
    if (t->inner->ops->accept) t->inner->ops->accept(t->inner->self, ids, n, n_acc);
}
static void trim_end(void *self) {
    trim_state *t = self;
    if (t->inner->ops->end) t->inner->ops->end(t->inner->self);
}
static void trim_free(void *self) { (void)self; }
static void trim_features(void *self, const float *h, int n_rows, int pos0) {
    trim_state *t = self;
    if (t->inner->ops->features) t->inner->ops->features(t->inner->self, h, n_rows, pos0);
}
static const sd_drafter_ops trim_ops = {trim_begin, trim_draft, trim_accept, trim_end, trim_free, trim_features};

/* VocabTrim for heads: (a) a trimmed output matrix gives bit-identical
 * logits for its ids; (b) each method with a subset drafts only listed
 * tokens, has drafts accepted, and its greedy output equals plain
 * decoding's; (c) bad subsets are refused. */
static void test_vocab_trim(const sd_heads *h, sd_ctx *ctx, sd_threadpool *pool, const ref_line *refs, int n_refs) {
    const int V = h->n_vocab, E = h->n_embd;
    sd_sampler_params sp = sd_sampler_default_params();
    sp.temp = 0.0f;
    sd_sampler *smp = NULL;
    sd_sampler_new(&sp, V, &smp);
    /* the subset: ids 0..767 and every token of the plain greedy outputs */
    uint8_t *allowed = calloc((size_t)V, 1);
    int32_t *plain = malloc((size_t)n_refs * 64 * sizeof *plain);
    int n_plain[32] = {0};
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = 64;
    gp.ignore_eos = true;
    for (int t = 0; t < 768; t++) allowed[t] = 1;
    for (int i = 0; i < n_refs; i++) {
        CHECK(sd_generate(ctx, smp, NULL, refs[i].ids, refs[i].n, &gp, plain + (size_t)i * 64, &n_plain[i], NULL) ==
                  SD_OK, "plain generate");
        for (int j = 0; j < n_plain[i]; j++) allowed[plain[(size_t)i * 64 + j]] = 1;
    }
    int32_t *ids = malloc((size_t)V * sizeof *ids);
    int n_ids = 0;
    for (int t = V - 1; t >= 0; t--) /* descending: the order must not matter */
        if (allowed[t]) ids[n_ids++] = t;
    CHECK(n_ids > 768 && n_ids < V / 2, "subset of %d ids", n_ids);

    /* (a) F16 and Q8_0 heads: the compact matrix's logits equal the full
     * head's at every listed id, bit for bit */
    sd_ctx_kv_clear(ctx);
    sd_batch b = sd_batch_simple(refs[0].ids, refs[0].n);
    b.out_flags = SD_OUTPUT_HIDDEN;
    CHECK(sd_ctx_decode(ctx, &b) == SD_OK, "decode");
    const float *f = sd_ctx_hidden(ctx, 0);
    float *full = malloc((size_t)V * sizeof(float)), *part = malloc((size_t)n_ids * sizeof(float));
    for (int q8 = 0; q8 < 2; q8++) {
        const sd_weight *src = q8 ? &h->output_q8 : &h->target->output;
        char *rows = malloc((size_t)n_ids * src->row_bytes);
        for (int i = 0; i < n_ids; i++)
            memcpy(rows + (size_t)i * src->row_bytes, (const char *)src->data + (size_t)ids[i] * src->row_bytes,
                   src->row_bytes);
        sd_weight w = *src;
        w.data = rows;
        w.packed = NULL; /* the compact rows in the stored layout */
        w.rows = n_ids;
        CHECK(sd_heads_logits(h, pool, q8, f, 1, full) == SD_OK, "full head");
        CHECK(sd_model_head_logits(h->target, pool, &w, f, 1, part, (size_t)n_ids) == SD_OK, "trimmed head");
        int diff = 0;
        for (int i = 0; i < n_ids; i++) diff += memcmp(&part[i], &full[ids[i]], sizeof(float)) != 0;
        CHECK(diff == 0, "q8 %d: %d of %d trimmed logits differ from the full head's", q8, diff, n_ids);
        free(rows);
    }
    (void)E;

    /* (b) the drafters with the subset */
    const char *names[3] = {"eagle", "hydra", "medusa"};
    for (int m = 0; m < 3; m++) {
        sd_heads_params hp = sd_heads_default_params(names[m]);
        hp.vocab_subset = ids;
        hp.n_vocab_subset = n_ids;
        sd_drafter *inner = NULL;
        sd_status st = m == 0 ? sd_drafter_new_eagle(h, pool, 0, &hp, &inner)
                       : m == 1 ? sd_drafter_new_hydra(h, pool, &hp, &inner)
                                : sd_drafter_new_medusa(h, pool, &hp, &inner);
        CHECK(st == SD_OK, "%s drafter with a subset", names[m]);
        if (st != SD_OK) continue;
        trim_state ts = {.inner = inner, .allowed = allowed};
        sd_drafter *wrap = sd_drafter_make("trimcheck", &trim_ops, &ts);
        int64_t accepted = 0;
        int same = 0;
        for (int i = 0; i < n_refs; i += 3) {
            int32_t out[64];
            int n_out = 0;
            sd_spec_stats stats;
            gp.draft_max = 8;
            CHECK(sd_generate(ctx, smp, wrap, refs[i].ids, refs[i].n, &gp, out, &n_out, &stats) == SD_OK, "generate");
            same += n_out == n_plain[i] && memcmp(out, plain + (size_t)i * 64, (size_t)n_out * sizeof *out) == 0;
            accepted += stats.accepted;
        }
        CHECK(same == (n_refs + 2) / 3, "%s trimmed: %d of %d outputs equal plain decoding's", names[m], same,
              (n_refs + 2) / 3);
        CHECK(ts.drafted > 0 && ts.outside == 0, "%s trimmed: %lld of %lld drafted tokens outside the subset",
              names[m], (long long)ts.outside, (long long)ts.drafted);
        CHECK(accepted > 0, "%s trimmed: nothing accepted", names[m]);
        sd_drafter_free(wrap);
        sd_drafter_free(inner);
    }

    /* (c) bad subsets */
    sd_drafter *d = NULL;
    sd_heads_params hp = sd_heads_default_params("eagle");
    int32_t bad[3] = {5, 9, 5};
    hp.vocab_subset = bad;
    hp.n_vocab_subset = 3;
    CHECK(sd_drafter_new_eagle(h, pool, 0, &hp, &d) == SD_ERR_INVALID_ARG && !d, "duplicate id accepted");
    bad[2] = V;
    CHECK(sd_drafter_new_medusa(h, pool, &hp, &d) == SD_ERR_INVALID_ARG && !d, "id n_vocab accepted");
    bad[2] = -1;
    CHECK(sd_drafter_new_hydra(h, pool, &hp, &d) == SD_ERR_INVALID_ARG && !d, "id -1 accepted");
    hp.vocab_subset = NULL;
    CHECK(sd_drafter_new_hydra(h, pool, &hp, &d) == SD_ERR_INVALID_ARG && !d, "count without ids accepted");

    free(full);
    free(part);
    free(ids);
    free(plain);
    free(allowed);
    sd_sampler_free(smp);
}

static void test_params(const sd_heads *h) {
    sd_drafter *d = NULL;
    sd_heads_params p = sd_heads_default_params("eagle");
    p.tree_params.width = 0;
    CHECK(sd_drafter_new_eagle(h, NULL, 0, &p, &d) == SD_ERR_INVALID_ARG && !d, "width 0");
    p = sd_heads_default_params("hydra");
    p.p_min = 2.0f;
    CHECK(sd_drafter_new_hydra(h, NULL, &p, &d) == SD_ERR_INVALID_ARG && !d, "p_min 2");
    CHECK(sd_drafter_new_medusa(NULL, NULL, NULL, &d) == SD_ERR_INVALID_ARG, "NULL heads");
    CHECK(sd_drafter_new_eagle(h, NULL, -1, NULL, &d) == SD_ERR_INVALID_ARG, "n_ctx -1");
    sd_heads_timing t;
    CHECK(sd_drafter_heads_timing(NULL, &t) == SD_ERR_INVALID_ARG, "timing of NULL");
    sd_drafter *lk = NULL;
    sd_drafter_new_lookup(1, 4, &lk);
    CHECK(sd_drafter_heads_timing(lk, &t) == SD_ERR_INVALID_ARG, "timing of lookup");
    sd_drafter_free(lk);
}

int main(void) {
    char path[1024], err[512];
    sd_model *target = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &target, err, sizeof err) == SD_OK, "load target: %s", err);
    sd_heads *h = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-target-heads.gguf", test_model_dir());
    CHECK(target && sd_heads_load(path, target, &h, err, sizeof err) == SD_OK, "load heads: %s", err);
    if (!target || !h) return check_report("test_heads");
    const bool quick = getenv("SD_TEST_QUICK") != NULL;
    sd_threadpool *pool = NULL;
    sd_threadpool_new(2, &pool);
    sd_ctx_params cp = sd_ctx_default_params();
    cp.pool = pool;
    sd_ctx *ctx = NULL;
    CHECK(sd_ctx_new(target, &cp, &ctx) == SD_OK, "ctx");
    ref_line refs[32];
    int n_refs = load_refs(sd_model_vocab(target), refs, 32);
    CHECK(n_refs == 24, "24 code prompts, got %d", n_refs);

    test_agreement(h, ctx, refs, n_refs, quick);
    if (n_refs > 0) {
        test_head_is_target(h, ctx, pool, &refs[0]);
        for (int i = 0; i < n_refs; i += quick ? 12 : 4) test_first_chain(h, ctx, pool, &refs[i]);
        const char *methods[3] = {"eagle", "hydra", "medusa"};
        for (int m = 0; m < 3; m++) {
            test_features(h, ctx, pool, &refs[1], methods[m], true, 0.0f);
            test_features(h, ctx, pool, &refs[2], methods[m], false, 0.0f);
            test_features(h, ctx, pool, &refs[3], methods[m], true, 0.8f);
        }
    }
    if (n_refs > 0) test_vocab_trim(h, ctx, pool, refs, quick && n_refs > 6 ? 6 : n_refs); /* quick: 6 prompts */
    sd_model *draft = NULL;
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    CHECK(sd_model_load(path, NULL, &draft, err, sizeof err) == SD_OK, "load draft: %s", err);
    if (draft) test_loader(target, draft);
    sd_model_free(draft);
    test_params(h);

    for (int i = 0; i < n_refs; i++) free(refs[i].ids);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_heads_free(h);
    sd_model_free(target);
    return check_report("test_heads");
}
