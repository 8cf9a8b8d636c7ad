/*
 * test_gguf_write.c - the GGUF writer, checked through the hostile-input
 * reader (src/model/gguf.c):
 *
 *  1. a synthetic file with a kv of every value type (all scalars, a
 *     string with a NUL byte, empty and non-empty arrays of every element
 *     type including strings and bools), tensors of several types and dims
 *     and general.alignment 64 reads back with identical kvs (types and
 *     encoded bytes) and tensor infos/bytes, at offsets on the alignment;
 *     the same through a file (sd_gguf_writer_write + sd_gguf_open);
 *  2. replacing and removing keys; the default alignment 32;
 *  3. copying every kv and tensor of the shipped draft model gives a file
 *     the reader accepts with identical kvs and tensor bytes (and, since
 *     that file was written in the same layout, identical bytes);
 *  4. a file without tensors has no padding after its metadata;
 *  5. bad input is rejected with an error and leaves the writer usable:
 *     bad alignment, empty/NULL key, non-scalar type, duplicate tensor,
 *     wrong data size, ne[0] not a multiple of the block, unknown type,
 *     bad dims; an unwritable path fails with SD_ERR_IO and leaves no file.
 */
#include "model/gguf.h"
#include "model/gguf_write.h"
#include "util/check.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* kvs and tensors of a and b are identical (same order, types, bytes). */
static int same_files(const sd_gguf *a, const sd_gguf *b, const char *what) {
    int ok = 1;
    if (sd_gguf_n_kv(a) != sd_gguf_n_kv(b) || sd_gguf_n_tensors(a) != sd_gguf_n_tensors(b)) {
        fprintf(stderr, "%s: counts differ\n", what);
        return 0;
    }
    for (int64_t i = 0; i < sd_gguf_n_kv(a); i++) {
        const void *pa, *pb;
        uint64_t na, nb;
        if (strcmp(sd_gguf_key(a, i), sd_gguf_key(b, i)) != 0 ||
            sd_gguf_kv_type(a, i) != sd_gguf_kv_type(b, i) || sd_gguf_kv_raw(a, i, &pa, &na) ||
            sd_gguf_kv_raw(b, i, &pb, &nb) || na != nb || memcmp(pa, pb, (size_t)na) != 0) {
            fprintf(stderr, "%s: kv %lld (%s) differs\n", what, (long long)i, sd_gguf_key(a, i));
            ok = 0;
        }
    }
    for (int64_t i = 0; i < sd_gguf_n_tensors(a); i++) {
        const sd_gguf_tensor *x = sd_gguf_tensor_at(a, i), *y = sd_gguf_tensor_at(b, i);
        if (strcmp(x->name, y->name) || x->type != y->type || x->n_dims != y->n_dims ||
            memcmp(x->ne, y->ne, sizeof x->ne) || x->size != y->size ||
            memcmp(x->data, y->data, (size_t)x->size) != 0) {
            fprintf(stderr, "%s: tensor %s differs\n", what, x->name);
            ok = 0;
        }
    }
    return ok;
}

