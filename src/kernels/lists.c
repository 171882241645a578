/* lists.c: the zero-input lists by which the kernels skip zero pixels, compiled once for every set. */
/* Each block's lists are built here from per-sample bitmaps (the set's nz_bitmaps, vector code)
 * and cut into the set's tiles (sc->k's fwd_mr and bwd_mr); the set's vector code then reads
 * them from the scratch. The lists decide only which elements a tile computes, never the order
 * of one element's terms, so they change no bit.
 *
 * Two instances of the builders come out of this one file: the x86-64 baseline, and one compiled
 * for POPCNT and AVX2 (target attribute), run by the sets whose CPUs have them (BP_LISTS_AVX2).
 * The forward grouping counts bits about 10,000 times a block, and without POPCNT each count is
 * a libgcc call (__popcountdi2); both instances build the same lists. The tile heights the
 * backward lists copy by are constants in each instance (a switch below), so that each copy is
 * one fixed-size move and each division a shift, as in a set's own code. The AVX2 instance
 * builds the lists of 4-pixel tiles tile by tile from transposed sample masks
 * (bwd_lists_tiles4), the baseline sample by sample; both give the same lists. */
#include "kernels.h"

#include <string.h>

#define INLINE static inline __attribute__((always_inline))

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_INSTANCE 1
#define AVX2_INSTANCE __attribute__((target("popcnt,avx2")))
#include <immintrin.h>
#endif

/* Widths of a net (or of a thread's view) from which the kernels skip zero inputs, and from
 * which the forward lists group their tiles greedily. The lists cost a fixed amount per sample
 * (bitmaps, lists, the backward's input copy: about 1,500 cycles on AVX2) and save a share of
 * the FMAs, which grow with the width; below SPARSE_MIN_H every pixel of every sample is
 * computed, with the same bits (a zero input adds an exact zero). Greedy grouping costs a few
 * hundred operations per sample more. */
#ifndef SPARSE_MIN_H
#define SPARSE_MIN_H 40
#endif
#define GROUP_MIN_H 64
/* Candidates a tile considers for each of its samples after the first. */
#define GROUP_WINDOW 12

/* ---- the set-bit table --------------------------------------------------------------------- */

/* Bits of an 8-bit value v: how many of its bits 0..i are set. */
#define BIT(v, i) (((v) >> (i)) & 1)
#define UPTO0(v) BIT(v, 0)
#define UPTO1(v) (UPTO0(v) + BIT(v, 1))
#define UPTO2(v) (UPTO1(v) + BIT(v, 2))
#define UPTO3(v) (UPTO2(v) + BIT(v, 3))
#define UPTO4(v) (UPTO3(v) + BIT(v, 4))
#define UPTO5(v) (UPTO4(v) + BIT(v, 5))
#define UPTO6(v) (UPTO5(v) + BIT(v, 6))
#define UPTO7(v) (UPTO6(v) + BIT(v, 7))
/* The position of v's set bit number n (from 0): how many positions i have at most n set bits
 * in 0..i; 0 when v has no bit number n. */
#define POS(v, n)                                                                              \
    (UPTO7(v) > (n) ? (UPTO0(v) <= (n)) + (UPTO1(v) <= (n)) + (UPTO2(v) <= (n)) +              \
                          (UPTO3(v) <= (n)) + (UPTO4(v) <= (n)) + (UPTO5(v) <= (n)) +          \
                          (UPTO6(v) <= (n))                                                    \
                    : 0)
#define ROW(v) POS(v, 0), POS(v, 1), POS(v, 2), POS(v, 3), POS(v, 4), POS(v, 5), POS(v, 6), POS(v, 7)
#define ROWS4(v) ROW(v), ROW(v + 1), ROW(v + 2), ROW(v + 3)
#define ROWS16(v) ROWS4(v), ROWS4(v + 4), ROWS4(v + 8), ROWS4(v + 12)
#define ROWS64(v) ROWS16(v), ROWS16(v + 16), ROWS16(v + 32), ROWS16(v + 48)

