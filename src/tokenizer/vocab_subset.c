/*
 * vocab_subset.c - VocabTrim files: the token ids a draft context's output
 * head keeps (sd_ctx_params.vocab_subset), as text.
 *
 * Format: one decimal token id per line (most frequent first, by the
 * convention of `specdec vocabtrim`); lines whose first non-blank character
 * is '#' are comments; blank lines are ignored; "\r\n" line ends are
 * accepted. The reader treats the file as hostile: the size is bounded
 * before anything is read into memory, every id must be plain digits in
 * [0, n_vocab) with nothing but blanks after it, the count is at most
 * n_vocab, duplicates are rejected, and errors name the line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "specdec.h"

/* Largest n_vocab accepted (GGUF vocabularies are far smaller). */
#define SUBSET_MAX_VOCAB (1 << 26)

/* Bytes a file for n_vocab may have: 1 MiB of comments plus 32 bytes per
 * possible id line. */
static size_t max_file_bytes(int n_vocab) { return ((size_t)1 << 20) + (size_t)n_vocab * 32u; }

static bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

sd_status sd_vocab_subset_parse(const char *text, size_t len, int n_vocab, int32_t **ids, int *n_ids,
                                char *err, size_t err_size) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (err && err_size) err[0] = 0;
    if ((!text && len) || !ids || !n_ids || n_vocab < 1 || n_vocab > SUBSET_MAX_VOCAB) {
        sd_set_err(err, err_size, "invalid argument");
        return SD_ERR_INVALID_ARG;
    }
    int32_t *out = malloc((size_t)n_vocab * sizeof *out);
    uint8_t *seen = calloc((size_t)n_vocab, 1);
    if (!out || !seen) {
        free(out);
        free(seen);
        return SD_ERR_NOMEM;
    }
    sd_status st = SD_OK;
    int n = 0;
    long line = 0;
    size_t i = 0;
    while (i < len && st == SD_OK) {
        line++;
        size_t end = i;
        while (end < len && text[end] != '\n') end++;
        size_t p = i;
        i = end + 1; /* the next line */
        while (p < end && is_blank(text[p])) p++;
        if (p == end || text[p] == '#') continue;
        /* digits, then only blanks */
        int64_t v = 0;
        size_t d0 = p;
        while (p < end && text[p] >= '0' && text[p] <= '9' && v < n_vocab) v = v * 10 + (text[p++] - '0');
        bool digits_only = p > d0;
        while (p < end && text[p] >= '0' && text[p] <= '9') p++; /* too many digits: out of range below */
        size_t q = p;
        while (q < end && is_blank(text[q])) q++;
        if (!digits_only || q != end) {
            sd_set_err(err, err_size, "line %ld: expected a token id (decimal digits) and nothing else", line);
            st = SD_ERR_FORMAT;
        } else if (v >= n_vocab) {
            sd_set_err(err, err_size, "line %ld: token id out of range (vocabulary of %d tokens)", line, n_vocab);
            st = SD_ERR_FORMAT;
        } else if (seen[v]) {
            sd_set_err(err, err_size, "line %ld: token id %d listed twice", line, (int)v);
            st = SD_ERR_FORMAT;
        } else if (n >= n_vocab) { /* cannot happen without a duplicate; kept as a bound */
            sd_set_err(err, err_size, "line %ld: more than %d token ids", line, n_vocab);
            st = SD_ERR_FORMAT;
        } else {
            seen[v] = 1;
            out[n++] = (int32_t)v;
        }
    }
    free(seen);
    if (st == SD_OK && n == 0) {
        sd_set_err(err, err_size, "no token ids");
        st = SD_ERR_FORMAT;
    }
    if (st != SD_OK) {
        free(out);
        return st;
    }
    int32_t *shrunk = realloc(out, (size_t)n * sizeof *out);
    *ids = shrunk ? shrunk : out;
    *n_ids = n;
    return SD_OK;
}

sd_status sd_vocab_subset_load(const char *path, int n_vocab, int32_t **ids, int *n_ids, char *err,
                               size_t err_size) {
    if (ids) *ids = NULL;
    if (n_ids) *n_ids = 0;
    if (err && err_size) err[0] = 0;
    if (!path || !ids || !n_ids || n_vocab < 1 || n_vocab > SUBSET_MAX_VOCAB) {
        sd_set_err(err, err_size, "invalid argument");
        return SD_ERR_INVALID_ARG;
    }
    FILE *f = fopen(path, "rb");
    if (!f) {
        sd_set_err(err, err_size, "cannot open '%s'", path);
        return SD_ERR_IO;
    }
    /* Read at most max + 1 bytes: more means the file is too large (this
     * also bounds pipes and other files without a size). */
    const size_t max = max_file_bytes(n_vocab);
    char *buf = malloc(max + 1);
    if (!buf) {
        fclose(f);
        return SD_ERR_NOMEM;
    }
    size_t len = 0, got;
    while (len < max + 1 && (got = fread(buf + len, 1, max + 1 - len, f)) > 0) len += got;
    bool bad = ferror(f) != 0;
    fclose(f);
    sd_status st;
    if (bad) {
        sd_set_err(err, err_size, "cannot read '%s'", path);
        st = SD_ERR_IO;
    } else if (len > max) {
        sd_set_err(err, err_size, "'%s' is larger than %zu bytes, the bound for %d tokens", path, max, n_vocab);
        st = SD_ERR_FORMAT;
    } else {
        st = sd_vocab_subset_parse(buf, len, n_vocab, ids, n_ids, err, err_size);
    }
    free(buf);
    return st;
}

void sd_vocab_subset_free(int32_t *ids) { free(ids); }

sd_status sd_vocab_subset_save(const char *path, const int32_t *ids, int n_ids, const char *comment,
                               char *err, size_t err_size) {
    if (err && err_size) err[0] = 0;
    if (!path || !ids || n_ids < 1) {
        sd_set_err(err, err_size, "invalid argument");
        return SD_ERR_INVALID_ARG;
    }
    for (int i = 0; i < n_ids; i++)
        if (ids[i] < 0) {
            sd_set_err(err, err_size, "negative token id at index %d", i);
            return SD_ERR_INVALID_ARG;
        }
    FILE *f = fopen(path, "w");
    if (!f) {
        sd_set_err(err, err_size, "cannot create '%s'", path);
        return SD_ERR_IO;
    }
    /* the comment, each of its lines prefixed with "# " */
    const char *c = comment ? comment : "";
    do {
        const char *nl = strchr(c, '\n');
        size_t n = nl ? (size_t)(nl - c) : strlen(c);
        fprintf(f, "# %.*s\n", (int)n, c);
        c = nl ? nl + 1 : c + n;
    } while (*c);
    for (int i = 0; i < n_ids; i++) fprintf(f, "%d\n", (int)ids[i]);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0) bad = true;
    if (bad) {
        sd_set_err(err, err_size, "cannot write '%s'", path);
        return SD_ERR_IO;
    }
    return SD_OK;
}