static void test_synthetic(void) {
    sd_gguf_writer *w;
    CHECK(sd_gguf_writer_new(&w) == SD_OK, "new");
    uint8_t u8 = 200; int8_t i8 = -100; uint16_t u16 = 60000; int16_t i16 = -30000;
    uint32_t u32 = 4000000000u; int32_t i32 = -2000000000; float f32 = 3.25f; uint8_t bl = 1;
    uint64_t u64 = 0xfedcba9876543210ull; int64_t i64 = -1234567890123ll; double f64 = -2.5e300;
    const void *vals[] = {&u8, &i8, &u16, &i16, &u32, &i32, &f32, &bl, NULL, NULL, &u64, &i64, &f64};
    char key[64];
    for (int t = 0; t < SD_GGUF_VTYPE_COUNT; t++) {
        if (t == SD_GGUF_STRING || t == SD_GGUF_ARRAY) continue;
        snprintf(key, sizeof key, "test.scalar.%d", t);
        CHECK(sd_gguf_writer_set_scalar(w, key, (sd_gguf_vtype)t, vals[t]) == SD_OK, "scalar %d", t);
        /* arrays of 3 and of 0 elements of the type */
        uint8_t arr[24];
        size_t es = t == 0 || t == 1 || t == 7 ? 1 : t == 2 || t == 3 ? 2 : t <= 6 ? 4 : 8;
        for (size_t k = 0; k < 3; k++) memcpy(arr + k * es, vals[t], es);
        snprintf(key, sizeof key, "test.arr.%d", t);
        CHECK(sd_gguf_writer_set_arr(w, key, (sd_gguf_vtype)t, arr, 3) == SD_OK, "arr %d", t);
        snprintf(key, sizeof key, "test.empty.%d", t);
        CHECK(sd_gguf_writer_set_arr(w, key, (sd_gguf_vtype)t, NULL, 0) == SD_OK, "empty arr %d", t);
    }
    CHECK(sd_gguf_writer_set_str(w, "general.architecture", "llama", 5) == SD_OK, "arch");
    CHECK(sd_gguf_writer_set_str(w, "test.str", "a\0b", 3) == SD_OK, "str with NUL");
    CHECK(sd_gguf_writer_set_str(w, "test.empty_str", "", 0) == SD_OK, "empty str");
    const char *strs[] = {"alpha", "", "gamma delta"};
    uint64_t lens[] = {5, 0, 11};
    CHECK(sd_gguf_writer_set_arr_str(w, "test.strs", strs, lens, 3) == SD_OK, "arr str");
    CHECK(sd_gguf_writer_set_arr_str(w, "test.strs0", NULL, NULL, 0) == SD_OK, "empty arr str");
    CHECK(sd_gguf_writer_set_u32(w, "general.alignment", 64) == SD_OK, "alignment");

    /* tensors: f32 1-D of 3 (odd size: forces padding), f16 2-D, q8_0 3-D, q4_K */
    float t0[3] = {1, 2, 3};
    int64_t ne0[1] = {3};
    uint16_t t1[8 * 5];
    for (int k = 0; k < 40; k++) t1[k] = (uint16_t)(k * 977);
    int64_t ne1[2] = {8, 5};
    uint8_t *t2 = malloc(34 * 2 * 3 * 2);
    for (int k = 0; k < 34 * 12; k++) t2[k] = (uint8_t)(k * 7 + 1);
    int64_t ne2[3] = {64, 3, 2};
    uint8_t t3[144 * 2];
    for (int k = 0; k < 288; k++) t3[k] = (uint8_t)(k ^ 0x5a);
    int64_t ne3[2] = {256, 2};
    CHECK(sd_gguf_writer_add_tensor(w, "a.weight", SD_TYPE_F32, 1, ne0, t0, sizeof t0, false) == SD_OK, "t0");
    CHECK(sd_gguf_writer_add_tensor(w, "b.weight", SD_TYPE_F16, 2, ne1, t1, sizeof t1, false) == SD_OK, "t1");
    CHECK(sd_gguf_writer_add_tensor(w, "c.weight", SD_TYPE_Q8_0, 3, ne2, t2, 34 * 12, true) == SD_OK, "t2");
    CHECK(sd_gguf_writer_add_tensor(w, "d.weight", SD_TYPE_Q4_K, 2, ne3, t3, sizeof t3, false) == SD_OK, "t3");

    void *buf = NULL;
    size_t size = 0;
    char err[512];
    sd_gguf *g = NULL;
    CHECK(sd_gguf_writer_write_mem(w, &buf, &size) == SD_OK, "write_mem");
    CHECK(sd_gguf_open_mem(buf, size, "mem", &g, err, sizeof err) == SD_OK, "reopen: %s", err);
    if (g) {
        CHECK(sd_gguf_version(g) == 3 && sd_gguf_alignment(g) == 64, "version/alignment");
        CHECK(sd_gguf_n_kv(g) == sd_gguf_writer_n_kv(w) && sd_gguf_n_tensors(g) == 4, "counts");
        uint32_t a32 = 0;
        int32_t b32 = 0;
        float f = 0;
        bool b = false;
        int64_t v64 = 0;
        sd_gguf_str s = {0};
        CHECK(sd_gguf_get_u32(g, "test.scalar.4", &a32, err, sizeof err) == SD_OK && a32 == u32, "u32");
        CHECK(sd_gguf_get_i32(g, "test.scalar.5", &b32, err, sizeof err) == SD_OK && b32 == i32, "i32");
        CHECK(sd_gguf_get_f32(g, "test.scalar.6", &f, err, sizeof err) == SD_OK && f == f32, "f32");
        CHECK(sd_gguf_get_bool(g, "test.scalar.7", &b, err, sizeof err) == SD_OK && b, "bool");
        CHECK(sd_gguf_get_i64(g, "test.scalar.11", &v64, err, sizeof err) == SD_OK && v64 == i64, "i64");
        CHECK(sd_gguf_get_i64(g, "test.scalar.1", &v64, err, sizeof err) == SD_OK && v64 == i8, "i8");
        CHECK(sd_gguf_get_i64(g, "test.scalar.3", &v64, err, sizeof err) == SD_OK && v64 == i16, "i16");
        CHECK(sd_gguf_get_str(g, "test.str", &s, err, sizeof err) == SD_OK && s.len == 3 &&
              memcmp(s.ptr, "a\0b", 3) == 0, "str");
        int64_t k = sd_gguf_find_key(g, "test.scalar.12");
        const void *raw;
        uint64_t rn;
        CHECK(k >= 0 && sd_gguf_kv_raw(g, k, &raw, &rn) == SD_OK && rn == 8 && memcmp(raw, &f64, 8) == 0, "f64");
        k = sd_gguf_find_key(g, "test.scalar.10");
        CHECK(k >= 0 && sd_gguf_kv_raw(g, k, &raw, &rn) == SD_OK && rn == 8 && memcmp(raw, &u64, 8) == 0, "u64");
        k = sd_gguf_find_key(g, "test.strs");
        CHECK(k >= 0 && sd_gguf_arr_n(g, k) == 3, "strs n");
        for (uint64_t j = 0; k >= 0 && j < 3; j++) {
            sd_gguf_str e = sd_gguf_arr_str(g, k, j);
            CHECK(e.len == lens[j] && memcmp(e.ptr, strs[j], (size_t)e.len) == 0, "strs[%d]", (int)j);
        }
        k = sd_gguf_find_key(g, "test.arr.6");
        CHECK(k >= 0 && sd_gguf_arr_type(g, k) == SD_GGUF_FLOAT32 && sd_gguf_arr_n(g, k) == 3, "arr f32");
        float fa[3];
        uint64_t fn = 0;
        CHECK(sd_gguf_get_arr_f32(g, "test.arr.6", fa, 3, &fn, err, sizeof err) == SD_OK && fn == 3 &&
              fa[2] == f32, "arr f32 values");
        k = sd_gguf_find_key(g, "test.empty.10");
        CHECK(k >= 0 && sd_gguf_arr_n(g, k) == 0 && sd_gguf_arr_type(g, k) == SD_GGUF_UINT64, "empty u64 arr");
        const void *datas[4] = {t0, t1, t2, t3};
        for (int64_t j = 0; j < 4; j++) {
            const sd_gguf_tensor *t = sd_gguf_tensor_at(g, j);
            CHECK(t->offset % 64 == 0, "tensor %s offset %llu aligned", t->name, (unsigned long long)t->offset);
            CHECK(memcmp(t->data, datas[j], (size_t)t->size) == 0, "tensor %s bytes", t->name);
        }
        const sd_gguf_tensor *t = sd_gguf_find_tensor(g, "c.weight");
        CHECK(t && t->n_dims == 3 && t->ne[0] == 64 && t->ne[1] == 3 && t->ne[2] == 2 && t->ne[3] == 1 &&
              t->type == SD_TYPE_Q8_0, "c.weight info");
    }
    /* the same through a file */
    char path[] = "/tmp/sd_gguf_write_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0, "mkstemp");
    if (fd >= 0) {
        close(fd);
        sd_gguf *g2 = NULL;
        CHECK(sd_gguf_writer_write(w, path, err, sizeof err) == SD_OK, "write file: %s", err);
        CHECK(sd_gguf_open(path, &g2, err, sizeof err) == SD_OK, "open file: %s", err);
        if (g && g2) CHECK(same_files(g, g2, "file vs mem"), "file equals memory image");
        struct stat sb;
        CHECK(stat(path, &sb) == 0 && (uint64_t)sb.st_size == size, "file size");
        sd_gguf_close(g2);
        unlink(path);
    }
    sd_gguf_close(g);
    free(buf);

    /* replace keeps position; remove; default alignment */
    int64_t n_kv = sd_gguf_writer_n_kv(w);
    CHECK(sd_gguf_writer_set_str(w, "test.str", "xyz", 3) == SD_OK, "replace");
    CHECK(sd_gguf_writer_n_kv(w) == n_kv, "replace keeps count");
    CHECK(sd_gguf_writer_remove_kv(w, "general.alignment") == SD_OK, "remove");
    CHECK(sd_gguf_writer_remove_kv(w, "no.such.key") == SD_OK, "remove absent");
    CHECK(sd_gguf_writer_write_mem(w, &buf, &size) == SD_OK, "write_mem 2");
    CHECK(sd_gguf_open_mem(buf, size, "mem2", &g, err, sizeof err) == SD_OK, "reopen 2: %s", err);
    if (g) {
        sd_gguf_str s = {0};
        CHECK(sd_gguf_alignment(g) == 32, "default alignment");
        CHECK(sd_gguf_get_str(g, "test.str", &s, err, sizeof err) == SD_OK && s.len == 3 &&
              !memcmp(s.ptr, "xyz", 3), "replaced value");
        CHECK(sd_gguf_find_key(g, "general.alignment") < 0, "removed");
        for (int64_t j = 0; j < 4; j++) CHECK(sd_gguf_tensor_at(g, j)->offset % 32 == 0, "aligned 32");
    }
    sd_gguf_close(g);
    free(buf);

    /* bad input: error, writer unchanged */
    n_kv = sd_gguf_writer_n_kv(w);
    uint32_t three = 3;
    CHECK(sd_gguf_writer_set_u32(w, "general.alignment", 48) == SD_ERR_INVALID_ARG, "alignment 48");
    CHECK(sd_gguf_writer_set_scalar(w, "general.alignment", SD_GGUF_INT32, &three) == SD_ERR_INVALID_ARG,
          "alignment int32");
    CHECK(sd_gguf_writer_set_u32(w, "general.architecture", 1) == SD_ERR_INVALID_ARG, "arch not string");
    CHECK(sd_gguf_writer_set_u32(w, "", 1) == SD_ERR_INVALID_ARG, "empty key");
    CHECK(sd_gguf_writer_set_u32(w, NULL, 1) == SD_ERR_INVALID_ARG, "NULL key");
    CHECK(strlen(sd_gguf_writer_error(w)) > 0, "message");
    CHECK(sd_gguf_writer_set_scalar(w, "x", SD_GGUF_STRING, &three) == SD_ERR_INVALID_ARG, "string as scalar");
    CHECK(sd_gguf_writer_set_arr(w, "x", SD_GGUF_ARRAY, &three, 1) == SD_ERR_INVALID_ARG, "nested array");
    CHECK(sd_gguf_writer_n_kv(w) == n_kv, "failed setters add nothing");
    CHECK(sd_gguf_writer_add_tensor(w, "a.weight", SD_TYPE_F32, 1, ne0, t0, sizeof t0, false) ==
          SD_ERR_INVALID_ARG, "duplicate tensor");
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 1, ne0, t0, 8, false) == SD_ERR_INVALID_ARG,
          "wrong size");
    int64_t ne_bad[2] = {48, 2};
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_Q8_0, 2, ne_bad, t3, 34 * 3, false) ==
          SD_ERR_INVALID_ARG, "ne0 not a multiple of the block");
    CHECK(sd_gguf_writer_add_tensor(w, "e", 4, 1, ne0, t0, sizeof t0, false) == SD_ERR_INVALID_ARG,
          "unknown type 4");
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 0, ne0, t0, sizeof t0, false) ==
          SD_ERR_INVALID_ARG, "n_dims 0");
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 5, ne0, t0, sizeof t0, false) ==
          SD_ERR_INVALID_ARG, "n_dims 5");
    int64_t ne_neg[2] = {3, -1};
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 2, ne_neg, t0, sizeof t0, false) ==
          SD_ERR_INVALID_ARG, "negative dim");
    int64_t ne_big[4] = {INT64_MAX, INT64_MAX, 2, 2};
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 4, ne_big, t0, sizeof t0, false) ==
          SD_ERR_INVALID_ARG, "dims overflow");
    void *owned = malloc(16);
    CHECK(sd_gguf_writer_add_tensor(w, "e", SD_TYPE_F32, 1, ne0, owned, 16, true) == SD_ERR_INVALID_ARG,
          "owned buffer freed on failure (ASan checks the leak)");
    CHECK(sd_gguf_writer_n_tensors(w) == 4, "failed adds add nothing");
    CHECK(sd_gguf_writer_write(w, "/nonexistent-dir/x.gguf", err, sizeof err) == SD_ERR_IO, "unwritable");
    CHECK(strstr(err, "/nonexistent-dir/x.gguf") != NULL, "message names the path: %s", err);
    CHECK(access("/nonexistent-dir/x.gguf", F_OK) != 0, "no file");
    sd_gguf_writer_free(w);
}

