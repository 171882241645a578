/* test_train.c: the parallel step (reduction, determinism), the optimiser and learning. */
#include "kernels.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

static const double PI = 3.14159265358979323846;

/* Plain-double mean of per-sample gradients: the serial reference for the parallel reduction. */
static double *serial_mean_grad(const bprop_model *m, const bprop_dataset *d)
{
    size_t P = m->layout.total;
    double *sum = calloc(P, sizeof(double));
    float *g = malloc(P * sizeof(float));
    for (size_t i = 0; i < d->n; i++) {
        cr_assert_eq(bprop_loss_grad(m, d->x + i * d->dim, d->y + i, 1, 1, NULL, g, NULL), BPROP_OK);
        for (size_t p = 0; p < P; p++)
            sum[p] += g[p];
    }
    for (size_t p = 0; p < P; p++)
        sum[p] /= (double)d->n;
    free(g);
    return sum;
}

static void check_reduction(size_t n, size_t H)
{
    bprop_dataset *d = tu_blobs(n, 13, 4, 11);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(13, H, 4, 1, 3, &m, NULL), BPROP_OK);
    size_t P = m->layout.total;
    double *ref = serial_mean_grad(m, d);
    float *g = malloc(P * sizeof(float)), *again = malloc(P * sizeof(float));
    const int threads[] = {1, 2, 3, 8};
    for (size_t k = 0; k < sizeof threads / sizeof *threads; k++) {
        cr_assert_eq(bprop_loss_grad(m, d->x, d->y, n, threads[k], NULL, g, NULL), BPROP_OK);
        double num = 0, den = 0;
        for (size_t p = 0; p < P; p++) {
            num += (g[p] - ref[p]) * (g[p] - ref[p]);
            den += ref[p] * ref[p];
        }
        cr_assert_lt(sqrt(num / den), 1e-6, "n=%zu threads=%d: reduction differs from serial sum by %g",
                     n, threads[k], sqrt(num / den));
        /* The same thread count reproduces the same bits. */
        cr_assert_eq(bprop_loss_grad(m, d->x, d->y, n, threads[k], NULL, again, NULL), BPROP_OK);
        cr_assert(tu_same_bits(g, again, P), "threads=%d: two calls differ", threads[k]);
    }
    free(g);
    free(again);
    free(ref);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(reduction, equals_serial_sum_for_1_2_3_8_threads) { check_reduction(50, 37); }
Test(reduction, batch_smaller_than_thread_count) { check_reduction(5, 20); }
Test(reduction, single_sample) { check_reduction(1, 16); }
Test(reduction, several_blocks_per_thread) { check_reduction(3 * BP_BLOCK + 7, 33); }

/* Naive double-precision backprop written straight from the formulas: the independent reference
 * for the blocked kernels (tiles, remainders, zero skipping). g (layout.total), mean over n. */
static void naive_grad(const bprop_model *m, const float *x, const int32_t *y, size_t n, double *g)
{
    const size_t D = m->inputs, H = m->hidden, C = m->classes;
    const float *w1 = bprop_model_tensor(m, BPROP_W1), *b1 = bprop_model_tensor(m, BPROP_B1);
    const float *w2 = bprop_model_tensor(m, BPROP_W2), *b2 = bprop_model_tensor(m, BPROP_B2);
    const bprop_layout *L = &m->layout;
    double *h = malloc(H * sizeof(double)), *z = malloc(C * sizeof(double));
    double *dh = malloc(H * sizeof(double));
    memset(g, 0, L->total * sizeof(double));
    for (size_t s = 0; s < n; s++) {
        const float *xs = x + s * D;
        for (size_t j = 0; j < H; j++) {
            double a = b1 ? b1[j] : 0.0;
            for (size_t k = 0; k < D; k++)
                a += (double)xs[k] * w1[k * H + j];
            h[j] = a > 0 ? a : 0;
        }
        double zmax = -INFINITY, sum = 0;
        for (size_t c = 0; c < C; c++) {
            z[c] = b2 ? b2[c] : 0.0;
            for (size_t j = 0; j < H; j++)
                z[c] += h[j] * w2[j * C + c];
            zmax = fmax(zmax, z[c]);
        }
        for (size_t c = 0; c < C; c++)
            sum += exp(z[c] - zmax);
        for (size_t c = 0; c < C; c++) {
            double d = (exp(z[c] - zmax) / sum - (c == (size_t)y[s])) / (double)n;
            if (b2)
                g[L->offset[BPROP_B2] + c] += d;
            for (size_t j = 0; j < H; j++)
                g[L->offset[BPROP_W2] + j * C + c] += h[j] * d;
            z[c] = d;
        }
        for (size_t j = 0; j < H; j++) {
            double a = 0;
            for (size_t c = 0; c < C; c++)
                a += z[c] * w2[j * C + c];
            dh[j] = h[j] > 0 ? a : 0;
            if (b1)
                g[L->offset[BPROP_B1] + j] += dh[j];
        }
        for (size_t k = 0; k < D; k++)
            for (size_t j = 0; j < H; j++)
                g[L->offset[BPROP_W1] + k * H + j] += (double)xs[k] * dh[j];
    }
    free(h);
    free(z);
    free(dh);
}

