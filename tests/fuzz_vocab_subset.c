/*
 * fuzz_vocab_subset.c - libFuzzer target for the VocabTrim file parser
 * (sd_vocab_subset_parse; make fuzz).
 *
 * The first input byte picks n_vocab (1..256), the rest is the file text. On
 * success every id is checked to be in range and distinct (abort() tells
 * libFuzzer the parser let a bad list through).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "specdec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int n_vocab = 1 + data[0];
    int32_t *ids = NULL;
    int n = 0;
    char err[128];
    sd_status st = sd_vocab_subset_parse((const char *)data + 1, size - 1, n_vocab, &ids, &n, err, sizeof err);
    if (st == SD_OK) {
        uint8_t seen[256];
        memset(seen, 0, sizeof seen);
        if (!ids || n < 1 || n > n_vocab) abort();
        for (int i = 0; i < n; i++) {
            if (ids[i] < 0 || ids[i] >= n_vocab || seen[ids[i]]) abort();
            seen[ids[i]] = 1;
        }
    } else if (ids != NULL || n != 0) {
        abort();
    }
    sd_vocab_subset_free(ids);
    return 0;
}
