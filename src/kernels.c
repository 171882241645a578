/* kernels.c: register-blocked forward and backward passes for one thread's block of samples. */
#include "kernels.h"

#include <math.h>
#include <string.h>

/* GCC/Clang vector extensions: one source for every x86 level (and any other target). A vector
 * is one AVX-512 register when the build targets AVX-512, two halves of AVX2 otherwise, and so
 * on. Tile sizes are chosen so the accumulators fit the register file. */
#if defined(__AVX512F__)
#define VL 16
#define FWD_MR 6 /* samples per forward tile */
#define FWD_NV 4 /* vectors of hidden units per forward tile: 6 x 4 = 24 accumulators */
#define BWD_MR 8 /* input pixels per dW1 tile */
#define BWD_NV 2 /* vectors of hidden units per dW1 tile: 8 x 2 = 16 accumulators */
#elif defined(__AVX__)
#define VL 8
#define FWD_MR 4
#define FWD_NV 2
#define BWD_MR 4
#define BWD_NV 2
#else
#define VL 4
#define FWD_MR 4
#define FWD_NV 2
#define BWD_MR 4
#define BWD_NV 2
#endif

typedef float vf __attribute__((vector_size(VL * sizeof(float))));
typedef int32_t vi __attribute__((vector_size(VL * sizeof(float))));
/* The same vector at float alignment, for loads and stores anywhere in a row. */
typedef float vfu __attribute__((vector_size(VL * sizeof(float)), aligned(4), may_alias));

#define INLINE static inline __attribute__((always_inline))

INLINE vf ld(const float *p) { return *(const vfu *)p; }
INLINE void st(float *p, vf v) { *(vfu *)p = v; }
INLINE vf splat(float a) { return (vf){0} + a; }
INLINE vf relu(vf v) { return (vf)((vi)v & (v > 0)); }
INLINE float hsum(vf v)
{
    float s = 0.0f;
    for (int i = 0; i < VL; i++)
        s += v[i];
    return s;
}

/* ---- forward, layer 1: h (nb, H) = relu(x (nb, D) W1 (D, H) + b1) ------------------------- */