/* set_bits' table: row v (8 bytes) holds the positions of v's set bits in increasing order,
 * zeros after. */
static const uint8_t bit_pos[256 * 8] = {ROWS64(0), ROWS64(64), ROWS64(128), ROWS64(192)};

/* ---- forward: for each tile of samples, the pixels non-zero in any of them ----------------- */

/* Whether the bitmaps of nb samples (nzb (nb, NZ_WORDS(D))) have every pixel set: a dense block,
 * with no zero input to skip. A sample's last word holds D - 64 * (words - 1) bits and zeros
 * above them. Stops at the first zero: on pixels, mostly in the first sample's first word. */
static int all_nonzero(const uint64_t *nzb, size_t nb, size_t D)
{
    if (nb == 0 || D == 0)
        return 0;
    const size_t nw = NZ_WORDS(D), tail = D - 64 * (nw - 1);
    const uint64_t ones = ~UINT64_C(0), last = tail == 64 ? ones : (UINT64_C(1) << tail) - 1;
    for (size_t s = 0; s < nb; s++, nzb += nw) {
        uint64_t all = ones;
        for (size_t w = 0; w + 1 < nw; w++)
            all &= nzb[w];
        if (all != ones || nzb[nw - 1] != last)
            return 0;
    }
    return 1;
}

/* Dense lists, for a narrow net or a dense block: every pixel for every tile (fwd_k's first D
 * entries, read by every tile), samples in block order. The bitmaps (nz_n) are the caller's. */
static void fwd_lists_dense(const float *const *xr, size_t nb, size_t D, bp_scratch *sc)
{
    for (size_t k = 0; k < D; k++)
        sc->fwd_k[k] = (uint32_t)k;
    sc->fwd_kstep = 0;
    for (size_t i = 0; i < nb; i++) {
        sc->fwd_rows[i] = (uint8_t)i;
        sc->fwd_xr[i] = xr[i];
    }
    for (size_t t = 0; t * sc->k->fwd_mr < nb; t++)
        sc->fwd_n[t] = (uint32_t)D;
}

/* Pixels set in b and not in u, over nw words. Four counts side by side: the grouping calls
 * this about 700 times a block, and one chain of adds made each word wait for the last. */
INLINE size_t new_bits(const uint64_t *b, const uint64_t *u, size_t nw)
{
    size_t n0 = 0, n1 = 0, n2 = 0, n3 = 0, w = 0;
    for (; w + 4 <= nw; w += 4) {
        n0 += (size_t)__builtin_popcountll(b[w] & ~u[w]);
        n1 += (size_t)__builtin_popcountll(b[w + 1] & ~u[w + 1]);
        n2 += (size_t)__builtin_popcountll(b[w + 2] & ~u[w + 2]);
        n3 += (size_t)__builtin_popcountll(b[w + 3] & ~u[w + 3]);
    }
    for (; w < nw; w++)
        n0 += (size_t)__builtin_popcountll(b[w] & ~u[w]);
    return n0 + n1 + n2 + n3;
}

typedef uint8_t pos8 __attribute__((vector_size(8)));
typedef uint32_t idx8 __attribute__((vector_size(32)));

/* The positions of the set bits of b (nw words), in increasing order, into out; returns how
 * many. A byte at a time through bit_pos (each byte value's set-bit positions): one 8-wide
 * store per byte instead of a loop trip per bit, whose exit the branch predictor misses once
 * a word. out needs room for 8 entries past the count (the last stores' spill). */
