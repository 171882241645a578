/* rng.c: the library's seeded random number generator (xoshiro256** with splitmix64 seeding). */
#include "internal.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void bp_rng_seed(bp_rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

uint64_t bp_rng_next(bp_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double bp_rng_uniform(bp_rng *r) { return (double)(bp_rng_next(r) >> 11) * 0x1.0p-53; }

double bp_rng_normal(bp_rng *r)
{
    /* 1 - u lies in (0, 1], so the log is finite. */
    double u1 = 1.0 - bp_rng_uniform(r);
    double u2 = bp_rng_uniform(r);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

size_t bp_rng_below(bp_rng *r, size_t n)
{
    /* Rejection sampling: drop the top partial range so every value is equally likely. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t v;
    do
        v = bp_rng_next(r);
    while (v >= limit);
    return (size_t)(v % n);
}

void bp_shuffle(size_t *perm, size_t n, bp_rng *r)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = bp_rng_below(r, i);
        size_t tmp = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = tmp;
    }
}
