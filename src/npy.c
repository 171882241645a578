/* npy.c: NumPy .npy files: one float array read or written, and a model as a directory of them. */
#define _POSIX_C_SOURCE 200809L

#include "npy.h"
#include "crc_file.h"
#include "atomic_file.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/*
 * NPY format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor version byte, the
 * header length (u16 little-endian in version 1.0, u32 in 2.0 and 3.0), then the header: a
 * Python dictionary literal such as {'descr': '<f4', 'fortran_order': False, 'shape': (3, 4), }
 * padded with spaces and ended by '\n' so that the data starts at a multiple of 64 bytes. The
 * data follows: the elements in C order, nothing after them.
 */

#define NPY_MAGIC "\x93NUMPY"
enum {
    NPY_MAGIC_LEN = 6,
    NPY_PREAMBLE_V1 = 10, /* magic, version, u16 length */
    NPY_ALIGN = 64,
    NPY_CHUNK = 4096, /* elements converted per I/O call */
};

/* ---- header parsing ---------------------------------------------------------------------- */

typedef struct hp {
    const char *s;
    size_t n, pos;
    const char *path;
    bprop_error *err;
} hp;

static bprop_status hp_fail(const hp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bprop_status hp_fail(const hp *p, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return bp_fail(p->err, BPROP_E_FORMAT, "%s: bad NPY header (at header byte %zu): %s", p->path,
                   p->pos, what);
}

/* Python's whitespace between tokens. */
static void hp_ws(hp *p)
{
    while (p->pos < p->n && strchr(" \t\n\r\f\v", p->s[p->pos]) && p->s[p->pos] != '\0')
        p->pos++;
}

static int hp_peek(const hp *p) { return p->pos < p->n ? (unsigned char)p->s[p->pos] : -1; }

static bprop_status hp_expect(hp *p, char c, const char *where)
{
    hp_ws(p);
    if (hp_peek(p) != (unsigned char)c)
        return hp_fail(p, "expected '%c' %s", c, where);
    p->pos++;
    return BPROP_OK;
}

/* A quoted string (single or double quotes, no escapes), copied (shortened) into buf. */
static bprop_status hp_string(hp *p, char *buf, size_t cap)
{
    hp_ws(p);
    int q = hp_peek(p);
    if (q != '\'' && q != '"')
        return hp_fail(p, "expected a quoted string");
    size_t start = ++p->pos, len = 0;
    for (;; p->pos++) {
        int c = hp_peek(p);
        if (c < 0 || c == '\n')
            return hp_fail(p, "unterminated string");
        if (c == '\\')
            return hp_fail(p, "escape sequences in strings are not supported");
        if (c == q)
            break;
    }
    len = p->pos - start;
    p->pos++;
    size_t k = len < cap - 1 ? len : cap - 1;
    memcpy(buf, p->s + start, k);
    buf[k] = '\0';
    if (k < len && cap > 4)
        memcpy(buf + cap - 4, "...", 4);
    return BPROP_OK;
}

static int hp_word(hp *p, const char *w)
{
    size_t k = strlen(w);
    if (p->n - p->pos < k || memcmp(p->s + p->pos, w, k) != 0)
        return 0;
    int next = p->pos + k < p->n ? (unsigned char)p->s[p->pos + k] : -1;
    if (next == '_' || (next >= 0 && ((next | 32) >= 'a' && (next | 32) <= 'z')) ||
        (next >= '0' && next <= '9'))
        return 0;
    p->pos += k;
    return 1;
}

static bprop_status hp_bool(hp *p, int *out)
{
    hp_ws(p);
    if (hp_word(p, "True"))
        *out = 1;
    else if (hp_word(p, "False"))
        *out = 0;
    else
        return hp_fail(p, "'fortran_order' must be True or False");
    return BPROP_OK;
}

/* A non-negative integer literal (Python 2's 'L' suffix allowed). */
static bprop_status hp_int(hp *p, size_t *out)
{
    hp_ws(p);
    size_t v = 0, start = p->pos;
    for (int c; (c = hp_peek(p)) >= '0' && c <= '9'; p->pos++)
        if (bp_mul_overflows(v, 10, &v) || v > SIZE_MAX - (size_t)(c - '0'))
            return hp_fail(p, "a dimension is too large");
        else
            v += (size_t)(c - '0');
    if (p->pos == start)
        return hp_fail(p, "expected a non-negative integer in 'shape'");
    if (hp_peek(p) == 'L' || hp_peek(p) == 'l')
        p->pos++;
    *out = v;
    return BPROP_OK;
}

/* A tuple of integers: (), (3,), (3, 4), (3, 4,). */
static bprop_status hp_shape(hp *p, bp_npy_header *h)
{
    bprop_status st = hp_expect(p, '(', "to start 'shape' (a tuple)");
    int comma_after_last = 1;
    for (h->ndim = 0; st == BPROP_OK;) {
        hp_ws(p);
        if (hp_peek(p) == ')')
            break;
        if (h->ndim == BP_NPY_MAX_DIMS)
            return hp_fail(p, "'shape' has more than %d dimensions", BP_NPY_MAX_DIMS);
        st = hp_int(p, &h->shape[h->ndim++]);
        hp_ws(p);
        comma_after_last = hp_peek(p) == ',';
        if (st == BPROP_OK && comma_after_last)
            p->pos++;
        else if (st == BPROP_OK && hp_peek(p) != ')')
            return hp_fail(p, "expected ',' or ')' in 'shape'");
    }
    if (st != BPROP_OK)
        return st;
    if (h->ndim == 1 && !comma_after_last)
        return hp_fail(p, "'shape' (%zu) is not a tuple: a 1-D shape is written (%zu,)",
                       h->shape[0], h->shape[0]);
    p->pos++;
    return BPROP_OK;
}

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static bprop_status hp_value(hp *p, unsigned key, bp_npy_header *h)
{
    if (key == KEY_FORTRAN)
        return hp_bool(p, &h->fortran_order);
    if (key == KEY_SHAPE)
        return hp_shape(p, h);
    hp_ws(p);
    if (hp_peek(p) == '[' || hp_peek(p) == '{')
        return hp_fail(p, "'descr' is a structured dtype; only '<f4' (float32) and '<f8' "
                          "(float64) arrays are read");
    return hp_string(p, h->descr, sizeof h->descr);
}

/* One "key: value" pair; *seen collects the keys so far. */
static bprop_status hp_pair(hp *p, unsigned *seen, bp_npy_header *h)
{
    char key[32];
    hp_ws(p);
    size_t at = p->pos;
    bprop_status st = hp_string(p, key, sizeof key);
    if (st != BPROP_OK)
        return st;
    unsigned k = strcmp(key, "descr") == 0 ? KEY_DESCR
               : strcmp(key, "fortran_order") == 0 ? KEY_FORTRAN
               : strcmp(key, "shape") == 0 ? KEY_SHAPE : 0;
    if (!k || (*seen & k)) {
        p->pos = at; /* the message points at the key */
        return k ? hp_fail(p, "key '%s' appears twice", key)
                 : hp_fail(p, "unknown key '%s' (expected exactly 'descr', 'fortran_order' and "
                              "'shape')", key);
    }
    *seen |= k;
    st = hp_expect(p, ':', "after a key");
    return st == BPROP_OK ? hp_value(p, k, h) : st;
}

bprop_status bp_npy_parse_header(const char *text, size_t n, const char *path, bp_npy_header *h,
                                 bprop_error *err)
{
    hp p = {text, n, 0, path, err};
    memset(h, 0, sizeof *h);
    bprop_status st = hp_expect(&p, '{', "at the start (a dictionary)");
    unsigned seen = 0;
    for (int first = 1; st == BPROP_OK; first = 0) {
        hp_ws(&p);
        if (hp_peek(&p) == '}')
            break;
        if (!first && (st = hp_expect(&p, ',', "between entries")) != BPROP_OK)
            break;
        hp_ws(&p);
        if (!first && hp_peek(&p) == '}')
            break;
        st = hp_pair(&p, &seen, h);
    }
    if (st != BPROP_OK)
        return st;
    p.pos++;
    const char *missing = !(seen & KEY_DESCR) ? "descr" : !(seen & KEY_FORTRAN) ? "fortran_order"
                        : !(seen & KEY_SHAPE) ? "shape" : NULL;
    if (missing)
        return hp_fail(&p, "key '%s' is missing", missing);
    hp_ws(&p);
    if (p.pos < p.n)
        return hp_fail(&p, "unexpected text after the dictionary");
    return BPROP_OK;
}

/* ---- shapes ------------------------------------------------------------------------------ */

void bp_npy_shape_text(const size_t *shape, size_t ndim, char *buf, size_t size)
{
    size_t used = 0;
    int n = snprintf(buf, size, "(");
    for (size_t i = 0; n >= 0 && i < ndim; i++) {
        used += (size_t)n;
        n = used < size ? snprintf(buf + used, size - used, "%s%zu", i ? ", " : "", shape[i]) : -1;
    }
    if (n >= 0) {
        used += (size_t)n;
        n = used < size ? snprintf(buf + used, size - used, "%s)", ndim == 1 ? "," : "") : -1;
    }
    if ((n < 0 || used + (size_t)n >= size) && size > 4)
        memcpy(buf + size - 4, "...", 4);
}

/* "[2, 5]": the index of element k of an array of this shape. */
static void index_text(size_t k, const size_t *shape, size_t ndim, char *buf, size_t size)
{
    size_t idx[BP_NPY_MAX_DIMS];
    for (size_t d = ndim; d-- > 0;) {
        idx[d] = k % shape[d];
        k /= shape[d];
    }
    bp_npy_shape_text(idx, ndim, buf, size);
    buf[0] = '[';
    char *close = strrchr(buf, ')');
    if (close) {
        close[0] = ']';
        if (close > buf && close[-1] == ',')
            memmove(close - 1, close, strlen(close) + 1);
    }
}

/* ---- reading ----------------------------------------------------------------------------- */

typedef struct npy_file {
    FILE *f;
    const char *path;
    unsigned long long size; /* file length */
} npy_file;

static uint64_t le_bytes(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

/* Magic, version and header length (checked against the file's length and the limit). */
static bprop_status read_preamble(npy_file *nf, size_t *header_len, unsigned *major, bprop_error *err)
{
    unsigned char b[12];
    size_t got = fread(b, 1, 8, nf->f);
    if (got == 0 || memcmp(b, NPY_MAGIC, got < NPY_MAGIC_LEN ? got : NPY_MAGIC_LEN) != 0)
        return bp_fail(err, BPROP_E_FORMAT, "%s: not an NPY file (bad magic; expected \\x93NUMPY)",
                       nf->path);
    if (got < 8)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated: %zu bytes, the NPY preamble needs 10",
                       nf->path, got);
    *major = b[6];
    if ((b[6] < 1 || b[6] > 3) || b[7] != 0)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: NPY format version %u.%u is not supported (1.0, 2.0 or 3.0)", nf->path,
                       b[6], b[7]);
    int len_bytes = b[6] == 1 ? 2 : 4;
    got = fread(b + 8, 1, (size_t)len_bytes, nf->f);
    if (got < (size_t)len_bytes)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated: %zu bytes, the NPY %u.0 preamble needs %d",
                       nf->path, 8 + got, b[6], 8 + len_bytes);
    uint64_t len = le_bytes(b + 8, len_bytes), start = 8 + (uint64_t)len_bytes;
    if (start + len > nf->size)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: truncated: the header is %llu bytes but the file ends %llu bytes into it",
                       nf->path, (unsigned long long)len, nf->size - start);
    if (len > BP_NPY_MAX_HEADER)
        return bp_fail(err, BPROP_E_FORMAT, "%s: header of %llu bytes is longer than %d (not written by NumPy?)",
                       nf->path, (unsigned long long)len, BP_NPY_MAX_HEADER);
    *header_len = (size_t)len;
    return BPROP_OK;
}

