/* test_npy.c: NumPy interop: .npy export and import (library and CLI), every refusal, float64
 * rounding, and predictions recomputed by numpy from the exported files. */
#define _POSIX_C_SOURCE 200809L
#include "npy.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(npy, .init = scratch_create, .fini = scratch_remove, .timeout = 60);

static char *in_dir(const char *name) { return tu_path(g_dir, name); }

static int exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* ---- models and files ---------------------------------------------------------------------- */

/* A random model (biases and standardisation optional) with non-zero biases. */
static bprop_model *make_model(size_t d, size_t h, size_t c, int bias, int std, uint64_t seed)
{
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_create(d, h, c, bias, seed, &m, NULL), BPROP_OK);
    float *b1 = bprop_model_tensor(m, BPROP_B1), *b2 = bprop_model_tensor(m, BPROP_B2);
    for (size_t i = 0; bias && i < h; i++)
        b1[i] = 0.01f * (float)i - 0.02f;
    for (size_t i = 0; bias && i < c; i++)
        b2[i] = -0.03f * (float)i + 0.1f;
    if (std) {
        float *mean = malloc(d * sizeof *mean), *scale = malloc(d * sizeof *scale);
        for (size_t i = 0; i < d; i++) {
            mean[i] = 0.37f * (float)i - 1.1f;
            scale[i] = 1.0f / (1.0f + 0.13f * (float)i);
        }
        cr_assert_eq(bprop_model_set_standardization(m, mean, scale), BPROP_OK);
        free(mean);
        free(scale);
    }
    return m;
}

/* An .npy file from a header dictionary literal and raw data bytes (version major.0, header
 * padded to 64 like NumPy unless pad is 0). */
static void write_npy_raw(const char *path, const char *dict, int major, int pad, const void *body,
                          size_t body_len)
{
    size_t pre = major == 1 ? 10 : 12, hl = strlen(dict) + 1;
    if (pad)
        hl += (64 - (pre + hl) % 64) % 64;
    size_t total = pre + hl + body_len;
    unsigned char *buf = malloc(total);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (unsigned char)major;
    buf[7] = 0;
    for (size_t i = 0; i < pre - 8; i++)
        buf[8 + i] = (unsigned char)(hl >> (8 * i));
    memset(buf + pre, ' ', hl);
    memcpy(buf + pre, dict, strlen(dict));
    buf[pre + hl - 1] = '\n';
    if (body_len)
        memcpy(buf + pre + hl, body, body_len);
    tu_write_file(path, buf, total);
    free(buf);
}

/* dir/name with the given dict and float32 values. */
static void put_f4(const char *dir, const char *name, const char *dict, const float *v, size_t n)
{
    char *p = tu_path(dir, name);
    write_npy_raw(p, dict, 1, 1, v, n * sizeof(float));
    free(p);
}

/* A directory holding a valid 3-4-2 model (W1, W2, optional b1/b2 and mean/scale). */
static char *valid_dir(const char *name, int bias, int std)
{
    char *dir = in_dir(name);
    bprop_model *m = make_model(3, 4, 2, bias, std, 5);
    bprop_error err = {0};
    cr_assert_eq(bprop_model_export_npy(m, dir, &err), BPROP_OK, "%s", err.message);
    bprop_model_free(m);
    return dir;
}

static void expect_import_fails(const char *dir, bprop_status status, const char *file,
                                const char *text)
{
    bprop_model *m = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_model_import_npy(dir, &m, NULL, &err);
    cr_assert_eq(st, status, "status %d (%s), expected %d", st, err.message, status);
    cr_assert_null(m);
    cr_assert_not_null(strstr(err.message, file), "message '%s' does not name %s", err.message, file);
    cr_assert_not_null(strstr(err.message, text), "message '%s' lacks '%s'", err.message, text);
    cr_assert_null(strchr(err.message, '\n'));
}

/* ---- running the program ------------------------------------------------------------------- */

