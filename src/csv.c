/* csv.c: loading comma-separated data (plain or gzip) with line-numbered error messages. */
#include "internal.h"
#include "reader.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* First size of the line buffer; it doubles for longer lines. */
#define CSV_CHUNK ((size_t)1 << 20)
/* Rows of the first row block; the block doubles as rows arrive. */
#define CSV_FIRST_ROWS 256
/* Longest field excerpt quoted in a message. */
#define CSV_EXCERPT 40

/* ---- lines -------------------------------------------------------------------------------- */

/* Splits the reader's bytes into NUL-terminated lines without copying them. */
typedef struct line_reader {
    bp_reader in;
    char *buf; /* (cap + 1): one spare byte terminates a last line without '\n' */
    size_t cap;
    size_t start; /* first byte of the next line */
    size_t end;   /* bytes held */
    size_t scan;  /* bytes from start on already searched for '\n' */
    int eof;
} line_reader;

/* Fill the buffer after moving the unfinished line to its front (doubling it when that line
 * already fills it). */
static bprop_status lines_refill(line_reader *lr, bprop_error *err)
{
    size_t keep = lr->end - lr->start;
    memmove(lr->buf, lr->buf + lr->start, keep);
    lr->start = 0;
    lr->end = lr->scan = keep;
    if (keep == lr->cap) {
        if (lr->cap > (SIZE_MAX - 1) / 2)
            return bp_fail(err, BPROP_E_SIZE, "%s: a line is too long", lr->in.path);
        char *grown = realloc(lr->buf, 2 * lr->cap + 1);
        if (!grown)
            return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for a line of %zu bytes",
                           lr->in.path, keep);
        lr->buf = grown;
        lr->cap *= 2;
    }
    size_t got;
    bprop_status s = bp_reader_read(&lr->in, lr->buf + lr->end, lr->cap - lr->end, &got, err);
    lr->end += got;
    lr->eof = s == BPROP_OK && got == 0;
    return s;
}

/* The next line (its '\n' replaced by a NUL) in *line and *len; *line = NULL at the end. */
static bprop_status lines_next(line_reader *lr, char **line, size_t *len, bprop_error *err)
{
    for (;;) {
        char *nl = memchr(lr->buf + lr->scan, '\n', lr->end - lr->scan);
        if (nl || (lr->eof && lr->start < lr->end)) {
            char *first = lr->buf + lr->start;
            char *stop = nl ? nl : lr->buf + lr->end;
            *stop = '\0';
            *line = first;
            *len = (size_t)(stop - first);
            lr->start = lr->scan = (size_t)(stop - lr->buf) + (nl != NULL);
            return BPROP_OK;
        }
        if (lr->eof) {
            *line = NULL;
            return BPROP_OK;
        }
        lr->scan = lr->end;
        bprop_status s = lines_refill(lr, err);
        if (s != BPROP_OK)
            return s;
    }
}

/* ---- fields ------------------------------------------------------------------------------- */

static const char *skip_blanks(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A field ends at a comma or at the end of its line (a NUL; lines with inner NULs are refused). */
static int at_field_end(const char *p) { return *p == ',' || *p == '\0'; }

/* Copy the field starting at p, trimmed and shortened, into buf for a message. */
static const char *excerpt(const char *p, char *buf, size_t cap)
{
    p = skip_blanks(p);
    size_t n = 0;
    while (p[n] != ',' && p[n] != '\0')
        n++;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    if (n < cap) {
        memcpy(buf, p, n);
        buf[n] = '\0';
    } else {
        memcpy(buf, p, cap - 4);
        memcpy(buf + cap - 4, "...", 4);
    }
    return buf;
}

/* Short decimals without an exponent ("17", "-0.25") parsed exactly as strtof would: a mantissa
 * of at most 2^24 and a power of ten of at most 1e10 are both exact floats, so one IEEE division
 * gives the correctly rounded value. Anything else returns 0 and goes to strtof. */
static int parse_short_decimal(const char *p, const char **endp, float *out)
{
#if FLT_EVAL_METHOD == 0
    static const float pow10[] = {1e0f, 1e1f, 1e2f, 1e3f, 1e4f, 1e5f,
                                  1e6f, 1e7f, 1e8f, 1e9f, 1e10f};
    const uint32_t limit = (uint32_t)1 << 24;
    int neg = *p == '-';
    p += *p == '-' || *p == '+';
    uint32_t m = 0;
    int digits = 0, frac = -1;
    for (;; p++) {
        if (*p == '.' && frac < 0) {
            frac = 0;
            continue;
        }
        if (*p < '0' || *p > '9')
            break;
        m = m * 10 + (uint32_t)(*p - '0');
        digits++;
        frac += frac >= 0;
        if (m > limit || frac > 10)
            return 0;
    }
    if (digits == 0 || !(at_field_end(p) || *p == ' ' || *p == '\t'))
        return 0;
    float v = (float)m / pow10[frac > 0 ? frac : 0];
    *out = neg ? -v : v;
    *endp = p;
    return 1;
#else
    (void)p, (void)endp, (void)out;
    return 0;
#endif
}

/* 1 when the field at p is a number (strtod's whole grammar, nan and inf included). */
static int field_is_number(const char *p)
{
    char *end;
    p = skip_blanks(p);
    strtod(p, &end);
    return end != p && at_field_end(skip_blanks(end));
}

/* ---- rows --------------------------------------------------------------------------------- */

/* What the loader knows and has collected so far. */
typedef struct csv_state {
    const char *path;
    int labelled;
    size_t classes; /* requested; 0: infer */
    size_t fields;  /* per line, fixed by the first line */
    size_t dim;
    size_t rows, cap; /* rows held and room for */
    float *x;         /* (cap, dim) */
    int32_t *y;       /* (cap) when labelled */
    int32_t top;      /* largest label seen */
} csv_state;

static bprop_status rows_reserve(csv_state *st, bprop_error *err)
{
    if (st->rows < st->cap)
        return BPROP_OK;
    size_t cap = st->cap ? 2 * st->cap : CSV_FIRST_ROWS, cells, bytes;
    if (cap < st->cap || bp_mul_overflows(cap, st->dim, &cells) ||
        bp_mul_overflows(cells, sizeof(float), &bytes))
        return bp_fail(err, BPROP_E_SIZE, "%s: too many rows (%zu of %zu features)", st->path,
                       st->rows, st->dim);
    float *x = realloc(st->x, bytes);
    if (!x)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory after %zu rows", st->path, st->rows);
    st->x = x;
    if (st->labelled) {
        int32_t *y = realloc(st->y, cap * sizeof *y);
        if (!y)
            return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory after %zu rows", st->path,
                           st->rows);
        st->y = y;
    }
    st->cap = cap;
    return BPROP_OK;
}

