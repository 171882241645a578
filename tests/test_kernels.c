/* test_kernels.c: every kernel set this CPU runs, against naive backprop, itself and the others. */
#define _POSIX_C_SOURCE 200809L
#include "kernels.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

/* ---- a network and a block of samples -------------------------------------------------------- */

/* A net of width LD whose kernels see the view of hidden units [j0, j0 + H), with its gradient
 * sums and a block of nb samples. Owns everything. */
typedef struct fixture {
    size_t D, H, C, LD, j0, nb;
    float *w1, *b1, *w2t, *b2;       /* (D, LD), (LD), (C, LD), (C) */
    float *gw1, *gb1, *gw2t, *gb2;   /* same shapes */
    float *x;                        /* (nb, D) */
    const float **xr;                /* (nb) rows of x */
    int32_t *y;                      /* (nb) */
    int bias;
} fixture;

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static float uniform(uint64_t *s) { return (float)lcg(s) / (float)(1ULL << 31) * 2.0f - 1.0f; }

static float *floats(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

/* Weights uniform in +-0.3; inputs with zero runs, whole zero samples and zero pixel columns,
 * like image backgrounds, so the zero-skipping lists have every shape. */
static fixture fx_make(size_t D, size_t H, size_t C, size_t LD, size_t j0, size_t nb, int bias,
                       uint64_t seed)
{
    fixture f = {D, H, C, LD, j0, nb, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, bias};
    uint64_t s = seed * 2654435761u + 1;
    f.w1 = floats(D * LD);
    f.b1 = floats(LD);
    f.w2t = floats(C * LD);
    f.b2 = floats(C);
    f.gw1 = floats(D * LD);
    f.gb1 = floats(LD);
    f.gw2t = floats(C * LD);
    f.gb2 = floats(C);
    for (size_t i = 0; i < D * LD; i++)
        f.w1[i] = 0.3f * uniform(&s);
    for (size_t i = 0; i < LD; i++)
        f.b1[i] = 0.1f * uniform(&s);
    for (size_t i = 0; i < C * LD; i++)
        f.w2t[i] = 0.3f * uniform(&s);
    for (size_t i = 0; i < C; i++)
        f.b2[i] = 0.1f * uniform(&s);
    f.x = floats(nb * D);
    f.xr = calloc(nb ? nb : 1, sizeof *f.xr);
    f.y = calloc(nb ? nb : 1, sizeof *f.y);
    for (size_t r = 0; r < nb; r++) {
        for (size_t k = 0; k < D; k++) {
            int zero = r % 9 == 4 || k % 11 == 0 || (k + 3 * r) % 7 < 3;
            f.x[r * D + k] = zero ? 0.0f : uniform(&s);
        }
        f.xr[r] = f.x + r * D;
        f.y[r] = (int32_t)(lcg(&s) % C);
    }
    return f;
}

static void fx_free(fixture *f)
{
    float *all[] = {f->w1, f->b1, f->w2t, f->b2, f->gw1, f->gb1, f->gw2t, f->gb2, f->x};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++)
        free(all[i]);
    free(f->xr);
    free(f->y);
}

static bp_net fx_net(const fixture *f)
{
    return (bp_net){f->D, f->H, f->C, f->LD, f->w1 + f->j0, f->bias ? f->b1 + f->j0 : NULL,
                    f->w2t + f->j0, f->bias ? f->b2 : NULL, NULL};
}

static bp_grads fx_grads(const fixture *f)
{
    return (bp_grads){f->gw1 + f->j0, f->bias ? f->gb1 + f->j0 : NULL, f->gw2t + f->j0,
                      f->bias ? f->gb2 : NULL, NULL};
}

/* What one forward + loss + backward pass of a kernel set gives. */
typedef struct pass {
    float *h, *logits, *dh; /* (nb, H), (nb, C) logits, then dlogits; (nb, H) dL/dpre-activation */
    double loss;
} pass;

static void pass_free(pass *p)
{
    free(p->h);
    free(p->logits);
    free(p->dh);
}

/* Samples [s0, s0 + nb) of f through set k: forward_block, softmax_xent, backward_block (first
 * as given), gradients summed into f's g*. */
static pass run_set(const bp_kernels *k, fixture *f, size_t s0, size_t nb, int first)
{
    bp_scratch sc;
    cr_assert(bp_scratch_alloc(&sc, k, f->D, f->H, f->C), "%s: scratch_alloc failed", k->name);
    cr_assert_eq(sc.k, k, "%s: the scratch does not record its set", k->name);
    bp_net net = fx_net(f);
    bp_grads g = fx_grads(f);
    pass p = {floats(BP_BLOCK * f->H), floats(BP_BLOCK * f->C), floats(BP_BLOCK * f->H), 0.0};
    int32_t pred[BP_BLOCK];
    bp_forward_block(&net, f->xr + s0, nb, p.h, p.logits, &sc);
    memcpy(p.dh, p.h, nb * f->H * sizeof(float));
    p.loss = bp_softmax_xent(p.logits, f->y + s0, nb, f->C, pred);
    bp_backward_block(&net, f->xr + s0, nb, p.dh, p.logits, &g, first, &sc);
    bp_scratch_free(&sc);
    return p;
}

/* ---- the reference: backprop straight from the formulas, in double ---------------------------- */

typedef struct naive {
    double *h, *dl, *gw1, *gb1, *gw2t, *gb2; /* (nb, H), (nb, C), (D, H), (H), (C, H), (C) */
} naive;

