/* fuzz_csv.c: libFuzzer target for the data loader that tells CSV from IDX by content, on CSV
 * text plain and gzip. Input: byte 0 flags (bit 0 gzip, bit 1 unlabelled, bit 2 classes 5
 * instead of inferred), then the file. */
#include "fuzz_util.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned flags = data[0];
    const char *path = fz_file(0, "data.csv");
    fz_write(path, data + 1, size - 1, flags & 1);
    int labelled = !(flags & 2);
    size_t classes = (flags & 4) ? 5 : 0;
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_dataset_load(path, NULL, labelled, classes, &d, &err);
    if (st != BPROP_OK) {
        fz_check_error(st, &err, path);
        if (d)
            abort();
        return 0;
    }
    if (!d || !d->n || !d->dim || (labelled && !d->y))
        abort();
    for (size_t i = 0; labelled && i < d->n; i++)
        if (d->y[i] < 0 || (size_t)d->y[i] >= d->classes || (classes && d->classes != classes))
            abort();
    /* Any format bprop_dataset_load tells from the content: CSV and float .npy give floats,
     * IDX and uint8 .npy bytes; every feature reads finite either way. */
    float *row = malloc(d->dim * sizeof *row);
    for (size_t i = 0; row && i < d->n; i++) {
        const float *r = bprop_dataset_row(d, i, row);
        for (size_t k = 0; k < d->dim; k++)
            if (!isfinite(r[k]))
                abort();
    }
    free(row);
    bprop_dataset_free(d);
    return 0;
}