static bprop_status read_header(npy_file *nf, bp_npy_header *h, size_t *data_at, bprop_error *err)
{
    size_t len = 0;
    unsigned major = 0;
    bprop_status st = read_preamble(nf, &len, &major, err);
    if (st != BPROP_OK)
        return st;
    char *text = malloc(len + 1);
    if (!text)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for the header", nf->path);
    if (fread(text, 1, len, nf->f) != len)
        st = bp_fail(err, BPROP_E_IO, "%s: cannot read the header", nf->path);
    if (st == BPROP_OK)
        st = bp_npy_parse_header(text, len, nf->path, h, err);
    free(text);
    *data_at = (major == 1 ? NPY_PREAMBLE_V1 : NPY_PREAMBLE_V1 + 2) + len;
    return st;
}

/* dtype and order; *itemsize 4 or 8. */
static bprop_status check_dtype(const npy_file *nf, const bp_npy_header *h, size_t *itemsize,
                                bprop_error *err)
{
    if (strcmp(h->descr, "<f4") == 0 || strcmp(h->descr, "<f8") == 0)
        *itemsize = h->descr[2] == '4' ? 4 : 8;
    else
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: dtype '%s'%s is not supported: only little-endian float32 '<f4' or "
                       "float64 '<f8' (numpy: a.astype('<f4'))", nf->path, h->descr,
                       h->descr[0] == '>' ? " (big-endian)" : "");
    if (h->fortran_order)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: Fortran (column-major) order is not supported: save a C-ordered array "
                       "(numpy: np.ascontiguousarray(a))", nf->path);
    return BPROP_OK;
}

