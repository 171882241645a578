/* test_model_io.c: model file round trips, corrupt files and failed saves. */
#define _POSIX_C_SOURCE 200809L

#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* Byte offsets of the v1 format (see the comment at the top of src/model_io.c). */
enum {
    OFF_VERSION = 8,
    OFF_HLEN = 12,
    OFF_INPUTS = 16,
    OFF_HIDDEN = 24,
    OFF_CLASSES = 32,
    OFF_HAS_BIAS = 40,
    OFF_SCHEDULE = 80,
    OFF_SAVED = 160,
    OFF_DATA = 168,
    OFF_BODY = 456,
};

/* Recompute the trailing CRC-32 after an edit, so that only the edit is wrong. */
static void fix_crc(unsigned char *buf, size_t n)
{
    tu_put_le(buf + n - 4, (uint32_t)crc32(0L, buf, (uInt)(n - 4)), 4);
}

/* A model whose every parameter and provenance field is distinct from the defaults. */
static bprop_model *make_model(int has_bias, int has_std)
{
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_create(7, 5, 3, has_bias, 1234, &m, NULL), BPROP_OK);
    for (size_t i = 0; i < m->layout.total; i++)
        m->params[i] = (float)sin(0.37 * (double)i + 0.1) * 1.7f;
    m->params[0] = -0.0f;
    m->params[1] = 1e-40f; /* subnormal: must survive bit for bit */
    if (has_std) {
        float mean[7], scale[7];
        for (int i = 0; i < 7; i++) {
            mean[i] = 0.1f * (float)i - 0.25f;
            scale[i] = 1.0f / (1.0f + (float)i);
        }
        cr_assert_eq(bprop_model_set_standardization(m, mean, scale), BPROP_OK);
    }
    bprop_train_config *c = &m->info.config;
    *c = (bprop_train_config){.epochs = 17, .batch = 33, .lr = 0.0123f, .momentum = 0.85f, .nesterov = 0,
                              .weight_decay = 5e-4f, .schedule = BPROP_SCHEDULE_STEP, .step_epochs = 4,
                              .step_gamma = 0.3f, .clip_norm = 2.5f, .seed = 0xDEADBEEFCAFEF00Dull,
                              .shuffle = 0, .threads = 3};
    m->info.epochs_done = 41;
    m->info.samples_seen = 5000000000ull;
    m->info.threads = 6;
    m->info.train_loss = 0.3125f;
    m->info.train_acc = 0.875f;
    m->info.test_loss = NAN;
    m->info.test_acc = 0.8125f;
    m->info.created_unix = 1700000000;
    m->info.saved_unix = 42;
    snprintf(m->info.data, sizeof m->info.data, "train=/data/x images.gz;labels=y.gz");
    return m;
}

static int same_float(float a, float b) { return memcmp(&a, &b, sizeof a) == 0; }

static void assert_same_info(const bprop_provenance *a, const bprop_provenance *b)
{
    const bprop_train_config *x = &a->config, *y = &b->config;
    cr_assert_eq(x->epochs, y->epochs);
    cr_assert_eq(x->batch, y->batch);
    cr_assert(same_float(x->lr, y->lr));
    cr_assert(same_float(x->momentum, y->momentum));
    cr_assert_eq(x->nesterov, y->nesterov);
    cr_assert(same_float(x->weight_decay, y->weight_decay));
    cr_assert_eq(x->schedule, y->schedule);
    cr_assert_eq(x->step_epochs, y->step_epochs);
    cr_assert(same_float(x->step_gamma, y->step_gamma));
    cr_assert(same_float(x->clip_norm, y->clip_norm));
    cr_assert_eq(x->seed, y->seed);
    cr_assert_eq(x->shuffle, y->shuffle);
    cr_assert_eq(x->threads, y->threads);
    cr_assert_eq(a->epochs_done, b->epochs_done);
    cr_assert_eq(a->samples_seen, b->samples_seen);
    cr_assert_eq(a->threads, b->threads);
    cr_assert(same_float(a->train_loss, b->train_loss));
    cr_assert(same_float(a->train_acc, b->train_acc));
    cr_assert(same_float(a->test_loss, b->test_loss));
    cr_assert(same_float(a->test_acc, b->test_acc));
    cr_assert_eq(a->created_unix, b->created_unix);
    cr_assert_str_eq(a->data, b->data);
}