/* Run argv[0] (a program path, or a name on PATH) with the rest, capturing stdout and stderr. */
static tu_run run_prog(const char *const *argv)
{
    char *out = in_dir("stdout.txt"), *err = in_dir("stderr.txt");
    const tu_spawn_opts o = {.out = out, .err = err, .omp_threads = "2"};
    tu_run r = tu_finish(tu_spawn(argv, &o), &o);
    free(out);
    free(err);
    return r;
}

#define RUN(...) run_prog((const char *const[]){BPROP_CLI_PATH, __VA_ARGS__, NULL})

/* `bprop import DIR --save M` must fail with exit 1, one line naming file and text, no M. */
static void expect_cli_refusal(const char *dir, const char *file, const char *text)
{
    char *model = in_dir("refused.bpm");
    tu_run r = RUN("import", dir, "--save", model);
    cr_assert_eq(r.status, 1, "exit %d, stderr: %s", r.status, r.err);
    cr_assert_not_null(strstr(r.err, file), "stderr '%s' does not name %s", r.err, file);
    cr_assert_not_null(strstr(r.err, text), "stderr '%s' lacks '%s'", r.err, text);
    cr_assert_eq(strncmp(r.err, "bprop: ", 7), 0);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "not one line: %s", r.err);
    cr_assert(!exists(model), "a model file was written");
    tu_run_free(&r);
    free(model);
}

/* ---- round trips --------------------------------------------------------------------------- */

static void check_same_model(const bprop_model *a, const bprop_model *b)
{
    cr_assert_eq(a->inputs, b->inputs);
    cr_assert_eq(a->hidden, b->hidden);
    cr_assert_eq(a->classes, b->classes);
    cr_assert_eq(a->has_bias, b->has_bias);
    cr_assert_eq(a->layout.total, b->layout.total);
    cr_assert(tu_same_bits(a->params, b->params, a->layout.total), "parameters differ");
    cr_assert_eq(!a->std_mean, !b->std_mean);
    if (a->std_mean) {
        cr_assert(tu_same_bits(a->std_mean, b->std_mean, a->inputs), "std_mean differs");
        cr_assert(tu_same_bits(a->std_scale, b->std_scale, a->inputs), "std_scale differs");
    }
}

Test(npy, round_trip_is_bitwise_with_and_without_bias_and_std)
{
    for (int bias = 0; bias < 2; bias++)
        for (int std = 0; std < 2; std++) {
            char name[32];
            snprintf(name, sizeof name, "m%d%d/nested", bias, std);
            char *dir = in_dir(name);
            bprop_model *m = make_model(7, 5, 3, bias, std, 42 + (uint64_t)(2 * bias + std));
            m->info.epochs_done = 9;
            bprop_error err = {0};
            cr_assert_eq(bprop_model_export_npy(m, dir, &err), BPROP_OK, "%s", err.message);
            bprop_model *back = NULL;
            unsigned rounded = 99;
            int64_t before = (int64_t)time(NULL);
            cr_assert_eq(bprop_model_import_npy(dir, &back, &rounded, &err), BPROP_OK, "%s", err.message);
            check_same_model(m, back);
            cr_assert_eq(rounded, 0u);
            /* Fresh provenance: no history, data = the directory. */
            cr_assert_eq(back->info.epochs_done, 0);
            cr_assert_str_eq(back->info.data, dir);
            cr_assert_str_eq(back->info.isa, "");
            cr_assert_geq(back->info.created_unix, before);
            for (int f = 0; f < BPROP_NPY_FILES; f++) {
                char *p = tu_path(dir, bprop_npy_file_name((bprop_npy_file)f));
                int optional_bias = f == BPROP_NPY_B1 || f == BPROP_NPY_B2;
                int optional_std = f == BPROP_NPY_MEAN || f == BPROP_NPY_SCALE;
                cr_assert_eq(exists(p), (!optional_bias || bias) && (!optional_std || std), "%s", p);
                free(p);
            }
            bprop_model_free(back);
            bprop_model_free(m);
            free(dir);
        }
}

