/* train_state.c: the parts of a `bprop train` run that survive an interruption: checkpoints
 * (every epoch, every N steps, on a signal), restoring a resumed run, and --init's model.
 *
 * Under bprop-mpi every rank runs this code and reaches the same points: steps are global, so
 * periodic stops fall on the same step everywhere, the trainer combines the ranks' signal flags
 * in each step's collective, and the signal received is agreed (cli_max) wherever the run
 * decides to stop. Rank 0 alone writes checkpoints; the state it writes is every rank's. */
#define _POSIX_C_SOURCE 200809L
#include "train_state.h"

#include "runtime.h"
#include "train_options.h"
#include "train_signal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *signal_name(int sig)
{
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : sig == SIGUSR1 ? "SIGUSR1" : "a signal";
}

/* Collective: the signal some rank received (the largest number when several did), 0 if none. */
static int agreed_signal(const cli_runtime *rt) { return cli_max(rt, train_signal_received()); }

int train_state_take_model(train_run *r, bprop_model **out)
{
    train_state_opts *s = &r->o->ts;
    if (s->ck) {
        *out = s->ck->model;
        s->ck->model = NULL;
        return 0;
    }
    if (s->init_model) {
        *out = s->init_model;
        s->init_model = NULL;
        return 0;
    }
    return CLI_NOMATCH;
}

int train_state_check_fit(const train_run *r)
{
    const train_state_opts *s = &r->o->ts;
    const bprop_model *m = s->init_model;
    if (!m)
        return 0;
    const bprop_dataset *sets[3] = {r->train, r->val, r->test};
    const char *paths[3] = {r->paths.train.images, r->paths.train.images, r->paths.test.images};
    for (int i = 0; i < 3; i++) {
        const bprop_dataset *d = sets[i];
        if (!d)
            continue;
        if (d->dim != m->inputs)
            return cli_fail(r->rt, "--init %s: the model takes %zu features, %s has %zu", s->init, m->inputs,
                            paths[i], d->dim);
        for (size_t k = 0; k < d->n; k++)
            if ((size_t)d->y[k] >= m->classes)
                return cli_fail(r->rt, "--init %s: the model has %zu classes, %s has label %d (sample %zu)",
                                s->init, m->classes, paths[i], (int)d->y[k], k);
    }
    return 0;
}

/* ---- data description: a resumed run must see the data its checkpoint saw ---------------- */

static int same_data(const cli_runtime *rt, const char *what, const char *path, const bprop_data_desc *now,
                     const bprop_data_desc *was, const char *ck_path)
{
    if (now->n == was->n && now->dim == was->dim && now->classes == was->classes && now->hash == was->hash)
        return 0;
    return cli_fail(rt, "--resume %s: the %s data changed since the checkpoint (%s: now %llu samples, %llu "
                        "features, %llu classes, hash %016llx; recorded %llu, %llu, %llu, hash %016llx)",
                    ck_path, what, path[0] ? path : "(none)", (unsigned long long)now->n,
                    (unsigned long long)now->dim, (unsigned long long)now->classes,
                    (unsigned long long)now->hash, (unsigned long long)was->n,
                    (unsigned long long)was->dim, (unsigned long long)was->classes,
                    (unsigned long long)was->hash);
}

static int describe_data(train_run *r)
{
    train_state *ts = &r->state;
    ts->train = bprop_data_describe(r->train);
    ts->val = bprop_data_describe(r->val);
    ts->test = bprop_data_describe(r->test);
    const bprop_checkpoint *ck = r->o->ts.ck;
    if (!ck)
        return 0;
    const char *p = r->o->ts.resume;
    int rc = same_data(r->rt, "training", r->paths.train.images, &ts->train, &ck->train, p);
    if (!rc)
        rc = same_data(r->rt, "validation", r->paths.train.images, &ts->val, &ck->val, p);
    if (!rc && cli_root(r->rt)) /* the only rank that loads the test set */
        rc = same_data(r->rt, "test", r->paths.test.images, &ts->test, &ck->test, p);
    return rc;
}

/* ---- where checkpoints go ---------------------------------------------------------------- */

/* The path is every rank's (periodic stops depend on it); the fallback is rank 0's alone, the
 * one rank that writes and names it: beside rank 0's --save, else with rank 0's pid. */
