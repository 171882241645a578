/* fuzz_npy.c: libFuzzer target for the NumPy .npy reader. An array that reads must write and
 * read back bitwise. Input: the file. */
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fz_file(0, "array.npy");
    fz_write(path, data, size, 0);
    bp_npy a;
    bprop_error err = {0};
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
