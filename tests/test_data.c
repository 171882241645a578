/* test_data.c: datasets: allocation, IDX and CSV loading (values and every error), split, stats. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* ---- scratch directory: one per test (Criterion runs each test in its own process) --------- */

static char *g_scratch;

static void scratch_create(void) { g_scratch = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_scratch);
    free(g_scratch);
}

TestSuite(alloc);
TestSuite(idx, .init = scratch_create, .fini = scratch_remove);
TestSuite(idx_errors, .init = scratch_create, .fini = scratch_remove);
TestSuite(csv, .init = scratch_create, .fini = scratch_remove);
TestSuite(csv_errors, .init = scratch_create, .fini = scratch_remove);
TestSuite(load, .init = scratch_create, .fini = scratch_remove);

/* ---- helpers ------------------------------------------------------------------------------ */

/* Feature k of the set's (n, dim) features as training reads them, whichever the storage. */
static float feat(const bprop_dataset *d, size_t k)
{
    float row[4096];
    cr_assert_leq(d->dim, 4096);
    const float *r = bprop_dataset_row(d, k / d->dim, row);
    cr_assert_not_null(r);
    return r[k % d->dim];
}

/* Assert status want, recorded in e too, and a message holding every listed piece (NULL ends). */
static void expect_error(bprop_status got, const bprop_error *e, bprop_status want, ...)
{
    cr_assert_eq(got, want, "status %d (%s), expected %d (%s); message: %s", got,
                 bprop_strerror(got), want, bprop_strerror(want), e->message);
    cr_assert_eq(e->status, want);
    cr_assert_null(strchr(e->message, '\n'), "message is not one line: %s", e->message);
    va_list ap;
    va_start(ap, want);
    for (const char *piece; (piece = va_arg(ap, const char *));)
        cr_assert_not_null(strstr(e->message, piece), "message '%s' lacks '%s'", e->message, piece);
    va_end(ap);
}

static void write_gz(const char *path, const void *data, size_t n)
{
    gzFile g = gzopen(path, "wb");
    cr_assert_not_null(g, "cannot create %s", path);
    cr_assert_eq(gzwrite(g, data, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
}

/* Write an IDX file: magic, nd big-endian dimensions, then the payload; gzip when gz. */
static void write_idx(const char *path, int gz, uint32_t magic, const uint32_t *dims, unsigned nd,
                      const unsigned char *payload, size_t plen)
{
    size_t len;
    unsigned char *buf = tu_idx_bytes(magic, dims, nd, payload, plen, &len);
    if (gz)
        write_gz(path, buf, len);
    else
        tu_write_file(path, buf, len);
    free(buf);
}

/* The standard fixture: 5 images of 2 x 3 pixels (0 and 255 included), labels 3 0 7 1 7. */
enum { FX_N = 5, FX_ROWS = 2, FX_COLS = 3, FX_DIM = FX_ROWS * FX_COLS };
static const unsigned char fx_labels[FX_N] = {3, 0, 7, 1, 7};

static void fx_pixels(unsigned char *px)
{
    for (size_t i = 0; i < FX_N * FX_DIM; i++)
        px[i] = (unsigned char)((i * 37 + 11) % 256);
    px[0] = 0;
    px[FX_N * FX_DIM - 1] = 255;
}

typedef struct fixture {
    const char *dir;
    char *images, *labels;
} fixture;

static fixture fx_write(int gz)
{
    fixture f;
    f.dir = g_scratch;
    f.images = tu_path(f.dir, gz ? "img.gz" : "img.idx");
    f.labels = tu_path(f.dir, gz ? "lab.gz" : "lab.idx");
    unsigned char px[FX_N * FX_DIM];
    fx_pixels(px);
    const uint32_t idims[] = {FX_N, FX_ROWS, FX_COLS}, ldims[] = {FX_N};
    write_idx(f.images, gz, 0x803, idims, 3, px, sizeof px);
    write_idx(f.labels, gz, 0x801, ldims, 1, fx_labels, FX_N);
    return f;
}

static void fx_free(fixture *f)
{
    free(f->images);
    free(f->labels);
}

static void fx_check(const bprop_dataset *d, size_t classes)
{
    unsigned char px[FX_N * FX_DIM];
    fx_pixels(px);
    cr_assert_eq(d->n, FX_N);
    cr_assert_eq(d->dim, FX_DIM);
    cr_assert_eq(d->classes, classes);
    /* IDX pixels stay bytes and read as v / 255.0f */
    cr_assert_null(d->x);
    cr_assert_not_null(d->x8);
    for (size_t i = 0; i < FX_N * FX_DIM; i++)
        cr_assert_eq(feat(d, i), (float)px[i] / 255.0f, "pixel %zu: %g", i, (double)feat(d, i));
    cr_assert_eq(feat(d, 0), 0.0f);
    cr_assert_eq(feat(d, FX_N * FX_DIM - 1), 1.0f);
    cr_assert_not_null(d->y);
    for (size_t i = 0; i < FX_N; i++)
        cr_assert_eq(d->y[i], fx_labels[i]);
}

/* Load IDX images (and labels), expecting failure with the status and message pieces. */
#define IDX_FAILS(images, labels, classes, want, ...)                                              \
    do {                                                                                           \
        bprop_error e_ = {0};                                                                      \
        bprop_dataset *d_ = (bprop_dataset *)1;                                                    \
        bprop_status s_ = bprop_dataset_load_idx(images, labels, classes, &d_, &e_);               \
        expect_error(s_, &e_, want, __VA_ARGS__, NULL);                                            \
        cr_assert_null(d_);                                                                        \
    } while (0)

#define CSV_FAILS(path, labelled, classes, want, ...)                                              \
    do {                                                                                           \
        bprop_error e_ = {0};                                                                      \
        bprop_dataset *d_ = (bprop_dataset *)1;                                                    \
        bprop_status s_ = bprop_dataset_load_csv(path, labelled, classes, &d_, &e_);               \
        expect_error(s_, &e_, want, __VA_ARGS__, NULL);                                            \
        cr_assert_null(d_);                                                                        \
    } while (0)

/* Write text to dir/name and return the path (caller frees). */
static char *text_file(const char *dir, const char *name, const char *text)
{
    char *p = tu_path(dir, name);
    tu_write_text(p, text);
    return p;
}

/* ---- allocation --------------------------------------------------------------------------- */

Test(alloc, rejects_zero_and_overflowing_sizes)
{
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    expect_error(bprop_dataset_alloc(0, 5, 2, 1, &d, &e), &e, BPROP_E_SIZE, "empty", NULL);
    expect_error(bprop_dataset_alloc(5, 0, 2, 1, &d, &e), &e, BPROP_E_SIZE, "empty", NULL);
    expect_error(bprop_dataset_alloc(SIZE_MAX / 2, 3, 2, 1, &d, &e), &e, BPROP_E_SIZE, "too large",
                 NULL);
    /* n * dim fits, n * dim * sizeof(float) does not. */
    expect_error(bprop_dataset_alloc(SIZE_MAX / 8 + 1, 2, 2, 0, &d, &e), &e, BPROP_E_SIZE,
                 "too large", NULL);
    cr_assert_null(d);
    cr_assert_eq(bprop_dataset_alloc(1, 1, 0, 0, NULL, NULL), BPROP_E_ARG);
    bprop_dataset_free(NULL);
}

Test(alloc, aligned_zeroed_and_labelled_on_request)
{
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(7, 13, 4, 1, &d, NULL), BPROP_OK);
    cr_assert_eq((uintptr_t)d->x % 64, 0);
    cr_assert_eq(d->n, 7);
    cr_assert_eq(d->dim, 13);
    cr_assert_eq(d->classes, 4);
    cr_assert_not_null(d->y);
    for (size_t i = 0; i < 7 * 13; i++)
        cr_assert_eq(d->x[i], 0.0f);
    for (size_t i = 0; i < 7; i++)
        cr_assert_eq(d->y[i], 0);
    bprop_dataset_free(d);
    cr_assert_eq(bprop_dataset_alloc(3, 2, 0, 0, &d, NULL), BPROP_OK);
    cr_assert_null(d->y);
    bprop_dataset_free(d);
}

/* ---- IDX: values -------------------------------------------------------------------------- */

Test(idx, round_trip_plain_infers_classes)
{
    fixture f = fx_write(0);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_idx(f.images, f.labels, 0, &d, &e), BPROP_OK, "%s", e.message);
    fx_check(d, 8); /* max label 7, plus one */
    bprop_dataset_free(d);
    fx_free(&f);
}

