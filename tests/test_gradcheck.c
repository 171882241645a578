/* test_gradcheck.c: backprop against finite differences: accuracy, planted errors, sampling, kinks. */
#include <criterion/criterion.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bprop.h"
#include "testutil.h"

#define IN 20
#define HID 7
#define CLS 4
#define N 16

/* A 20-7-4 net with small random biases (so that b1 and b2 matter) and a blob batch. */
static bprop_model *make_net(int bias, uint64_t seed)
{
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_create(IN, HID, CLS, bias, seed, &m, NULL), BPROP_OK);
    uint64_t s = seed * 2654435761u + 1;
    for (int t = BPROP_B1; bias && t <= BPROP_B2; t += 2) {
        float *b = bprop_model_tensor(m, (bprop_tensor)t);
        for (size_t k = 0; k < m->layout.count[t]; k++) {
            s = s * 6364136223846793005u + 1442695040888963407u;
            b[k] = (float)((double)(s >> 11) * 0x1.0p-53 - 0.5);
        }
    }
    return m;
}

static bprop_gradcheck_report check(const bprop_model *m, const bprop_dataset *d, bprop_fd_method method,
                                    double step, size_t samples, uint64_t seed, int threads,
                                    const float *grad)
{
    bprop_gradcheck_config c;
    bprop_gradcheck_config_default(&c);
    c.method = method;
    c.step = step;
    c.samples = samples;
    c.seed = seed;
    c.threads = threads;
    bprop_gradcheck_report r;
    bprop_error err = {0};
    bprop_status st = bprop_gradcheck(m, d->x, d->y, d->n, &c, grad, &r, &err);
    cr_assert_eq(st, BPROP_OK, "gradcheck failed: %s", err.message);
    return r;
}

static float *backprop(const bprop_model *m, const bprop_dataset *d, double *loss)
{
    float *g = calloc(m->layout.total, sizeof *g);
    cr_assert_not_null(g);
    cr_assert_eq(bprop_loss_grad(m, d->x, d->y, d->n, 1, loss, g, NULL), BPROP_OK);
    return g;
}

/* Every present tensor fully covered, sorted worst lists, errors below tol. */
static void expect_full_pass(const bprop_model *m, const bprop_gradcheck_report *r, double tol)
{
    for (int t = 0; t < BPROP_TENSORS; t++) {
        const bprop_gradcheck_tensor *g = &r->tensor[t];
        cr_expect_eq(g->checked + g->kinks, m->layout.count[t], "%s: %zu checked + %zu kinks != %zu",
                     bprop_tensor_name((bprop_tensor)t), g->checked, g->kinks, m->layout.count[t]);
        cr_expect_lt(g->rel_error, tol, "%s: rel_error %g", bprop_tensor_name((bprop_tensor)t), g->rel_error);
        cr_expect(g->kinks * 10 < m->layout.count[t] + 10, "%s: %zu kinks", bprop_tensor_name((bprop_tensor)t),
                  g->kinks);
        if (g->checked == 0)
            continue;
        cr_expect_eq(g->worst_count, g->checked < BPROP_GRADCHECK_WORST ? g->checked : BPROP_GRADCHECK_WORST);
        cr_expect_eq(g->worst[0].abs_error, g->max_abs_error);
        for (size_t k = 1; k < g->worst_count; k++)
            cr_expect_geq(g->worst[k - 1].abs_error, g->worst[k].abs_error);
        cr_expect(g->rel_error > 0.0, "%s: float backprop cannot match to the last bit",
                  bprop_tensor_name((bprop_tensor)t));
    }
}

