/* cmd_train.c: `bprop train`: options, data preparation, the epoch loop, evaluation and saving. */
#include "cli.h"
#include "data.h"
#include "progress.h"
#include "runtime.h"
#include "train.h"
#include "train_report.h"
#include "train_signal.h"
#include "train_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HIDDEN ((size_t)1 << 24)
#define MAX_EPOCHS ((size_t)1000000)
#define MAX_BATCH ((size_t)1 << 24)
#define MAX_THREADS 4096

static void train_help(void)
{
    bprop_train_config d;
    bprop_train_config_default(&d);
    printf("Usage: bprop train [options]\n"
           "Train a two-layer ReLU/softmax network with minibatch SGD; print one line per epoch.\n\n"
           "Model and training options (defaults in brackets):\n"
           "  --hidden N           hidden units [256]\n"
           "  --epochs N           passes over the training set [%zu]\n"
           "  --batch N            samples per step [%zu]\n"
           "  --lr X               base learning rate [%g]\n"
           "  --momentum X         momentum in [0, 1) [%g]\n"
           "  --nesterov, --no-nesterov  Nesterov momentum [%s; off when --momentum 0]\n"
           "  --weight-decay X     L2 coefficient on W1 and W2 [%g]\n"
           "  --schedule NAME      constant, step or cosine [%s]\n"
           "  --step-epochs N      step schedule: epochs between decays [%zu]\n"
           "  --step-gamma X       step schedule: decay factor in (0, 1] [%g]\n"
           "  --clip X             clip the global gradient norm to X, 0 disables [%g]\n"
           "  --seed N             initialisation, shuffling and --val-fraction split [%llu]\n"
           "  --threads N          OpenMP threads; 0: OMP_NUM_THREADS or all cores [0]\n"
           "  --parallel MODE      split each step over threads by samples (data), by hidden\n"
           "                       units (hidden) or as measured best (auto); with\n"
           "                       --reproducible the parameters are the same for every\n"
           "                       choice, without it hidden gives one thread's [auto]\n"
           "  --reproducible       exact fixed-point gradient sums: the same parameters for\n"
           "                       every thread count (and, with bprop-mpi, every layout of\n"
           "                       ranks); without it each thread count is deterministic on\n"
           "                       its own, in float sums [--no-reproducible]\n"
           "  --val-fraction F     hold out F of the training set (seeded) for per-epoch\n"
           "                       validation; the test set is then evaluated at the end [0]\n"
           "  --no-shuffle         keep the training order fixed\n"
           "  --no-bias            no bias vectors b1, b2\n"
           "  --standardize        standardise features with training-split statistics\n"
           "                       (stored in the model, applied to val/test/predict inputs)\n\n"
           "Output options:\n"
           "  --save FILE          save the trained model (written atomically)\n"
           "  --metrics FILE       JSON Lines, one object per epoch, written during the run\n"
           "                       to FILE.tmp.XXXXXX beside FILE (flushed every epoch, so\n"
           "                       tail -f works) and renamed to FILE only when the whole run\n"
           "                       succeeds, after --save. A failed run leaves FILE as it was\n"
           "                       and keeps the temporary file, naming it on stderr\n"
           "  --quiet              print only the final accuracy line (and errors)\n"
           "  Both targets are checked before training (not a directory, directory writable).\n\n",
           d.epochs, d.batch, (double)d.lr, (double)d.momentum, d.nesterov ? "on" : "off",
           (double)d.weight_decay, bprop_schedule_name(d.schedule), d.step_epochs,
           (double)d.step_gamma, (double)d.clip_norm, (unsigned long long)d.seed);
    train_state_help(stdout);
    cli_data_help(stdout, CLI_DATA_TRAIN | CLI_DATA_TEST | CLI_DATA_CLASSES);
    printf("\nA progress bar (loss, samples/s, ETA) is drawn on stderr when it is a terminal.\n"
           "Examples:\n"
           "  bprop train --epochs 10 --save fashion.bpm --metrics fashion.jsonl\n"
           "  bprop train --train train.csv --test test.csv --standardize --hidden 64 --epochs 5\n"
           "Exit status: 0 success, 1 runtime error (including divergence: nothing is saved),\n"
           "2 bad command line, 130/143/138 stopped by SIGINT/SIGTERM/SIGUSR1 (checkpoint\n"
           "written; under mpirun send SIGUSR1 to mpirun: see docs/clusters.md).\n");
}