Test(idx, round_trip_gzip_with_given_classes)
{
    fixture f = fx_write(1);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_idx(f.images, f.labels, 10, &d, &e), BPROP_OK, "%s", e.message);
    fx_check(d, 10);
    bprop_dataset_free(d);
    fx_free(&f);
}

Test(idx, gzip_detected_by_content_not_name)
{
    const char *dir = g_scratch;
    char *img = tu_path(dir, "images.idx"), *lab = tu_path(dir, "labels.gz");
    unsigned char px[FX_N * FX_DIM];
    fx_pixels(px);
    const uint32_t idims[] = {FX_N, FX_ROWS, FX_COLS}, ldims[] = {FX_N};
    write_idx(img, 1, 0x803, idims, 3, px, sizeof px);   /* gzip named .idx */
    write_idx(lab, 0, 0x801, ldims, 1, fx_labels, FX_N); /* plain named .gz */
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_idx(img, lab, 0, &d, &e), BPROP_OK, "%s", e.message);
    fx_check(d, 8);
    bprop_dataset_free(d);
    free(img), free(lab);
}

Test(idx, any_number_of_dimensions)
{
    const char *dir = g_scratch;
    char *p4 = tu_path(dir, "four"), *p2 = tu_path(dir, "two");
    unsigned char px[2 * 2 * 2 * 3];
    for (size_t i = 0; i < sizeof px; i++)
        px[i] = (unsigned char)(i * 10);
    const uint32_t d4[] = {2, 2, 2, 3}, d2[] = {3, 8};
    write_idx(p4, 0, 0x804, d4, 4, px, sizeof px);
    write_idx(p2, 0, 0x802, d2, 2, px, sizeof px);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_idx(p4, NULL, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->dim, 12);
    cr_assert_eq(feat(d, 13), 130.0f / 255.0f);
    bprop_dataset_free(d);
    cr_assert_eq(bprop_dataset_load_idx(p2, NULL, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 3);
    cr_assert_eq(d->dim, 8);
    cr_assert_eq(feat(d, 23), 230.0f / 255.0f);
    bprop_dataset_free(d);
    free(p4), free(p2);
}

Test(idx, unlabelled_has_no_labels_and_no_classes)
{
    fixture f = fx_write(0);
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_load_idx(f.images, NULL, 10, &d, NULL), BPROP_OK);
    cr_assert_null(d->y);
    cr_assert_eq(d->classes, 0);
    cr_assert_eq(d->n, FX_N);
    bprop_dataset_free(d);
    fx_free(&f);
}