static bprop_status parse_label(csv_state *st, const char *p, size_t line, const char **endp,
                                bprop_error *err)
{
    char text[CSV_EXCERPT];
    const char *q = skip_blanks(p);
    int neg = *q == '-';
    q += *q == '-' || *q == '+';
    const char *digits = q;
    uint64_t v = 0;
    for (; *q >= '0' && *q <= '9'; q++)
        v = v > INT32_MAX ? v : v * 10 + (uint64_t)(*q - '0');
    if (q == digits || !at_field_end(skip_blanks(q)))
        return bp_fail(err, BPROP_E_FORMAT, "%s: line %zu, field 1: label '%s' is not an integer",
                       st->path, line, excerpt(p, text, sizeof text));
    if (neg && v != 0)
        return bp_fail(err, BPROP_E_LABEL, "%s: line %zu: label %s is negative", st->path, line,
                       excerpt(p, text, sizeof text));
    if (v > INT32_MAX)
        return bp_fail(err, BPROP_E_LABEL, "%s: line %zu: label %s is too large", st->path, line,
                       excerpt(p, text, sizeof text));
    if (st->classes != 0 && v >= st->classes)
        return bp_fail(err, BPROP_E_LABEL, "%s: line %zu: label %u is not below classes %zu",
                       st->path, line, (unsigned)v, st->classes);
    st->y[st->rows] = (int32_t)v;
    st->top = (int32_t)v > st->top ? (int32_t)v : st->top;
    *endp = skip_blanks(q);
    return BPROP_OK;
}

static bprop_status parse_feature(const csv_state *st, const char *p, size_t line, size_t field,
                                  float *out, const char **endp, bprop_error *err)
{
    char text[CSV_EXCERPT];
    const char *q = skip_blanks(p), *end;
    if (!parse_short_decimal(q, &end, out)) {
        char *e;
        *out = strtof(q, &e);
        end = e;
    }
    if (end == q || !at_field_end(end = skip_blanks(end)))
        return bp_fail(err, BPROP_E_FORMAT, "%s: line %zu, field %zu: '%s' is not a number",
                       st->path, line, field, excerpt(p, text, sizeof text));
    if (!isfinite(*out))
        return bp_fail(
            err, BPROP_E_NONFINITE,
            "%s: line %zu, field %zu: '%s' is not finite (NaN, infinite or beyond float range)",
            st->path, line, field, excerpt(p, text, sizeof text));
    *endp = end;
    return BPROP_OK;
}

static size_t count_fields(const char *line, size_t len)
{
    size_t n = 1;
    for (const char *p = line, *end = line + len; (p = memchr(p, ',', (size_t)(end - p))); p++)
        n++;
    return n;
}

/* Parse one data line into the next row. The field count is checked as the fields go by; on
 * any failure a wrong count is reported in preference to the field that tripped over it. */
