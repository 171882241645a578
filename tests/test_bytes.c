/* test_bytes.c: byte features (IDX, uint8 .npy) train to the same bits as the floats they stand
 * for on every kernel set, in narrow and wide nets; mapped files refused when cut short; .npy
 * training input. */
#define _POSIX_C_SOURCE 200809L
#include "kernels.h"
#include "rows.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *g_dir;

static void dir_create(void) { g_dir = tu_tmpdir(); }

static void dir_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(bytes, .init = dir_create, .fini = dir_remove);
TestSuite(mapped, .init = dir_create, .fini = dir_remove);
TestSuite(npy_data, .init = dir_create, .fini = dir_remove);

/* ---- synthetic data --------------------------------------------------------------------- */

/* N images of D pixels (WIDE_N of WIDE_D for the wide nets' test), about half of them 0 (so the
 * zero-input lists matter), 4 classes. */
enum { N = 300, D = 70, WIDE_N = (BP_FWD_GROUP + 1) * BP_BLOCK, WIDE_D = 784, CLASSES = 4 };

static void make_pixels_of(unsigned char *px, unsigned char *labels, size_t n, size_t dim)
{
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t i = 0; i < n * dim; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        unsigned v = (unsigned)(s >> 56);
        px[i] = v < 128 ? 0 : (unsigned char)(v * 7 + i);
    }
    for (size_t i = 0; i < n; i++) {
        labels[i] = (unsigned char)((px[i * dim] + px[i * dim + 3] + i) % CLASSES);
        px[i * dim + 1 + labels[i]] = 255; /* something to learn */
    }
}

static void make_pixels(unsigned char *px, unsigned char *labels)
{
    make_pixels_of(px, labels, N, D);
}

/* An IDX file: magic, dims, payload (plen bytes, which may disagree with dims). */
static char *write_idx(const char *name, uint32_t magic, const uint32_t *dims, unsigned nd,
                       const unsigned char *payload, size_t plen)
{
    size_t len;
    unsigned char *buf = tu_idx_bytes(magic, dims, nd, payload, plen, &len);
    char *path = tu_path(g_dir, name);
    tu_write_file(path, buf, len);
    free(buf);
    return path;
}

/* A .npy file (format 1.0, header padded to 64 bytes) of descr and shape text with payload. */
static char *write_npy(const char *name, const char *descr, const char *shape, int fortran,
                       const void *payload, size_t plen)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }",
                     descr, fortran ? "True" : "False", shape);
    size_t hlen = ((size_t)n + 1 + 10 + 63) / 64 * 64 - 10; /* dict, spaces, '\n' */
    size_t len = 10 + hlen + plen;
    unsigned char *buf = malloc(len);
    cr_assert_not_null(buf);
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    tu_put_le(buf + 8, hlen, 2);
    memset(buf + 10, ' ', hlen);
    memcpy(buf + 10, dict, (size_t)n);
    buf[10 + hlen - 1] = '\n';
    memcpy(buf + 10 + hlen, payload, plen);
    char *path = tu_path(g_dir, name);
    tu_write_file(path, buf, len);
    free(buf);
    return path;
}

/* The same data as float32 built here, independently of the library's byte path. */
static bprop_dataset *float_set_of(const unsigned char *px, const unsigned char *labels, size_t n,
                                   size_t dim)
{
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(n, dim, CLASSES, 1, &d, NULL), BPROP_OK);
    for (size_t i = 0; i < n * dim; i++)
        d->x[i] = (float)px[i] / 255.0f;
    for (size_t i = 0; i < n; i++)
        d->y[i] = labels[i];
    return d;
}

static bprop_dataset *float_set(const unsigned char *px, const unsigned char *labels)
{
    return float_set_of(px, labels, N, D);
}

