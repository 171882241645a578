/* cmd_gradcheck.c: `bprop gradcheck`: backprop against finite differences, with error planting. */
#include "cli.h"
#include "data.h"

#include <stdlib.h>
#include <string.h>

typedef struct gradcheck_opts {
    const char *model;           /* --model FILE, else a random model */
    size_t hidden, inputs, classes;
    int bias, generated, threads;
    int shape_given;             /* --hidden/--inputs/--no-bias: only for a random model */
    uint64_t seed;
    size_t batch, samples;
    int samples_given, step_given;
    bprop_fd_method method;
    double step, tol;
    int plant;                   /* --plant given */
    size_t plant_index;
    bprop_tensor plant_tensor;
    double plant_delta;
    cli_data_opts data;
} gradcheck_opts;

/* What the check runs on. */
typedef struct gradcheck_job {
    bprop_model *model;
    bprop_dataset *batch;
    char desc[320];
    char path[CLI_PATH_MAX]; /* data file of the batch; empty when generated */
    float *grad; /* (layout.total) planted gradient, or NULL */
} gradcheck_job;

static void gradcheck_help(void)
{
    printf("Usage: bprop gradcheck [--model FILE | --hidden N --seed S] [data options | --generated]\n"
           "                       [--batch N] [--method central|forward] [--step H] [--samples K]\n"
           "                       [--tol X] [--threads N]\n"
           "                       [--plant INDEX --plant-tensor W1|b1|W2|b2 --plant-delta X]\n"
           "Compare the backprop gradient of the mean loss on one batch with finite differences of\n"
           "the double-precision loss; print per tensor the entries checked, kinks skipped (a\n"
           "perturbation moved a hidden unit across zero), the relative error\n"
           "||a-b|| / (||a|| + ||b||), the largest absolute error and the worst entries.\n\n"
           "Options:\n"
           "  --model FILE         check a saved model (default: a random one)\n"
           "  --hidden N           random model: hidden units [64]\n"
           "  --seed N             random model, generated batch and sampled entries [42]\n"
           "  --no-bias            random model without biases\n"
           "  --inputs N, --classes N  random model on --generated data: width [784] and classes [10]\n"
           "  --generated          a synthetic seeded batch (uniform [0,1) features, random labels)\n"
           "                       instead of data; used when no data option is given and the\n"
           "                       default data set is not installed\n"
           "  --batch N            samples in the batch: the first N of the training set [16]\n"
           "  --method NAME        central (default) or forward differences\n"
           "  --step H             relative step, h = H * max(1, |theta|) [1e-4 central, 1e-7 forward]\n"
           "  --samples K          check K random entries per tensor; 0 checks every entry\n"
           "                       [library default]\n"
           "  --tol X              pass when every tensor's relative error <= X [1e-5]\n"
           "  --threads N          OpenMP threads; 0: OMP_NUM_THREADS or all cores [0]\n"
           "  --plant INDEX        add --plant-delta [0.01] to entry INDEX of --plant-tensor [W1]\n"
           "                       of the backprop gradient before comparing: the check should fail\n"
           "                       (use --samples 0 so that the entry is surely compared)\n\n");
    cli_data_help(stdout, CLI_DATA_TRAIN);
    printf("\nExit status: 0 PASS, 3 FAIL (some tensor's relative error > --tol),\n"
           "1 runtime error, 2 bad command line.\n"
           "Example:\n  bprop gradcheck --hidden 32 --batch 8 --samples 0 --generated --inputs 20\n");
}

static int method_option(cli_args *a, gradcheck_opts *o)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    if (strcmp(s, "central") == 0)
        o->method = BPROP_FD_CENTRAL;
    else if (strcmp(s, "forward") == 0)
        o->method = BPROP_FD_FORWARD;
    else
        return cli_usage(a->rt, a->cmd, "%s: expected central or forward, got '%s'", a->opt, s);
    return 0;
}

static int tensor_option(cli_args *a, bprop_tensor *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    for (int t = 0; t < BPROP_TENSORS; t++)
        if (strcmp(s, bprop_tensor_name((bprop_tensor)t)) == 0) {
            *out = (bprop_tensor)t;
            return 0;
        }
    return cli_usage(a->rt, a->cmd, "%s: expected W1, b1, W2 or b2, got '%s'", a->opt, s);
}

