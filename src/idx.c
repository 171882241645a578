/* idx.c: loading IDX images and labels (the MNIST file format), plain or gzip-compressed. */
#include "internal.h"
#include "reader.h"

#include <stdlib.h>
#include <string.h>

#define IDX_IMAGES_MAGIC 0x00000803u
#define IDX_LABELS_MAGIC 0x00000801u
/* Bytes 0-1 of an IDX magic are zero, byte 2 is the element type (0x08: unsigned byte), byte 3
 * the number of dimensions. */
#define IDX_UBYTE 0x08u
#define IDX_MAX_DIMS 255u
/* The first four bytes of a NumPy .npy file ("\x93NUM"), read as an IDX magic. */
#define IDX_NPY_START 0x934e554du
/* First buffer size for a file body; it doubles as data arrives. */
#define IDX_FIRST_CHUNK ((size_t)1 << 20)

/* What the header of an IDX file says. */
typedef struct idx_header {
    size_t count;        /* records (images or labels) */
    size_t record_bytes; /* bytes per record: product of the dimensions after the count */
    size_t header_bytes; /* 4 + 4 * dimensions */
} idx_header;

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Read exactly n header bytes, or fail with FORMAT saying how many there were. */
static bprop_status read_header_bytes(bp_reader *r, unsigned char *buf, size_t n, size_t done,
                                      bprop_error *err)
{
    size_t got;
    bprop_status s = bp_reader_read(r, buf, n, &got, err);
    if (s != BPROP_OK)
        return s;
    if (got < n)
        return bp_fail(err, BPROP_E_FORMAT, "%s: header cut off: expected %zu bytes, found %zu",
                       r->path, done + n, done + got);
    return BPROP_OK;
}

static bprop_status bad_magic(const bp_reader *r, uint32_t found, int images, bprop_error *err)
{
    const char *hint = "";
    if (images && found == IDX_LABELS_MAGIC)
        hint = "; this looks like an IDX label file";
    else if (!images && (found >> 8) == IDX_UBYTE && (found & 0xFFu) >= 2)
        hint = "; this looks like an IDX image file";
    else if (found == IDX_NPY_START)
        hint = "; this looks like a .npy file (images and labels must both be IDX or both .npy)";
    return bp_fail(err, BPROP_E_FORMAT,
                   "%s: bad magic 0x%08x: expected 0x%08x (IDX unsigned-byte %s)%s", r->path,
                   (unsigned)found, images ? IDX_IMAGES_MAGIC : IDX_LABELS_MAGIC,
                   images ? "images" : "labels", hint);
}

/* Parse the header: for images any unsigned-byte IDX file of two or more dimensions (count then
 * record shape), for labels exactly one dimension. */
static bprop_status read_header(bp_reader *r, int images, idx_header *h, bprop_error *err)
{
    unsigned char buf[4 * (IDX_MAX_DIMS + 1)];
    bprop_status s = read_header_bytes(r, buf, 4, 0, err);
    if (s != BPROP_OK)
        return s;
    uint32_t magic = be32(buf);
    unsigned dims = magic & 0xFFu;
    int ok = images ? (magic >> 8) == IDX_UBYTE && dims >= 2 : magic == IDX_LABELS_MAGIC;
    if (!ok)
        return bad_magic(r, magic, images, err);
    s = read_header_bytes(r, buf + 4, 4 * (size_t)dims, 4, err);
    if (s != BPROP_OK)
        return s;
    h->header_bytes = 4 + 4 * (size_t)dims;
    h->count = be32(buf + 4);
    if (h->count == 0)
        return bp_fail(err, BPROP_E_SIZE, "%s: the header declares 0 %s", r->path,
                       images ? "images" : "labels");
    h->record_bytes = 1;
    for (unsigned k = 1; k < dims; k++) {
        uint32_t extent = be32(buf + 4 + 4 * k);
        if (extent == 0)
            return bp_fail(err, BPROP_E_SIZE, "%s: dimension %u of the header is 0", r->path,
                           k + 1);
        if (bp_mul_overflows(h->record_bytes, extent, &h->record_bytes))
            return bp_fail(err, BPROP_E_SIZE, "%s: the image dimensions overflow", r->path);
    }
    return BPROP_OK;
}

/* Read the body of want bytes into a buffer grown as the data arrives, so a header that claims
 * more than the file holds costs no more memory than the file does. Fails on a short body and on
 * data after it. */
