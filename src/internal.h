/* internal.h: helpers shared by the library's sources (errors, allocation, RNG); not installed. */
#ifndef BPROP_INTERNAL_H
#define BPROP_INTERNAL_H

#include "bprop.h"

#include <stddef.h>
#include <stdint.h>

/* Alignment of every large buffer: one cache line, and one AVX-512 vector. */
#define BP_ALIGN 64

/* Record a failure in err (when not NULL) with a printf-style message; returns status so callers
 * can write `return bp_fail(err, BPROP_E_IO, "%s: cannot open", path);`. */
bprop_status bp_fail(bprop_error *err, bprop_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* a * b, or 1 (and *out untouched) when the product overflows size_t. */
int bp_mul_overflows(size_t a, size_t b, size_t *out);

/* count * size bytes, zeroed, BP_ALIGN-aligned and rounded up to whole cache lines so that two
 * buffers never share a line; NULL on overflow or failure. Free with bp_free. */
void *bp_alloc(size_t count, size_t size);
void bp_free(void *p);

/* The library's generator: xoshiro256** seeded through splitmix64. Same seed, same stream on
 * every platform. */
typedef struct bp_rng {
    uint64_t s[4];
} bp_rng;

void bp_rng_seed(bp_rng *r, uint64_t seed);
uint64_t bp_rng_next(bp_rng *r);
double bp_rng_uniform(bp_rng *r);        /* [0, 1) with 53 random bits */
double bp_rng_normal(bp_rng *r);         /* standard normal (Box-Muller, one draw per call) */
size_t bp_rng_below(bp_rng *r, size_t n); /* uniform in [0, n), unbiased; n > 0 */
/* Fisher-Yates shuffle of perm[0..n). */
void bp_shuffle(size_t *perm, size_t n, bp_rng *r);

#endif /* BPROP_INTERNAL_H */
