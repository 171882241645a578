/* data_load.c: bprop_dataset_load, which tells IDX, .npy and CSV apart by the file's content. */
#include "internal.h"
#include "reader.h"

#include <string.h>

/* The message for a file whose first bytes are binary (NUL at head[nul]) but not IDX. */
static bprop_status not_idx_nor_csv(const char *path, const unsigned char *head, size_t got,
                                    size_t nul, bprop_error *err)
{
    size_t line = 1;
    for (size_t i = 0; i < nul; i++)
        line += head[i] == '\n';
    if (got < 4)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: neither IDX (%zu bytes, too short for a header) nor CSV text (NUL byte "
                       "on line %zu)", path, got, line);
    unsigned magic = 0;
    for (int i = 0; i < 4; i++)
        magic = magic << 8 | head[i];
    return bp_fail(err, BPROP_E_FORMAT,
                   "%s: neither IDX (magic 0x%08x, expected 0x00000803 for images or 0x00000801 "
                   "for labels) nor CSV text (NUL byte on line %zu)", path, magic, line);
}

bprop_status bprop_dataset_load(const char *path, const char *labels_path, int labelled,
                                size_t classes, bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load: out is NULL");
    *out = NULL;
    if (!path)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load: no file given");
    bp_reader r;
    unsigned char head[4096]; /* enough to tell text from binary data */
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
        int images = got >= 4 && head[2] == 0x08 && head[3] >= 2;
        if (images && labelled && !labels_path)
            return bp_fail(err, BPROP_E_ARG,
                           "%s: IDX images carry no labels: a labels file is needed", path);
        return bprop_dataset_load_idx(path, labels_path, classes, out, err);
    }
    if (got >= 6 && memcmp(head, "\x93NUMPY", 6) == 0) {
        if (labelled && !labels_path)
            return bp_fail(err, BPROP_E_ARG,
                           "%s: .npy images carry no labels: a labels file is needed", path);
        return bprop_dataset_load_npy(path, labels_path, classes, out, err);
    }
    /* Binary data that is not IDX (a damaged magic, another format) would only get the CSV
     * parser's complaint about a NUL byte; say that it is neither format. */
    const unsigned char *nul = memchr(head, 0, got);
    if (nul)
        return not_idx_nor_csv(path, head, got, (size_t)(nul - head), err);
    return bprop_dataset_load_csv(path, labelled, classes, out, err);
}