Test(gradcheck, central_full_with_bias)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 3);
    bprop_model *m = make_net(1, 11);
    bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 0, NULL);
    expect_full_pass(m, &r, 1e-5);
    cr_expect_eq(r.forward_passes, 2 * m->layout.total);
    cr_expect_lt(r.max_rel_error, 1e-5);
    cr_expect(r.seconds_backprop > 0.0 && r.seconds_fd > 0.0);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(gradcheck, central_full_without_bias)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 4);
    bprop_model *m = make_net(0, 12);
    bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 2, NULL);
    expect_full_pass(m, &r, 1e-5);
    cr_expect_eq(r.tensor[BPROP_B1].checked + r.tensor[BPROP_B2].checked, 0);
    cr_expect_eq(r.forward_passes, 2 * (size_t)(IN * HID + HID * CLS));
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(gradcheck, forward_differences)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 5);
    bprop_model *m = make_net(1, 13);
    bprop_gradcheck_report r = check(m, d, BPROP_FD_FORWARD, 1e-7, 0, 1, 0, NULL);
    expect_full_pass(m, &r, 1e-4);
    cr_expect_eq(r.forward_passes, m->layout.total + 1);
    /* A large forward step shows its O(h) truncation error: the check is not vacuous. */
    bprop_gradcheck_report coarse = check(m, d, BPROP_FD_FORWARD, 1e-2, 0, 1, 0, NULL);
    cr_expect_gt(coarse.max_rel_error, 1e-4, "forward step 1e-2 gave %g", coarse.max_rel_error);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(gradcheck, planted_error_is_found)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 6);
    bprop_model *m = make_net(1, 14);
    float *g = backprop(m, d, NULL);
    const size_t planted = 2 * CLS + 3; /* W2[2][3] */
    g[m->layout.offset[BPROP_W2] + planted] += 1e-2f;
    bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 0, g);
    const bprop_gradcheck_tensor *w2 = &r.tensor[BPROP_W2];
    cr_expect_eq(w2->worst[0].index, planted, "worst W2 entry %zu, planted %zu", w2->worst[0].index, planted);
    cr_expect(fabs(w2->worst[0].abs_error - 1e-2) < 1e-5, "abs error %g", w2->worst[0].abs_error);
    cr_expect_lt(w2->worst[1].abs_error, 1e-5, "runner-up %g", w2->worst[1].abs_error);
    cr_expect_gt(w2->rel_error, 1e-3, "W2 rel_error %g", w2->rel_error);
    cr_expect_eq(r.max_rel_error, w2->rel_error);
    for (int t = 0; t < BPROP_TENSORS; t++)
        if (t != BPROP_W2)
            cr_expect_lt(r.tensor[t].rel_error, 1e-5, "%s: %g", bprop_tensor_name((bprop_tensor)t),
                         r.tensor[t].rel_error);
    free(g);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* Sampled mode: exactly K distinct entries per tensor. Entry i of W2 is planted with error
 * (i + 1) * 1e-3 so that the worst list reveals which indices were drawn. */
Test(gradcheck, sampled_mode_draws_k_distinct_entries)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 7);
    bprop_model *m = make_net(1, 15);
    float *g = backprop(m, d, NULL);
    size_t w2n = m->layout.count[BPROP_W2];
    for (size_t i = 0; i < w2n; i++)
        g[m->layout.offset[BPROP_W2] + i] += (float)(i + 1) * 1e-3f;
    const size_t K = 5;
    bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, K, 99, 0, g);
    size_t total = 0;
    for (int t = 0; t < BPROP_TENSORS; t++) {
        size_t want = m->layout.count[t] < K ? m->layout.count[t] : K;
        cr_expect_eq(r.tensor[t].checked + r.tensor[t].kinks, want, "%s", bprop_tensor_name((bprop_tensor)t));
        total += want;
    }
    cr_expect_eq(total, 5 + 5 + 5 + 4); /* b2 has only 4 entries */
    cr_expect_eq(r.forward_passes, 2 * total);
    const bprop_gradcheck_tensor *w2 = &r.tensor[BPROP_W2];
    cr_assert_eq(w2->worst_count, K);
    for (size_t k = 0; k < K; k++) {
        cr_expect_lt(w2->worst[k].index, w2n);
        cr_expect(fabs(w2->worst[k].abs_error - (double)(w2->worst[k].index + 1) * 1e-3) < 1e-5);
        if (k > 0)
            cr_expect_gt(w2->worst[k - 1].index, w2->worst[k].index, "indices repeat or unsorted");
    }
    /* Distinct draws under many seeds: with replacement, 5 of 28 would repeat ~30% of the time. */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        bprop_gradcheck_report rs = check(m, d, BPROP_FD_CENTRAL, 1e-4, K, seed, 0, g);
        for (size_t k = 1; k < rs.tensor[BPROP_W2].worst_count; k++)
            cr_expect_gt(rs.tensor[BPROP_W2].worst[k - 1].index, rs.tensor[BPROP_W2].worst[k].index,
                         "seed %llu: W2 indices repeat", (unsigned long long)seed);
        cr_expect_eq(rs.tensor[BPROP_W2].checked, K);
    }
    /* Same seed, same draw; another seed, another draw. */
    bprop_gradcheck_report again = check(m, d, BPROP_FD_CENTRAL, 1e-4, K, 99, 1, g);
    bprop_gradcheck_report other = check(m, d, BPROP_FD_CENTRAL, 1e-4, K, 100, 0, g);
    cr_expect_eq(memcmp(again.tensor, r.tensor, sizeof r.tensor), 0);
    int same = 1;
    for (size_t k = 0; k < K; k++)
        same &= other.tensor[BPROP_W2].worst[k].index == w2->worst[k].index;
    cr_expect_not(same, "seeds 99 and 100 drew the same W2 entries");
    /* K at least the largest tensor checks everything. */
    bprop_gradcheck_report all = check(m, d, BPROP_FD_CENTRAL, 1e-4, 1000, 99, 0, g);
    cr_expect_eq(all.forward_passes, 2 * m->layout.total);
    free(g);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(gradcheck, results_do_not_depend_on_threads)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 8);
    bprop_model *m = make_net(1, 16);
    float *g = backprop(m, d, NULL);
    bprop_gradcheck_report a = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 1, g);
    bprop_gradcheck_report b = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 3, g);
    cr_expect_eq(memcmp(a.tensor, b.tensor, sizeof a.tensor), 0);
    free(g);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* Unit J of sample 0 sits 1e-9 above zero: W1 column J is zero except row I0, where sample 0
 * has a zero input, and b1[J] = 1e-9. Moving b1[J] or any W1[i][J] with x_0i != 0 by h flips
 * the unit, so the finite difference straddles the kink. */
