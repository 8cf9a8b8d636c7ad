/* prompts.h - the bench prompts (../shared/bench/code-btrfs.jsonl, then
 * docs-filesystems.jsonl: 24 + 12) tokenized for the end-to-end tests
 * (test_spec_lossless.c, test_spec_xtok.c, test_vocabtrim.c). */
#ifndef SD_TEST_PROMPTS_H
#define SD_TEST_PROMPTS_H
#include <stdint.h>

#include "specdec.h"

enum { TEST_PROMPT_MAX_IDS = 4096 }; /* tokens kept of a prompt */

typedef struct test_prompt {
    char id[64];      /* the bench id, e.g. "complete-000"       */
    int32_t *ids;     /* malloc'd, TEST_PROMPT_MAX_IDS entries  */
    int n;            /* sd_tokenize's count (with BOS), or < 0 */
    int max_tokens;   /* the bench's generation length          */
} test_prompt;

/* Reads every step-th bench prompt (the 0th, step-th, .. counting across
 * both files) into out, at most max of them, and tokenizes each with v (BOS
 * added). CHECKs that each file opens. Returns the number read; free them
 * with test_free_prompts. */
int test_load_prompts(const sd_vocab *v, test_prompt *out, int max, int step);

void test_free_prompts(test_prompt *p, int n);

#endif