static int flag_set(cli_args *a, int *field, int value)
{
    *field = value;
    return cli_flag(a);
}

static int schedule_option(cli_args *a, bprop_schedule *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    if (bprop_schedule_parse(s, out) != BPROP_OK)
        return cli_usage(a->cmd, "%s: expected constant, step or cosine, got '%s'", a->opt, s);
    return 0;
}

static int parallel_option(cli_args *a, bprop_parallel *out)
{
    const char *s = NULL;
    int rc = cli_value(a, &s);
    if (rc)
        return rc;
    if (bprop_parallel_parse(s, out) != BPROP_OK)
        return cli_usage(a->cmd, "%s: expected auto, data or hidden, got '%s'", a->opt, s);
    return 0;
}

static int train_option(cli_args *a, void *opts)
{
    train_opts *o = opts;
    bprop_train_config *c = &o->cfg;
    train_state_note(&o->ts, a->opt);
    if (cli_is(a, "--hidden"))
        return cli_size(a, 1, MAX_HIDDEN, &o->hidden);
    if (cli_is(a, "--epochs"))
        return cli_size(a, 1, MAX_EPOCHS, &c->epochs);
    if (cli_is(a, "--batch"))
        return cli_size(a, 1, MAX_BATCH, &c->batch);
    if (cli_is(a, "--lr"))
        return cli_float(a, &CLI_POSITIVE, &c->lr);
    if (cli_is(a, "--momentum"))
        return cli_float(a, &CLI_FRACTION, &c->momentum);
    if (cli_is(a, "--nesterov") || cli_is(a, "--no-nesterov")) {
        o->nesterov_given = 1;
        return flag_set(a, &c->nesterov, cli_is(a, "--nesterov"));
    }
    if (cli_is(a, "--weight-decay"))
        return cli_float(a, &CLI_NONNEG, &c->weight_decay);
    if (cli_is(a, "--schedule"))
        return schedule_option(a, &c->schedule);
    if (cli_is(a, "--step-epochs"))
        return cli_size(a, 1, MAX_EPOCHS, &c->step_epochs);
    if (cli_is(a, "--step-gamma"))
        return cli_float(a, &CLI_GAMMA, &c->step_gamma);
    if (cli_is(a, "--clip"))
        return cli_float(a, &CLI_NONNEG, &c->clip_norm);
    if (cli_is(a, "--seed"))
        return cli_u64(a, &c->seed);
    if (cli_is(a, "--threads"))
        return cli_int(a, 0, MAX_THREADS, &c->threads);
    if (cli_is(a, "--parallel"))
        return parallel_option(a, &c->parallel);
    if (cli_is(a, "--reproducible") || cli_is(a, "--no-reproducible"))
        return flag_set(a, &c->reproducible, cli_is(a, "--reproducible"));
    if (cli_is(a, "--val-fraction"))
        return cli_real(a, &CLI_FRACTION, &o->val_fraction);
    if (cli_is(a, "--no-shuffle"))
        return flag_set(a, &c->shuffle, 0);
    if (cli_is(a, "--no-bias"))
        return flag_set(a, &o->bias, 0);
    if (cli_is(a, "--standardize") || cli_is(a, "--standardise"))
        return flag_set(a, &o->standardize, 1);
    if (cli_is(a, "--quiet"))
        return flag_set(a, &o->quiet, 1);
    if (cli_is(a, "--save"))
        return cli_value(a, &o->save);
    if (cli_is(a, "--metrics"))
        return cli_value(a, &o->metrics);
    int rc = train_state_option(a, &o->ts);
    return rc != CLI_NOMATCH ? rc : cli_data_option(a, &o->data);
}