/* Elements and data bytes the shape describes, which must be exactly what the file holds. */
static bprop_status check_extent(const npy_file *nf, const bp_npy_header *h, size_t itemsize,
                                 size_t data_at, size_t *count, bprop_error *err)
{
    char shape[96];
    bp_npy_shape_text(h->shape, h->ndim, shape, sizeof shape);
    size_t n = 1, bytes;
    for (size_t d = 0; d < h->ndim; d++) {
        if (h->shape[d] == 0)
            return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is empty (dimension %zu is 0)",
                           nf->path, shape, d);
        if (bp_mul_overflows(n, h->shape[d], &n))
            return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is too large", nf->path, shape);
    }
    if (bp_mul_overflows(n, itemsize, &bytes))
        return bp_fail(err, BPROP_E_SIZE, "%s: shape %s is too large", nf->path, shape);
    unsigned long long have = nf->size - data_at;
    if (have < bytes)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: truncated data: shape %s of '%s' needs %zu bytes, the file holds %llu",
                       nf->path, shape, h->descr, bytes, have);
    if (have > bytes)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: %llu trailing bytes after the data (shape %s of '%s' is %zu bytes)",
                       nf->path, have - bytes, shape, h->descr, bytes);
    *count = n;
    return BPROP_OK;
}

static bprop_status not_finite(const npy_file *nf, const bp_npy *a, size_t k, double v,
                               bprop_error *err)
{
    char idx[96];
    index_text(k, a->shape, a->ndim, idx, sizeof idx);
    if (isfinite(v))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: element %s is %g, beyond float32 range",
                       nf->path, idx, v);
    return bp_fail(err, BPROP_E_NONFINITE, "%s: element %s is %s", nf->path, idx,
                   isnan(v) ? "NaN" : "infinite");
}