/* Inputs with runs of zeros and whole zero rows, like image backgrounds. */
static bprop_dataset *sparse_data(size_t n, size_t D, size_t C, uint64_t seed)
{
    bprop_dataset *d = tu_blobs(n, D, C, seed);
    for (size_t s = 0; s < n; s++)
        for (size_t k = 0; k < D; k++)
            if (s % 7 == 3 || (k + 3 * s) % 10 < 6)
                d->x[s * D + k] = 0.0f;
    return d;
}

static void check_against_naive(size_t n, size_t D, size_t H, size_t C, int bias)
{
    bprop_dataset *d = sparse_data(n, D, C, 17);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(D, H, C, bias, 4, &m, NULL), BPROP_OK);
    size_t P = m->layout.total;
    double *ref = malloc(P * sizeof(double));
    float *g = malloc(P * sizeof(float));
    naive_grad(m, d->x, d->y, n, ref);
    for (int threads = 1; threads <= 3; threads++) {
        cr_assert_eq(bprop_loss_grad(m, d->x, d->y, n, threads, NULL, g, NULL), BPROP_OK);
        for (int t = 0; t < BPROP_TENSORS; t++) {
            double num = 0, den = 0;
            for (size_t i = m->layout.offset[t]; i < m->layout.offset[t] + m->layout.count[t]; i++) {
                num += (g[i] - ref[i]) * (g[i] - ref[i]);
                den += ref[i] * ref[i];
            }
            cr_assert(num <= 1e-10 * den, "%zu-%zu-%zu n=%zu threads=%d %s: relative error %g", D, H,
                      C, n, threads, bprop_tensor_name(t), sqrt(num / den));
        }
    }
    free(ref);
    free(g);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* Hidden widths that use the wide panels, the one-vector panels and the scalar tail; pixel counts
 * with and without a remainder; sample counts with partial tiles and several blocks. */
Test(kernels, match_naive_backprop_on_sparse_inputs)
{
    check_against_naive(150, 50, 80, 10, 1);
    check_against_naive(70, 37, 45, 5, 1);
    check_against_naive(9, 16, 7, 3, 0);
    check_against_naive(131, 784, 130, 10, 1);
}

Test(softmax, stable_for_huge_logits)
{
    float z[2][3] = {{1e4f, -1e4f, 0.0f}, {-1e4f, -1e4f, -1e4f}};
    int32_t y[2] = {1, 2}, pred[2];
    double loss = bp_softmax_xent(&z[0][0], y, 2, 3, pred);
    /* Sample 0: the label's logit is 2e4 below the max, so its loss is 2e4; sample 1: log 3. */
    cr_assert(isfinite(loss));
    cr_assert_float_eq(loss, 2e4 + log(3.0), 1e-2);
    cr_assert_eq(pred[0], 0);
    for (int s = 0; s < 2; s++)
        for (int c = 0; c < 3; c++)
            cr_assert(isfinite(z[s][c]) && fabsf(z[s][c]) <= 1.0f);
    cr_assert_float_eq(z[0][0], 1.0f, 1e-6);  /* p = 1, not the label */
    cr_assert_float_eq(z[0][1], -1.0f, 1e-6); /* p = 0 minus one-hot */
    cr_assert_float_eq(z[1][2], 1.0f / 3 - 1, 1e-6);
}