static void round_trip(int has_bias, int has_std)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "model.bin");
    bprop_model *m = make_model(has_bias, has_std), *l = NULL;
    bprop_error err = {0};
    int64_t t0 = (int64_t)time(NULL);
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_OK, "%s", err.message);
    int64_t t1 = (int64_t)time(NULL);
    cr_assert_eq(m->info.saved_unix, 42, "save must not modify the model");
    cr_assert_eq(bprop_model_load(path, &l, &err), BPROP_OK, "%s", err.message);
    cr_assert_eq(l->inputs, 7);
    cr_assert_eq(l->hidden, 5);
    cr_assert_eq(l->classes, 3);
    cr_assert_eq(l->has_bias, has_bias);
    cr_assert_eq(l->layout.total, m->layout.total);
    cr_assert(tu_same_bits(l->params, m->params, m->layout.total));
    if (has_std) {
        cr_assert_not_null(l->std_mean);
        cr_assert(tu_same_bits(l->std_mean, m->std_mean, 7));
        cr_assert(tu_same_bits(l->std_scale, m->std_scale, 7));
    } else {
        cr_assert_null(l->std_mean);
        cr_assert_null(l->std_scale);
    }
    assert_same_info(&l->info, &m->info);
    cr_assert(l->info.saved_unix >= t0 && l->info.saved_unix <= t1);

    /* The documented layout: sizes and flags at their offsets, exact file length. */
    size_t n;
    unsigned char *buf = (unsigned char *)tu_read_file(path, &n);
    size_t expect = OFF_BODY + 4 * m->layout.total + (has_std ? 8 * 7 : 0) + 4;
    cr_assert_eq(n, expect);
    cr_assert_eq(memcmp(buf, "BPROPMDL", 8), 0);
    cr_assert_eq(tu_get_le(buf + OFF_VERSION, 4), 1);
    cr_assert_eq(tu_get_le(buf + OFF_HLEN, 4), OFF_BODY - 16);
    cr_assert_eq(tu_get_le(buf + OFF_INPUTS, 8), 7);
    cr_assert_eq(tu_get_le(buf + OFF_HIDDEN, 8), 5);
    cr_assert_eq(tu_get_le(buf + OFF_CLASSES, 8), 3);
    cr_assert_eq(tu_get_le(buf + OFF_HAS_BIAS, 4), (uint64_t)has_bias);
    cr_assert_eq(tu_get_le(buf + OFF_HAS_BIAS + 4, 4), (uint64_t)has_std);
    cr_assert_eq(tu_get_le(buf + OFF_SCHEDULE, 4), BPROP_SCHEDULE_STEP);
    cr_assert_eq((int64_t)tu_get_le(buf + OFF_SAVED, 8), l->info.saved_unix);
    cr_assert_str_eq((const char *)buf + OFF_DATA, m->info.data);
    uint32_t p5;
    memcpy(&p5, &m->params[5], 4);
    cr_assert_eq(tu_get_le(buf + OFF_BODY + 4 * 5, 4), p5);
    cr_assert_eq(tu_get_le(buf + n - 4, 4), (uint32_t)crc32(0L, buf, (uInt)(n - 4)));

    /* Saving the loaded model reproduces the file, apart from the save time and so the CRC. */
    char *path2 = tu_path(dir, "again.bin");
    cr_assert_eq(bprop_model_save(l, path2, &err), BPROP_OK, "%s", err.message);
    size_t n2;
    unsigned char *buf2 = (unsigned char *)tu_read_file(path2, &n2);
    cr_assert_eq(n2, n);
    memcpy(buf2 + OFF_SAVED, buf + OFF_SAVED, 8);
    fix_crc(buf2, n2);
    cr_assert_eq(memcmp(buf, buf2, n), 0);

    free(buf);
    free(buf2);
    free(path2);
    bprop_model_free(m);
    bprop_model_free(l);
    free(path);
    free(dir);
}

