/* generate.c - `specdec generate`: prompt in, text out (or one JSON object),
 * with plain or speculative decoding (--spec). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

typedef struct spec_opts {
    const char *method;        /* --spec */
    tool_spec spec;            /* the options shared with bench */
} spec_opts;

static int spec_opt(const char *a, const char *next, void *user) {
    spec_opts *s = user;
    if (strcmp(a, "--spec") != 0) return tool_spec_opt(a, next, &s->spec);
    if (!next) {
        fprintf(stderr, "error: --spec needs a value\n");
        return -1;
    }
    s->method = next;
    return 2;
}

typedef struct stream_state {
    sd_detok *dt;
    bool json;
    char *text;
    size_t len, cap;
    bool oom;
} stream_state;

static bool append(stream_state *s, const char *p, int n) {
    if (n <= 0) return true;
    if (!s->json) {
        fwrite(p, 1, (size_t)n, stdout);
        fflush(stdout);
        return true;
    }
    if (s->len + (size_t)n + 1 > s->cap) {
        size_t cap = (s->cap + (size_t)n + 1) * 2;
        char *t = realloc(s->text, cap);
        if (!t) {
            s->oom = true;
            return false;
        }
        s->text = t;
        s->cap = cap;
    }
    memcpy(s->text + s->len, p, (size_t)n);
    s->len += (size_t)n;
    s->text[s->len] = 0;
    return true;
}

static bool on_tokens(void *user, const int32_t *ids, int n) {
    stream_state *s = user;
    char piece[256];
    for (int i = 0; i < n; i++)
        if (!append(s, piece, sd_detok_push(s->dt, ids[i], piece, sizeof piece))) return false;
    return true;
}

/* Makes the drafter named by so->method (NULL for none); prints errors. */
static int make_drafter(const spec_opts *so, const tool_opts *o, const sd_model *target, sd_ctx *ctx,
                        sd_threadpool *pool, int n_ctx, sd_model **draft_model, sd_drafter **out) {
    const tool_spec *s = &so->spec;
    char err[512] = "";
    *out = NULL;
    if (tool_method_needs_draft(so->method)) {
        char buf[PATH_MAX];
        const char *path = s->draft ? s->draft : tool_model_path("kernel-c-draft.gguf", buf, sizeof buf);
        if (!strcmp(so->method, "draft-xtok") && s->xtok_draft) path = s->xtok_draft;
        if (!(*draft_model = tool_load_model(o, path))) return -1;
    }
    sd_status st = tool_make_drafter(so->method, s, *draft_model, target, ctx, pool, n_ctx, out, err, sizeof err);
    if (st != SD_OK) {
        fprintf(stderr, "error: cannot create drafter '%s': %s%s%s\n", so->method, sd_status_str(st),
                err[0] ? ": " : "", err);
        return -1;
    }
    return 0;
}

static void print_spec_json(const char *method, const sd_spec_stats *st) {
    printf(", \"spec\": {\"method\": \"%s\", \"steps\": %lld, \"drafted\": %lld, \"accepted\": %lld, "
           "\"mean_accepted\": %.4f, \"accept_by_pos\": [",
           method, (long long)st->steps, (long long)st->drafted, (long long)st->accepted,
           st->steps ? (double)(st->n_generated - 1) / (double)st->steps : 0.0);
    int last = 0;
    for (int i = 0; i < SD_MAX_DRAFT_POS; i++)
        if (st->drafted_at[i]) last = i + 1;
    for (int i = 0; i < last; i++)
        printf("%s%.4f", i ? ", " : "", (double)st->accepted_at[i] / (double)st->drafted_at[i]);
    printf("], \"draft_ms\": %.3f, \"verify_ms\": %.3f}", st->draft_ms, st->verify_ms);
}

