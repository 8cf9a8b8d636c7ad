/* common.c - option parsing, model paths, JSON output for the tools. */
#include "common.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double tool_now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int parse_int(const char *opt, const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "error: %s expects an integer in [%d, %d], got '%s'\n", opt, lo, hi, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int parse_float(const char *opt, const char *s, float *out) {
    char *end;
    errno = 0;
    float v = s ? strtof(s, &end) : 0;
    if (!s || errno || *end || end == s || !isfinite(v)) {
        fprintf(stderr, "error: %s expects a number, got '%s'\n", opt, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int tool_parse(int argc, char **argv, int first, tool_opts *o, tool_extra_fn extra, void *user) {
    memset(o, 0, sizeof *o);
    o->n_predict = 128;
    long nproc = sysconf(_SC_NPROCESSORS_ONLN);
    o->n_threads = nproc > 0 ? (int)(nproc > 8 ? 8 : nproc) : 1;
    o->sp = sd_sampler_default_params();
    o->quantize = SD_TYPE_NONE;
    o->backend = SD_BACKEND_AUTO;
    for (int i = first; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int used = 2, rc = 0;
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) { if (!next) goto missing; o->model = next; }
        else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) { if (!next) goto missing; o->prompt = next; }
        else if (!strcmp(a, "-f") || !strcmp(a, "--file")) { if (!next) goto missing; o->file = next; }
        else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) rc = parse_int(a, next, 0, 1 << 24, &o->n_predict);
        else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) rc = parse_int(a, next, 1, 512, &o->n_threads);
        else if (!strcmp(a, "-c") || !strcmp(a, "--ctx-size")) rc = parse_int(a, next, 0, 1 << 22, &o->n_ctx);
        else if (!strcmp(a, "--temp")) rc = parse_float(a, next, &o->sp.temp);
        else if (!strcmp(a, "--top-k")) rc = parse_int(a, next, INT_MIN, INT_MAX, &o->sp.top_k);
        else if (!strcmp(a, "--top-p")) rc = parse_float(a, next, &o->sp.top_p);
        else if (!strcmp(a, "--min-p")) rc = parse_float(a, next, &o->sp.min_p);
        else if (!strcmp(a, "--seed")) {
            char *end;
            errno = 0;
            unsigned long long v = next ? strtoull(next, &end, 10) : 0;
            if (!next || errno || *end || end == next) { fprintf(stderr, "error: --seed expects an integer\n"); return -1; }
            o->sp.seed = v;
            o->seed_set = true;
        } else if (!strcmp(a, "--quantize")) {
            if (!next) goto missing;
            if (strcmp(next, "q8_0") != 0) { fprintf(stderr, "error: --quantize supports q8_0\n"); return -1; }
            o->quantize = SD_TYPE_Q8_0;
        } else if (!strcmp(a, "--backend")) {
            if (!next) goto missing;
            if (!strcmp(next, "auto")) o->backend = SD_BACKEND_AUTO;
            else if (!strcmp(next, "ref")) o->backend = SD_BACKEND_REF;
            else if (!strcmp(next, "avx2")) o->backend = SD_BACKEND_AVX2;
            else if (!strcmp(next, "avx512")) o->backend = SD_BACKEND_AVX512;
            else { fprintf(stderr, "error: unknown backend '%s'\n", next); return -1; }
        } else {
            used = 1;
            if (!strcmp(a, "--ignore-eos")) o->ignore_eos = true;
            else if (!strcmp(a, "--json")) o->json = true;
            else if (!strcmp(a, "--no-bos")) o->no_bos = true;
            else if (!strcmp(a, "--parse-special")) o->parse_special = true;
            else if (!strcmp(a, "--attn-compat")) o->attn_compat = true;
            else if (!strcmp(a, "--no-pack")) o->no_pack = true;
            else if (extra && (used = extra(a, next, user)) > 0) {
                if (used < 0) return -1;
            } else {
                if (used < 0) return -1;
                fprintf(stderr, "error: unknown option '%s' (see 'specdec %s --help')\n", a, argv[1]);
                return -1;
            }
        }
        if (rc) return -1;
        i += used - 1;
        continue;
    missing:
        fprintf(stderr, "error: %s needs a value\n", a);
        return -1;
    }
    return 0;
}