static int shape_option(cli_args *a, gradcheck_opts *o)
{
    o->shape_given = 1;
    if (cli_is(a, "--hidden"))
        return cli_size(a, 1, (size_t)1 << 24, &o->hidden);
    if (cli_is(a, "--inputs"))
        return cli_size(a, 1, (size_t)1 << 24, &o->inputs);
    if (cli_is(a, "--classes"))
        return cli_size(a, 1, (size_t)1 << 20, &o->classes);
    o->bias = 0;
    return cli_flag(a); /* --no-bias */
}

static int gradcheck_option(cli_args *a, void *opts)
{
    gradcheck_opts *o = opts;
    if (cli_is(a, "--model"))
        return cli_value(a, &o->model);
    if (cli_is(a, "--hidden") || cli_is(a, "--inputs") || cli_is(a, "--classes") || cli_is(a, "--no-bias"))
        return shape_option(a, o);
    if (cli_is(a, "--seed"))
        return cli_u64(a, &o->seed);
    if (cli_is(a, "--generated")) {
        o->generated = 1;
        return cli_flag(a);
    }
    if (cli_is(a, "--batch"))
        return cli_size(a, 1, (size_t)1 << 20, &o->batch);
    if (cli_is(a, "--method"))
        return method_option(a, o);
    if (cli_is(a, "--step")) {
        o->step_given = 1;
        return cli_real(a, &CLI_POSITIVE, &o->step);
    }
    if (cli_is(a, "--samples")) {
        o->samples_given = 1;
        return cli_size(a, 0, SIZE_MAX, &o->samples);
    }
    if (cli_is(a, "--tol"))
        return cli_real(a, &CLI_POSITIVE, &o->tol);
    if (cli_is(a, "--threads"))
        return cli_int(a, 0, 4096, &o->threads);
    if (cli_is(a, "--plant")) {
        o->plant = 1;
        return cli_size(a, 0, SIZE_MAX, &o->plant_index);
    }
    if (cli_is(a, "--plant-tensor"))
        return tensor_option(a, &o->plant_tensor);
    if (cli_is(a, "--plant-delta"))
        return cli_real(a, &CLI_ANY_REAL, &o->plant_delta);
    return cli_data_option(a, &o->data);
}

static int check_combinations(const cli_runtime *rt, gradcheck_opts *o)
{
    if (o->model && o->shape_given)
        return cli_usage(rt, "gradcheck", "--hidden, --inputs, --classes and --no-bias describe a random "
                                          "model: not used with --model");
    if (o->generated && cli_data_given(&o->data))
        return cli_usage(rt, "gradcheck", "--generated: not used with --data, --train or --test");
    if (o->inputs && !o->generated)
        return cli_usage(rt, "gradcheck", "--inputs: only with --generated (data sets fix the width)");
    if (!o->step_given)
        o->step = o->method == BPROP_FD_CENTRAL ? 1e-4 : 1e-7;
    return 0;
}

static int parse_gradcheck(const cli_runtime *rt, int argc, char **argv, gradcheck_opts *o)
{
    memset(o, 0, sizeof *o);
    o->hidden = 64;
    o->bias = 1;
    o->seed = 42;
    o->batch = 16;
    o->tol = 1e-5;
    o->plant_tensor = BPROP_W1;
    o->plant_delta = 0.01;
    o->data.allowed = CLI_DATA_TRAIN;
    cli_command c = {"gradcheck", gradcheck_help, gradcheck_option, o, NULL};
    int rc = cli_parse(rt, &c, argc, argv);
    if (rc)
        return rc;
    return check_combinations(rt, o);
}

/* splitmix64: a seeded stream for the synthetic batch, independent of library internals. */
static uint64_t mix_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static int generate_batch(const cli_runtime *rt, const gradcheck_opts *o, size_t dim, size_t classes,
                          gradcheck_job *job)
{
    bprop_error err = {0};
    bprop_status st = bprop_dataset_alloc(o->batch, dim, classes, 1, &job->batch, &err);
    if (st != BPROP_OK)
        return cli_fail_err(rt, &err, st);
    uint64_t s = o->seed;
    bprop_dataset *d = job->batch;
    for (size_t i = 0; i < d->n * d->dim; i++)
        d->x[i] = (float)((double)(mix_next(&s) >> 40) * 0x1.0p-24); /* uniform [0, 1) */
    for (size_t i = 0; i < d->n; i++)
        d->y[i] = (int32_t)(mix_next(&s) % classes);
    snprintf(job->desc, sizeof job->desc, "%zu generated samples (seed %llu)", d->n,
             (unsigned long long)o->seed);
    return 0;
}

