/* npy.h: reading and writing one NumPy .npy array of floats (internal; not installed). */
#ifndef BPROP_NPY_H
#define BPROP_NPY_H

#include "internal.h"

#include <stddef.h>

/* Most dimensions a shape may have (NumPy's own limit, before NumPy 2). */
#define BP_NPY_MAX_DIMS 32
/* Longest header accepted; NumPy itself refuses headers over 10000 bytes by default. */
#define BP_NPY_MAX_HEADER 65536

/* One array as read: C order, every value finite, at least one element. */
typedef struct bp_npy {
    size_t ndim;
    size_t shape[BP_NPY_MAX_DIMS];
    size_t count;  /* product of the shape, >= 1 */
    int was_f8;    /* 1: the file held float64 ('<f8'), rounded to float32 here */
    float *data;   /* (count) owned, BP_ALIGN-aligned; free with bp_npy_free */
} bp_npy;

/* The parts of a header that matter, as parsed from its dictionary literal. */
typedef struct bp_npy_header {
    char descr[16];    /* the dtype string ("<f4"); "" when not a plain string */
    int fortran_order;
    size_t ndim;
    size_t shape[BP_NPY_MAX_DIMS];
} bp_npy_header;

/* Parse the header dictionary (n bytes of text after the length field) as the Python literal it
 * is: keys 'descr', 'fortran_order' and 'shape' each exactly once, in any order, any whitespace,
 * single or double quotes, a trailing comma; only padding whitespace after the closing brace.
 * @return BPROP_E_FORMAT naming path and the header byte that is wrong. */
bprop_status bp_npy_parse_header(const char *text, size_t n, const char *path, bp_npy_header *h,
                                 bprop_error *err);

/* Read path: format versions 1.0, 2.0 and 3.0; dtype '<f4' or '<f8' (rounded to float32); C
 * order; data exactly as long as the shape says; every value finite (also after rounding).
 * Anything else fails with one line naming path and what is wrong; *out is then empty. */
bprop_status bp_npy_read(const char *path, bp_npy *out, bprop_error *err);
void bp_npy_free(bp_npy *a);

/* "(3, 4)", "(5,)": a shape as NumPy prints it, into buf (truncated with "..." if too long). */
void bp_npy_shape_text(const size_t *shape, size_t ndim, char *buf, size_t size);

/* Write data, (shape) in C order, to path as '<f4' in format 1.0 (header padded to a multiple
 * of 64 bytes), atomically through bp_atomic_*: path is replaced only by a complete file. */
bprop_status bp_npy_write(const char *path, const float *data, size_t ndim, const size_t *shape,
                          bprop_error *err);

#endif /* BPROP_NPY_H */
