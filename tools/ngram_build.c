/* ngram_build.c - `specdec ngram-build [-m MODEL] -f CORPUS -o FILE`:
 * tokenizes a corpus with the model's vocabulary and writes the static
 * n-gram cache of the `ngram-cache` drafter (sd_ngram_cache_build). */
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "progress.h"

static int extra_opt(const char *a, const char *next, void *user) {
    const char **outp = user;
    if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
        if (!next) {
            fprintf(stderr, "error: %s needs a value\n", a);
            return -1;
        }
        *outp = next;
        return 2;
    }
    return 0;
}

int cmd_ngram_build(int argc, char **argv) {
    tool_opts o;
    const char *outp = NULL;
    if (tool_parse(argc, argv, 2, &o, extra_opt, &outp) != 0) return 1;
    if (!outp) {
        fprintf(stderr, "error: ngram-build needs an output file (-o FILE)\n");
        return 1;
    }
    if (!o.file && !o.prompt) {
        fprintf(stderr, "error: ngram-build needs a corpus (-f FILE)\n");
        return 1;
    }
    size_t len = 0;
    char *text = tool_read_prompt(&o, &len);
    if (!text) return 1;
    sd_model *m = tool_load_model(&o, NULL);
    if (!m) {
        free(text);
        return 1;
    }
    const sd_vocab *v = sd_model_vocab(m);
    double t0 = tool_now_ms();
    int n = 0;
    /* Both steps are single library calls with no progress to report (the
     * tokenization takes ~95% of the time): on a terminal, a line that says
     * which one is running. NULL off a terminal. */
    tool_progress *prog = tool_progress_begin("ngram-build", 0, "");
    char status[128];
    snprintf(status, sizeof status, "tokenizing %.1f MB of text", (double)len / 1e6);
    tool_progress_status(prog, status);
    int32_t *ids = tool_tokenize(v, text, len, !o.no_bos && sd_vocab_add_bos(v), o.parse_special, &n);
    int rc = 1;
    if (ids) {
        double t1 = tool_now_ms();
        char err[512] = "";
        snprintf(status, sizeof status, "building the cache of %d tokens", n);
        tool_progress_status(prog, status);
        sd_status st = sd_ngram_cache_build(ids, (size_t)n, outp, err, sizeof err);
        tool_progress_end(prog);
        prog = NULL;
        if (st != SD_OK) {
            fprintf(stderr, "error: cannot build the n-gram cache '%s': %s (%s)\n", outp, err, sd_status_str(st));
        } else {
            fprintf(stderr, "ngram-build: %zu bytes -> %d tokens (%.0f ms) -> %s (%.0f ms)\n", len, n, t1 - t0,
                    outp, tool_now_ms() - t1);
            rc = 0;
        }
    }
    tool_progress_end(prog);
    free(ids);
    free(text);
    sd_model_free(m);
    return rc;
}
