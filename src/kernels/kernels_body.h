/* kernels_body.h: the kernels' vector code, written once and compiled once per instruction set (internal). */
/* Only what depends on the vector length or the instruction set is here: the tiles, the panels
 * and the update loops. The lists the tiles read, the scratch layout and softmax are compiled
 * once (lists.c, scratch.c, softmax.c). The including file defines KSUFFIX (the set's name,
 * suffixed to every entry point), VL (floats per vector), FWD_MR x FWD_NV (samples x vectors
 * of a forward tile), BWD_MR x BWD_NV (pixels x vectors of a dW1 tile) and FWD_PACK / BWD_PACK
 * (1: whole panels of W1 / dh are first copied into a contiguous buffer, 0: read in place),
 * optionally LISTS (the list builders' instance, BP_LISTS_BASE when not defined), and compiles
 * with that set's flags; the same constants go into the set's table (the end of this
 * file), where the code compiled once reads them. GCC/Clang vector extensions give one source
 * for every level; the tile sizes keep the accumulators in the register file. Each output
 * element is the same chain of operations whatever the tile shape: tiles decide only which
 * elements are computed together, never the order of one element's terms. */
#include "kernels.h"
#include "internal.h"

#include <math.h>
#include <string.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#if !defined(KSUFFIX) || !defined(VL) || !defined(FWD_MR) || !defined(FWD_NV) || \
    !defined(BWD_MR) || !defined(BWD_NV) || !defined(FWD_PACK) || !defined(BWD_PACK)
#error "define KSUFFIX, VL, FWD_MR, FWD_NV, BWD_MR, BWD_NV, FWD_PACK, BWD_PACK before including kernels_body.h"
#endif
#if FWD_MR > 8 || BWD_MR > 8
#error "the remainder switches handle tiles of at most 8 rows"
#endif

#define KPASTE2(a, b) a##_##b
#define KPASTE(a, b) KPASTE2(a, b)
#define KFN(name) KPASTE(name, KSUFFIX)
#define KSTR2(a) #a
#define KSTR(a) KSTR2(a)

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(float))));
/* The same vector at float alignment, for loads and stores anywhere in a row. */
typedef float vfu __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

#define INLINE static inline __attribute__((always_inline))

INLINE vf ld(const float *p) { return *(const vfu *)p; }
INLINE void st(float *p, vf v) { *(vfu *)p = v; }
/* A constructor of VL copies, not {0} + a: adding +0 is not an identity for -0.0, so the
 * compiler would keep an add before every broadcast instead of one broadcast load. */
#define X4(a) a, a, a, a
#if VL == 16
#define SPLAT_INIT(a) {X4(a), X4(a), X4(a), X4(a)}
#elif VL == 8
#define SPLAT_INIT(a) {X4(a), X4(a)}
#else
#define SPLAT_INIT(a) {X4(a)}
#endif
INLINE vf splat(float a) { return (vf)SPLAT_INIT(a); }
/* The first n < VL floats at p, zeros after; and the store of the first n lanes. The last
 * H % VL hidden units go through these, so every element of a row, tail or not, is computed
 * by the same vector operations (a scalar tail would round differently: the compiler may turn
 * it into separate multiplies and adds instead of fused ones), and a view of hidden units gives
 * the bits of the whole net whatever its width. */
INLINE vf ld_part(const float *p, size_t n)
{
    float t[VL] = {0};
    memcpy(t, p, n * sizeof(float));
    return ld(t);
}
INLINE void st_part(float *p, vf v, size_t n)
{
    float t[VL];
    st(t, v);
    memcpy(p, t, n * sizeof(float));
}
INLINE vf relu(vf v) { return (vf)((vi)v & (v > 0)); }
INLINE float hsum(vf v)
{
    float s = 0.0f;
    for (int i = 0; i < VL; i++)
        s += v[i];
    return s;
}

/* ---- forward, layer 1: h (nb, H) = relu(x (nb, D) W1 (D, H) + b1) ------------------------- */

/* One mr x (nv * VL) tile of h: mr samples against a panel of nv vectors of W1 columns (w, row
 * stride ldw; bias b or NULL), written to h with row stride ldh. Only the nk pixels ks[] that are
 * non-zero in some of the mr samples contribute. */