INLINE size_t set_bits(const uint64_t *b, size_t nw, uint32_t *out)
{
    size_t n = 0;
    for (size_t w = 0; w < nw; w++)
        for (unsigned j = 0; j < 64; j += 8) {
            const unsigned byte = (unsigned)(b[w] >> j) & 0xffu;
            pos8 p;
            memcpy(&p, bit_pos + 8 * byte, sizeof p);
            const idx8 k = __builtin_convertvector(p, idx8) + (uint32_t)(w * 64 + j);
            memcpy(out + n, &k, sizeof k);
            n += (size_t)__builtin_popcount(byte);
        }
    return n;
}

/* left[0..nb): the samples ordered by their count of non-zero pixels (a stable insertion sort). */
INLINE void order_by_count(const uint64_t *nzb, size_t nb, size_t nw, uint8_t *left)
{
    uint32_t count[BP_BLOCK];
    for (size_t i = 0; i < nb; i++) {
        count[i] = 0;
        for (size_t w = 0; w < nw; w++)
            count[i] += (uint32_t)__builtin_popcountll(nzb[i * nw + w]);
        size_t p = i;
        for (; p > 0 && count[left[p - 1]] > count[i]; p--)
            left[p] = left[p - 1];
        left[p] = (uint8_t)i;
    }
}

/* For each tile of fwd_mr samples, the pixels that are non-zero in at least one of them, in
 * increasing order, from the bitmaps in sc->nzb. A tile computes every pixel of its list for
 * all its samples, so the samples are grouped to keep the unions small: by their count of
 * non-zero pixels, and for a wide net (H >= GROUP_MIN_H) greedily: each tile starts from the
 * sample with the fewest non-zero pixels left, then fwd_mr - 1 times takes the one of the next
 * GROUP_WINDOW that adds the fewest new pixels to its union (the first on a tie). On
 * Fashion-MNIST AVX2's 6-sample tiles keep 66% of the pixels instead of 77% (count order) or
 * 84% (batch order). */
INLINE void fwd_group(const float *const *xr, size_t nb, size_t D, size_t H, bp_scratch *sc)
{
    const size_t nw = NZ_WORDS(D), window = H >= GROUP_MIN_H ? GROUP_WINDOW : 1;
    const size_t tile = sc->k->fwd_mr;
    const uint64_t *nzb = sc->nzb;
    uint8_t left[BP_BLOCK]; /* samples not yet in a tile, by count */
    order_by_count(nzb, nb, nw, left);
    uint64_t *u = sc->fwd_u; /* (nw) the tile's union */
    size_t nleft = nb;
    for (size_t r = 0, t = 0; r < nb; r += tile, t++) {
        const size_t mr = nb - r < tile ? nb - r : tile;
        for (size_t i = 0; i < mr; i++) {
            size_t best = 0; /* position in left[] */
            if (i > 0) {
                size_t best_new = SIZE_MAX;
                for (size_t c = 0; c < nleft && c < window; c++) {
                    const size_t nn = new_bits(nzb + (size_t)left[c] * nw, u, nw);
                    if (nn < best_new) {
                        best_new = nn;
                        best = c;
                    }
                }
            }
            const size_t s = left[best];
            memmove(left + best, left + best + 1, (nleft - best - 1) * sizeof *left);
            nleft--;
            sc->fwd_rows[r + i] = (uint8_t)s;
            sc->fwd_xr[r + i] = xr[s];
            for (size_t w = 0; w < nw; w++)
                u[w] = (i > 0 ? u[w] : 0) | nzb[s * nw + w];
        }
        sc->fwd_n[t] = (uint32_t)set_bits(u, nw, sc->fwd_k + t * D);
    }
}

static void fwd_group_base(const float *const *xr, size_t nb, size_t D, size_t H, bp_scratch *sc)
{
    fwd_group(xr, nb, D, H, sc);
}

#if HAVE_AVX2_INSTANCE
AVX2_INSTANCE static void fwd_group_avx2(const float *const *xr, size_t nb, size_t D, size_t H,
                                         bp_scratch *sc)
{
    fwd_group(xr, nb, D, H, sc);
}
#endif

