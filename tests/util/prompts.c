#include "util/prompts.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "util/check.h"

int test_load_prompts(const sd_vocab *v, test_prompt *out, int max, int step) {
    const char *files[2] = {"code-btrfs", "docs-filesystems"};
    int n = 0, k = 0;
    for (int f = 0; f < 2; f++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/bench/%s.jsonl", test_shared_dir(), files[f]);
        FILE *fp = fopen(path, "r");
        CHECK(fp != NULL, "open %s", path);
        if (!fp) continue;
        json_error_t jerr;
        json_t *j;
        while (n < max && (j = json_loadf(fp, JSON_DISABLE_EOF_CHECK, &jerr)) != NULL) {
            if (k++ % step == 0) {
                const char *text = json_string_value(json_object_get(j, "prompt"));
                const char *id = json_string_value(json_object_get(j, "id"));
                test_prompt *p = &out[n++];
                snprintf(p->id, sizeof p->id, "%s", id ? id : "?");
                p->max_tokens = (int)json_integer_value(json_object_get(j, "max_tokens"));
                p->ids = malloc(TEST_PROMPT_MAX_IDS * sizeof *p->ids);
                p->n = p->ids && text ? sd_tokenize(v, text, strlen(text), p->ids,
                                                    TEST_PROMPT_MAX_IDS, true, false)
                                      : -1;
            }
            json_decref(j);
        }
        fclose(fp);
    }
    return n;
}

void test_free_prompts(test_prompt *p, int n) {
    for (int i = 0; i < n; i++) {
        free(p[i].ids);
        p[i].ids = NULL;
    }
}