/* The pixels as a mapped IDX byte set (images of 1 x dim). */
static bprop_dataset *byte_set_of(const unsigned char *px, const unsigned char *labels, size_t n,
                                  size_t dim)
{
    const uint32_t idims[] = {(uint32_t)n, 1, (uint32_t)dim}, ldims[] = {(uint32_t)n};
    char *img = write_idx("img.idx", 0x803, idims, 3, px, n * dim);
    char *lab = write_idx("lab.idx", 0x801, ldims, 1, labels, n);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_idx(img, lab, CLASSES, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_null(d->x);
    cr_assert_not_null(d->x8);
    free(img), free(lab);
    return d;
}

static bprop_dataset *byte_set(const unsigned char *px, const unsigned char *labels)
{
    return byte_set_of(px, labels, N, D);
}

/* ---- training ------------------------------------------------------------------------------ */

typedef struct run_cfg {
    int threads;
    bprop_parallel parallel;
    int reproducible;
    int standardize;
    size_t batch, hidden;
} run_cfg;

/* Two epochs of training from one seed on d; the caller frees the model. */
static bprop_model *train(bprop_dataset *d, const run_cfg *r)
{
    bprop_model *m = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_model_create(d->dim, r->hidden, CLASSES, 1, 7, &m, &e), BPROP_OK, "%s",
                 e.message);
    if (r->standardize) {
        float *mean = malloc(d->dim * sizeof *mean), *scale = malloc(d->dim * sizeof *scale);
        cr_assert(mean && scale);
        cr_assert_eq(bprop_dataset_feature_stats(d, mean, scale), BPROP_OK);
        cr_assert_eq(bprop_model_set_standardization(m, mean, scale), BPROP_OK);
        free(mean), free(scale);
    }
    cr_assert_eq(bprop_model_prepare_data(m, d, &e), BPROP_OK, "%s", e.message);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 2, c.batch = r->batch, c.threads = r->threads, c.parallel = r->parallel;
    c.reproducible = r->reproducible;
    bprop_trainer *t = NULL;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, &e), BPROP_OK, "%s", e.message);
    for (int k = 0; k < 2; k++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, &e), BPROP_OK, "%s", e.message);
    bprop_trainer_free(t);
    return m;
}

static const run_cfg runs[] = {
    {1, BPROP_PARALLEL_DATA, 0, 0, 32, 24},   {2, BPROP_PARALLEL_DATA, 0, 0, 100, 40},
    {2, BPROP_PARALLEL_HIDDEN, 0, 0, 128, 48}, {3, BPROP_PARALLEL_HIDDEN, 1, 0, 150, 80},
    {2, BPROP_PARALLEL_AUTO, 1, 1, 64, 40},   {1, BPROP_PARALLEL_DATA, 0, 1, 20, 8},
    {2, BPROP_PARALLEL_HIDDEN, 0, 1, 300, 64}, {2, BPROP_PARALLEL_HIDDEN, 0, 0, 256, 256},
    {3, BPROP_PARALLEL_HIDDEN, 1, 1, 200, 384},
};

/* Byte and float storage of the same pixels give the same parameters, evaluation, hash and
 * rows, on the kernel set isa (the process's set: each Criterion test is its own process). */
static void same_bits_on(const char *isa)
{
    if (!bp_kernels_named(isa))
        cr_skip_test("this CPU cannot run the %s kernels", isa);
    setenv("BPROP_ISA", isa, 1);
    cr_assert_str_eq(bprop_isa(), isa);
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    for (size_t k = 0; k < sizeof runs / sizeof runs[0]; k++) {
        bprop_dataset *f = float_set(px, labels), *b = byte_set(px, labels);
        cr_assert_eq(bprop_dataset_hash(f), bprop_dataset_hash(b));
        bprop_model *mf = train(f, &runs[k]), *mb = train(b, &runs[k]);
        cr_assert(tu_same_bits(mf->params, mb->params, mf->layout.total),
                  "run %zu on %s: byte storage trained other parameters", k, isa);
        cr_assert_eq(bprop_dataset_hash(f), bprop_dataset_hash(b), "run %zu: standardised", k);
        bprop_eval ef, eb;
        cr_assert_eq(bprop_evaluate(mf, f, 2, &ef, NULL, NULL), BPROP_OK);
        cr_assert_eq(bprop_evaluate(mb, b, 2, &eb, NULL, NULL), BPROP_OK);
        cr_assert(ef.loss == eb.loss && ef.accuracy == eb.accuracy, "run %zu: evaluation", k);
        float row[D];
        for (size_t i = 0; i < N; i += 37)
            cr_assert(tu_same_bits(bprop_dataset_row(b, i, row), f->x + i * D, D), "row %zu", i);
        bprop_model_free(mf), bprop_model_free(mb);
        bprop_dataset_free(f), bprop_dataset_free(b);
    }
}

