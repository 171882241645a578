/* test_slices.c: the hidden split's private W1 slices (step_slices.c): the model and the momentum
 * are current whenever an epoch returns, and every step reads W1 where the last one left it. */
#include "step.h"
#include "testutil.h"

#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* Four blocks of hidden units: a slice each for teams of up to four threads. */
#define DIM 10
#define HIDDEN 256
#define CLASSES 3
#define N_TRAIN 300

/* A float hidden split sums each slice as one thread's pass does, so a team of any size trains
 * the bits of one thread: every test compares against a one-thread run, whose W1 never leaves
 * the model. */
typedef struct run {
    bprop_dataset *d;
    bprop_model *m;
    bprop_trainer *t;
    volatile sig_atomic_t cancel;
} run;

/* Blobs with every fourth label moved to the next class, so the loss never reaches zero and
 * every step changes the parameters. */
static bprop_dataset *noisy_blobs(void)
{
    bprop_dataset *d = tu_blobs(N_TRAIN, DIM, CLASSES, 5);
    for (size_t i = 0; i < N_TRAIN; i += 4)
        d->y[i] = (d->y[i] + 1) % CLASSES;
    return d;
}

static void run_start(run *r, int threads, size_t batch, float lr)
{
    memset(r, 0, sizeof *r);
    r->d = noisy_blobs();
    cr_assert_eq(bprop_model_create(DIM, HIDDEN, CLASSES, 1, 11, &r->m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = threads;
    c.batch = batch;
    c.lr = lr;
    c.parallel = BPROP_PARALLEL_HIDDEN; /* one thread: the data split, whatever this says */
    cr_assert_eq(bprop_trainer_create(r->m, &c, N_TRAIN, &r->t, NULL), BPROP_OK);
    bprop_trainer_set_cancel(r->t, &r->cancel);
}

static void run_free(run *r)
{
    bprop_trainer_free(r->t);
    bprop_model_free(r->m);
    bprop_dataset_free(r->d);
}

static const float *velocity_of(const run *r)
{
    bprop_trainer_state s;
    bprop_trainer_get_state(r->t, &s);
    return s.velocity;
}

static void assert_same_model(const run *a, const run *b, const char *when)
{
    const size_t P = a->m->layout.total;
    cr_assert(tu_same_bits(a->m->params, b->m->params, P), "%s: the parameters differ", when);
    cr_assert(tu_same_bits(velocity_of(a), velocity_of(b), P), "%s: the momentum differs", when);
}

static bprop_status epoch(run *r, bprop_progress_fn progress, void *user)
{
    return bprop_trainer_epoch(r->t, r->d, progress, user, NULL, NULL);
}

/* ---- the end of an epoch ------------------------------------------------------------------- */

Test(slices, every_epoch_leaves_the_model_and_momentum_current)
{
    /* One block per batch, and two (the W1 sums kept between blocks, W1 packed for the step). */
    const size_t batches[] = {32, 128};
    for (size_t k = 0; k < 2; k++) {
        run one, two;
        run_start(&one, 1, batches[k], 0.05f);
        run_start(&two, 2, batches[k], 0.05f);
        for (int e = 0; e < 2; e++) {
            cr_assert_eq(epoch(&one, NULL, NULL), BPROP_OK);
            cr_assert_eq(epoch(&two, NULL, NULL), BPROP_OK);
            assert_same_model(&one, &two, batches[k] == 32 ? "batch 32" : "batch 128");
        }
        run_free(&one);
        run_free(&two);
    }
}

/* Between epochs the caller may rewrite the parameters and the momentum (the public model and
 * bprop_trainer_set_state): the next epoch trains on them, not on slices of the last. */
static void halve_w1_and_drop_momentum(run *r)
{
    float *w1 = bprop_model_tensor(r->m, BPROP_W1);
    for (size_t i = 0; i < r->m->layout.count[BPROP_W1]; i++)
        w1[i] *= 0.5f;
    bprop_trainer_state s;
    bprop_trainer_get_state(r->t, &s);
    float *v = calloc(s.params, sizeof(float));
    size_t *perm = malloc(s.n_train * sizeof *perm);
    cr_assert(v && perm);
    memcpy(perm, s.perm, s.n_train * sizeof *perm);
    s.perm = perm;
    s.velocity = v;
    cr_assert_eq(bprop_trainer_set_state(r->t, &s, NULL), BPROP_OK);
    free(v);
    free(perm);
}

Test(slices, parameters_changed_between_epochs_are_trained_on)
{
    run one, two;
    run_start(&one, 1, 128, 0.05f);
    run_start(&two, 2, 128, 0.05f);
    cr_assert_eq(epoch(&one, NULL, NULL), BPROP_OK);
    cr_assert_eq(epoch(&two, NULL, NULL), BPROP_OK);
    halve_w1_and_drop_momentum(&one);
    halve_w1_and_drop_momentum(&two);
    cr_assert_eq(epoch(&one, NULL, NULL), BPROP_OK);
    cr_assert_eq(epoch(&two, NULL, NULL), BPROP_OK);
    assert_same_model(&one, &two, "after the change");
    run_free(&one);
    run_free(&two);
}

/* ---- epochs that stop early ---------------------------------------------------------------- */

/* A 2-thread run cancelled mid-epoch, and resumed the way a checkpoint resumes: its model and
 * trainer state into a fresh model and trainer. */
static void resume_fresh(run *r)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(DIM, HIDDEN, CLASSES, 1, 11, &m, NULL), BPROP_OK);
    memcpy(m->params, r->m->params, r->m->layout.total * sizeof(float));
    bprop_trainer_state s;
    bprop_trainer_get_state(r->t, &s);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = 2;
    c.batch = 32;
    c.lr = 0.05f;
    c.parallel = BPROP_PARALLEL_HIDDEN;
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, N_TRAIN, &t, NULL), BPROP_OK);
    cr_assert_eq(bprop_trainer_set_state(t, &s, NULL), BPROP_OK);
    bprop_trainer_free(r->t);
    bprop_model_free(r->m);
    r->m = m;
    r->t = t;
    r->cancel = 0;
    bprop_trainer_set_cancel(t, &r->cancel);
}

