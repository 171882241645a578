/* data_hash.c: bprop_dataset_hash, the one data hash (checkpoints record it, bprop-mpi compares it
 * across ranks), and bprop_data_describe. Its values are stored in checkpoint files: the
 * algorithm below is part of the file format (docs/formats.md, "The data hash") and must not
 * change. */
#include "internal.h"
#include "rows.h"

#include <string.h>

/* Four independent lanes over 32-bit words (the features' bit patterns, then the labels), word i
 * going to lane i mod 4; each step is a bijection of its lane for a fixed word, so changing any
 * single word always changes the hash. */
typedef struct lanes {
    uint64_t lane[4];
    size_t i;
} lanes;

static uint64_t rotl64(uint64_t x, int k) { return x << k | x >> (64 - k); }

static void hash_word(lanes *h, uint32_t w)
{
    uint64_t *l = &h->lane[h->i++ & 3];
    *l = (rotl64(*l, 23) ^ ((uint64_t)w * 0x9E3779B97F4A7C15ull)) * 0xFF51AFD7ED558CCDull;
}

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Features converted per piece of a byte row: a fixed buffer, whatever the row's length. */
#define HASH_PIECE 1024

static void hash_floats(lanes *h, const float *x, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        uint32_t u;
        memcpy(&u, &x[k], sizeof u);
        hash_word(h, u);
    }
}

/* The bit patterns of the features as the trainer reads them, row-major: byte features hash as
 * the floats they stand for (standardised when the set is), so a set hashes the same whichever
 * way it is stored. */
static void hash_features(lanes *h, const bprop_dataset *d)
{
    if (d->x) {
        hash_floats(h, d->x, d->n * d->dim);
        return;
    }
    if (!d->x8)
        return;
    float piece[HASH_PIECE];
    const bp_src src = bp_src_dataset(d);
    for (size_t i = 0; i < d->n; i++)
        for (size_t k0 = 0; k0 < d->dim; k0 += HASH_PIECE) {
            bp_src part = src;
            part.D = d->dim - k0 < HASH_PIECE ? d->dim - k0 : HASH_PIECE;
            part.x8 = src.x8 + i * d->dim + k0;
            part.mean = src.mean ? src.mean + k0 : NULL;
            part.scale = src.scale ? src.scale + k0 : NULL;
            bp_src_convert(&part, 0, piece);
            hash_floats(h, piece, part.D);
        }
}

uint64_t bprop_dataset_hash(const bprop_dataset *d)
{
    if (!d)
        return 0;
    lanes h = {{1, 2, 3, 4}, 0};
    hash_features(&h, d);
    for (size_t k = 0; d->y && k < d->n; k++)
        hash_word(&h, (uint32_t)d->y[k]);
    uint64_t z = mix64((uint64_t)d->n) ^ mix64((uint64_t)d->dim + 1) ^ mix64((uint64_t)d->classes + 2);
    for (int l = 0; l < 4; l++)
        z = mix64(z ^ h.lane[l]);
    return z;
}

bprop_data_desc bprop_data_describe(const bprop_dataset *d)
{
    bprop_data_desc s = {0, 0, 0, 0};
    if (d)
        s = (bprop_data_desc){d->n, d->dim, d->classes, bprop_dataset_hash(d)};
    return s;
}
