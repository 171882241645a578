/* npy_data.c: data sets from NumPy .npy files: uint8 or float32 images, integer labels. */
#include "npy.h"
#include "reader.h"
#include "storage.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAGIC "\x93NUMPY"
enum {
    NPY_MAGIC_LEN = 6,
    NPY_PREAMBLE_V1 = 10, /* magic, version, u16 length */
};
/* First buffer size for a compressed file's contents; it doubles as data arrives. */
#define NPY_FIRST_CHUNK ((size_t)1 << 20)

/* One .npy file in memory (mapped, or decompressed) and what its header says. */
typedef struct npy_mem {
    const char *path;
    bp_storage *st;           /* the whole file; owned until taken */
    const unsigned char *base; /* st->addr */
    size_t size;              /* file length */
    bp_npy_header h;
    size_t data_at;           /* first data byte */
    size_t item;              /* bytes per element */
    size_t count;             /* elements */
} npy_mem;

/* Read a file that cannot be mapped (gzip, a pipe, empty) whole into a heap buffer. */
static bprop_status read_whole(const char *path, bp_storage **out, bprop_error *err)
{
    bp_reader r;
    bprop_status s = bp_reader_open(&r, path, err);
    size_t cap = NPY_FIRST_CHUNK, have = 0;
    unsigned char *buf = NULL;
    while (s == BPROP_OK) {
        unsigned char *grown = realloc(buf, cap);
        if (!grown) {
            s = bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for %zu bytes", path, cap);
            break;
        }
        buf = grown;
        size_t got;
        s = bp_reader_read(&r, buf + have, cap - have, &got, err);
        have += got;
        if (s != BPROP_OK || have < cap)
            break;
        if (cap > SIZE_MAX / 2) {
            s = bp_fail(err, BPROP_E_SIZE, "%s: too large", path);
            break;
        }
        cap *= 2;
    }
    bp_reader_close(&r);
    if (s != BPROP_OK) {
        free(buf);
        return s;
    }
    if (!(*out = bp_storage_heap(buf, have)))
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", path);
    return BPROP_OK;
}

/* Magic, version and header length, then the header dictionary; sets data_at. */
static bprop_status parse_preamble(npy_mem *f, bprop_error *err)
{
    const unsigned char *b = f->base;
    size_t n = f->size < NPY_MAGIC_LEN ? f->size : NPY_MAGIC_LEN;
    if (n == 0 || memcmp(b, NPY_MAGIC, n) != 0)
        return bp_fail(err, BPROP_E_FORMAT, "%s: not an NPY file (bad magic; expected \\x93NUMPY)",
                       f->path);
    if (f->size < NPY_PREAMBLE_V1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated: %zu bytes, the NPY preamble needs 10",
                       f->path, f->size);
    if (b[6] < 1 || b[6] > 3 || b[7] != 0)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: NPY format version %u.%u is not supported (1.0, 2.0 or 3.0)", f->path,
                       b[6], b[7]);
    size_t start = b[6] == 1 ? NPY_PREAMBLE_V1 : NPY_PREAMBLE_V1 + 2;
    if (f->size < start)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: truncated: %zu bytes, the NPY %u.0 preamble needs %zu", f->path,
                       f->size, b[6], start);
    size_t len = b[8] | (size_t)b[9] << 8;
    if (b[6] != 1)
        len |= (size_t)b[10] << 16 | (size_t)b[11] << 24;
    if (len > BP_NPY_MAX_HEADER)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: header of %zu bytes is longer than %d (not written by NumPy?)",
                       f->path, len, BP_NPY_MAX_HEADER);
    if (len > f->size - start)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: truncated: the header is %zu bytes but the file ends %zu bytes into it",
                       f->path, len, f->size - start);
    f->data_at = start + len;
    return bp_npy_parse_header((const char *)b + start, len, f->path, &f->h, err);
}