Test(slices, a_cancelled_epoch_leaves_the_model_current_and_resumes)
{
    run one, two;
    run_start(&one, 1, 32, 0.05f);
    run_start(&two, 2, 32, 0.05f);
    tu_stopper s1 = {&one.cancel, 3}, s2 = {&two.cancel, 3};
    cr_assert_eq(epoch(&one, tu_stop_at, &s1), BPROP_E_CANCELLED);
    cr_assert_eq(epoch(&two, tu_stop_at, &s2), BPROP_E_CANCELLED);
    assert_same_model(&one, &two, "after the cancelled epoch");
    one.cancel = 0;
    resume_fresh(&two);
    cr_assert_eq(epoch(&one, NULL, NULL), BPROP_OK);
    cr_assert_eq(epoch(&two, NULL, NULL), BPROP_OK);
    assert_same_model(&one, &two, "after the resumed epoch");
    run_free(&one);
    run_free(&two);
}

Test(slices, a_diverged_epoch_leaves_the_model_as_one_thread_does)
{
    run one, two;
    run_start(&one, 1, 32, 100.0f);
    run_start(&two, 2, 32, 100.0f);
    const size_t P = one.m->layout.total;
    float *start = malloc(P * sizeof(float));
    cr_assert(start);
    memcpy(start, two.m->params, P * sizeof(float));
    cr_assert_eq(epoch(&one, NULL, NULL), BPROP_E_DIVERGED);
    cr_assert_eq(epoch(&two, NULL, NULL), BPROP_E_DIVERGED);
    cr_assert(!tu_same_bits(start, two.m->params, P), "no step before the divergence: "
              "a smaller learning rate");
    assert_same_model(&one, &two, "after the divergence");
    free(start);
    run_free(&one);
    run_free(&two);
}

Test(slices, parameters_that_are_not_finite_stay_as_they_were)
{
    /* Scales that are not finite: the first step diverges before any update, with the slices
     * loaded but W1 not updated in the pass; what goes back must be what came in. */
    run two;
    run_start(&two, 2, 128, 0.05f);
    bprop_model_tensor(two.m, BPROP_W1)[DIM * HIDDEN / 2] = INFINITY;
    const size_t P = two.m->layout.total;
    float *start = malloc(P * sizeof(float));
    cr_assert(start);
    memcpy(start, two.m->params, P * sizeof(float));
    cr_assert_eq(epoch(&two, NULL, NULL), BPROP_E_DIVERGED);
    cr_assert(tu_same_bits(start, two.m->params, P));
    free(start);
    run_free(&two);
}

