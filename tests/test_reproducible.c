/* test_reproducible.c: exact fixed-point sums, and the same parameters for every thread count and
 * parallel split. */
#include "fixed.h"
#include "kernels.h"
#include "step.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- fixed point ------------------------------------------------------------------------------ */

static float rnd(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*s >> 11) / 9007199254740992.0 - 0.5);
}

Test(fixed, sums_are_the_same_in_every_grouping_and_close_to_exact)
{
    enum { NB = 37, N = 257 };
    static float blocks[NB][N];
    uint64_t seed = 5;
    for (int b = 0; b < NB; b++)
        for (int i = 0; i < N; i++) /* magnitudes over 12 decades, both signs */
            blocks[b][i] = rnd(&seed) * powf(10.0f, (float)(i % 13) - 12.0f);
    const double scale = ldexp(1.0, 50 - 3); /* |values| < 0.5: scaled below 2^46 */
    /* All blocks into one accumulator, in order. */
    static int64_t one[N], part[4][N], merged[N];
    const bp_kernels *k = bp_kernels_choose(NULL, 0); /* the set BPROP_ISA names */
    for (int b = 0; b < NB; b++)
        k->fixed_add(one, blocks[b], N, scale, b == 0);
    /* The same blocks over 4 "threads" in a scattered order, then merged. */
    int first[4] = {1, 1, 1, 1};
    for (int b = NB - 1; b >= 0; b--) {
        int t = (b * 7) % 4;
        k->fixed_add(part[t], blocks[b], N, scale, first[t]);
        first[t] = 0;
    }
    memset(merged, 0, sizeof merged);
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < N; i++)
            merged[i] += part[t][i];
    cr_assert_eq(memcmp(one, merged, sizeof one), 0, "grouping changed an exact sum");
    float a[N];
    k->fixed_to_float(one, N, 1.0 / scale, a);
    for (int i = 0; i < N; i++) {
        double exact = 0.0;
        for (int b = 0; b < NB; b++)
            exact += blocks[b][i];
        /* Each block rounds by at most half a unit of 2^-47; then one float rounding. */
        double tol = NB * ldexp(0.5, -47) + fabs(exact) * ldexp(1.0, -23);
        cr_assert_leq(fabs(a[i] - exact), tol, "entry %d: %.17g vs %.17g", i, (double)a[i], exact);
    }
}

Test(fixed, single_block_round_trip_equals_the_int64_path)
{
    enum { N = 999 };
    static float g[N], a[N], b[N];
    static int64_t acc[N];
    uint64_t seed = 17;
    for (int i = 0; i < N; i++)
        g[i] = rnd(&seed) * powf(2.0f, (float)(i % 60) - 60.0f); /* |g * scale| < 2^47 */
    const double scale = ldexp(1.0, 48), mul = ldexp(1.0, -48) / 37.0;
    const bp_kernels *k = bp_kernels_choose(NULL, 0); /* the set BPROP_ISA names */
    double big1 = k->fixed_add(acc, g, N, scale, 1);
    k->fixed_to_float(acc, N, mul, a);
    double big2 = k->fixed_round(g, N, scale, mul, b);
    cr_assert_eq(memcmp(a, b, sizeof a), 0, "fused rounding differs from the int64 path");
    cr_assert_eq(big1, big2);
}

/* The one-pass update (bp_sgd_fixed) against conversion then bp_sgd, from int64 sums and from
 * rounded float sums, with and without Nesterov and decay, in every set this CPU runs. */