/* The bitmaps are left for the backward pass of the same rows (also a dense block's: the
 * backward reads from them that the block is dense). A block with no zero input (standardised
 * inputs) takes the dense lists: its unions would list every pixel anyway, and the grouping
 * would only cost time; the tiles' chains are the same either way. */
void bp_fwd_lists(bp_scratch *sc, const float *const *xr, size_t nb, size_t D, size_t H)
{
    if (H < SPARSE_MIN_H) {
        fwd_lists_dense(xr, nb, D, sc);
        sc->nz_n = 0;
        return;
    }
    sc->k->nz_bitmaps(xr, nb, D, sc->nzb);
    memcpy(sc->nz_rows, xr, nb * sizeof *xr);
    sc->nz_n = nb;
    if (all_nonzero(sc->nzb, nb, D)) {
        fwd_lists_dense(xr, nb, D, sc);
        return;
    }
    sc->fwd_kstep = D;
#if HAVE_AVX2_INSTANCE
    if (sc->k->lists == BP_LISTS_AVX2) {
        fwd_group_avx2(xr, nb, D, H, sc);
        return;
    }
#endif
    fwd_group_base(xr, nb, D, H, sc);
}

/* ---- backward: for each tile of pixels, the samples non-zero in it --------------------------- */

/* Bits [k, k + len) of a bitmap (len < 64), in the low bits. */
INLINE uint64_t bits_at(const uint64_t *b, size_t k, size_t len)
{
    const size_t w = k / 64, o = k % 64;
    uint64_t v = b[w] >> o;
    if (o + len > 64)
        v |= b[w + 1] << (64 - o);
    return v & ((UINT64_C(1) << len) - 1);
}

/* For pixel tile t (len pixels from k; tiles mr floats apart in bwd_x), the samples with a
 * non-zero pixel in it, and their pixel values in list order (len floats each): the tiles then
 * read the inputs as one sequential stream per panel, instead of gathering them from a row per
 * sample on every panel. */
INLINE void bwd_list(const float *const *xr, size_t nb, size_t nw, size_t k, size_t len,
                     size_t mr, size_t t, bp_scratch *sc)
{
    size_t n = 0;
    uint8_t *ss = sc->bwd_s + t * BP_BLOCK;
    float *xv = sc->bwd_x + t * BP_BLOCK * mr;
    for (size_t s = 0; s < nb; s++) {
        ss[n] = (uint8_t)s;
        memcpy(xv + n * len, xr[s] + k, len * sizeof(float));
        n += bits_at(sc->nzb + s * nw, k, len) != 0;
    }
    sc->bwd_n[t] = (uint32_t)n;
}

/* The same lists, sample by sample, for tiles that never straddle a bitmap word (mr divides 64
 * and D): each word's tiles with a non-zero pixel come out of a few bit operations, and only
 * the (sample, tile) pairs that are listed are visited. Samples enter each list in increasing
 * order, as above. */
INLINE void bwd_lists_by_sample(const float *const *xr, size_t nb, size_t D, size_t mr,
                                bp_scratch *sc)
{
    const size_t nw = NZ_WORDS(D), tpw = 64 / mr; /* tiles per word */
    uint64_t lead = 0; /* the lowest bit of each tile's group of mr bits */
    for (size_t i = 0; i < tpw; i++)
        lead |= UINT64_C(1) << (i * mr);
    /* Locals, so that the stores below are not taken to change them. */
    uint32_t *restrict cnt = sc->bwd_n;
    uint8_t *restrict ss = sc->bwd_s;
    float *restrict xv = sc->bwd_x;
    const uint64_t *restrict nzb = sc->nzb;
    memset(cnt, 0, D / mr * sizeof *cnt);
    for (size_t s = 0; s < nb; s++) {
        const float *x = xr[s];
        for (size_t w = 0; w < nw; w++) {
            const uint64_t b = nzb[s * nw + w];
            uint64_t any = 0; /* bit i * mr: tile i of the word has a non-zero pixel */
            for (size_t r = 0; r < mr; r++)
                any |= b >> r;
            for (any &= lead; any; any &= any - 1) {
                const size_t t = w * tpw + (size_t)__builtin_ctzll(any) / mr;
                const size_t slot = t * BP_BLOCK + cnt[t]++;
                ss[slot] = (uint8_t)s;
                memcpy(xv + slot * mr, x + t * mr, mr * sizeof(float));
            }
        }
    }
}