static bprop_status parse_row(csv_state *st, const char *line, size_t len, size_t lineno,
                              bprop_error *err)
{
    bprop_status s = rows_reserve(st, err);
    if (s != BPROP_OK)
        return s;
    const char *p = line;
    size_t field = 1;
    int ragged = 0;
    if (st->labelled) {
        s = parse_label(st, p, lineno, &p, err);
        field++;
    }
    float *row = st->x + st->rows * st->dim;
    for (size_t k = 0; s == BPROP_OK && k < st->dim; k++, field++) {
        if (field > 1) {
            if (*p != ',') { /* the previous field ended the line: too few fields */
                ragged = 1;
                break;
            }
            p++;
        }
        s = parse_feature(st, p, lineno, field, &row[k], &p, err);
    }
    ragged = ragged || (s == BPROP_OK && *p != '\0'); /* a comma after the last field */
    if (ragged || s != BPROP_OK) {
        size_t found = count_fields(line, len);
        if (ragged || found != st->fields)
            return bp_fail(err, BPROP_E_FORMAT, "%s: line %zu: expected %zu fields, found %zu",
                           st->path, lineno, st->fields, found);
        return s;
    }
    st->rows++;
    return BPROP_OK;
}

/* Handle one non-empty line: the first fixes the field count and may be a header. */
static bprop_status take_line(csv_state *st, char *line, size_t len, size_t lineno,
                              bprop_error *err)
{
    if (strlen(line) != len)
        return bp_fail(err, BPROP_E_FORMAT, "%s: line %zu: contains a NUL byte (binary data?)",
                       st->path, lineno);
    if (st->fields == 0) {
        size_t fields = count_fields(line, len);
        if (st->labelled && fields < 2)
            return bp_fail(err, BPROP_E_FORMAT,
                           "%s: line %zu: a labelled row needs a label and at least one feature, "
                           "found %zu field",
                           st->path, lineno, fields);
        st->fields = fields;
        st->dim = fields - (st->labelled != 0);
        /* A header has a field that is neither empty nor a number. */
        for (const char *p = line;; p++) {
            const char *f = skip_blanks(p);
            if (!at_field_end(f) && !field_is_number(f))
                return BPROP_OK;
            if (!(p = strchr(p, ',')))
                break;
        }
    }
    return parse_row(st, line, len, lineno, err);
}

/* Read every line of an opened file into st. */
static bprop_status read_lines(line_reader *lr, csv_state *st, bprop_error *err)
{
    size_t lineno = 0, blank = 0; /* blank: first empty line seen, 0 for none */
    for (;;) {
        char *line;
        size_t len;
        bprop_status s = lines_next(lr, &line, &len, err);
        if (s != BPROP_OK || !line)
            return s;
        lineno++;
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3; /* a UTF-8 byte-order mark */
            len -= 3;
        }
        while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = '\0';
        if (len == 0) {
            blank = blank ? blank : lineno;
            continue;
        }
        if (blank)
            return bp_fail(
                err, BPROP_E_FORMAT,
                "%s: line %zu: empty line inside the data (only trailing empty lines are allowed)",
                st->path, blank);
        s = take_line(st, line, len, lineno, err);
        if (s != BPROP_OK)
            return s;
    }
}

/* Move the collected rows into a new, aligned dataset. */
static bprop_status finish(const csv_state *st, bprop_dataset **out, bprop_error *err)
{
    if (st->rows == 0)
        return bp_fail(err, BPROP_E_FORMAT, "%s: no data rows%s", st->path,
                       st->fields ? " (only a header line)" : " (the file is empty)");
    size_t classes = !st->labelled ? 0 : st->classes ? st->classes : (size_t)st->top + 1;
    bprop_status s = bprop_dataset_alloc(st->rows, st->dim, classes, st->labelled, out, err);
    if (s != BPROP_OK)
        return s;
    memcpy((*out)->x, st->x, st->rows * st->dim * sizeof(float));
    if (st->labelled)
        memcpy((*out)->y, st->y, st->rows * sizeof(int32_t));
    return BPROP_OK;
}

bprop_status bprop_dataset_load_csv(const char *path, int labelled, size_t classes,
                                    bprop_dataset **out, bprop_error *err)
{
    if (!out)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_csv: out is NULL");
    *out = NULL;
    if (!path)
        return bp_fail(err, BPROP_E_ARG, "bprop_dataset_load_csv: no file given");
    csv_state st = {.path = path, .labelled = labelled != 0, .classes = classes};
    line_reader lr = {.cap = CSV_CHUNK};
    bprop_status s = bp_reader_open(&lr.in, path, err);
    if (s == BPROP_OK && !(lr.buf = malloc(lr.cap + 1)))
        s = bp_fail(err, BPROP_E_NOMEM, "%s: out of memory for a read buffer", path);
    if (s == BPROP_OK)
        s = read_lines(&lr, &st, err);
    bp_reader_close(&lr.in);
    free(lr.buf);
    if (s == BPROP_OK)
        s = finish(&st, out, err);
    free(st.x);
    free(st.y);
    return s;
}
