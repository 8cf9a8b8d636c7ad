/*
 * fuzz_gguf.c - libFuzzer target for the GGUF reader and the vocabulary
 * loader (make fuzz).
 *
 * Opens the input with sd_gguf_open_mem; on success walks every key, every
 * typed getter, every string-array element and touches the first and last
 * byte of every tensor's data, so that ASan sees any pointer or size the
 * reader let through that does not stay inside the input. Then loads the
 * vocabulary (tokenizer.ggml.*: tokens, types, specials, BPE merges and
 * pre-tokenizer) and, if it loads, tokenizes and detokenizes a few fixed
 * strings with it. Finally copies every kv and tensor into the GGUF writer,
 * writes that to memory and reads it back: the writer must accept anything
 * the reader accepted, and the copy must have identical kvs and tensors.
 */
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "tokenizer/vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Reads every byte of s; returns a checksum so the loop is not removed. */
static unsigned touch_str(sd_gguf_str s) {
    unsigned h = 0;
    for (uint64_t i = 0; i < s.len; i++) h = h * 31u + (unsigned char)s.ptr[i];
    return h;
}

/* Calls every getter on key; results are only folded into the checksum. */
static unsigned walk_key(const sd_gguf *g, int64_t k) {
    const char *key = sd_gguf_key(g, k);
    unsigned h = (unsigned)strlen(key);
    int64_t i64;
    uint32_t u32;
    int32_t i32, iv[16];
    float f, fv[16];
    bool b;
    sd_gguf_str s;
    uint64_t n;
    sd_gguf_vtype et;
    char err[128];
    if (sd_gguf_find_key(g, key) != k) abort();  /* keys are unique */
    if (sd_gguf_get_i64(g, key, &i64, err, sizeof err) == SD_OK) h += (unsigned)i64;
    if (sd_gguf_get_u32(g, key, &u32, err, sizeof err) == SD_OK) h += u32;
    if (sd_gguf_get_i32(g, key, &i32, NULL, 0) == SD_OK) h += (unsigned)i32;
    if (sd_gguf_get_f32(g, key, &f, err, sizeof err) == SD_OK) h += (f == f);
    if (sd_gguf_get_bool(g, key, &b, err, sizeof err) == SD_OK) h += b;
    if (sd_gguf_get_str(g, key, &s, err, sizeof err) == SD_OK) h += touch_str(s);
    if (sd_gguf_get_arr_n(g, key, &et, &n, err, sizeof err) == SD_OK) h += (unsigned)n;
    if (sd_gguf_get_arr_i32(g, key, iv, 16, &n, err, sizeof err) == SD_OK) h += (unsigned)n;
    if (sd_gguf_get_arr_f32(g, key, fv, 16, &n, err, sizeof err) == SD_OK) h += (unsigned)n;
    if (sd_gguf_get_arr_f32(g, key, NULL, 0, &n, err, sizeof err) == SD_OK) h += (unsigned)n;
    if (sd_gguf_arr_type(g, k) == SD_GGUF_STRING) {
        uint64_t na = sd_gguf_arr_n(g, k);
        for (uint64_t j = 0; j < na; j++) {
            sd_gguf_str e = sd_gguf_arr_str(g, k, j);
            if (!e.ptr) abort();
            h += touch_str(e);
        }
    }
    return h;
}

/* Loads the vocabulary of g and runs it over fixed texts: every id it
 * returns must be in range and have a piece. */
static unsigned walk_vocab(const sd_gguf *g) {
    static const char *const texts[] = {
        "Hello world's 12345 \r\n\n  x\tcaf\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd!!",
        "<s>a</s><|endoftext|> \xff\xfe\xe2\x82 \xf0\x9f\xa6\x99",
        "",
    };
    sd_vocab *v = NULL;
    char err[128];
    if (sd_vocab_load(g, &v, err, sizeof err) != SD_OK) return 0;
    unsigned h = (unsigned)sd_vocab_n_tokens(v);
    int32_t ids[256];
    char piece[64];
    for (size_t t = 0; t < sizeof texts / sizeof texts[0]; t++) {
        for (int special = 0; special < 2; special++) {
            int n = sd_tokenize(v, texts[t], strlen(texts[t]), ids, 256, false, special != 0);
            for (int i = 0; i < n && i < 256; i++) {
                if (ids[i] < 0 || ids[i] >= sd_vocab_n_tokens(v)) abort();
                if (sd_token_to_piece(v, ids[i], piece, sizeof piece) < 0) abort();
                h += (unsigned)ids[i];
            }
        }
    }
    sd_vocab_free(v);
    return h;
}

/* Writer round trip of an accepted file: abort on any difference. */
static void round_trip(const sd_gguf *g) {
    sd_gguf_writer *w = NULL;
    if (sd_gguf_writer_new(&w) != SD_OK) return;
    if (sd_gguf_writer_copy_kvs(w, g) != SD_OK) abort();
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        if (sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, false) != SD_OK)
            abort();
    }
    void *buf = NULL;
    size_t n = 0;
    sd_gguf *g2 = NULL;
    char err[256];
    if (sd_gguf_writer_write_mem(w, &buf, &n) != SD_OK) abort();
    if (sd_gguf_open_mem(buf, n, "copy", &g2, err, sizeof err) != SD_OK) abort();
    if (sd_gguf_n_kv(g2) != sd_gguf_n_kv(g) || sd_gguf_n_tensors(g2) != sd_gguf_n_tensors(g)) abort();
    for (int64_t k = 0; k < sd_gguf_n_kv(g); k++) {
        const void *pa, *pb;
        uint64_t na, nb;
        if (sd_gguf_kv_raw(g, k, &pa, &na) || sd_gguf_kv_raw(g2, k, &pb, &nb) || na != nb ||
            memcmp(pa, pb, (size_t)na) != 0 || strcmp(sd_gguf_key(g, k), sd_gguf_key(g2, k)) != 0 ||
            sd_gguf_kv_type(g, k) != sd_gguf_kv_type(g2, k))
            abort();
    }
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *a = sd_gguf_tensor_at(g, i), *b = sd_gguf_tensor_at(g2, i);
        if (strcmp(a->name, b->name) || a->type != b->type || a->size != b->size ||
            memcmp(a->ne, b->ne, sizeof a->ne) || (a->size && memcmp(a->data, b->data, (size_t)a->size)))
            abort();
    }
    sd_gguf_close(g2);
    free(buf);
    sd_gguf_writer_free(w);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    sd_gguf *g = NULL;
    char err[256];
    if (sd_gguf_open_mem(data, size, "fuzz", &g, err, sizeof err) != SD_OK) return 0;
    volatile unsigned h = 0;
    for (int64_t k = 0; k < sd_gguf_n_kv(g); k++) h += walk_key(g, k);
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        if (sd_gguf_find_tensor(g, t->name) != t) abort();  /* names are unique */
        if (t->size > 0) {
            const uint8_t *p = t->data;
            h += p[0] + p[t->size - 1];
        }
    }
    h += walk_vocab(g);
    round_trip(g);
    sd_gguf_close(g);
    return 0;
}