/* ---- IDX: errors -------------------------------------------------------------------------- */

Test(idx_errors, missing_files)
{
    fixture f = fx_write(0);
    char *nowhere = tu_path(f.dir, "no-such-file");
    IDX_FAILS(nowhere, f.labels, 0, BPROP_E_IO, nowhere, "cannot open");
    IDX_FAILS(f.images, nowhere, 0, BPROP_E_IO, nowhere, "cannot open");
    IDX_FAILS(f.dir, NULL, 0, BPROP_E_IO, f.dir); /* a directory opens but cannot be read */
    free(nowhere);
    fx_free(&f);
}

Test(idx_errors, bad_magic_shows_what_was_found)
{
    fixture f = fx_write(0);
    /* Swapped files: each loader names the magic it found. */
    IDX_FAILS(f.labels, f.images, 0, BPROP_E_FORMAT, f.labels, "bad magic 0x00000801",
              "label file");
    IDX_FAILS(f.images, f.images, 0, BPROP_E_FORMAT, f.images, "bad magic 0x00000803");
    char *floats = tu_path(f.dir, "floats");
    const uint32_t dims[] = {1, 1, 1};
    const unsigned char payload[4] = {0};
    write_idx(floats, 0, 0xD03, dims, 3, payload, 4); /* float elements: not supported */
    IDX_FAILS(floats, NULL, 0, BPROP_E_FORMAT, floats, "bad magic 0x00000d03");
    char *text = text_file(f.dir, "text.csv", "1,2,3\n");
    IDX_FAILS(text, NULL, 0, BPROP_E_FORMAT, text, "bad magic 0x312c322c");
    free(floats), free(text);
    fx_free(&f);
}

Test(idx_errors, zero_dimensions)
{
    const char *dir = g_scratch;
    char *zc = tu_path(dir, "zero-count"), *zd = tu_path(dir, "zero-rows");
    const uint32_t d0[] = {0, 28, 28}, d1[] = {5, 0, 28};
    write_idx(zc, 0, 0x803, d0, 3, NULL, 0);
    write_idx(zd, 0, 0x803, d1, 3, NULL, 0);
    IDX_FAILS(zc, NULL, 0, BPROP_E_SIZE, zc, "0 images");
    IDX_FAILS(zd, NULL, 0, BPROP_E_SIZE, zd, "dimension 2");
    free(zc), free(zd);
}

Test(idx_errors, truncated_header_and_data)
{
    fixture f = fx_write(0);
    char *hdr = tu_path(f.dir, "short-header"), *px = tu_path(f.dir, "short-pixels");
    char *lab = tu_path(f.dir, "short-labels");
    const unsigned char partial[] = {0, 0, 8, 3, 0, 0, 0, 5, 0, 0};
    tu_write_file(hdr, partial, sizeof partial);
    IDX_FAILS(hdr, NULL, 0, BPROP_E_FORMAT, hdr, "expected 16 bytes, found 10");
    unsigned char pixels[FX_N * FX_DIM] = {0};
    const uint32_t idims[] = {FX_N, FX_ROWS, FX_COLS}, ldims[] = {FX_N};
    write_idx(px, 0, 0x803, idims, 3, pixels, sizeof pixels - 1);
    IDX_FAILS(px, NULL, 0, BPROP_E_FORMAT, px, "expected 30 bytes of pixel data, found 29");
    write_idx(px, 1, 0x803, idims, 3, pixels, 7); /* the same through gzip */
    IDX_FAILS(px, NULL, 0, BPROP_E_FORMAT, px, "expected 30 bytes of pixel data, found 7");
    write_idx(lab, 0, 0x801, ldims, 1, fx_labels, 3);
    IDX_FAILS(f.images, lab, 0, BPROP_E_FORMAT, lab, "expected 5 bytes of labels, found 3");
    free(hdr), free(px), free(lab);
    fx_free(&f);
}

Test(idx_errors, trailing_data)
{
    fixture f = fx_write(0);
    char *img = tu_path(f.dir, "long-images"), *lab = tu_path(f.dir, "long-labels");
    unsigned char pixels[FX_N * FX_DIM + 1] = {0};
    const unsigned char labels[FX_N + 2] = {0};
    const uint32_t idims[] = {FX_N, FX_ROWS, FX_COLS}, ldims[] = {FX_N};
    write_idx(img, 1, 0x803, idims, 3, pixels, sizeof pixels);
    write_idx(lab, 0, 0x801, ldims, 1, labels, sizeof labels);
    IDX_FAILS(img, NULL, 0, BPROP_E_FORMAT, img, "unexpected data at byte offset 46");
    IDX_FAILS(f.images, lab, 0, BPROP_E_FORMAT, lab, "unexpected data at byte offset 13");
    free(img), free(lab);
    fx_free(&f);
}

Test(idx_errors, count_mismatch_names_both_files)
{
    fixture f = fx_write(0);
    char *lab = tu_path(f.dir, "four-labels");
    const uint32_t ldims[] = {FX_N - 1};
    write_idx(lab, 0, 0x801, ldims, 1, fx_labels, FX_N - 1);
    IDX_FAILS(f.images, lab, 0, BPROP_E_MISMATCH, lab, f.images, "4 labels", "5 images");
    free(lab);
    fx_free(&f);
}