static naive naive_pass(const fixture *f)
{
    const size_t D = f->D, H = f->H, C = f->C, nb = f->nb, j0 = f->j0, LD = f->LD;
    naive n = {calloc(nb * H + 1, sizeof(double)), calloc(nb * C + 1, sizeof(double)),
               calloc(D * H + 1, sizeof(double)), calloc(H + 1, sizeof(double)),
               calloc(C * H + 1, sizeof(double)), calloc(C + 1, sizeof(double))};
    double *dh = calloc(H + 1, sizeof(double));
    for (size_t s = 0; s < nb; s++) {
        const float *x = f->xr[s];
        double *h = n.h + s * H, *z = n.dl + s * C, zmax = -INFINITY, sum = 0.0;
        for (size_t j = 0; j < H; j++) {
            double a = f->bias ? f->b1[j0 + j] : 0.0;
            for (size_t k = 0; k < D; k++)
                a += (double)x[k] * f->w1[k * LD + j0 + j];
            h[j] = a > 0.0 ? a : 0.0;
        }
        for (size_t c = 0; c < C; c++) {
            z[c] = f->bias ? f->b2[c] : 0.0;
            for (size_t j = 0; j < H; j++)
                z[c] += h[j] * f->w2t[c * LD + j0 + j];
            zmax = fmax(zmax, z[c]);
        }
        for (size_t c = 0; c < C; c++)
            sum += exp(z[c] - zmax);
        for (size_t c = 0; c < C; c++) {
            z[c] = exp(z[c] - zmax) / sum - (c == (size_t)f->y[s]);
            n.gb2[c] += z[c];
            for (size_t j = 0; j < H; j++)
                n.gw2t[c * H + j] += z[c] * h[j];
        }
        for (size_t j = 0; j < H; j++) {
            double a = 0.0;
            for (size_t c = 0; c < C; c++)
                a += z[c] * f->w2t[c * LD + j0 + j];
            dh[j] = h[j] > 0.0 ? a : 0.0;
            n.gb1[j] += dh[j];
        }
        for (size_t k = 0; k < D; k++)
            for (size_t j = 0; j < H; j++)
                n.gw1[k * H + j] += (double)x[k] * dh[j];
    }
    free(dh);
    return n;
}

static void naive_free(naive *n)
{
    free(n->h);
    free(n->dl);
    free(n->gw1);
    free(n->gb1);
    free(n->gw2t);
    free(n->gb2);
}

/* Relative Frobenius error of rows x cols floats (row stride ld) against doubles (row stride
 * cols), scaled by two so a block summed twice (first, then accumulate) compares with ref. */
static double rel_err(const float *got, size_t ld, const double *ref, size_t rows, size_t cols,
                      double scale)
{
    double num = 0.0, den = 1e-30;
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) {
            double d = got[r * ld + c] - scale * ref[r * cols + c];
            num += d * d;
            den += scale * scale * ref[r * cols + c] * ref[r * cols + c];
        }
    return sqrt(num / den);
}

/* ---- one kernel set against the naive reference ---------------------------------------------- */

/* The set the test runs, or the test skips (with a message) where the CPU lacks it. */
static const bp_kernels *need(const char *name)
{
    const bp_kernels *k = bp_kernels_named(name);
    if (!k)
        cr_skip_test("kernel set %s: not available on this CPU or build", name);
    return k;
}

/* One case: the same block twice, first with first = 1 then accumulating, so dW1 must be twice
 * the reference and the other sums too (they always accumulate). */
static void check_case(const bp_kernels *k, size_t D, size_t H, size_t C, size_t LD, size_t j0,
                       size_t nb, int bias)
{
    fixture f = fx_make(D, H, C, LD, j0, nb, bias, D * 1000003u + H * 1009u + nb);
    naive n = naive_pass(&f);
    pass a = run_set(k, &f, 0, nb, 1);
    pass b = run_set(k, &f, 0, nb, 0);
    const double tol = 2e-5;
    double e[6] = {rel_err(a.h, H, n.h, nb, H, 1), rel_err(a.logits, C, n.dl, nb, C, 1),
                   rel_err(f.gw1 + j0, LD, n.gw1, D, H, 2), rel_err(f.gw2t + j0, LD, n.gw2t, C, H, 2),
                   bias ? rel_err(f.gb1 + j0, LD, n.gb1, 1, H, 2) : 0.0,
                   bias ? rel_err(f.gb2, C, n.gb2, 1, C, 2) : 0.0};
    static const char *const what[6] = {"h", "dlogits", "dW1", "dW2t", "db1", "db2"};
    for (int i = 0; i < 6; i++)
        cr_assert(e[i] <= tol, "%s D=%zu H=%zu C=%zu ld=%zu j0=%zu nb=%zu bias=%d: %s relative error %g",
                  k->name, D, H, C, LD, j0, nb, bias, what[i], e[i]);
    for (size_t r = 0; r < D; r++)
        for (size_t c = 0; c < LD; c++)
            cr_assert(c - j0 < H || f.gw1[r * LD + c] == 0.0f,
                      "%s H=%zu ld=%zu j0=%zu: dW1 column %zu outside the view was written", k->name,
                      H, LD, j0, c);
    cr_assert(tu_same_bits(a.h, b.h, nb * H) && tu_same_bits(a.logits, b.logits, nb * C),
              "%s: the same block twice gave different bits", k->name);
    pass_free(&a);
    pass_free(&b);
    naive_free(&n);
    fx_free(&f);
}