/* Settings that only make sense together; the library's own check names the field. */
static int check_options(const char *cmd, train_opts *o)
{
    if (o->cfg.momentum == 0.0f && !o->nesterov_given)
        o->cfg.nesterov = 0;
    if (o->cfg.momentum == 0.0f && o->cfg.nesterov)
        return cli_usage(cmd, "--nesterov: needs --momentum > 0");
    bprop_error err = {0};
    if (bprop_train_config_check(&o->cfg, &err) != BPROP_OK)
        return cli_usage(cmd, "%s", err.message[0] ? err.message : "invalid training settings");
    if ((o->save && !o->save[0]) || (o->metrics && !o->metrics[0]))
        return cli_usage(cmd, "%s: empty file name", o->save && !o->save[0] ? "--save" : "--metrics");
    if (o->save && o->metrics && strcmp(o->save, o->metrics) == 0)
        return cli_usage(cmd, "--save and --metrics name the same file '%s'", o->save);
    return 0;
}

static int parse_train(int argc, char **argv, train_opts *o)
{
    memset(o, 0, sizeof *o);
    bprop_train_config_default(&o->cfg);
    o->hidden = 256;
    o->bias = 1;
    o->data.allowed = CLI_DATA_TRAIN | CLI_DATA_TEST | CLI_DATA_CLASSES;
    cli_command c = {"train", train_help, train_option, o, NULL};
    int rc = cli_parse(&c, argc, argv);
    if (!rc)
        rc = check_options("train", o);
    return rc ? rc : train_state_resolve(o);
}

static void train_run_free(train_run *r)
{
    bprop_trainer_free(r->trainer);
    bprop_model_free(r->model);
    bprop_dataset_free(r->train);
    bprop_dataset_free(r->val);
    bprop_dataset_free(r->test);
    metrics_close(&r->log);
    train_state_free(&r->state);
}

static int load_data(train_run *r)
{
    const train_opts *o = r->o;
    int rc = cli_data_resolve(&o->data, CLI_NEED_TRAIN | CLI_WANT_TEST, &r->paths);
    bprop_dataset *full = NULL;
    if (!rc)
        rc = cli_load_split(&r->paths.train, o->data.classes, &full);
    if (rc)
        return rc;
    if (!o->data.classes)
        cli_warn_missing_classes(r->paths.train.images, full);
    size_t classes = o->data.classes ? o->data.classes : full->classes;
    if (r->paths.test.images[0] && cli_root()) /* only rank 0 evaluates */
        rc = cli_load_split(&r->paths.test, classes, &r->test);
    if (!rc && o->val_fraction > 0.0) {
        bprop_error err = {0};
        bprop_status st = bprop_dataset_split(full, o->val_fraction, o->cfg.seed, &r->train, &r->val, &err);
        if (st != BPROP_OK)
            rc = cli_fail_err(&err, st);
        bprop_dataset_free(full);
    } else {
        r->train = full;
    }
    if (!rc && r->val && r->train->n == 0)
        rc = cli_fail("--val-fraction %g leaves no training samples", o->val_fraction);
    return rc;
}

/* Statistics come from the training split only, so nothing about val/test leaks into them. */
static int set_standardization(train_run *r)
{
    size_t dim = r->train->dim;
    float *mean = malloc(dim * sizeof *mean), *scale = malloc(dim * sizeof *scale);
    bprop_status st = (mean && scale) ? bprop_dataset_feature_stats(r->train, mean, scale) : BPROP_E_NOMEM;
    if (st == BPROP_OK)
        st = bprop_model_set_standardization(r->model, mean, scale);
    free(mean);
    free(scale);
    if (st != BPROP_OK)
        return cli_fail("cannot standardise the training data: %s", bprop_strerror(st));
    return 0;
}

static int prepare(train_run *r)
{
    bprop_error err = {0};
    const char *paths[3] = {r->paths.train.images, r->paths.train.images, r->paths.test.images};
    bprop_dataset *sets[3] = {r->train, r->val, r->test};
    for (int i = 0; i < 3; i++) {
        if (!sets[i])
            continue;
        bprop_status st = bprop_model_prepare_data(r->model, sets[i], &err);
        if (st != BPROP_OK)
            return cli_fail_path(paths[i], &err, st);
    }
    return 0;
}

static int new_model(train_run *r)
{
    const train_opts *o = r->o;
    size_t classes = o->data.classes ? o->data.classes : r->train->classes;
    bprop_error err = {0};
    bprop_status st = bprop_model_create(r->train->dim, o->hidden, classes, o->bias, o->cfg.seed,
                                         &r->model, &err);
    if (st != BPROP_OK)
        return cli_fail_err(&err, st);
    return o->standardize ? set_standardization(r) : 0;
}

