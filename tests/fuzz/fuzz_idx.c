/* fuzz_idx.c: libFuzzer target for the IDX image and label readers, plain and gzip.
 * Input: byte 0 flags (bit 0 gzip images, bit 1 gzip labels, bit 2 no labels file, bit 3
 * classes 10 instead of inferred), bytes 1-2 the images length n (little-endian), then n bytes
 * of images and the rest labels. */
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *images, *labels;
    const int flags = fz_image_label_files(data, size, 0, "images", "labels", &images, &labels);
    if (flags < 0)
        return 0;
    const char *lp = (flags & 4) ? NULL : labels;
    size_t classes = (flags & 8) ? 10 : 0;
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_dataset_load_idx(images, lp, classes, &d, &err);
    if (st != BPROP_OK) {
        /* The message names whichever of the two files is at fault. */
        fz_check_error(st, &err, strstr(err.message, labels) ? labels : images);
        if (d)
            abort();
        return 0;
    }
    if (!d || !d->n || !d->dim || (lp && !d->y) || (!lp && d->y))
        abort();
    for (size_t i = 0; lp && i < d->n; i++)
        if (d->y[i] < 0 || (size_t)d->y[i] >= d->classes)
            abort();
    /* Pixels stay bytes (mapped, or decompressed once) and read as b / 255.0f. */
    if (d->x || !d->x8)
        abort();
    float *row = malloc(d->dim * sizeof *row);
    for (size_t i = 0; row && i < d->n; i++) {
        if (bprop_dataset_row(d, i, row) != row)
            abort();
        for (size_t k = 0; k < d->dim; k++)
            if (row[k] != (float)d->x8[i * d->dim + k] / 255.0f)
                abort();
    }
    free(row);
    bprop_dataset_free(d);
    return 0;
}