/* Every block size 1..BP_BLOCK (every tile remainder of every set, multiples of every tile
 * height) at a width with whole panels, a one-vector panel and a tail in every set; then every
 * width 1..80 (every remainder of the 16-, 32- and 64-wide panels and of the 4-, 8- and 16-float
 * vectors); views of a wider net; and one MNIST-sized case. */
static void check_against_naive(const char *name)
{
    const bp_kernels *k = need(name);
    for (size_t nb = 1; nb <= BP_BLOCK; nb++)
        check_case(k, 29, 91, 5, 91, 0, nb, nb % 5 != 0);
    for (size_t H = 1; H <= 80; H++) {
        check_case(k, 29, H, 3, H, 0, 13, 1);
        check_case(k, 13, H, 4, H + 19, 7, BP_BLOCK, H % 3 != 0);
    }
    check_case(k, 784, 150, 10, 256, 64, BP_BLOCK, 1);
    /* Widths of 3m + 1 vectors on avx2, which end in two two-vector panels (32 and 80 above). */
    const size_t wide[] = {128, 136, 512};
    for (size_t i = 0; i < sizeof wide / sizeof *wide; i++) {
        check_case(k, 29, wide[i], 3, wide[i], 0, 13, 1);
        check_case(k, 13, wide[i], 4, 2 * wide[i], wide[i], BP_BLOCK, 0);
    }
}

Test(kernels, generic_matches_naive_backprop) { check_against_naive("generic"); }
Test(kernels, avx2_matches_naive_backprop) { check_against_naive("avx2"); }
Test(kernels, avx512_matches_naive_backprop) { check_against_naive("avx512"); }

/* ---- determinism: one element's arithmetic does not depend on tiles, blocks or views ---------- */

/* Gradient sums of f as they stand, (D, LD) + (LD) + (C, LD) + (C), copied. */
static float *grads_copy(const fixture *f)
{
    size_t n1 = f->D * f->LD, n2 = f->LD, n3 = f->C * f->LD;
    float *g = floats(n1 + n2 + n3 + f->C);
    memcpy(g, f->gw1, n1 * sizeof(float));
    memcpy(g + n1, f->gb1, n2 * sizeof(float));
    memcpy(g + n1 + n2, f->gw2t, n3 * sizeof(float));
    memcpy(g + n1 + n2 + n3, f->gb2, f->C * sizeof(float));
    return g;
}

static void grads_zero(fixture *f)
{
    memset(f->gw1, 0, f->D * f->LD * sizeof(float));
    memset(f->gb1, 0, f->LD * sizeof(float));
    memset(f->gw2t, 0, f->C * f->LD * sizeof(float));
    memset(f->gb2, 0, f->C * sizeof(float));
}

/* A block of nb samples in one call equals the same samples one call each (first, then
 * accumulating): h, logits and every gradient sum, bit for bit. This is the per-element order
 * the reproducibility design needs: h by pixels in order, dW1 by samples in order. */
static void check_block_vs_single(const bp_kernels *k, size_t D, size_t H, size_t nb)
{
    fixture f = fx_make(D, H, 7, H, 0, nb, 1, 99 + nb + H);
    size_t ng = D * H + H + 7 * H + 7;
    pass whole = run_set(k, &f, 0, nb, 1);
    float *g_whole = grads_copy(&f);
    grads_zero(&f);
    for (size_t s = 0; s < nb; s++) {
        pass one = run_set(k, &f, s, 1, s == 0);
        cr_assert(tu_same_bits(one.h, whole.h + s * H, H), "%s H=%zu nb=%zu: h of sample %zu differs",
                  k->name, H, nb, s);
        cr_assert(tu_same_bits(one.logits, whole.logits + s * 7, 7),
                  "%s H=%zu nb=%zu: dlogits of sample %zu differ", k->name, H, nb, s);
        pass_free(&one);
    }
    float *g_single = grads_copy(&f);
    cr_assert(tu_same_bits(g_whole, g_single, ng), "%s H=%zu nb=%zu: gradient sums differ", k->name, H, nb);
    free(g_whole);
    free(g_single);
    pass_free(&whole);
    fx_free(&f);
}

/* The hidden units split into views (as a hidden-parallel team splits them) give the full net's
 * h, partial logits and gradient columns, bit for bit; views at BP_HBLOCK multiples also its
 * logits. Views at any offset get the full net's dlogits so their backward pass is comparable. */