static int build_model(train_run *r)
{
    const train_opts *o = r->o;
    int rc = train_state_check_fit(r);
    if (!rc && (rc = train_state_take_model(r, &r->model)) == CLI_NOMATCH)
        rc = new_model(r);
    if (!rc)
        rc = prepare(r);
    if (rc)
        return rc;
    if (!o->ts.resume)
        snprintf(r->model->info.data, sizeof r->model->info.data, "%s", r->paths.desc);
    return 0;
}

/* One trainer per process; with several, each takes its share of every batch. */
static int create_trainer(train_run *r)
{
    const cli_runtime *rt = cli_runtime_get();
    bprop_error err = {0};
    bprop_status st = bprop_trainer_create_comm(r->model, &r->o->cfg, r->train->n, rt->comm,
                                                &r->trainer, &err);
    return st == BPROP_OK ? train_state_attach(r) : cli_fail_err(&err, st); /* records the ranks */
}

static void print_plan(const train_run *r)
{
    const bprop_model *m = r->model;
    const bprop_train_config *c = &r->o->cfg;
    printf("data: %s\n", r->paths.desc);
    printf("model %zu-%zu-%zu (%zu parameters%s%s); %zu training samples", m->inputs, m->hidden,
           m->classes, m->layout.total, m->has_bias ? "" : ", no biases",
           m->std_mean ? ", standardised inputs" : "", r->train->n);
    if (r->val)
        printf(", %zu validation", r->val->n);
    if (r->test)
        printf(", %zu test", r->test->n);
    int ranks = cli_runtime_get()->size;
    printf("\n%zu epochs, batch %zu, lr %g (%s), momentum %g%s, weight decay %g, ", c->epochs,
           c->batch, (double)c->lr, bprop_schedule_name(c->schedule), (double)c->momentum,
           c->nesterov ? " (Nesterov)" : "", (double)c->weight_decay);
    if (ranks > 1)
        printf("%d ranks x ", ranks);
    printf("%d threads, %s kernels\n", bprop_trainer_threads(r->trainer), bprop_isa());
    if (metrics_temp_path(&r->log))
        printf("metrics: %s (renamed to %s when the run succeeds)\n", metrics_temp_path(&r->log),
               r->o->metrics);
    train_print_header(stdout, r->val != NULL);
}

static int evaluate(const train_run *r, const bprop_dataset *d, const char *path, bprop_eval *out)
{
    bprop_error err = {0};
    bprop_status st = bprop_evaluate(r->model, d, r->o->cfg.threads, out, NULL, &err);
    return st == BPROP_OK ? 0 : cli_fail_path(path, &err, st);
}

/* Held-out evaluation after an epoch: the val split every epoch when there is one (then the test
 * set only after the last epoch), else the test set every epoch. */
static int evaluate_epoch(train_run *r, int last)
{
    int rc = 0;
    r->have_val_eval = r->have_test_eval = 0;
    if (!cli_root()) /* rank 0 reports; the model is the same on every rank */
        return 0;
    if (r->val) {
        rc = evaluate(r, r->val, r->paths.train.images, &r->val_eval);
        r->have_val_eval = !rc;
    }
    if (!rc && r->test && (!r->val || last)) {
        rc = evaluate(r, r->test, r->paths.test.images, &r->test_eval);
        r->have_test_eval = !rc;
    }
    return rc;
}

/* Every step that can fail on some ranks only is agreed before the next collective one, so
 * that the ranks' collectives stay in step (train_state_epoch_done holds some). */