static void choose_paths(train_run *r)
{
    const train_opts *o = r->o;
    train_state *ts = &r->state;
    ts->path = o->ts.checkpoint ? o->ts.checkpoint : o->ts.resume;
    if (!cli_root(r->rt))
        ts->fallback[0] = '\0';
    else if (o->save)
        cli_format_trunc(ts->fallback, sizeof ts->fallback, "%s.ckpt", o->save);
    else
        snprintf(ts->fallback, sizeof ts->fallback, "bprop-%ld.ckpt", (long)getpid());
}

static int restore(train_run *r)
{
    const bprop_checkpoint *ck = r->o->ts.ck;
    train_state *ts = &r->state;
    ts->steps_per_epoch = r->train->n / r->o->cfg.batch + (r->train->n % r->o->cfg.batch != 0);
    ts->first_epoch = 1;
    if (!ck)
        return 0;
    bprop_error err = {0};
    bprop_status st = bprop_trainer_set_state(r->trainer, &ck->state, &err);
    if (st != BPROP_OK)
        return cli_fail(r->rt, "--resume %s: %s", r->o->ts.resume, err.message);
    ts->records = ck->n_records ? malloc(ck->n_records * sizeof *ts->records) : NULL;
    if (ck->n_records && !ts->records)
        return cli_fail(r->rt, "out of memory");
    if (ck->n_records)
        memcpy(ts->records, ck->records, ck->n_records * sizeof *ts->records);
    ts->n_records = ts->cap = ck->n_records;
    ts->first_epoch = (size_t)ck->state.epoch + 1;
    ts->step_in_epoch = ck->state.step;
    ts->global_step = ck->state.epoch * ts->steps_per_epoch + ck->state.step;
    if (!r->o->quiet) {
        printf("resuming %s: %llu of %zu epochs done", r->o->ts.resume,
               (unsigned long long)ck->state.epoch, r->o->cfg.epochs);
        if (ck->state.step)
            printf(", epoch %llu at step %llu of %llu", (unsigned long long)ck->state.epoch + 1,
                   (unsigned long long)ck->state.step, (unsigned long long)ts->steps_per_epoch);
        printf("\n");
    }
    return 0;
}

int train_state_attach(train_run *r)
{
    int rc = describe_data(r);
    if (!rc)
        rc = restore(r);
    if (rc)
        return rc;
    choose_paths(r);
    bprop_trainer_set_cancel(r->trainer, train_signal_flag());
    return 0;
}

/* ---- every rank starts from the same point ----------------------------------------------- */

/* Words hashed with the library's data hash: bytes as the features of a one-feature view,
 * copied (so any array can be hashed without aliasing it as floats) one chunk at a time. */
typedef struct word_hash {
    uint64_t acc;
    float chunk[1024];
} word_hash;

static void fold(word_hash *w, uint64_t value)
{
    float pair[4];
    memcpy(pair, &w->acc, sizeof w->acc);
    memcpy(pair + 2, &value, sizeof value);
    bprop_dataset view = {.n = 4, .dim = 1, .x = pair};
    w->acc = bprop_dataset_hash(&view);
}

static void hash_bytes(word_hash *w, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t done = 0; done < n;) {
        size_t k = n - done < sizeof w->chunk ? n - done : sizeof w->chunk;
        memset(w->chunk, 0, sizeof w->chunk);
        memcpy(w->chunk, p + done, k);
        bprop_dataset view = {.n = (k + sizeof(float) - 1) / sizeof(float), .dim = 1, .x = w->chunk};
        fold(w, bprop_dataset_hash(&view));
        done += k;
    }
    fold(w, n); /* the length closes each array */
}

/* The model and the trainer state the run starts from: what a resumed checkpoint or an --init
 * model brought, or the seeded initialisation. Statistics and times are left out. */
static uint64_t start_hash(const train_run *r)
{
    const bprop_model *m = r->model;
    bprop_trainer_state s;
    bprop_trainer_get_state(r->trainer, &s);
    word_hash w = {.acc = 0};
    const uint64_t position[2] = {s.epoch, s.step};
    hash_bytes(&w, position, sizeof position);
    hash_bytes(&w, s.rng, sizeof s.rng);
    hash_bytes(&w, m->params, m->layout.total * sizeof *m->params);
    if (m->std_mean) {
        hash_bytes(&w, m->std_mean, m->inputs * sizeof *m->std_mean);
        hash_bytes(&w, m->std_scale, m->inputs * sizeof *m->std_scale);
    }
    if (s.velocity)
        hash_bytes(&w, s.velocity, s.params * sizeof *s.velocity);
    if (s.perm)
        hash_bytes(&w, s.perm, s.n_train * sizeof *s.perm);
    return w.acc;
}