INLINE void fwd_tile(int mr, int nv, const float *w, size_t ldw, const float *b,
                     const float *const *xr, const uint8_t *rows, const uint32_t *ks, size_t nk,
                     float *h, size_t ldh)
{
    vf acc[FWD_MR][FWD_NV];
    for (int v = 0; v < nv; v++) {
        vf bv = b ? ld(b + v * VL) : splat(0.0f);
        for (int r = 0; r < mr; r++)
            acc[r][v] = bv;
    }
    for (size_t q = 0; q < nk; q++) {
        const size_t k = ks[q];
        const float *wr = w + k * ldw;
        vf wk[FWD_NV];
        for (int v = 0; v < nv; v++)
            wk[v] = ld(wr + v * VL);
        for (int r = 0; r < mr; r++) {
            vf a = splat(xr[r][k]);
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * wk[v];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            st(h + rows[r] * ldh + v * VL, relu(acc[r][v]));
}

/* The next panel of W1 read in place (D rows, ldw apart), which the tiles of this one ask for
 * ahead: its rows are the panel's stride apart, so the hardware prefetchers do not follow them,
 * and the first tile of each panel otherwise waits on W1 (at H = 4,096 half the forward's time
 * was on a W1 load and the FMA that used it, perf). */
typedef struct bp_prefetch {
    const float *w;
    size_t D;
} bp_prefetch;

/* The narrowest row stride whose panels are prefetched: below it a panel stays in L2 from one
 * tile to the next and the prefetches only cost (measured at 1,024 units and below: 0.7 to
 * 1.4% slower with them; at 4,096: 5 to 7% faster). */
#define PREFETCH_MIN_LD 2048

/* All nb samples against one panel, in the tiles fwd_lists grouped them into (sc->fwd_xr, rows
 * sc->fwd_rows of h): whole tiles of FWD_MR samples, then the remainder; tile t reads its pixel
 * list from sc. */
INLINE void fwd_panel(int nv, const float *w, size_t ldw, const float *b, size_t nb, float *h,
                      size_t ldh, const bp_scratch *sc, const bp_prefetch *pf)
{
    const float *const *xr = sc->fwd_xr;
    const uint8_t *rows = sc->fwd_rows;
    size_t r = 0, t = 0;
    const size_t tiles = nb / FWD_MR;
    for (; r + FWD_MR <= nb; r += FWD_MR, t++) {
        if (pf) /* this tile's share of the next panel's rows, into L2 */
            for (size_t k = pf->D * t / tiles; k < pf->D * (t + 1) / tiles; k++)
                for (int v = 0; v < nv; v++)
                    __builtin_prefetch(pf->w + k * ldw + v * VL, 0, 2);
        fwd_tile(FWD_MR, nv, w, ldw, b, xr + r, rows + r, sc->fwd_k + t * sc->fwd_kstep,
                 sc->fwd_n[t], h, ldh);
    }
    if (r == nb)
        return; /* no remainder tile: fwd_n has no entry t */
    const uint32_t *ks = sc->fwd_k + t * sc->fwd_kstep;
    const size_t nk = sc->fwd_n[t];
    xr += r;
    rows += r;
    switch (nb - r) {
#if FWD_MR > 7
    case 7: fwd_tile(7, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
#if FWD_MR > 6
    case 6: fwd_tile(6, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
#if FWD_MR > 5
    case 5: fwd_tile(5, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
#if FWD_MR > 4
    case 4: fwd_tile(4, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
#if FWD_MR > 3
    case 3: fwd_tile(3, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
#if FWD_MR > 2
    case 2: fwd_tile(2, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
#endif
    case 1: fwd_tile(1, nv, w, ldw, b, xr, rows, ks, nk, h, ldh); break;
    default: break;
    }
}

/* ---- zero-input bitmaps (the lists built from them are lists.c's) ----------------------------- */

/* Bit i of the result: p[i] != 0 for the VL floats at p (NaN counts as non-zero, as with !=). */
INLINE uint64_t nz_mask(const float *p)
{
#if VL == 16 && defined(__AVX512F__)
    return (uint64_t)_mm512_cmp_ps_mask(_mm512_loadu_ps(p), _mm512_setzero_ps(), _CMP_NEQ_UQ);
#elif VL == 8 && defined(__AVX__)
    return (uint64_t)(unsigned)_mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_loadu_ps(p), _mm256_setzero_ps(), _CMP_NEQ_UQ));
#elif VL == 4 && defined(__SSE2__)
    return (uint64_t)(unsigned)_mm_movemask_ps(_mm_cmpneq_ps(_mm_loadu_ps(p), _mm_setzero_ps()));
#else
    uint64_t m = 0;
    for (int i = 0; i < VL; i++)
        m |= (uint64_t)(p[i] != 0.0f) << i;
    return m;
#endif
}

/* Each sample's non-zero pixels as a bitmap: nzb (nb, NZ_WORDS(D)), bit k % 64 of word k / 64
 * set when pixel k is non-zero. The lists (lists.c) are read off these bitmaps, a word of 64
 * pixels at a time, instead of testing every pixel of every tile. */
static void KFN(bp_nz_bitmaps)(const float *const *xr, size_t nb, size_t D, uint64_t *nzb)
{
    const size_t nw = NZ_WORDS(D);
    for (size_t s = 0; s < nb; s++) {
        const float *x = xr[s];
        /* The rows are the block's first touch of its samples, scattered over the data set
         * (shuffled): the row two ahead is asked for while this one is read (perf: this
         * function's time fell by about a quarter). */
        if (s + 2 < nb)
            for (size_t k = 0; k < D; k += 64 / sizeof(float))
                __builtin_prefetch(xr[s + 2] + k, 0, 3);
        for (size_t w = 0; w < nw; w++) {
            const size_t k0 = w * 64, k1 = D - k0 < 64 ? D : k0 + 64;
            uint64_t bits = 0;
            size_t k = k0;
            for (; k + VL <= k1; k += VL)
                bits |= nz_mask(x + k) << (k - k0);
            for (; k < k1; k++)
                bits |= (uint64_t)(x[k] != 0.0f) << (k - k0);
            nzb[s * nw + w] = bits;
        }
    }
}

/* The forward panel that starts at hidden unit j of H: whole panels of FWD_NV vectors, then
 * single vectors, then the last H % VL units zero-padded to one vector. Sets *nv and returns how
 * many real units it holds. A view that starts on a BP_HBLOCK boundary cuts its units into the
 * same panels as the whole net (every panel width divides BP_HBLOCK). */
INLINE size_t fwd_panel_at(size_t j, size_t H, int *nv)
{
    if (j + FWD_NV * VL <= H) {
        *nv = FWD_NV;
        return FWD_NV * VL;
    }
    *nv = 1;
    return H - j < VL ? H - j : VL;
}

/* n floats from src to dst, then zeros up to pw (pw >= n): a vector at a time, then the
 * n % VL tail. Every panel copy goes through this, one panel row at a time. A memcpy
 * of a length known only at run time was compiled inline as `rep movsq`, whose start-up costs
 * more than such a row (the avx2 set's forward at one thread, batch 32, 256 units spent a third
 * of its time there), or became a call to libc's memmove (perf, avx2, 2 x 512 x 256 with the
 * hidden split: 0.76% of the samples in memmove, 0.48% of them from the in-pass update's rows
 * into packed W1, w1p_store). */
INLINE void copy_row(float *dst, const float *src, size_t n, size_t pw)
{
    size_t i = 0;
    for (; i + VL <= n; i += VL)
        st(dst + i, ld(src + i));
    for (; i < pw; i++) /* one loop: two would become libc calls again (memset for the zeros) */
        dst[i] = i < n ? src[i] : 0.0f;
}

/* Copy W1's columns [j, j + n) into a contiguous zero-padded panel dst, (D, pw). W1's rows are
 * H floats apart (a power of two for the usual widths), so the columns of one panel left in
 * place would fall into a few cache sets and miss on every tile; packed, they stream from L2. */
static void pack_panel(const bp_net *net, size_t j, size_t n, size_t pw, float *dst)
{
    for (size_t k = 0; k < net->D; k++, dst += pw)
        copy_row(dst, net->w1 + k * net->ld + j, n, pw);
}

static void KFN(bp_pack_w1)(const bp_net *net, size_t j0, size_t j1, float *w1p)
{
    int nv;
    if (!FWD_PACK)
        return;
    for (size_t j = 0, n; j < j1; j += n) {
        n = fwd_panel_at(j, net->H, &nv);
        if (j >= j0)
            pack_panel(net, j, n, (size_t)nv * VL, w1p + j * net->D);
    }
}

/* Hidden units [j, j + n) of h through the tiles of an nv-vector panel (n <= nv * VL): from the
 * net's packed W1 when it has one, else packed here into sc->wpad. A panel with padding writes
 * its tiles to hpad and copies out the n real columns. pf: this call's tiles prefetch the next
 * panel read in place (the first block of a group; the others find it already there). */
static void fwd_cols(const bp_net *net, size_t nb, size_t j, int nv,
                     size_t n, float *h, bp_scratch *sc, int pf)
{
    const size_t D = net->D, H = net->H, pw = (size_t)nv * VL;
    if (!FWD_PACK && n == pw) { /* whole panel read in place (a set that does not pack) */
        const bp_prefetch next = {.w = net->w1 + j + pw, .D = D};
        fwd_panel(nv, net->w1 + j, net->ld, net->b1 ? net->b1 + j : NULL, nb, h + j, H, sc,
                  pf && net->ld >= PREFETCH_MIN_LD && j + 2 * pw <= H ? &next : NULL);
        return;
    }
    const float *wp = net->w1p ? net->w1p + j * D : sc->wpad;
    if (!net->w1p)
        pack_panel(net, j, n, pw, sc->wpad);
    else if (pf) /* the group's later blocks find the panel in L2 */
        for (size_t i = 0; i < D * pw; i += 64 / sizeof(float))
            __builtin_prefetch(wp + i, 0, 2);
    if (n == pw) {
        fwd_panel(nv, wp, pw, net->b1 ? net->b1 + j : NULL, nb, h + j, H, sc, NULL);
        return;
    }
    for (size_t i = 0; i < pw; i++)
        sc->bpad[i] = net->b1 && i < n ? net->b1[j + i] : 0.0f;
    fwd_panel(nv, wp, pw, sc->bpad, nb, sc->hpad, pw, sc, NULL);
    for (size_t s = 0; s < nb; s++)
        copy_row(h + s * H + j, sc->hpad + s * pw, n, n);
}

/* h[i] (nb[i], H) of nblk blocks from the forward lists bp_fwd_lists left in sc[i]. */
static void KFN(bp_forward_hidden_group)(const bp_net *net, size_t nblk, const size_t *nb,
                                         float *const *h, bp_scratch *const *sc)
{
    /* Panel-outer: a (D, FWD_NV * VL) panel of W1 stays in L2 while every tile of samples of
     * every block passes, so W1 is read once for all the blocks (a wide W1 does not fit in
     * the caches and would otherwise stream from memory once per block). Each h entry is
     * still the chain of its own tile. */
    int nv;
    for (size_t j = 0, n; j < net->H; j += n) {
        n = fwd_panel_at(j, net->H, &nv);
        for (size_t i = 0; i < nblk; i++) {
            if (nv == FWD_NV) /* constant widths: each gets its own compiled tile loop */
                fwd_cols(net, nb[i], j, FWD_NV, n, h[i], sc[i], i == 0);
            else
                fwd_cols(net, nb[i], j, 1, n, h[i], sc[i], i == 0);
        }
    }
}

/* h from the forward lists bp_fwd_lists left in sc: a group of one block. */
static void KFN(bp_forward_hidden)(const bp_net *net, size_t nb, float *h, bp_scratch *sc)
{
    KFN(bp_forward_hidden_group)(net, 1, &nb, &h, &sc);
}

/* ---- forward, layer 2: logits (nb, C) = h (nb, H) W2 + b2, as dot products with W2t rows ---- */

/* Dot product of n <= BP_HBLOCK floats in a fixed order (lanes, then their sum, then the scalar
 * tail), so a hidden block's partial logit is the same whichever thread computes it. */
static float dot_hblock(const float *a, const float *b, size_t n)
{
    vf acc0 = splat(0.0f), acc1 = splat(0.0f);
    size_t i = 0;
    for (; i + 2 * VL <= n; i += 2 * VL) {
        acc0 += ld(a + i) * ld(b + i);
        acc1 += ld(a + i + VL) * ld(b + i + VL);
    }
    for (; i + VL <= n; i += VL)
        acc0 += ld(a + i) * ld(b + i);
    float s = hsum(acc0 + acc1);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

_Static_assert(BP_HBLOCK % (2 * VL) == 0, "a whole hidden block has no single-vector or scalar tail");

/* Classes a whole block's dot products go through side by side (2 accumulators each). */
#define LOGIT_CB 5

/* Lane swaps for transposing VL vectors: stage b exchanges bit b of the row with bit b of the
 * lane (rows r and r | b). LO_AT is the new row r's source lane, HI_AT the new row r | b's. */
#define LO_AT(b, l) (((l) & (b)) ? VL + ((l) ^ (b)) : (l))
#define HI_AT(b, l) (((l) & (b)) ? VL + (l) : ((l) ^ (b)))
#define AT4(F, b, l) F(b, l), F(b, l + 1), F(b, l + 2), F(b, l + 3)
#if VL == 16
#define LANES(F, b) AT4(F, b, 0), AT4(F, b, 4), AT4(F, b, 8), AT4(F, b, 12)
#elif VL == 8
#define LANES(F, b) AT4(F, b, 0), AT4(F, b, 4)
#else
#define LANES(F, b) AT4(F, b, 0)
#endif
#define SWAP_STAGE(v, b)                                                                       \
    for (int r = 0; r < VL; r++)                                                               \
        if (!(r & (b))) {                                                                      \
            const vf x = v[r], y = v[r | (b)];                                                 \
            v[r] = __builtin_shufflevector(x, y, LANES(LO_AT, b));                             \
            v[r | (b)] = __builtin_shufflevector(x, y, LANES(HI_AT, b));                       \
        }

/* hsum of each of v[0..VL), VL at once, into out[0..n) (n <= VL): v is transposed in the
 * registers, then lane j adds up v[j]'s lanes in hsum's order (from +0, lane 0 first), so
 * every sum has hsum's bits; each hsum alone is a chain of VL - 1 dependent scalar adds and
 * as many lane extracts, which took most of bp_logits_partial's time (perf). */
INLINE void hsum_many(vf *v, float *out, size_t n)
{
#if VL == 16
    SWAP_STAGE(v, 8)
#endif
#if VL >= 8
    SWAP_STAGE(v, 4)
#endif
    SWAP_STAGE(v, 2)
    SWAP_STAGE(v, 1)
    vf s = splat(0.0f);
    for (int i = 0; i < VL; i++)
        s += v[i];
    if (n == VL)
        st(out, s);
    else
        st_part(out, s, n);
}

/* dot_hblock of one whole hidden block a (BP_HBLOCK floats) with cn W2t rows (row stride
 * ldw), before the lane sum: dots[c] holds the lanes whose hsum is the dot. Each dot's chain is
 * dot_hblock's, side by side so that they share the loads of a and no one chain's FMA latency
 * sets the pace. */
INLINE void dot_hblock_rows(int cn, const float *a, const float *w2t, size_t ldw, vf *dots)
{
    vf acc0[LOGIT_CB], acc1[LOGIT_CB];
    for (int c = 0; c < cn; c++)
        acc0[c] = acc1[c] = splat(0.0f);
    for (size_t i = 0; i < BP_HBLOCK; i += 2 * VL) {
        const vf a0 = ld(a + i), a1 = ld(a + i + VL);
        for (int c = 0; c < cn; c++) {
            const float *b = w2t + (size_t)c * ldw + i;
            acc0[c] += a0 * ld(b);
            acc1[c] += a1 * ld(b + VL);
        }
    }
    for (int c = 0; c < cn; c++)
        dots[c] = acc0[c] + acc1[c];
}

/* One whole hidden block's partial logits, out (nb, C): the (sample, class) dots in that order,
 * which is out's, and their lane sums VL at a time. */
static void logits_hblock(const bp_net *net, size_t nb, const float *h, size_t j, float *out)
{
    const size_t H = net->H, C = net->C;
    /* Room for the fixed-size move below, which may read past the waiting dots: set, so that
     * it reads no garbage. */
    vf dots[VL + 2 * LOGIT_CB] = {0};
    size_t nd = 0, done = 0; /* dots waiting; sums written */
    for (size_t s = 0; s < nb; s++)
        for (size_t c = 0; c < C; c += LOGIT_CB) {
            const int cn = C - c < LOGIT_CB ? (int)(C - c) : LOGIT_CB;
            const float *x = h + s * H + j, *w = net->w2t + c * net->ld + j;
            switch (cn) { /* constant widths: the accumulators stay in registers */
            case 1: dot_hblock_rows(1, x, w, net->ld, dots + nd); break;
            case 2: dot_hblock_rows(2, x, w, net->ld, dots + nd); break;
            case 3: dot_hblock_rows(3, x, w, net->ld, dots + nd); break;
            case 4: dot_hblock_rows(4, x, w, net->ld, dots + nd); break;
            default: dot_hblock_rows(LOGIT_CB, x, w, net->ld, dots + nd); break;
            }
            nd += (size_t)cn;
            size_t used = 0; /* dots summed, from the front */
            for (; nd - used >= VL; used += VL, done += VL)
                hsum_many(dots + used, out + done, VL);
            nd -= used;
            /* Fewer than LOGIT_CB dots wait now (nd < VL + LOGIT_CB before the sums); they
             * move to the front as a move of constant size: a memmove call per class group
             * cost more than the sums it fed. */
            if (used > 0)
                for (int i = 0; i < LOGIT_CB - 1; i++)
                    dots[i] = dots[used + (size_t)i];
        }
    if (nd > 0) {
        for (size_t i = nd; i < VL; i++)
            dots[i] = splat(0.0f);
        hsum_many(dots, out + done, nd);
    }
}

static void KFN(bp_logits_partial)(const bp_net *net, size_t nb, const float *h, float *part)
{
    const size_t H = net->H, C = net->C, nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK;
    for (size_t q = 0; q < nhb; q++) {
        const size_t j = q * BP_HBLOCK, n = H - j < BP_HBLOCK ? H - j : BP_HBLOCK;
        if (n == BP_HBLOCK) {
            logits_hblock(net, nb, h, j, part + q * nb * C);
            continue;
        }
        for (size_t s = 0; s < nb; s++)
            for (size_t c = 0; c < C; c++)
                part[(q * nb + s) * C + c] =
                    dot_hblock(h + s * H + j, net->w2t + c * net->ld + j, n);
    }
}

/* ---- backward ------------------------------------------------------------------------------ */

/* Classes per pass of the layer-2 gradient: their accumulators stay in registers. */
#define L2_CB 8

/* dW2t rows [c0, c0 + cn) at hidden units [j, j + n) (n <= VL) += sum over samples of
 * dl[s, c] h[s, j..]: cn accumulators, one h vector per sample. Each element's chain is its
 * stored value plus the samples' products in sample order, as one axpy per sample would add them. */
INLINE void bwd_layer2_tile(int cn, const bp_net *net, size_t nb, const float *h, const float *dl,
                            float *gw2t, size_t c0, size_t j, size_t n)
{
    const size_t H = net->H, C = net->C;
    const int whole = n == VL;
    vf acc[L2_CB];
    for (int c = 0; c < cn; c++) {
        const float *gw = gw2t + (c0 + (size_t)c) * net->ld + j;
        acc[c] = whole ? ld(gw) : ld_part(gw, n);
    }
    for (size_t s = 0; s < nb; s++) {
        const vf hv = whole ? ld(h + s * H + j) : ld_part(h + s * H + j, n);
        const float *ds = dl + s * C + c0;
        for (int c = 0; c < cn; c++)
            acc[c] += splat(ds[c]) * hv;
    }
    for (int c = 0; c < cn; c++) {
        float *gw = gw2t + (c0 + (size_t)c) * net->ld + j;
        if (whole)
            st(gw, acc[c]);
        else
            st_part(gw, acc[c], n);
    }
}

/* dW2t (C, H) += dl^T h, db2 += sum dl. */
static void bwd_layer2(const bp_net *net, size_t nb, const float *h, const float *dl, bp_grads *g)
{
    const size_t H = net->H, C = net->C;
    for (size_t j = 0; j < H; j += VL) {
        const size_t n = H - j < VL ? H - j : VL;
        size_t c0 = 0;
        for (; c0 + L2_CB <= C; c0 += L2_CB)
            bwd_layer2_tile(L2_CB, net, nb, h, dl, g->w2t, c0, j, n);
        switch (C - c0) { /* the last C % L2_CB classes, each count with its own registers */
        case 7: bwd_layer2_tile(7, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 6: bwd_layer2_tile(6, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 5: bwd_layer2_tile(5, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 4: bwd_layer2_tile(4, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 3: bwd_layer2_tile(3, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 2: bwd_layer2_tile(2, net, nb, h, dl, g->w2t, c0, j, n); break;
        case 1: bwd_layer2_tile(1, net, nb, h, dl, g->w2t, c0, j, n); break;
        default: break;
        }
    }
    if (g->b2)
        for (size_t c = 0; c < C; c++)
            for (size_t s = 0; s < nb; s++)
                g->b2[c] += dl[s * C + c];
}

/* dh for hidden units [j, j + n) of one sample (n <= VL): (dl W2^T) masked by h > 0, written
 * over h; db1 += dh. */
INLINE void bwd_hidden_vec(const bp_net *net, const float *ds, float *hs, size_t j, size_t n,
                           float *b1)
{
    const int whole = n == VL;
    vf acc = splat(0.0f);
    for (size_t c = 0; c < net->C; c++) {
        const float *w = net->w2t + c * net->ld + j;
        acc += splat(ds[c]) * (whole ? ld(w) : ld_part(w, n));
    }
    vf hv = whole ? ld(hs + j) : ld_part(hs + j, n);
    vf dh = (vf)((vi)acc & (hv > 0));
    if (whole) {
        st(hs + j, dh);
        if (b1)
            st(b1 + j, ld(b1 + j) + dh);
    } else {
        st_part(hs + j, dh, n);
        if (b1)
            st_part(b1 + j, ld_part(b1 + j, n) + dh, n);
    }
}

/* Four whole vectors [j, j + 4 * VL) of the same, as four chains side by side: each element's
 * chain is that of bwd_hidden_vec (the classes in order), but one chain's FMA latency per class
 * no longer sets the pace (it did: a tenth of the backward block's time at H = 256, perf). */
INLINE void bwd_hidden_vec4(const bp_net *net, const float *ds, float *hs, size_t j, float *b1)
{
    vf acc[4] = {splat(0.0f), splat(0.0f), splat(0.0f), splat(0.0f)};
    for (size_t c = 0; c < net->C; c++) {
        const float *w = net->w2t + c * net->ld + j;
        const vf d = splat(ds[c]);
        for (int i = 0; i < 4; i++)
            acc[i] += d * ld(w + i * VL);
    }
    for (int i = 0; i < 4; i++) {
        float *hv = hs + j + i * VL;
        const vf dh = (vf)((vi)acc[i] & (ld(hv) > 0));
        st(hv, dh);
        if (b1)
            st(b1 + j + i * VL, ld(b1 + j + i * VL) + dh);
    }
}

/* dh (nb, H) = (dl W2^T) masked by h > 0, written over h; db1 += sum over samples of dh. */
static void bwd_hidden(const bp_net *net, size_t nb, float *h, const float *dl, bp_grads *g)
{
    const size_t H = net->H, C = net->C;
    for (size_t s = 0; s < nb; s++) {
        size_t j = 0;
        for (; j + 4 * VL <= H; j += 4 * VL)
            bwd_hidden_vec4(net, dl + s * C, h + s * H, j, g->b1);
        for (; j + VL <= H; j += VL)
            bwd_hidden_vec(net, dl + s * C, h + s * H, j, VL, g->b1);
        if (j < H)
            bwd_hidden_vec(net, dl + s * C, h + s * H, j, H - j, g->b1);
    }
}

/* Where a panel's dW1 sums come from and go to: the stored sums (in, row stride ldi), read
 * unless a call starts them afresh, and the new sums (out, row stride ldo). Both are the same
 * place, except when the last block of an in-pass update reads the earlier blocks' sums in
 * place and writes the panel's into a contiguous buffer (no separate copy of the panel). */
typedef struct bwd_sums {
    const float *in;
    size_t ldi;
    float *out;
    size_t ldo;
} bwd_sums;

/* The same from row k. */
INLINE bwd_sums sums_at(bwd_sums o, size_t k)
{
    return (bwd_sums){o.in + k * o.ldi, o.ldi, o.out + k * o.ldo, o.ldo};
}

/* One mr x (nv * VL) tile of dW1 += x^T dh: mr input pixels from k against nv vectors of dh
 * columns (dh, row stride ldd), from and into o (row k of the panel). Summed either
 * over the ns samples ss[] whose pixels k..k+mr are not all zero (the others add nothing),
 * their pixels read in list order from xv; or, with rows xr (dense lists), over all ns samples,
 * pixels read from the rows. */
INLINE void bwd_tile(int mr, int nv, const float *xv, const uint8_t *ss, const float *const *xr,
                     size_t k, size_t ns, const float *dh, size_t ldd, bwd_sums o, int first)
{
    vf acc[BWD_MR][BWD_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = first ? splat(0.0f) : ld(o.in + r * o.ldi + v * VL);
    for (size_t q = 0; q < ns; q++, xv += mr) {
        const size_t s = xr ? q : ss[q];
        const float *xs = xr ? xr[q] + k : xv;
        vf d[BWD_NV];
        for (int v = 0; v < nv; v++)
            d[v] = ld(dh + s * ldd + v * VL);
        for (int r = 0; r < mr; r++) {
            vf a = splat(xs[r]);
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * d[v];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            st(o.out + r * o.ldo + v * VL, acc[r][v]);
}

/* Every pixel tile of one panel of dW1 columns (sums o): through the lists, or
 * over every sample of sc->bwd_rows when bp_bwd_lists left dense ones (a narrow net, whose one or
 * two panels would not repay copying the inputs into list order; or a block with no zero input,
 * whose lists would hold every sample of every tile). */
INLINE void bwd_panel(int nv, const float *dh, size_t ldd, bwd_sums o, int first,
                      const bp_scratch *sc, size_t D)
{
    size_t k = 0, t = 0;
    if (sc->bwd_rows) {
        const float *const *xr = sc->bwd_rows;
        const size_t nb = sc->bwd_nrows;
        for (; k + BWD_MR <= D; k += BWD_MR)
            bwd_tile(BWD_MR, nv, NULL, NULL, xr, k, nb, dh, ldd, sums_at(o, k), first);
        for (; k < D; k++)
            bwd_tile(1, nv, NULL, NULL, xr, k, nb, dh, ldd, sums_at(o, k), first);
        return;
    }
    const int strided = !first && o.ldi != (size_t)nv * VL; /* the stored sums, in place */
    for (; k + BWD_MR <= D; k += BWD_MR, t++) {
        if (strided && k + 2 * BWD_MR <= D) /* the next tile's rows (see ROW_PREFETCH) */
            for (int r = 0; r < BWD_MR; r++) {
                const float *a = o.in + (k + BWD_MR + (size_t)r) * o.ldi;
                __builtin_prefetch(a, 1, 3);
                __builtin_prefetch(a + nv * VL - 1, 1, 3);
            }
        bwd_tile(BWD_MR, nv, sc->bwd_x + t * BP_BLOCK * BWD_MR, sc->bwd_s + t * BP_BLOCK, NULL, k,
                 sc->bwd_n[t], dh, ldd, sums_at(o, k), first);
    }
    for (; k < D; k++, t++)
        bwd_tile(1, nv, sc->bwd_x + t * BP_BLOCK * BWD_MR, sc->bwd_s + t * BP_BLOCK, NULL, k,
                 sc->bwd_n[t], dh, ldd, sums_at(o, k), first);
}

/* W1's update from one panel of a block's dW1 sums (update_body.h). */
static void w1_panel_update(bp_w1_update *u, float *gp, size_t pw, size_t j, size_t n, size_t D);

/* Rows a strided copy or update asks for ahead of use: rows H floats apart defeat the hardware
 * prefetchers, which do not follow a stride across pages (measured: the in-pass update's share
 * of a batch-128 step fell by about a tenth with it, perf). */
#define ROW_PREFETCH 8

/* The stored sums of dW1's columns [j, j + n), (D, ldg), into a zero-padded panel dst (D, pw). */
static void sums_panel_in(const float *gw1, size_t ldg, size_t j, size_t n, size_t pw, size_t D,
                          float *dst)
{
    for (size_t k = 0; k < D; k++, dst += pw) {
        if (k + ROW_PREFETCH < D) {
            const float *a = gw1 + (k + ROW_PREFETCH) * ldg + j;
            __builtin_prefetch(a, 0, 3);
            __builtin_prefetch(a + n - 1, 0, 3);
        }
        copy_row(dst, gw1 + k * ldg + j, n, pw);
    }
}

/* The panel of dh columns [j, j + n) that the tiles read, row stride *ldd: dh in place, or
 * copied into a contiguous zero-padded panel of hpad, (nb, pw), for the same cache-set reason
 * as fwd_cols (and always for a padded panel). */
static const float *dh_panel(const float *dh, size_t nb, size_t H, size_t j, size_t n, size_t pw,
                             float *hpad, size_t *ldd)
{
    *ldd = H;
    if (!BWD_PACK && n == pw)
        return dh + j;
    for (size_t s = 0; s < nb; s++)
        copy_row(hpad + s * pw, dh + s * H + j, n, pw);
    *ldd = pw;
    return hpad;
}

/* Columns [j, j + n) of dW1 through the tiles of an nv-vector panel (n <= nv * VL), dh read
 * through dh_panel. A panel with padding works on a copy of its n columns of dW1 in
 * wpad, (D, nv * VL), and copies them back: each element's chain then starts from its stored
 * value, as in a whole panel (adding a separately rounded sum would differ in the last bit
 * from the fused chain). */
INLINE void bwd_cols(const bp_net *net, size_t nb, const float *dh,
                     size_t j, int nv, size_t n, float *gw1, int first, bp_scratch *sc,
                     bp_w1_update *upd)
{
    const size_t D = net->D, ldg = net->ld, pw = (size_t)nv * VL;
    size_t lddp;
    const float *dhp = dh_panel(dh, nb, net->H, j, n, pw, sc->hpad, &lddp);
    const bwd_sums in_place = {gw1 + j, ldg, gw1 + j, ldg}, padded = {sc->wpad, pw, sc->wpad, pw};
    if (upd) { /* the panel's sums (with the earlier blocks' from gw1) go to wpad and straight
                * into the update; a whole panel's tiles read the earlier sums in place
                * when W1's rows are narrow enough that the strided reads stay cheap */
        bwd_sums o = padded;
        if (!first && n == pw && ldg < PREFETCH_MIN_LD) /* wider rows: the copy is cheaper
                                                           (1x128x4096: 0.94x in place) */
            o = (bwd_sums){gw1 + j, ldg, sc->wpad, pw};
        else if (!first)
            sums_panel_in(gw1, ldg, j, n, pw, D, sc->wpad);
        bwd_panel(nv, dhp, lddp, o, first, sc, D);
        w1_panel_update(upd, sc->wpad, pw, j, n, D);
        return;
    }
    if (n == pw) {
        bwd_panel(nv, dhp, lddp, in_place, first, sc, D);
        return;
    }
    if (!first)
        sums_panel_in(gw1, ldg, j, n, pw, D, sc->wpad);
    bwd_panel(nv, dhp, lddp, padded, first, sc, D);
    for (size_t k = 0; k < D; k++)
        copy_row(gw1 + k * ldg + j, sc->wpad + k * pw, n, n);
}

/* bwd_cols for nblk blocks in a row (block i: nb[i] samples, dh[i], lists in sc[i]). Both are
 * inlined into their callers with a constant nv, so that each panel width gets its own tile
 * loops with the accumulators in registers (a call with nv unknown ran the backward of the
 * hidden split at 2 threads x 128 x 4,096 about four times slower). With the
 * in-pass update, the panel's sums stay in sc[0]->wpad from the first block to the last and go
 * from there into the update, so dW1's sums are neither written nor read back; without it,
 * each block in turn on the panel (still in cache for the next). */
INLINE void bwd_cols_group(const bp_net *net, size_t nblk, const size_t *nb,
                           const float *const *dh, size_t j, int nv, size_t n, float *gw1,
                           int first, bp_scratch *const *sc, bp_w1_update *upd)
{
    const size_t D = net->D, pw = (size_t)nv * VL;
    if (!upd || nblk == 1) {
        for (size_t i = 0; i < nblk; i++)
            bwd_cols(net, nb[i], dh[i], j, nv, n, gw1, first && i == 0, sc[i],
                     i + 1 == nblk ? upd : NULL);
        return;
    }
    float *wp = sc[0]->wpad;
    const bwd_sums o = {wp, pw, wp, pw};
    if (!first)
        sums_panel_in(gw1, net->ld, j, n, pw, D, wp);
    for (size_t i = 0; i < nblk; i++) {
        size_t lddp;
        const float *dhp = dh_panel(dh[i], nb[i], net->H, j, n, pw, sc[i]->hpad, &lddp);
        bwd_panel(nv, dhp, lddp, o, first && i == 0, sc[i], D);
    }
    w1_panel_update(upd, wp, pw, j, n, D);
}

/* Hidden units in the backward's whole BWD_NV-vector panels (from unit 0). With three-vector
 * panels a width of 3m + 1 whole vectors is cut as ... + 2 + 2 instead of ... + 3 + 1: the lone
 * vector's tile holds only BWD_MR accumulators, too few to cover the FMA latency (on AVX2 it
 * runs at about half the rate per FMA), and the two-vector tiles hold twice as many. This hits
 * widths of 8 mod 24 units on avx2: 32, 128 (the hidden split's slices of 256 units), 512. */
INLINE size_t bwd_wide_units(size_t H)
{
    const size_t nvec = H / VL;
    size_t nwide = nvec / BWD_NV;
    if (BWD_NV == 3 && nvec % BWD_NV == 1 && nwide > 0)
        nwide--;
    return nwide * BWD_NV * VL;
}

/* dW1 (or W1's in-pass update, in the last block) from nblk blocks' dh[i] (nb[i], H) over the
 * backward lists bp_bwd_lists left in sc[i]: each panel of dW1 through every block before the
 * next panel. Each element's chain is the blocks' tiles in block order, as in one call per
 * block, whatever panels the columns are cut into. */
static void KFN(bp_backward_w1_group)(const bp_net *net, size_t nblk, const size_t *nb,
                                      const float *const *dh, float *gw1, int first,
                                      bp_scratch *const *sc, bp_w1_update *upd)
{
    const size_t H = net->H, wide = bwd_wide_units(H);
    size_t j = 0;
    for (; j < wide; j += BWD_NV * VL)
        bwd_cols_group(net, nblk, nb, dh, j, BWD_NV, BWD_NV * VL, gw1, first, sc, upd);
#if BWD_NV > 2 /* two-vector panels before single vectors: twice the accumulators per load */
    for (; j + 2 * VL <= H; j += 2 * VL)
        bwd_cols_group(net, nblk, nb, dh, j, 2, 2 * VL, gw1, first, sc, upd);
#endif
    for (; j + VL <= H; j += VL)
        bwd_cols_group(net, nblk, nb, dh, j, 1, VL, gw1, first, sc, upd);
    if (j < H)
        bwd_cols_group(net, nblk, nb, dh, j, 1, H - j, gw1, first, sc, upd);
}

/* dW1 (or W1's in-pass update) from dh (nb, H) over the backward lists bp_bwd_lists left in sc:
 * a group of one block. */
static void KFN(bp_backward_w1)(const bp_net *net, size_t nb, const float *dh, float *gw1,
                                int first, bp_scratch *sc, bp_w1_update *upd)
{
    KFN(bp_backward_w1_group)(net, 1, &nb, &dh, gw1, first, &sc, upd);
}

/* dW2t, db2 and db1 sums of the block; h (nb, H) becomes dh. */
static void KFN(bp_backward_hidden)(const bp_net *net, size_t nb, float *h, const float *dl,
                                    bp_grads *g)
{
    bwd_layer2(net, nb, h, dl, g);
    bwd_hidden(net, nb, h, dl, g);
}

#include "update_body.h"

#ifndef LISTS /* the instance of the list builders the set's CPUs run (kernels.h) */
#define LISTS BP_LISTS_BASE
#endif

/* This set: its tile sizes and its entry points, in the one table a workspace chooses. */
const bp_kernels KFN(bp_kernels) = {
    .name = KSTR(KSUFFIX),
    .vl = VL,
    .fwd_mr = FWD_MR,
    .fwd_nv = FWD_NV,
    .bwd_mr = BWD_MR,
    .bwd_nv = BWD_NV,
    .fwd_pack = FWD_PACK,
    .bwd_pack = BWD_PACK,
    .lists = LISTS,
    .nz_bitmaps = KFN(bp_nz_bitmaps),
    .pack_w1 = KFN(bp_pack_w1),
    .forward_hidden = KFN(bp_forward_hidden),
    .forward_hidden_group = KFN(bp_forward_hidden_group),
    .logits_partial = KFN(bp_logits_partial),
    .backward_hidden = KFN(bp_backward_hidden),
    .backward_w1 = KFN(bp_backward_w1),
    .backward_w1_group = KFN(bp_backward_w1_group),
    .fixed_add = KFN(bp_fixed_add),
    .fixed_to_float = KFN(bp_fixed_to_float),
    .fixed_round = KFN(bp_fixed_round),
    .add_i64 = KFN(bp_add_i64),
    .sgd = KFN(bp_sgd),
    .sgd_fixed = KFN(bp_sgd_fixed),
};