/* Decode n little-endian elements of buf into a->data from first on, checking each. */
static bprop_status decode(const npy_file *nf, bp_npy *a, const unsigned char *buf, size_t first,
                           size_t n, bprop_error *err)
{
    for (size_t i = 0; i < n; i++) {
        double v;
        float f;
        if (a->was_f8) {
            uint64_t u = le_bytes(buf + 8 * i, 8);
            memcpy(&v, &u, sizeof v);
            f = (float)v; /* round to nearest */
        } else {
            uint32_t u = (uint32_t)le_bytes(buf + 4 * i, 4);
            memcpy(&f, &u, sizeof f);
            v = f;
        }
        if (!isfinite(f))
            return not_finite(nf, a, first + i, v, err);
        a->data[first + i] = f;
    }
    return BPROP_OK;
}

static bprop_status read_data(npy_file *nf, bp_npy *a, bprop_error *err)
{
    size_t item = a->was_f8 ? 8 : 4;
    unsigned char *buf = malloc(NPY_CHUNK * 8);
    if (!buf)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for a read buffer", nf->path);
    bprop_status st = BPROP_OK;
    for (size_t done = 0; st == BPROP_OK && done < a->count;) {
        size_t k = a->count - done < NPY_CHUNK ? a->count - done : NPY_CHUNK;
        if (fread(buf, item, k, nf->f) != k)
            st = bp_fail(err, BPROP_E_FORMAT, "%s: truncated data: the file ended during element %zu",
                         nf->path, done);
        else
            st = decode(nf, a, buf, done, k, err);
        done += k;
    }
    if (st == BPROP_OK && fgetc(nf->f) != EOF) /* the file grew while being read */
        st = bp_fail(err, BPROP_E_FORMAT, "%s: trailing bytes after the data", nf->path);
    free(buf);
    return st;
}