int train_state_check_same(const train_run *r)
{
    if (r->rt->size < 2)
        return 0;
    const char *what = r->o->ts.resume ? "the state read from the --resume checkpoint"
                       : r->o->ts.init ? "the --init model" : "the initial model";
    return cli_same_value(r->rt, start_hash(r), what);
}

/* ---- writing checkpoints ----------------------------------------------------------------- */

static int write_checkpoint(train_run *r, const char *path)
{
    const train_state *ts = &r->state;
    char *settings = train_settings_text(r->o);
    if (!settings)
        return cli_fail(r->rt, "%s: out of memory", path);
    bprop_checkpoint ck = {
        .model = r->model, .config = r->o->cfg, .steps_per_epoch = ts->steps_per_epoch,
        .train = ts->train, .val = ts->val, .test = ts->test,
        .n_records = ts->n_records, .records = ts->records, .settings = settings};
    bprop_trainer_get_state(r->trainer, &ck.state);
    bprop_error err = {0};
    train_signal_write_begin();
    bprop_status st = bprop_checkpoint_save(&ck, path, train_signal_tempfile, NULL, &err);
    train_signal_write_end();
    free(settings);
    return st == BPROP_OK ? 0 : cli_fail_err(r->rt, &err, st);
}

/* Collective: rank 0 writes the checkpoint, every rank learns whether it worked. */
static int checkpoint(train_run *r, const char *path)
{
    return cli_agree(r->rt, cli_root(r->rt) ? write_checkpoint(r, path) : 0);
}

/* Collective, with sig agreed: a signal stopped the run. The checkpoint goes to --checkpoint (or
 * the resumed file), else to the fallback name; exit 128 + sig on every rank. */
static int interrupted(train_run *r, int sig, int written)
{
    const char *path = r->state.path ? r->state.path : r->state.fallback;
    if (!written && checkpoint(r, path))
        return CLI_EXIT_RUNTIME;
    if (!cli_root(r->rt))
        return 128 + sig;
    fflush(stdout);
    if (r->rt->size > 1)
        fprintf(stderr, "bprop: stopped by %s: checkpoint written to %s (continue with: bprop-mpi "
                "train --resume %s, under any number of ranks, or bprop train --resume %s)\n",
                signal_name(sig), path, path, path);
    else
        fprintf(stderr, "bprop: stopped by %s: checkpoint written to %s (continue with: bprop train "
                "--resume %s)\n", signal_name(sig), path, path);
    return 128 + sig;
}

/* --checkpoint-every N: the trainer reads the flag during a step and stops when that step is
 * done, so the flag goes up one step ahead of each multiple of N. Not at an epoch's last step:
 * the end-of-epoch checkpoint covers that one. */
static void request_periodic_stop(const train_run *r)
{
    const train_state *ts = &r->state;
    size_t every = r->o->ts.every;
    if (every && ts->path && (ts->global_step + 1) % every == 0 && ts->step_in_epoch + 1 < ts->steps_per_epoch)
        train_signal_stop();
}

/* Called by the trainer's master thread after every step's forward/backward pass. */
static int step_cb(void *user, size_t step, size_t steps, double loss, double acc)
{
    (void)step;
    (void)steps;
    train_run *r = user;
    train_state *ts = &r->state;
    ts->step_in_epoch++;
    ts->global_step++;
    request_periodic_stop(r);
    return cli_progress_cb(&r->progress, ts->step_in_epoch, ts->steps_per_epoch, loss, acc);
}

int train_state_epoch(train_run *r, bprop_epoch_stats *st)
{
    train_state *ts = &r->state;
    for (;;) {
        bprop_error err = {0};
        request_periodic_stop(r); /* the call's first step may be due */
        bprop_status s = bprop_trainer_epoch(r->trainer, r->train, step_cb, r, st, &err);
        if (s == BPROP_OK) {
            ts->step_in_epoch = 0;
            return 0;
        }
        if (s != BPROP_E_CANCELLED)
            return cli_fail_err(r->rt, &err, s);
        cli_progress_clear(&r->progress);
        /* The trainer's own count is the truth (a stop may come before the first step). */
        bprop_trainer_state now;
        bprop_trainer_get_state(r->trainer, &now);
        ts->step_in_epoch = now.step;
        ts->global_step = now.epoch * ts->steps_per_epoch + now.step;
        int sig = agreed_signal(r->rt);
        if (sig)
            return interrupted(r, sig, 0);
        int rc = checkpoint(r, ts->path);
        if (rc)
            return rc;
        train_signal_resume();
        sig = agreed_signal(r->rt);
        if (sig)
            return interrupted(r, sig, 1);
    }
}

