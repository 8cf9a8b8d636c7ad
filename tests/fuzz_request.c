/*
 * fuzz_request.c - libFuzzer target for the server's request parser
 * (srv_parse_request: the JSON body of /v1/completions and
 * /v1/chat/completions; make fuzz).
 *
 * The first input byte picks the endpoint (completion or chat) and the chat
 * template (none, ChatML, Llama 2, Llama 3); the rest is the body. The
 * prompt is tokenized with a real vocabulary: the shipped models' llama-spm
 * test vocabulary (SD_FUZZ_VOCAB overrides the path), loaded once. Checked
 * on every input: success leaves a prompt of 1..n_ctx tokens, all ids in
 * the vocabulary, max_tokens within the context, a valid method and stop
 * strings of 1..64 bytes; failure leaves a status and a message; and
 * nothing leaks (r's buffers are freed here as the server frees them).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "server/request.h"
#include "tokenizer/vocab.h"

static sd_gguf *g_gguf;
static sd_vocab *g_vocab;
static srv_config g_cfg;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *path = getenv("SD_FUZZ_VOCAB");
    char err[256];
    if (!path) path = "../shared/vocab/ggml-vocab-llama-spm.gguf";
    if (sd_gguf_open(path, &g_gguf, err, sizeof err) != SD_OK || sd_vocab_load(g_gguf, &g_vocab, err, sizeof err) != SD_OK) {
        fprintf(stderr, "fuzz_request: cannot load the vocabulary %s: %s\n", path, err);
        exit(1);
    }
    memset(&g_cfg, 0, sizeof g_cfg);
    g_cfg.sp.temp = 0.8f;
    g_cfg.sp.top_p = 0.95f;
    g_cfg.sp.top_k = 40;
    g_cfg.sp.min_p = 0.05f;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    srv_parse_env e;
    memset(&e, 0, sizeof e);
    e.cfg = &g_cfg;
    e.vocab = g_vocab;
    e.n_ctx = 256;
    e.n_vocab = sd_vocab_n_tokens(g_vocab);
    e.tmpl = (data[0] >> 1) & 3;
    e.default_method = 0;
    for (int i = 0; i < SRV_N_METHODS; i++) e.draft_max[i] = i % 3 == 0 ? SD_DRAFT_AUTO : 8;
    e.seed = 42;
    const bool chat = data[0] & 1;
    srv_req r;
    memset(&r, 0, sizeof r);
    bool stream = true;
    char msg[512] = "";
    unsigned st = srv_parse_request(&e, (const char *)data + 1, size - 1, chat, &stream, &r, msg, sizeof msg);
    if (st == 0) {
        if (!r.prompt || r.n_prompt < 1 || r.n_prompt >= e.n_ctx) abort();
        for (int i = 0; i < r.n_prompt; i++)
            if (r.prompt[i] < 0 || r.prompt[i] >= e.n_vocab) abort();
        if (r.n_predict < 0 || r.n_prompt + r.n_predict > e.n_ctx) abort();
        if (r.method < 0 || r.method >= SRV_N_METHODS) abort();
        if (r.draft_max < 0 && r.draft_max != SD_DRAFT_AUTO && r.draft_max != SD_DRAFT_FEEDBACK) abort();
        if (!(r.sp.temp >= 0.0f && r.sp.temp <= 100.0f) || !(r.sp.top_p >= 0.0f && r.sp.top_p <= 1.0f)) abort();
    } else if ((st != 400 && st != 500) || msg[0] == '\0') {
        abort();
    }
    if (r.n_stop < 0 || r.n_stop > SRV_MAX_STOP) abort();
    for (int i = 0; i < r.n_stop; i++) {
        size_t l = r.stop[i] ? strlen(r.stop[i]) : 0;
        if (l < 1 || l > 64) abort();
        free(r.stop[i]);
    }
    free(r.prompt);
    return 0;
}