static bprop_status read_body(bp_reader *r, size_t want, const char *what, unsigned char **out,
                              bprop_error *err)
{
    *out = NULL;
    size_t cap = want < IDX_FIRST_CHUNK ? want : IDX_FIRST_CHUNK, have = 0;
    unsigned char *buf = NULL;
    bprop_status s = BPROP_OK;
    for (;;) {
        unsigned char *grown = realloc(buf, cap);
        if (!grown) {
            s = bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for %zu bytes of %s", r->path, cap,
                        what);
            break;
        }
        buf = grown;
        size_t got;
        s = bp_reader_read(r, buf + have, cap - have, &got, err);
        have += got;
        if (s != BPROP_OK || have < cap || cap == want)
            break;
        cap = cap > want / 2 ? want : cap * 2;
    }
    if (s == BPROP_OK && have < want)
        s = bp_fail(err, BPROP_E_FORMAT, "%s: expected %zu bytes of %s, found %zu", r->path, want,
                    what, have);
    if (s == BPROP_OK) {
        unsigned char extra;
        size_t got;
        s = bp_reader_read(r, &extra, 1, &got, err);
        if (s == BPROP_OK && got)
            s = bp_fail(err, BPROP_E_FORMAT,
                        "%s: unexpected data at byte offset %zu, after the %zu bytes of %s",
                        r->path, r->offset - 1, want, what);
    }
    if (s != BPROP_OK) {
        free(buf);
        return s;
    }
    *out = buf;
    return BPROP_OK;
}

/* The pixel bytes of a mapped file: a view of the mapping, which must hold exactly want more
 * bytes (the messages read_body gives for the same faults). */
static bprop_status view_body(bp_reader *r, size_t want, const unsigned char **p, bprop_error *err)
{
    size_t got;
    bp_reader_view(r, want, p, &got);
    if (got < want)
        return bp_fail(err, BPROP_E_FORMAT, "%s: expected %zu bytes of pixel data, found %zu",
                       r->path, want, got);
    if (bp_reader_left(r))
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: unexpected data at byte offset %zu, after the %zu bytes of pixel data",
                       r->path, r->offset, want);
    return BPROP_OK;
}

/* Read images_path into a new unlabelled-or-labelled dataset of byte features (read as
 * v / 255.0f): an uncompressed file stays mapped, a compressed one is decompressed once. */
static bprop_status load_images(const char *path, int labelled, bprop_dataset **out,
                                bprop_error *err)
{
    bp_reader r;
    bprop_status s = bp_reader_open_mapped(&r, path, err);
    idx_header h;
    size_t bytes = 0;
    const unsigned char *pixels = NULL; /* (count, record_bytes) */
    unsigned char *owned = NULL;
    if (s == BPROP_OK)
        s = read_header(&r, 1, &h, err);
    if (s == BPROP_OK && bp_mul_overflows(h.count, h.record_bytes, &bytes))
        s = bp_fail(err, BPROP_E_SIZE, "%s: %zu images of %zu pixels are too many", path, h.count,
                    h.record_bytes);
    if (s == BPROP_OK && r.map)
        s = view_body(&r, bytes, &pixels, err);
    else if (s == BPROP_OK)
        s = read_body(&r, bytes, "pixel data", &owned, err);
    bp_storage *st = NULL;
    if (s == BPROP_OK && r.map) {
        st = r.map; /* the dataset owns the mapping from here */
        r.map = NULL;
    } else if (s == BPROP_OK) {
        pixels = owned;
        st = bp_storage_heap(owned, bytes); /* frees owned when it fails */
        if (!st)
            s = bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", path);
    }
    bp_reader_close(&r);
    if (s == BPROP_OK)
        s = bp_dataset_wrap(h.count, h.record_bytes, labelled, st, NULL, pixels, path, out, err);
    return s;
}

/* Read labels_path into d->y, checking the count against d->n and the values against classes
 * (0: infer as max + 1), and set d->classes. */
static bprop_status load_labels(const char *path, const char *images_path, size_t classes,
                                bprop_dataset *d, bprop_error *err)
{
    bp_reader r;
    bprop_status s = bp_reader_open(&r, path, err);
    idx_header h;
    unsigned char *labels = NULL; /* (count) */
    if (s == BPROP_OK)
        s = read_header(&r, 0, &h, err);
    if (s == BPROP_OK && h.count != d->n)
        s = bp_fail(err, BPROP_E_MISMATCH, "%s: %zu labels, but %s holds %zu images", path, h.count,
                    images_path, d->n);
    if (s == BPROP_OK)
        s = read_body(&r, h.count, "labels", &labels, err);
    bp_reader_close(&r);
    size_t top = 0;
    for (size_t i = 0; s == BPROP_OK && i < d->n; i++) {
        if (classes != 0 && labels[i] >= classes) {
            s = bp_fail(err, BPROP_E_LABEL,
                        "%s: record %zu (byte offset %zu): label %u is not below classes %zu", path,
                        i, h.header_bytes + i, (unsigned)labels[i], classes);
            break;
        }
        d->y[i] = labels[i];
        top = labels[i] > top ? labels[i] : top;
    }
    if (s == BPROP_OK)
        d->classes = classes != 0 ? classes : top + 1;
    free(labels);
    return s;
}

bprop_status bprop_dataset_load_idx(const char *images_path, const char *labels_path,
                                    size_t classes, bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_idx: out is NULL");
    *out = NULL;
    if (!images_path)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_idx: no images file given");
    bprop_dataset *d = NULL;
    bprop_status s = load_images(images_path, labels_path != NULL, &d, err);
    if (s == BPROP_OK && labels_path)
        s = load_labels(labels_path, images_path, classes, d, err);
    return bp_dataset_hand_over(s, d, out);
}
