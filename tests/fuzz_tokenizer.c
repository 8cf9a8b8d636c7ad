/*
 * fuzz_tokenizer.c - libFuzzer target for the tokenizers and the streaming
 * detokenizer on untrusted text and ids (make fuzz).
 *
 * Vocabularies: the SentencePiece and byte-level BPE test vocabularies of
 * ../shared/vocab (SD_FUZZ_VOCAB_DIR overrides the folder), loaded once.
 * Input: byte 0 picks the vocabulary, byte 1 the mode and flags, the rest
 * is the payload.
 *  - mode text: the payload is tokenized (add_bos and parse_special from
 *    the flags); every id must be in the vocabulary and the count must not
 *    depend on the buffer (a count-only call and a full call agree); then
 *    the ids are detokenized one by one;
 *  - mode ids: the payload is read as 16-bit token ids (mod the vocabulary
 *    size, plus a few out-of-range ones, which must be refused) pushed into
 *    the streaming detokenizer.
 * Every chunk the detokenizer emits must be complete, valid UTF-8 (its
 * contract), and nothing may leak.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/gguf.h"
#include "specdec.h"
#include "tokenizer/vocab.h"

static const char *const k_files[] = {"llama-spm", "phi-3", "gpt-2", "deepseek-coder", "deepseek-llm",
                                      "falcon", "mpt", "refact", "starcoder"};
enum { N_FILES = sizeof k_files / sizeof k_files[0], MAX_IDS = 8192 };
static sd_gguf *g_gguf[N_FILES];
static sd_vocab *g_vocab[N_FILES];
static int g_n;

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    const char *dir = getenv("SD_FUZZ_VOCAB_DIR");
    if (!dir) dir = "../shared/vocab";
    for (int i = 0; i < N_FILES; i++) {
        char path[1024], err[256];
        snprintf(path, sizeof path, "%s/ggml-vocab-%s.gguf", dir, k_files[i]);
        if (sd_gguf_open(path, &g_gguf[g_n], err, sizeof err) != SD_OK) continue;
        if (sd_vocab_load(g_gguf[g_n], &g_vocab[g_n], err, sizeof err) != SD_OK) {
            sd_gguf_close(g_gguf[g_n]);
            continue;
        }
        g_n++;
    }
    if (g_n == 0) {
        fprintf(stderr, "fuzz_tokenizer: no vocabulary under %s\n", dir);
        exit(1);
    }
    return 0;
}

/* Pushes ids through a fresh streaming detokenizer; every chunk must be
 * valid UTF-8 of the length returned. */
static void detok_check(const sd_vocab *v, const int32_t *ids, int n, int n_vocab) {
    sd_detok *d = sd_detok_new(v);
    if (!d) return;
    char out[4096];
    for (int i = 0; i <= n; i++) {
        int k = i < n ? sd_detok_push(d, ids[i], out, sizeof out) : sd_detok_flush(d, out, sizeof out);
        if (i < n && (ids[i] < 0 || ids[i] >= n_vocab)) {
            if (k >= 0) abort(); /* an id out of range is refused */
            continue;
        }
        if (k < 0) abort();
        if ((size_t)k >= sizeof out || out[k] != 0) abort(); /* NUL-terminated (a NUL byte inside is text) */
        for (int at = 0; at < k;) {
            int l = sd_utf8_valid_len((const unsigned char *)out + at, (size_t)(k - at));
            if (l <= 0) abort(); /* a broken UTF-8 sequence came out */
            at += l;
        }
    }
    sd_detok_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    const sd_vocab *v = g_vocab[data[0] % g_n];
    const int n_vocab = sd_vocab_n_tokens(v);
    const bool ids_mode = data[1] & 1, add_bos = data[1] & 2, special = data[1] & 4;
    const uint8_t *p = data + 2;
    size_t n = size - 2;
    static int32_t ids[MAX_IDS];
    if (!ids_mode) {
        int need = sd_tokenize(v, (const char *)p, n, NULL, 0, add_bos, special);
        if (need < 0) return 0; /* refused (e.g. too long): fine, as long as it says so */
        int got = sd_tokenize(v, (const char *)p, n, ids, MAX_IDS, add_bos, special);
        if (got != need) abort(); /* the count does not depend on the buffer */
        int m = got < MAX_IDS ? got : MAX_IDS;
        for (int i = 0; i < m; i++)
            if (ids[i] < 0 || ids[i] >= n_vocab) abort();
        detok_check(v, ids, m, n_vocab);
    } else {
        int m = 0;
        for (size_t i = 0; i + 1 < n && m < MAX_IDS; i += 2) {
            unsigned x = (unsigned)p[i] | (unsigned)p[i + 1] << 8;
            /* mostly valid ids; 0xfffX: out of range (negative or too big) */
            ids[m++] = x >= 0xfff0u ? (x & 1 ? -1 - (int32_t)(x & 7) : n_vocab + (int32_t)(x & 7))
                                    : (int32_t)(x % (unsigned)n_vocab);
        }
        detok_check(v, ids, m, n_vocab);
    }
    return 0;
}