/* ---- steps on another team or split (the stepper itself) ----------------------------------- */

typedef struct stepper_run {
    bprop_model *m;
    float *velocity;
    bp_stepper *s;
} stepper_run;

/* A training stepper for a model of d's width and `hidden` units, batches up to 256. */
static void stepper_start(stepper_run *r, int threads, const bprop_dataset *d, size_t hidden,
                          bprop_parallel parallel)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.parallel = parallel;
    cr_assert_eq(bprop_model_create(d->dim, hidden, CLASSES, 1, 11, &r->m, NULL), BPROP_OK);
    r->velocity = calloc(r->m->layout.total, sizeof(float));
    cr_assert(r->velocity);
    const bp_stepper_spec spec = {.m = r->m, .params = r->m->params, .velocity = r->velocity,
                                  .threads = threads, .batch = 256, .cfg = &c};
    cr_assert_eq(bp_stepper_create(&spec, &r->s), BPROP_OK);
    const bp_src src = bp_src_dataset(d);
    bp_stepper_prepare(r->s, &src, d->n);
}

static void stepper_free(stepper_run *r)
{
    bp_stepper_free(r->s);
    free(r->velocity);
    bprop_model_free(r->m);
}

/* One step of samples [first, first + nb) on a team of `team` threads. */
static void step_on(stepper_run *r, int team, const bprop_dataset *d, size_t first, size_t nb)
{
    bp_step_io io = {.b = {.X = bp_src_dataset(d), .Y = d->y, .first = first, .nb = nb},
                     .lr = 0.05f};
#pragma omp parallel num_threads(team)
    bp_step(r->s, omp_get_thread_num(), omp_get_num_threads(), &io);
    cr_assert(!r->s->diverged);
}

static void assert_same_steppers(const stepper_run *a, const stepper_run *b)
{
    const size_t P = a->m->layout.total;
    cr_assert(tu_same_bits(a->m->params, b->m->params, P), "the parameters differ");
    cr_assert(tu_same_bits(a->velocity, b->velocity, P), "the momentum differs");
}

Test(slices, a_step_on_another_team_or_split_stores_the_slices_first)
{
    /* A team of one takes the data split, which reads W1 in the model; teams of 2 and 3 cut
     * the hidden units into other slices. Each change must find W1 where the last step left it. */
    const int teams[] = {2, 2, 1, 2, 3, 3, 2};
    bprop_dataset *d = noisy_blobs();
    stepper_run a, b;
    stepper_start(&a, 3, d, HIDDEN, BPROP_PARALLEL_HIDDEN);
    stepper_start(&b, 1, d, HIDDEN, BPROP_PARALLEL_HIDDEN);
    cr_assert(a.s->w1s && !b.s->w1s, "slices for a team of several threads only");
    for (size_t i = 0; i < sizeof teams / sizeof *teams; i++) {
        step_on(&a, teams[i], d, i * 20, 96);
        step_on(&b, 1, d, i * 20, 96);
    }
    bp_stepper_sync(a.s);
    assert_same_steppers(&a, &b);
    stepper_free(&a);
    stepper_free(&b);
    bprop_dataset_free(d);
}

Test(slices, auto_giving_batches_of_two_sizes_other_splits_keeps_w1_current)
{
    /* At 784 inputs and 128 hidden units the cost model gives 2 threads the data split for a
     * batch of 384 and the hidden split for 40 (every kernel set), as for a trainer's full
     * batches and its last, shorter one. The reference keeps W1 in the model throughout: the
     * same stepper without slices, so the same splits and bits. */
    bprop_dataset *d = tu_blobs(600, 784, CLASSES, 6);
    for (size_t i = 0; i < d->n; i += 4)
        d->y[i] = (d->y[i] + 1) % CLASSES;
    stepper_run a, b;
    stepper_start(&a, 2, d, 128, BPROP_PARALLEL_AUTO);
    stepper_start(&b, 2, d, 128, BPROP_PARALLEL_AUTO);
    bp_free(b.s->w1s);
    bp_free(b.s->v1s);
    b.s->w1s = b.s->v1s = NULL;
    int active[2];
    bp_step_plan p = {.active = active};
    bp_plan_step(a.s, 384, 2, &p);
    cr_assert_eq(p.split, BP_SPLIT_DATA, "auto's choice at batch 384 changed: pick other sizes");
    bp_plan_step(a.s, 40, 2, &p);
    cr_assert(p.split == BP_SPLIT_HIDDEN && p.w1_sliced, "auto's choice at batch 40 changed");
    const size_t sizes[] = {384, 40, 384, 40, 40, 384, 40};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        step_on(&a, 2, d, i * 40, sizes[i]);
        step_on(&b, 2, d, i * 40, sizes[i]);
    }
    bp_stepper_sync(a.s);
    assert_same_steppers(&a, &b);
    stepper_free(&a);
    stepper_free(&b);
    bprop_dataset_free(d);
}