Test(model_io, round_trip_bias_and_std) { round_trip(1, 1); }
Test(model_io, round_trip_no_bias_no_std) { round_trip(0, 0); }
Test(model_io, round_trip_no_bias_std) { round_trip(0, 1); }
Test(model_io, round_trip_bias_no_std) { round_trip(1, 0); }

Test(model_io, large_model_crosses_io_chunks)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "big.bin");
    bprop_model *m = NULL, *l = NULL;
    cr_assert_eq(bprop_model_create(300, 70, 10, 1, 9, &m, NULL), BPROP_OK);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_OK, "%s", err.message);
    cr_assert_eq(bprop_model_load(path, &l, &err), BPROP_OK, "%s", err.message);
    cr_assert_eq(l->layout.total, m->layout.total);
    cr_assert(tu_same_bits(l->params, m->params, m->layout.total));
    bprop_model_free(m);
    bprop_model_free(l);
    free(path);
    free(dir);
}

/* A saved test model in a fresh directory; returns its bytes. */
typedef struct fixture {
    char *dir, *path;
    unsigned char *buf;
    size_t n;
    bprop_model *m;
} fixture;

static fixture fixture_make(int has_bias, int has_std)
{
    fixture fx;
    fx.dir = tu_tmpdir();
    fx.path = tu_path(fx.dir, "model.bin");
    fx.m = make_model(has_bias, has_std);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(fx.m, fx.path, &err), BPROP_OK, "%s", err.message);
    fx.buf = (unsigned char *)tu_read_file(fx.path, &fx.n);
    return fx;
}

static void fixture_free(fixture *fx)
{
    bprop_model_free(fx->m);
    free(fx->buf);
    free(fx->path);
    free(fx->dir);
}

/* Write bytes to the fixture's path, load, and check the status and message. */
static void expect_load(fixture *fx, const unsigned char *bytes, size_t n, bprop_status want,
                        const char *needle)
{
    tu_write_file(fx->path, bytes, n);
    bprop_model marker; /* a failed load must leave *out as it was */
    bprop_model *l = &marker;
    bprop_error err = {0};
    bprop_status st = bprop_model_load(fx->path, &l, &err);
    cr_assert_eq(st, want, "status %d (%s), expected %d: %s", st, bprop_strerror(st), want, err.message);
    cr_assert_eq(err.status, want);
    cr_assert_eq(l, &marker);
    cr_assert(strstr(err.message, fx->path), "message does not name the file: %s", err.message);
    cr_assert(strstr(err.message, needle), "message lacks \"%s\": %s", needle, err.message);
    cr_assert_null(strchr(err.message, '\n'), "message is not one line: %s", err.message);
}

Test(model_io, flipped_parameter_byte_is_checksum_error)
{
    fixture fx = fixture_make(1, 1);
    unsigned char *b = malloc(fx.n);
    size_t spots[] = {OFF_BODY + 9, fx.n - 4 - 8 * 7 + 3, OFF_DATA + 2, fx.n - 1};
    for (size_t s = 0; s < sizeof spots / sizeof spots[0]; s++) {
        memcpy(b, fx.buf, fx.n);
        b[spots[s]] ^= 0x10;
        expect_load(&fx, b, fx.n, BPROP_E_CHECKSUM, "checksum mismatch: stored 0x");
    }
    free(b);
    fixture_free(&fx);
}

Test(model_io, other_version_is_version_error)
{
    fixture fx = fixture_make(1, 0);
    tu_put_le(fx.buf + OFF_VERSION, 7, 4);
    fix_crc(fx.buf, fx.n);
    expect_load(&fx, fx.buf, fx.n, BPROP_E_VERSION, "format version 7, this build reads version 1");
    /* Also without a fixed-up checksum: the version decides how to read the rest. */
    tu_put_le(fx.buf + OFF_VERSION, 2, 4);
    expect_load(&fx, fx.buf, fx.n, BPROP_E_VERSION, "format version 2");
    fixture_free(&fx);
}