static int run_epoch(train_run *r, size_t epoch)
{
    bprop_epoch_stats st = {0};
    cli_progress_epoch(&r->progress, epoch);
    int rc = cli_agree(train_state_epoch(r, &st));
    cli_progress_clear(&r->progress);
    if (!rc)
        rc = cli_agree(evaluate_epoch(r, epoch == r->o->cfg.epochs));
    if (rc)
        return rc;
    epoch_report rep = {
        .st = &st,
        .val = r->have_val_eval ? &r->val_eval : NULL,
        .test = r->have_test_eval ? &r->test_eval : NULL,
        .has_val = r->val != NULL,
        .threads = bprop_trainer_threads(r->trainer),
        .batch = r->o->cfg.batch,
        .hidden = r->o->hidden,
    };
    if (!r->o->quiet)
        train_print_row(stdout, &rep);
    rc = cli_agree(metrics_append(&r->log, &rep));
    return rc ? rc : train_state_epoch_done(r, &rep);
}

/* Final figures into the model's provenance, and the one summary line. */
static void finish(train_run *r)
{
    bprop_provenance *info = &r->model->info;
    const bprop_eval *held = r->have_test_eval ? &r->test_eval : r->have_val_eval ? &r->val_eval : NULL;
    const char *what = r->have_test_eval ? "test" : "validation";
    if (held) {
        info->test_loss = (float)held->loss;
        info->test_acc = (float)held->accuracy;
        printf("final %s accuracy: %.4f (loss %.4f, %zu samples)\n", what, held->accuracy, held->loss,
               held->n);
    } else {
        printf("final training accuracy: %.4f (loss %.4f; no held-out data)\n", (double)info->train_acc,
               (double)info->train_loss);
    }
}

/* Fail now rather than after minutes of training. */
static int check_outputs(const train_opts *o)
{
    int rc = o->save ? cli_check_output("--save", o->save) : 0;
    if (!rc && o->metrics)
        rc = cli_check_output("--metrics", o->metrics);
    if (!rc && o->ts.checkpoint && cli_root()) /* rank 0 writes the checkpoints */
        rc = cli_check_output("--checkpoint", o->ts.checkpoint);
    return rc;
}

static int save_model(train_run *r)
{
    const train_opts *o = r->o;
    if (!o->save)
        return 0;
    int rc = train_state_save_model(r, o->save);
    if (!rc && !o->quiet)
        printf("saved model to %s\n", o->save);
    return rc;
}

static int run_training(train_run *r)
{
    const train_opts *o = r->o;
    /* With several processes every step that can fail on some of them is followed by an
     * agreement (cli_agree), so that all stop together; in one process it changes nothing. */
    int rc = check_outputs(o);
    if (!rc)
        rc = train_signal_install(); /* on every rank: the trainer combines their flags */
    rc = cli_agree(rc);
    if (!rc)
        rc = cli_agree(load_data(r));
    if (!rc)
        rc = cli_agree(build_model(r));
    if (!rc)
        rc = cli_same_data(r->train, "training data");
    if (!rc)
        rc = cli_agree(create_trainer(r));
    if (!rc)
        rc = train_state_check_same(r);
    if (!rc)
        rc = cli_agree(metrics_open(&r->log, o->metrics));
    if (!rc)
        rc = cli_agree(train_state_replay_metrics(r));
    if (rc)
        return rc;
    cli_progress_init(&r->progress, stderr, !o->quiet, o->cfg.epochs, o->cfg.batch);
    if (!o->quiet)
        print_plan(r);
    for (size_t e = r->state.first_epoch; e <= o->cfg.epochs && !rc; e++) {
        rc = train_state_poll(r);
        if (!rc)
            rc = cli_agree(run_epoch(r, e));
    }
    if (rc)
        return rc; /* a diverged, failed or stopped run is never saved */
    finish(r);
    rc = cli_agree(save_model(r));
    if (!rc)
        rc = cli_agree(metrics_commit(&r->log));
    return rc ? rc : train_state_finish(r);
}

int cmd_train(int argc, char **argv)
{
    train_opts o;
    /* Agreed: every rank reads --resume's checkpoint or --init's model itself. */
    int rc = cli_agree(parse_train(argc, argv, &o));
    if (rc) {
        train_state_opts_free(&o.ts);
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    }
    if (!cli_root()) { /* rank 0 alone prints and writes files */
        o.save = o.metrics = NULL;
        o.quiet = 1;
    }
    train_run r;
    memset(&r, 0, sizeof r);
    r.o = &o;
    rc = run_training(&r);
    train_run_free(&r);
    train_state_opts_free(&o.ts);
    return rc; /* main flushes stdout and reports a failed write */
}