static void check_views(const bp_kernels *k, size_t H, const size_t *cuts, size_t ncuts)
{
    const size_t D = 61, C = 6, nb = 37;
    fixture f = fx_make(D, H, C, H, 0, nb, 1, 4242 + H);
    pass full = run_set(k, &f, 0, nb, 1);
    float *g_full = grads_copy(&f);
    grads_zero(&f);
    bp_scratch sc;
    cr_assert(bp_scratch_alloc(&sc, k, D, H, C));
    const size_t nhb = (H + BP_HBLOCK - 1) / BP_HBLOCK;
    float *h = floats(nb * H), *part = floats(nhb * nb * C), *full_part = floats(nhb * nb * C);
    bp_net whole = fx_net(&f);
    bp_logits_partial(&whole, nb, full.h, &sc);
    memcpy(full_part, sc.part, nhb * nb * C * sizeof(float));
    const size_t packed_size = bp_w1_packed_size(k, D, H);
    float *w1p = packed_size ? floats(packed_size) : NULL;
    for (size_t v = 0; v + 1 < ncuts; v++) {
        size_t j0 = cuts[v], w = cuts[v + 1] - j0;
        fixture view = f;
        view.j0 = j0;
        view.H = w;
        bp_net net = fx_net(&view);
        bp_grads g = fx_grads(&view);
        bp_forward_hidden(&net, view.xr, nb, h, &sc);
        for (size_t s = 0; s < nb; s++)
            cr_assert(tu_same_bits(h + s * w, full.h + s * H + j0, w),
                      "%s: h of view [%zu, %zu) differs in sample %zu", k->name, j0, j0 + w, s);
        if (j0 % BP_HBLOCK == 0 && (w % BP_HBLOCK == 0 || j0 + w == H)) {
            /* A block-aligned view reads W1 packed once for the step: each view packs its own
             * units into the shared buffer, as the threads of a step do, and gets the same h. */
            if (w1p) {
                bp_pack_w1(k, &whole, j0, j0 + w, w1p);
                bp_net packed = net;
                packed.w1p = w1p + j0 * D;
                memset(h, 0xff, nb * w * sizeof(float));
                bp_forward_hidden(&packed, view.xr, nb, h, &sc);
                for (size_t s = 0; s < nb; s++)
                    cr_assert(tu_same_bits(h + s * w, full.h + s * H + j0, w),
                              "%s: h of view [%zu, %zu) from packed W1 differs in sample %zu",
                              k->name, j0, j0 + w, s);
            }
            bp_logits_partial(&net, nb, h, &sc);
            memcpy(part, sc.part, (w + BP_HBLOCK - 1) / BP_HBLOCK * nb * C * sizeof(float));
            size_t q0 = j0 / BP_HBLOCK, nq = (w + BP_HBLOCK - 1) / BP_HBLOCK;
            cr_assert(tu_same_bits(part, full_part + q0 * nb * C, nq * nb * C),
                      "%s: partial logits of view [%zu, %zu) differ", k->name, j0, j0 + w);
        }
        /* Backward from the full net's dlogits; b2's sum belongs to the first view only. */
        if (j0 != 0)
            g.b2 = NULL;
        bp_backward_block(&net, view.xr, nb, h, full.logits, &g, 1, &sc);
    }
    float *g_views = grads_copy(&f);
    cr_assert(tu_same_bits(g_full, g_views, D * H + H + C * H + C),
              "%s H=%zu: gradients of the views differ from the whole net's", k->name, H);
    free(g_full);
    free(g_views);
    free(h);
    free(part);
    free(full_part);
    free(w1p);
    bp_scratch_free(&sc);
    pass_free(&full);
    fx_free(&f);
}

static void check_determinism(const char *name)
{
    const bp_kernels *k = need(name);
    const size_t sizes[] = {1, 5, 6, 7, 12, 13, 24, 25, 48, 63, BP_BLOCK};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        check_block_vs_single(k, 37, 83, sizes[i]);
    check_block_vs_single(k, 20, 7, 19);
    const size_t blocks[] = {0, 64, 128, 150}, odd[] = {0, 7, 40, 41, 99, 150};
    check_views(k, 150, blocks, 4);
    check_views(k, 150, odd, 6);
    /* A hidden split's halves of 256 units: on avx2 the whole net ends in a 3 + 2 panel cut,
     * each half in 2 + 2. */
    const size_t halves[] = {0, 128, 256};
    check_views(k, 256, halves, 3);
    /* Rows at least PREFETCH_MIN_LD floats apart: the forward read in place asks for the next
     * panel ahead (kernels_body.h), which must leave every view's sums as they were. */
    const size_t wide[] = {0, 64, 1000, 2112};
    check_views(k, 2112, wide, 4);
}

Test(kernels, generic_is_deterministic_across_tiles_blocks_and_views) { check_determinism("generic"); }
Test(kernels, avx2_is_deterministic_across_tiles_blocks_and_views) { check_determinism("avx2"); }
Test(kernels, avx512_is_deterministic_across_tiles_blocks_and_views) { check_determinism("avx512"); }

/* ---- dense blocks: a block with no zero input takes the dense lists, with the same bits ------ */

/* A block of a fixture's samples idx[0..nb), and whether it has no zero input (so that the
 * lists must be the dense ones). */
typedef struct dblock {
    size_t nb, idx[BP_BLOCK];
    int dense;
} dblock;

/* Blocks b[0..nblk) of f through set k, dlogits dl (f->nb, C), from zeroed sums with first = 1:
 * one block through bp_forward_hidden and bp_backward_block, several as one group
 * (bp_forward_hidden_group, bp_backward_hidden, bp_backward_w1_group). Block i's h goes to
 * h[i] (BP_BLOCK, H); returns the gradient sums (grads_copy). Checks that every block took the
 * lists it should, forward and backward. */
