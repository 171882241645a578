/* testutil.h: helpers shared by the Criterion tests (temporary files, synthetic data). */
#ifndef BPROP_TESTUTIL_H
#define BPROP_TESTUTIL_H

#include "bprop.h"

#include <stddef.h>
#include <stdint.h>

/* A fresh temporary directory (mkdtemp under $TMPDIR or /tmp), removed with its files when the
 * test process exits if still there; the caller frees the string. */
char *tu_tmpdir(void);
/* Remove dir and everything in it. */
void tu_remove_dir(const char *dir);
/* dir + "/" + name in a static-free, caller-freed string. */
char *tu_path(const char *dir, const char *name);
/* Write n bytes to path, aborting the test on failure. */
void tu_write_file(const char *path, const void *data, size_t n);
/* Write a NUL-terminated string to path. */
void tu_write_text(const char *path, const char *text);
/* Gaussian blobs: classes well-separated clusters in dim dimensions, n samples, seeded. */
bprop_dataset *tu_blobs(size_t n, size_t dim, size_t classes, uint64_t seed);
/* 1 when Debian's Fashion-MNIST files are installed. */
int tu_have_fashion(void);
/* Bitwise equality of two float arrays. */
int tu_same_bits(const float *a, const float *b, size_t n);

#endif