Test(npy, written_header_follows_the_spec)
{
    char *dir = valid_dir("spec", 1, 0), *w1 = tu_path(dir, "W1.npy"), *b1 = tu_path(dir, "b1.npy");
    const char *paths[2] = {w1, b1};
    const char *dicts[2] = {"{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }",
                            "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }"};
    const size_t bytes[2] = {3 * 4 * 4, 4 * 4};
    for (int i = 0; i < 2; i++) {
        char *s = tu_read_file(paths[i], NULL);
        cr_assert_eq(memcmp(s, "\x93NUMPY\x01\x00", 8), 0);
        size_t hl = (unsigned char)s[8] | (size_t)(unsigned char)s[9] << 8;
        cr_assert_eq((10 + hl) % 64, 0, "header not padded to 64: %zu", hl);
        cr_assert_eq(strncmp(s + 10, dicts[i], strlen(dicts[i])), 0, "header: %.60s", s + 10);
        cr_assert_eq(s[10 + hl - 1], '\n');
        for (size_t k = 10 + strlen(dicts[i]); k < 10 + hl - 1; k++)
            cr_assert_eq(s[k], ' ');
        struct stat st;
        cr_assert_eq(stat(paths[i], &st), 0);
        cr_assert_eq((size_t)st.st_size, 10 + hl + bytes[i]);
        free(s);
    }
    free(w1), free(b1), free(dir);
}

Test(npy, re_export_removes_stale_optional_files)
{
    char *dir = valid_dir("stale", 1, 1);
    bprop_model *m = make_model(3, 4, 2, 0, 0, 8), *back = NULL;
    cr_assert_eq(bprop_model_export_npy(m, dir, NULL), BPROP_OK);
    cr_assert_eq(bprop_model_import_npy(dir, &back, NULL, NULL), BPROP_OK);
    check_same_model(m, back);
    bprop_model_free(m), bprop_model_free(back), free(dir);
}

Test(npy, export_refuses_non_finite_and_writes_nothing)
{
    char *dir = in_dir("nan");
    bprop_model *m = make_model(3, 4, 2, 1, 0, 8);
    bprop_model_tensor(m, BPROP_W2)[5] = NAN;
    bprop_error err = {0};
    cr_assert_eq(bprop_model_export_npy(m, dir, &err), BPROP_E_NONFINITE);
    cr_assert_not_null(strstr(err.message, "W2.npy element 5 is NaN"), "%s", err.message);
    cr_assert(!exists(dir));
    bprop_model_free(m), free(dir);
}

/* Headers as other writers may lay them out: any key order, quotes, spacing, no padding,
 * versions 2.0 and 3.0, Python 2's long suffix. */
Test(npy, header_variants_are_accepted)
{
    const float w1[6] = {1, 2, 3, 4, 5, 6}, w2[2] = {0.5f, -0.5f};
    const char *w1_dicts[] = {
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
        "{\"shape\":(3,2),\"descr\":\"<f4\",\"fortran_order\":False}",
        "{ 'fortran_order' : False ,\n\t'shape' : ( 3 , 2 , ) , 'descr' : '<f4' }",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 2L)}",
    };
    for (size_t v = 0; v < sizeof w1_dicts / sizeof *w1_dicts; v++)
        for (int major = 1; major <= 3; major++) {
            char name[32];
            snprintf(name, sizeof name, "variant%zu_%d", v, major);
            char *dir = in_dir(name), *p = tu_path(dir, "W1.npy");
            cr_assert_eq(mkdir(dir, 0777), 0);
            write_npy_raw(p, w1_dicts[v], major, (int)(v % 2 == 0), w1, sizeof w1);
            put_f4(dir, "W2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", w2, 2);
            bprop_model *m = NULL;
            bprop_error err = {0};
            cr_assert_eq(bprop_model_import_npy(dir, &m, NULL, &err), BPROP_OK, "%s: %s", w1_dicts[v],
                         err.message);
            cr_assert_eq(m->inputs, 3);
            cr_assert_eq(m->hidden, 2);
            cr_assert_eq(m->classes, 1);
            cr_assert(tu_same_bits(bprop_model_tensor(m, BPROP_W1), w1, 6));
            bprop_model_free(m), free(p), free(dir);
        }
}