Test(model_io, truncation_is_format_error_with_offset)
{
    fixture fx = fixture_make(1, 1);
    size_t cuts[] = {0, 3, 8, 11, 14, 16, 100, OFF_BODY - 1, OFF_BODY, OFF_BODY + 5, fx.n - 40,
                     fx.n - 4, fx.n - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        char needle[64];
        snprintf(needle, sizeof needle, "truncated at byte offset %zu", cuts[c]);
        expect_load(&fx, fx.buf, cuts[c], BPROP_E_FORMAT, needle);
    }
    fixture_free(&fx);
}

Test(model_io, bad_magic_is_format_error)
{
    fixture fx = fixture_make(1, 0);
    fx.buf[3] = 'X';
    expect_load(&fx, fx.buf, fx.n, BPROP_E_FORMAT, "not a bprop model file (bad magic)");
    const char *text = "label,p1,p2\n1,0,0\n";
    expect_load(&fx, (const unsigned char *)text, strlen(text), BPROP_E_FORMAT, "bad magic");
    expect_load(&fx, (const unsigned char *)"BPQ", 3, BPROP_E_FORMAT, "bad magic");
    fixture_free(&fx);
}

Test(model_io, missing_file_is_io_error)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "nothing-here.bin");
    bprop_model *l = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_model_load(path, &l, &err), BPROP_E_IO);
    cr_assert_null(l);
    cr_assert(strstr(err.message, path), "%s", err.message);
    cr_assert(strstr(err.message, "No such file"), "%s", err.message);
    /* A directory is not a model file either. */
    cr_assert_eq(bprop_model_load(dir, &l, &err), BPROP_E_IO);
    cr_assert(strstr(err.message, dir), "%s", err.message);
    free(path);
    free(dir);
}

Test(model_io, huge_or_zero_sizes_are_size_errors)
{
    fixture fx = fixture_make(1, 1);
    struct {
        uint64_t inputs, hidden, classes;
    } cases[] = {
        {1ull << 62, 5, 3},          /* inputs * hidden overflows */
        {1ull << 40, 1ull << 40, 3}, /* overflows */
        {1ull << 21, 1ull << 19, 3}, /* 2^40 weights: over the layout limit */
        {1ull << 20, 1ull << 19, 3}, /* 2^39 weights: a valid layout, far larger than the file */
        {7, 6, 3},                   /* one hidden unit more than the file holds */
        {0, 5, 3},
        {7, 0, 3},
        {7, 5, 0},
    };
    unsigned char *b = malloc(fx.n);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        memcpy(b, fx.buf, fx.n);
        tu_put_le(b + OFF_INPUTS, cases[c].inputs, 8);
        tu_put_le(b + OFF_HIDDEN, cases[c].hidden, 8);
        tu_put_le(b + OFF_CLASSES, cases[c].classes, 8);
        fix_crc(b, fx.n);
        expect_load(&fx, b, fx.n, BPROP_E_SIZE, "model sizes");
    }
    free(b);
    fixture_free(&fx);
}

Test(model_io, smaller_sizes_with_valid_checksum_are_rejected)
{
    /* Fewer parameters than the file holds: the checksum is then read from the wrong place. */
    fixture fx = fixture_make(1, 0);
    tu_put_le(fx.buf + OFF_HIDDEN, 4, 8);
    fix_crc(fx.buf, fx.n);
    expect_load(&fx, fx.buf, fx.n, BPROP_E_CHECKSUM, "checksum mismatch");
    fixture_free(&fx);
}

Test(model_io, nonfinite_parameter_is_rejected_on_load)
{
    fixture fx = fixture_make(1, 1);
    size_t w2 = fx.m->layout.offset[BPROP_W2] + 3;
    size_t at = OFF_BODY + 4 * w2;
    tu_put_le(fx.buf + at, 0x7FC00000u, 4); /* quiet NaN */
    fix_crc(fx.buf, fx.n);
    char needle[64];
    snprintf(needle, sizeof needle, "byte offset %zu: W2[3] is NaN", at);
    expect_load(&fx, fx.buf, fx.n, BPROP_E_NONFINITE, needle);

    fixture fy = fixture_make(1, 1);
    size_t scale2 = fy.n - 4 - 4 * 7 + 4 * 2;
    tu_put_le(fy.buf + scale2, 0xFF800000u, 4); /* -inf */
    fix_crc(fy.buf, fy.n);
    expect_load(&fy, fy.buf, fy.n, BPROP_E_NONFINITE, "std_scale[2] is infinite");
    fixture_free(&fx);
    fixture_free(&fy);
}

