/* generate.c - `specdec generate`: prompt in, text out (or one JSON object). */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common.h"

int cmd_generate(int argc, char **argv) {
    tool_opts o;
    if (tool_parse(argc, argv, 2, &o, NULL, NULL) != 0) return 1;
    if (!o.seed_set) o.sp.seed = (uint64_t)time(NULL);
    int rc = 1;
    sd_model *model = NULL;
    sd_threadpool *pool = NULL;
    sd_ctx *ctx = NULL;
    sd_sampler *smp = NULL;
    sd_detok *dt = NULL;
    char *prompt = NULL, *text = NULL;
    int32_t *pids = NULL, *ids = NULL;
    size_t text_len = 0, text_cap = 0;

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
    sd_status st;
    if ((st = sd_threadpool_new(o.n_threads, &pool)) != SD_OK) goto fail_st;
    cp.pool = pool;
    if ((st = sd_ctx_new(model, &cp, &ctx)) != SD_OK) goto fail_st;
    if (n_prompt + o.n_predict > sd_ctx_n_ctx(ctx)) {
        fprintf(stderr, "error: prompt (%d tokens) + -n %d exceeds the context of %d tokens (-c)\n",
                n_prompt, o.n_predict, sd_ctx_n_ctx(ctx));
        goto done;
    }
    if ((st = sd_sampler_new(&o.sp, info.n_vocab, &smp)) != SD_OK) goto fail_st;
    if (!(dt = sd_detok_new(vocab)) || !(ids = malloc(((size_t)o.n_predict + 1) * sizeof *ids))) {
        st = SD_ERR_NOMEM;
        goto fail_st;
    }

    double t0 = tool_now_ms();
    sd_batch b = sd_batch_simple(pids, n_prompt);
    if ((st = sd_ctx_decode(ctx, &b)) != SD_OK) goto fail_st;
    double t1 = tool_now_ms();
    int n_gen = 0;
    char piece[256];
    while (n_gen < o.n_predict) {
        int32_t tok = sd_sampler_sample(smp, sd_ctx_logits(ctx, 0));
        if (!o.ignore_eos && sd_vocab_is_eog(vocab, tok)) break;
        ids[n_gen++] = tok;
        int np = sd_detok_push(dt, tok, piece, sizeof piece);
        if (np > 0) {
            if (o.json) {
                if (text_len + (size_t)np + 1 > text_cap) {
                    size_t cap = (text_cap + (size_t)np + 1) * 2;
                    char *t = realloc(text, cap);
                    if (!t) { st = SD_ERR_NOMEM; goto fail_st; }
                    text = t;
                    text_cap = cap;
                }
                memcpy(text + text_len, piece, (size_t)np);
                text_len += (size_t)np;
            } else {
                fwrite(piece, 1, (size_t)np, stdout);
                fflush(stdout);
            }
        }
        b = sd_batch_simple(&tok, 1);
        if ((st = sd_ctx_decode(ctx, &b)) != SD_OK) goto fail_st;
    }
    double t2 = tool_now_ms();
    int np = sd_detok_flush(dt, piece, sizeof piece);
    double prompt_ms = t1 - t0, gen_ms = t2 - t1;
    double tps = gen_ms > 0 ? n_gen / (gen_ms / 1e3) : 0.0;
    if (o.json) {
        printf("{\"prompt_ids\": ");
        tool_json_ids(stdout, pids, n_prompt);
        printf(", \"ids\": ");
        tool_json_ids(stdout, ids, n_gen);
        printf(", \"text\": ");
        if (np > 0) {
            char *t = realloc(text, text_len + (size_t)np + 1);
            if (t) {
                text = t;
                memcpy(text + text_len, piece, (size_t)np);
                text_len += (size_t)np;
            }
        }
        tool_json_str(stdout, text ? text : "", text_len);
        printf(", \"seed\": %llu, \"timings\": {\"prompt_tokens\": %d, \"prompt_ms\": %.3f, "
               "\"gen_tokens\": %d, \"gen_ms\": %.3f, \"gen_tokens_per_s\": %.2f}}\n",
               (unsigned long long)o.sp.seed, n_prompt, prompt_ms, n_gen, gen_ms, tps);
    } else {
        if (np > 0) fwrite(piece, 1, (size_t)np, stdout);
        printf("\n");
        fprintf(stderr, "prompt: %d tokens in %.1f ms (%.1f tokens/s)\n", n_prompt, prompt_ms,
                prompt_ms > 0 ? n_prompt / (prompt_ms / 1e3) : 0.0);
        fprintf(stderr, "generate: %d tokens in %.1f ms (%.1f tokens/s), %d threads, %s kernels\n", n_gen,
                gen_ms, tps, o.n_threads, sd_backend_name(o.backend));
    }
    rc = 0;
    goto done;
fail_st:
    fprintf(stderr, "error: %s\n", sd_status_str(st));
done:
    free(text);
    free(ids);
    free(pids);
    free(prompt);
    sd_detok_free(dt);
    sd_sampler_free(smp);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_model_free(model);
    return rc;
}