Test(fixed, one_pass_update_equals_conversion_then_sgd)
{
    enum { N = 1000 }; /* several chunks and a partial one */
    static float g[N], w0[N], v0[N], w1[N], v1[N], w2[N], v2[N], conv[N];
    static int64_t acc[N];
    uint64_t seed = 23;
    for (int i = 0; i < N; i++) {
        g[i] = rnd(&seed) * powf(2.0f, (float)(i % 40) - 40.0f);
        w0[i] = rnd(&seed);
        v0[i] = 0.1f * rnd(&seed);
    }
    const double scale = ldexp(1.0, 48), mul = ldexp(1.0, -48) / 37.0;
    size_t nsets;
    const char *const *names = bp_kernels_list(&nsets);
    for (size_t k = 0; k < nsets; k++) {
        const bp_kernels *ks = bp_kernels_named(names[k]);
        if (!ks)
            continue;
        ks->fixed_add(acc, g, N, scale, 1);
        for (int variant = 0; variant < 4; variant++) {
            const bp_sgd_params p = {.lr = 0.05f, .momentum = 0.9f, .decay = variant & 1 ? 1e-3f : 0.0f,
                                     .clip = 1.0f, .nesterov = variant >> 1};
            for (int from_int = 0; from_int < 2; from_int++) {
                memcpy(w1, w0, sizeof w0), memcpy(v1, v0, sizeof v0);
                memcpy(w2, w0, sizeof w0), memcpy(v2, v0, sizeof v0);
                double big1 = 0.0, big2 = 0.0, norm2 = 0.0, ref2 = 0.0;
                if (from_int)
                    ks->fixed_to_float(acc, N, mul, conv);
                else
                    big1 = ks->fixed_round(g, N, scale, mul, conv);
                float m1 = ks->sgd(w1, v1, conv, N, &p);
                float m2 = ks->sgd_fixed(w2, v2, from_int ? acc : NULL, from_int ? NULL : g, N, scale,
                                         mul, &p, &big2, &norm2);
                for (int i = 0; i < N; i++)
                    ref2 += (double)conv[i] * conv[i];
                cr_assert(tu_same_bits(w1, w2, N) && tu_same_bits(v1, v2, N),
                          "%s variant %d from_int %d: one-pass update differs", names[k], variant, from_int);
                cr_assert_eq(m1, m2, "%s: max |w| differs", names[k]);
                cr_assert_eq(big1, big2, "%s: largest scaled magnitude differs", names[k]);
                cr_assert_float_eq(norm2, ref2, 1e-12 * ref2, "%s: squared norm %g vs %g", names[k], norm2, ref2);
            }
        }
    }
}

Test(fixed, magnitude_beyond_the_limit_is_reported)
{
    float g[3] = {1.0f, -3.0f, 0.5f};
    int64_t acc[3];
    const bp_kernels *k = bp_kernels_choose(NULL, 0);
    double big = k->fixed_add(acc, g, 3, ldexp(1.0, 50), 1);
    cr_assert_geq(big, BP_FIXED_LIMIT, "3 * 2^50 must be flagged, got %g", big);
    big = k->fixed_add(acc, g, 3, ldexp(1.0, 48), 1);
    cr_assert_lt(big, BP_FIXED_LIMIT);
}

Test(fixed, scales_bound_every_block_and_fail_on_nonfinite_parameters)
{
    double wmax[BPROP_TENSORS] = {0.5, 0.1, 2.0, 0.3};
    bp_scales sc;
    cr_assert(bp_make_scales(wmax, 1.0, 300.0, BP_BLOCK, &sc));
    for (int t = 0; t < BPROP_TENSORS; t++) {
        cr_assert_eq(sc.scale[t] * sc.unscale[t], 1.0, "scales are powers of two");
        /* The largest per-sample entry of each tensor, summed over a whole block. */
        const double bound[BPROP_TENSORS] = {2 * 2.0 * 1.0, 2 * 2.0, 0.1 + 300 * 0.5, 1.0};
        cr_assert_lt(BP_BLOCK * bound[t] * sc.scale[t], ldexp(1.0, 50), "tensor %d", t);
        cr_assert_geq(2 * BP_BLOCK * bound[t] * sc.scale[t], ldexp(1.0, 48), "tensor %d: scale wastes bits", t);
    }
    wmax[BPROP_W1] = INFINITY;
    cr_assert_not(bp_make_scales(wmax, 1.0, 300.0, BP_BLOCK, &sc));
    wmax[BPROP_W1] = NAN;
    cr_assert_not(bp_make_scales(wmax, 1.0, 300.0, BP_BLOCK, &sc));
}