/* Copy of the shipped draft model: every kv and tensor. */
static void test_copy_model(void) {
    char path[1024], err[512];
    snprintf(path, sizeof path, "%s/kernel-c-draft.gguf", test_model_dir());
    sd_gguf *g = NULL, *g2 = NULL;
    if (access(path, F_OK) != 0) { /* ../shared provides it: a failure in CI */
        check_need("../shared/models/kernel-c-draft.gguf (the copy test's input)");
        return;
    }
    const sd_status st = sd_gguf_open(path, &g, err, sizeof err);
    CHECK(st == SD_OK, "open %s: %s", path, err);
    if (st != SD_OK) return;
    sd_gguf_writer *w = NULL;
    CHECK(sd_gguf_writer_new(&w) == SD_OK && sd_gguf_writer_copy_kvs(w, g) == SD_OK, "copy kvs");
    for (int64_t i = 0; i < sd_gguf_n_tensors(g); i++) {
        const sd_gguf_tensor *t = sd_gguf_tensor_at(g, i);
        CHECK(sd_gguf_writer_add_tensor(w, t->name, t->type, t->n_dims, t->ne, t->data, t->size, false) ==
              SD_OK, "add %s", t->name);
    }
    void *buf = NULL;
    size_t size = 0;
    CHECK(sd_gguf_writer_write_mem(w, &buf, &size) == SD_OK, "write copy");
    CHECK(sd_gguf_open_mem(buf, size, "copy", &g2, err, sizeof err) == SD_OK, "reopen copy: %s", err);
    if (g2) CHECK(same_files(g, g2, "draft copy"), "copy has identical kvs and tensors");
    size_t n0 = 0;
    char *orig = test_read_file(path, &n0);
    CHECK(orig && n0 == size && memcmp(orig, buf, size) == 0, "copy is byte-identical to the original");
    free(orig);
    free(buf);
    sd_gguf_close(g2);
    sd_gguf_writer_free(w);
    sd_gguf_close(g);
}