Test(model_io, trailing_bytes_are_format_error)
{
    fixture fx = fixture_make(0, 0);
    unsigned char *b = malloc(fx.n + 3);
    memcpy(b, fx.buf, fx.n);
    memcpy(b + fx.n, "xyz", 3);
    char needle[96];
    snprintf(needle, sizeof needle, "3 trailing bytes after the checksum at byte offset %zu", fx.n);
    expect_load(&fx, b, fx.n + 3, BPROP_E_FORMAT, needle);
    free(b);
    fixture_free(&fx);
}

Test(model_io, bad_header_fields_are_format_errors)
{
    fixture fx = fixture_make(1, 0);
    unsigned char *b = malloc(fx.n);

    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HAS_BIAS, 2, 4);
    fix_crc(b, fx.n);
    expect_load(&fx, b, fx.n, BPROP_E_FORMAT, "byte offset 40");

    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_SCHEDULE, 9, 4);
    fix_crc(b, fx.n);
    expect_load(&fx, b, fx.n, BPROP_E_FORMAT, "unknown learning-rate schedule 9");

    memcpy(b, fx.buf, fx.n);
    memset(b + OFF_DATA, 'a', 256);
    fix_crc(b, fx.n);
    expect_load(&fx, b, fx.n, BPROP_E_FORMAT, "not NUL-terminated");

    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HLEN, 100, 4);
    fix_crc(b, fx.n);
    expect_load(&fx, b, fx.n, BPROP_E_FORMAT, "header length 100");

    /* A header length pointing past the end of the file: truncation, no allocation. */
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HLEN, 0xFFFFFFF0u, 4);
    fix_crc(b, fx.n);
    expect_load(&fx, b, fx.n, BPROP_E_FORMAT, "truncated");
    free(b);
    fixture_free(&fx);
}

Test(model_io, longer_header_is_skipped)
{
    /* Later writers may append header fields; this version reads past them. */
    fixture fx = fixture_make(1, 1);
    size_t extra = 12, n = fx.n + extra;
    unsigned char *b = calloc(n, 1);
    memcpy(b, fx.buf, OFF_BODY);
    memset(b + OFF_BODY, 0xAB, extra);
    memcpy(b + OFF_BODY + extra, fx.buf + OFF_BODY, fx.n - OFF_BODY);
    tu_put_le(b + OFF_HLEN, OFF_BODY - 16 + extra, 4);
    fix_crc(b, n);
    tu_write_file(fx.path, b, n);
    bprop_model *l = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_model_load(fx.path, &l, &err), BPROP_OK, "%s", err.message);
    cr_assert(tu_same_bits(l->params, fx.m->params, fx.m->layout.total));
    cr_assert(tu_same_bits(l->std_scale, fx.m->std_scale, 7));
    assert_same_info(&l->info, &fx.m->info);
    bprop_model_free(l);
    free(b);
    fixture_free(&fx);
}

/* Entries of dir other than . and .. */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void assert_unchanged(const fixture *fx)
{
    size_t n;
    unsigned char *now = (unsigned char *)tu_read_file(fx->path, &n);
    cr_assert_eq(n, fx->n);
    cr_assert_eq(memcmp(now, fx->buf, n), 0, "the existing file was modified");
    cr_assert_eq(count_entries(fx->dir), 1, "a temporary file was left behind");
    free(now);
}