Test(fixed, clipping_norm_is_the_same_in_every_grouping)
{
    enum { N = 1000 };
    static float u[N];
    uint64_t seed = 9;
    double exact = 0.0;
    for (int i = 0; i < N; i++) {
        u[i] = rnd(&seed) * powf(2.0f, (float)(i % 40) - 39.0f);
        exact += (double)u[i] * u[i];
    }
    int e2 = bp_sq_exponent(0.5, N);
    bp_sq128 whole = {{0}}, parts = {{0}};
    bp_sq_add(&whole, u, N, e2);
    const size_t cuts[] = {0, 1, 333, 334, 900, N};
    for (int k = 5; k > 0; k--) {
        bp_sq128 p = {{0}};
        bp_sq_add(&p, u + cuts[k - 1], cuts[k] - cuts[k - 1], e2);
        bp_sq_merge(&parts, &p);
    }
    double a = bp_sq_value(&whole, e2), b = bp_sq_value(&parts, e2);
    cr_assert_eq(memcmp(&a, &b, sizeof a), 0, "%.17g vs %.17g", a, b);
    cr_assert_leq(fabs(a - exact), exact * 1e-12 + N * ldexp(1.0, -e2), "%.17g vs %.17g", a, exact);
}

/* ---- training --------------------------------------------------------------------------------- */

typedef struct run_cfg {
    size_t hidden, batch, epochs;
    int threads, bias;
    bprop_parallel parallel;
    float clip, decay;
    int float_sums, nesterov; /* reproducible off; Nesterov momentum */
} run_cfg;

static bprop_model *train(const bprop_dataset *d, run_cfg r)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(d->dim, r.hidden, d->classes, r.bias, 3, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = r.threads;
    c.batch = r.batch;
    c.epochs = r.epochs;
    c.lr = 0.05f;
    c.parallel = r.parallel;
    c.reproducible = !r.float_sums;
    c.nesterov = r.nesterov;
    c.clip_norm = r.clip;
    c.weight_decay = r.decay;
    bprop_trainer *t;
    bprop_error err;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, &err), BPROP_OK, "%s", err.message);
    for (size_t e = 0; e < r.epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, &err), BPROP_OK, "%s", err.message);
    bprop_trainer_free(t);
    return m;
}

/* Every (threads, split) pair against one thread: bitwise. */
static void check_layouts(const bprop_dataset *d, run_cfg r)
{
    r.threads = 1;
    r.parallel = BPROP_PARALLEL_DATA;
    bprop_model *ref = train(d, r);
    const bprop_parallel modes[] = {BPROP_PARALLEL_DATA, BPROP_PARALLEL_HIDDEN, BPROP_PARALLEL_AUTO};
    for (int threads = 2; threads <= 4; threads++)
        for (int k = 0; k < 3; k++) {
            r.threads = threads;
            r.parallel = modes[k];
            bprop_model *m = train(d, r);
            cr_assert(tu_same_bits(ref->params, m->params, ref->layout.total),
                      "hidden %zu batch %zu: %d threads, %s split differs from 1 thread", r.hidden,
                      r.batch, threads, bprop_parallel_name(modes[k]));
            bprop_model_free(m);
        }
    bprop_model_free(ref);
}

Test(layout, every_thread_count_and_split_trains_the_same_bits, .timeout = 300)
{
    bprop_dataset *d = tu_blobs(701, 40, 5, 8); /* 701: the last batch is partial */
    /* 70 hidden units: one whole and one partial hidden block; 200: four blocks, uneven over 3. */
    check_layouts(d, (run_cfg){.hidden = 70, .batch = 16, .epochs = 2, .bias = 1});
    check_layouts(d, (run_cfg){.hidden = 200, .batch = 100, .epochs = 1, .bias = 1});
    check_layouts(d, (run_cfg){.hidden = 200, .batch = 300, .epochs = 1, .bias = 0});
    check_layouts(d, (run_cfg){.hidden = 130, .batch = 64, .epochs = 1, .bias = 1, .clip = 0.3f,
                               .decay = 1e-3f});
    bprop_dataset_free(d);
}