Test(bytes, same_bits_generic) { same_bits_on("generic"); }
Test(bytes, same_bits_avx2) { same_bits_on("avx2"); }
Test(bytes, same_bits_avx512) { same_bits_on("avx512"); }

/* Wide nets on isa: 800 units of 784 inputs, each of 2 threads' 400-unit W1 slices over
 * BP_FWD_GROUP_MIN; the hidden split runs its blocks in groups of BP_FWD_GROUP. A batch of
 * BP_FWD_GROUP + 1 full blocks: the backward gathers the first group's byte rows again
 * (converted, standardised or not) into the buffers where the forward's second group left the
 * last block's rows, so the zero-input bitmaps kept from that forward must be dropped. Bytes on
 * 2 threads give the bits of floats on 2 threads and on 1 (the float hidden split trains one
 * thread's bits). */
static void wide_same_bits_on(const char *isa)
{
    if (!bp_kernels_named(isa))
        cr_skip_test("this CPU cannot run the %s kernels", isa);
    setenv("BPROP_ISA", isa, 1);
    enum { BATCH = WIDE_N };
    _Static_assert(WIDE_D * 400 * sizeof(float) >= BP_FWD_GROUP_MIN, "a slice of groups");
    _Static_assert(BATCH > BP_FWD_GROUP * BP_BLOCK, "two groups a batch");
    unsigned char *px = malloc((size_t)WIDE_N * WIDE_D), labels[WIDE_N];
    cr_assert_not_null(px);
    make_pixels_of(px, labels, WIDE_N, WIDE_D);
    for (int standardize = 0; standardize < 2; standardize++) {
        const run_cfg two = {2, BPROP_PARALLEL_HIDDEN, 0, standardize, BATCH, 800};
        run_cfg one = two;
        one.threads = 1;
        /* a set each: preparing a float set standardises its values in place */
        bprop_dataset *f = float_set_of(px, labels, WIDE_N, WIDE_D);
        bprop_dataset *f2 = float_set_of(px, labels, WIDE_N, WIDE_D);
        bprop_dataset *b = byte_set_of(px, labels, WIDE_N, WIDE_D);
        bprop_model *mf = train(f, &one), *mf2 = train(f2, &two), *mb = train(b, &two);
        const size_t n = mf->layout.total;
        cr_assert(tu_same_bits(mf2->params, mf->params, n), "%s, standardise %d: floats, 2 "
                  "threads against 1", isa, standardize);
        cr_assert(tu_same_bits(mb->params, mf->params, n), "%s, standardise %d: bytes, 2 "
                  "threads against floats", isa, standardize);
        bprop_model_free(mf), bprop_model_free(mf2), bprop_model_free(mb);
        bprop_dataset_free(f), bprop_dataset_free(f2), bprop_dataset_free(b);
    }
    free(px);
}

Test(bytes, wide_same_bits_generic) { wide_same_bits_on("generic"); }
Test(bytes, wide_same_bits_avx2) { wide_same_bits_on("avx2"); }
Test(bytes, wide_same_bits_avx512) { wide_same_bits_on("avx512"); }

Test(bytes, every_byte_is_its_float_over_255)
{
    unsigned char px[256];
    for (int v = 0; v < 256; v++)
        px[v] = (unsigned char)v;
    const uint32_t dims[] = {1, 256};
    char *img = write_idx("all.idx", 0x802, dims, 2, px, sizeof px);
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_load_idx(img, NULL, 0, &d, NULL), BPROP_OK);
    float row[256];
    const float *r = bprop_dataset_row(d, 0, row);
    volatile float den = 255.0f; /* divided at run time, not folded */
    for (int v = 0; v < 256; v++) {
        float want = (float)v / den;
        cr_assert(tu_same_bits(&r[v], &want, 1), "byte %d: %a, expected %a", v, (double)r[v],
                  (double)want);
    }
    cr_assert_null(bprop_dataset_row(d, 1, row));
    bprop_dataset_free(d);
    free(img);
}

