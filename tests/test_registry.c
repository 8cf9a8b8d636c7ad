/*
 * test_registry.c - the method registry (sd_spec_*, sd_drafter_from_spec):
 *  1. every method name is known with the right needs (draft model, heads,
 *     tree budget, own core); "ngram" is "ngram-cache"; unknown names are 0;
 *  2. spec strings: budgets (:K, :auto, :feedback) land in draft_max for
 *     chains and tree_nodes for trees, /pX in p_min; a table of bad specs
 *     is refused with SD_ERR_INVALID_ARG and a message, p untouched;
 *  3. the factory on the shipped models: every method it can make here
 *     gives a drafter (none gives NULL), and each needed model missing is
 *     refused with a message that names it.
 */
#include <stdlib.h>
#include <string.h>

#include "specdec.h"
#include "util/check.h"

static void test_names(void) {
    const char *tree[] = {"tree-draft", "tree-lookup", "aded", "rasd", "eagle", "hydra", "medusa"};
    const char *draft[] = {"draft", "tree-draft", "pearl", "rasd", "draft-xtok"};
    const char *heads[] = {"eagle", "hydra", "medusa", "eagle-chain", "hydra-chain", "medusa-chain"};
    char list[512];
    snprintf(list, sizeof list, "%s", sd_spec_methods());
    int n = 0;
    for (char *t = strtok(list, ", "); t; t = strtok(NULL, ", ")) {
        unsigned f = sd_spec_method_needs(t);
        CHECK(f & SD_SPEC_KNOWN, "%s known", t);
        bool is_tree = false, is_draft = false, is_heads = false;
        for (size_t i = 0; i < sizeof tree / sizeof *tree; i++) is_tree |= !strcmp(t, tree[i]);
        for (size_t i = 0; i < sizeof draft / sizeof *draft; i++) is_draft |= !strcmp(t, draft[i]);
        for (size_t i = 0; i < sizeof heads / sizeof *heads; i++) is_heads |= !strcmp(t, heads[i]);
        CHECK(!!(f & SD_SPEC_TREE) == is_tree, "%s tree flag", t);
        CHECK(!!(f & SD_SPEC_NEEDS_DRAFT) == is_draft, "%s draft flag", t);
        CHECK(!!(f & SD_SPEC_NEEDS_HEADS) == is_heads, "%s heads flag", t);
        CHECK(!!(f & SD_SPEC_OWN_CORE) == !strcmp(t, "pearl"), "%s own-core flag", t);
        n++;
    }
    CHECK(n == 17, "17 methods listed, got %d", n);
    CHECK(sd_spec_method_needs("ngram") == sd_spec_method_needs("ngram-cache"), "ngram alias");
    CHECK(sd_spec_method_needs("nosuch") == 0 && sd_spec_method_needs("") == 0 && sd_spec_method_needs(NULL) == 0,
          "unknown names");
    sd_spec_params p = sd_spec_default_params();
    p.draft_max = 5;
    p.tree_nodes = 11;
    CHECK(sd_spec_method_budget("draft", &p) == 5 && sd_spec_method_budget("eagle", &p) == 11 &&
              sd_spec_method_budget("eagle-chain", &p) == 5 && sd_spec_method_budget("aded", &p) == 11,
          "budgets follow the tree flag");
}

static void test_parse(void) {
    static const struct {
        const char *spec, *method;
        int draft_max, tree_nodes;
        float p_min;
        bool budget;
    } ok[] = {
        {"draft", "draft", SD_DRAFT_AUTO, 8, 0.5f, false},
        {"ngram", "ngram-cache", SD_DRAFT_AUTO, 8, 0.5f, false},
        {"lookup:8", "lookup", 8, 8, 0.5f, true},
        {"eagle:auto", "eagle", SD_DRAFT_AUTO, SD_DRAFT_AUTO, 0.5f, true},
        {"tree-draft:12", "tree-draft", SD_DRAFT_AUTO, 12, 0.5f, true},
        {"draft:6/p0.4", "draft", 6, 8, 0.4f, true},
        {"draft/p1", "draft", SD_DRAFT_AUTO, 8, 1.0f, false},
        {"draft:feedback", "draft", SD_DRAFT_FEEDBACK, 8, 0.5f, true},
        {"none:0", "none", 0, 8, 0.5f, true},
    };
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        sd_spec_params p = sd_spec_default_params();
        char m[32] = "", err[256] = "";
        bool given = !ok[i].budget;
        sd_status st = sd_spec_parse(ok[i].spec, m, sizeof m, &p, &given, err, sizeof err);
        CHECK(st == SD_OK && !strcmp(m, ok[i].method) && p.draft_max == ok[i].draft_max &&
                  p.tree_nodes == ok[i].tree_nodes && p.p_min == ok[i].p_min && given == ok[i].budget,
              "'%s': st %d method '%s' draft_max %d tree_nodes %d p_min %g (%s)", ok[i].spec, st, m, p.draft_max,
              p.tree_nodes, p.p_min, err);
    }
    static const char *const bad[] = {"",          "nosuch",      "draft:",      "draft:x",        "draft:99999",
                                      "draft:-1",  "draft/p2",    "draft/q0.1",  "draft/p",        ":4",
                                      "draft:4:5", "draft/p0.5x", "tree-draft:feedback",
                                      "a-very-long-method-name-that-is-longer-than-any-buffer-here-and-more"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        sd_spec_params p = sd_spec_default_params(), before = p;
        char m[32] = "", err[256] = "";
        sd_status st = sd_spec_parse(bad[i], m, sizeof m, &p, NULL, err, sizeof err);
        CHECK(st == SD_ERR_INVALID_ARG && err[0] && !memcmp(&p, &before, sizeof p), "bad spec '%s' refused: %d %s",
              bad[i], st, err);
    }
    char small[4];
    sd_spec_params p = sd_spec_default_params();
    CHECK(sd_spec_parse("draft", small, sizeof small, &p, NULL, NULL, 0) == SD_ERR_INVALID_ARG,
          "a method buffer too small is refused");
}