Test(gradcheck, kink_is_reported_not_failed)
{
    enum { J = 2, I0 = 5 };
    bprop_dataset *d = tu_blobs(N, IN, CLS, 9);
    bprop_model *m = make_net(1, 17);
    float *w1 = bprop_model_tensor(m, BPROP_W1), *b1 = bprop_model_tensor(m, BPROP_B1);
    for (size_t i = 0; i < IN; i++)
        w1[i * HID + J] = i == I0 ? 0.5f : 0.0f;
    d->x[I0] = 0.0f;
    b1[J] = 1e-9f;
    for (size_t s = 1; s < N; s++) /* the other samples stay far from the kink */
        cr_assert_gt(fabs(0.5 * d->x[s * IN + I0]), 1e-2);
    bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 0, NULL);
    cr_expect_eq(r.tensor[BPROP_B1].kinks, 1);
    cr_expect_eq(r.tensor[BPROP_B1].checked, HID - 1);
    cr_expect_geq(r.tensor[BPROP_W1].kinks, IN - 1);
    cr_expect_eq(r.tensor[BPROP_W2].kinks + r.tensor[BPROP_B2].kinks, 0);
    for (size_t k = 0; k < r.tensor[BPROP_B1].worst_count; k++)
        cr_expect_neq(r.tensor[BPROP_B1].worst[k].index, (size_t)J);
    cr_expect_lt(r.max_rel_error, 1e-5, "kinks leaked into the errors: %g", r.max_rel_error);

    /* The skipped entry really is meaningless: its central difference misses backprop. */
    size_t p = m->layout.total, jb = m->layout.offset[BPROP_B1] + J;
    double *theta = malloc(p * sizeof *theta);
    for (size_t k = 0; k < p; k++)
        theta[k] = m->params[k];
    theta[jb] = b1[J] + 1e-4;
    double lp = bprop_loss_double(m, theta, d->x, d->y, N);
    theta[jb] = b1[J] - 1e-4;
    double lm = bprop_loss_double(m, theta, d->x, d->y, N);
    float *g = backprop(m, d, NULL);
    cr_expect_gt(fabs((lp - lm) / 2e-4 - g[jb]), 1e-3, "fd %g, backprop %g", (lp - lm) / 2e-4, (double)g[jb]);
    free(g);
    free(theta);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

Test(gradcheck, double_loss_matches_backprop_loss)
{
    for (int bias = 0; bias <= 1; bias++) {
        bprop_dataset *d = tu_blobs(N, IN, CLS, 10 + (uint64_t)bias);
        bprop_model *m = make_net(bias, 18);
        double lf = 0.0;
        float *g = backprop(m, d, &lf);
        double *theta = malloc(m->layout.total * sizeof *theta);
        for (size_t k = 0; k < m->layout.total; k++)
            theta[k] = m->params[k];
        double ld = bprop_loss_double(m, theta, d->x, d->y, N);
        cr_expect(lf > 0.0 && fabs(ld - lf) <= 1e-6 * lf, "bias %d: double %.12g, float %.12g", bias, ld, lf);
        free(theta);
        free(g);
        bprop_model_free(m);
        bprop_dataset_free(d);
    }
}

