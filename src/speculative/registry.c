/*
 * registry.c - drafters by name: the one table of methods (what each needs,
 * how it is budgeted) and the factory that makes a drafter from a method
 * spec "METHOD[:K|:auto|:feedback][/pX]" (include/specdec.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "specdec.h"

typedef struct method_info {
    const char *name;
    unsigned needs; /* SD_SPEC_* besides SD_SPEC_KNOWN */
} method_info;

static const method_info methods[] = {
    {"none", 0},
    {"draft", SD_SPEC_NEEDS_DRAFT},
    {"lookup", 0},
    {"ngram-cache", 0},
    {"tree-draft", SD_SPEC_NEEDS_DRAFT | SD_SPEC_TREE},
    {"tree-lookup", SD_SPEC_TREE},
    {"aded", SD_SPEC_TREE},
    {"self", 0},
    {"pearl", SD_SPEC_NEEDS_DRAFT | SD_SPEC_OWN_CORE},
    {"rasd", SD_SPEC_NEEDS_DRAFT | SD_SPEC_TREE},
    {"draft-xtok", SD_SPEC_NEEDS_DRAFT},
    {"eagle", SD_SPEC_NEEDS_HEADS | SD_SPEC_TREE},
    {"hydra", SD_SPEC_NEEDS_HEADS | SD_SPEC_TREE},
    {"medusa", SD_SPEC_NEEDS_HEADS | SD_SPEC_TREE},
    {"eagle-chain", SD_SPEC_NEEDS_HEADS},
    {"hydra-chain", SD_SPEC_NEEDS_HEADS},
    {"medusa-chain", SD_SPEC_NEEDS_HEADS},
};
#define N_METHODS (int)(sizeof methods / sizeof methods[0])

const char *sd_spec_methods(void) {
    return "none, draft, lookup, ngram-cache, tree-draft, tree-lookup, aded, self, pearl, rasd, draft-xtok, "
           "eagle, hydra, medusa, eagle-chain, hydra-chain, medusa-chain";
}

static const method_info *find(const char *name) {
    if (!name) return NULL;
    if (!strcmp(name, "ngram")) name = "ngram-cache";
    for (int i = 0; i < N_METHODS; i++)
        if (!strcmp(name, methods[i].name)) return &methods[i];
    return NULL;
}

unsigned sd_spec_method_needs(const char *method) {
    const method_info *mi = find(method);
    return mi ? SD_SPEC_KNOWN | mi->needs : 0;
}

int sd_spec_method_budget(const char *method, const sd_spec_params *p) {
    return sd_spec_method_needs(method) & SD_SPEC_TREE ? p->tree_nodes : p->draft_max;
}

sd_spec_params sd_spec_default_params(void) {
    sd_spec_params p;
    memset(&p, 0, sizeof p);
    p.draft_max = SD_DRAFT_AUTO;
    p.tree_nodes = 8;
    p.p_min = 0.5f;
    p.lookup_min = 1;
    p.lookup_max = 4;
    p.tree = sd_tree_default_params();
    p.heads_q8 = -1;
    return p;
}

static sd_status fail(char *err, size_t n, sd_status st, const char *fmt, const char *a) {
    if (err && n) snprintf(err, n, fmt, a);
    return st;
}

sd_status sd_spec_parse(const char *spec, char *method, size_t method_size, sd_spec_params *p,
                        bool *explicit_budget, char *err, size_t n) {
    if (err && n) err[0] = 0;
    if (explicit_budget) *explicit_budget = false;
    if (!spec || !method || method_size == 0 || !p) return fail(err, n, SD_ERR_INVALID_ARG, "%s", "no method");
    char body[64];
    if (strlen(spec) >= sizeof body) return fail(err, n, SD_ERR_INVALID_ARG, "bad method '%.40s...'", spec);
    snprintf(body, sizeof body, "%s", spec);
    float p_min = -1.0f;
    char *slash = strchr(body, '/');
    if (slash) { /* /pX */
        char *end = NULL;
        errno = 0;
        p_min = slash[1] == 'p' ? strtof(slash + 2, &end) : -1.0f;
        if (slash[1] != 'p' || errno || !end || end == slash + 2 || *end || !(p_min >= 0.0f && p_min <= 1.0f))
            return fail(err, n, SD_ERR_INVALID_ARG, "bad method '%s' (suffix /pX: a p_min in [0, 1])", spec);
        *slash = 0;
    }
    int budget = 0;
    bool has_budget = false;
    char *colon = strchr(body, ':');
    if (colon) { /* :K, :auto, :feedback */
        *colon = 0;
        const char *k = colon + 1;
        has_budget = true;
        if (!strcmp(k, "auto")) budget = SD_DRAFT_AUTO;
        else if (!strcmp(k, "feedback")) budget = SD_DRAFT_FEEDBACK;
        else {
            char *end = NULL;
            errno = 0;
            long v = strtol(k, &end, 10);
            if (errno || !*k || *end || v < 0 || v > SD_MAX_DRAFT_POS) {
                if (err && n) snprintf(err, n, "bad method '%s' (suffix :K: a budget in 0..%d, auto or feedback)",
                                       spec, SD_MAX_DRAFT_POS);
                return SD_ERR_INVALID_ARG;
            }
            budget = (int)v;
        }
    }
    const method_info *mi = find(body);
    if (!mi) {
        if (err && n) snprintf(err, n, "unknown method '%s' (%s)", body, sd_spec_methods());
        return SD_ERR_INVALID_ARG;
    }
    if (strlen(mi->name) >= method_size) return fail(err, n, SD_ERR_INVALID_ARG, "%s", "method buffer too small");
    if (has_budget && (mi->needs & SD_SPEC_TREE) && budget == SD_DRAFT_FEEDBACK)
        return fail(err, n, SD_ERR_INVALID_ARG, "bad method '%s' (trees take :K or :auto)", spec);
    snprintf(method, method_size, "%s", mi->name);
    if (has_budget) {
        if (mi->needs & SD_SPEC_TREE) p->tree_nodes = budget;
        else p->draft_max = budget;
    }
    if (p_min >= 0.0f) p->p_min = p_min;
    if (explicit_budget) *explicit_budget = has_budget;
    return SD_OK;
}