Test(idx_errors, label_out_of_range_names_the_record)
{
    fixture f = fx_write(0);
    /* Labels 3 0 7 1 7: with 7 classes record 2 is the first bad one. */
    IDX_FAILS(f.images, f.labels, 7, BPROP_E_LABEL, f.labels, "record 2", "label 7", "classes 7");
    IDX_FAILS(f.images, f.labels, 3, BPROP_E_LABEL, f.labels, "record 0", "label 3");
    fx_free(&f);
}

Test(idx_errors, overflowing_and_oversized_headers)
{
    const char *dir = g_scratch;
    char *ov = tu_path(dir, "overflow"), *big = tu_path(dir, "big-claim");
    const uint32_t huge[] = {0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu};
    write_idx(ov, 0, 0x804, huge, 4, NULL, 0);
    IDX_FAILS(ov, NULL, 0, BPROP_E_SIZE, ov);
    /* 2^32 - 1 images of 28 x 28 need 3.4 TB: the loader must notice the file is short without
     * trying to allocate all that. */
    const uint32_t claim[] = {0xFFFFFFFFu, 28, 28};
    const unsigned char few[10] = {0};
    write_idx(big, 0, 0x803, claim, 3, few, sizeof few);
    IDX_FAILS(big, NULL, 0, BPROP_E_FORMAT, big,
              "expected 3367254359280 bytes of pixel data, found 10");
    free(ov), free(big);
}

Test(idx_errors, damaged_gzip)
{
    fixture f = fx_write(1);
    /* Cut the compressed file in the middle of its deflate stream. */
    FILE *in = fopen(f.images, "rb");
    cr_assert_not_null(in);
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    cr_assert_gt(n, 24);
    char *cut = tu_path(f.dir, "cut.gz");
    tu_write_file(cut, buf, n - 12);
    IDX_FAILS(cut, NULL, 0, BPROP_E_FORMAT, cut);
    /* Corrupt the deflate data instead: the CRC (or the stream) no longer checks out. */
    buf[14] ^= 0x5A;
    buf[15] ^= 0xA5;
    char *bent = tu_path(f.dir, "bent.gz");
    tu_write_file(bent, buf, n);
    IDX_FAILS(bent, NULL, 0, BPROP_E_FORMAT, bent);
    free(cut), free(bent);
    fx_free(&f);
}

/* ---- CSV: values -------------------------------------------------------------------------- */

Test(csv, labelled_without_and_with_header)
{
    const char *dir = g_scratch;
    char *plain = text_file(dir, "plain.csv", "2,0.5,1,-3\n0,0,0.25,7\n5,1e3,-0.125,2.5\n");
    char *head =
        text_file(dir, "head.csv", "label,a,b,c\n2,0.5,1,-3\n0,0,0.25,7\n5,1e3,-0.125,2.5\n");
    const float want[] = {0.5f, 1, -3, 0, 0.25f, 7, 1000, -0.125f, 2.5f};
    const int32_t labels[] = {2, 0, 5};
    const char *paths[] = {plain, head};
    for (int k = 0; k < 2; k++) {
        bprop_dataset *d = NULL;
        bprop_error e = {0};
        cr_assert_eq(bprop_dataset_load_csv(paths[k], 1, 0, &d, &e), BPROP_OK, "%s", e.message);
        cr_assert_eq(d->n, 3);
        cr_assert_eq(d->dim, 3);
        cr_assert_eq(d->classes, 6);
        cr_assert_eq((uintptr_t)d->x % 64, 0);
        for (size_t i = 0; i < 9; i++)
            cr_assert_eq(d->x[i], want[i], "%s value %zu", paths[k], i);
        for (size_t i = 0; i < 3; i++)
            cr_assert_eq(d->y[i], labels[i]);
        bprop_dataset_free(d);
    }
    free(plain), free(head);
}

Test(csv, unlabelled_takes_every_field)
{
    const char *dir = g_scratch;
    char *p = text_file(dir, "u.csv", "x1,x2\n1,2\n3,4\n");
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_load_csv(p, 0, 10, &d, NULL), BPROP_OK);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->dim, 2);
    cr_assert_null(d->y);
    cr_assert_eq(d->classes, 0);
    cr_assert_eq(d->x[0], 1.0f);
    cr_assert_eq(d->x[3], 4.0f);
    bprop_dataset_free(d);
    free(p);
}

