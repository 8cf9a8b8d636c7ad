/* heads_probe.c - `specdec heads-probe`: the greedy predictions of trained
 * heads after a prompt, in the fields of
 * ../shared/reference/kernel-c-target-heads.*.jsonl: next_token (the
 * target's argmax), medusa_top1 (Medusa heads 1..4 at the last prompt
 * position), hydra_chain and eagle_chain (4 greedy draft tokens each after
 * next_token). --json prints one object; otherwise the tokens as text too. */
#include <stdlib.h>
#include <string.h>

#include "common.h"

static int probe_opt(const char *a, const char *next, void *user) { return tool_spec_opt(a, next, user); }

static void print_ids(const sd_vocab *v, const char *name, const int32_t *ids, int n) {
    printf("%-12s", name);
    for (int i = 0; i < n; i++) {
        char piece[64];
        int len = sd_token_to_piece(v, ids[i], piece, (int)sizeof piece - 1);
        printf(" %5d ", ids[i]);
        tool_json_str(stdout, piece, len > 0 && len < (int)sizeof piece ? (size_t)len : 0);
    }
    printf("\n");
}

int cmd_heads_probe(int argc, char **argv) {
    tool_opts o;
    tool_spec spec = tool_spec_defaults();
    if (tool_parse(argc, argv, 2, &o, probe_opt, &spec) != 0) return 1;
    int rc = 1;
    sd_model *model = NULL;
    sd_heads *heads = NULL;
    sd_threadpool *pool = NULL;
    sd_ctx *ctx = NULL;
    char *text = NULL;
    int32_t *ids = NULL;
    size_t len = 0;
    if (!(text = tool_read_prompt(&o, &len))) goto done;
    if (!(model = tool_load_model(&o, NULL))) goto done;
    if (!(heads = tool_load_heads(&spec, model))) goto done;
    const sd_vocab *v = sd_model_vocab(model);
    int n = 0;
    if (!(ids = tool_tokenize(v, text, len, !o.no_bos && sd_vocab_add_bos(v), o.parse_special, &n))) goto done;
    if (n == 0) {
        fprintf(stderr, "error: the prompt is empty\n");
        goto done;
    }
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = o.n_ctx > 0 ? o.n_ctx : n + 16;
    cp.attn_compat = o.attn_compat;
    sd_status st = sd_threadpool_new(o.n_threads, &pool);
    if (st == SD_OK) {
        cp.pool = pool;
        st = sd_ctx_new(model, &cp, &ctx);
    }
    sd_heads_probe p;
    if (st == SD_OK) st = sd_heads_run_probe(heads, ctx, ids, n, 4, &p);
    if (st != SD_OK) {
        fprintf(stderr, "error: heads-probe: %s\n", sd_status_str(st));
        goto done;
    }
    if (o.json) {
        printf("{\"n_prompt\": %d, \"next_token\": %d, \"medusa_top1\": ", n, p.next_token);
        tool_json_ids(stdout, p.medusa_top1, p.n_medusa);
        printf(", \"hydra_chain\": ");
        tool_json_ids(stdout, p.hydra_chain, p.n_hydra);
        printf(", \"eagle_chain\": ");
        tool_json_ids(stdout, p.eagle_chain, p.n_eagle);
        printf("}\n");
    } else {
        print_ids(v, "next_token", &p.next_token, 1);
        print_ids(v, "medusa_top1", p.medusa_top1, p.n_medusa);
        print_ids(v, "hydra_chain", p.hydra_chain, p.n_hydra);
        print_ids(v, "eagle_chain", p.eagle_chain, p.n_eagle);
    }
    rc = 0;
done:
    free(text);
    free(ids);
    sd_ctx_free(ctx);
    sd_threadpool_free(pool);
    sd_heads_free(heads);
    sd_model_free(model);
    return rc;
}