Test(softmax, model_with_huge_logits_has_finite_loss_and_gradient)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(4, 3, 3, 1, 1, &m, NULL), BPROP_OK);
    float *w2 = bprop_model_tensor(m, BPROP_W2);
    for (size_t i = 0; i < m->layout.count[BPROP_W2]; i++)
        w2[i] = (i % 2 ? -1e4f : 1e4f);
    float x[4] = {1, 1, 1, 1}, g[64];
    int32_t y = 1;
    double loss;
    cr_assert_eq(bprop_loss_grad(m, x, &y, 1, 1, &loss, g, NULL), BPROP_OK);
    cr_assert(isfinite(loss));
    for (size_t p = 0; p < m->layout.total; p++)
        cr_assert(isfinite(g[p]), "gradient %zu is %g", p, g[p]);
    bprop_model_free(m);
}

/* ---- the optimiser against its formulas ----------------------------------------------------- */

static bprop_train_config full_batch_config(size_t n)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.batch = n;
    c.shuffle = 0;
    c.schedule = BPROP_SCHEDULE_CONSTANT;
    c.threads = 2;
    c.epochs = 3;
    return c;
}

/* Three full-batch steps of the trainer against the same steps written out in doubles. */
static void check_optimizer(float momentum, int nesterov, float decay, float clip)
{
    bprop_dataset *d = tu_blobs(40, 6, 3, 5);
    bprop_model *m, *ref;
    cr_assert_eq(bprop_model_create(6, 9, 3, 1, 8, &m, NULL), BPROP_OK);
    cr_assert_eq(bprop_model_clone(m, &ref, NULL), BPROP_OK);
    bprop_train_config c = full_batch_config(d->n);
    c.momentum = momentum;
    c.nesterov = nesterov;
    c.weight_decay = decay;
    c.clip_norm = clip;
    c.lr = 0.05f;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    size_t P = m->layout.total;
    double *v = calloc(P, sizeof(double)), *u = calloc(P, sizeof(double));
    float *g = malloc(P * sizeof(float));
    for (int step = 0; step < 3; step++) {
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
        cr_assert_eq(bprop_loss_grad(ref, d->x, d->y, d->n, 2, NULL, g, NULL), BPROP_OK);
        double norm2 = 0;
        for (size_t p = 0; p < P; p++) {
            int is_weight = p < m->layout.offset[BPROP_B1] ||
                            (p >= m->layout.offset[BPROP_W2] && p < m->layout.offset[BPROP_B2]);
            u[p] = g[p] + (is_weight ? decay * (double)ref->params[p] : 0.0);
            norm2 += u[p] * u[p];
        }
        double scale = (clip > 0 && sqrt(norm2) > clip) ? clip / sqrt(norm2) : 1.0;
        for (size_t p = 0; p < P; p++) {
            double up = u[p] * scale;
            v[p] = momentum * v[p] + up;
            ref->params[p] -= (float)(c.lr * (nesterov ? up + momentum * v[p] : v[p]));
        }
        for (size_t p = 0; p < P; p++)
            cr_assert_float_eq(m->params[p], ref->params[p], 1e-5 + 1e-5 * fabsf(ref->params[p]),
                               "step %d param %zu: %g vs %g", step, p, m->params[p], ref->params[p]);
    }
    free(v);
    free(u);
    free(g);
    bprop_trainer_free(t);
    bprop_model_free(m);
    bprop_model_free(ref);
    bprop_dataset_free(d);
}

Test(optimizer, plain_sgd) { check_optimizer(0.0f, 0, 0.0f, 0.0f); }
Test(optimizer, classical_momentum) { check_optimizer(0.9f, 0, 0.0f, 0.0f); }
Test(optimizer, nesterov_momentum) { check_optimizer(0.9f, 1, 0.0f, 0.0f); }
Test(optimizer, weight_decay_spares_biases) { check_optimizer(0.5f, 0, 0.1f, 0.0f); }
Test(optimizer, clipping_by_global_norm) { check_optimizer(0.9f, 1, 0.01f, 0.05f); }

static double lr_of_epoch(bprop_schedule s, size_t epochs, size_t epoch)
{
    bprop_dataset *d = tu_blobs(8, 3, 2, 1);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(3, 4, 2, 1, 1, &m, NULL), BPROP_OK);
    bprop_train_config c = full_batch_config(4); /* two steps per epoch */
    c.schedule = s;
    c.epochs = epochs;
    c.step_epochs = 2;
    c.step_gamma = 0.5f;
    c.lr = 0.1f;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    bprop_epoch_stats st = {0};
    for (size_t e = 0; e < epoch; e++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, &st, NULL), BPROP_OK);
    bprop_trainer_free(t);
    bprop_model_free(m);
    bprop_dataset_free(d);
    return st.lr;
}