Test(csv, tolerates_spaces_crlf_bom_and_trailing_empty_lines)
{
    const char *dir = g_scratch;
    char *p = text_file(dir, "loose.csv",
                        "\xEF\xBB\xBF label , f1,f2 \r\n 1 , 2.5 ,\t-4\r\n0,+3,.5\r\n\r\n   \n\n");
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_csv(p, 1, 2, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->dim, 2);
    cr_assert_eq(d->classes, 2);
    cr_assert_eq(d->y[0], 1);
    cr_assert_eq(d->y[1], 0);
    cr_assert_eq(d->x[0], 2.5f);
    cr_assert_eq(d->x[1], -4.0f);
    cr_assert_eq(d->x[2], 3.0f);
    cr_assert_eq(d->x[3], 0.5f);
    bprop_dataset_free(d);
    /* No final newline. */
    char *q = text_file(dir, "tail.csv", "1,2\n3,4");
    cr_assert_eq(bprop_dataset_load_csv(q, 0, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->x[3], 4.0f);
    bprop_dataset_free(d);
    free(p), free(q);
}

Test(csv, gzip_and_label_inference)
{
    const char *dir = g_scratch;
    char *p = tu_path(dir, "data.csv"); /* gzip content, plain name */
    const char *text = "id,v\n4,1\n9,2\n0,3\n";
    write_gz(p, text, strlen(text));
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_csv(p, 1, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 3);
    cr_assert_eq(d->classes, 10);
    cr_assert_eq(d->y[1], 9);
    cr_assert_eq(d->x[2], 3.0f);
    bprop_dataset_free(d);
    free(p);
}

/* Every value must come out bit-identical to strtof, whichever parsing path it takes. */
Test(csv, values_match_strtof_exactly)
{
    enum { ROWS = 400, COLS = 8 };
    static const char *special[] = {
        "-0",  "0.0000001",    "16777216", "16777217",   "1234567890123",
        ".5",  "5.",           "+3",       "1e-3",       "0x10",
        "0.1", "3.4028234e38", "1e-45",    "-999999.99", "0.30000001192092896",
        "7"};
    const char *dir = g_scratch;
    char *p = tu_path(dir, "values.csv");
    size_t cap = (size_t)ROWS * COLS * 40 + 1, len = 0;
    char *text = malloc(cap);
    float *want = malloc(sizeof(float) * ROWS * COLS); /* (ROWS, COLS) */
    uint64_t s = 12345;
    for (size_t i = 0; i < ROWS * COLS; i++) {
        char field[40];
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) * 0x1.0p-53;
        double v = (u - 0.5) * pow(10.0, (double)(int)((s >> 3) % 9) - 4.0);
        static const char *const formats[] = {"%.9g", "%g", "%.3f", "%.6e", "%.10f", "%.1f"};
        size_t col = i % COLS;
        if (col < 6)
            snprintf(field, sizeof field, formats[col], v);
        else if (col == 6)
            snprintf(field, sizeof field, "%d", (int)(v * 1000));
        else
            snprintf(field, sizeof field, "%s", special[(i / COLS) % 16]);
        want[i] = strtof(field, NULL);
        len += (size_t)snprintf(text + len, cap - len, "%s%c", field,
                                i % COLS == COLS - 1 ? '\n' : ',');
    }
    tu_write_file(p, text, len);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_csv(p, 0, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, ROWS);
    cr_assert_eq(d->dim, COLS);
    for (size_t i = 0; i < ROWS * COLS; i++)
        cr_assert(tu_same_bits(&d->x[i], &want[i], 1), "value %zu (row %zu, col %zu): %a vs %a", i,
                  i / COLS, i % COLS, (double)d->x[i], (double)want[i]);
    bprop_dataset_free(d);
    free(text), free(want), free(p);
}

Test(csv, lines_longer_than_the_read_buffer)
{
    /* Rows of 400000 features (about 1.6 MB each) outgrow the 1 MiB line buffer. */
    enum { ROWS = 3, COLS = 400000 };
    const char *dir = g_scratch;
    char *p = tu_path(dir, "wide.csv");
    size_t cap = (size_t)ROWS * (COLS * 4 + 4) + 1, len = 0;
    char *text = malloc(cap);
    for (size_t i = 0; i < ROWS; i++) {
        len += (size_t)snprintf(text + len, cap - len, "%zu", i);
        for (size_t k = 0; k < COLS; k++)
            len += (size_t)snprintf(text + len, cap - len, ",%zu", (i * 7 + k) % 256);
        text[len++] = '\n';
    }
    tu_write_file(p, text, len);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load_csv(p, 1, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, ROWS);
    cr_assert_eq(d->dim, COLS);
    cr_assert_eq(d->classes, ROWS);
    for (size_t i = 0; i < ROWS; i++) {
        cr_assert_eq(d->y[i], (int32_t)i);
        for (size_t k = 0; k < COLS; k++)
            cr_assert_eq(d->x[i * COLS + k], (float)((i * 7 + k) % 256), "row %zu col %zu", i, k);
    }
    bprop_dataset_free(d);
    free(text), free(p);
}

/* ---- CSV: errors -------------------------------------------------------------------------- */

Test(csv_errors, ragged_rows)
{
    const char *dir = g_scratch;
    char *short_row = text_file(dir, "short.csv", "l,a,b,c\n1,2,3,4\n0,1,2,3\n1,2,3\n");
    CSV_FAILS(short_row, 1, 0, BPROP_E_FORMAT, short_row, "line 4: expected 4 fields, found 3");
    char *long_row = text_file(dir, "long.csv", "1,2\n3,4,5\n");
    CSV_FAILS(long_row, 0, 0, BPROP_E_FORMAT, long_row, "line 2: expected 2 fields, found 3");
    free(short_row), free(long_row);
}

Test(csv_errors, non_numeric_fields)
{
    const char *dir = g_scratch;
    char *p = text_file(dir, "words.csv", "label,a,b\n1,2,3\n0,4,5\n1,6,7\n1,8,abc\n");
    CSV_FAILS(p, 1, 0, BPROP_E_FORMAT, p, "line 5, field 3: 'abc' is not a number");
    char *empty = text_file(dir, "hole.csv", "1,,3\n");
    CSV_FAILS(empty, 0, 0, BPROP_E_FORMAT, empty, "line 1, field 2: '' is not a number");
    char *spaces = text_file(dir, "spaces.csv", "1,2,3\n4, \t ,6\n");
    CSV_FAILS(spaces, 0, 0, BPROP_E_FORMAT, spaces, "line 2, field 2: '' is not a number");
    free(spaces);
    char *junk = text_file(dir, "junk.csv", "1,2\n3,4x\n");
    CSV_FAILS(junk, 0, 0, BPROP_E_FORMAT, junk, "line 2, field 2: '4x' is not a number");
    char *exp = text_file(dir, "exp.csv", "1,2\n3,1e\n");
    CSV_FAILS(exp, 0, 0, BPROP_E_FORMAT, exp, "line 2, field 2: '1e' is not a number");
    char *inner = text_file(dir, "inner.csv", "1,2\n3,4 5\n");
    CSV_FAILS(inner, 0, 0, BPROP_E_FORMAT, inner, "line 2, field 2: '4 5' is not a number");
    char *nul = tu_path(dir, "nul.csv");
    tu_write_file(nul, "1,2\n3,\0\n", 8);
    CSV_FAILS(nul, 0, 0, BPROP_E_FORMAT, nul, "line 2", "NUL");
    free(p), free(empty), free(junk), free(exp), free(inner), free(nul);
}