Test(npy, float64_is_rounded_and_reported)
{
    char *dir = in_dir("f64");
    cr_assert_eq(mkdir(dir, 0777), 0);
    const double w1[4] = {0.1, 1.0 / 3.0, -2.0e-7, 12345.6789}, b2[2] = {0.7, -0.3};
    const float w2[2] = {1, -1}, b1[2] = {0, 0};
    char *p = tu_path(dir, "W1.npy");
    write_npy_raw(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", 1, 1, w1, sizeof w1);
    free(p);
    p = tu_path(dir, "b2.npy");
    write_npy_raw(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 1, 1, b2, 8);
    free(p);
    put_f4(dir, "W2.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1), }", w2, 2);
    put_f4(dir, "b1.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", b1, 2);
    bprop_model *m = NULL;
    unsigned rounded = 0;
    cr_assert_eq(bprop_model_import_npy(dir, &m, &rounded, NULL), BPROP_OK);
    cr_assert_eq(rounded, 1u << BPROP_NPY_W1 | 1u << BPROP_NPY_B2);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(bprop_model_tensor(m, BPROP_W1)[i], (float)w1[i]);
    cr_assert_eq(bprop_model_tensor(m, BPROP_B2)[0], (float)b2[0]);
    bprop_model_free(m);
    /* The command says so, once, naming the files. */
    char *model = in_dir("f64.bpm");
    tu_run r = RUN("import", dir, "--save", model);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "bprop: note: float64 values rounded to float32 in W1.npy b2.npy\n");
    cr_assert(exists(model));
    tu_run_free(&r), free(model), free(dir);
}

/* ---- refusals ------------------------------------------------------------------------------ */

enum { MUT_WRITE, MUT_REMOVE, MUT_MAGIC, MUT_CUT_HEADER, MUT_F8_HUGE, MUT_NAN, MUT_INF };

/* One way to spoil a valid 3-4-2 export (with biases and standardisation). */
typedef struct refusal {
    const char *file;   /* the file spoilt, named in the message */
    int how;            /* MUT_* */
    const char *dict;   /* MUT_WRITE: header dictionary, data = nvals float32 values */
    int nvals, major;
    bprop_status status;
    const char *text;   /* expected in the message */
} refusal;

#define F4(shape) "{'descr': '<f4', 'fortran_order': False, 'shape': " shape ", }"