const char *tool_model_path(const char *name, char *buf, size_t size) {
    const char *dir = getenv("SPECDEC_MODEL_DIR");
    if (dir && *dir) {
        snprintf(buf, size, "%s/%s", dir, name);
        return buf;
    }
    snprintf(buf, size, "../shared/models/%s", name);
    if (access(buf, R_OK) == 0) return buf;
    /* Relative to the repository that holds bin/specdec. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        for (int up = 0; up < 2; up++) {
            char *slash = strrchr(exe, '/');
            if (slash) *slash = 0;
        }
        snprintf(buf, size, "%s/../shared/models/%s", exe, name);
        if (access(buf, R_OK) == 0) return buf;
    }
    snprintf(buf, size, "../shared/models/%s", name);
    return buf;
}

sd_model *tool_load_model(const tool_opts *o, const char *path_or_null) {
    char buf[PATH_MAX];
    const char *path = path_or_null ? path_or_null : o->model;
    if (!path) path = tool_model_path("kernel-c-target.gguf", buf, sizeof buf);
    sd_model_params mp = sd_model_default_params();
    mp.quantize = o->quantize;
    mp.backend = o->backend;
    mp.pack = !o->no_pack;
    sd_model *m = NULL;
    char err[512];
    sd_status st = sd_model_load(path, &mp, &m, err, sizeof err);
    if (st != SD_OK) {
        fprintf(stderr, "error: cannot load model '%s': %s (%s)\n", path, err[0] ? err : "", sd_status_str(st));
        return NULL;
    }
    return m;
}

char *tool_read_prompt(const tool_opts *o, size_t *len) {
    if (o->prompt && o->file) {
        fprintf(stderr, "error: give -p or -f, not both\n");
        return NULL;
    }
    if (o->prompt) {
        *len = strlen(o->prompt);
        char *s = malloc(*len + 1);
        if (s) memcpy(s, o->prompt, *len + 1);
        return s;
    }
    if (!o->file) {
        fprintf(stderr, "error: a prompt is required (-p TEXT or -f FILE)\n");
        return NULL;
    }
    FILE *f = fopen(o->file, "rb");
    if (!f) {
        fprintf(stderr, "error: cannot open '%s': %s\n", o->file, strerror(errno));
        return NULL;
    }
    size_t cap = 1 << 16, n = 0;
    char *s = malloc(cap);
    while (s) {
        size_t got = fread(s + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) break;
        if (n + 1 == cap) {
            char *t = cap > ((size_t)1 << 30) ? NULL : realloc(s, cap * 2);
            if (!t) { free(s); s = NULL; break; }
            s = t;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!s || bad) {
        free(s);
        fprintf(stderr, "error: cannot read '%s'\n", o->file);
        return NULL;
    }
    s[n] = 0;
    *len = n;
    return s;
}

int32_t *tool_tokenize(const sd_vocab *v, const char *text, size_t len, bool add_bos,
                       bool parse_special, int *n_out) {
    int cap = (int)(len < (1u << 28) ? len : (1u << 28)) + 8;
    int32_t *ids = malloc((size_t)cap * sizeof *ids);
    if (!ids) return NULL;
    int n = sd_tokenize(v, text, len, ids, cap, add_bos, parse_special);
    if (n > cap) {
        int32_t *t = realloc(ids, (size_t)n * sizeof *ids);
        if (!t) { free(ids); return NULL; }
        ids = t;
        n = sd_tokenize(v, text, len, ids, n, add_bos, parse_special);
    }
    if (n < 0) {
        fprintf(stderr, "error: tokenization failed: %s\n", sd_status_str(n));
        free(ids);
        return NULL;
    }
    *n_out = n;
    return ids;
}

void tool_json_str(FILE *f, const char *s, size_t n) {
    fputc('"', f);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"': fputs("\\\"", f); break;
        case '\\': fputs("\\\\", f); break;
        case '\n': fputs("\\n", f); break;
        case '\r': fputs("\\r", f); break;
        case '\t': fputs("\\t", f); break;
        default:
            if (c < 0x20) fprintf(f, "\\u%04x", c);
            else fputc(c, f);
        }
    }
    fputc('"', f);
}

void tool_json_ids(FILE *f, const int32_t *ids, int n) {
    fputc('[', f);
    for (int i = 0; i < n; i++) fprintf(f, i ? ", %d" : "%d", ids[i]);
    fputc(']', f);
}

tool_spec tool_spec_defaults(void) {
    sd_spec_params p = sd_spec_default_params(); /* the library's defaults */
    tool_spec s = {.draft = NULL, .draft_max = p.draft_max, .draft_min = 0, .p_min = p.p_min,
                   .lookup_min = p.lookup_min, .lookup_max = p.lookup_max, .ngram_static = NULL,
                   .ngram_dynamic = NULL, .tree_nodes = p.tree_nodes, .tree = p.tree, .draft_vocab = NULL,
                   .draft_threads = 2, .heads_q8 = p.heads_q8};
    return s;
}

