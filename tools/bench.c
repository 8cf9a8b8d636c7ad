/* bench.c - `specdec bench`: every benchmark prompt with every decoding
 * method in one process, plain decoding (`none`) first as the baseline.
 *
 * Loop order: run -> prompt -> method, so each prompt's methods run back to
 * back (the lossless check compares with `none` of the same prompt and run)
 * and drafters are made fresh per run (an ngram-cache's dynamic cache learns
 * across the prompts of one run but never sees a previous run's output of
 * the same prompt).
 *
 * Figures per task and overall, summed over the prompts of the task (and
 * runs): tokens/s = generated tokens / gen_ms; speedup = that / the same for
 * `none` over the same (run, prompt) pairs; tokens per step = (n_generated -
 * 1) / steps (the first token comes from the prompt forward; each target
 * verification forward yields its accepted drafts plus one bonus token).
 *
 * Defaults: greedy (--temp 0), -t 2, --runs 1, --draft-max auto, --draft-min 0,
 * --draft-p-min 0.5 (best of 0 / 0.5 / 0.8 for the shipped pair on the
 * shipped prompts), --lookup-min 1 --lookup-max 4, no n-gram cache files
 * (--ngram-static/--ngram-dynamic), -n N overrides every max_tokens, --limit N
 * reads the first N prompts of each file. JSON (--out) and SVG (--svg) only
 * when asked (parent directories are created). Exit 0; 1 on errors; 2 when
 * a greedy run's speculative output differs from `none`. */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "common.h"
#include "progress.h"

/* Methods: entries of --methods, "none" first (the baseline, index 0).
 * An entry is METHOD or METHOD:K (budget K, or "auto"), so one run can set
 * several draft lengths side by side, e.g. draft:2,draft:4,draft:auto; a
 * suffix /pX sets that entry's --draft-p-min to X (draft:4/p0 drafts
 * exactly 4 tokens a step: a truly fixed length, with no confidence stop). */
enum { M_NONE = 0, M_COUNT = 40 };
/* "auto", "feedback" or the number. */
static const char *budget_str(int k, char buf[16]) {
    if (k == SD_DRAFT_AUTO) return "auto";
    if (k == SD_DRAFT_FEEDBACK) return "feedback";
    snprintf(buf, 16, "%d", k);
    return buf;
}

#define BUDGET_DEFAULT (-100) /* the spec's draft-max (chains) or tree-nodes (trees); distinct from
                                 SD_DRAFT_AUTO and SD_DRAFT_FEEDBACK */

#define MAX_FILES 32
#define N_POS_SHOWN 4

typedef struct bench_opts {
    tool_spec spec;             /* -md, --draft-*, --lookup-*, --ngram-* (shared with generate) */
    const char *files[MAX_FILES];
    int n_files;
    char label[M_COUNT][40];    /* as given, e.g. "draft:4"                  */
    char method[M_COUNT][32];   /* "draft"                                   */
    int budget[M_COUNT];        /* BUDGET_DEFAULT, SD_DRAFT_AUTO or K        */
    float p_min[M_COUNT];       /* the entry's /pX, or < 0: --draft-p-min    */
    int n_methods;
    bool methods_given;
    int runs, limit;
    const char *out, *svg;
} bench_opts;

static int parse_int_opt(const char *a, const char *s, int lo, int hi, int *out) {
    char *end = NULL;
    errno = 0;
    long v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || !end || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "error: %s expects an integer in [%d, %d], got '%s'\n", a, lo, hi, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

static int add_method(bench_opts *b, const char *t) {
    if (b->n_methods == M_COUNT) {
        fprintf(stderr, "error: at most %d methods\n", M_COUNT);
        return -1;
    }
    if (strlen(t) >= sizeof b->label[0]) {
        fprintf(stderr, "error: bad method '%s'\n", t);
        return -1;
    }
    /* METHOD[:K|:auto|:feedback][/pX], parsed by the library's registry */
    char name[32], err[256] = "";
    sd_spec_params sp = sd_spec_default_params();
    sp.p_min = -1.0f; /* stays below 0 without /pX: the command line's --draft-p-min */
    bool explicit_budget = false;
    if (sd_spec_parse(t, name, sizeof name, &sp, &explicit_budget, err, sizeof err) != SD_OK) {
        fprintf(stderr, "error: %s\n", err); /* err names the entry */
        return -1;
    }
    int budget = explicit_budget ? sd_spec_method_budget(name, &sp) : BUDGET_DEFAULT;
    float p_min = sp.p_min;
    int m = !strcmp(name, "none") ? M_NONE : b->n_methods;
    if (m == M_NONE && b->n_methods > 0) return 0; /* none is always entry 0 */
    snprintf(b->label[m], sizeof b->label[m], "%s", t);
    snprintf(b->method[m], sizeof b->method[m], "%s", name);
    b->budget[m] = budget;
    b->p_min[m] = p_min;
    b->n_methods++;
    return 0;
}

static int add_methods(bench_opts *b, const char *list) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", list);
    if (b->n_methods == 0 && add_method(b, "none") != 0) return -1;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        if (add_method(b, t) != 0) return -1;
    b->methods_given = true;
    return 0;
}