/* A file without tensors ends at its metadata, even with a large
 * general.alignment, and reads back. */
static void test_no_tensors(void) {
    sd_gguf_writer *w = NULL;
    CHECK(sd_gguf_writer_new(&w) == SD_OK, "new");
    CHECK(sd_gguf_writer_set_u32(w, "general.alignment", 1u << 30) == SD_OK, "alignment 2^30");
    CHECK(sd_gguf_writer_set_str(w, "k", "v", 1) == SD_OK, "kv");
    void *buf = NULL;
    size_t size = 0;
    sd_gguf *g = NULL;
    char err[256];
    CHECK(sd_gguf_writer_write_mem(w, &buf, &size) == SD_OK, "write");
    CHECK(size == 24 + (8 + 17 + 4 + 4) + (8 + 1 + 4 + 9), "no padding: %zu bytes", size);
    CHECK(sd_gguf_open_mem(buf, size, "empty", &g, err, sizeof err) == SD_OK, "reopen: %s", err);
    CHECK(g && sd_gguf_n_kv(g) == 2 && sd_gguf_n_tensors(g) == 0, "contents");
    sd_gguf_close(g);
    free(buf);
    sd_gguf_writer_free(w);
}

int main(void) {
    test_no_tensors();
    test_synthetic();
    test_copy_model();
    return check_report("test_gguf_write");
}