bool tool_method_known(const char *m) { return sd_spec_method_needs(m) != 0; }

bool tool_method_needs_draft(const char *m) { return (sd_spec_method_needs(m) & SD_SPEC_NEEDS_DRAFT) != 0; }

bool tool_method_own_core(const char *m) { return (sd_spec_method_needs(m) & SD_SPEC_OWN_CORE) != 0; }

bool tool_method_needs_heads(const char *m) { return (sd_spec_method_needs(m) & SD_SPEC_NEEDS_HEADS) != 0; }

sd_spec_params tool_spec_params(const tool_spec *s) {
    sd_spec_params p = sd_spec_default_params();
    p.draft_max = s->draft_max;
    p.tree_nodes = s->tree_nodes;
    p.p_min = s->p_min;
    p.lookup_min = s->lookup_min;
    p.lookup_max = s->lookup_max;
    p.ngram_static = s->ngram_static;
    p.ngram_dynamic = s->ngram_dynamic;
    p.self_exit = s->self_exit;
    p.reject_max = s->reject_max;
    p.tree = s->tree;
    p.tree_given = s->tree_given;
    p.draft_vocab = s->draft_vocab;
    p.rasd_corpus = s->rasd_corpus;
    p.heads_q8 = s->heads_q8;
    p.draft_single_thread = s->draft_threads <= 1;
    return p;
}

sd_heads *tool_load_heads(const tool_spec *s, const sd_model *target) {
    char buf[PATH_MAX], err[512];
    const char *path = s->heads_path ? s->heads_path : tool_model_path("kernel-c-target-heads.gguf", buf, sizeof buf);
    sd_heads *h = NULL;
    sd_status st = sd_heads_load(path, target, &h, err, sizeof err);
    if (st != SD_OK) {
        fprintf(stderr, "error: cannot load heads '%s': %s (%s)\n", path, err[0] ? err : "", sd_status_str(st));
        return NULL;
    }
    return h;
}

int tool_method_budget(const char *m, const tool_spec *s) {
    sd_spec_params p = tool_spec_params(s);
    return sd_spec_method_budget(m, &p);
}

sd_status tool_make_drafter(const char *m, const tool_spec *s, const sd_model *draft, const sd_model *target,
                            sd_ctx *target_ctx, sd_threadpool *pool, int n_ctx, sd_drafter **out, char *err,
                            size_t n) {
    sd_spec_params p = tool_spec_params(s);
    sd_spec_models mm = {.target = target, .target_ctx = target_ctx, .draft = draft, .xtok_draft = s->xtok_model,
                         .heads = s->heads, .pool = pool, .n_ctx = n_ctx};
    sd_status st = sd_drafter_from_spec(m, &p, &mm, out, NULL, err, n);
    if (st != SD_OK && tool_method_needs_heads(m) && !s->heads && err && n)
        snprintf(err, n, "method '%s' needs trained heads (-mh HEADS)", m);
    return st;
}

