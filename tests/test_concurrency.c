/* test_concurrency.c: evaluate, predict and loss_grad called on one model from several threads at
 * once give bit for bit the results of calls made one at a time; workspaces give the same bits. */
#include "testutil.h"
#include "workspace.h"

#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define CALLERS 4
#define ROUNDS 25
#define CALL_THREADS 2 /* OpenMP threads of each call */

/* One model, its data and the results of serial calls. */
typedef struct fixture {
    bprop_model *m;
    bprop_dataset *d;
    size_t P, C;
    float *grad;       /* (P) bprop_loss_grad */
    double loss;
    float *probs;      /* (n, C) bprop_predict */
    bprop_eval ev;     /* bprop_evaluate */
    uint64_t *confusion; /* (C, C) */
    pthread_barrier_t start;
} fixture;

/* What one calling thread saw: how many calls failed and how many differed from the serial
 * results, per kind. */
typedef struct caller {
    fixture *f;
    int use_workspace;
    int failed, grad_diff, predict_diff, eval_diff;
} caller;

static void fixture_make(fixture *f, size_t n, size_t H)
{
    memset(f, 0, sizeof *f);
    f->d = tu_blobs(n, 24, 5, 17);
    cr_assert_eq(bprop_model_create(24, H, 5, 1, 7, &f->m, NULL), BPROP_OK);
    f->P = f->m->layout.total;
    f->C = f->m->classes;
    f->grad = malloc(f->P * sizeof(float));
    f->probs = malloc(n * f->C * sizeof(float));
    f->confusion = malloc(f->C * f->C * sizeof(uint64_t));
    const bprop_dataset *d = f->d;
    cr_assert_eq(bprop_loss_grad(f->m, d->x, d->y, d->n, CALL_THREADS, &f->loss, f->grad, NULL), BPROP_OK);
    cr_assert_eq(bprop_predict(f->m, d->x, d->n, CALL_THREADS, f->probs, NULL), BPROP_OK);
    cr_assert_eq(bprop_evaluate(f->m, d, CALL_THREADS, &f->ev, f->confusion, NULL), BPROP_OK);
}

static void fixture_free(fixture *f)
{
    free(f->grad);
    free(f->probs);
    free(f->confusion);
    bprop_model_free(f->m);
    bprop_dataset_free(f->d);
}

/* One round of the three calls, with ws or (NULL) the plain calls; counts into c. */
static void one_round(caller *c, bprop_workspace *ws, float *grad, float *probs, uint64_t *conf)
{
    const fixture *f = c->f;
    const bprop_dataset *d = f->d;
    double loss;
    bprop_eval ev;
    bprop_status a = ws ? bprop_loss_grad_ws(ws, f->m, d->x, d->y, d->n, CALL_THREADS, &loss, grad, NULL)
                        : bprop_loss_grad(f->m, d->x, d->y, d->n, CALL_THREADS, &loss, grad, NULL);
    bprop_status b = ws ? bprop_predict_ws(ws, f->m, d->x, d->n, CALL_THREADS, probs, NULL)
                        : bprop_predict(f->m, d->x, d->n, CALL_THREADS, probs, NULL);
    bprop_status e = ws ? bprop_evaluate_ws(ws, f->m, d, CALL_THREADS, &ev, conf, NULL)
                        : bprop_evaluate(f->m, d, CALL_THREADS, &ev, conf, NULL);
    c->failed += (a != BPROP_OK) + (b != BPROP_OK) + (e != BPROP_OK);
    c->grad_diff += !tu_same_bits(grad, f->grad, f->P) || memcmp(&loss, &f->loss, sizeof loss) != 0;
    c->predict_diff += !tu_same_bits(probs, f->probs, d->n * f->C);
    c->eval_diff += memcmp(&ev, &f->ev, sizeof ev) != 0 ||
                    memcmp(conf, f->confusion, f->C * f->C * sizeof *conf) != 0;
}

static void *call_many(void *p)
{
    caller *c = p;
    const fixture *f = c->f;
    float *grad = malloc(f->P * sizeof(float)), *probs = malloc(f->d->n * f->C * sizeof(float));
    uint64_t *conf = malloc(f->C * f->C * sizeof(uint64_t));
    bprop_workspace *ws = NULL;
    if (c->use_workspace && bprop_workspace_create(&ws, NULL) != BPROP_OK)
        c->failed++;
    pthread_barrier_wait(&c->f->start); /* every caller starts at once */
    for (int r = 0; r < ROUNDS; r++)
        one_round(c, ws, grad, probs, conf);
    bprop_workspace_free(ws);
    free(grad);
    free(probs);
    free(conf);
    return NULL;
}