static float *run_blocks(const bp_kernels *k, fixture *f, const float *dl, size_t nblk,
                         const dblock *b, float *const *h)
{
    const size_t D = f->D, H = f->H, C = f->C;
    bp_scratch sc[BP_FWD_GROUP], *scp[BP_FWD_GROUP];
    const float *rows[BP_FWD_GROUP][BP_BLOCK];
    const float *const *xr[BP_FWD_GROUP];
    float *dh[BP_FWD_GROUP], *dlb[BP_FWD_GROUP];
    size_t nb[BP_FWD_GROUP];
    bp_net net = fx_net(f);
    bp_grads g = fx_grads(f);
    grads_zero(f);
    for (size_t i = 0; i < nblk; i++) {
        cr_assert(bp_scratch_alloc(&sc[i], k, D, H, C), "%s: scratch_alloc failed", k->name);
        scp[i] = &sc[i];
        nb[i] = b[i].nb;
        dh[i] = floats(BP_BLOCK * H);
        dlb[i] = floats(BP_BLOCK * C);
        for (size_t r = 0; r < nb[i]; r++) {
            rows[i][r] = f->xr[b[i].idx[r]];
            memcpy(dlb[i] + r * C, dl + b[i].idx[r] * C, C * sizeof(float));
        }
        xr[i] = rows[i];
    }
    if (nblk == 1)
        bp_forward_hidden(&net, xr[0], nb[0], dh[0], &sc[0]);
    else
        bp_forward_hidden_group(&net, nblk, xr, nb, dh, scp);
    for (size_t i = 0; i < nblk; i++) {
        cr_assert_eq(sc[i].fwd_kstep == 0, b[i].dense, "%s D=%zu H=%zu: block %zu of %zu took the %s forward lists",
                     k->name, D, H, i, nblk, b[i].dense ? "sparse" : "dense");
        memcpy(h[i], dh[i], nb[i] * H * sizeof(float));
    }
    if (nblk == 1) {
        bp_backward_block(&net, xr[0], nb[0], dh[0], dlb[0], &g, 1, &sc[0]);
    } else {
        for (size_t i = 0; i < nblk; i++)
            bp_backward_hidden(&net, nb[i], dh[i], dlb[i], &g, &sc[i]);
        bp_backward_w1_group(&net, nblk, xr, nb, dh, &g, 1, scp);
    }
    for (size_t i = 0; i < nblk; i++) {
        cr_assert_eq(sc[i].bwd_rows != NULL, b[i].dense, "%s D=%zu H=%zu: block %zu of %zu took the %s backward lists",
                     k->name, D, H, i, nblk, b[i].dense ? "sparse" : "dense");
        free(dh[i]);
        free(dlb[i]);
        bp_scratch_free(&sc[i]);
    }
    return grads_copy(f);
}

/* Blocks m[i] (dense blocks d[i] with extra samples among them) gave the same h for every
 * sample of d[i], and the same gradient sums, bit for bit. */
static void check_same_blocks(const bp_kernels *k, const fixture *f, size_t nblk, const dblock *d,
                              float *const *hd, const float *gd, const dblock *m,
                              float *const *hm, const float *gm)
{
    const size_t H = f->H;
    for (size_t i = 0; i < nblk; i++)
        for (size_t q = 0; q < d[i].nb; q++) {
            size_t r = 0;
            while (r < m[i].nb && m[i].idx[r] != d[i].idx[q])
                r++;
            cr_assert_lt(r, m[i].nb);
            cr_assert(tu_same_bits(hd[i] + q * H, hm[i] + r * H, H),
                      "%s D=%zu H=%zu, %zu block(s): h of sample %zu differs between the dense and the sparse lists",
                      k->name, f->D, H, nblk, d[i].idx[q]);
        }
    cr_assert(tu_same_bits(gd, gm, f->D * H + H + f->C * H + f->C),
              "%s D=%zu H=%zu, %zu block(s): gradient sums differ between the dense and the sparse lists",
              k->name, f->D, H, nblk);
}

/* nd samples with no zero input, twice (dense blocks d0, d1), against the same samples with one
 * extra sample each whose single zero pixel sends its block through the sparse lists (m0: the
 * extra in the middle, zero at the last pixel, in a bitmap word's top bit used; m1: at the end,
 * zero in the middle). The extras' dlogits are zero, so their dh rows are zero and add exact
 * zeros to every sum: each block alone, then as groups (sparse + sparse, sparse + dense). */
static void check_dense_case(const bp_kernels *k, size_t D, size_t H, size_t nd)
{
    const size_t C = 7, n = 2 * nd + 2;
    fixture f = fx_make(D, H, C, H, 0, n, 1, 31 * D + H + nd);
    for (size_t i = 0; i < n * D; i++)
        if (f.x[i] == 0.0f)
            f.x[i] = (i % 2 ? -1.0f : 1.0f) * (0.125f + (float)(i % 29) / 32.0f);
    f.x[2 * nd * D + D - 1] = 0.0f;
    f.x[(2 * nd + 1) * D + D / 2] = 0.0f;
    uint64_t s = 77 + D;
    float *dl = floats(n * C);
    for (size_t i = 0; i < 2 * nd * C; i++)
        dl[i] = uniform(&s);
    dblock d[2] = {{nd, {0}, 1}, {nd, {0}, 1}}, m[2] = {{nd + 1, {0}, 0}, {nd + 1, {0}, 0}};
    for (size_t r = 0, at = nd / 3; r < nd; r++) {
        d[0].idx[r] = r;
        d[1].idx[r] = m[1].idx[r] = nd + r;
        m[0].idx[r + (r >= at)] = r;
        m[0].idx[at] = 2 * nd;
    }
    m[1].idx[nd] = 2 * nd + 1;
    float *hd[2] = {floats(BP_BLOCK * H), floats(BP_BLOCK * H)};
    float *hm[2] = {floats(BP_BLOCK * H), floats(BP_BLOCK * H)};
    for (size_t i = 0; i < 2; i++) {
        float *gd = run_blocks(k, &f, dl, 1, &d[i], hd), *gm = run_blocks(k, &f, dl, 1, &m[i], hm);
        check_same_blocks(k, &f, 1, &d[i], hd, gd, &m[i], hm, gm);
        free(gd);
        free(gm);
    }
    const dblock mixed[2] = {m[0], d[1]};
    float *gd = run_blocks(k, &f, dl, 2, d, hd), *gm = run_blocks(k, &f, dl, 2, m, hm);
    check_same_blocks(k, &f, 2, d, hd, gd, m, hm, gm);
    free(gm);
    gm = run_blocks(k, &f, dl, 2, mixed, hm);
    check_same_blocks(k, &f, 2, d, hd, gd, mixed, hm, gm);
    free(gd);
    free(gm);
    for (size_t i = 0; i < 2; i++) {
        free(hd[i]);
        free(hm[i]);
    }
    free(dl);
    fx_free(&f);
}

