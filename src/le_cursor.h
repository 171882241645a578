/* le_cursor.h: little-endian encoding and decoding through a byte cursor, shared by the model,
 * checkpoint and npy formats (internal). */
#ifndef BPROP_LE_CURSOR_H
#define BPROP_LE_CURSOR_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A position in a byte buffer the caller sized for what it writes or reads. */
typedef struct bp_cursor {
    unsigned char *p;
    size_t pos;
} bp_cursor;

/* The u32 at p, little-endian, without moving any cursor. */
static inline uint32_t bp_le_u32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void bp_put_u32(bp_cursor *c, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        c->p[c->pos++] = (unsigned char)(v >> (8 * i));
}

static inline void bp_put_u64(bp_cursor *c, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        c->p[c->pos++] = (unsigned char)(v >> (8 * i));
}

/* Floats and signed integers travel as their bit patterns (two's complement), so a round trip
 * is exact for every value. */
static inline void bp_put_f32(bp_cursor *c, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    bp_put_u32(c, u);
}

static inline void bp_put_f64(bp_cursor *c, double f)
{
    uint64_t u;
    memcpy(&u, &f, sizeof u);
    bp_put_u64(c, u);
}

static inline void bp_put_i32(bp_cursor *c, int32_t v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    bp_put_u32(c, u);
}

static inline uint32_t bp_get_u32(bp_cursor *c)
{
    uint32_t v = bp_le_u32(c->p + c->pos);
    c->pos += 4;
    return v;
}

static inline uint64_t bp_get_u64(bp_cursor *c)
{
    uint64_t lo = bp_get_u32(c);
    return lo | (uint64_t)bp_get_u32(c) << 32;
}

static inline float bp_get_f32(bp_cursor *c)
{
    uint32_t u = bp_get_u32(c);
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline double bp_get_f64(bp_cursor *c)
{
    uint64_t u = bp_get_u64(c);
    double f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline int32_t bp_get_i32(bp_cursor *c)
{
    uint32_t u = bp_get_u32(c);
    int32_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static inline int64_t bp_get_i64(bp_cursor *c)
{
    uint64_t u = bp_get_u64(c);
    int64_t v;
    memcpy(&v, &u, sizeof v);
    return v;
}

/* n floats to 4n little-endian bytes, and back. */
static inline void bp_floats_to_le(const float *src, size_t n, unsigned char *dst)
{
    bp_cursor c = {dst, 0};
    for (size_t i = 0; i < n; i++)
        bp_put_f32(&c, src[i]);
}

static inline void bp_le_to_floats(const unsigned char *src, size_t n, float *dst)
{
    bp_cursor c = {(unsigned char *)src, 0};
    for (size_t i = 0; i < n; i++)
        dst[i] = bp_get_f32(&c);
}

#endif /* BPROP_LE_CURSOR_H */