/* Every pixel tile's list for tiles of mr pixels: whole tiles, then single pixels up to D. */
INLINE void bwd_lists_mr(const float *const *xr, size_t nb, size_t D, size_t mr, bp_scratch *sc)
{
    const size_t nw = NZ_WORDS(D);
    size_t k = 0, t = 0;
    if (64 % mr == 0 && D % mr == 0) {
        bwd_lists_by_sample(xr, nb, D, mr, sc);
        return;
    }
    for (; k + mr <= D; k += mr, t++)
        bwd_list(xr, nb, nw, k, mr, mr, t, sc); /* constant length: one vector move each */
    for (; k < D; k++, t++)
        bwd_list(xr, nb, nw, k, 1, mr, t, sc);
}

/* bwd_lists_mr with the set's tile height as a constant for the heights the sets use (another
 * height works too, with variable-length copies). */
INLINE void bwd_lists_of_set(const float *const *xr, size_t nb, size_t D, bp_scratch *sc)
{
    switch (sc->k->bwd_mr) {
    case 4: bwd_lists_mr(xr, nb, D, 4, sc); break;
    case 6: bwd_lists_mr(xr, nb, D, 6, sc); break;
    case 8: bwd_lists_mr(xr, nb, D, 8, sc); break;
    default: bwd_lists_mr(xr, nb, D, sc->k->bwd_mr, sc); break;
    }
}

static void bwd_lists_base(const float *const *xr, size_t nb, size_t D, bp_scratch *sc)
{
    bwd_lists_of_set(xr, nb, D, sc);
}

#if HAVE_AVX2_INSTANCE
/* Bit 4i of a (i < 16) to bit i: the tiles of 4 pixels of a word with a non-zero pixel, as
 * 16 bits. */
INLINE unsigned gather_nibble_bits(uint64_t a)
{
    a &= UINT64_C(0x1111111111111111);
    a = (a | a >> 3) & UINT64_C(0x0303030303030303);
    a = (a | a >> 6) & UINT64_C(0x000f000f000f000f);
    a = (a | a >> 12) & UINT64_C(0x000000ff000000ff);
    return (unsigned)((a | a >> 24) & 0xffffu);
}

/* For the 16 tiles of 4 pixels of bitmap word w: each tile's samples as a 64-bit mask (bit s:
 * sample s has a non-zero pixel in the tile), into m[16]. The (sample, tile) bits are
 * transposed 32 samples at a time: a byte per sample holds 8 tiles' bits, and a shift puts
 * tile i's bit at the top of every byte, where a move-mask collects it. */
AVX2_INSTANCE static void tile_masks4(const uint64_t *nzb, size_t nb, size_t nw, size_t w,
                                      uint64_t m[16])
{
    uint8_t lo[BP_BLOCK] = {0}, hi[BP_BLOCK] = {0}; /* tiles 0-7 and 8-15 of each sample */
    for (size_t s = 0; s < nb; s++) {
        const uint64_t b = nzb[s * nw + w];
        const unsigned t = gather_nibble_bits(b | b >> 1 | b >> 2 | b >> 3);
        lo[s] = (uint8_t)t;
        hi[s] = (uint8_t)(t >> 8);
    }
    _Static_assert(BP_BLOCK == 64, "two 32-byte halves of samples");
    const __m256i l0 = _mm256_loadu_si256((const __m256i *)lo);
    const __m256i l1 = _mm256_loadu_si256((const __m256i *)(lo + 32));
    const __m256i h0 = _mm256_loadu_si256((const __m256i *)hi);
    const __m256i h1 = _mm256_loadu_si256((const __m256i *)(hi + 32));
    for (int i = 0; i < 8; i++) {
        const __m128i sh = _mm_cvtsi32_si128(7 - i);
        m[i] = (uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(l0, sh)) |
               (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(l1, sh)) << 32;
        m[8 + i] = (uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(h0, sh)) |
                   (uint64_t)(uint32_t)_mm256_movemask_epi8(_mm256_sll_epi16(h1, sh)) << 32;
    }
}