/* Steps where one thread holds W1's whole gradient update W1 inside the backward pass
 * (bp_w1_update); with clipping on, the update is a separate pass over the stored gradient. A
 * clipping threshold that is never reached multiplies by exactly 1, so both must give the same
 * bits: single-block and multi-block float steps on one thread, exact single-block steps on one
 * thread, over hidden slices and on one of two data-split threads, with decay and Nesterov.
 * Multi-block steps read W1 packed (bp_pack_w1); after an in-pass update the next step reads
 * the packed copy that update wrote instead of packing again, so a wrong packed copy shows
 * here too. */
Test(layout, w1_update_in_the_backward_pass_equals_the_update_pass)
{
    bprop_dataset *d = tu_blobs(530, 30, 4, 3);
    const run_cfg cases[] = {
        {.hidden = 70, .batch = 40, .epochs = 1, .threads = 1, .bias = 1, .float_sums = 1},
        {.hidden = 70, .batch = 150, .epochs = 1, .threads = 1, .bias = 1, .float_sums = 1,
         .decay = 1e-3f, .nesterov = 1},
        {.hidden = 70, .batch = 50, .epochs = 1, .threads = 1, .bias = 0},
        {.hidden = 200, .batch = 50, .epochs = 1, .threads = 3, .bias = 1,
         .parallel = BPROP_PARALLEL_HIDDEN, .decay = 1e-3f},
        {.hidden = 130, .batch = 64, .epochs = 1, .threads = 2, .bias = 1,
         .parallel = BPROP_PARALLEL_DATA, .nesterov = 1},
        {.hidden = 200, .batch = 150, .epochs = 1, .threads = 3, .bias = 1, .float_sums = 1,
         .parallel = BPROP_PARALLEL_HIDDEN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_cfg r = cases[i];
        bprop_model *in_pass = train(d, r);
        r.clip = 1e30f;
        bprop_model *separate = train(d, r);
        cr_assert(tu_same_bits(in_pass->params, separate->params, in_pass->layout.total),
                  "case %zu (hidden %zu, batch %zu, %d threads): W1 updated in the pass differs",
                  i, r.hidden, r.batch, r.threads);
        bprop_model_free(in_pass);
        bprop_model_free(separate);
    }
    bprop_dataset_free(d);
}

Test(layout, loss_gradient_is_the_same_for_every_thread_count)
{
    bprop_dataset *d = tu_blobs(333, 20, 4, 2);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(20, 90, 4, 1, 7, &m, NULL), BPROP_OK);
    const size_t P = m->layout.total;
    float *g1 = malloc(P * sizeof(float)), *g = malloc(P * sizeof(float));
    double l1, l;
    cr_assert_eq(bprop_loss_grad(m, d->x, d->y, d->n, 1, &l1, g1, NULL), BPROP_OK);
    for (int threads = 2; threads <= 5; threads++) {
        cr_assert_eq(bprop_loss_grad(m, d->x, d->y, d->n, threads, &l, g, NULL), BPROP_OK);
        cr_assert(tu_same_bits(g1, g, P), "%d threads", threads);
        cr_assert_lt(fabs(l - l1), 1e-12);
    }
    free(g1);
    free(g);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* Float sums (reproducible off): a hidden split on one process sums each slice block after
 * block, the chains of one thread's pass, so every thread count trains one thread's bits. */
Test(layout, float_hidden_split_trains_the_bits_of_one_thread)
{
    bprop_dataset *d = tu_blobs(701, 40, 5, 8);
    const run_cfg cases[] = {
        {.hidden = 200, .batch = 32, .epochs = 1, .bias = 1, .float_sums = 1},
        {.hidden = 200, .batch = 150, .epochs = 1, .bias = 1, .float_sums = 1, .nesterov = 1},
        {.hidden = 256, .batch = 300, .epochs = 1, .bias = 0, .float_sums = 1, .decay = 1e-3f},
        {.hidden = 130, .batch = 100, .epochs = 1, .bias = 1, .float_sums = 1, .clip = 0.3f},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        run_cfg r = cases[i];
        r.threads = 1;
        r.parallel = BPROP_PARALLEL_DATA;
        bprop_model *ref = train(d, r);
        for (int threads = 2; threads <= 3; threads++) {
            r.threads = threads;
            r.parallel = BPROP_PARALLEL_HIDDEN;
            bprop_model *m = train(d, r);
            cr_assert(tu_same_bits(ref->params, m->params, ref->layout.total),
                      "case %zu: %d-thread hidden split with float sums differs from 1 thread", i,
                      threads);
            bprop_model_free(m);
        }
        bprop_model_free(ref);
    }
    bprop_dataset_free(d);
}

/* A 10-24-3 model (seed 5) and its trainer for d: threads, batch, reproducible as given. */
static bprop_trainer *small_trainer(const bprop_dataset *d, int threads, size_t batch, int reproducible,
                                    bprop_model **m)
{
    cr_assert_eq(bprop_model_create(10, 24, 3, 1, 5, m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = threads;
    c.batch = batch;
    c.reproducible = reproducible;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(*m, &c, d->n, &t, NULL), BPROP_OK);
    return t;
}

Test(layout, float_sums_stay_deterministic_per_thread_count)
{
    bprop_dataset *d = tu_blobs(301, 10, 3, 2);
    bprop_model *a = NULL, *b = NULL;
    for (int k = 0; k < 2; k++) {
        bprop_model *m;
        bprop_trainer *t = small_trainer(d, 3, 32, 0, &m);
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
        bprop_trainer_free(t);
        *(k ? &b : &a) = m;
    }
    cr_assert(tu_same_bits(a->params, b->params, a->layout.total));
    bprop_model_free(a);
    bprop_model_free(b);
    bprop_dataset_free(d);
}

/* ---- the exact sums' batch limit ------------------------------------------------------------- */

static int comm_ok(void *ctx, void *buf, size_t n)
{
    (void)ctx, (void)buf, (void)n;
    return 0;
}
static int sum_i64_ok(void *ctx, int64_t *buf, size_t n) { return comm_ok(ctx, buf, n); }
static int f64_ok(void *ctx, double *buf, size_t n) { return comm_ok(ctx, buf, n); }

Test(limit, batch_beyond_the_exact_sums_is_refused_when_the_trainer_is_created)
{
    const size_t limit = (size_t)BP_FIXED_MAX_BLOCKS * BP_BLOCK;
    bprop_model *m;
    cr_assert_eq(bprop_model_create(2, 3, 2, 1, 1, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.batch = limit + 1;
    c.reproducible = 1;
    bprop_trainer *t = NULL;
    bprop_error err;
    cr_assert_eq(bprop_trainer_create(m, &c, limit + 1, &t, &err), BPROP_E_SIZE);
    char want[64];
    snprintf(want, sizeof want, "batch %zu", limit + 1);
    cr_assert_not_null(strstr(err.message, want), "'%s' does not name the batch", err.message);
    snprintf(want, sizeof want, "%zu", limit);
    cr_assert_not_null(strstr(err.message, want), "'%s' does not name the limit", err.message);
    /* Float sums on one process have no such limit. */
    c.reproducible = 0;
    cr_assert_eq(bprop_trainer_create(m, &c, limit + 1, &t, NULL), BPROP_OK);
    bprop_trainer_free(t);
    /* Several ranks: the hidden split sums exactly, so only the data split may take the batch. */
    const bprop_comm comm = {.rank = 0, .size = 2, .sum_i64 = sum_i64_ok, .sum_f64 = f64_ok,
                             .max_f64 = f64_ok};
    cr_assert_eq(bprop_trainer_create_comm(m, &c, limit + 1, &comm, &t, &err), BPROP_E_SIZE);
    c.parallel = BPROP_PARALLEL_DATA;
    cr_assert_eq(bprop_trainer_create_comm(m, &c, limit + 1, &comm, &t, NULL), BPROP_OK);
    bprop_trainer_free(t);
    bprop_model_free(m);
}

/* A batch of exactly the limit still sums exactly: the same bits on 1 and 3 threads. */
Test(limit, batch_at_the_limit_trains_the_same_bits_on_1_and_3_threads)
{
    const size_t limit = (size_t)BP_FIXED_MAX_BLOCKS * BP_BLOCK;
    bprop_dataset *d = tu_blobs(limit, 2, 2, 5);
    float *params[2];
    for (int k = 0; k < 2; k++) {
        bprop_model *m;
        cr_assert_eq(bprop_model_create(2, 3, 2, 1, 9, &m, NULL), BPROP_OK);
        bprop_train_config c;
        bprop_train_config_default(&c);
        c.batch = limit;
        c.epochs = 1;
        c.reproducible = 1;
        c.threads = k ? 3 : 1;
        bprop_trainer *t;
        cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
        params[k] = malloc(m->layout.total * sizeof(float));
        memcpy(params[k], m->params, m->layout.total * sizeof(float));
        bprop_trainer_free(t);
        bprop_model_free(m);
    }
    cr_assert(tu_same_bits(params[0], params[1], 3 * 2 + 3 + 3 * 2 + 2));
    free(params[0]);
    free(params[1]);
    bprop_dataset_free(d);
}

/* ---- the data bounds follow the data ------------------------------------------------------- */

/* Two --reproducible epochs on data the caller rewrote in place between them (as a Python
 * partial_fit with a new batch array at the old address would), against the same two epochs on
 * two separate arrays: the fixed-point scales come from the data each epoch sees, so the bits
 * are the same. (Bounds kept from before the rewrite made the exact sums of the wider data
 * leave their range: a divergence that fresh data does not have.) */
Test(bounds, data_changed_in_place_trains_as_fresh_data)
{
    bprop_dataset *d = tu_blobs(301, 10, 3, 2);     /* rewritten in place */
    bprop_dataset *first = tu_blobs(301, 10, 3, 2); /* the fresh arrays: the data of epoch 1 */
    bprop_dataset *second = tu_blobs(301, 10, 3, 2); /* and of epoch 2 */
    for (size_t i = 0; i < second->n * second->dim; i++)
        second->x[i] *= 4096.0f; /* bounds 4096 times wider */
    bprop_model *m[2];
    for (int k = 0; k < 2; k++) {
        bprop_trainer *t = small_trainer(d, 2, 200, 1, &m[k]); /* several blocks a batch */
        cr_assert_eq(bprop_trainer_epoch(t, k ? first : d, NULL, NULL, NULL, NULL), BPROP_OK);
        if (!k)
            memcpy(d->x, second->x, d->n * d->dim * sizeof *d->x);
        bprop_error err;
        cr_assert_eq(bprop_trainer_epoch(t, k ? second : d, NULL, NULL, NULL, &err), BPROP_OK,
                     "%s data: %s", k ? "fresh" : "rewritten", err.message);
        bprop_trainer_free(t);
    }
    cr_assert(tu_same_bits(m[0]->params, m[1]->params, m[0]->layout.total),
              "the second epoch kept the bounds of the data as it was before the rewrite");
    bprop_model_free(m[0]);
    bprop_model_free(m[1]);
    bprop_dataset_free(d);
    bprop_dataset_free(first);
    bprop_dataset_free(second);
}

/* ---- exact sums over ranks: the split update's plan ---------------------------------------- */

static int f32_ok(void *ctx, float *buf, size_t n) { return comm_ok(ctx, buf, n); }
static int gather_ok(void *ctx, const float *mine, float *all, size_t n)
{
    (void)mine;
    return comm_ok(ctx, all, n);
}
static int runs_f32_ok(void *ctx, float *buf, const size_t *counts) { return comm_ok(ctx, buf, counts[0]); }
static int runs_i64_ok(void *ctx, int64_t *buf, const size_t *counts) { return comm_ok(ctx, buf, counts[0]); }
static int owners_ok(void *ctx, const float *mine, float *out, const size_t *counts)
{
    (void)mine;
    return comm_ok(ctx, out, counts[0]);
}

/* Rank 1 of 2 through a communicator with every callback, each succeeding without moving data. */
static bprop_comm full_comm(void)
{
    return (bprop_comm){.rank = 1, .size = 2, .sum_i64 = sum_i64_ok, .sum_f64 = f64_ok,
                        .max_f64 = f64_ok, .sum_f32 = f32_ok, .gather_f32 = gather_ok,
                        .sum_scatter_f32 = runs_f32_ok, .gather_runs_f32 = runs_f32_ok,
                        .sum_scatter_i64 = runs_i64_ok, .runs_to_owners_f32 = owners_ok};
}

/* The plan of comm's rank for a step of nb samples on nt threads of a 20-H-3 model. */
static bp_step_plan plan_of(const bprop_comm *comm, const bprop_train_config *c, size_t H, int nt,
                            size_t nb)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(20, H, 3, 1, 1, &m, NULL), BPROP_OK);
    float *v = calloc(m->layout.total, sizeof *v);
    bp_stepper *s;
    const bp_stepper_spec spec = {.m = m, .params = m->params, .velocity = v, .threads = nt,
                                  .batch = 256, .cfg = c, .comm = comm};
    cr_assert_eq(bp_stepper_create(&spec, &s), BPROP_OK);
    int active[4];
    bp_step_plan p = {.active = active};
    bp_plan_step(s, nb, nt, &p);
    p.active = NULL;
    bp_stepper_free(s);
    free(v);
    bprop_model_free(m);
    return p;
}

/* The plan of a 2-rank step of nb samples on one thread, at 40 hidden units. */
static bp_step_plan plan_on_2_ranks(const bprop_comm *comm, const bprop_train_config *c, size_t nb)
{
    return plan_of(comm, c, 40, 1, nb);
}

/* The float hidden split over ranks (rank_hidden): worker rank nt + tid of R nt, the whole
 * batch on every rank, W1 in private slices updated in the pass, float sums; the hidden split
 * over ranks sums exactly, as before, with --reproducible, clipping, a communicator that cannot
 * gather runs, or fewer 64-unit blocks than workers. */
Test(ranks, float_hidden_split_over_ranks)
{
    bprop_comm comm = full_comm();
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.reproducible = 0;
    c.parallel = BPROP_PARALLEL_HIDDEN;
    bp_step_plan p = plan_of(&comm, &c, 128, 1, 100);
    cr_assert(p.split == BP_SPLIT_HIDDEN && p.rank_hidden && !p.exact && p.w1_sliced && p.w1_in_pass,
              "1 thread a rank, 2 blocks: the rank split");
    cr_assert(p.workers == 2 && p.worker0 == 1 && p.part.lo == 0 && p.part.hi == 100,
              "worker %d of %d, samples [%zu, %zu)", p.worker0, p.workers, p.part.lo, p.part.hi);
    p = plan_of(&comm, &c, 256, 2, 100);
    cr_assert(p.rank_hidden && p.workers == 4 && p.worker0 == 2, "2 threads a rank, 4 blocks");
    p = plan_of(&comm, &c, 128, 2, 100);
    cr_assert(p.split == BP_SPLIT_HIDDEN && !p.rank_hidden && p.exact, "2 blocks for 4 workers");
    c.clip_norm = 1.0f;
    p = plan_of(&comm, &c, 128, 1, 100);
    cr_assert(!p.rank_hidden && p.split == BP_SPLIT_DATA, "clipping: 1 thread takes the data split");
    c.clip_norm = 0.0f;
    c.reproducible = 1;
    cr_assert(!plan_of(&comm, &c, 256, 2, 100).rank_hidden, "--reproducible");
    c.reproducible = 0;
    c.parallel = BPROP_PARALLEL_DATA;
    cr_assert(!plan_of(&comm, &c, 256, 1, 100).rank_hidden, "the data split asked for");
    c.parallel = BPROP_PARALLEL_HIDDEN;
    comm.gather_runs_f32 = NULL;
    cr_assert(!plan_of(&comm, &c, 256, 2, 100).rank_hidden, "without gather_runs_f32");
}

/* Another rank's team is one thread larger: the plan's agreement on team sizes (a maximum of
 * the team and of minus the team) comes back with a larger largest team. */
static int max_other_team(void *ctx, double *buf, size_t n)
{
    if (n == 2)
        buf[0] += 1.0;
    return comm_ok(ctx, buf, n);
}

/* Ranks with teams of different sizes take the data split, asked for the hidden split or not:
 * slices of R nt workers, or any other split the cost model might choose for one team size,
 * would differ between them. */
Test(ranks, teams_of_different_sizes_take_the_data_split)
{
    bprop_comm comm = full_comm();
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.reproducible = 0;
    const bprop_parallel asked[] = {BPROP_PARALLEL_HIDDEN, BPROP_PARALLEL_AUTO};
    for (size_t i = 0; i < 2; i++) {
        c.parallel = asked[i];
        comm.max_f64 = f64_ok;
        cr_assert(plan_of(&comm, &c, 256, 2, 100).rank_hidden, "equal teams: the rank split (%zu)", i);
        comm.max_f64 = max_other_team;
        bp_step_plan p = plan_of(&comm, &c, 256, 2, 100);
        cr_assert(p.split == BP_SPLIT_DATA && !p.rank_hidden, "teams of 2 and 3 threads (%zu)", i);
    }
}

/* Exact sums on several ranks split the update as float sums do: a block a rank travels as
 * floats to the runs' owners (add_blocks); more blocks, as int64 runs reduce-scattered; with
 * clipping, or a communicator without the callback that path needs, every rank updates all. */
Test(ranks, exact_sums_split_the_update_over_the_ranks)
{
    bprop_comm comm = full_comm();
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.reproducible = 1;
    c.parallel = BPROP_PARALLEL_DATA;
    bp_step_plan p = plan_on_2_ranks(&comm, &c, 128);
    cr_assert(p.exact && p.split_update && p.add_blocks, "one block a rank: blocks to the owners");
    const size_t P = 20 * 40 + 40 + 40 * 3 + 3;
    size_t u0, u1;
    bp_param_chunk(P, 2, 1, &u0, &u1);
    cr_assert(p.u0 == u0 && p.u1 == u1 && u1 == P && u0 > 0, "rank 1's run is [%zu, %zu)", p.u0, p.u1);
    p = plan_on_2_ranks(&comm, &c, 256);
    cr_assert(p.split_update && !p.add_blocks, "two blocks a rank: int64 runs");
    c.clip_norm = 1.0f;
    cr_assert(!plan_on_2_ranks(&comm, &c, 128).split_update, "clipping needs the whole norm");
    c.clip_norm = 0.0f;
    comm.runs_to_owners_f32 = NULL;
    p = plan_on_2_ranks(&comm, &c, 128);
    cr_assert(!p.split_update && !p.add_blocks, "without runs_to_owners_f32");
    cr_assert(plan_on_2_ranks(&comm, &c, 256).split_update, "int64 runs need only sum_scatter_i64");
    comm.sum_scatter_i64 = NULL;
    cr_assert(!plan_on_2_ranks(&comm, &c, 256).split_update, "without sum_scatter_i64");
}
