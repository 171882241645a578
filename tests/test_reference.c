/* test_reference.c: every kernel set's whole training step against the double-precision reference. */
#define _POSIX_C_SOURCE 200809L
#include "kernels.h"
#include "reference.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Inputs, classes, samples and batch: three steps of 70, 70 and 60 samples, each of two blocks
 * of the kernels (BP_BLOCK = 64), so that a step sums blocks and the last step is smaller. D is a
 * multiple of 4 and not of 6: both kinds of backward list are built. */
enum { D = 196, C = 10, N = 200, BATCH = 70, STEPS = 3 };

static uint64_t lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static double uniform(uint64_t *s) { return (double)lcg(s) / 2147483648.0; } /* [0, 1) */

/* N samples: dense (every pixel in [0.05, 1)) or sparse (about half the pixels zero in runs,
 * zero pixel columns and a few all-zero samples, like image backgrounds); labels uniform. */
static bprop_dataset *make_data(int sparse, uint64_t seed)
{
    bprop_dataset *d = NULL;
    bprop_error err;
    cr_assert_eq(bprop_dataset_alloc(N, D, C, 1, &d, &err), BPROP_OK, "%s", err.message);
    for (size_t r = 0; r < N; r++) {
        for (size_t k = 0; k < D; k++) {
            const int zero = sparse && (r % 17 == 3 || k % 13 == 0 || (k + 5 * r) % 9 < 4);
            d->x[r * D + k] = zero ? 0.0f : (float)(0.05 + 0.95 * uniform(&seed));
        }
        d->y[r] = (int32_t)(lcg(&seed) % C);
    }
    return d;
}

/* One configuration of the trainer. */
typedef struct ref_case {
    size_t H;
    int sparse, bias;
    float momentum;
    int nesterov;
    float decay, clip;
    int reproducible, threads;
    bprop_parallel parallel;
} ref_case;

static bprop_train_config case_config(const ref_case *t)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 1;
    c.batch = BATCH;
    c.lr = 0.1f;
    c.schedule = BPROP_SCHEDULE_CONSTANT;
    c.shuffle = 0; /* the batches are samples [0, 70), [70, 140), [140, 200) */
    c.momentum = t->momentum;
    c.nesterov = t->nesterov;
    c.weight_decay = t->decay;
    c.clip_norm = t->clip;
    c.reproducible = t->reproducible;
    c.threads = t->threads;
    c.parallel = t->parallel;
    return c;
}

/* The model every run starts from: bprop_model_create's, with small random biases so that they
 * take part in the first forward pass. */
static bprop_model *make_model(const ref_case *t)
{
    bprop_model *m = NULL;
    bprop_error err;
    cr_assert_eq(bprop_model_create(D, t->H, C, t->bias, 7 + t->H, &m, &err), BPROP_OK, "%s", err.message);
    uint64_t s = 99;
    for (int k = BPROP_B1; t->bias && k <= BPROP_B2; k += BPROP_B2 - BPROP_B1) {
        float *b = bprop_model_tensor(m, (bprop_tensor)k);
        for (size_t i = 0; i < m->layout.count[k]; i++)
            b[i] = (float)(0.2 * uniform(&s) - 0.1);
    }
    return m;
}

/* The reference's parameters after the STEPS steps, from m's. Caller frees. */
static double *reference_run(const bprop_model *m, const bprop_dataset *d, const bprop_train_config *c)
{
    const size_t P = m->layout.total;
    bp_ref_net net = {D, m->hidden, C, m->layout, calloc(P, sizeof(double)), calloc(P, sizeof(double))};
    for (size_t i = 0; i < P; i++)
        net.theta[i] = m->params[i];
    const bp_ref_sgd p = {c->lr, c->momentum, c->nesterov, c->weight_decay, c->clip_norm};
    for (size_t s0 = 0; s0 < N; s0 += BATCH) {
        const size_t nb = N - s0 < BATCH ? N - s0 : BATCH;
        double loss;
        cr_assert_eq(bp_ref_step(&net, d->x + s0 * D, d->y + s0, nb, &p, &loss), BPROP_OK);
    }
    free(net.velocity);
    return net.theta;
}