Test(schedule, step_and_cosine_rates)
{
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_STEP, 4, 1), 0.1, 1e-7);
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_STEP, 4, 2), 0.1, 1e-7);
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_STEP, 4, 3), 0.05, 1e-7);
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_STEP, 4, 4), 0.05, 1e-7);
    /* Cosine over 2 epochs x 2 steps: the last step (index 3 of 4) uses (1 + cos(3 pi / 4)) / 2. */
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_COSINE, 2, 2), 0.1 * 0.5 * (1 + cos(0.75 * PI)), 1e-7);
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_COSINE, 2, 1), 0.1 * 0.5 * (1 + cos(0.25 * PI)), 1e-7);
    cr_assert_float_eq(lr_of_epoch(BPROP_SCHEDULE_CONSTANT, 3, 3), 0.1, 1e-7);
}

/* ---- determinism ---------------------------------------------------------------------------- */

/* Train a small model on blobs; nested != 0 runs the epochs from inside an active parallel region
 * of two threads, where OpenMP gives the trainer a team of one whatever it asks for. */
static bprop_model *train_blobs_in(int threads, size_t batch, size_t epochs, uint64_t seed, int nested)
{
    bprop_dataset *d = tu_blobs(301, 10, 3, 2);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(10, 24, 3, 1, seed, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = threads;
    c.batch = batch;
    c.epochs = epochs;
    c.seed = seed;
    c.lr = 0.05f;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    bprop_status st = BPROP_OK;
    if (nested) {
        omp_set_max_active_levels(1);
#pragma omp parallel num_threads(2)
#pragma omp single
        for (size_t e = 0; e < epochs && st == BPROP_OK; e++)
            st = bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL);
    } else {
        for (size_t e = 0; e < epochs && st == BPROP_OK; e++)
            st = bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL);
    }
    cr_assert_eq(st, BPROP_OK);
    bprop_trainer_free(t);
    bprop_dataset_free(d);
    return m;
}

static bprop_model *train_blobs(int threads, size_t batch, size_t epochs, uint64_t seed)
{
    return train_blobs_in(threads, batch, epochs, seed, 0);
}

Test(determinism, a_smaller_team_than_requested_trains_like_that_many_threads)
{
    bprop_model *one = train_blobs(1, 32, 2, 9), *nested = train_blobs_in(3, 32, 2, 9, 1);
    cr_assert(tu_same_bits(one->params, nested->params, one->layout.total),
              "a 3-thread trainer given a team of 1 must equal a 1-thread run");
    cr_assert_eq(nested->info.threads, 1, "provenance records the team that ran");
    bprop_model_free(one);
    bprop_model_free(nested);
}

/* One full-batch SGD step (no momentum, lr 1): the parameter change is the trainer's own fused
 * reduce-and-update result, compared with the serial double-precision mean gradient. */
static void check_step_reduction(size_t n, int threads)
{
    bprop_dataset *d = tu_blobs(n, 13, 4, 11);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(13, 37, 4, 1, 3, &m, NULL), BPROP_OK);
    size_t P = m->layout.total;
    double *ref = serial_mean_grad(m, d);
    float *before = malloc(P * sizeof(float));
    memcpy(before, m->params, P * sizeof(float));
    bprop_train_config c = full_batch_config(n);
    c.threads = threads;
    c.momentum = 0.0f;
    c.nesterov = 0;
    c.lr = 1.0f;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, n, &t, NULL), BPROP_OK);
    cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
    double num = 0, den = 0;
    for (size_t p = 0; p < P; p++) {
        double step = (double)before[p] - m->params[p];
        num += (step - ref[p]) * (step - ref[p]);
        den += ref[p] * ref[p];
    }
    cr_assert_lt(sqrt(num / den), 1e-5, "n=%zu threads=%d: update differs from the serial mean gradient by %g",
                 n, threads, sqrt(num / den));
    bprop_trainer_free(t);
    free(before);
    free(ref);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(reduction, training_step_equals_serial_sum_for_1_2_3_8_threads)
{
    const int threads[] = {1, 2, 3, 8};
    for (size_t k = 0; k < 4; k++) {
        check_step_reduction(50, threads[k]);
        check_step_reduction(5, threads[k]); /* fewer samples than threads at 8 */
    }
}