static int add_files(bench_opts *b, char *list) {
    /* argv strings are writable; split the comma list in place */
    for (char *save = NULL, *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (b->n_files == MAX_FILES) {
            fprintf(stderr, "error: at most %d prompt files\n", MAX_FILES);
            return -1;
        }
        b->files[b->n_files++] = t;
    }
    return 0;
}

static int bench_opt(const char *a, const char *next, void *user) {
    bench_opts *b = user;
    int used = tool_spec_opt(a, next, &b->spec);
    if (used != 0) return used;
    static const char *const names[] = {"--prompts", "--methods", "--runs", "--out", "--svg", "--limit"};
    int which = -1;
    for (int i = 0; i < (int)(sizeof names / sizeof names[0]); i++)
        if (!strcmp(a, names[i])) which = i;
    if (which < 0) return 0;
    if (!next) {
        fprintf(stderr, "error: %s needs a value\n", a);
        return -1;
    }
    int rc = 0;
    switch (which) {
    case 0: rc = add_files(b, (char *)next); break;
    case 1: rc = add_methods(b, next); break;
    case 2: rc = parse_int_opt(a, next, 1, 1000, &b->runs); break;
    case 3: b->out = next; break;
    case 4: b->svg = next; break;
    case 5: rc = parse_int_opt(a, next, 1, INT_MAX, &b->limit); break;
    }
    return rc ? -1 : 2;
}

/* ------------------------------------------------------------ prompts */

typedef struct bprompt {
    char *id, *task;
    int32_t *ids;
    int n_ids, max_tokens, task_idx;
} bprompt;

typedef struct prompt_set {
    bprompt *p;
    int n, cap;
    char *tasks[64];
    int n_tasks;
} prompt_set;

static int task_index(prompt_set *s, const char *task) {
    for (int i = 0; i < s->n_tasks; i++)
        if (!strcmp(s->tasks[i], task)) return i;
    if (s->n_tasks == 64) return -1;
    s->tasks[s->n_tasks] = strdup(task);
    return s->tasks[s->n_tasks] ? s->n_tasks++ : -1;
}

/* Reads one JSONL file; n_override > 0 replaces every max_tokens. */
static int read_prompts(const char *path, const sd_vocab *v, int n_override, int limit, prompt_set *s) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "error: cannot open '%s': %s\n", path, strerror(errno));
        return -1;
    }
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0, n_read = 0, rc = 0;
    while (getline(&line, &cap, f) >= 0 && (limit <= 0 || n_read < limit)) {
        lineno++;
        const char *q = line;
        while (*q == ' ' || *q == '\t' || *q == '\r' || *q == '\n') q++;
        if (!*q) continue;
        json_error_t je;
        json_t *o = json_loads(line, 0, &je);
        const char *id = NULL, *task = NULL, *text = NULL;
        json_int_t maxt = 128;
        if (!o || json_unpack_ex(o, &je, 0, "{s:s, s?s, s:s, s?I}", "id", &id, "task", &task, "prompt",
                                 &text, "max_tokens", &maxt) != 0) {
            fprintf(stderr, "error: %s:%d: %s\n", path, lineno, je.text);
            json_decref(o);
            rc = -1;
            break;
        }
        if (!task) task = "default";
        if (n_override > 0) maxt = n_override;
        if (maxt < 1 || maxt > (1 << 20)) {
            fprintf(stderr, "error: %s:%d: max_tokens %lld out of range\n", path, lineno, (long long)maxt);
            json_decref(o);
            rc = -1;
            break;
        }
        if (s->n == s->cap) {
            int nc = s->cap ? s->cap * 2 : 64;
            bprompt *t = realloc(s->p, (size_t)nc * sizeof *t);
            if (!t) { json_decref(o); rc = -1; break; }
            s->p = t;
            s->cap = nc;
        }
        bprompt *p = &s->p[s->n];
        memset(p, 0, sizeof *p);
        p->id = strdup(id);
        p->task = strdup(task);
        p->task_idx = task_index(s, task);
        p->max_tokens = (int)maxt;
        size_t len = json_string_length(json_object_get(o, "prompt"));
        p->ids = tool_tokenize(v, text, len, true, false, &p->n_ids);
        json_decref(o);
        if (!p->id || !p->task || p->task_idx < 0 || !p->ids) {
            fprintf(stderr, "error: %s:%d: out of memory or too many tasks\n", path, lineno);
            free(p->id); free(p->task); free(p->ids);
            rc = -1;
            break;
        }
        s->n++;
        n_read++;
    }
    free(line);
    fclose(f);
    if (rc == 0 && n_read == 0) fprintf(stderr, "warning: no prompts in '%s'\n", path);
    return rc;
}

/* ------------------------------------------------------------ records */

typedef struct brec {
    bool ok;
    bool match;           /* ids equal none's (temp 0)      */
    int mismatch_at;      /* first differing index, or -1   */
    uint64_t hash;        /* FNV-1a of the ids              */
    sd_spec_stats st;
} brec;

typedef struct bagg {
    int n;                           /* generations                   */
    double gen, gen_ms, steps, drafted, accepted, draft_ms, verify_ms;
    double none_gen, none_ms;        /* none over the same (run, prompt) */
    double drafted_at[SD_MAX_DRAFT_POS], accepted_at[SD_MAX_DRAFT_POS];
} bagg;

static uint64_t fnv1a(const int32_t *ids, int n) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) {
        uint32_t x = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (x >> (8 * b)) & 0xff;
            h *= 1099511628211ull;
        }
    }
    return h;
}