/* Euclidean norms over n entries: of a - b (floats against doubles), and of a - b (b NULL: of a). */
static double dist_f(const float *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return sqrt(s);
}

static double dist_d(const double *a, const double *b, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++)
        s += (a[i] - (b ? b[i] : 0.0)) * (a[i] - (b ? b[i] : 0.0));
    return sqrt(s);
}

/*
 * The tolerance, per tensor: |trained - reference| <= 1e-4 |reference - start| + STEPS 2^-24
 * |reference|. The first term is the gradient's float error: test_kernels bounds a block's
 * gradient sums at 2e-5 relative to double, and the steps' combination adds at most a few
 * roundings more; 1e-4 leaves a factor 5 and is still some thousand times below what a wrong
 * term does (a dropped bias gradient or momentum term changes a tensor's move by a tenth or
 * more). The second is the float parameters' own rounding: each step stores every parameter
 * to float, within 2^-24 of its value.
 */
static void check_set(const char *set, const ref_case *t, const bprop_dataset *d)
{
    cr_assert_eq(setenv("BPROP_ISA", set, 1), 0); /* read when the trainer's workspace is created */
    bprop_model *m = make_model(t);
    const bprop_train_config c = case_config(t);
    double *ref = reference_run(m, d, &c);
    double *start = malloc(m->layout.total * sizeof(double)); /* (params) before the steps */
    for (size_t i = 0; i < m->layout.total; i++)
        start[i] = m->params[i];
    bprop_trainer *tr = NULL;
    bprop_error err;
    cr_assert_eq(bprop_trainer_create(m, &c, N, &tr, &err), BPROP_OK, "%s", err.message);
    cr_assert_eq(bprop_trainer_epoch(tr, d, NULL, NULL, NULL, &err), BPROP_OK, "%s", err.message);
    cr_assert_str_eq(m->info.isa, set, "the trainer ran %s, not %s", m->info.isa, set);
    for (int k = 0; k < BPROP_TENSORS; k++) {
        const size_t off = m->layout.offset[k], n = m->layout.count[k];
        const double e = dist_f(m->params + off, ref + off, n);
        const double move = dist_d(ref + off, start + off, n), size = dist_d(ref + off, NULL, n);
        const double tol = 1e-4 * move + STEPS * ldexp(1.0, -24) * size;
        cr_assert(e <= tol, "%s H=%zu %s bias=%d mom=%g nest=%d decay=%g clip=%g repro=%d threads=%d "
                  "parallel=%d: %s is %g from the reference (tolerance %g, moved %g)",
                  set, t->H, t->sparse ? "sparse" : "dense", t->bias, t->momentum, t->nesterov,
                  t->decay, t->clip, t->reproducible, t->threads, (int)t->parallel,
                  bprop_tensor_name((bprop_tensor)k), e, tol, move);
        cr_assert(n == 0 || move > 0.0, "%s: %s did not move", set, bprop_tensor_name((bprop_tensor)k));
    }
    bprop_trainer_free(tr);
    bprop_model_free(m);
    free(ref);
    free(start);
}

/* Every set this CPU runs (the test logs the ones it skips). */
static void check_case(const ref_case *t)
{
    bprop_dataset *d = make_data(t->sparse, 1000 + t->H + (uint64_t)t->sparse);
    size_t n;
    const char *const *names = bp_kernels_list(&n);
    for (size_t i = 0; i < n; i++) {
        if (!bp_kernels_named(names[i])) {
            cr_log_info("kernel set %s: not available on this CPU, not checked", names[i]);
            continue;
        }
        check_set(names[i], t, d);
    }
    bprop_dataset_free(d);
}

/* H below every vector width; H not a multiple of any set's panel and above SPARSE_MIN_H (so the
 * zero-input lists are used); H above 256 (five hidden blocks, the last partial). Between them:
 * dense and sparse inputs, with and without biases, plain and Nesterov momentum (and none),
 * weight decay, active clipping, float and exact sums, one and two threads, data and hidden
 * splits. */