/* Pixels in a partial last bitmap word (784, 29, 61) or whole words (128); pixel counts with and
 * without single-pixel dW1 tiles; widths from SPARSE_MIN_H (40) up, with and without greedy
 * grouping; whole and partial blocks. */
static void check_dense_blocks(const char *name)
{
    const bp_kernels *k = need(name);
    check_dense_case(k, 784, 91, 63);
    check_dense_case(k, 128, 64, 63);
    check_dense_case(k, 29, 40, 20);
    check_dense_case(k, 61, 150, 37);
}

Test(kernels, generic_dense_blocks_match_the_sparse_lists) { check_dense_blocks("generic"); }
Test(kernels, avx2_dense_blocks_match_the_sparse_lists) { check_dense_blocks("avx2"); }
Test(kernels, avx512_dense_blocks_match_the_sparse_lists) { check_dense_blocks("avx512"); }

/* ---- the backward's panel cuts: grouped blocks and W1's in-pass update ---------------------- */

/* Three blocks of f (64, 64 and the rest of f->nb samples) through the forward, each in its own
 * scratch, and their dh (BP_BLOCK, H) from random dlogits: what the backward's dW1 pass reads. */
typedef struct wblocks {
    bp_scratch sc[3];
    bp_scratch *scp[3];
    const float *const *xr[3];
    size_t nb[3];
    float *dh[3];
} wblocks;

static void wblocks_make(wblocks *w, const bp_kernels *k, fixture *f)
{
    bp_net net = fx_net(f);
    bp_grads g = fx_grads(f);
    uint64_t s = 91 + f->H;
    float *dl = floats(BP_BLOCK * f->C);
    for (size_t i = 0; i < 3; i++) {
        cr_assert(bp_scratch_alloc(&w->sc[i], k, f->D, f->H, f->C));
        w->scp[i] = &w->sc[i];
        w->xr[i] = f->xr + i * BP_BLOCK;
        w->nb[i] = i < 2 ? BP_BLOCK : f->nb - 2 * BP_BLOCK;
        w->dh[i] = floats(BP_BLOCK * f->H);
    }
    bp_forward_hidden_group(&net, 3, w->xr, w->nb, w->dh, w->scp);
    for (size_t i = 0; i < 3; i++) {
        for (size_t q = 0; q < w->nb[i] * f->C; q++)
            dl[q] = uniform(&s);
        bp_backward_hidden(&net, w->nb[i], w->dh[i], dl, &g, &w->sc[i]);
    }
    free(dl);
}

static void wblocks_free(wblocks *w)
{
    for (size_t i = 0; i < 3; i++) {
        free(w->dh[i]);
        bp_scratch_free(&w->sc[i]);
    }
}

/* dW1 sums of blocks [b0, b1) into g (first: the first overwrites them), as one group with W1's
 * update u (or NULL) in the last block, or (single) one call per block. */
static void wblocks_w1(wblocks *w, const fixture *f, size_t b0, size_t b1, int first, int single,
                       bp_w1_update *u)
{
    bp_net net = fx_net(f);
    bp_grads g = fx_grads(f);
    for (size_t i = b0; i < b1; i = single ? i + 1 : b1) {
        const size_t n = single ? 1 : b1 - i;
        g.w1_update = i + n == b1 ? u : NULL;
        bp_backward_w1_group(&net, n, w->xr + i, w->nb + i, w->dh + i, &g, first && i == b0,
                             w->scp + i);
    }
}

/* W1 and its momenta (D, LD) of the view after the update pass from the dW1 sums gs (D, LD):
 * each row's mean gradient (sums times inv_nb, or rounded through fixed point), then the set's
 * sgd over the row, as the step's separate passes do. */
static void update_rows(const bp_kernels *k, const fixture *f, const float *gs, float *w, float *v,
                        const bp_w1_update *u)
{
    float *g = floats(f->H);
    for (size_t r = 0; r < f->D; r++) {
        const float *s = gs + r * f->LD + f->j0;
        if (u->fixed)
            k->fixed_round(s, f->H, u->scale, u->mul, g);
        else
            for (size_t i = 0; i < f->H; i++)
                g[i] = s[i] * u->inv_nb;
        k->sgd(w + r * f->LD + f->j0, v + r * f->LD + f->j0, g, f->H, &u->p);
    }
    free(g);
}

/* The view [j0, j0 + H) of a net LD wide, three blocks: dW1 through one group, and W1's in-pass
 * update after one group of three, after a group of one then a group of two (stored sums read
 * back), and after three groups of one, equal bit for bit to the sums of one backward pass per
 * block and to the update pass over them. Widths here cut into every kind of backward panel. */