static bprop_status read_open(npy_file *nf, bp_npy *out, bprop_error *err)
{
    bp_npy_header h;
    size_t data_at = 0, itemsize = 0;
    bprop_status st = read_header(nf, &h, &data_at, err);
    if (st == BPROP_OK)
        st = check_dtype(nf, &h, &itemsize, err);
    if (st == BPROP_OK)
        st = check_extent(nf, &h, itemsize, data_at, &out->count, err);
    if (st != BPROP_OK)
        return st;
    out->ndim = h.ndim;
    memcpy(out->shape, h.shape, sizeof h.shape);
    out->was_f8 = itemsize == 8;
    out->data = bp_alloc(out->count, sizeof(float));
    if (!out->data)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for %zu values", nf->path, out->count);
    return read_data(nf, out, err);
}

bprop_status bp_npy_read(const char *path, bp_npy *out, bprop_error *err)
{
    memset(out, 0, sizeof *out);
    FILE *f;
    uint64_t size;
    bprop_status st = bp_open_regular(path, &f, &size, err);
    if (st != BPROP_OK)
        return st;
    npy_file nf = {f, path, (unsigned long long)size};
    st = read_open(&nf, out, err);
    fclose(f);
    if (st != BPROP_OK)
        bp_npy_free(out);
    return st;
}

void bp_npy_free(bp_npy *a)
{
    bp_free(a->data);
    memset(a, 0, sizeof *a);
}

/* ---- writing ----------------------------------------------------------------------------- */

/* Preamble and header for a '<f4' array of this shape, into buf; returns its length. */
static size_t encode_header(const size_t *shape, size_t ndim, char *buf, size_t cap)
{
    char dims[BP_NPY_MAX_DIMS * 24];
    bp_npy_shape_text(shape, ndim, dims, sizeof dims);
    int n = snprintf(buf + NPY_PREAMBLE_V1, cap - NPY_PREAMBLE_V1,
                     "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", dims);
    size_t len = NPY_PREAMBLE_V1 + (size_t)n + 1; /* + '\n' */
    size_t padded = (len + NPY_ALIGN - 1) / NPY_ALIGN * NPY_ALIGN;
    memset(buf + NPY_PREAMBLE_V1 + n, ' ', padded - len);
    buf[padded - 1] = '\n';
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = 1;
    buf[7] = 0;
    size_t hlen = padded - NPY_PREAMBLE_V1;
    buf[8] = (char)(hlen & 0xFF);
    buf[9] = (char)(hlen >> 8);
    return padded;
}

/* The whole file to f; returns the errno of the first failed write, 0 if none. */
static int write_array(FILE *f, const char *head, size_t head_len, const float *data, size_t n)
{
    if (fwrite(head, 1, head_len, f) != head_len)
        return errno ? errno : EIO;
    unsigned char buf[4 * NPY_CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < NPY_CHUNK ? n - done : NPY_CHUNK;
        for (size_t i = 0; i < k; i++) {
            uint32_t u;
            memcpy(&u, &data[done + i], sizeof u);
            for (int b = 0; b < 4; b++)
                buf[4 * i + (size_t)b] = (unsigned char)(u >> (8 * b));
        }
        if (fwrite(buf, 4, k, f) != k)
            return errno ? errno : EIO;
        done += k;
    }
    return 0;
}

bprop_status bp_npy_write(const char *path, const float *data, size_t ndim, const size_t *shape,
                          bprop_error *err)
{
    if (!path || !data || !shape || ndim < 1 || ndim > BP_NPY_MAX_DIMS)
        return bp_fail(err, BPROP_E_ARG, "bp_npy_write: bad argument");
    size_t n = 1;
    for (size_t d = 0; d < ndim; d++)
        if (bp_mul_overflows(n, shape[d], &n))
            return bp_fail(err, BPROP_E_SIZE, "%s: array too large", path);
    char head[BP_NPY_MAX_DIMS * 24 + 128];
    size_t head_len = encode_header(shape, ndim, head, sizeof head);
    bp_atomic a;
    bprop_status st = bp_atomic_open(&a, path, err);
    if (st != BPROP_OK)
        return st;
    return bp_atomic_commit(&a, write_array(a.f, head, head_len, data, n), err);
}