static const refusal refusals[] = {
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'fortran_order': True, 'shape': (3, 4), }", 12, 1,
     BPROP_E_FORMAT, "Fortran (column-major) order is not supported"},
    {"W1.npy", MUT_WRITE, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }", 12, 1,
     BPROP_E_FORMAT, "dtype '<i4' is not supported"},
    {"W2.npy", MUT_WRITE, "{'descr': '>f4', 'fortran_order': False, 'shape': (4, 2), }", 8, 1,
     BPROP_E_FORMAT, "dtype '>f4' (big-endian) is not supported"},
    {"b2.npy", MUT_WRITE, "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 1, 1,
     BPROP_E_FORMAT, "dtype '<f2' is not supported"},
    {"b1.npy", MUT_WRITE, "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", 4, 1,
     BPROP_E_FORMAT, "structured dtype"},
    {"W1.npy", MUT_MAGIC, NULL, 0, 1, BPROP_E_FORMAT, "not an NPY file"},
    {"W1.npy", MUT_WRITE, F4("(3, 4)"), 12, 4, BPROP_E_FORMAT, "format version 4.0 is not supported"},
    {"W1.npy", MUT_CUT_HEADER, NULL, 0, 1, BPROP_E_FORMAT, "truncated"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'shape': (3, 4), }", 12, 1, BPROP_E_FORMAT,
     "key 'fortran_order' is missing"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)}",
     12, 1, BPROP_E_FORMAT, "key 'descr' appears twice"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), 'x': 1}", 12, 1,
     BPROP_E_FORMAT, "unknown key 'x'"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 4)} junk", 12, 1,
     BPROP_E_FORMAT, "unexpected text after the dictionary"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4, 'fortran_order': False, 'shape': (3, 4)}", 12, 1,
     BPROP_E_FORMAT, "bad NPY header"},
    {"W1.npy", MUT_WRITE, "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 4)}", 12, 1,
     BPROP_E_FORMAT, "'fortran_order' must be True or False"},
    {"b1.npy", MUT_WRITE, F4("(4)"), 4, 1, BPROP_E_FORMAT, "is not a tuple"},
    {"W1.npy", MUT_WRITE, F4("(3, 4)"), 11, 1, BPROP_E_FORMAT,
     "truncated data: shape (3, 4) of '<f4' needs 48 bytes, the file holds 44"},
    {"W1.npy", MUT_WRITE, F4("(3, 4)"), 13, 1, BPROP_E_FORMAT, "4 trailing bytes after the data"},
    {"W1.npy", MUT_WRITE, F4("(12,)"), 12, 1, BPROP_E_MISMATCH,
     "shape (12,) has 1 dimension; W1.npy must be 2-D (inputs, hidden)"},
    {"b1.npy", MUT_WRITE, F4("(4, 1)"), 4, 1, BPROP_E_MISMATCH, "b1.npy must be 1-D"},
    {"W1.npy", MUT_WRITE, F4("(0, 4)"), 0, 1, BPROP_E_SIZE, "shape (0, 4) is empty"},
    {"W2.npy", MUT_WRITE, F4("(5, 2)"), 10, 1, BPROP_E_MISMATCH,
     "shape (5, 2) does not fit: W2.npy must be (hidden=4, classes) to chain with W1.npy"},
    {"b1.npy", MUT_WRITE, F4("(3,)"), 3, 1, BPROP_E_MISMATCH, "b1.npy must be (hidden=4,)"},
    {"b2.npy", MUT_WRITE, F4("(3,)"), 3, 1, BPROP_E_MISMATCH, "b2.npy must be (classes=2,)"},
    {"mean.npy", MUT_WRITE, F4("(4,)"), 4, 1, BPROP_E_MISMATCH, "mean.npy must be (inputs=3,)"},
    {"scale.npy", MUT_WRITE, F4("(2,)"), 2, 1, BPROP_E_MISMATCH, "scale.npy must be (inputs=3,)"},
    {"W2.npy", MUT_NAN, NULL, 0, 1, BPROP_E_NONFINITE, "element [1, 1] is NaN"},
    {"b1.npy", MUT_INF, NULL, 0, 1, BPROP_E_NONFINITE, "element [0] is infinite"},
    {"mean.npy", MUT_F8_HUGE, NULL, 0, 1, BPROP_E_NONFINITE, "element [2] is 1e+300, beyond float32 range"},
    {"W1.npy", MUT_REMOVE, NULL, 0, 1, BPROP_E_IO, "missing: a model needs W1.npy"},
    {"W2.npy", MUT_REMOVE, NULL, 0, 1, BPROP_E_IO, "missing: a model needs W1.npy"},
    {"b2.npy", MUT_REMOVE, NULL, 0, 1, BPROP_E_MISMATCH, "missing, but b1.npy is present"},
    {"b1.npy", MUT_REMOVE, NULL, 0, 1, BPROP_E_MISMATCH, "missing, but b2.npy is present"},
    {"scale.npy", MUT_REMOVE, NULL, 0, 1, BPROP_E_MISMATCH, "missing, but mean.npy is present"},
};

