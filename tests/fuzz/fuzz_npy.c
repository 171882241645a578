/* fuzz_npy.c: libFuzzer target for the NumPy .npy readers. Two kinds of input:
 * - starting with byte 0x93 (the .npy magic): one file for the float array reader (an array that
 *   reads must write and read back bitwise), also read as an unlabelled training set;
 * - any other first byte: a training set, like fuzz_idx: byte 0 flags (bit 0 gzip images, bit 1
 *   gzip labels, bit 2 no labels file, bit 3 classes 10 instead of inferred), bytes 1-2 the
 *   images length n (little-endian), then n bytes of the images .npy and the rest the labels
 *   .npy. Plain files are memory-mapped, gzip ones decompressed. */
#include "fuzz_util.h"
#include "npy.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_round_trip(const bp_npy *a)
{
    const char *again = fz_file(1, "again.npy");
    bprop_error err = {0};
    bp_npy b;
    if (bp_npy_write(again, a->data, a->ndim ? a->ndim : 1, a->ndim ? a->shape : &a->count, &err) != BPROP_OK ||
        bp_npy_read(again, &b, &err) != BPROP_OK) {
        fprintf(stderr, "fuzz: an array that reads does not round-trip: %s\n", err.message);
        abort();
    }
    if (b.count != a->count || b.was_f8 || memcmp(a->data, b.data, a->count * sizeof(float)) != 0)
        abort();
    bp_npy_free(&b);
}

/* A set that loads: sizes, labels in range, every feature finite, bytes read as b / 255. */
static void check_dataset(const bprop_dataset *d, int labelled)
{
    if (!d || !d->n || !d->dim || (labelled != (d->y != NULL)) || (!d->x == !d->x8))
        abort();
    for (size_t i = 0; labelled && i < d->n; i++)
        if (d->y[i] < 0 || (size_t)d->y[i] >= d->classes)
            abort();
    float *row = malloc(d->dim * sizeof *row);
    for (size_t i = 0; row && i < d->n; i++) {
        const float *r = bprop_dataset_row(d, i, row);
        for (size_t k = 0; k < d->dim; k++)
            if (!isfinite(r[k]) || (d->x8 && r[k] != (float)d->x8[i * d->dim + k] / 255.0f))
                abort();
    }
    free(row);
}

static void load_set(const char *images, const char *labels, size_t classes)
{
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_dataset_load_npy(images, labels, classes, &d, &err);
    if (st != BPROP_OK) {
        /* The message names whichever of the two files is at fault. */
        fz_check_error(st, &err, labels && strstr(err.message, labels) ? labels : images);
        if (d)
            abort();
        return;
    }
    check_dataset(d, labels != NULL);
    bprop_dataset_free(d);
}

static int dataset_input(const uint8_t *data, size_t size)
{
    const char *images, *labels;
    const int flags =
        fz_image_label_files(data, size, 2, "images.npy", "labels.npy", &images, &labels);
    if (flags < 0)
        return 0;
    load_set(images, (flags & 4) ? NULL : labels, (flags & 8) ? 10 : 0);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0 || data[0] != 0x93)
        return dataset_input(data, size);
    const char *path = fz_file(0, "array.npy");
    fz_write(path, data, size, 0);
    bp_npy a;
    bprop_error err = {0};
    load_set(path, NULL, 0);
    bprop_status st = bp_npy_read(path, &a, &err);
    if (st != BPROP_OK) {
        fz_check_error(st, &err, path);
        if (a.data)
            abort();
        return 0;
    }
    size_t n = 1;
    for (size_t d = 0; d < a.ndim; d++)
        n *= a.shape[d];
    if (n != a.count || !a.data)
        abort();
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a.data[i]))
            abort();
    check_round_trip(&a);
    bp_npy_free(&a);
    return 0;
}