Test(determinism, same_seed_and_threads_give_identical_bits)
{
    const int threads[] = {1, 2, 3};
    for (size_t k = 0; k < 3; k++) {
        bprop_model *a = train_blobs(threads[k], 32, 3, 9), *b = train_blobs(threads[k], 32, 3, 9);
        cr_assert(tu_same_bits(a->params, b->params, a->layout.total), "threads=%d", threads[k]);
        bprop_model_free(a);
        bprop_model_free(b);
    }
    bprop_model *a = train_blobs(2, 32, 3, 9), *c = train_blobs(2, 32, 3, 10);
    cr_assert_not(tu_same_bits(a->params, c->params, a->layout.total), "another seed, same model");
    bprop_model_free(a);
    bprop_model_free(c);
}

Test(determinism, thread_counts_agree_up_to_rounding)
{
    bprop_model *a = train_blobs(1, 16, 2, 4);
    const int threads[] = {2, 3, 8};
    for (size_t k = 0; k < 3; k++) {
        bprop_model *b = train_blobs(threads[k], 16, 2, 4); /* 8 threads share 16 samples */
        double maxdiff = 0;
        for (size_t p = 0; p < a->layout.total; p++)
            maxdiff = fmax(maxdiff, fabs(a->params[p] - b->params[p]));
        cr_assert_lt(maxdiff, 1e-4, "threads=%d: max parameter difference %g", threads[k], maxdiff);
        bprop_model_free(b);
    }
    bprop_model_free(a);
}

/* ---- the epoch loop -------------------------------------------------------------------------- */

typedef struct progress_log {
    size_t calls, last_step, steps;
    size_t stop_after;
} progress_log;

static int on_progress(void *user, size_t step, size_t steps, double loss, double acc)
{
    progress_log *p = user;
    cr_assert_eq(step, p->last_step + 1);
    cr_assert(isfinite(loss) && acc >= 0 && acc <= 1);
    p->calls++;
    p->last_step = step;
    p->steps = steps;
    return p->stop_after && step >= p->stop_after;
}

Test(epoch, partial_last_batch_progress_and_early_stop)
{
    bprop_dataset *d = tu_blobs(10, 5, 2, 3);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(5, 7, 2, 1, 1, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.batch = 4;
    c.threads = 3;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    progress_log log = {0};
    bprop_epoch_stats st;
    cr_assert_eq(bprop_trainer_epoch(t, d, on_progress, &log, &st, NULL), BPROP_OK);
    cr_assert_eq(st.steps, 3); /* 4 + 4 + 2 */
    cr_assert_eq(log.calls, 3);
    cr_assert_eq(log.steps, 3);
    cr_assert_eq(m->info.samples_seen, 10);
    cr_assert(st.grad_norm[BPROP_W1] > 0 && st.grad_norm[BPROP_W2] > 0);
    log = (progress_log){.stop_after = 1};
    cr_assert_eq(bprop_trainer_epoch(t, d, on_progress, &log, &st, NULL), BPROP_OK);
    cr_assert_eq(st.steps, 1);
    bprop_trainer_free(t);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(epoch, divergence_is_reported)
{
    bprop_dataset *d = tu_blobs(64, 5, 2, 3);
    for (size_t i = 0; i < d->n * d->dim; i++)
        d->x[i] *= 1e18f;
    bprop_model *m;
    cr_assert_eq(bprop_model_create(5, 7, 2, 1, 1, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.lr = 1e18f;
    c.batch = 8;
    bprop_trainer *t;
    bprop_error err;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    bprop_status st = BPROP_OK;
    for (int e = 0; e < 5 && st == BPROP_OK; e++)
        st = bprop_trainer_epoch(t, d, NULL, NULL, NULL, &err);
    cr_assert_eq(st, BPROP_E_DIVERGED);
    cr_assert_not_null(strstr(err.message, "NaN"));
    bprop_trainer_free(t);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(epoch, rejects_mismatched_data_and_bad_settings)
{
    bprop_dataset *d = tu_blobs(10, 5, 2, 3);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(5, 7, 2, 1, 1, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    bprop_trainer *t;
    bprop_error err;
    cr_assert_eq(bprop_trainer_create(m, &c, 11, &t, NULL), BPROP_OK);
    cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, &err), BPROP_E_MISMATCH);
    bprop_trainer_free(t);
    cr_assert_eq(bprop_trainer_create(m, &c, 10, &t, NULL), BPROP_OK);
    d->y[7] = 2;
    cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, &err), BPROP_E_LABEL);
    cr_assert_not_null(strstr(err.message, "sample 7"));
    bprop_trainer_free(t);
    struct { const char *field; bprop_train_config c; } bad[] = {
        {"learning rate", c}, {"batch", c}, {"momentum", c}, {"epochs", c}, {"weight decay", c}};
    bad[0].c.lr = -1.0f;
    bad[1].c.batch = 0;
    bad[2].c.momentum = 1.0f;
    bad[3].c.epochs = 0;
    bad[4].c.weight_decay = -0.1f;
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        cr_assert_eq(bprop_trainer_create(m, &bad[k].c, 10, &t, &err), BPROP_E_ARG, "%s", bad[k].field);
        cr_assert_not_null(strstr(err.message, bad[k].field), "'%s' lacks '%s'", err.message, bad[k].field);
    }
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* ---- learning -------------------------------------------------------------------------------- */

static double train_and_score(bprop_dataset *d, size_t hidden, bprop_train_config *c)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(d->dim, hidden, d->classes, 1, c->seed, &m, NULL), BPROP_OK);
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, c, d->n, &t, NULL), BPROP_OK);
    for (size_t e = 0; e < c->epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
    bprop_eval ev;
    cr_assert_eq(bprop_evaluate(m, d, 2, &ev, NULL, NULL), BPROP_OK);
    bprop_trainer_free(t);
    bprop_model_free(m);
    return ev.accuracy;
}