static void spoil(const char *dir, const refusal *r)
{
    static const float vals[16] = {0.5f, -1, 2, 0.25f, 3, -4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14};
    char *p = tu_path(dir, r->file);
    if (r->how == MUT_REMOVE) {
        cr_assert_eq(remove(p), 0);
    } else if (r->how == MUT_WRITE) {
        write_npy_raw(p, r->dict, r->major, 1, vals, (size_t)r->nvals * sizeof(float));
    } else if (r->how == MUT_MAGIC) {
        tu_write_text(p, "PK\x03\x04 this is a zip file, not npy");
    } else if (r->how == MUT_CUT_HEADER) {
        char *s = tu_read_file(p, NULL);
        tu_write_file(p, s, 40);
        free(s);
    } else if (r->how == MUT_F8_HUGE) {
        const double v[3] = {0, 1, 1e300};
        write_npy_raw(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }", 1, 1, v, sizeof v);
    } else {
        float v[8];
        memcpy(v, vals, sizeof v);
        v[r->how == MUT_NAN ? 3 : 0] = r->how == MUT_NAN ? NAN : -INFINITY;
        int w2 = strcmp(r->file, "W2.npy") == 0;
        write_npy_raw(p, w2 ? F4("(4, 2)") : F4("(4,)"), 1, 1, v, (w2 ? 8 : 4) * sizeof(float));
    }
    free(p);
}

Test(npy, every_refusal_names_the_file_and_writes_nothing)
{
    for (size_t i = 0; i < sizeof refusals / sizeof *refusals; i++) {
        const refusal *r = &refusals[i];
        char name[32];
        snprintf(name, sizeof name, "case%zu", i);
        char *dir = valid_dir(name, 1, 1), *file = tu_path(dir, r->file);
        spoil(dir, r);
        expect_import_fails(dir, r->status, file, r->text);
        expect_cli_refusal(dir, file, r->text);
        free(file), free(dir);
    }
}

Test(npy, missing_directory_and_bad_command_lines)
{
    char *dir = in_dir("nowhere");
    expect_import_fails(dir, BPROP_E_IO, dir, "cannot open");
    expect_cli_refusal(dir, dir, "cannot open");
    tu_run r = RUN("import", dir);
    cr_assert_eq(r.status, 2);
    cr_assert_not_null(strstr(r.err, "missing --save MODEL"), "%s", r.err);
    tu_run_free(&r);
    r = RUN("export", "only-a-model.bpm");
    cr_assert_eq(r.status, 2);
    cr_assert_not_null(strstr(r.err, "missing DIR"), "%s", r.err);
    tu_run_free(&r);
    r = RUN("export", "a", "b", "c");
    cr_assert_eq(r.status, 2);
    cr_assert_not_null(strstr(r.err, "unexpected argument 'c'"), "%s", r.err);
    tu_run_free(&r);
    /* Export into a path that is a file, and of a model that is not there. */
    char *model = in_dir("m.bpm"), *file = in_dir("plain-file");
    bprop_model *m = make_model(3, 4, 2, 1, 0, 1);
    cr_assert_eq(bprop_model_save(m, model, NULL), BPROP_OK);
    bprop_model_free(m);
    tu_write_text(file, "x");
    r = RUN("export", model, file);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "is not a directory"), "%s", r.err);
    tu_run_free(&r);
    r = RUN("export", dir, file);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, "cannot open"), "%s", r.err);
    tu_run_free(&r);
    free(model), free(file);
    const char *cmds[2] = {"export", "import"};
    for (int i = 0; i < 2; i++) {
        r = RUN(cmds[i], "--help");
        cr_assert_eq(r.status, 0);
        cr_assert_not_null(strstr(r.out, "W1.npy (inputs, hidden)"), "%s", r.out);
        tu_run_free(&r);
    }
    free(dir);
}

/* ---- through the command line, and numpy ---------------------------------------------------- */