static void test_factory(void) {
    const char *dir = getenv("SPECDEC_MODEL_DIR") ? getenv("SPECDEC_MODEL_DIR") : "../shared/models";
    char pt[1024], pd[1024], ph[1024], err[512];
    snprintf(pt, sizeof pt, "%s/kernel-c-target.gguf", dir);
    snprintf(pd, sizeof pd, "%s/kernel-c-draft.gguf", dir);
    snprintf(ph, sizeof ph, "%s/kernel-c-target-heads.gguf", dir);
    sd_model_params mp = sd_model_default_params();
    sd_model *target = NULL, *draft = NULL;
    sd_heads *heads = NULL;
    sd_ctx *ctx = NULL;
    sd_ctx_params cp = sd_ctx_default_params();
    if (sd_model_load(pt, &mp, &target, err, sizeof err) != SD_OK ||
        sd_model_load(pd, &mp, &draft, err, sizeof err) != SD_OK || sd_ctx_new(target, &cp, &ctx) != SD_OK) {
        CHECK(0, "cannot load the shipped models: %s", err);
        goto done;
    }
    bool have_heads = sd_heads_load(ph, target, &heads, err, sizeof err) == SD_OK;
    if (!have_heads) check_skip("heads methods: %s not loadable (%s)", ph, err);
    sd_spec_params p = sd_spec_default_params();
    sd_spec_models full = {.target = target, .target_ctx = ctx, .draft = draft, .heads = heads};
    char list[512];
    snprintf(list, sizeof list, "%s", sd_spec_methods());
    for (char *t = strtok(list, ", "); t; t = strtok(NULL, ", ")) {
        unsigned f = sd_spec_method_needs(t);
        if ((f & SD_SPEC_NEEDS_HEADS) && !have_heads) continue;
        sd_drafter *d = NULL;
        int budget = -99;
        err[0] = 0;
        sd_status st = sd_drafter_from_spec(t, &p, &full, &d, &budget, err, sizeof err);
        CHECK(st == SD_OK && (d != NULL) == (strcmp(t, "none") != 0) && budget == sd_spec_method_budget(t, &p),
              "%s: st %d drafter %p budget %d (%s)", t, st, (void *)d, budget, err);
        sd_drafter_free(d);
        /* each needed piece missing: refused with a message naming it */
        sd_spec_models m = full;
        const char *want = NULL;
        if (f & SD_SPEC_NEEDS_DRAFT) m.draft = NULL, want = "draft model";
        else if (f & SD_SPEC_NEEDS_HEADS) m.heads = NULL, want = "heads";
        else if (!strcmp(t, "self")) m.target_ctx = NULL, want = "context";
        if (!want) continue;
        d = NULL;
        err[0] = 0;
        st = sd_drafter_from_spec(t, &p, &m, &d, NULL, err, sizeof err);
        CHECK(st == SD_ERR_INVALID_ARG && !d && strstr(err, want), "%s without its %s: %d '%s'", t, want, st, err);
    }
    sd_drafter *d = NULL;
    sd_spec_models none = {0};
    CHECK(sd_drafter_from_spec("lookup", &p, &none, &d, NULL, err, sizeof err) == SD_ERR_INVALID_ARG && !d,
          "no target refused");
    p.draft_vocab = "/nonexistent/vocab.txt";
    CHECK(sd_drafter_from_spec("draft", &p, &full, &d, NULL, err, sizeof err) != SD_OK && !d &&
              strstr(err, "/nonexistent/vocab.txt"),
          "a missing VocabTrim file is refused and named: %s", err);
done:
    sd_heads_free(heads);
    sd_ctx_free(ctx);
    sd_model_free(draft);
    sd_model_free(target);
}

int main(void) {
    test_names();
    test_parse();
    test_factory();
    return check_report("test_registry");
}