/* The lists of tiles of 4 pixels (D a multiple of 4), tile by tile: each tile's samples come
 * out of its mask in increasing order, as bwd_lists_by_sample lists them, and its entries are
 * written one after the other. Sample by sample, each listed pair cost a store to one of the
 * D / 4 tiles' counters and lists and a missed branch per word (about 4% of a 1 x 512 x 256
 * step); here a pair is a byte and a 16-byte copy to the tile's next entries. */
AVX2_INSTANCE static void bwd_lists_tiles4(const float *const *xr, size_t nb, size_t D,
                                           bp_scratch *sc)
{
    const size_t nw = NZ_WORDS(D), tiles = D / 4;
    for (size_t w = 0; w < nw; w++) {
        uint64_t m[16];
        tile_masks4(sc->nzb, nb, nw, w, m);
        for (size_t i = 0; i < 16 && w * 16 + i < tiles; i++) {
            const size_t t = w * 16 + i;
            uint8_t *ss = sc->bwd_s + t * BP_BLOCK;
            float *xv = sc->bwd_x + t * BP_BLOCK * 4;
            size_t n = 0;
            for (uint64_t b = m[i]; b; b &= b - 1, n++) {
                const size_t s = (size_t)__builtin_ctzll(b);
                ss[n] = (uint8_t)s;
                memcpy(xv + n * 4, xr[s] + t * 4, 4 * sizeof(float));
            }
            sc->bwd_n[t] = (uint32_t)n;
        }
    }
}

AVX2_INSTANCE static void bwd_lists_avx2(const float *const *xr, size_t nb, size_t D, bp_scratch *sc)
{
    if (sc->k->bwd_mr == 4 && D % 4 == 0) {
        bwd_lists_tiles4(xr, nb, D, sc);
        return;
    }
    bwd_lists_of_set(xr, nb, D, sc);
}
#endif

/* Dense lists (bwd_rows) for a narrow net or a dense block, as bp_fwd_lists chooses them. */
void bp_bwd_lists(bp_scratch *sc, const float *const *xr, size_t nb, size_t D, size_t H)
{
    sc->bwd_rows = NULL;
    if (H < SPARSE_MIN_H) { /* dense: the tiles read every sample's row */
        sc->bwd_rows = xr;
        sc->bwd_nrows = nb;
        sc->nz_n = 0;
        return;
    }
    /* Right after the forward pass of the same rows (the data split's forward_block then
     * backward_block), its bitmaps are still valid; they are used once, then dropped, so rows
     * whose contents change between calls are always read again. */
    if (sc->nz_n != nb || memcmp(sc->nz_rows, xr, nb * sizeof *xr) != 0)
        sc->k->nz_bitmaps(xr, nb, D, sc->nzb);
    sc->nz_n = 0;
    if (all_nonzero(sc->nzb, nb, D)) { /* a dense block: every sample is listed in every tile
                                        * anyway, and the tiles read the rows in place */
        sc->bwd_rows = xr;
        sc->bwd_nrows = nb;
        return;
    }
#if HAVE_AVX2_INSTANCE
    if (sc->k->lists == BP_LISTS_AVX2) {
        bwd_lists_avx2(xr, nb, D, sc);
        return;
    }
#endif
    bwd_lists_base(xr, nb, D, sc);
}