Test(gradcheck, bad_arguments_fail_cleanly)
{
    bprop_dataset *d = tu_blobs(N, IN, CLS, 11);
    bprop_model *m = make_net(1, 19);
    bprop_gradcheck_config c;
    bprop_gradcheck_config_default(&c);
    cr_expect_eq(c.method, BPROP_FD_CENTRAL);
    cr_expect_eq(c.step, 1e-4);
    cr_expect_eq(c.samples, 0);
    bprop_gradcheck_report r;
    bprop_error err = {0};
    cr_expect_eq(bprop_gradcheck(NULL, d->x, d->y, N, &c, NULL, &r, &err), BPROP_E_ARG);
    cr_expect_eq(bprop_gradcheck(m, d->x, d->y, 0, &c, NULL, &r, &err), BPROP_E_SIZE);
    c.step = 0.0;
    cr_expect_eq(bprop_gradcheck(m, d->x, d->y, N, &c, NULL, &r, &err), BPROP_E_ARG);
    cr_expect(strstr(err.message, "step") != NULL, "%s", err.message);
    c.step = 1e-4;
    d->y[3] = CLS;
    cr_expect_eq(bprop_gradcheck(m, d->x, d->y, N, &c, NULL, &r, &err), BPROP_E_LABEL);
    cr_expect(strstr(err.message, "sample 3") != NULL, "%s", err.message);
    double *theta = calloc(m->layout.total, sizeof *theta);
    cr_expect(isnan(bprop_loss_double(m, theta, d->x, d->y, N)));
    d->y[3] = 0;
    cr_expect(isfinite(bprop_loss_double(m, theta, d->x, d->y, N)));
    m->params[m->layout.offset[BPROP_W2] + 4] = NAN;
    cr_expect_eq(bprop_gradcheck(m, d->x, d->y, N, &c, NULL, &r, &err), BPROP_E_NONFINITE);
    cr_expect(strstr(err.message, "W2[4]") != NULL, "%s", err.message);
    free(theta);
    bprop_model_free(m);
    bprop_dataset_free(d);
}

/* The textbook loss, sample by sample, for checking the blocked forward pass. */
static double naive_loss(const bprop_model *m, const double *th, const float *x, const int32_t *y, size_t n)
{
    const bprop_layout *L = &m->layout;
    size_t in = m->inputs, hid = m->hidden, cls = m->classes;
    double total = 0.0, logit[16];
    cr_assert_leq(cls, 16);
    for (size_t s = 0; s < n; s++) {
        for (size_t c = 0; c < cls; c++)
            logit[c] = m->has_bias ? th[L->offset[BPROP_B2] + c] : 0.0;
        for (size_t j = 0; j < hid; j++) {
            double z = m->has_bias ? th[L->offset[BPROP_B1] + j] : 0.0;
            for (size_t i = 0; i < in; i++)
                z += (double)x[s * in + i] * th[i * hid + j];
            for (size_t c = 0; z > 0.0 && c < cls; c++)
                logit[c] += z * th[L->offset[BPROP_W2] + j * cls + c];
        }
        double mx = logit[0], sum = 0.0;
        for (size_t c = 1; c < cls; c++)
            mx = fmax(mx, logit[c]);
        for (size_t c = 0; c < cls; c++)
            sum += exp(logit[c] - mx);
        total += log(sum) + mx - logit[y[s]];
    }
    return total / (double)n;
}

/* Widths and batch sizes that leave partial register tiles (hidden 19 and 40, 18 and 70 samples:
 * the blocked pass has edges in both directions and a second block of samples). */
Test(gradcheck, blocked_forward_edges)
{
    const size_t hids[] = {1, 19, 40}, ns[] = {18, 70};
    for (size_t a = 0; a < 3; a++)
        for (size_t b = 0; b < 2; b++) {
            bprop_dataset *d = tu_blobs(ns[b], IN, 3, 20 + a);
            bprop_model *m = NULL;
            cr_assert_eq(bprop_model_create(IN, hids[a], 3, (int)b, 21, &m, NULL), BPROP_OK);
            double *theta = malloc(m->layout.total * sizeof *theta);
            for (size_t k = 0; k < m->layout.total; k++)
                theta[k] = m->params[k] + (k % 3 == 0 ? 0.01 : 0.0);
            double got = bprop_loss_double(m, theta, d->x, d->y, d->n);
            double want = naive_loss(m, theta, d->x, d->y, d->n);
            cr_expect(fabs(got - want) <= 1e-12 * want, "hidden %zu, n %zu: %.15g vs %.15g", hids[a],
                      ns[b], got, want);
            bprop_gradcheck_report r = check(m, d, BPROP_FD_CENTRAL, 1e-4, 0, 1, 0, NULL);
            expect_full_pass(m, &r, 1e-5);
            free(theta);
            bprop_model_free(m);
            bprop_dataset_free(d);
        }
}
