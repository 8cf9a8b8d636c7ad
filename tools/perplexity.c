/* perplexity.c - `specdec perplexity`, llama.cpp's method: chunks of n_ctx
 * tokens, the first replaced by BOS, score the second half of each chunk. */
#include <math.h>
#include <stdlib.h>

#include "common.h"
#include "progress.h"

/* -log softmax(logits)[target] in double. */
static double nll(const float *logits, int n_vocab, int target) {
    double mx = logits[0];
    for (int i = 1; i < n_vocab; i++) if (logits[i] > mx) mx = logits[i];
    double sum = 0.0;
    for (int i = 0; i < n_vocab; i++) sum += exp((double)logits[i] - mx);
    return -((double)logits[target] - mx - log(sum));
}

int cmd_perplexity(int argc, char **argv) {
    tool_opts o;
    if (tool_parse(argc, argv, 2, &o, NULL, NULL) != 0) return 1;
    int n_ctx = o.n_ctx ? o.n_ctx : 512;
    if (n_ctx < 4) {
        fprintf(stderr, "error: -c must be at least 4\n");
        return 1;
    }
    size_t len = 0;
    char *text = tool_read_prompt(&o, &len);
    if (!text) return 1;
    int rc = 1;
    sd_model *m = NULL;
    sd_threadpool *pool = NULL;
    sd_ctx *ctx = NULL;
    int32_t *ids = NULL;
    uint8_t *want = NULL;
    if (!(m = tool_load_model(&o, NULL))) goto done;
    const sd_vocab *v = sd_model_vocab(m);
    int n = 0;
    if (!(ids = tool_tokenize(v, text, len, true, false, &n))) goto done;
    int n_chunk = n / n_ctx;
    if (n_chunk < 1) {
        fprintf(stderr, "error: need at least %d tokens, the file has %d\n", n_ctx, n);
        goto done;
    }
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = n_ctx;
    cp.attn_compat = o.attn_compat;
    sd_status st;
    if ((st = sd_threadpool_new(o.n_threads, &pool)) != SD_OK ||
        (cp.pool = pool, st = sd_ctx_new(m, &cp, &ctx)) != SD_OK) {
        fprintf(stderr, "error: %s\n", sd_status_str(st));
        goto done;
    }
    if (!(want = calloc((size_t)n_ctx, 1))) goto done;
    const int first = n_ctx / 2;
    for (int j = first; j < n_ctx - 1; j++) want[j] = 1;
    double sum = 0.0;
    long count = 0;
    double t0 = tool_now_ms();
    int n_vocab = sd_vocab_n_tokens(v);
    tool_progress *prog = tool_progress_begin("perplexity", n_chunk, "chunks"); /* NULL off a terminal */
    for (int c = 0; c < n_chunk; c++) {
        int32_t *chunk = ids + (size_t)c * n_ctx;
        int32_t saved = chunk[0];
        chunk[0] = sd_vocab_bos(v) >= 0 ? sd_vocab_bos(v) : saved;
        sd_ctx_kv_clear(ctx);
        sd_batch b = sd_batch_simple(chunk, n_ctx);
        b.output = want;
        st = sd_ctx_decode(ctx, &b);
        chunk[0] = saved;
        if (st != SD_OK) {
            tool_progress_end(prog);
            fprintf(stderr, "error: decode: %s\n", sd_status_str(st));
            goto done;
        }
        for (int j = first, oi = 0; j < n_ctx - 1; j++, oi++) {
            sum += nll(sd_ctx_logits(ctx, oi), n_vocab, chunk[j + 1]);
            count++;
        }
        if (!o.json) {
            tool_progress_clear(prog);
            fprintf(stderr, "[%d/%d] ppl so far %.4f\n", c + 1, n_chunk, exp(sum / (double)count));
        }
        tool_progress_update(prog, c + 1);
    }
    tool_progress_end(prog);
    double ppl = exp(sum / (double)count);
    double ms = tool_now_ms() - t0;
    if (o.json)
        printf("{\"ppl\": %.6f, \"chunks\": %d, \"n_ctx\": %d, \"scored\": %ld, \"tokens\": %d, \"ms\": %.1f}\n",
               ppl, n_chunk, n_ctx, count, n, ms);
    else
        printf("ppl = %.4f\n", ppl);
    rc = 0;
done:
    free(want);
    free(ids);
    free(text);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_model_free(m);
    return rc;
}