static int load_batch(const cli_runtime *rt, gradcheck_opts *o, size_t classes, gradcheck_job *job)
{
    cli_data_paths paths;
    o->data.train_limit = o->batch;
    int rc = cli_data_resolve(rt, &o->data, CLI_NEED_TRAIN, &paths);
    if (!rc)
        rc = cli_load_split(rt, &paths.train, classes, &job->batch);
    if (!rc) { /* the checks read float32 features (bprop_gradcheck takes a float array) */
        bprop_error err = {0};
        bprop_status st = bprop_dataset_to_float(job->batch, &err);
        if (st != BPROP_OK)
            rc = cli_fail_err(rt, &err, st);
    }
    if (!rc) {
        cli_format_trunc(job->desc, sizeof job->desc, "the first %zu samples of %s", job->batch->n,
                 paths.train.images);
        memcpy(job->path, paths.train.images, sizeof job->path);
    }
    return rc;
}

static int get_batch(const cli_runtime *rt, gradcheck_opts *o, gradcheck_job *job)
{
    if (!o->generated && !cli_data_given(&o->data) && !cli_default_data_present()) {
        fprintf(stderr, "bprop gradcheck: no data given and the default data set is not installed: "
                        "using --generated\n");
        o->generated = 1;
    }
    const bprop_model *m = job->model;
    if (o->generated)
        return generate_batch(rt, o, m ? m->inputs : o->inputs ? o->inputs : 784,
                              m ? m->classes : o->classes ? o->classes : 10, job);
    return load_batch(rt, o, m ? m->classes : o->classes, job);
}

static int get_model(const cli_runtime *rt, const gradcheck_opts *o, gradcheck_job *job)
{
    bprop_error err = {0};
    bprop_status st;
    if (o->model) {
        /* The model must exist before the batch (it fixes the width); its data is prepared after. */
        return cli_load_model(rt, o->model, &job->model);
    }
    const bprop_dataset *d = job->batch;
    size_t classes = o->classes ? o->classes : d->classes;
    st = bprop_model_create(d->dim, o->hidden, classes, o->bias, o->seed, &job->model, &err);
    return st == BPROP_OK ? 0 : cli_fail_err(rt, &err, st);
}

static int plant_error(const cli_runtime *rt, const gradcheck_opts *o, gradcheck_job *job)
{
    const bprop_model *m = job->model;
    size_t count = m->layout.count[o->plant_tensor];
    if (o->plant_index >= count)
        return cli_usage(rt, "gradcheck", "--plant: index %zu outside %s, which has %zu entries",
                         o->plant_index, bprop_tensor_name(o->plant_tensor), count);
    job->grad = malloc(m->layout.total * sizeof *job->grad);
    if (!job->grad)
        return cli_fail(rt, "out of memory for %zu gradient entries", m->layout.total);
    bprop_error err = {0};
    const bprop_dataset *d = job->batch;
    bprop_status st = bprop_loss_grad(m, d->x, d->y, d->n, o->threads, NULL, job->grad, &err);
    if (st != BPROP_OK)
        return cli_fail_err(rt, &err, st);
    job->grad[m->layout.offset[o->plant_tensor] + o->plant_index] += (float)o->plant_delta;
    return 0;
}

/* " (row r, col c)" for the weight matrices, whose rows are inputs (W1) or hidden units (W2). */
static void entry_position(const bprop_model *m, bprop_tensor t, size_t index, char *buf, size_t size)
{
    size_t cols = t == BPROP_W1 ? m->hidden : t == BPROP_W2 ? m->classes : 0;
    if (cols)
        snprintf(buf, size, " (row %zu, col %zu)", index / cols, index % cols);
    else
        buf[0] = '\0';
}

static void print_tensor(const bprop_model *m, bprop_tensor t, const bprop_gradcheck_tensor *r, double tol)
{
    printf("%-6s %10zu %9zu %7zu %12.3e %12.3e  %s\n", bprop_tensor_name(t), m->layout.count[t],
           r->checked, r->kinks, r->rel_error, r->max_abs_error, r->rel_error <= tol ? "ok" : "FAIL");
    for (size_t k = 0; k < r->worst_count && k < BPROP_GRADCHECK_WORST; k++) {
        const bprop_gradcheck_entry *e = &r->worst[k];
        char pos[64];
        entry_position(m, t, e->index, pos, sizeof pos);
        printf("         [%zu]%s backprop %.9e numeric %.9e |diff| %.3e\n", e->index, pos, e->backprop,
               e->numeric, e->abs_error);
    }
}