/* Both conversion variants (the widest the CPU runs is used) give the bits of the scalar
 * expression, with and without standardisation. */
Test(bytes, conversion_variants_agree_bit_for_bit)
{
    uint8_t b[256];
    float mean[256], scale[256], want[256], want_std[256], got[256];
    volatile float den = 255.0f;
    for (int v = 0; v < 256; v++) {
        b[v] = (uint8_t)(255 - v);
        mean[v] = (float)v / 300.0f - 0.1f;
        scale[v] = 1.0f / ((float)v + 0.5f);
        want[v] = (float)b[v] / den;
        want_std[v] = (want[v] - mean[v]) * scale[v];
    }
    bp_convert_row_generic(b, NULL, NULL, got, 256);
    cr_assert(tu_same_bits(got, want, 256));
    bp_convert_row_generic(b, mean, scale, got, 256);
    cr_assert(tu_same_bits(got, want_std, 256));
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma"))
        cr_skip_test("no AVX2 and FMA on this CPU");
    bp_convert_row_avx2(b, NULL, NULL, got, 256); /* every byte value */
    cr_assert(tu_same_bits(got, want, 256));
    bp_convert_row_avx2(b + 1, NULL, NULL, got, 255); /* an odd length: the vector tail */
    cr_assert(tu_same_bits(got, want + 1, 255));
    bp_convert_row_avx2(b, mean, scale, got, 256);
    cr_assert(tu_same_bits(got, want_std, 256));
}