/* Elements the shape describes, whose bytes must be exactly what follows the header. */
static bprop_status check_extent(npy_mem *f, bprop_error *err)
{
    char shape[96];
    bp_npy_shape_text(f->h.shape, f->h.ndim, shape, sizeof shape);
    size_t n = 1, bytes;
    for (size_t d = 0; d < f->h.ndim; d++) {
        if (f->h.shape[d] == 0)
            return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is empty (dimension %zu is 0)", f->path,
                           shape, d);
        if (bp_mul_overflows(n, f->h.shape[d], &n))
            return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is too large", f->path, shape);
    }
    if (bp_mul_overflows(n, f->item, &bytes))
        return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is too large", f->path, shape);
    size_t have = f->size - f->data_at;
    if (have < bytes)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: truncated data: shape %s of '%s' needs %zu bytes, the file holds %zu",
                       f->path, shape, f->h.descr, bytes, have);
    if (have > bytes)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: %zu trailing bytes after the data (shape %s of '%s' is %zu bytes)",
                       f->path, have - bytes, shape, f->h.descr, bytes);
    f->count = n;
    return BPROP_OK;
}

/* Bytes per element of a dtype in list (NULL-terminated pairs "descr", size), or 0. */
static size_t item_size(const char *descr, const char *const *names, const size_t *sizes)
{
    for (size_t i = 0; names[i]; i++)
        if (strcmp(descr, names[i]) == 0)
            return sizes[i];
    return 0;
}

/* Open path (mapped when it is an uncompressed regular file; writable: copy-on-write pages) and
 * check the header: dtype among names (else the message says want), C order, extent. */
static bprop_status npy_open(npy_mem *f, const char *path, int writable, const char *const *names,
                             const size_t *sizes, const char *want, bprop_error *err)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    bprop_status s = bp_storage_map(path, writable, &f->st, err);
    if (s == BPROP_OK && !f->st)
        s = read_whole(path, &f->st, err);
    if (s != BPROP_OK)
        return s;
    f->base = f->st->addr;
    f->size = f->st->len;
    s = parse_preamble(f, err);
    if (s != BPROP_OK)
        return s;
    if (!(f->item = item_size(f->h.descr, names, sizes)))
        return bp_fail(err, BPROP_E_FORMAT, "%s: dtype '%s'%s is not supported: %s", path,
                       f->h.descr, f->h.descr[0] == '>' ? " (big-endian)" : "", want);
    if (f->h.fortran_order)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: Fortran (column-major) order is not supported: save a C-ordered array "
                       "(numpy: np.ascontiguousarray(a))", path);
    return check_extent(f, err);
}

static void npy_close(npy_mem *f)
{
    bp_storage_free(f->st);
    f->st = NULL;
}

/* Every float feature finite, as the other readers require. */
static bprop_status check_finite(const npy_mem *f, const float *x, size_t dim, bprop_error *err)
{
    for (size_t k = 0; k < f->count; k++)
        if (!isfinite(x[k]))
            return bp_fail(err, BPROP_E_NONFINITE, "%s: sample %zu, feature %zu is %s", f->path,
                           k / dim, k % dim, isnan(x[k]) ? "NaN" : "infinite");
    return BPROP_OK;
}

/* The images as a dataset: bytes in place, floats in place when 4-byte aligned in the file
 * (NumPy pads headers to 64 bytes), else copied. */
static bprop_status images_dataset(npy_mem *f, int labelled, bprop_dataset **out,
                                   bprop_error *err)
{
    if (f->h.ndim < 2) {
        char shape[96];
        bp_npy_shape_text(f->h.shape, f->h.ndim, shape, sizeof shape);
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: shape %s: images need (N, D) or (N, rows, cols) (this looks like "
                       "labels)", f->path, shape);
    }
    const size_t n = f->h.shape[0], dim = f->count / n;
    unsigned char *data = (unsigned char *)f->st->addr + f->data_at;
    if (f->item == 1) {
        bp_storage *st = f->st;
        f->st = NULL; /* the dataset owns the file's memory from here */
        return bp_dataset_wrap(n, dim, labelled, st, NULL, data, f->path, out, err);
    }
    float *x = (float *)(void *)data;
    bp_storage *st = NULL;
    if (f->data_at % sizeof(float) == 0) {
        st = f->st;
        f->st = NULL;
    } else {
        if (!(x = bp_alloc(f->count, sizeof(float))))
            return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for %zu floats", f->path,
                           f->count);
        memcpy(x, data, f->count * sizeof(float));
    }
    bprop_status s = check_finite(f, x, dim, err);
    if (s != BPROP_OK) {
        if (st)
            bp_storage_free(st);
        else
            bp_free(x);
        return s;
    }
    return bp_dataset_wrap(n, dim, labelled, st, x, NULL, f->path, out, err);
}