Test(model_io, failed_save_of_nonfinite_model_leaves_file_alone)
{
    fixture fx = fixture_make(1, 1);
    bprop_model *m = make_model(1, 1);
    m->params[m->layout.offset[BPROP_B1] + 2] = NAN;
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(m, fx.path, &err), BPROP_E_NONFINITE);
    cr_assert(strstr(err.message, fx.path), "%s", err.message);
    cr_assert(strstr(err.message, "b1[2] is NaN"), "%s", err.message);
    assert_unchanged(&fx);

    m->params[m->layout.offset[BPROP_B1] + 2] = 0.0f;
    m->std_mean[4] = INFINITY;
    cr_assert_eq(bprop_model_save(m, fx.path, &err), BPROP_E_NONFINITE);
    cr_assert(strstr(err.message, "std_mean[4] is infinite"), "%s", err.message);
    assert_unchanged(&fx);
    bprop_model_free(m);
    fixture_free(&fx);
}

Test(model_io, save_into_missing_directory_fails)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "no/such/dir/model.bin");
    bprop_model *m = make_model(1, 0);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_E_IO);
    cr_assert(strstr(err.message, path), "%s", err.message);
    cr_assert_eq(count_entries(dir), 0);
    bprop_model_free(m);
    free(path);
    free(dir);
}

Test(model_io, failed_rename_removes_temp_file)
{
    /* A directory at the target: the file is written, then cannot replace it. */
    char *dir = tu_tmpdir(), *path = tu_path(dir, "model.bin"), *inner = tu_path(path, "keep");
    cr_assert_eq(mkdir(path, 0755), 0);
    tu_write_text(inner, "keep me");
    bprop_model *m = make_model(1, 0);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_E_IO);
    cr_assert(strstr(err.message, path), "%s", err.message);
    cr_assert_eq(count_entries(dir), 1, "a temporary file was left behind");
    size_t n;
    unsigned char *kept = (unsigned char *)tu_read_file(inner, &n);
    cr_assert_eq(n, 7);
    cr_assert_eq(memcmp(kept, "keep me", 7), 0);
    free(kept);
    bprop_model_free(m);
    free(inner);
    free(path);
    free(dir);
}

Test(model_io, failed_write_leaves_file_alone)
{
    /* A file-size limit makes the writes themselves fail (EFBIG) part-way through the model. */
    fixture fx = fixture_make(1, 1);
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_create(64, 32, 10, 1, 5, &m, NULL), BPROP_OK);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 2000, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(m, fx.path, &err), BPROP_E_IO);
    cr_assert(strstr(err.message, fx.path), "%s", err.message);
    cr_assert(strstr(err.message, "cannot write"), "%s", err.message);
    assert_unchanged(&fx);
    bprop_model_free(m);
    fixture_free(&fx);
}

Test(model_io, overwrite_keeps_mode_and_new_file_uses_umask)
{
    fixture fx = fixture_make(1, 0);
    cr_assert_eq(chmod(fx.path, 0640), 0);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(fx.m, fx.path, &err), BPROP_OK, "%s", err.message);
    struct stat st;
    cr_assert_eq(stat(fx.path, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);

    umask(027);
    char *fresh = tu_path(fx.dir, "fresh.bin");
    cr_assert_eq(bprop_model_save(fx.m, fresh, &err), BPROP_OK, "%s", err.message);
    cr_assert_eq(stat(fresh, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0640);
    cr_assert_eq(count_entries(fx.dir), 2);
    free(fresh);
    fixture_free(&fx);
}

Test(model_io, invalid_arguments)
{
    char *dir = tu_tmpdir(), *path = tu_path(dir, "model.bin");
    bprop_model *m = make_model(1, 0), *l = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_model_save(NULL, path, &err), BPROP_E_ARG);
    cr_assert_eq(bprop_model_save(m, NULL, &err), BPROP_E_ARG);
    cr_assert_eq(bprop_model_load(NULL, &l, &err), BPROP_E_ARG);
    cr_assert_eq(bprop_model_load(path, NULL, &err), BPROP_E_ARG);

    m->layout.total--;
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_E_ARG);
    cr_assert(strstr(err.message, "layout"), "%s", err.message);
    m->layout.total++;
    memset(m->info.data, 'x', sizeof m->info.data);
    cr_assert_eq(bprop_model_save(m, path, &err), BPROP_E_ARG);
    cr_assert(strstr(err.message, path), "%s", err.message);
    cr_assert_eq(count_entries(dir), 0);
    bprop_model_free(m);
    free(path);
    free(dir);
}