static void write_csv(const char *path, const bprop_dataset *d, size_t n, int labelled)
{
    tu_write_csv(path, d, n, labelled);
}

/* A python3 that has numpy (Debian's first: a python3 earlier in PATH may lack it), or NULL. */
static const char *python_with_numpy(void)
{
    static const char *const candidates[] = {"/usr/bin/python3", "python3"};
    for (size_t i = 0; i < 2; i++) {
        tu_run r = run_prog((const char *const[]){candidates[i], "-c", "import numpy", NULL});
        int ok = r.status == 0;
        tu_run_free(&r);
        if (ok)
            return candidates[i];
    }
    return NULL;
}

/* Compare `bprop predict` probabilities (CSV with index,predicted,p0..) with numpy's lines. */
static void compare_predictions(const char *bprop_csv, const char *numpy_lines, size_t n, size_t classes)
{
    const char *b = strchr(bprop_csv, '\n') + 1, *p = numpy_lines; /* skip the header */
    for (size_t i = 0; i < n; i++) {
        char *end;
        strtoul(b, &end, 10);
        strtoul(end + 1, &end, 10);
        b = end;
        for (size_t c = 0; c < classes; c++) {
            double pb = strtod(b + 1, &end);
            b = end;
            double pn = strtod(p, &end);
            p = end + 1;
            cr_assert_leq(fabs(pb - pn), 1e-5, "sample %zu class %zu: bprop %g, numpy %g", i, c, pb, pn);
        }
        b = strchr(b, '\n') + 1;
    }
}

static void cli_round_trip(int bias, int std)
{
    bprop_dataset *train = tu_blobs(120, 5, 3, 17);
    char *csv = in_dir("train.csv"), *in = in_dir("in.csv"), *model = in_dir("m.bpm");
    char *dir = in_dir("npy"), *back = in_dir("back.bpm");
    write_csv(csv, train, train->n, 1);
    write_csv(in, train, 12, 0);
    tu_run r = RUN("train", "--train", csv, "--hidden", "6", "--epochs", "2", "--batch", "16",
                       "--quiet", "--save", model, std ? "--standardize" : "--quiet",
                       bias ? "--quiet" : "--no-bias");
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run_free(&r);
    r = RUN("export", model, dir);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_not_null(strstr(r.out, "exported"), "%s", r.out);
    tu_run_free(&r);
    r = RUN("import", dir, "--save", back);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    tu_run_free(&r);
    bprop_model *a = NULL, *c = NULL;
    cr_assert_eq(bprop_model_load(model, &a, NULL), BPROP_OK);
    cr_assert_eq(bprop_model_load(back, &c, NULL), BPROP_OK);
    check_same_model(a, c);
    cr_assert_eq(!a->std_mean, !std);
    cr_assert_eq(a->has_bias, bias);
    r = RUN("predict", model, "--input", in);
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run r2 = RUN("predict", back, "--input", in);
    cr_assert_str_eq(r.out, r2.out, "the imported model predicts differently");
    tu_run_free(&r2);
    const char *py = python_with_numpy();
    if (!py) {
        cr_log_warn("python3 with numpy not found (Debian: python3-numpy): numpy check skipped");
    } else {
        r2 = run_prog((const char *const[]){py, BPROP_TEST_SOURCE_DIR "/npy_predict.py", dir, in, NULL});
        cr_assert_eq(r2.status, 0, "npy_predict.py failed: %s", r2.err);
        compare_predictions(r.out, r2.out, 12, a->classes);
        tu_run_free(&r2);
    }
    tu_run_free(&r);
    bprop_model_free(a), bprop_model_free(c), bprop_dataset_free(train);
    free(csv), free(in), free(model), free(dir), free(back);
}

Test(npy, cli_round_trip_and_numpy_predictions_standardised) { cli_round_trip(1, 1); }
Test(npy, cli_round_trip_and_numpy_predictions_no_bias) { cli_round_trip(0, 0); }