/* The whole of a text file into a NUL-terminated buffer (NULL on error). */
static char *read_text(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1 << 16, k = 0;
    char *s = malloc(cap);
    while (s) {
        size_t got = fread(s + k, 1, cap - k - 1, f);
        k += got;
        if (got == 0) break;
        if (k + 1 == cap) {
            char *t = cap > ((size_t)1 << 30) ? NULL : realloc(s, cap * 2);
            if (!t) {
                free(s);
                s = NULL;
                break;
            }
            s = t;
            cap *= 2;
        }
    }
    bool bad = ferror(f) != 0;
    fclose(f);
    if (!s || bad) {
        free(s);
        return NULL;
    }
    s[k] = 0;
    *len = k;
    return s;
}

/* rasd with the corpus text (if any) tokenized by the target's vocabulary,
 * without BOS. */
static sd_status make_rasd(const sd_spec_params *p, const sd_spec_models *m, sd_threadpool *pool, sd_drafter **out,
                           char *err, size_t n) {
    int32_t *ids = NULL;
    int n_ids = 0;
    if (p->rasd_corpus) {
        size_t len = 0;
        char *text = read_text(p->rasd_corpus, &len);
        if (!text) return fail(err, n, SD_ERR_IO, "cannot read the rasd corpus '%s'", p->rasd_corpus);
        const sd_vocab *v = sd_model_vocab(m->target);
        if (len) {
            int cap = (int)(len < (1u << 28) ? len : (1u << 28)) + 8;
            ids = malloc((size_t)cap * sizeof *ids);
            n_ids = ids ? sd_tokenize(v, text, len, ids, cap, false, false) : SD_ERR_NOMEM;
            if (n_ids > cap) { /* more ids than bytes: not for byte-level vocabularies, but be exact */
                int32_t *t = realloc(ids, (size_t)n_ids * sizeof *ids);
                if (t) {
                    ids = t;
                    n_ids = sd_tokenize(v, text, len, ids, n_ids, false, false);
                } else {
                    n_ids = SD_ERR_NOMEM;
                }
            }
        }
        free(text);
        if (n_ids < 0) {
            free(ids);
            return fail(err, n, (sd_status)n_ids, "cannot tokenize the rasd corpus '%s'", p->rasd_corpus);
        }
    }
    sd_status st = sd_drafter_new_rasd(m->draft, m->target, pool, m->n_ctx, &p->tree, p->lookup_min, p->lookup_max,
                                       ids, (size_t)n_ids, out, err, n);
    free(ids);
    return st;
}

/* The VocabTrim ids of p->draft_vocab for a vocabulary of n_vocab ids. */
static sd_status load_subset(const sd_spec_params *p, int n_vocab, int32_t **sub, int *n_sub, char *err, size_t n) {
    *sub = NULL;
    *n_sub = 0;
    if (!p->draft_vocab) return SD_OK;
    char lerr[256] = "";
    sd_status st = sd_vocab_subset_load(p->draft_vocab, n_vocab, sub, n_sub, lerr, sizeof lerr);
    if (st != SD_OK && err && n) snprintf(err, n, "draft vocabulary (VocabTrim) '%s': %s", p->draft_vocab, lerr);
    return st;
}