static int64_t label_at(const npy_mem *f, size_t i)
{
    const unsigned char *p = f->base + f->data_at + i * f->item;
    uint64_t u = 0;
    for (size_t b = f->item; b-- > 0;)
        u = u << 8 | p[b];
    if (f->item == 4)
        return (int64_t)(int32_t)(uint32_t)u;
    return f->item == 8 ? (int64_t)u : (int64_t)(u & 0xFF);
}

/* Labels from path into d->y (shape (N,), values in [0, classes)), and d->classes. */
static bprop_status load_labels(const char *path, const char *images_path, size_t classes,
                                bprop_dataset *d, bprop_error *err)
{
    static const char *const names[] = {"|u1", "<u1", "u1", "<i4", "<i8", NULL};
    static const size_t sizes[] = {1, 1, 1, 4, 8};
    npy_mem f;
    bprop_status s = npy_open(&f, path, 0, names, sizes,
                              "labels must be integers '|u1', '<i4' or '<i8' "
                              "(numpy: y.astype('<i8'))", err);
    if (s == BPROP_OK && f.h.ndim != 1)
        s = bp_fail(err, BPROP_E_FORMAT, "%s: labels must have shape (N,), not %zu dimensions",
                    path, f.h.ndim);
    if (s == BPROP_OK && f.count != d->n)
        s = bp_fail(err, BPROP_E_MISMATCH, "%s: %zu labels, but %s holds %zu images", path, f.count,
                    images_path, d->n);
    int64_t top = 0;
    for (size_t i = 0; s == BPROP_OK && i < d->n; i++) {
        int64_t v = label_at(&f, i);
        size_t at = f.data_at + i * f.item;
        if (v < 0)
            s = bp_fail(err, BPROP_E_LABEL,
                        "%s: record %zu (byte offset %zu): label %lld is negative", path, i, at,
                        (long long)v);
        else if (classes != 0 && (uint64_t)v >= classes)
            s = bp_fail(err, BPROP_E_LABEL,
                        "%s: record %zu (byte offset %zu): label %lld is not below classes %zu",
                        path, i, at, (long long)v, classes);
        else if (v >= INT32_MAX)
            s = bp_fail(err, BPROP_E_LABEL,
                        "%s: record %zu (byte offset %zu): label %lld is too large", path, i, at,
                        (long long)v);
        if (s != BPROP_OK)
            break;
        d->y[i] = (int32_t)v;
        top = v > top ? v : top;
    }
    if (s == BPROP_OK)
        d->classes = classes != 0 ? classes : (size_t)top + 1;
    npy_close(&f);
    return s;
}

bprop_status bprop_dataset_load_npy(const char *images_path, const char *labels_path,
                                    size_t classes, bprop_dataset **out, bprop_error *err)
{
    static const char *const names[] = {"|u1", "<u1", "u1", "<f4", NULL};
    static const size_t sizes[] = {1, 1, 1, 4};
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_npy: out is NULL");
    *out = NULL;
    if (!images_path)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_npy: no images file given");
    npy_mem f;
    bprop_dataset *d = NULL;
    bprop_status s = npy_open(&f, images_path, 1, names, sizes,
                              "images must be uint8 '|u1' or little-endian float32 '<f4' "
                              "(numpy: a.astype(np.uint8) or a.astype('<f4'))", err);
    if (s == BPROP_OK)
        s = images_dataset(&f, labels_path != NULL, &d, err);
    npy_close(&f);
    if (s == BPROP_OK && labels_path)
        s = load_labels(labels_path, images_path, classes, d, err);
    return bp_dataset_hand_over(s, d, out);
}