Test(bytes, subset_split_and_to_float_match_float_storage)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    bprop_dataset *f = float_set(px, labels), *b = byte_set(px, labels);
    bprop_dataset *fs, *bs, *ft, *fv, *bt, *bv;
    cr_assert_eq(bprop_dataset_subset(f, 10, 50, &fs, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_subset(b, 10, 50, &bs, NULL), BPROP_OK);
    cr_assert_not_null(bs->x8);
    cr_assert_eq(bprop_dataset_hash(fs), bprop_dataset_hash(bs));
    cr_assert_eq(bprop_dataset_split(f, 0.25, 3, &ft, &fv, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_split(b, 0.25, 3, &bt, &bv, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_hash(ft), bprop_dataset_hash(bt));
    cr_assert_eq(bprop_dataset_hash(fv), bprop_dataset_hash(bv));
    /* Standardising twice: bytes become floats, with the same values as two in-place passes. */
    float mean[D], scale[D];
    cr_assert_eq(bprop_dataset_feature_stats(f, mean, scale), BPROP_OK);
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(bprop_dataset_standardize(f, mean, scale), BPROP_OK);
        cr_assert_eq(bprop_dataset_standardize(b, mean, scale), BPROP_OK);
    }
    cr_assert_not_null(b->x);
    cr_assert(tu_same_bits(f->x, b->x, (size_t)N * D));
    cr_assert_eq(bprop_dataset_to_float(bs, NULL), BPROP_OK);
    cr_assert(tu_same_bits(fs->x, bs->x, 50 * D));
    bprop_dataset *sets[] = {f, b, fs, bs, ft, fv, bt, bv};
    for (size_t k = 0; k < 8; k++)
        bprop_dataset_free(sets[k]);
}

/* ---- mapped files ------------------------------------------------------------------------ */

static void expect_fail(bprop_status got, const bprop_error *e, bprop_status want, const char *a,
                        const char *b)
{
    cr_assert_eq(got, want, "status %d, expected %d: %s", got, want, e->message);
    cr_assert(strstr(e->message, a) && strstr(e->message, b), "message: %s", e->message);
    cr_assert_null(strchr(e->message, '\n'));
}

Test(mapped, header_claiming_more_or_less_than_the_file_is_refused)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    const uint32_t more[] = {N + 1, 7, 10}, less[] = {N - 1, 7, 10};
    char *big = write_idx("more.idx", 0x803, more, 3, px, (size_t)N * D);
    char *small = write_idx("less.idx", 0x803, less, 3, px, (size_t)N * D);
    bprop_dataset *d = (bprop_dataset *)1;
    bprop_error e = {0};
    expect_fail(bprop_dataset_load_idx(big, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, big,
                "expected 21070 bytes of pixel data, found 21000");
    cr_assert_null(d);
    expect_fail(bprop_dataset_load_idx(small, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, small,
                "unexpected data at byte offset 20946");
    /* The same through bprop_dataset_load, which tells the format by content. */
    expect_fail(bprop_dataset_load(big, NULL, 0, 0, &d, &e), &e, BPROP_E_FORMAT, big, "found 21000");
    free(big), free(small);
}

Test(mapped, truncated_npy_is_refused)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    char *cut = write_npy("cut.npy", "|u1", "(300, 70)", 0, px, (size_t)N * D - 1);
    char *more = write_npy("more.npy", "|u1", "(301, 70)", 0, px, (size_t)N * D);
    char *header = tu_path(g_dir, "header.npy");
    tu_write_file(header, "\x93NUMPY\x01\x00\x76\x00{'descr'", 18);
    bprop_dataset *d = (bprop_dataset *)1;
    bprop_error e = {0};
    expect_fail(bprop_dataset_load_npy(cut, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, cut,
                "truncated data: shape (300, 70) of '|u1' needs 21000 bytes, the file holds 20999");
    cr_assert_null(d);
    expect_fail(bprop_dataset_load_npy(more, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, more,
                "needs 21070 bytes");
    expect_fail(bprop_dataset_load_npy(header, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, header,
                "truncated: the header is 118 bytes");
    free(cut), free(more), free(header);
}

/* A mapped file cut short after it was opened: the pages past the new end are gone, and
 * reading them raises SIGBUS in the reading process (the library installs no handler; the CLI
 * does, docs/data.md). Run in a child so the test survives it. */
Test(mapped, file_truncated_after_open_raises_sigbus_in_the_reader)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    const uint32_t dims[] = {N, 7, 10};
    char *img = write_idx("img.idx", 0x803, dims, 3, px, (size_t)N * D);
    pid_t pid = fork();
    cr_assert_neq(pid, -1);
    if (pid == 0) {
        bprop_dataset *d = NULL;
        if (bprop_dataset_load_idx(img, NULL, 0, &d, NULL) != BPROP_OK)
            _exit(3);
        if (truncate(img, 16) != 0)
            _exit(4);
        float row[D];
        volatile float sum = 0;
        for (size_t i = 0; i < N; i++)
            sum += bprop_dataset_row(d, i, row)[0];
        _exit(5); /* not reached: the row reads fault */
    }
    int status = 0;
    free(img);
    cr_assert_eq(waitpid(pid, &status, 0), pid);
#if defined(__SANITIZE_ADDRESS__)
    /* AddressSanitizer takes SIGBUS itself: it reports "BUS" and exits with status 1, or aborts
     * (SIGABRT) under ASAN_OPTIONS=abort_on_error=1, as scripts/test.sh runs it. */
    if ((WIFEXITED(status) && WEXITSTATUS(status) == 1) ||
        (WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT))
        return;
#endif
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS, "child status 0x%x", status);
}

/* ---- .npy training input ----------------------------------------------------------------- */

/* Trains on IDX, uint8 .npy (labels int64) and float32 .npy (labels uint8, (N, 7, 10) shape)
 * and compares: the same parameters bit for bit. */
Test(npy_data, training_from_npy_equals_training_from_idx)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    int64_t y64[N];
    float xf[N * D];
    for (size_t i = 0; i < N; i++)
        y64[i] = labels[i];
    for (size_t i = 0; i < (size_t)N * D; i++)
        xf[i] = (float)px[i] / 255.0f;
    char *x8 = write_npy("x8.npy", "|u1", "(300, 70)", 0, px, sizeof px);
    char *x32 = write_npy("xf.npy", "<f4", "(300, 7, 10)", 0, xf, sizeof xf);
    char *yl = write_npy("y64.npy", "<i8", "(300,)", 0, y64, sizeof y64);
    char *yb = write_npy("y8.npy", "|u1", "(300,)", 0, labels, sizeof labels);
    for (int standardize = 0; standardize < 2; standardize++) {
        bprop_dataset *ref = byte_set(px, labels), *a = NULL, *b = NULL;
        bprop_error e = {0};
        cr_assert_eq(bprop_dataset_load(x8, yl, 1, CLASSES, &a, &e), BPROP_OK, "%s", e.message);
        cr_assert_eq(bprop_dataset_load_npy(x32, yb, 0, &b, &e), BPROP_OK, "%s", e.message);
        cr_assert(a->x8 && !a->x && b->x && !b->x8);
        cr_assert_eq(b->classes, CLASSES);
        cr_assert_eq(b->dim, D);
        const run_cfg r = {2, BPROP_PARALLEL_AUTO, 0, standardize, 64, 32};
        bprop_model *m0 = train(ref, &r), *ma = train(a, &r), *mb = train(b, &r);
        cr_assert(tu_same_bits(m0->params, ma->params, m0->layout.total), "uint8 .npy");
        cr_assert(tu_same_bits(m0->params, mb->params, m0->layout.total), "float32 .npy");
        bprop_model_free(m0), bprop_model_free(ma), bprop_model_free(mb);
        bprop_dataset_free(ref), bprop_dataset_free(a), bprop_dataset_free(b);
    }
    free(x8), free(x32), free(yl), free(yb);
}

Test(npy_data, bad_arrays_get_one_line_naming_the_file)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    int32_t y[N];
    for (size_t i = 0; i < N; i++)
        y[i] = labels[i];
    float nan[4] = {0.0f, 1.0f, NAN, 2.0f};
    char *x8 = write_npy("x8.npy", "|u1", "(300, 70)", 0, px, sizeof px);
    char *f8 = write_npy("f8.npy", "<f8", "(300, 7)", 0, px, 300 * 7 * 8);
    char *fortran = write_npy("fo.npy", "|u1", "(300, 70)", 1, px, sizeof px);
    char *flat = write_npy("flat.npy", "|u1", "(21000,)", 0, px, sizeof px);
    char *fnan = write_npy("nan.npy", "<f4", "(2, 2)", 0, nan, sizeof nan);
    char *y32 = write_npy("y32.npy", "<i4", "(300,)", 0, y, sizeof y);
    char *yshort = write_npy("ys.npy", "<i4", "(299,)", 0, y, sizeof y - 4);
    char *yfloat = write_npy("yf.npy", "<f4", "(300,)", 0, y, sizeof y);
    y[17] = -2;
    char *yneg = write_npy("yn.npy", "<i4", "(300,)", 0, y, sizeof y);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    expect_fail(bprop_dataset_load_npy(fortran, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, fortran,
                "Fortran");
    expect_fail(bprop_dataset_load_npy(flat, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, flat,
                "images need (N, D)");
    expect_fail(bprop_dataset_load_npy(fnan, NULL, 0, &d, &e), &e, BPROP_E_NONFINITE, fnan,
                "sample 1, feature 0 is NaN");
    expect_fail(bprop_dataset_load_npy(x8, yshort, 0, &d, &e), &e, BPROP_E_MISMATCH, yshort,
                "299 labels, but");
    expect_fail(bprop_dataset_load_npy(x8, yfloat, 0, &d, &e), &e, BPROP_E_FORMAT, yfloat,
                "dtype '<f4'");
    expect_fail(bprop_dataset_load_npy(x8, y32, 2, &d, &e), &e, BPROP_E_LABEL, y32,
                "is not below classes 2");
    expect_fail(bprop_dataset_load_npy(x8, yneg, 0, &d, &e), &e, BPROP_E_LABEL, yneg,
                "record 17 (byte offset 196): label -2 is negative");
    expect_fail(bprop_dataset_load(x8, NULL, 1, 0, &d, &e), &e, BPROP_E_ARG, x8,
                "a labels file is needed");
    expect_fail(bprop_dataset_load_npy(f8, NULL, 0, &d, &e), &e, BPROP_E_FORMAT, f8,
                "dtype '<f8'");
    cr_assert_null(d);
    cr_assert_eq(bprop_dataset_load_npy(x8, y32, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->classes, CLASSES);
    bprop_dataset_free(d);
    char *paths[] = {x8, f8, fortran, flat, fnan, y32, yshort, yfloat, yneg};
    for (size_t k = 0; k < 9; k++)
        free(paths[k]);
}

/* ---- the CLI ------------------------------------------------------------------------------- */

/* `bprop ARGS...` (NULL-terminated) with its output in g_dir; the exit status. */
static int run_cli(const char *const *args, char **err_text)
{
    const char *argv[32] = {BPROP_CLI_PATH};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        cr_assert_lt(n, 31);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    char *out = tu_path(g_dir, "out.txt"), *err = tu_path(g_dir, "err.txt");
    const tu_spawn_opts o = {.out = out, .err = err, .omp_threads = "2"};
    tu_run r = tu_finish(tu_spawn(argv, &o), &o);
    int status = r.status;
    *err_text = strdup(r.err);
    tu_run_free(&r);
    free(out), free(err);
    return status;
}

#define CLI(err, ...) run_cli((const char *const[]){__VA_ARGS__, NULL}, err)

static bprop_model *load_model(const char *path)
{
    bprop_model *m = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_model_load(path, &m, &e), BPROP_OK, "%s", e.message);
    return m;
}

/* `bprop train` from .npy files (uint8 images, int64 labels) saves the model it saves from the
 * IDX files of the same data; .npy labels are accepted for .npy images only. */
Test(npy_data, cli_trains_the_same_model_from_npy_and_idx)
{
    unsigned char px[N * D], labels[N];
    make_pixels(px, labels);
    int64_t y64[N];
    for (size_t i = 0; i < N; i++)
        y64[i] = labels[i];
    const uint32_t idims[] = {N, 7, 10}, ldims[] = {N};
    char *img = write_idx("img.idx", 0x803, idims, 3, px, sizeof px);
    char *lab = write_idx("lab.idx", 0x801, ldims, 1, labels, N);
    char *x8 = write_npy("x8.npy", "|u1", "(300, 7, 10)", 0, px, sizeof px);
    char *yl = write_npy("y.npy", "<i8", "(300,)", 0, y64, sizeof y64);
    char *m_idx = tu_path(g_dir, "idx.bprop"), *m_npy = tu_path(g_dir, "npy.bprop");
    char *err = NULL;
    const char *common[] = {"--epochs", "2", "--hidden", "32", "--batch", "50", "--standardize"};
    cr_assert_eq(CLI(&err, "train", "--train", img, "--train-labels", lab, common[0], common[1],
                     common[2], common[3], common[4], common[5], common[6], "--quiet", "--save",
                     m_idx), 0, "%s", err);
    free(err);
    cr_assert_eq(CLI(&err, "train", "--train", x8, "--train-labels", yl, common[0], common[1],
                     common[2], common[3], common[4], common[5], common[6], "--quiet", "--save",
                     m_npy), 0, "%s", err);
    free(err);
    bprop_model *a = load_model(m_idx), *b = load_model(m_npy);
    cr_assert_eq(a->layout.total, b->layout.total);
    cr_assert(tu_same_bits(a->params, b->params, a->layout.total));
    cr_assert(tu_same_bits(a->std_mean, b->std_mean, D));
    bprop_model_free(a), bprop_model_free(b);
    cr_assert_eq(CLI(&err, "train", "--train", x8, "--epochs", "1"), 1);
    cr_assert(strstr(err, "x8.npy") && strstr(err, "--train-labels"), "%s", err);
    free(err);
    cr_assert_eq(CLI(&err, "train", "--train", img, "--train-labels", yl, "--epochs", "1"), 1);
    cr_assert(strstr(err, "y.npy") && strstr(err, "this looks like a .npy file"), "%s", err);
    cr_assert_eq(strchr(err, '\n'), err + strlen(err) - 1, "one line: %s", err);
    free(err);
    free(img), free(lab), free(x8), free(yl), free(m_idx), free(m_npy);
}
