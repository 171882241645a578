/* fuzz_model.c: libFuzzer target for the model file loader. A model that loads must save and
 * load again to the same parameters. Input: byte 0 flags (bit 0: replace the file's last four
 * bytes by the CRC-32 of the others, so that mutations reach the checks after the checksum),
 * then the file. */
#include "fuzz_util.h"

#include <math.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Save m and load it back: the round trip must succeed and be bitwise. */
static void check_round_trip(const bprop_model *m)
{
    const char *again = fz_file(1, "again.bpm");
    bprop_error err = {0};
    bprop_model *m2 = NULL;
    if (bprop_model_save(m, again, &err) != BPROP_OK || bprop_model_load(again, &m2, &err) != BPROP_OK) {
        fprintf(stderr, "fuzz: a loaded model does not round-trip: %s\n", err.message);
        abort();
    }
    if (m2->layout.total != m->layout.total || m2->has_bias != m->has_bias ||
        memcmp(m2->params, m->params, m->layout.total * sizeof(float)) != 0 ||
        !m2->std_mean != !m->std_mean)
        abort();
    bprop_model_free(m2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int fix_crc = data[0] & 1;
    data++;
    size--;
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        abort();
    memcpy(copy, data, size);
    if (fix_crc && size >= 4) {
        uLong crc = crc32(0L, copy, (uInt)(size - 4));
        for (int i = 0; i < 4; i++)
            copy[size - 4 + i] = (uint8_t)(crc >> (8 * i));
    }
    const char *path = fz_file(0, "model.bpm");
    fz_write(path, copy, size, 0);
    free(copy);
    bprop_model *m = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_model_load(path, &m, &err);
    if (st != BPROP_OK) {
        fz_check_error(st, &err, path);
        if (m)
            abort();
        return 0;
    }
    bprop_layout l;
    if (bprop_layout_make(m->inputs, m->hidden, m->classes, m->has_bias, &l) != BPROP_OK ||
        l.total != m->layout.total)
        abort();
    for (size_t i = 0; i < l.total; i++)
        if (!isfinite(m->params[i]))
            abort();
    check_round_trip(m);
    bprop_model_free(m);
    return 0;
}