/* task < 0: all prompts. */
static void aggregate(const brec *rec, const prompt_set *ps, int runs, int task, int m, bagg *a) {
    memset(a, 0, sizeof *a);
    for (int r = 0; r < runs; r++)
        for (int p = 0; p < ps->n; p++) {
            if (task >= 0 && ps->p[p].task_idx != task) continue;
            const brec *x = &rec[((size_t)r * ps->n + p) * M_COUNT + m];
            const brec *base = &rec[((size_t)r * ps->n + p) * M_COUNT + M_NONE];
            if (!x->ok || !base->ok) continue;
            a->n++;
            a->gen += (double)x->st.n_generated;
            a->gen_ms += x->st.gen_ms;
            a->steps += (double)x->st.steps;
            a->drafted += (double)x->st.drafted;
            a->accepted += (double)x->st.accepted;
            a->draft_ms += x->st.draft_ms;
            a->verify_ms += x->st.verify_ms;
            a->none_gen += (double)base->st.n_generated;
            a->none_ms += base->st.gen_ms;
            for (int i = 0; i < SD_MAX_DRAFT_POS; i++) {
                a->drafted_at[i] += (double)x->st.drafted_at[i];
                a->accepted_at[i] += (double)x->st.accepted_at[i];
            }
        }
}

static double tps(double gen, double ms) { return ms > 0 ? gen / (ms / 1e3) : 0; }
static double agg_tps(const bagg *a) { return tps(a->gen, a->gen_ms); }
static double agg_speedup(const bagg *a) {
    double b = tps(a->none_gen, a->none_ms);
    return b > 0 ? agg_tps(a) / b : 0;
}
/* tokens per target verification forward, bonus included */
static double agg_per_step(const bagg *a) { return a->steps > 0 ? (a->gen - a->n) / a->steps : 0; }

/* ------------------------------------------------------------ drafters */

typedef struct bench_env {
    sd_model *target, *draft;
    sd_model *xtok_draft;       /* -mdx: draft-xtok's draft (NULL: draft)  */
    sd_ctx *ctx;                /* the target context every method runs on */
    sd_ctx *ctx_own;            /* ... except own-core methods (pool_own)  */
    sd_threadpool *pool_own;
    sd_threadpool *pool;
    int n_ctx;
    const bench_opts *b;
} bench_env;

/* Whether any active or skipped method uses the draft model. */
static bool need_draft_json(const bench_opts *b, const bool *active, const bool *skipped) {
    for (int m = 0; m < b->n_methods; m++)
        if ((active[m] || skipped[m]) && tool_method_needs_draft(b->method[m])) return true;
    return false;
}

/* The target context method m generates on. */
static sd_ctx *method_ctx(const bench_env *e, int m) {
    return tool_method_own_core(e->b->method[m]) && e->ctx_own ? e->ctx_own : e->ctx;
}

static sd_status make_drafter(const bench_env *e, int m, sd_drafter **out, char *err, size_t n) {
    tool_spec spec = e->b->spec;
    if (e->b->p_min[m] >= 0.0f) spec.p_min = e->b->p_min[m];
    return tool_make_drafter(e->b->method[m], &spec, e->draft, e->target, method_ctx(e, m), e->pool, e->n_ctx,
                             out, err, n);
}

/* The budget (draft-max or node count) of method entry m. */
static int method_budget(const bench_opts *b, int m) {
    if (m == M_NONE) return 0;
    return b->budget[m] != BUDGET_DEFAULT ? b->budget[m] : tool_method_budget(b->method[m], &b->spec);
}

/* ------------------------------------------------------------ output */

static void print_table(const bench_opts *b, const brec *rec, const prompt_set *ps, int runs, const bool *active) {
    printf("| task     | method           |   n |  tok/s | speedup | tok/step | accept |");
    for (int i = 0; i < N_POS_SHOWN; i++) printf(" acc@%d |", i + 1);
    printf(" draft %% |\n");
    printf("|----------|------------------|-----|--------|---------|----------|--------|");
    for (int i = 0; i < N_POS_SHOWN; i++) printf("-------|");
    printf("---------|\n");
    for (int t = 0; t <= ps->n_tasks; t++) {
        int task = t < ps->n_tasks ? t : -1;
        const char *tname = task >= 0 ? ps->tasks[task] : "overall";
        for (int m = 0; m < M_COUNT; m++) {
            if (!active[m]) continue;
            bagg a;
            aggregate(rec, ps, runs, task, m, &a);
            if (a.n == 0) continue;
            printf("| %-8.8s | %-16s | %3d | %6.1f | %6.2fx | %8.2f |", tname, b->label[m], a.n,
                   agg_tps(&a), agg_speedup(&a), agg_per_step(&a));
            if (m == M_NONE) {
                printf("      - |");
                for (int i = 0; i < N_POS_SHOWN; i++) printf("     - |");
                printf("       - |\n");
                continue;
            }
            if (a.drafted > 0) printf(" %5.1f%% |", 100.0 * a.accepted / a.drafted);
            else printf("      - |");
            for (int i = 0; i < N_POS_SHOWN; i++) {
                if (a.drafted_at[i] > 0) printf(" %4.0f%% |", 100.0 * a.accepted_at[i] / a.drafted_at[i]);
                else printf("     - |");
            }
            printf(" %6.1f%% |\n", a.gen_ms > 0 ? 100.0 * a.draft_ms / a.gen_ms : 0);
        }
    }
    printf("n: generations; tok/s: generated tokens / generation time (prefill excluded); speedup: vs none\n"
           "on the same prompts; tok/step: (generated - 1) / target verification forwards (bonus included);\n"
           "accept: accepted / drafted; acc@k: acceptance at draft position k (of the drafts that reached it);\n"
           "draft %%: share of generation time spent in the drafter.\n");
}

