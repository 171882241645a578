/* data_load.c: bprop_dataset_load, which tells IDX from CSV by the file's content. */
#include "internal.h"
#include "reader.h"

bprop_status bprop_dataset_load(const char *path, const char *labels_path, int labelled,
                                size_t classes, bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load: out is NULL");
    *out = NULL;
    if (!path)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load: no file given");
    bp_reader r;
    unsigned char head[4];
    size_t got = 0;
    bprop_status s = bp_reader_open(&r, path, err);
    if (s == BPROP_OK)
        s = bp_reader_read(&r, head, sizeof head, &got, err);
    bp_reader_close(&r);
    if (s != BPROP_OK)
        return s;
    /* Every IDX magic starts with two zero bytes, which no text file does; the IDX loader then
     * checks the rest of the magic (and names a label file given in place of images). */
    if (got >= 2 && head[0] == 0 && head[1] == 0) {
        int images = got == 4 && head[2] == 0x08 && head[3] >= 2;
        if (images && labelled && !labels_path)
            return bp_fail(err, BPROP_E_ARG,
                           "%s: IDX images carry no labels: a labels file is needed", path);
        return bprop_dataset_load_idx(path, labels_path, classes, out, err);
    }
    return bprop_dataset_load_csv(path, labelled, classes, out, err);
}