Test(learning, xor)
{
    bprop_dataset *d;
    cr_assert_eq(bprop_dataset_alloc(64, 2, 2, 1, &d, NULL), BPROP_OK);
    for (size_t i = 0; i < d->n; i++) {
        int a = i & 1, b = (i >> 1) & 1;
        d->x[2 * i] = (float)a;
        d->x[2 * i + 1] = (float)b;
        d->y[i] = a ^ b;
    }
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 100;
    c.batch = 8;
    c.threads = 2;
    cr_assert_eq(train_and_score(d, 16, &c), 1.0);
    bprop_dataset_free(d);
}

Test(learning, two_spirals_toy_set)
{
    /* Two interleaved spirals in the plane: not linearly separable, easy for 64 ReLUs. */
    bprop_dataset *d;
    size_t n = 400;
    cr_assert_eq(bprop_dataset_alloc(n, 2, 2, 1, &d, NULL), BPROP_OK);
    for (size_t i = 0; i < n; i++) {
        int cls = (int)(i % 2);
        double r = 0.2 + 2.0 * (double)(i / 2) / (double)(n / 2), a = 1.6 * r + cls * PI;
        d->x[2 * i] = (float)(r * cos(a));
        d->x[2 * i + 1] = (float)(r * sin(a));
        d->y[i] = cls;
    }
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 300;
    c.batch = 16;
    c.threads = 2;
    double acc = train_and_score(d, 64, &c);
    cr_assert_geq(acc, 0.95, "spirals: training accuracy %.3f", acc);
    bprop_dataset_free(d);
}