static int mkdir_p(const char *path) {
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

static json_t *json_summary(const bench_opts *b, const brec *rec, const prompt_set *ps, int runs, const bool *active) {
    json_t *arr = json_array();
    for (int t = 0; t <= ps->n_tasks; t++) {
        int task = t < ps->n_tasks ? t : -1;
        for (int m = 0; m < M_COUNT; m++) {
            if (!active[m]) continue;
            bagg a;
            aggregate(rec, ps, runs, task, m, &a);
            if (a.n == 0) continue;
            json_t *acc = json_array();
            for (int i = 0; i < SD_MAX_DRAFT_POS && a.drafted_at[i] > 0; i++)
                json_array_append_new(acc, json_real(a.accepted_at[i] / a.drafted_at[i]));
            json_array_append_new(
                arr, json_pack("{s:s, s:s, s:i, s:f, s:f, s:f, s:f, s:f, s:o, s:f, s:f}", "task",
                               task >= 0 ? ps->tasks[task] : "overall", "method", b->label[m], "n", a.n,
                               "tokens_per_s", agg_tps(&a), "speedup", agg_speedup(&a), "mean_accepted",
                               agg_per_step(&a), "drafted", a.drafted, "accept_rate",
                               a.drafted > 0 ? a.accepted / a.drafted : 0.0, "accept_by_pos", acc,
                               "draft_ms_share", a.gen_ms > 0 ? a.draft_ms / a.gen_ms : 0.0, "gen_ms", a.gen_ms));
        }
    }
    return arr;
}

static int write_json(const char *path, const bench_env *e, const tool_opts *o, const char *tpath,
                      const char *dpath, const brec *rec, const prompt_set *ps, const bool *active,
                      const bool *skipped, int mismatches) {
    const bench_opts *b = e->b;
    json_t *files = json_array(), *methods = json_array(), *skip = json_array();
    for (int i = 0; i < b->n_files; i++) json_array_append_new(files, json_string(b->files[i]));
    for (int m = 0; m < M_COUNT; m++) {
        if (active[m]) json_array_append_new(methods, json_string(b->label[m]));
        if (skipped[m]) json_array_append_new(skip, json_string(b->label[m]));
    }
    char when[64];
    time_t now = time(NULL);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    json_t *cfg = json_pack(
        "{s:s, s:s, s:o, s:s, s:s, s:i, s:s, s:f, s:I, s:i, s:i, s:i, s:i, s:f, s:i, s:i, s:s?, s:s?, s:i, s:o, s:o}",
        "date", when, "target", tpath, "draft", need_draft_json(b, active, skipped) ? json_string(dpath) : json_null(),
        "quantize", o->quantize == SD_TYPE_NONE ? "none" : sd_type_name(o->quantize), "backend",
        sd_backend_name(o->backend), "threads", o->n_threads, "sampler", o->sp.temp > 0 ? "sample" : "greedy",
        "temp", (double)o->sp.temp, "seed", (json_int_t)o->sp.seed, "runs", b->runs, "draft_max", b->spec.draft_max, "tree_nodes", b->spec.tree_nodes,
        "draft_min", b->spec.draft_min, "draft_p_min", (double)b->spec.p_min, "lookup_min", b->spec.lookup_min, "lookup_max",
        b->spec.lookup_max, "ngram_static", b->spec.ngram_static, "ngram_dynamic", b->spec.ngram_dynamic, "n_ctx", e->n_ctx,
        "prompt_files", files, "methods", methods);
    json_object_set_new(cfg, "skipped_methods", skip);
    if (b->spec.draft_vocab) json_object_set_new(cfg, "draft_vocab", json_string(b->spec.draft_vocab));
    if (b->spec.xtok_draft) json_object_set_new(cfg, "draft_xtok_model", json_string(b->spec.xtok_draft));
    if (o->sp.temp > 0) {
        json_object_set_new(cfg, "top_k", json_integer(o->sp.top_k));
        json_object_set_new(cfg, "top_p", json_real(o->sp.top_p));
        json_object_set_new(cfg, "min_p", json_real(o->sp.min_p));
    }
    json_t *recs = json_array();
    for (int r = 0; r < b->runs; r++)
        for (int p = 0; p < ps->n; p++)
            for (int m = 0; m < M_COUNT; m++) {
                const brec *x = &rec[((size_t)r * ps->n + p) * M_COUNT + m];
                if (!active[m] || !x->ok) continue;
                const sd_spec_stats *s = &x->st;
                json_t *acc = json_array(), *dra = json_array();
                for (int i = 0; i < SD_MAX_DRAFT_POS && s->drafted_at[i] > 0; i++) {
                    json_array_append_new(acc, json_integer(s->accepted_at[i]));
                    json_array_append_new(dra, json_integer(s->drafted_at[i]));
                }
                char hash[17];
                snprintf(hash, sizeof hash, "%016llx", (unsigned long long)x->hash);
                json_t *j = json_pack(
                    "{s:s, s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:o, s:o, s:s}", "id",
                    ps->p[p].id, "task", ps->p[p].task, "method", b->label[m], "run", r, "n_prompt",
                    ps->p[p].n_ids, "n_generated", (json_int_t)s->n_generated, "steps", (json_int_t)s->steps,
                    "drafted", (json_int_t)s->drafted, "accepted", (json_int_t)s->accepted, "prompt_ms",
                    s->prompt_ms, "gen_ms", s->gen_ms, "draft_ms", s->draft_ms, "verify_ms", s->verify_ms,
                    "accept_by_pos", acc, "drafted_by_pos", dra, "ids_fnv1a", hash);
                if (o->sp.temp <= 0 && m != M_NONE) {
                    json_object_set_new(j, "matches_none", json_boolean(x->match));
                    if (!x->match) json_object_set_new(j, "mismatch_at", json_integer(x->mismatch_at));
                }
                json_array_append_new(recs, j);
            }
    json_t *root = json_pack("{s:o, s:o, s:o, s:i}", "config", cfg, "records", recs, "summary",
                             json_summary(b, rec, ps, b->runs, active), "lossless_mismatches", mismatches);
    int rc = 0;
    if (!root || mkdir_p(path) != 0 || json_dump_file(root, path, JSON_INDENT(1) | JSON_PRESERVE_ORDER) != 0) {
        fprintf(stderr, "error: cannot write '%s'\n", path);
        rc = -1;
    } else {
        fprintf(stderr, "bench: wrote %s\n", path);
    }
    json_decref(root);
    return rc;
}

/* Grouped bars: speedup per task (and overall), one bar per speculative
 * method; the black line at 1x is `none`. */
static int write_svg(const char *path, const brec *rec, const prompt_set *ps, int runs, const bool *active,
                     const tool_opts *o, const bench_opts *b) {
    static const char *const palette[10] = {"#9e9e9e", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd",
                                            "#d62728", "#8c564b", "#e377c2", "#17becf", "#bcbd22"};
#define color(m) palette[(m) % 10]
    int n_groups = ps->n_tasks + 1, n_m = 0;
    for (int m = 1; m < M_COUNT; m++) n_m += active[m];
    if (n_m == 0) n_m = 1;
    double vals[65][M_COUNT], vmax = 1.0;
    for (int g = 0; g < n_groups; g++)
        for (int m = 1; m < M_COUNT; m++) {
            bagg a;
            vals[g][m] = 0;
            if (!active[m]) continue;
            aggregate(rec, ps, runs, g < ps->n_tasks ? g : -1, m, &a);
            vals[g][m] = a.n ? agg_speedup(&a) : 0;
            if (vals[g][m] > vmax) vmax = vals[g][m];
        }
    vmax = (double)(int)(vmax + 0.999);
    const int gw = n_m * 28 + 30, x0 = 60, y0 = 40, ph = 240, H = 340;
    int W = x0 + 20 + n_groups * gw;
    if (W < 560) W = 560;
    if (mkdir_p(path) != 0) return -1;
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "error: cannot write '%s': %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" "
               "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    char dm[16];
    fprintf(f, "<text x=\"%d\" y=\"20\" font-size=\"14\">speedup vs plain decoding (%s, %d threads, draft-max %s)"
               "</text>\n", x0, o->sp.temp > 0 ? "sampling" : "greedy", o->n_threads, budget_str(b->spec.draft_max, dm));
    for (int i = 0; i <= (int)vmax; i++) {
        double y = y0 + ph - ph * i / vmax;
        fprintf(f, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n", x0, W - 20, y, y,
                i == 1 ? "#000" : "#ddd");
        fprintf(f, "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%dx</text>\n", x0 - 6, y + 4, i);
    }
    for (int g = 0; g < n_groups; g++) {
        int gx = x0 + 15 + g * gw, k = 0;
        for (int m = 1; m < M_COUNT; m++) {
            if (!active[m]) continue;
            double h = ph * vals[g][m] / vmax, x = gx + k * 28;
            fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"24\" height=\"%.1f\" fill=\"%s\"/>\n", x, y0 + ph - h,
                    h, color(m));
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\" font-size=\"10\">%.2f</text>\n", x + 12,
                    y0 + ph - h - 3, vals[g][m]);
            k++;
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%s</text>\n", gx + n_m * 14.0 - 2, y0 + ph + 18,
                g < ps->n_tasks ? ps->tasks[g] : "overall");
    }
    int lx = x0;
    for (int m = 1; m < M_COUNT; m++) {
        if (!active[m]) continue;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/><text x=\"%d\" y=\"%d\">%s</text>\n",
                lx, H - 30, color(m), lx + 16, H - 20, b->label[m]);
        lx += 110;
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\">black line: none (1x)</text>\n</svg>\n", lx, H - 20);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) return -1;
    fprintf(stderr, "bench: wrote %s\n", path);
    return 0;
}

