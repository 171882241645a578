/* testutil.h: helpers shared by the Criterion tests (temporary files, synthetic data, running programs). */
#ifndef BPROP_TESTUTIL_H
#define BPROP_TESTUTIL_H

#include "bprop.h"

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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

/* A progress callback's state that sets a trainer's cancel flag once step `at` (1-based) is
 * done. The trainer reads the flag after each step's pass, so it stops after step at + 1. */
typedef struct tu_stopper {
    volatile sig_atomic_t *flag;
    size_t at;
} tu_stopper;
/* The progress callback for a tu_stopper (user). */
int tu_stop_at(void *user, size_t step, size_t steps, double loss, double acc);

/* The first n samples of d (float features) as CSV at path: with labelled, the label first;
 * values as "%.6g". */
void tu_write_csv(const char *path, const bprop_dataset *d, size_t n, int labelled);

/* The low `bytes` bytes of v at p, little-endian; and the value of `bytes` such bytes. */
void tu_put_le(unsigned char *p, uint64_t v, int bytes);
uint64_t tu_get_le(const unsigned char *p, int bytes);

/* An IDX file's bytes in a caller-freed buffer of *len bytes: magic, the nd dimensions
 * (big-endian 32-bit), then plen payload bytes (which may disagree with the dimensions). */
unsigned char *tu_idx_bytes(uint32_t magic, const uint32_t *dims, unsigned nd,
                            const unsigned char *payload, size_t plen, size_t *len);

/* The whole file, NUL-terminated (binary files too), in a caller-freed buffer; *len, when not
 * NULL, gets its size. Fails the test when the file cannot be opened. */
char *tu_read_file(const char *path, size_t *len);

/* How tu_spawn runs a program: where its output goes (files created or truncated), its working
 * directory (NULL: this one) and its OMP_NUM_THREADS (NULL: inherited). */
typedef struct tu_spawn_opts {
    const char *out, *err;
    const char *dir;
    const char *omp_threads;
} tu_spawn_opts;

/* A finished program: its exit status (128 + the signal when a signal ended it) and what it
 * wrote to stdout and stderr (caller-freed, tu_run_free). */
typedef struct tu_run {
    int status;
    char *out, *err;
} tu_run;

/* Start argv[0] (a path, or a name looked up in PATH) with argv (NULL-terminated), as o says;
 * returns its pid (fails the test when fork fails). */
pid_t tu_spawn(const char *const *argv, const tu_spawn_opts *o);
/* Wait for pid, started by tu_spawn with the same o, and read its output files (an out of NULL
 * reads as ""). */
tu_run tu_finish(pid_t pid, const tu_spawn_opts *o);
void tu_run_free(tu_run *r);

#endif