sd_status sd_drafter_from_spec(const char *spec, const sd_spec_params *params, const sd_spec_models *m,
                               sd_drafter **out, int *budget, char *err, size_t n) {
    if (!out) return SD_ERR_INVALID_ARG;
    *out = NULL;
    if (!params || !m || !m->target) return fail(err, n, SD_ERR_INVALID_ARG, "%s", "no target model");
    sd_spec_params p = *params;
    char name[32];
    sd_status st = sd_spec_parse(spec, name, sizeof name, &p, NULL, err, n);
    if (st != SD_OK) return st;
    unsigned needs = sd_spec_method_needs(name);
    if (budget) *budget = sd_spec_method_budget(name, &p);
    if ((needs & SD_SPEC_NEEDS_DRAFT) && !m->draft && !(m->xtok_draft && !strcmp(name, "draft-xtok")))
        return fail(err, n, SD_ERR_INVALID_ARG, "method '%s' needs a draft model", name);
    if ((needs & SD_SPEC_NEEDS_HEADS) && !m->heads)
        return fail(err, n, SD_ERR_INVALID_ARG, "method '%s' needs trained heads", name);
    if (!strcmp(name, "self") && !m->target_ctx)
        return fail(err, n, SD_ERR_INVALID_ARG, "method '%s' needs the target's context", name);
    sd_threadpool *pool = p.draft_single_thread ? NULL : m->pool;
    if (!strcmp(name, "none")) return SD_OK;
    if (!strcmp(name, "draft") || !strcmp(name, "tree-draft")) {
        sd_model_info di;
        sd_model_get_info(m->draft, &di);
        int32_t *sub;
        int n_sub;
        if ((st = load_subset(&p, di.n_vocab, &sub, &n_sub, err, n)) != SD_OK) return st;
        st = !strcmp(name, "draft")
                 ? sd_drafter_new_model_ex(m->draft, m->target, pool, m->n_ctx, p.p_min, sub, n_sub, out, err, n)
                 : sd_drafter_new_model_tree_ex(m->draft, m->target, pool, m->n_ctx, &p.tree, sub, n_sub, out, err, n);
        sd_vocab_subset_free(sub);
        if (st == SD_OK && !strcmp(name, "draft") && p.reject_max > 0.0f)
            st = sd_drafter_model_set_reject_max(*out, p.reject_max);
        if (st == SD_ERR_MISMATCH && err && n) { /* point at the cross-vocabulary method */
            size_t l = strlen(err);
            snprintf(err + l, n - l, " (method draft-xtok drafts across vocabularies)");
        }
        if (st != SD_OK && *out) {
            sd_drafter_free(*out);
            *out = NULL;
        }
        return st;
    }
    if (!strcmp(name, "draft-xtok")) {
        /* the draft's tokenization of a text may be longer than the
         * target's: twice the target's cells (0: its training context) */
        int n_draft = m->n_ctx > 0 && m->n_ctx < (1 << 28) ? 2 * m->n_ctx + 2 * SD_MAX_DRAFT_POS : 0;
        return sd_drafter_new_xtok(m->xtok_draft ? m->xtok_draft : m->draft, m->target, pool, n_draft, p.p_min, out,
                                   err, n);
    }
    if (!strcmp(name, "lookup")) return sd_drafter_new_lookup(p.lookup_min, p.lookup_max, out);
    if (!strcmp(name, "tree-lookup")) return sd_drafter_new_lookup_tree(p.lookup_min, p.lookup_max, out);
    if (!strcmp(name, "aded")) return sd_drafter_new_aded(NULL, NULL, 0, out);
    if (!strcmp(name, "self")) return sd_drafter_new_self(m->target_ctx, p.self_exit, p.p_min, out);
    if (!strcmp(name, "pearl"))
        return sd_drafter_new_pearl(m->draft, m->target, m->n_ctx, p.p_min, p.draft_max > 0 ? p.draft_max : 16, out,
                                    err, n);
    if (!strcmp(name, "rasd")) return make_rasd(&p, m, pool, out, err, n);
    if (!strcmp(name, "ngram-cache")) return sd_drafter_new_ngram_cache(p.ngram_static, p.ngram_dynamic, out, err, n);
    /* the heads methods: eagle, hydra, medusa and their -chain variants */
    bool chain = strstr(name, "-chain") != NULL;
    char hm[8];
    snprintf(hm, sizeof hm, "%.*s", (int)strcspn(name, "-"), name);
    sd_heads_params hp = sd_heads_default_params(hm);
    hp.tree = !chain;
    hp.p_min = p.p_min;
    if (p.tree_given) hp.tree_params = p.tree;
    if (p.heads_q8 >= 0) hp.q8 = p.heads_q8 != 0;
    sd_model_info ti;
    sd_model_get_info(m->target, &ti);
    int32_t *sub;
    int n_sub;
    if ((st = load_subset(&p, ti.n_vocab, &sub, &n_sub, err, n)) != SD_OK) return st; /* VocabTrim of the heads */
    hp.vocab_subset = sub;
    hp.n_vocab_subset = n_sub;
    if (!strcmp(hm, "eagle"))
        st = sd_drafter_new_eagle(m->heads, pool, m->n_ctx > 0 ? m->n_ctx + SD_MAX_DRAFT_POS : 0, &hp, out);
    else if (!strcmp(hm, "hydra")) st = sd_drafter_new_hydra(m->heads, pool, &hp, out);
    else st = sd_drafter_new_medusa(m->heads, pool, &hp, out);
    sd_vocab_subset_free(sub);
    return st;
}