static int keep_record(const cli_runtime *rt, train_state *ts, const epoch_report *rep)
{
    if (ts->n_records == ts->cap) {
        size_t cap = ts->cap ? 2 * ts->cap : 16;
        bprop_epoch_record *p = realloc(ts->records, cap * sizeof *p);
        if (!p)
            return cli_fail(rt, "out of memory");
        ts->records = p;
        ts->cap = cap;
    }
    const bprop_epoch_stats *s = rep->st;
    bprop_epoch_record *e = &ts->records[ts->n_records++];
    *e = (bprop_epoch_record){
        .epoch = s->epoch, .steps = s->steps, .threads = rep->threads,
        .train_loss = s->train_loss, .train_acc = s->train_acc,
        .test_loss = rep->test ? rep->test->loss : NAN, .test_acc = rep->test ? rep->test->accuracy : NAN,
        .val_loss = rep->val ? rep->val->loss : NAN, .val_acc = rep->val ? rep->val->accuracy : NAN,
        .samples_per_s = s->samples_per_s, .seconds = s->seconds,
        .reduce_seconds = s->reduce_seconds, .lr = s->lr};
    memcpy(e->grad_norm, s->grad_norm, sizeof e->grad_norm);
    return 0;
}

int train_state_epoch_done(train_run *r, const epoch_report *rep)
{
    int rc = cli_agree(r->rt, keep_record(r->rt, &r->state, rep));
    int written = 0;
    if (!rc && r->state.path) {
        rc = checkpoint(r, r->state.path);
        written = !rc;
    }
    if (rc)
        return rc;
    int sig = agreed_signal(r->rt);
    return sig ? interrupted(r, sig, written) : 0;
}

int train_state_poll(train_run *r)
{
    int sig = agreed_signal(r->rt);
    return sig ? interrupted(r, sig, 0) : 0;
}

int train_state_replay_metrics(train_run *r)
{
    const train_state *ts = &r->state;
    for (size_t i = 0; i < ts->n_records; i++) {
        const bprop_epoch_record *e = &ts->records[i];
        bprop_epoch_stats st = {
            .epoch = (size_t)e->epoch, .steps = (size_t)e->steps, .train_loss = e->train_loss,
            .train_acc = e->train_acc, .seconds = e->seconds, .samples_per_s = e->samples_per_s,
            .reduce_seconds = e->reduce_seconds, .lr = e->lr};
        memcpy(st.grad_norm, e->grad_norm, sizeof st.grad_norm);
        bprop_eval val = {e->val_loss, e->val_acc, r->val ? r->val->n : 0};
        bprop_eval test = {e->test_loss, e->test_acc, r->test ? r->test->n : 0};
        epoch_report rep = {
            .st = &st, .val = isnan(e->val_loss) ? NULL : &val, .test = isnan(e->test_loss) ? NULL : &test,
            .has_val = r->val != NULL, .threads = e->threads, .batch = r->o->cfg.batch,
            .hidden = r->o->hidden};
        int rc = metrics_append(r->rt, &r->log, &rep);
        if (rc)
            return rc;
    }
    return 0;
}

int train_state_save_model(train_run *r, const char *path)
{
    bprop_error err = {0};
    train_signal_write_begin();
    bprop_status st = bprop_model_save_notify(r->model, path, train_signal_tempfile, NULL, &err);
    train_signal_write_end();
    return st == BPROP_OK ? 0 : cli_fail_err(r->rt, &err, st);
}

int train_state_finish(train_run *r)
{
    (void)r;
    int sig = agreed_signal(r->rt);
    if (!sig)
        return 0;
    if (cli_root(r->rt))
        fprintf(stderr, "bprop: %s arrived after the last epoch; the run finished and its files "
                "are complete\n", signal_name(sig));
    return 128 + sig;
}

void train_state_free(train_state *s)
{
    free(s->records);
    s->records = NULL;
    s->n_records = s->cap = 0;
}