int cmd_generate(int argc, char **argv) {
    tool_opts o;
    spec_opts so = {.method = NULL, .spec = tool_spec_defaults()};
    if (tool_parse(argc, argv, 2, &o, spec_opt, &so) != 0) return 1;
    if (!so.method) so.method = so.spec.draft ? "draft" : "none";
    if (!o.seed_set) o.sp.seed = (uint64_t)time(NULL);
    int rc = 1;
    sd_model *model = NULL, *draft_model = NULL;
    sd_threadpool *pool = NULL;
    sd_ctx *ctx = NULL;
    sd_sampler *smp = NULL;
    sd_drafter *drafter = NULL;
    sd_heads *heads = NULL;
    stream_state ss = {.json = o.json};
    char *prompt = NULL;
    int32_t *pids = NULL, *ids = NULL;
    sd_status st = SD_OK;

    size_t plen = 0;
    if (!(prompt = tool_read_prompt(&o, &plen))) goto done;
    if (!(model = tool_load_model(&o, NULL))) goto done;
    const sd_vocab *vocab = sd_model_vocab(model);
    sd_model_info info;
    sd_model_get_info(model, &info);
    int n_prompt = 0;
    if (!(pids = tool_tokenize(vocab, prompt, plen, !o.no_bos && sd_vocab_add_bos(vocab), o.parse_special, &n_prompt)))
        goto done;
    if (n_prompt == 0) {
        fprintf(stderr, "error: the prompt is empty\n");
        goto done;
    }
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = o.n_ctx;
    cp.attn_compat = o.attn_compat;
    /* a method drafting on a core of its own leaves the target one less */
    int t_threads = tool_method_own_core(so.method) && o.n_threads > 1 ? o.n_threads - 1 : o.n_threads;
    if ((st = sd_threadpool_new(t_threads, &pool)) != SD_OK) goto fail_st;
    cp.pool = pool;
    if ((st = sd_ctx_new(model, &cp, &ctx)) != SD_OK) goto fail_st;
    if (n_prompt + o.n_predict > sd_ctx_n_ctx(ctx)) {
        fprintf(stderr, "error: prompt (%d tokens) + -n %d exceeds the context of %d tokens (-c)\n",
                n_prompt, o.n_predict, sd_ctx_n_ctx(ctx));
        goto done;
    }
    if ((st = sd_sampler_new(&o.sp, info.n_vocab, &smp)) != SD_OK) goto fail_st;
    if (tool_method_needs_heads(so.method)) {
        if (!(heads = tool_load_heads(&so.spec, model))) goto done;
        so.spec.heads = heads;
    }
    if (make_drafter(&so, &o, model, ctx, pool, sd_ctx_n_ctx(ctx), &draft_model, &drafter) != 0) goto done;
    if (!(ss.dt = sd_detok_new(vocab)) || !(ids = malloc(((size_t)o.n_predict + 1) * sizeof *ids))) {
        st = SD_ERR_NOMEM;
        goto fail_st;
    }
    sd_gen_params gp = sd_gen_default_params();
    gp.n_predict = o.n_predict;
    gp.ignore_eos = o.ignore_eos;
    gp.draft_max = tool_method_budget(so.method, &so.spec);
    gp.draft_min = so.spec.draft_min;
    gp.on_tokens = on_tokens;
    gp.user = &ss;
    int n_gen = 0;
    sd_spec_stats stats;
    sd_cost_table *costs = NULL;
    if (drafter && gp.draft_max == SD_DRAFT_AUTO) {
        /* --draft-max auto plans with the target's cost table (measured
         * here, before the timed generation; it clears the cache) */
        if ((st = sd_cost_table_measure(ctx, &costs)) != SD_OK) goto fail_st;
        gp.costs = costs;
    }
    st = sd_generate(ctx, smp, drafter, pids, n_prompt, &gp, ids, &n_gen, &stats);
    sd_cost_table_free(costs);
    if (st != SD_OK) goto fail_st;
    char piece[64];
    append(&ss, piece, sd_detok_flush(ss.dt, piece, sizeof piece));
    if (ss.oom) {
        st = SD_ERR_NOMEM;
        goto fail_st;
    }
    double tps = stats.gen_ms > 0 ? n_gen / (stats.gen_ms / 1e3) : 0.0;
    if (o.json) {
        printf("{\"prompt_ids\": ");
        tool_json_ids(stdout, pids, n_prompt);
        printf(", \"ids\": ");
        tool_json_ids(stdout, ids, n_gen);
        printf(", \"text\": ");
        tool_json_str(stdout, ss.text ? ss.text : "", ss.len);
        printf(", \"seed\": %llu, \"timings\": {\"prompt_tokens\": %d, \"prompt_ms\": %.3f, "
               "\"gen_tokens\": %d, \"gen_ms\": %.3f, \"gen_tokens_per_s\": %.2f}",
               (unsigned long long)o.sp.seed, n_prompt, stats.prompt_ms, n_gen, stats.gen_ms, tps);
        print_spec_json(so.method, &stats);
        printf("}\n");
    } else {
        printf("\n");
        fprintf(stderr, "prompt: %d tokens in %.1f ms (%.1f tokens/s)\n", n_prompt, stats.prompt_ms,
                stats.prompt_ms > 0 ? n_prompt / (stats.prompt_ms / 1e3) : 0.0);
        fprintf(stderr, "generate: %d tokens in %.1f ms (%.1f tokens/s), %d threads, %s kernels\n", n_gen,
                stats.gen_ms, tps, o.n_threads, sd_backend_name(o.backend));
        if (drafter)
            fprintf(stderr, "spec %s: %lld steps, drafted %lld, accepted %lld (%.1f%%), %.2f tokens per step\n",
                    so.method, (long long)stats.steps, (long long)stats.drafted, (long long)stats.accepted,
                    stats.drafted ? 100.0 * (double)stats.accepted / (double)stats.drafted : 0.0,
                    stats.steps ? (double)(n_gen - 1) / (double)stats.steps : 0.0);
        sd_heads_timing ht;
        if (drafter && sd_drafter_heads_timing(drafter, &ht) == SD_OK && ht.draft_ms > 0)
            fprintf(stderr, "heads: drafting %.1f ms, of which the output head (output_norm + output) %.1f ms "
                            "(%.0f%%, %lld rows)\n",
                    ht.draft_ms, ht.head_ms, 100.0 * ht.head_ms / ht.draft_ms, (long long)ht.head_rows);
    }
    rc = 0;
    goto done;
fail_st:
    fprintf(stderr, "error: %s\n", sd_status_str(st));
done:
    free(ss.text);
    free(ids);
    free(pids);
    free(prompt);
    sd_detok_free(ss.dt);
    sd_drafter_free(drafter);
    sd_heads_free(heads);
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_model_free(draft_model);
    sd_threadpool_free(pool);
    sd_model_free(model);
    return rc;
}