Test(csv_errors, bad_labels)
{
    const char *dir = g_scratch;
    char *frac = text_file(dir, "frac.csv", "1,2\n2.5,3\n");
    CSV_FAILS(frac, 1, 0, BPROP_E_FORMAT, frac, "line 2, field 1", "'2.5' is not an integer");
    char *neg = text_file(dir, "neg.csv", "1,2\n0,3\n-1,3\n");
    CSV_FAILS(neg, 1, 0, BPROP_E_LABEL, neg, "line 3", "-1 is negative");
    char *big = text_file(dir, "big.csv", "1,2\n99999999999,3\n");
    CSV_FAILS(big, 1, 0, BPROP_E_LABEL, big, "line 2", "too large");
    char *range = text_file(dir, "range.csv", "y,x\n1,2\n9,3\n10,3\n");
    CSV_FAILS(range, 1, 10, BPROP_E_LABEL, range, "line 4: label 10 is not below classes 10");
    char *alone = text_file(dir, "alone.csv", "1\n2\n");
    CSV_FAILS(alone, 1, 0, BPROP_E_FORMAT, alone, "line 1", "at least one feature");
    free(frac), free(neg), free(big), free(range), free(alone);
}

Test(csv_errors, non_finite_features)
{
    const char *dir = g_scratch;
    const char *bad[] = {"nan", "NaN", "inf", "-Infinity", "1e39"};
    for (int k = 0; k < 5; k++) {
        char name[32], text[64], want[64];
        snprintf(name, sizeof name, "bad%d.csv", k);
        snprintf(text, sizeof text, "0,1,2\n1,3, %s\n", bad[k]);
        snprintf(want, sizeof want, "line 2, field 3: '%s' is not finite", bad[k]);
        char *p = text_file(dir, name, text);
        CSV_FAILS(p, 1, 0, BPROP_E_NONFINITE, p, want);
        free(p);
    }
}

Test(csv_errors, no_data)
{
    const char *dir = g_scratch;
    char *empty = text_file(dir, "empty.csv", "");
    CSV_FAILS(empty, 1, 0, BPROP_E_FORMAT, empty, "no data rows");
    char *blank = text_file(dir, "blank.csv", "\n\r\n  \n");
    CSV_FAILS(blank, 1, 0, BPROP_E_FORMAT, blank, "no data rows");
    char *header = text_file(dir, "header.csv", "label,a,b\n");
    CSV_FAILS(header, 1, 0, BPROP_E_FORMAT, header, "no data rows", "header");
    char *hole = text_file(dir, "hole.csv", "1,2\n\n3,4\n");
    CSV_FAILS(hole, 0, 0, BPROP_E_FORMAT, hole, "line 2", "empty line");
    char *nowhere = tu_path(dir, "missing.csv");
    CSV_FAILS(nowhere, 1, 0, BPROP_E_IO, nowhere, "cannot open");
    free(empty), free(blank), free(header), free(hole), free(nowhere);
}

/* ---- format detection --------------------------------------------------------------------- */

Test(load, detects_idx_and_csv_by_content)
{
    fixture f = fx_write(1);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load(f.images, f.labels, 1, 0, &d, &e), BPROP_OK, "%s", e.message);
    fx_check(d, 8);
    bprop_dataset_free(d);
    char *csv = text_file(f.dir, "data.idx", "1,0.5\n0,0.25\n"); /* CSV despite the name */
    cr_assert_eq(bprop_dataset_load(csv, f.labels, 1, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 2);
    cr_assert_eq(d->dim, 1);
    cr_assert_eq(d->classes, 2);
    cr_assert_eq(d->x[1], 0.25f);
    bprop_dataset_free(d);
    fx_free(&f);
    free(csv);
}