/* ---- wide nets: blocks in groups ----------------------------------------------------------- */

/* The data split runs a thread's blocks in groups where its W1 is BP_FWD_GROUP_MIN bytes or more
 * (W1 read once a group; with W1 updated in the pass, the dW1 sums kept through the group), and
 * block by block below; the hidden split groups at every width, its slice's W1 read once a
 * group from 1 MB (384 units here) and from L2 below. Both keep every element's chain, so each
 * width below trains one thread's bits on every team: at 400 and 800 units one thread groups
 * (1.25 and 2.5 MB), and the slices of two and four threads (448 and 384, at most 128 and 256
 * units) cover wide and narrow W1. */
_Static_assert(784 * 384 * sizeof(float) >= BP_FWD_GROUP_MIN, "a 384-unit slice is wide");
_Static_assert(784 * 256 * sizeof(float) < BP_FWD_GROUP_MIN, "a 256-unit slice is not");

static bprop_model *train_wide(const bprop_dataset *d, size_t H, int threads, size_t batch)
{
    bprop_model *m;
    cr_assert_eq(bprop_model_create(784, H, CLASSES, 1, 11, &m, NULL), BPROP_OK);
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.threads = threads;
    c.batch = batch;
    c.lr = 0.05f;
    c.parallel = BPROP_PARALLEL_HIDDEN; /* one thread: the data split, whatever this says */
    bprop_trainer *t;
    cr_assert_eq(bprop_trainer_create(m, &c, d->n, &t, NULL), BPROP_OK);
    for (int e = 0; e < 2; e++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, NULL, NULL), BPROP_OK);
    bprop_trainer_free(t);
    return m;
}

Test(slices, wide_nets_train_one_threads_bits_with_blocks_in_groups)
{
    /* Blobs whose negative inputs are zero (about half): lists that skip, as on images. */
    bprop_dataset *d = tu_blobs(600, 784, CLASSES, 8);
    for (size_t i = 0; i < d->n * d->dim; i++)
        d->x[i] = d->x[i] < 0.0f ? 0.0f : d->x[i];
    for (size_t i = 0; i < d->n; i += 4)
        d->y[i] = (d->y[i] + 1) % CLASSES;
    static const struct { size_t H; int threads[2]; } cases[] = {{400, {4, 0}}, {800, {2, 4}}};
    /* One thread's (and each grouped slice's) batches of BP_FWD_GROUP + 1 blocks (576 samples,
     * then 24): a group of BP_FWD_GROUP blocks without the W1 update, then a group of 1 with it;
     * of 300: a group of 5 blocks with the update, whose dW1 sums stay in a panel buffer through
     * the group. */
    _Static_assert(BP_FWD_GROUP >= 5 && (BP_FWD_GROUP + 1) * BP_BLOCK < 600, "the groups above");
    static const size_t batches[] = {(BP_FWD_GROUP + 1) * BP_BLOCK, 300};
    for (size_t i = 0; i < 2; i++)
        for (size_t b = 0; b < 2; b++) {
            bprop_model *one = train_wide(d, cases[i].H, 1, batches[b]);
            for (int k = 0; k < 2 && cases[i].threads[k]; k++) {
                bprop_model *m = train_wide(d, cases[i].H, cases[i].threads[k], batches[b]);
                cr_assert(tu_same_bits(one->params, m->params, one->layout.total),
                          "%zu units, batch %zu: %d threads differ from one", cases[i].H,
                          batches[b], cases[i].threads[k]);
                bprop_model_free(m);
            }
            bprop_model_free(one);
        }
    bprop_dataset_free(d);
}