static void run_callers(size_t n, size_t H, int use_workspace)
{
    fixture f;
    fixture_make(&f, n, H);
    cr_assert_eq(pthread_barrier_init(&f.start, NULL, CALLERS), 0);
    caller c[CALLERS];
    pthread_t th[CALLERS];
    for (int i = 0; i < CALLERS; i++) {
        c[i] = (caller){.f = &f, .use_workspace = use_workspace};
        cr_assert_eq(pthread_create(&th[i], NULL, call_many, &c[i]), 0);
    }
    for (int i = 0; i < CALLERS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&f.start);
    for (int i = 0; i < CALLERS; i++) {
        cr_expect_eq(c[i].failed, 0, "caller %d: %d calls failed", i, c[i].failed);
        cr_expect_eq(c[i].grad_diff, 0, "caller %d: %d of %d loss_grad calls differ from the serial one",
                     i, c[i].grad_diff, ROUNDS);
        cr_expect_eq(c[i].predict_diff, 0, "caller %d: %d of %d predict calls differ", i,
                     c[i].predict_diff, ROUNDS);
        cr_expect_eq(c[i].eval_diff, 0, "caller %d: %d of %d evaluate calls differ", i,
                     c[i].eval_diff, ROUNDS);
    }
    fixture_free(&f);
}

TestSuite(concurrency);

/* Several blocks of samples: float sums in another order would move the gradient's low bits. */
Test(concurrency, four_callers_on_one_model_get_the_serial_bits) { run_callers(5 * 64 + 11, 40, 0); }

Test(concurrency, four_callers_with_a_workspace_each_get_the_serial_bits) { run_callers(5 * 64 + 11, 40, 1); }

/* A workspace follows each call's model shape and thread count, with the bits of the plain calls. */
Test(concurrency, one_workspace_across_shapes_and_thread_counts)
{
    fixture a, b;
    fixture_make(&a, 200, 40);
    fixture_make(&b, 90, 70);
    bprop_workspace *ws;
    cr_assert_eq(bprop_workspace_create(&ws, NULL), BPROP_OK);
    for (int r = 0; r < 3; r++) {
        const fixture *f = r % 2 ? &b : &a;
        float *g = malloc(f->P * sizeof(float));
        for (int threads = 1; threads <= 3; threads++) {
            double loss;
            cr_assert_eq(bprop_loss_grad_ws(ws, f->m, f->d->x, f->d->y, f->d->n, threads, &loss, g, NULL),
                         BPROP_OK);
            cr_assert(tu_same_bits(g, f->grad, f->P), "round %d, %d threads: gradient differs", r, threads);
            /* The loss of an evaluation is summed per thread: compare at the serial call's count. */
            bprop_eval ev;
            cr_assert_eq(bprop_evaluate_ws(ws, f->m, f->d, threads, &ev, NULL, NULL), BPROP_OK);
            if (threads == CALL_THREADS)
                cr_assert_eq(memcmp(&ev, &f->ev, sizeof ev), 0, "round %d: evaluation differs", r);
        }
        free(g);
    }
    bprop_workspace_free(ws);
    bprop_error err;
    cr_assert_eq(bprop_evaluate_ws(NULL, a.m, a.d, 1, &a.ev, NULL, &err), BPROP_E_ARG);
    fixture_free(&a);
    fixture_free(&b);
}

/* A workspace serves one call at a time: a call that finds it held fails, and leaves it held. */
Test(concurrency, a_workspace_in_use_refuses_a_second_call)
{
    fixture f;
    fixture_make(&f, 100, 16);
    bprop_workspace *ws;
    cr_assert_eq(bprop_workspace_create(&ws, NULL), BPROP_OK);
    cr_assert_eq(bp_workspace_claim(ws, "test", NULL), BPROP_OK); /* as a call in progress would */
    bprop_error err;
    cr_assert_eq(bprop_loss_grad_ws(ws, f.m, f.d->x, f.d->y, f.d->n, 1, NULL, f.grad, &err), BPROP_E_ARG);
    cr_assert_not_null(strstr(err.message, "in use"), "'%s'", err.message);
    cr_assert_eq(bprop_predict_ws(ws, f.m, f.d->x, f.d->n, 1, f.probs, &err), BPROP_E_ARG);
    bp_workspace_release(ws);
    float *g = malloc(f.P * sizeof(float));
    cr_assert_eq(bprop_loss_grad_ws(ws, f.m, f.d->x, f.d->y, f.d->n, 1, NULL, g, NULL), BPROP_OK);
    cr_assert(tu_same_bits(g, f.grad, f.P));
    free(g);
    bprop_workspace_free(ws);
    fixture_free(&f);
}