Test(load, idx_errors_pass_through)
{
    fixture f = fx_write(0);
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    expect_error(bprop_dataset_load(f.images, NULL, 1, 0, &d, &e), &e, BPROP_E_ARG, f.images,
                 "labels file", NULL);
    expect_error(bprop_dataset_load(f.labels, f.labels, 1, 0, &d, &e), &e, BPROP_E_FORMAT, f.labels,
                 "0x00000801", NULL);
    /* A label file given as the data, without labels: still the magic is what is wrong. */
    expect_error(bprop_dataset_load(f.labels, NULL, 1, 0, &d, &e), &e, BPROP_E_FORMAT, f.labels,
                 "0x00000801", "label file", NULL);
    char *missing = tu_path(f.dir, "missing");
    expect_error(bprop_dataset_load(missing, NULL, 1, 0, &d, &e), &e, BPROP_E_IO, missing, NULL);
    cr_assert_null(d);
    cr_assert_eq(bprop_dataset_load(f.images, NULL, 0, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_null(d->y);
    bprop_dataset_free(d);
    free(missing);
    fx_free(&f);
}

/* ---- split and subset --------------------------------------------------------------------- */

/* n samples whose feature 0 is the sample index and label index % 7. */
static bprop_dataset *indexed(size_t n)
{
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(n, 2, 7, 1, &d, NULL), BPROP_OK);
    for (size_t i = 0; i < n; i++) {
        d->x[2 * i] = (float)i;
        d->x[2 * i + 1] = -(float)i;
        d->y[i] = (int32_t)(i % 7);
    }
    return d;
}

/* Check that train and val partition d, keep rows intact and keep the original order. */
static void check_partition(const bprop_dataset *d, const bprop_dataset *tr,
                            const bprop_dataset *va)
{
    cr_assert_eq(tr->n + va->n, d->n);
    char *seen = calloc(d->n, 1);
    const bprop_dataset *parts[] = {tr, va};
    for (int k = 0; k < 2; k++) {
        cr_assert_eq(parts[k]->classes, 7);
        cr_assert_eq(parts[k]->dim, 2);
        for (size_t i = 0; i < parts[k]->n; i++) {
            size_t id = (size_t)parts[k]->x[2 * i];
            cr_assert_lt(id, d->n);
            cr_assert_not(seen[id], "sample %zu appears twice", id);
            seen[id] = 1;
            cr_assert_eq(parts[k]->x[2 * i + 1], -(float)id);
            cr_assert_eq(parts[k]->y[i], (int32_t)(id % 7));
            if (i > 0)
                cr_assert_gt(parts[k]->x[2 * i], parts[k]->x[2 * i - 2]);
        }
    }
    free(seen);
}

Test(split, sizes_and_partition)
{
    bprop_dataset *d = indexed(100), *tr = NULL, *va = NULL;
    const double fractions[] = {0.1, 0.25, 0.001, 0.375};
    const size_t want_val[] = {10, 25, 1, 38}; /* 0.001 still gives 1; 37.5 rounds to 38 */
    for (int k = 0; k < 4; k++) {
        bprop_error e = {0};
        cr_assert_eq(bprop_dataset_split(d, fractions[k], 7, &tr, &va, &e), BPROP_OK, "%s",
                     e.message);
        cr_assert_eq(va->n, want_val[k], "fraction %g: %zu validation samples", fractions[k],
                     va->n);
        check_partition(d, tr, va);
        bprop_dataset_free(tr);
        bprop_dataset_free(va);
    }
    bprop_dataset_free(d);
}

Test(split, same_seed_same_split_other_seed_other_split)
{
    bprop_dataset *d = indexed(200), *t1, *v1, *t2, *v2, *t3, *v3;
    cr_assert_eq(bprop_dataset_split(d, 0.2, 42, &t1, &v1, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_split(d, 0.2, 42, &t2, &v2, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_split(d, 0.2, 43, &t3, &v3, NULL), BPROP_OK);
    cr_assert(tu_same_bits(v1->x, v2->x, 40 * 2));
    cr_assert(tu_same_bits(t1->x, t2->x, 160 * 2));
    cr_assert_not(tu_same_bits(v1->x, v3->x, 40 * 2));
    /* A random 40 of 200 is not the first or the last 40. */
    cr_assert_neq(v1->x[0] + 39, v1->x[78]);
    bprop_dataset *all[] = {d, t1, v1, t2, v2, t3, v3};
    for (int k = 0; k < 7; k++)
        bprop_dataset_free(all[k]);
}

Test(split, zero_fraction_copies_and_bad_fractions_fail)
{
    bprop_dataset *d = indexed(10), *tr = NULL, *va = (bprop_dataset *)1;
    cr_assert_eq(bprop_dataset_split(d, 0.0, 1, &tr, &va, NULL), BPROP_OK);
    cr_assert_null(va);
    cr_assert_neq(tr->x, d->x);
    cr_assert_eq(tr->n, 10);
    cr_assert(tu_same_bits(tr->x, d->x, 20));
    cr_assert_eq(memcmp(tr->y, d->y, 10 * sizeof(int32_t)), 0);
    bprop_dataset_free(tr);
    bprop_error e = {0};
    expect_error(bprop_dataset_split(d, 1.0, 1, &tr, &va, &e), &e, BPROP_E_ARG, "fraction 1", NULL);
    expect_error(bprop_dataset_split(d, -0.1, 1, &tr, &va, &e), &e, BPROP_E_ARG, "fraction -0.1",
                 NULL);
    expect_error(bprop_dataset_split(d, NAN, 1, &tr, &va, &e), &e, BPROP_E_ARG, "fraction", NULL);
    expect_error(bprop_dataset_split(d, 0.97, 1, &tr, &va, &e), &e, BPROP_E_SIZE, "no training",
                 NULL);
    cr_assert_null(tr);
    cr_assert_null(va);
    bprop_dataset_free(d);
    bprop_dataset *one = indexed(1);
    expect_error(bprop_dataset_split(one, 0.5, 1, &tr, &va, &e), &e, BPROP_E_SIZE, "no training",
                 NULL);
    bprop_dataset_free(one);
}

Test(subset, copies_ranges_and_checks_them)
{
    bprop_dataset *d = indexed(10), *s = NULL;
    cr_assert_eq(bprop_dataset_subset(d, 3, 4, &s, NULL), BPROP_OK);
    cr_assert_eq(s->n, 4);
    cr_assert_eq(s->classes, 7);
    cr_assert_eq(s->x[0], 3.0f);
    cr_assert_eq(s->x[7], -6.0f);
    cr_assert_eq(s->y[3], 6);
    bprop_dataset_free(s);
    cr_assert_eq(bprop_dataset_subset(d, 9, 1, &s, NULL), BPROP_OK);
    cr_assert_eq(s->x[0], 9.0f);
    bprop_dataset_free(s);
    bprop_error e = {0};
    expect_error(bprop_dataset_subset(d, 3, 0, &s, &e), &e, BPROP_E_SIZE, NULL);
    expect_error(bprop_dataset_subset(d, 8, 3, &s, &e), &e, BPROP_E_ARG, "outside the 10 samples",
                 NULL);
    expect_error(bprop_dataset_subset(d, 10, 1, &s, &e), &e, BPROP_E_ARG, NULL);
    expect_error(bprop_dataset_subset(d, 2, SIZE_MAX, &s, &e), &e, BPROP_E_ARG, NULL);
    cr_assert_null(s);
    bprop_dataset_free(d);
}

/* ---- standardisation ---------------------------------------------------------------------- */

Test(stats, known_values_and_standardize)
{
    /* Columns: 1..4; constant 7; 0 0 10 10; 1e6 + 0..3 (needs double accumulation). */
    const float x[4][4] = {
        {1, 7, 0, 1e6f}, {2, 7, 0, 1e6f + 1}, {3, 7, 10, 1e6f + 2}, {4, 7, 10, 1e6f + 3}};
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(4, 4, 0, 0, &d, NULL), BPROP_OK);
    memcpy(d->x, x, sizeof x);
    float mean[4], scale[4];
    cr_assert_eq(bprop_dataset_feature_stats(d, mean, scale), BPROP_OK);
    const double sd14 = sqrt(1.25);
    cr_assert_float_eq(mean[0], 2.5f, 1e-6);
    cr_assert_float_eq(scale[0], (float)(1 / sd14), 1e-6);
    cr_assert_eq(mean[1], 7.0f);
    cr_assert_eq(scale[1], 1.0f);
    cr_assert_eq(mean[2], 5.0f);
    cr_assert_float_eq(scale[2], 0.2f, 1e-7);
    cr_assert_eq(mean[3], 1000001.5f);
    cr_assert_float_eq(scale[3], (float)(1 / sd14), 1e-6);
    bprop_dataset_standardize(d, mean, scale);
    const double z[4] = {-1.5 / sd14, -0.5 / sd14, 0.5 / sd14, 1.5 / sd14};
    for (int i = 0; i < 4; i++) {
        cr_assert_float_eq(d->x[4 * i], z[i], 1e-6);
        cr_assert_eq(d->x[4 * i + 1], 0.0f);
        cr_assert_float_eq(d->x[4 * i + 2], i < 2 ? -1.0 : 1.0, 1e-6);
        cr_assert_float_eq(d->x[4 * i + 3], z[i], 1e-6);
    }
    cr_assert_eq(bprop_dataset_feature_stats(NULL, mean, scale), BPROP_E_ARG);
    bprop_dataset_free(d);
}

Test(stats, standardized_blobs_have_zero_mean_unit_variance)
{
    bprop_dataset *d = tu_blobs(500, 6, 3, 9);
    float mean[6], scale[6];
    cr_assert_eq(bprop_dataset_feature_stats(d, mean, scale), BPROP_OK);
    bprop_dataset_standardize(d, mean, scale);
    cr_assert_eq(bprop_dataset_feature_stats(d, mean, scale), BPROP_OK);
    for (int k = 0; k < 6; k++) {
        cr_assert_float_eq(mean[k], 0.0f, 1e-5);
        cr_assert_float_eq(scale[k], 1.0f, 1e-5);
    }
    bprop_dataset_free(d);
}

/* ---- the real Fashion-MNIST test set ------------------------------------------------------ */

Test(fashion, t10k_loads_with_ten_balanced_classes)
{
    if (!tu_have_fashion())
        cr_skip_test("Fashion-MNIST is not installed under %s", BPROP_FASHION_DIR);
    const char *img = BPROP_FASHION_DIR "/t10k-images-idx3-ubyte.gz";
    const char *lab = BPROP_FASHION_DIR "/t10k-labels-idx1-ubyte.gz";
    bprop_dataset *d = NULL;
    bprop_error e = {0};
    cr_assert_eq(bprop_dataset_load(img, lab, 1, 0, &d, &e), BPROP_OK, "%s", e.message);
    cr_assert_eq(d->n, 10000);
    cr_assert_eq(d->dim, 784);
    cr_assert_eq(d->classes, 10);
    float lo = 1, hi = 0;
    for (size_t i = 0; i < d->n * d->dim; i++) {
        lo = fminf(lo, feat(d, i));
        hi = fmaxf(hi, feat(d, i));
    }
    cr_assert_eq(lo, 0.0f);
    cr_assert_eq(hi, 1.0f);
    size_t count[10] = {0};
    for (size_t i = 0; i < d->n; i++) {
        cr_assert_lt((size_t)d->y[i], 10);
        count[d->y[i]]++;
    }
    for (int c = 0; c < 10; c++)
        cr_assert_eq(count[c], 1000, "class %d has %zu samples", c, count[c]);
    bprop_dataset_free(d);
    /* With 9 classes some label is out of range, and the message says where. */
    expect_error(bprop_dataset_load_idx(img, lab, 9, &d, &e), &e, BPROP_E_LABEL, lab, "record",
                 "label 9", NULL);
}