Test(learning, fashion_mnist_subset, .timeout = 300)
{
    if (!tu_have_fashion())
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
    bprop_dataset *train_all, *test_all, *train, *test;
    cr_assert_eq(bprop_dataset_load_idx(BPROP_FASHION_DIR "/train-images-idx3-ubyte.gz",
                                        BPROP_FASHION_DIR "/train-labels-idx1-ubyte.gz", 10,
                                        &train_all, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_load_idx(BPROP_FASHION_DIR "/t10k-images-idx3-ubyte.gz",
                                        BPROP_FASHION_DIR "/t10k-labels-idx1-ubyte.gz", 10,
                                        &test_all, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_subset(train_all, 0, 10000, &train, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_subset(test_all, 0, 2000, &test, NULL), BPROP_OK);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(784, 64, 10, 1, 42, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 3;
    c.threads = 2;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, train->n, &t, NULL), BPROP_OK);
    for (size_t e = 0; e < c.epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(t, train, NULL, NULL, NULL, NULL), BPROP_OK);
    bprop_eval ev;
    uint64_t confusion[100];
    cr_assert_eq(bprop_evaluate(m, test, 2, &ev, confusion, NULL), BPROP_OK);
    /* 784-64-10, 10k samples, 3 epochs: about 84% measured; 82% leaves room for rounding. */
    cr_assert_geq(ev.accuracy, 0.82, "test accuracy %.4f", ev.accuracy);
    uint64_t total = 0, diag = 0;
    for (int i = 0; i < 10; i++)
        for (int j = 0; j < 10; j++) {
            total += confusion[i * 10 + j];
            diag += i == j ? confusion[i * 10 + j] : 0;
        }
    cr_assert_eq(total, test->n);
    cr_assert_float_eq((double)diag / (double)total, ev.accuracy, 1e-12);
    bprop_trainer_free(t);
    bprop_model_free(m);
    bprop_dataset_free(train);
    bprop_dataset_free(test);
    bprop_dataset_free(train_all);
    bprop_dataset_free(test_all);
}

Test(predict, probabilities_sum_to_one_and_match_evaluate)
{
    bprop_dataset *d = tu_blobs(77, 6, 4, 8);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(6, 10, 4, 1, 2, &m, NULL), BPROP_OK);
    float *probs = malloc(d->n * 4 * sizeof(float));
    cr_assert_eq(bprop_predict(m, d->x, d->n, 3, probs, NULL), BPROP_OK);
    double loss = 0;
    for (size_t i = 0; i < d->n; i++) {
        double s = 0;
        for (int c = 0; c < 4; c++)
            s += probs[i * 4 + c];
        cr_assert_float_eq(s, 1.0, 1e-5);
        loss -= log(probs[i * 4 + d->y[i]]);
    }
    bprop_eval ev;
    cr_assert_eq(bprop_evaluate(m, d, 2, &ev, NULL, NULL), BPROP_OK);
    cr_assert_float_eq(loss / (double)d->n, ev.loss, 1e-5);
    free(probs);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(predict, negative_threads_is_an_argument_error)
{
    bprop_dataset *d = tu_blobs(6, 3, 2, 1);
    bprop_model *m;
    cr_assert_eq(bprop_model_create(3, 4, 2, 1, 1, &m, NULL), BPROP_OK);
    float out[64];
    bprop_eval ev;
    bprop_error err;
    cr_assert_eq(bprop_evaluate(m, d, -1, &ev, NULL, &err), BPROP_E_ARG);
    cr_assert_not_null(strstr(err.message, "threads"));
    cr_assert_eq(bprop_predict(m, d->x, d->n, -2, out, &err), BPROP_E_ARG);
    cr_assert_eq(bprop_loss_grad(m, d->x, d->y, d->n, -1, NULL, out, &err), BPROP_E_ARG);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(model, no_bias_layout_and_gradient)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(5, 4, 3, 0, 1, &m, NULL), BPROP_OK);
    cr_assert_eq(m->layout.total, 5 * 4 + 4 * 3);
    cr_assert_null(bprop_model_tensor(m, BPROP_B1));
    cr_assert_null(bprop_model_tensor(m, BPROP_B2));
    bprop_dataset *d = tu_blobs(9, 5, 3, 1);
    float g[32];
    cr_assert_eq(bprop_loss_grad(m, d->x, d->y, d->n, 2, NULL, g, NULL), BPROP_OK);
    bprop_dataset_free(d);
    bprop_model_free(m);
}

Test(model, initialisation_statistics)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(400, 300, 10, 1, 5, &m, NULL), BPROP_OK);
    const float *w1 = bprop_model_tensor(m, BPROP_W1);
    double s = 0, s2 = 0;
    size_t n = m->layout.count[BPROP_W1];
    for (size_t i = 0; i < n; i++) {
        s += w1[i];
        s2 += (double)w1[i] * w1[i];
    }
    /* He-normal: variance 2 / inputs. */
    cr_assert_float_eq(s2 / n, 2.0 / 400, 0.02 * 2.0 / 400);
    cr_assert_lt(fabs(s / n), 1e-3);
    const float *b1 = bprop_model_tensor(m, BPROP_B1);
    for (size_t j = 0; j < 300; j++)
        cr_assert_eq(b1[j], 0.0f);
    bprop_model *again;
    cr_assert_eq(bprop_model_create(400, 300, 10, 1, 5, &again, NULL), BPROP_OK);
    cr_assert(tu_same_bits(m->params, again->params, m->layout.total));
    bprop_model_free(again);
    bprop_model_free(m);
}