/* ------------------------------------------------------------ main */

static bool has_arg(int argc, char **argv, const char *a, const char *b) {
    for (int i = 2; i < argc; i++)
        if (!strcmp(argv[i], a) || (b && !strcmp(argv[i], b))) return true;
    return false;
}

int cmd_bench(int argc, char **argv) {
    tool_opts o;
    bench_opts b = {.spec = tool_spec_defaults(), .runs = 1};
    if (tool_parse(argc, argv, 2, &o, bench_opt, &b) != 0) return 1;
    /* bench defaults differ from generate's: greedy, 2 threads */
    if (!has_arg(argc, argv, "--temp", NULL)) o.sp.temp = 0.0f;
    if (!has_arg(argc, argv, "-t", "--threads")) o.n_threads = 2;
    int n_override = has_arg(argc, argv, "-n", "--n-predict") ? o.n_predict : 0;
    if (b.n_files == 0) {
        fprintf(stderr, "error: bench needs --prompts FILE.jsonl[,FILE...]\n");
        return 1;
    }
    if (b.spec.lookup_min > b.spec.lookup_max) {
        fprintf(stderr, "error: --lookup-min > --lookup-max\n");
        return 1;
    }
    if (!b.methods_given) add_methods(&b, "none,draft,lookup,ngram-cache");

    char tbuf[PATH_MAX], dbuf[PATH_MAX];
    const char *tpath = o.model ? o.model : tool_model_path("kernel-c-target.gguf", tbuf, sizeof tbuf);
    const char *dpath = b.spec.draft ? b.spec.draft : tool_model_path("kernel-c-draft.gguf", dbuf, sizeof dbuf);
    int ret = 1;
    prompt_set ps = {0};
    brec *rec = NULL;
    int32_t *out = NULL, *base_ids = NULL;
    sd_ctx *ctx = NULL;
    sd_cost_table *costs = NULL;
    sd_drafter *dr[M_COUNT] = {0};
    sd_heads *heads = NULL;
    sd_heads_timing htime[M_COUNT];
    memset(htime, 0, sizeof htime);
    bench_env e = {.b = &b};
    bool active[M_COUNT] = {0}, skipped[M_COUNT] = {0};
    tool_progress *prog = NULL;

    if (sd_threadpool_new(o.n_threads, &e.pool) != SD_OK) goto done;
    if (!(e.target = tool_load_model(&o, tpath))) goto done;
    bool need_draft = false;
    for (int m = 0; m < b.n_methods; m++) need_draft |= tool_method_needs_draft(b.method[m]);
    if (need_draft && !(e.draft = tool_load_model(&o, dpath))) goto done;
    if (b.spec.xtok_draft) { /* -mdx: draft-xtok's own draft model */
        if (!(e.xtok_draft = tool_load_model(&o, b.spec.xtok_draft))) goto done;
        b.spec.xtok_model = e.xtok_draft;
    }
    bool need_heads = false;
    for (int m = 0; m < b.n_methods; m++) need_heads |= tool_method_needs_heads(b.method[m]);
    if (need_heads) {
        if (!(heads = tool_load_heads(&b.spec, e.target))) goto done;
        b.spec.heads = heads;
    }
    const sd_vocab *vocab = sd_model_vocab(e.target);
    for (int i = 0; i < b.n_files; i++)
        if (read_prompts(b.files[i], vocab, n_override, b.limit, &ps) != 0) goto done;
    if (ps.n == 0) {
        fprintf(stderr, "error: no prompts\n");
        goto done;
    }
    int max_gen = 0;
    e.n_ctx = 0;
    for (int p = 0; p < ps.n; p++) {
        int need = ps.p[p].n_ids + ps.p[p].max_tokens + SD_MAX_DRAFT_POS + 8;
        if (need > e.n_ctx) e.n_ctx = need;
        if (ps.p[p].max_tokens > max_gen) max_gen = ps.p[p].max_tokens;
    }
    if (o.n_ctx > 0) e.n_ctx = o.n_ctx;
    sd_ctx_params cp = sd_ctx_default_params();
    cp.n_ctx = e.n_ctx;
    cp.pool = e.pool;
    cp.attn_compat = o.attn_compat;
    sd_status st = sd_ctx_new(e.target, &cp, &ctx);
    e.ctx = ctx;
    /* methods that draft on a core of their own (pearl) run the target on a
     * second context whose pool has one thread less */
    for (int m = 1; m < b.n_methods && st == SD_OK; m++) {
        if (!tool_method_own_core(b.method[m]) || e.ctx_own) continue;
        int t = o.n_threads > 1 ? o.n_threads - 1 : 1;
        if ((st = sd_threadpool_new(t, &e.pool_own)) == SD_OK) {
            sd_ctx_params cp2 = cp;
            cp2.pool = e.pool_own;
            st = sd_ctx_new(e.target, &cp2, &e.ctx_own);
        }
    }
    rec = calloc((size_t)b.runs * ps.n * M_COUNT, sizeof *rec);
    out = malloc((size_t)max_gen * sizeof *out);
    base_ids = malloc((size_t)max_gen * sizeof *base_ids);
    if (st != SD_OK || !rec || !out || !base_ids) {
        fprintf(stderr, "error: cannot create the context: %s\n", sd_status_str(st != SD_OK ? st : SD_ERR_NOMEM));
        goto done;
    }

    /* which methods exist: constructors returning UNSUPPORTED are skipped */
    char err[512];
    active[M_NONE] = true;
    for (int m = 1; m < b.n_methods; m++) {
        st = make_drafter(&e, m, &dr[m], err, sizeof err);
        if (st == SD_ERR_UNSUPPORTED) {
            fprintf(stderr, "bench: method %s is not supported (yet); skipped\n", b.label[m]);
            skipped[m] = true;
            continue;
        }
        if (st != SD_OK) {
            fprintf(stderr, "error: method %s: %s%s%s\n", b.label[m], sd_status_str(st), err[0] ? ": " : "", err);
            goto done;
        }
        active[m] = true;
    }
    sd_model_info ti;
    sd_model_get_info(e.target, &ti);
    fprintf(stderr, "bench: %d prompts, %d task(s), methods", ps.n, ps.n_tasks);
    for (int m = 0; m < M_COUNT; m++)
        if (active[m]) fprintf(stderr, " %s", b.label[m]);
    char dm[16];
    fprintf(stderr, "; %s, temp %.2f, %d threads, %s kernels, target %s, n_ctx %d, runs %d, draft-max %s, "
                    "draft-p-min %.2f\n", o.sp.temp > 0 ? "sampling" : "greedy", (double)o.sp.temp, o.n_threads,
            sd_backend_name(o.backend), sd_type_name(ti.weight_type), e.n_ctx, b.runs,
            budget_str(b.spec.draft_max, dm), (double)b.spec.p_min);

    if (b.spec.draft_vocab) fprintf(stderr, "bench: draft output head restricted to the ids of %s\n", b.spec.draft_vocab);
    sd_gen_params gp = sd_gen_default_params();
    gp.ignore_eos = true;
    for (int m = 1; m < b.n_methods; m++)
        if (active[m] && method_budget(&b, m) == SD_DRAFT_AUTO && !costs) {
            fprintf(stderr, "bench: measuring the target's forward costs for --draft-max auto\n");
            if ((st = sd_cost_table_measure(ctx, &costs)) != SD_OK) {
                fprintf(stderr, "error: cost table: %s\n", sd_status_str(st));
                goto done;
            }
        }
    gp.costs = costs;
    gp.draft_min = b.spec.draft_min;
    /* warm-up (not recorded): page in the models' and heads' weights. Not the n-gram
     * methods: a dynamic cache saved to a file would keep the warm-up text. */
    for (int m = 0; m < M_COUNT; m++) {
        if (!active[m] || (m != M_NONE && !tool_method_needs_draft(b.method[m]) && !tool_method_needs_heads(b.method[m])))
            continue;
        sd_sampler *smp = NULL;
        int n = 0;
        gp.n_predict = max_gen < 16 ? max_gen : 16;
        gp.draft_max = method_budget(&b, m);
        if (sd_sampler_new(&o.sp, ti.n_vocab, &smp) == SD_OK)
            sd_generate(method_ctx(&e, m), smp, dr[m], ps.p[0].ids, ps.p[0].n_ids, &gp, out, &n, NULL);
        sd_sampler_free(smp);
    }

    int mismatches = 0, failures = 0;
    /* Progress in generations (runs x prompts x methods), on a terminal only
     * (NULL otherwise). There each prompt's line is collected in lbuf and
     * printed whole once its methods are done, so that it never shares the
     * screen line with the meter; off a terminal it goes straight to stderr,
     * piece by piece, as always. */
    int n_active = 0;
    for (int m = 0; m < M_COUNT; m++) n_active += active[m];
    prog = tool_progress_begin("bench", (int64_t)b.runs * ps.n * n_active, "generations");
    int64_t n_done = 0;
    for (int r = 0; r < b.runs; r++) {
        /* fresh drafters per run: a dynamic n-gram cache must not have seen
         * the warm-up or an earlier run's output of the same prompt */
        for (int m = 1; m < M_COUNT; m++) {
            if (!active[m]) continue;
            sd_drafter_free(dr[m]);
            dr[m] = NULL;
            if ((st = make_drafter(&e, m, &dr[m], err, sizeof err)) != SD_OK) {
                tool_progress_clear(prog);
                fprintf(stderr, "error: method %s: %s\n", b.label[m], sd_status_str(st));
                goto done;
            }
        }
        for (int p = 0; p < ps.n; p++) {
            bprompt *pr = &ps.p[p];
            int n_base = -1;
            char *lbuf = NULL;
            size_t lsize = 0;
            FILE *lf = prog ? open_memstream(&lbuf, &lsize) : NULL;
            if (!lf) lf = stderr;
            fprintf(lf, "[%*d/%d] %-14s", ps.n >= 100 ? 3 : 2, p + 1, ps.n, pr->id);
            if (b.runs > 1) fprintf(lf, " run %d", r + 1);
            for (int m = 0; m < M_COUNT; m++) {
                if (!active[m]) continue;
                brec *x = &rec[((size_t)r * ps.n + p) * M_COUNT + m];
                sd_sampler_params sp = o.sp;
                sp.seed = o.sp.seed + (uint64_t)r;
                sd_sampler *smp = NULL;
                int n = 0;
                gp.n_predict = pr->max_tokens;
                gp.draft_max = method_budget(&b, m);
                st = sd_sampler_new(&sp, ti.n_vocab, &smp);
                if (st == SD_OK)
                    st = sd_generate(method_ctx(&e, m), smp, dr[m], pr->ids, pr->n_ids, &gp, out, &n, &x->st);
                sd_sampler_free(smp);
                tool_progress_update(prog, ++n_done);
                if (st != SD_OK) {
                    fprintf(lf, "\n  error: %s on %s: %s\n", b.label[m], pr->id, sd_status_str(st));
                    failures++;
                    continue;
                }
                x->ok = true;
                x->hash = fnv1a(out, n);
                x->match = true;
                x->mismatch_at = -1;
                if (m == M_NONE) {
                    memcpy(base_ids, out, (size_t)n * sizeof *out);
                    n_base = n;
                } else if (o.sp.temp <= 0 && n_base >= 0) {
                    int i = 0;
                    while (i < n && i < n_base && out[i] == base_ids[i]) i++;
                    if (i < n || i < n_base) {
                        x->match = false;
                        x->mismatch_at = i;
                        mismatches++;
                        fprintf(lf, "\n  LOSSLESS VIOLATION: %s differs from none on %s at token %d\n",
                                b.label[m], pr->id, i);
                    }
                }
                double t = tps((double)x->st.n_generated, x->st.gen_ms);
                if (m == M_NONE) fprintf(lf, " | none %5.1f tok/s", t);
                else fprintf(lf, " | %s %5.1f (%.2f/step)", b.label[m], t,
                             x->st.steps ? (double)(x->st.n_generated - 1) / (double)x->st.steps : 0.0);
            }
            fprintf(lf, "\n");
            if (lf != stderr) { /* the collected line, above the meter */
                fclose(lf);
                tool_progress_clear(prog);
                fwrite(lbuf, 1, lsize, stderr);
                tool_progress_update(prog, n_done);
            }
            free(lbuf);
        }
        for (int m = 1; m < M_COUNT; m++) { /* heads drafters: where their time went */
            sd_heads_timing ht;
            if (!active[m] || sd_drafter_heads_timing(dr[m], &ht) != SD_OK) continue;
            htime[m].draft_ms += ht.draft_ms;
            htime[m].head_ms += ht.head_ms;
            htime[m].head_rows += ht.head_rows;
            htime[m].n_draft += ht.n_draft;
        }
    }

    tool_progress_end(prog);
    prog = NULL;
    printf("\nspecdec bench: %d prompts x %d run(s), %s (temp %.2f), %d threads, target %s (%s), draft-max %s, "
           "draft-min %d, draft-p-min %.2f, lookup %d..%d\n", ps.n, b.runs, o.sp.temp > 0 ? "sampling" : "greedy",
           (double)o.sp.temp, o.n_threads, sd_type_name(ti.weight_type), sd_backend_name(o.backend),
           budget_str(b.spec.draft_max, dm),
           b.spec.draft_min, (double)b.spec.p_min, b.spec.lookup_min, b.spec.lookup_max);
    for (int m = 0; m < M_COUNT; m++)
        if (skipped[m]) printf("method %s skipped: not supported (yet)\n", b.label[m]);
    print_table(&b, rec, &ps, b.runs, active);
    for (int m = 1; m < M_COUNT; m++)
        if (active[m] && htime[m].draft_ms > 0)
            printf("%s: the output head (output_norm + output, %d x %d) takes %.1f%% of drafting time "
                   "(%.3f ms per draft call, %.2f rows per call)\n",
                   b.label[m], ti.n_vocab, ti.n_embd, 100.0 * htime[m].head_ms / htime[m].draft_ms,
                   htime[m].n_draft ? htime[m].draft_ms / (double)htime[m].n_draft : 0.0,
                   htime[m].n_draft ? (double)htime[m].head_rows / (double)htime[m].n_draft : 0.0);
    ret = 0;
    if (b.out && write_json(b.out, &e, &o, tpath, dpath, rec, &ps, active, skipped, mismatches) != 0) ret = 1;
    if (b.svg && write_svg(b.svg, rec, &ps, b.runs, active, &o, &b) != 0) ret = 1;
    if (failures) {
        fprintf(stderr, "bench: %d generation(s) failed\n", failures);
        ret = 1;
    }
    if (o.sp.temp <= 0) {
        if (mismatches) {
            printf("\n!!! LOSSLESS CHECK FAILED: %d generation(s) differ from plain greedy decoding !!!\n", mismatches);
            fprintf(stderr, "!!! LOSSLESS CHECK FAILED: %d generation(s) differ from none !!!\n", mismatches);
            ret = 2;
        } else {
            printf("lossless check: every speculative output equals plain greedy decoding\n");
        }
    }

done:
    tool_progress_end(prog);
    for (int m = 0; m < M_COUNT; m++) sd_drafter_free(dr[m]);
    sd_heads_free(heads);
    sd_cost_table_free(costs);
    sd_ctx_free(ctx);
    sd_ctx_free(e.ctx_own);
    sd_threadpool_free(e.pool_own);
    sd_model_free(e.draft);
    sd_model_free(e.xtok_draft);
    sd_model_free(e.target);
    sd_threadpool_free(e.pool);
    for (int p = 0; p < ps.n; p++) {
        free(ps.p[p].id);
        free(ps.p[p].task);
        free(ps.p[p].ids);
    }
    for (int t = 0; t < ps.n_tasks; t++) free(ps.tasks[t]);
    free(ps.p);
    free(rec);
    free(out);
    free(base_ids);
    return ret;
}