/* One mr x (nv * VL) tile of h: mr samples, nv vectors of hidden units starting at column j. */
INLINE void fwd_tile(int mr, int nv, const bp_net *net, const float *const *xr, size_t j,
                     float *h)
{
    const size_t D = net->D, H = net->H;
    vf acc[FWD_MR][FWD_NV];
    for (int v = 0; v < nv; v++) {
        vf b = net->b1 ? ld(net->b1 + j + v * VL) : splat(0.0f);
        for (int r = 0; r < mr; r++)
            acc[r][v] = b;
    }
    const float *w = net->w1 + j;
    for (size_t k = 0; k < D; k++, w += H) {
        vf wk[FWD_NV];
        for (int v = 0; v < nv; v++)
            wk[v] = ld(w + v * VL);
        for (int r = 0; r < mr; r++) {
            vf a = splat(xr[r][k]);
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * wk[v];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            st(h + r * H + j + v * VL, relu(acc[r][v]));
}

/* Rows [0, nb) of a panel of nv vectors: full tiles of FWD_MR samples, then the remainder. */
INLINE void fwd_panel(int nv, const bp_net *net, const float *const *xr, size_t nb, size_t j,
                      float *h)
{
    size_t r = 0;
    for (; r + FWD_MR <= nb; r += FWD_MR)
        fwd_tile(FWD_MR, nv, net, xr + r, j, h + r * net->H);
    switch (nb - r) {
#if FWD_MR > 5
    case 5: fwd_tile(5, nv, net, xr + r, j, h + r * net->H); break;
#endif
#if FWD_MR > 4
    case 4: fwd_tile(4, nv, net, xr + r, j, h + r * net->H); break;
#endif
    case 3: fwd_tile(3, nv, net, xr + r, j, h + r * net->H); break;
    case 2: fwd_tile(2, nv, net, xr + r, j, h + r * net->H); break;
    case 1: fwd_tile(1, nv, net, xr + r, j, h + r * net->H); break;
    default: break;
    }
}

/* Hidden units past the last whole vector: plain loops. */
static void fwd_cols_scalar(const bp_net *net, const float *const *xr, size_t nb, size_t j0,
                            float *h)
{
    const size_t D = net->D, H = net->H;
    for (size_t s = 0; s < nb; s++)
        for (size_t j = j0; j < H; j++) {
            float z = net->b1 ? net->b1[j] : 0.0f;
            for (size_t k = 0; k < D; k++)
                z += xr[s][k] * net->w1[k * H + j];
            h[s * H + j] = z > 0.0f ? z : 0.0f;
        }
}

static void fwd_layer1(const bp_net *net, const float *const *xr, size_t nb, float *h)
{
    const size_t H = net->H;
    size_t j = 0;
    for (; j + FWD_NV * VL <= H; j += FWD_NV * VL)
        fwd_panel(FWD_NV, net, xr, nb, j, h);
    for (; j + VL <= H; j += VL)
        fwd_panel(1, net, xr, nb, j, h);
    if (j < H)
        fwd_cols_scalar(net, xr, nb, j, h);
}

/* ---- forward, layer 2: logits (nb, C) = h (nb, H) W2 + b2, as dot products with W2t rows ---- */

static float dot(const float *a, const float *b, size_t n)
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

static void fwd_layer2(const bp_net *net, size_t nb, const float *h, float *logits)
{
    const size_t H = net->H, C = net->C;
    for (size_t s = 0; s < nb; s++)
        for (size_t c = 0; c < C; c++)
            logits[s * C + c] = (net->b2 ? net->b2[c] : 0.0f) + dot(h + s * H, net->w2t + c * H, H);
}

void bp_forward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                      float *logits)
{
    fwd_layer1(net, xr, nb, h);
    fwd_layer2(net, nb, h, logits);
}

/* ---- loss ---------------------------------------------------------------------------------- */

/* Softmax of one row in place; returns log(sum(exp(z - max))) + max, the log-partition. Shifting
 * by the max keeps every exponent <= 0, so logits of +-1e4 neither overflow nor give NaN. */
static float softmax_row(float *z, size_t C, int32_t *argmax)
{
    size_t best = 0;
    for (size_t c = 1; c < C; c++)
        if (z[c] > z[best])
            best = c;
    float zmax = z[best], sum = 0.0f;
    for (size_t c = 0; c < C; c++) {
        z[c] = expf(z[c] - zmax);
        sum += z[c];
    }
    float inv = 1.0f / sum;
    for (size_t c = 0; c < C; c++)
        z[c] *= inv;
    *argmax = (int32_t)best;
    return zmax + logf(sum);
}

double bp_softmax_xent(float *logits, const int32_t *y, size_t nb, size_t C, int32_t *pred)
{
    double loss = 0.0;
    for (size_t s = 0; s < nb; s++) {
        float *z = logits + s * C;
        float zy = z[y[s]];
        float lse = softmax_row(z, C, &pred[s]);
        loss += (double)lse - (double)zy;
        z[y[s]] -= 1.0f;
    }
    return loss;
}

void bp_softmax(float *logits, size_t nb, size_t C, int32_t *pred)
{
    int32_t dummy;
    for (size_t s = 0; s < nb; s++)
        softmax_row(logits + s * C, C, pred ? &pred[s] : &dummy);
}

/* ---- backward ------------------------------------------------------------------------------ */

/* dW2t (C, H) += dl^T h, db2 += sum dl: axpys along the hidden dimension. */
static void bwd_layer2(const bp_net *net, size_t nb, const float *h, const float *dl, bp_grads *g)
{
    const size_t H = net->H, C = net->C;
    for (size_t s = 0; s < nb; s++) {
        const float *hs = h + s * H;
        for (size_t c = 0; c < C; c++) {
            float d = dl[s * C + c];
            float *gw = g->w2t + c * H;
            size_t j = 0;
            for (; j + VL <= H; j += VL)
                st(gw + j, ld(gw + j) + splat(d) * ld(hs + j));
            for (; j < H; j++)
                gw[j] += d * hs[j];
            if (g->b2)
                g->b2[c] += d;
        }
    }
}

/* dh (nb, H) = (dl W2^T) masked by h > 0, written over h; db1 += sum over samples of dh. */
static void bwd_hidden(const bp_net *net, size_t nb, float *h, const float *dl, bp_grads *g)
{
    const size_t H = net->H, C = net->C;
    for (size_t s = 0; s < nb; s++) {
        float *hs = h + s * H;
        const float *ds = dl + s * C;
        size_t j = 0;
        for (; j + VL <= H; j += VL) {
            vf acc = splat(0.0f);
            for (size_t c = 0; c < C; c++)
                acc += splat(ds[c]) * ld(net->w2t + c * H + j);
            vf hv = ld(hs + j);
            vf dh = (vf)((vi)acc & (hv > 0));
            st(hs + j, dh);
            if (g->b1)
                st(g->b1 + j, ld(g->b1 + j) + dh);
        }
        for (; j < H; j++) {
            float acc = 0.0f;
            for (size_t c = 0; c < C; c++)
                acc += ds[c] * net->w2t[c * H + j];
            float dh = hs[j] > 0.0f ? acc : 0.0f;
            hs[j] = dh;
            if (g->b1)
                g->b1[j] += dh;
        }
    }
}

/* One mr x (nv * VL) tile of dW1 (D, H) += x^T (D, nb) dh (nb, H): mr input pixels from k,
 * nv vectors of hidden units from j, summed over the block's samples. */
INLINE void bwd_tile(int mr, int nv, const bp_net *net, const float *const *xr, size_t nb,
                     const float *dh, size_t k, size_t j, float *gw1, int first)
{
    const size_t H = net->H;
    float *out = gw1 + k * H + j;
    vf acc[BWD_MR][BWD_NV];
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            acc[r][v] = first ? splat(0.0f) : ld(out + r * H + v * VL);
    for (size_t s = 0; s < nb; s++) {
        const float *xs = xr[s] + k;
        vf d[BWD_NV];
        for (int v = 0; v < nv; v++)
            d[v] = ld(dh + s * H + j + v * VL);
        for (int r = 0; r < mr; r++) {
            vf a = splat(xs[r]);
            for (int v = 0; v < nv; v++)
                acc[r][v] += a * d[v];
        }
    }
    for (int r = 0; r < mr; r++)
        for (int v = 0; v < nv; v++)
            st(out + r * H + v * VL, acc[r][v]);
}

INLINE void bwd_panel(int nv, const bp_net *net, const float *const *xr, size_t nb,
                      const float *dh, size_t j, float *gw1, int first)
{
    const size_t D = net->D;
    size_t k = 0;
    for (; k + BWD_MR <= D; k += BWD_MR)
        bwd_tile(BWD_MR, nv, net, xr, nb, dh, k, j, gw1, first);
    for (; k < D; k++)
        bwd_tile(1, nv, net, xr, nb, dh, k, j, gw1, first);
}

static void bwd_cols_scalar(const bp_net *net, const float *const *xr, size_t nb,
                            const float *dh, size_t j0, float *gw1, int first)
{
    const size_t D = net->D, H = net->H;
    for (size_t k = 0; k < D; k++)
        for (size_t j = j0; j < H; j++) {
            float acc = first ? 0.0f : gw1[k * H + j];
            for (size_t s = 0; s < nb; s++)
                acc += xr[s][k] * dh[s * H + j];
            gw1[k * H + j] = acc;
        }
}

static void bwd_layer1(const bp_net *net, const float *const *xr, size_t nb, const float *dh,
                       float *gw1, int first)
{
    const size_t H = net->H;
    size_t j = 0;
    for (; j + BWD_NV * VL <= H; j += BWD_NV * VL)
        bwd_panel(BWD_NV, net, xr, nb, dh, j, gw1, first);
    for (; j + VL <= H; j += VL)
        bwd_panel(1, net, xr, nb, dh, j, gw1, first);
    if (j < H)
        bwd_cols_scalar(net, xr, nb, dh, j, gw1, first);
}

void bp_backward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                       const float *dl, bp_grads *g, int first)
{
    bwd_layer2(net, nb, h, dl, g);
    bwd_hidden(net, nb, h, dl, g);
    bwd_layer1(net, xr, nb, h, g->w1, first);
}