/* ---- a model as a directory of arrays ----------------------------------------------------- */

static const char *const npy_names[BPROP_NPY_FILES] = {
    [BPROP_NPY_W1] = "W1.npy",     [BPROP_NPY_B1] = "b1.npy",      [BPROP_NPY_W2] = "W2.npy",
    [BPROP_NPY_B2] = "b2.npy",     [BPROP_NPY_MEAN] = "mean.npy",  [BPROP_NPY_SCALE] = "scale.npy",
};

const char *bprop_npy_file_name(bprop_npy_file f)
{
    return (int)f >= 0 && f < BPROP_NPY_FILES ? npy_names[f] : "?";
}

/* dir/name in a caller-freed string. */
static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* mkdir -p: every missing directory along path. */
static bprop_status make_dirs(const char *dir, bprop_error *err)
{
    char *p = strdup(dir);
    if (!p)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", dir);
    bprop_status st = BPROP_OK;
    for (char *s = p + 1;; s++) {
        int end = *s == '\0';
        if (*s != '/' && !end)
            continue;
        *s = '\0';
        struct stat sb;
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            char why[128];
            bp_errno_text(errno, why, sizeof why);
            st = bp_fail(err, BPROP_E_IO, "%s: cannot create directory %s: %s", dir, p, why);
        } else if (stat(p, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
            st = bp_fail(err, BPROP_E_IO, "%s: %s is not a directory", dir, p);
        }
        if (st != BPROP_OK || end)
            break;
        *s = '/';
    }
    free(p);
    return st;
}

/* The arrays of m: data and shape of each file it has (data NULL for one it has not). */
typedef struct model_arrays {
    const float *data[BPROP_NPY_FILES];
    size_t shape[BPROP_NPY_FILES][2];
    size_t ndim[BPROP_NPY_FILES];
} model_arrays;

static void model_arrays_of(const bprop_model *m, model_arrays *a)
{
    memset(a, 0, sizeof *a);
    const size_t d = m->inputs, h = m->hidden, c = m->classes;
    const size_t shapes[BPROP_NPY_FILES][2] = {{d, h}, {h, 0}, {h, c}, {c, 0}, {d, 0}, {d, 0}};
    const bprop_tensor t[4] = {BPROP_W1, BPROP_B1, BPROP_W2, BPROP_B2};
    for (int f = 0; f < BPROP_NPY_FILES; f++) {
        a->data[f] = f < 4 ? bprop_model_tensor(m, t[f]) : f == BPROP_NPY_MEAN ? m->std_mean : m->std_scale;
        memcpy(a->shape[f], shapes[f], sizeof shapes[f]);
        a->ndim[f] = shapes[f][1] ? 2 : 1;
    }
}

/* What export writes must import again: sizes that make a layout, finite values. */
static bprop_status check_exportable(const bprop_model *m, const model_arrays *a, const char *dir,
                                     bprop_error *err)
{
    bprop_layout l;
    if (!m->params || bprop_layout_make(m->inputs, m->hidden, m->classes, m->has_bias, &l) != BPROP_OK ||
        l.total != m->layout.total || !m->std_mean != !m->std_scale)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot export: the model %zu-%zu-%zu is inconsistent",
                       dir, m->inputs, m->hidden, m->classes);
    for (int f = 0; f < BPROP_NPY_FILES; f++) {
        size_t n = a->shape[f][0] * (a->ndim[f] == 2 ? a->shape[f][1] : 1);
        for (size_t i = 0; a->data[f] && i < n; i++)
            if (!isfinite(a->data[f][i]))
                return bp_fail(err, BPROP_E_NONFINITE, "%s: cannot export: %s element %zu is %s",
                               dir, npy_names[f], i, isnan(a->data[f][i]) ? "NaN" : "infinite");
    }
    return BPROP_OK;
}

/* Remove a file of the set that the model does not have, left by an earlier export, so that
 * the directory always describes exactly this model. */
static bprop_status remove_stale(const char *path, bprop_error *err)
{
    if (remove(path) == 0 || errno == ENOENT)
        return BPROP_OK;
    char why[128];
    bp_errno_text(errno, why, sizeof why);
    return bp_fail(err, BPROP_E_IO, "%s: cannot remove (left by an earlier export): %s", path, why);
}

