/* tokenize.c - `specdec tokenize`: prints the ids as one JSON array. */
#include <stdlib.h>

#include "common.h"

int cmd_tokenize(int argc, char **argv) {
    tool_opts o;
    if (tool_parse(argc, argv, 2, &o, NULL, NULL) != 0) return 1;
    size_t len = 0;
    char *text = tool_read_prompt(&o, &len);
    if (!text) return 1;
    sd_model *m = tool_load_model(&o, NULL);
    if (!m) {
        free(text);
        return 1;
    }
    const sd_vocab *v = sd_model_vocab(m);
    int n = 0;
    int32_t *ids = tool_tokenize(v, text, len, !o.no_bos && sd_vocab_add_bos(v), o.parse_special, &n);
    int rc = 1;
    if (ids) {
        tool_json_ids(stdout, ids, n);
        printf("\n");
        rc = 0;
    }
    free(ids);
    free(text);
    sd_model_free(m);
    return rc;
}