/* "3,2,1" into branch[] (missing depths repeat the last value). */
static int parse_branch(const char *a, const char *v, int *branch) {
    int n = 0, last = 1;
    const char *c = v;
    while (*c && n < SD_TREE_MAX_DEPTH) {
        char *end;
        long x = strtol(c, &end, 10);
        if (end == c || x < 1 || x > 16 || (*end && *end != ',')) {
            fprintf(stderr, "error: %s expects counts in 1..16 separated by commas\n", a);
            return -1;
        }
        branch[n++] = last = (int)x;
        c = *end ? end + 1 : end;
    }
    for (; n < SD_TREE_MAX_DEPTH; n++) branch[n] = last;
    return 0;
}

int tool_spec_opt(const char *a, const char *next, tool_spec *s) {
    static const char *const names[] = {"-md", "--model-draft", "--draft-max", "--draft-min", "--draft-p-min",
                                        "--lookup-min", "--lookup-max", "--ngram-static", "--ngram-dynamic",
                                        "--tree-nodes", "--tree-depth", "--tree-width", "--tree-topk",
                                        "--tree-p-min", "--tree-branch", "--self-exit", "--draft-reject-max",
                                        "--draft-vocab", "--rasd-corpus",
                                        "--draft-threads", "-mh", "--model-heads", "--heads-q8",
                                        "-mdx", "--model-draft-xtok"};
    int which = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(a, names[i])) which = i;
    if (which < 0) return 0;
    if (!next) {
        fprintf(stderr, "error: %s needs a value\n", a);
        return -1;
    }
    int rc = 0;
    if (which >= 10 && which <= 14) s->tree_given = true;
    switch (which) {
    case 0: case 1: s->draft = next; break;
    case 2:
        if (!strcmp(next, "auto")) s->draft_max = SD_DRAFT_AUTO;
        else if (!strcmp(next, "feedback")) s->draft_max = SD_DRAFT_FEEDBACK;
        else rc = parse_int(a, next, 0, SD_MAX_DRAFT_POS, &s->draft_max);
        break;
    case 3: rc = parse_int(a, next, 0, SD_MAX_DRAFT_POS, &s->draft_min); break;
    case 4:
        rc = parse_float(a, next, &s->p_min);
        if (rc == 0 && !(s->p_min >= 0.0f && s->p_min <= 1.0f)) {
            fprintf(stderr, "error: --draft-p-min expects a number in [0, 1]\n");
            rc = -1;
        }
        break;
    case 5: rc = parse_int(a, next, 1, 16, &s->lookup_min); break;
    case 6: rc = parse_int(a, next, 1, 16, &s->lookup_max); break;
    case 7: s->ngram_static = next; break;
    case 8: s->ngram_dynamic = next; break;
    case 9:
        if (!strcmp(next, "auto")) s->tree_nodes = SD_DRAFT_AUTO;
        else rc = parse_int(a, next, 1, SD_MAX_DRAFT_POS, &s->tree_nodes);
        break;
    case 10: rc = parse_int(a, next, 1, SD_TREE_MAX_DEPTH, &s->tree.depth); break;
    case 11: rc = parse_int(a, next, 1, 16, &s->tree.width); break;
    case 12: rc = parse_int(a, next, 1, 16, &s->tree.topk); break;
    case 13:
        rc = parse_float(a, next, &s->tree.p_min);
        if (rc == 0 && !(s->tree.p_min >= 0.0f && s->tree.p_min <= 1.0f)) {
            fprintf(stderr, "error: --tree-p-min expects a number in [0, 1]\n");
            rc = -1;
        }
        break;
    case 14: rc = parse_branch(a, next, s->tree.branch); break;
    case 15: rc = parse_int(a, next, 0, 1024, &s->self_exit); break;
    case 16:
        rc = parse_float(a, next, &s->reject_max);
        if (rc == 0 && !(s->reject_max >= 0.0f && s->reject_max <= 1.0f)) {
            fprintf(stderr, "error: --draft-reject-max expects a number in [0, 1]\n");
            rc = -1;
        }
        break;
    case 17: s->draft_vocab = next; break;
    case 18: s->rasd_corpus = next; break;
    case 19: rc = parse_int(a, next, 1, 2, &s->draft_threads); break;
    case 20: case 21: s->heads_path = next; break;
    case 22: rc = parse_int(a, next, 0, 1, &s->heads_q8); break;
    case 23: case 24: s->xtok_draft = next; break;
    }
    return rc ? -1 : 2;
}