static void print_plan(const gradcheck_opts *o, const gradcheck_job *job, const bprop_gradcheck_config *c)
{
    const bprop_model *m = job->model;
    printf("model %zu-%zu-%zu (%zu parameters%s), %s\n", m->inputs, m->hidden, m->classes,
           m->layout.total, m->has_bias ? "" : ", no biases", o->model ? o->model : "random");
    printf("batch: %s\n", job->desc);
    printf("%s differences, step %g, ", c->method == BPROP_FD_CENTRAL ? "central" : "forward", c->step);
    if (c->samples)
        printf("%zu random entries per tensor (seed %llu)", c->samples, (unsigned long long)c->seed);
    else
        printf("every entry");
    printf(", tolerance %g\n", o->tol);
    if (job->grad) {
        char pos[64];
        entry_position(m, o->plant_tensor, o->plant_index, pos, sizeof pos);
        printf("planted: %s[%zu]%s += %g in the backprop gradient\n", bprop_tensor_name(o->plant_tensor),
               o->plant_index, pos, o->plant_delta);
        if (c->samples && c->samples < m->layout.count[o->plant_tensor])
            printf("note: --samples %zu may skip the planted entry; --samples 0 checks it surely\n",
                   c->samples);
    }
    printf("%-6s %10s %9s %7s %12s %12s\n", "tensor", "size", "checked", "kinks", "rel_error",
           "max_abs_err");
}

static int report(const gradcheck_opts *o, const gradcheck_job *job, const bprop_gradcheck_report *r)
{
    const bprop_model *m = job->model;
    int failed = 0;
    for (int t = 0; t < BPROP_TENSORS; t++) {
        if (m->layout.count[t] == 0)
            continue; /* an absent bias */
        print_tensor(m, (bprop_tensor)t, &r->tensor[t], o->tol);
        failed |= !(r->tensor[t].rel_error <= o->tol);
    }
    printf("%zu loss evaluations; backprop %.3f s, finite differences %.3f s\n", r->forward_passes,
           r->seconds_backprop, r->seconds_fd);
    printf("%s: largest relative error %.3e %s tolerance %g\n", failed ? "FAIL" : "PASS", r->max_rel_error,
           failed ? ">" : "<=", o->tol);
    return failed ? CLI_EXIT_GRADCHECK : CLI_EXIT_OK;
}

static int run_check(const cli_runtime *rt, gradcheck_opts *o, gradcheck_job *job)
{
    bprop_error err = {0};
    /* A saved model fixes the batch's width; a random model takes the batch's. */
    int rc = o->model ? get_model(rt, o, job) : 0;
    if (!rc)
        rc = get_batch(rt, o, job);
    if (!rc && !o->model)
        rc = get_model(rt, o, job);
    bprop_status st = BPROP_OK;
    if (!rc && o->model && !o->generated)
        st = bprop_model_prepare_data(job->model, job->batch, &err);
    if (st != BPROP_OK)
        return cli_fail_path(rt, job->path, &err, st);
    if (!rc && o->plant)
        rc = plant_error(rt, o, job);
    if (rc)
        return rc;
    bprop_gradcheck_config c;
    bprop_gradcheck_config_default(&c);
    c.method = o->method;
    c.step = o->step;
    c.seed = o->seed;
    c.threads = o->threads;
    if (o->samples_given)
        c.samples = o->samples;
    print_plan(o, job, &c);
    fflush(stdout);
    bprop_gradcheck_report r;
    const bprop_dataset *d = job->batch;
    st = bprop_gradcheck(job->model, d->x, d->y, d->n, &c, job->grad, &r, &err);
    if (st != BPROP_OK)
        return cli_fail_err(rt, &err, st);
    return report(o, job, &r);
}

int cmd_gradcheck(const cli_runtime *rt, int argc, char **argv)
{
    gradcheck_opts o;
    int rc = parse_gradcheck(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    gradcheck_job job;
    memset(&job, 0, sizeof job);
    rc = run_check(rt, &o, &job);
    free(job.grad);
    bprop_dataset_free(job.batch);
    bprop_model_free(job.model);
    return rc; /* main flushes stdout and reports a failed write */
}