bprop_status bprop_model_export_npy(const bprop_model *m, const char *dir, bprop_error *err)
{
    if (!m || !dir || !*dir)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_export_npy: NULL argument");
    model_arrays a;
    model_arrays_of(m, &a);
    bprop_status st = check_exportable(m, &a, dir, err);
    if (st == BPROP_OK)
        st = make_dirs(dir, err);
    for (int f = 0; f < BPROP_NPY_FILES && st == BPROP_OK; f++) {
        char *path = join(dir, npy_names[f]);
        if (!path)
            return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", dir);
        st = a.data[f] ? bp_npy_write(path, a.data[f], a.ndim[f], a.shape[f], err)
                       : remove_stale(path, err);
        free(path);
    }
    return st;
}

/* Everything an import holds until the model is built. */
typedef struct import_state {
    const char *dir;
    char *path[BPROP_NPY_FILES];
    int present[BPROP_NPY_FILES];
    bp_npy arr[BPROP_NPY_FILES];
} import_state;

static void import_free(import_state *s)
{
    for (int f = 0; f < BPROP_NPY_FILES; f++) {
        free(s->path[f]);
        bp_npy_free(&s->arr[f]);
    }
}

static bprop_status check_pair(const import_state *s, bprop_npy_file a, bprop_npy_file b,
                               const char *what, bprop_error *err)
{
    if (s->present[a] == s->present[b])
        return BPROP_OK;
    bprop_npy_file missing = s->present[a] ? b : a, there = s->present[a] ? a : b;
    return bp_fail(err, BPROP_E_MISMATCH,
                   "%s: missing, but %s is present: %s needs both %s and %s, or neither",
                   s->path[missing], npy_names[there], what, npy_names[a], npy_names[b]);
}

/* Which files the directory holds; W1 and W2 must be there, the others in pairs. */
static bprop_status find_files(import_state *s, bprop_error *err)
{
    struct stat sb;
    char why[128];
    if (stat(s->dir, &sb) != 0) {
        bp_errno_text(errno, why, sizeof why);
        return bp_fail(err, BPROP_E_IO, "%s: cannot open: %s", s->dir, why);
    }
    if (!S_ISDIR(sb.st_mode))
        return bp_fail(err, BPROP_E_IO, "%s: not a directory", s->dir);
    for (int f = 0; f < BPROP_NPY_FILES; f++) {
        if (!(s->path[f] = join(s->dir, npy_names[f])))
            return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", s->dir);
        s->present[f] = stat(s->path[f], &sb) == 0;
        if (!s->present[f] && errno != ENOENT) {
            bp_errno_text(errno, why, sizeof why);
            return bp_fail(err, BPROP_E_IO, "%s: cannot access: %s", s->path[f], why);
        }
    }
    for (int f = BPROP_NPY_W1; f <= BPROP_NPY_W2; f += BPROP_NPY_W2 - BPROP_NPY_W1)
        if (!s->present[f])
            return bp_fail(err, BPROP_E_IO, "%s: missing: a model needs W1.npy (inputs, hidden) "
                                            "and W2.npy (hidden, classes)", s->path[f]);
    bprop_status st = check_pair(s, BPROP_NPY_B1, BPROP_NPY_B2, "a model with biases", err);
    return st == BPROP_OK ? check_pair(s, BPROP_NPY_MEAN, BPROP_NPY_SCALE, "standardisation", err)
                          : st;
}

/* The shape file f must have, given W1 (and W2): rows, cols (0 for 1-D) and how to say it. */
static void wanted_shape(const import_state *s, bprop_npy_file f, size_t want[2], char *say,
                         size_t size)
{
    const size_t d = s->arr[BPROP_NPY_W1].shape[0], h = s->arr[BPROP_NPY_W1].shape[1];
    const size_t c = s->arr[BPROP_NPY_W2].shape[1];
    switch (f) {
    case BPROP_NPY_W2:
        want[0] = h, want[1] = 0;
        snprintf(say, size, "(hidden=%zu, classes) to chain with W1.npy", h);
        return;
    case BPROP_NPY_B1:
        want[0] = h, want[1] = 0;
        snprintf(say, size, "(hidden=%zu,) as W1.npy says", h);
        return;
    case BPROP_NPY_B2:
        want[0] = c, want[1] = 0;
        snprintf(say, size, "(classes=%zu,) as W2.npy says", c);
        return;
    default:
        want[0] = d, want[1] = 0;
        snprintf(say, size, "(inputs=%zu,) as W1.npy says", d);
    }
}