static void check_w1_panels(const bp_kernels *k, size_t H, size_t LD, size_t j0, int fixed)
{
    const size_t D = 29, C = 5, nbt = 2 * BP_BLOCK + 21, n = D * LD;
    fixture f = fx_make(D, H, C, LD, j0, nbt, 1, 7 * H + j0 + (size_t)fixed);
    wblocks w;
    wblocks_make(&w, k, &f);
    float *ref = floats(n), *w0 = floats(n), *v0 = floats(n), *wr = floats(n), *vr = floats(n);
    uint64_t s = 5 + H;
    for (size_t i = 0; i < n; i++)
        v0[i] = 0.01f * uniform(&s);
    memcpy(w0, f.w1, n * sizeof(float));
    wblocks_w1(&w, &f, 0, 3, 1, 1, NULL); /* the reference sums: one call per block */
    memcpy(ref, f.gw1, n * sizeof(float));
    memset(f.gw1, 0, n * sizeof(float));
    wblocks_w1(&w, &f, 0, 3, 1, 0, NULL);
    cr_assert(tu_same_bits(ref, f.gw1, n), "%s H=%zu j0=%zu: dW1 of a group of three differs", k->name, H, j0);
    bp_w1_update u = {.ld = LD, .H = H, .fixed = fixed, .scale = 1048576.0, .inv_nb = 1.0f / (float)nbt,
                      .p = {.lr = 0.05f, .momentum = 0.9f, .decay = 1e-3f, .clip = 1.0f, .nesterov = fixed}};
    u.mul = 1.0 / (u.scale * (double)nbt);
    memcpy(wr, w0, n * sizeof(float));
    memcpy(vr, v0, n * sizeof(float));
    update_rows(k, &f, ref, wr, vr, &u);
    for (int c = 0; c < 3; c++) { /* groups of 3; of 1 then 2; of 1, 1, 1 */
        float *wu = floats(n), *vu = floats(n);
        memcpy(wu, w0, n * sizeof(float));
        memcpy(vu, v0, n * sizeof(float));
        u.w = wu + j0;
        u.v = vu + j0;
        memset(f.gw1, 0, n * sizeof(float));
        if (c == 1)
            wblocks_w1(&w, &f, 0, 1, 1, 0, NULL);
        wblocks_w1(&w, &f, c == 1, 3, c != 1, c == 2, &u);
        cr_assert(tu_same_bits(wr, wu, n) && tu_same_bits(vr, vu, n),
                  "%s H=%zu LD=%zu j0=%zu fixed=%d, case %d: W1's in-pass update differs from the update pass",
                  k->name, H, LD, j0, fixed, c);
        free(wu);
        free(vu);
    }
    free(ref);
    free(w0);
    free(v0);
    free(wr);
    free(vr);
    wblocks_free(&w);
    fx_free(&f);
}

/* Widths that end in every panel cut of every set: a lone vector (8, 16), a partial one (12),
 * two vectors and a tail (35), 3m + 1 vectors (32, 80, 128, 512 on avx2: ... + 2 + 2), 4m + 1 and
 * 4m + 3 (80, 48, 112 on avx512), 136 (avx2: ... + 3 + 2), and a hidden split's 128-unit slice
 * of a 256-unit net. */
static void check_backward_panels(const char *name)
{
    const bp_kernels *k = need(name);
    const size_t widths[] = {8, 12, 16, 32, 35, 48, 80, 100, 112, 128, 136, 512};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        for (int fixed = 0; fixed < 2; fixed++)
            check_w1_panels(k, widths[i], widths[i], 0, fixed);
    check_w1_panels(k, 128, 256, 128, 0);
    check_w1_panels(k, 128, 256, 0, 1);
    check_w1_panels(k, 120, 256, 136, 0);
}

Test(kernels, generic_backward_panels_group_and_update_in_the_pass) { check_backward_panels("generic"); }
Test(kernels, avx2_backward_panels_group_and_update_in_the_pass) { check_backward_panels("avx2"); }
Test(kernels, avx512_backward_panels_group_and_update_in_the_pass) { check_backward_panels("avx512"); }

/* ---- the sets agree with each other ------------------------------------------------------------ */

Test(kernels, every_available_set_agrees_with_generic)
{
    const bp_kernels *ref = bp_kernels_named("generic");
    cr_assert_not_null(ref, "the generic set must always be available");
    size_t nsets;
    const char *const *names = bp_kernels_list(&nsets);
    cr_assert_geq(nsets, 1);
    const size_t shapes[][3] = {{784, 256, 64}, {50, 37, 13}, {29, 17, 1}};
    int compared = 0;
    for (size_t i = 0; i < nsets; i++) {
        const bp_kernels *k = bp_kernels_named(names[i]);
        if (!k) {
            cr_log_info("kernel set %s: not available on this CPU, not compared", names[i]);
            continue;
        }
        for (size_t c = 0; c < sizeof shapes / sizeof *shapes; c++) {
            size_t D = shapes[c][0], H = shapes[c][1], nb = shapes[c][2];
            fixture fa = fx_make(D, H, 10, H, 0, nb, 1, 7), fb = fx_make(D, H, 10, H, 0, nb, 1, 7);
            pass pa = run_set(ref, &fa, 0, nb, 1), pb = run_set(k, &fb, 0, nb, 1);
            float *ga = grads_copy(&fa), *gb = grads_copy(&fb);
            size_t ng = D * H + H + 10 * H + 10;
            double num = 0.0, den = 1e-30;
            for (size_t p = 0; p < ng; p++) {
                num += ((double)ga[p] - gb[p]) * ((double)ga[p] - gb[p]);
                den += (double)ga[p] * ga[p];
            }
            cr_assert(sqrt(num / den) <= 1e-5, "%s vs generic, D=%zu H=%zu nb=%zu: gradients differ by %g",
                      k->name, D, H, nb, sqrt(num / den));
            cr_assert(fabs(pa.loss - pb.loss) <= 1e-5 * fabs(pa.loss), "%s vs generic: loss %.9g vs %.9g",
                      k->name, pb.loss, pa.loss);
            for (size_t p = 0; p < nb * H; p++)
                cr_assert(fabsf(pa.h[p] - pb.h[p]) <= 1e-5f * (1.0f + fabsf(pa.h[p])),
                          "%s vs generic: h[%zu] %g vs %g", k->name, p, pb.h[p], pa.h[p]);
            free(ga);
            free(gb);
            pass_free(&pa);
            pass_free(&pb);
            fx_free(&fa);
            fx_free(&fb);
        }
        compared++;
    }
    cr_assert_geq(compared, 1);
}

