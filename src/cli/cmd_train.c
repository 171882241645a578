/* cmd_train.c: `bprop train`: data preparation, the epoch loop, evaluation and saving (its options
 * are train_options.c's). */
#include "cli.h"
#include "data.h"
#include "progress.h"
#include "runtime.h"
#include "train.h"
#include "train_options.h"
#include "train_report.h"
#include "train_signal.h"
#include "train_state.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    int rc = cli_data_resolve(r->rt, &o->data, CLI_NEED_TRAIN | CLI_WANT_TEST, &r->paths);
    bprop_dataset *full = NULL;
    if (!rc)
        rc = cli_load_split(r->rt, &r->paths.train, o->data.classes, &full);
    if (rc)
        return rc;
    if (!o->data.classes)
        cli_warn_missing_classes(r->paths.train.images, full);
    size_t classes = o->data.classes ? o->data.classes : full->classes;
    if (r->paths.test.images[0] && cli_root(r->rt)) /* only rank 0 evaluates */
        rc = cli_load_split(r->rt, &r->paths.test, classes, &r->test);
    if (!rc && o->val_fraction > 0.0) {
        bprop_error err = {0};
        bprop_status st = bprop_dataset_split(full, o->val_fraction, o->cfg.seed, &r->train, &r->val, &err);
        if (st != BPROP_OK)
            rc = cli_fail_err(r->rt, &err, st);
        bprop_dataset_free(full);
    } else {
        r->train = full;
    }
    if (!rc && r->val && r->train->n == 0)
        rc = cli_fail(r->rt, "--val-fraction %g leaves no training samples", o->val_fraction);
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
        return cli_fail(r->rt, "cannot standardise the training data: %s", bprop_strerror(st));
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
            return cli_fail_path(r->rt, paths[i], &err, st);
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
        return cli_fail_err(r->rt, &err, st);
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
    const cli_runtime *rt = r->rt;
    bprop_error err = {0};
    bprop_status st = bprop_trainer_create_comm(r->model, &r->o->cfg, r->train->n, rt->comm,
                                                &r->trainer, &err);
    return st == BPROP_OK ? train_state_attach(r) : cli_fail_err(rt, &err, st); /* records the ranks */
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
    int ranks = r->rt->size;
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
    return st == BPROP_OK ? 0 : cli_fail_path(r->rt, path, &err, st);
}

/* Held-out evaluation after an epoch: the val split every epoch when there is one (then the test
 * set only after the last epoch), else the test set every epoch. */
static int evaluate_epoch(train_run *r, int last)
{
    int rc = 0;
    r->have_val_eval = r->have_test_eval = 0;
    if (!cli_root(r->rt)) /* rank 0 reports; the model is the same on every rank */
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
    int rc = cli_agree(r->rt, train_state_epoch(r, &st));
    cli_progress_clear(&r->progress);
    if (!rc)
        rc = cli_agree(r->rt, evaluate_epoch(r, epoch == r->o->cfg.epochs));
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
    rc = cli_agree(r->rt, metrics_append(r->rt, &r->log, &rep));
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
static int check_outputs(const cli_runtime *rt, const train_opts *o)
{
    int rc = o->save ? cli_check_output(rt, "--save", o->save) : 0;
    if (!rc && o->metrics)
        rc = cli_check_output(rt, "--metrics", o->metrics);
    if (!rc && o->ts.checkpoint && cli_root(rt)) /* rank 0 writes the checkpoints */
        rc = cli_check_output(rt, "--checkpoint", o->ts.checkpoint);
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
    int rc = check_outputs(r->rt, o);
    if (!rc)
        rc = train_signal_install(r->rt); /* on every rank: the trainer combines their flags */
    rc = cli_agree(r->rt, rc);
    if (!rc)
        rc = cli_agree(r->rt, load_data(r));
    if (!rc)
        rc = cli_agree(r->rt, build_model(r));
    if (!rc)
        rc = cli_same_data(r->rt, r->train, "training data");
    if (!rc)
        rc = cli_agree(r->rt, create_trainer(r));
    if (!rc)
        rc = train_state_check_same(r);
    if (!rc)
        rc = cli_agree(r->rt, metrics_open(r->rt, &r->log, o->metrics));
    if (!rc)
        rc = cli_agree(r->rt, train_state_replay_metrics(r));
    if (rc)
        return rc;
    cli_progress_init(&r->progress, stderr, !o->quiet, o->cfg.epochs, o->cfg.batch);
    if (!o->quiet)
        print_plan(r);
    for (size_t e = r->state.first_epoch; e <= o->cfg.epochs && !rc; e++) {
        rc = train_state_poll(r);
        if (!rc)
            rc = cli_agree(r->rt, run_epoch(r, e));
    }
    if (rc)
        return rc; /* a diverged, failed or stopped run is never saved */
    finish(r);
    rc = cli_agree(r->rt, save_model(r));
    if (!rc)
        rc = cli_agree(r->rt, metrics_commit(&r->log));
    return rc ? rc : train_state_finish(r);
}

int cmd_train(const cli_runtime *rt, int argc, char **argv)
{
    train_opts o;
    /* Agreed: every rank reads --resume's checkpoint or --init's model itself. */
    int rc = train_parse(rt, argc, argv, &o);
    rc = cli_agree(rt, rc ? rc : train_state_resolve(rt, &o));
    if (rc) {
        train_state_opts_free(&o.ts);
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    }
    if (!cli_root(rt)) { /* rank 0 alone prints and writes files */
        o.save = o.metrics = NULL;
        o.quiet = 1;
    }
    train_run r;
    memset(&r, 0, sizeof r);
    r.rt = rt;
    r.o = &o;
    rc = run_training(&r);
    train_run_free(&r);
    train_state_opts_free(&o.ts);
    return rc; /* main flushes stdout and reports a failed write */
}