Test(reference, narrow_dense_bias_nesterov_decay)
{
    check_case(&(ref_case){5, 0, 1, 0.9f, 1, 5e-4f, 0.0f, 0, 1, BPROP_PARALLEL_AUTO});
}
Test(reference, narrow_sparse_nobias_momentum_clip_exact_two_threads)
{
    check_case(&(ref_case){5, 1, 0, 0.9f, 0, 0.0f, 0.05f, 1, 2, BPROP_PARALLEL_DATA});
}
Test(reference, odd_width_sparse_bias_nesterov_decay_clip)
{
    check_case(&(ref_case){45, 1, 1, 0.9f, 1, 1e-3f, 0.05f, 0, 1, BPROP_PARALLEL_AUTO});
}
Test(reference, odd_width_dense_nobias_plain_sgd_exact)
{
    check_case(&(ref_case){45, 0, 0, 0.0f, 0, 0.0f, 0.0f, 1, 1, BPROP_PARALLEL_AUTO});
}
Test(reference, wide_sparse_bias_nesterov_hidden_split)
{
    check_case(&(ref_case){300, 1, 1, 0.9f, 1, 5e-4f, 0.0f, 0, 2, BPROP_PARALLEL_HIDDEN});
}
Test(reference, wide_dense_bias_momentum_decay_clip_exact_hidden_split)
{
    check_case(&(ref_case){300, 0, 1, 0.9f, 0, 5e-4f, 0.05f, 1, 2, BPROP_PARALLEL_HIDDEN});
}
Test(reference, wide_sparse_nobias_nesterov_data_split)
{
    check_case(&(ref_case){300, 1, 0, 0.9f, 1, 0.0f, 0.0f, 0, 2, BPROP_PARALLEL_DATA});
}

/* The reference's gradient against central differences of its own loss, and its loss against
 * the library's other double-precision loss (gradcheck's), on a small net with biases. */
Test(reference, gradient_matches_finite_differences)
{
    enum { d = 7, h = 5, c = 3, nb = 4 };
    bprop_model *m = NULL;
    bprop_error err;
    cr_assert_eq(bprop_model_create(d, h, c, 1, 3, &m, &err), BPROP_OK);
    const size_t P = m->layout.total;
    bp_ref_net net = {d, h, c, m->layout, calloc(P, sizeof(double)), calloc(P, sizeof(double))};
    uint64_t s = 5;
    float x[nb * d];
    int32_t y[nb] = {0, 2, 1, 2};
    for (size_t i = 0; i < P; i++)
        net.theta[i] = m->params[i] + 0.1 * (uniform(&s) - 0.5); /* biases non-zero too */
    for (size_t i = 0; i < nb * d; i++)
        x[i] = (float)uniform(&s);
    double *g = calloc(P, sizeof(double)), loss, lp, lm;
    cr_assert_eq(bp_ref_loss_grad(&net, x, y, nb, &loss, g), BPROP_OK);
    cr_assert_float_eq(loss, bprop_loss_double(m, net.theta, x, y, nb), 1e-12 * loss);
    double *tmp = calloc(P, sizeof(double));
    for (size_t i = 0; i < P; i++) {
        const double eps = 1e-6, keep = net.theta[i];
        net.theta[i] = keep + eps;
        bp_ref_loss_grad(&net, x, y, nb, &lp, tmp);
        net.theta[i] = keep - eps;
        bp_ref_loss_grad(&net, x, y, nb, &lm, tmp);
        net.theta[i] = keep;
        const double fd = (lp - lm) / (2 * eps);
        cr_assert(fabs(fd - g[i]) <= 1e-7 + 1e-5 * fabs(g[i]), "parameter %zu: %g vs finite difference %g",
                  i, g[i], fd);
    }
    free(tmp);
    free(g);
    free(net.theta);
    free(net.velocity);
    bprop_model_free(m);
}