/* ---- choosing a set --------------------------------------------------------------------------- */

Test(dispatch, named_sets_and_list)
{
    size_t n;
    const char *const *names = bp_kernels_list(&n);
    cr_assert_str_eq(names[0], "generic");
    for (size_t i = 0; i < n; i++) {
        const bp_kernels *k = bp_kernels_named(names[i]);
        if (k)
            cr_assert_str_eq(k->name, names[i]);
    }
    cr_assert_null(bp_kernels_named("bogus"));
    cr_assert_null(bp_kernels_named(NULL));
    /* The set in use is one this CPU runs, and the public name agrees. */
    cr_assert_not_null(bp_kernels_named(bprop_isa()));
    cr_assert_eq(bp_kernels_choose(NULL, 0), bp_kernels_named(bprop_isa()));
}

/* The choice is made anew from the environment by each caller (a workspace when it is created):
 * nothing of an earlier choice is kept. */
Test(dispatch, choice_follows_the_environment_at_each_call)
{
    char why[160];
    size_t n;
    const char *const *names = bp_kernels_list(&n);
    const bp_kernels *widest = NULL;
    for (size_t i = 0; i < n; i++)
        if (bp_kernels_named(names[i]))
            widest = bp_kernels_named(names[i]);
    cr_assert_eq(unsetenv("BPROP_ISA"), 0);
    cr_assert_eq(bp_kernels_choose(why, sizeof why), widest);
    cr_assert_str_eq(why, "");
    for (size_t i = 0; i < n; i++) {
        const bp_kernels *k = bp_kernels_named(names[i]);
        cr_assert_eq(setenv("BPROP_ISA", names[i], 1), 0);
        cr_assert_eq(bp_kernels_choose(why, sizeof why), k ? k : bp_kernels_named("generic"));
        cr_assert_str_eq(bprop_isa(), k ? names[i] : "generic");
        cr_assert(k ? why[0] == '\0' : strstr(why, "this CPU has no ") != NULL, "%s: %s", names[i], why);
    }
    cr_assert_eq(setenv("BPROP_ISA", "bogus", 1), 0);
    cr_assert_eq(bp_kernels_choose(why, sizeof why), bp_kernels_named("generic"));
    cr_assert(strstr(why, "BPROP_ISA=bogus: no such kernel set (supported: generic") == why, "%s", why);
    bprop_error err;
    cr_assert_eq(bprop_isa_check(&err), BPROP_E_ISA);
    cr_assert_str_eq(err.message, why);
    cr_assert_eq(setenv("BPROP_ISA", "", 1), 0);
    cr_assert_eq(bp_kernels_choose(why, sizeof why), widest);
    cr_assert_eq(bprop_isa_check(&err), BPROP_OK);
}

/* Runs `BPROP_ISA=isa bprop args` and returns its exit status; *err gets stderr (caller frees). */
static int run_cli(const char *isa, const char *args, char **err)
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "BPROP_ISA='%s' '%s' %s 2>&1 >/dev/null", isa, BPROP_CLI_PATH, args);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + len, 1, cap - len - 1, p)) > 0;)
        len += got;
    buf[len] = '\0';
    int st = pclose(p);
    *err = buf;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* One line, `bprop: ` + expected text, and exit 1. */
static void check_refused(const char *isa, const char *args, const char *expect)
{
    char *err;
    int rc = run_cli(isa, args, &err);
    cr_assert_eq(rc, 1, "BPROP_ISA=%s bprop %s: exit %d, stderr: %s", isa, args, rc, err);
    cr_assert(strncmp(err, "bprop: BPROP_ISA=", 17) == 0 && strstr(err, expect),
              "BPROP_ISA=%s bprop %s: unexpected message: %s", isa, args, err);
    char *nl = strchr(err, '\n');
    cr_assert(nl && nl[1] == '\0', "expected one line, got: %s", err);
    free(err);
}

Test(dispatch, cli_refuses_unknown_or_unsupported_sets)
{
    check_refused("bogus", "info /nonexistent.bpm", "bogus: no such kernel set (supported: generic");
    check_refused("AVX2", "eval --help", "no such kernel set");
    size_t n;
    const char *const *names = bp_kernels_list(&n);
    int lacking = 0;
    for (size_t i = 0; i < n; i++)
        if (!bp_kernels_named(names[i])) {
            check_refused(names[i], "info /nonexistent.bpm", "this CPU has no ");
            lacking++;
        }
    if (!lacking)
        cr_log_info("this CPU runs every kernel set: the unsupported-set refusal is not exercised");
    /* A set the CPU runs is accepted: the command then fails for its own reason (no file). */
    char *err;
    cr_assert_eq(run_cli("generic", "info /nonexistent.bpm", &err), 1);
    cr_assert_null(strstr(err, "BPROP_ISA"), "generic was refused: %s", err);
    free(err);
}