/* Check the dimensions of file f against what is known so far. */
static bprop_status check_shape(const import_state *s, bprop_npy_file f, bprop_error *err)
{
    const bp_npy *a = &s->arr[f];
    size_t ndim = f == BPROP_NPY_W1 || f == BPROP_NPY_W2 ? 2 : 1;
    char shape[96], say[96];
    bp_npy_shape_text(a->shape, a->ndim, shape, sizeof shape);
    if (a->ndim != ndim)
        return bp_fail(err, BPROP_E_MISMATCH, "%s: shape %s has %zu dimension%s; %s must be %s",
                       s->path[f], shape, a->ndim, a->ndim == 1 ? "" : "s", npy_names[f],
                       f == BPROP_NPY_W1 ? "2-D (inputs, hidden)" : f == BPROP_NPY_W2
                       ? "2-D (hidden, classes)" : "1-D");
    if (f == BPROP_NPY_W1)
        return BPROP_OK;
    size_t want[2];
    wanted_shape(s, f, want, say, sizeof say);
    if (a->shape[0] != want[0])
        return bp_fail(err, BPROP_E_MISMATCH, "%s: shape %s does not fit: %s must be %s",
                       s->path[f], shape, npy_names[f], say);
    return BPROP_OK;
}

static bprop_status read_arrays(import_state *s, bprop_error *err)
{
    /* W2 before the biases: b2's length comes from it. */
    const bprop_npy_file order[BPROP_NPY_FILES] = {BPROP_NPY_W1, BPROP_NPY_W2, BPROP_NPY_B1,
                                                   BPROP_NPY_B2, BPROP_NPY_MEAN, BPROP_NPY_SCALE};
    for (int i = 0; i < BPROP_NPY_FILES; i++) {
        bprop_npy_file f = order[i];
        if (!s->present[f])
            continue;
        bprop_status st = bp_npy_read(s->path[f], &s->arr[f], err);
        if (st == BPROP_OK)
            st = check_shape(s, f, err);
        if (st != BPROP_OK)
            return st;
    }
    return BPROP_OK;
}

/* A new model holding the arrays, with fresh provenance naming the directory. */
static bprop_status build_model(import_state *s, bprop_model **out, bprop_error *err)
{
    const bp_npy *w1 = &s->arr[BPROP_NPY_W1], *w2 = &s->arr[BPROP_NPY_W2];
    int bias = s->present[BPROP_NPY_B1];
    bprop_model *m = NULL;
    bprop_status st = bprop_model_create(w1->shape[0], w1->shape[1], w2->shape[1], bias, 0, &m, err);
    if (st != BPROP_OK)
        return st;
    const bprop_tensor t[4] = {BPROP_W1, BPROP_B1, BPROP_W2, BPROP_B2};
    for (int f = 0; f < 4; f++)
        if (s->present[f])
            memcpy(bprop_model_tensor(m, t[f]), s->arr[f].data, s->arr[f].count * sizeof(float));
    if (s->present[BPROP_NPY_MEAN] &&
        bprop_model_set_standardization(m, s->arr[BPROP_NPY_MEAN].data, s->arr[BPROP_NPY_SCALE].data) != BPROP_OK) {
        bprop_model_free(m);
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for the standardisation", s->dir);
    }
    snprintf(m->info.data, sizeof m->info.data, "%s", s->dir);
    m->info.config.seed = 0;
    *out = m;
    return BPROP_OK;
}

bprop_status bprop_model_import_npy(const char *dir, bprop_model **out, unsigned *rounded,
                                    bprop_error *err)
{
    if (!dir || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_import_npy: NULL argument");
    *out = NULL;
    if (rounded)
        *rounded = 0;
    import_state s = {.dir = dir};
    bprop_status st = find_files(&s, err);
    if (st == BPROP_OK)
        st = read_arrays(&s, err);
    if (st == BPROP_OK)
        st = build_model(&s, out, err);
    for (int f = 0; st == BPROP_OK && rounded && f < BPROP_NPY_FILES; f++)
        *rounded |= s.arr[f].was_f8 ? 1u << f : 0u;
    import_free(&s);
    return st;
}
