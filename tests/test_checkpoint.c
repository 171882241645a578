/* test_checkpoint.c: checkpoint files (round trip, corrupt files, refused saves, the data hash)
 * and library-level resumes that must end bitwise where an uninterrupted run ends. */
#define _POSIX_C_SOURCE 200809L

#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Byte offsets of the v1 format (see the comment at the top of src/checkpoint.c). */
enum {
    OFF_VERSION = 8,
    OFF_HLEN = 12,
    OFF_HIDDEN = 24,
    OFF_HAS_BIAS = 40,
    OFF_BATCH = 56,
    OFF_STEP = 132,
    OFF_NTRAIN = 180,
    OFF_DATA = 312,
    OFF_TRAIN_N = 592,
    OFF_RECORDS = 688,
    OFF_SETTINGS_LEN = 696,
    OFF_BODY = 712,
};

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(checkpoint, .init = scratch_create, .fini = scratch_remove, .timeout = 120);
TestSuite(resume, .init = scratch_create, .fini = scratch_remove, .timeout = 300);

/* Recompute the trailing CRC after editing a file's bytes, so later checks are reached. */
static void fix_crc(unsigned char *buf, size_t n)
{
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(n - 4));
    tu_put_le(buf + n - 4, crc, 4);
}

/* ---- a small run to checkpoint ------------------------------------------------------------ */

enum { N_TRAIN = 300, DIM = 12, CLASSES = 3, HIDDEN = 10, BATCH = 32 };

typedef struct run {
    bprop_dataset *d;
    bprop_model *m;
    bprop_trainer *t;
    bprop_train_config c;
    volatile sig_atomic_t cancel;
} run;

static bprop_train_config small_config(int threads)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 3;
    c.batch = BATCH;
    c.lr = 0.05f;
    c.threads = threads;
    c.weight_decay = 1e-4f;
    c.reproducible = 1; /* checkpoints taken on one thread count resume on another */
    return c;
}

/* Blobs with every fourth label moved to the next class, so the loss never reaches zero and
 * every step changes the parameters (perfectly learnt blobs give exactly zero gradients, which
 * would hide a lost or repeated step). */
static bprop_dataset *noisy_blobs(void)
{
    bprop_dataset *d = tu_blobs(N_TRAIN, DIM, CLASSES, 77);
    for (size_t i = 0; i < N_TRAIN; i += 4)
        d->y[i] = (d->y[i] + 1) % CLASSES;
    return d;
}

static void run_start(run *r, int threads, int standardize)
{
    memset(r, 0, sizeof *r);
    r->d = noisy_blobs();
    r->c = small_config(threads);
    cr_assert_eq(bprop_model_create(DIM, HIDDEN, CLASSES, 1, r->c.seed, &r->m, NULL), BPROP_OK);
    if (standardize) {
        float mean[DIM], scale[DIM];
        cr_assert_eq(bprop_dataset_feature_stats(r->d, mean, scale), BPROP_OK);
        cr_assert_eq(bprop_model_set_standardization(r->m, mean, scale), BPROP_OK);
        cr_assert_eq(bprop_model_prepare_data(r->m, r->d, NULL), BPROP_OK);
    }
    cr_assert_eq(bprop_trainer_create(r->m, &r->c, r->d->n, &r->t, NULL), BPROP_OK);
    bprop_trainer_set_cancel(r->t, &r->cancel);
}

static void run_free(run *r)
{
    bprop_trainer_free(r->t);
    bprop_model_free(r->m);
    bprop_dataset_free(r->d);
}

static const bprop_epoch_record k_records[2] = {
    {.epoch = 1, .steps = 10, .threads = 2, .train_loss = 0.5, .train_acc = 0.8, .test_loss = NAN,
     .test_acc = NAN, .val_loss = 0.25, .val_acc = 0.9, .samples_per_s = 1e5, .seconds = 0.01,
     .reduce_seconds = 0.001, .lr = 0.05, .grad_norm = {1, 2, 3, 4}},
    {.epoch = 2, .steps = 10, .threads = 2, .train_loss = 0.4, .train_acc = 0.85, .test_loss = 0.3,
     .test_acc = 0.88, .val_loss = 0.2, .val_acc = 0.91, .samples_per_s = 2e5, .seconds = 0.02,
     .reduce_seconds = 0.002, .lr = 0.04, .grad_norm = {5, 6, 7, 8}}};

/* A checkpoint of r as it stands (borrowing everything). */
static bprop_checkpoint snapshot(const run *r, size_t n_records, const char *settings)
{
    bprop_checkpoint ck = {
        .model = r->m, .config = r->c, .steps_per_epoch = (N_TRAIN + BATCH - 1) / BATCH,
        .train = bprop_data_describe(r->d), .n_records = n_records, .records = k_records,
        .settings = settings};
    bprop_trainer_get_state(r->t, &ck.state);
    return ck;
}

static char *save_snapshot(const run *r, const char *name)
{
    char *path = tu_path(g_dir, name);
    bprop_trainer_state now;
    bprop_trainer_get_state(r->t, &now);
    /* Records describe finished epochs: at most as many as the run has finished. */
    bprop_checkpoint ck = snapshot(r, now.epoch < 2 ? (size_t)now.epoch : 2, "hidden=10\nnote=a\\nb\n");
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_save(&ck, path, NULL, NULL, &err), BPROP_OK, "%s", err.message);
    return path;
}

/* ---- round trip --------------------------------------------------------------------------- */

static void assert_same_state(const bprop_trainer_state *a, const bprop_trainer_state *b)
{
    cr_assert_eq(a->epoch, b->epoch);
    cr_assert_eq(a->step, b->step);
    cr_assert_eq(memcmp(a->rng, b->rng, sizeof a->rng), 0);
    cr_assert_eq(a->n_train, b->n_train);
    cr_assert_eq(memcmp(a->perm, b->perm, a->n_train * sizeof *a->perm), 0);
    cr_assert_eq(a->params, b->params);
    cr_assert(tu_same_bits(a->velocity, b->velocity, a->params));
    cr_assert_eq(a->seen, b->seen);
    cr_assert_eq(a->correct, b->correct);
    cr_assert_eq(memcmp(&a->loss, &b->loss, sizeof a->loss), 0);
    cr_assert_eq(memcmp(a->norm2_sum, b->norm2_sum, sizeof a->norm2_sum), 0);
}

Test(checkpoint, round_trip_is_exact)
{
    run r;
    run_start(&r, 2, 1);
    tu_stopper s = {&r.cancel, 3}; /* stops after step 4 */
    for (int e = 0; e < 2; e++)
        cr_assert_eq(bprop_trainer_epoch(r.t, r.d, NULL, NULL, NULL, NULL), BPROP_OK);
    bprop_status st = bprop_trainer_epoch(r.t, r.d, tu_stop_at, &s, NULL, NULL);
    cr_assert_eq(st, BPROP_E_CANCELLED, "the trainer must honour the cancel flag (got %s)",
                 bprop_strerror(st));
    snprintf(r.m->info.data, sizeof r.m->info.data, "blobs (test)");
    char *path = save_snapshot(&r, "a.ckpt");
    bprop_checkpoint *ck = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_load(path, &ck, &err), BPROP_OK, "%s", err.message);
    cr_assert(bprop_is_checkpoint(path));
    bprop_checkpoint want = snapshot(&r, 2, NULL);
    assert_same_state(&ck->state, &want.state);
    cr_assert_eq(ck->state.step, 4);
    cr_assert_eq(ck->state.epoch, 2);
    cr_assert_eq(ck->steps_per_epoch, want.steps_per_epoch);
    const bprop_train_config *a = &ck->config, *b = &r.c;
    cr_assert(a->epochs == b->epochs && a->batch == b->batch && a->lr == b->lr &&
              a->momentum == b->momentum && a->nesterov == b->nesterov &&
              a->weight_decay == b->weight_decay && a->schedule == b->schedule &&
              a->step_epochs == b->step_epochs && a->step_gamma == b->step_gamma &&
              a->clip_norm == b->clip_norm && a->seed == b->seed && a->shuffle == b->shuffle &&
              a->threads == b->threads && a->parallel == b->parallel &&
              a->reproducible == b->reproducible, "config differs");
    cr_assert_eq(memcmp(&ck->train, &want.train, sizeof want.train), 0);
    cr_assert_eq(ck->val.n, 0);
    cr_assert_eq(ck->n_records, 2);
    cr_assert_eq(memcmp(ck->records, k_records, sizeof k_records), 0, "records differ");
    cr_assert_str_eq(ck->settings, "hidden=10\nnote=a\\nb\n");
    const bprop_model *m = ck->model;
    cr_assert_eq(m->hidden, HIDDEN);
    cr_assert(tu_same_bits(m->params, r.m->params, m->layout.total));
    cr_assert(tu_same_bits(m->std_mean, r.m->std_mean, DIM));
    cr_assert(tu_same_bits(m->std_scale, r.m->std_scale, DIM));
    cr_assert_str_eq(m->info.data, "blobs (test)");
    cr_assert_eq(m->info.epochs_done, r.m->info.epochs_done);
    cr_assert_eq(m->info.samples_seen, r.m->info.samples_seen);
    cr_assert_gt(ck->saved_unix, 0);
    bprop_checkpoint_free(ck);
    free(path);
    run_free(&r);
}

Test(checkpoint, data_hash_sees_every_value)
{
    bprop_dataset *a = tu_blobs(50, 6, 3, 5), *b = tu_blobs(50, 6, 3, 5);
    uint64_t h = bprop_dataset_hash(a);
    cr_assert_eq(h, bprop_dataset_hash(b));
    uint32_t u;
    memcpy(&u, &b->x[123], 4);
    u ^= 1; /* the lowest mantissa bit */
    memcpy(&b->x[123], &u, 4);
    cr_assert_neq(h, bprop_dataset_hash(b));
    memcpy(&b->x[123], &a->x[123], 4);
    b->y[7] = (b->y[7] + 1) % 3;
    cr_assert_neq(h, bprop_dataset_hash(b));
    bprop_data_desc d = bprop_data_describe(a);
    cr_assert(d.n == 50 && d.dim == 6 && d.classes == 3 && d.hash == h);
    cr_assert_eq(bprop_data_describe(NULL).n, 0);
    bprop_dataset_free(a);
    bprop_dataset_free(b);
}

/* The hash is part of the checkpoint format: these values were computed by the build that wrote
 * the first checkpoints, so a changed algorithm (which would refuse every existing checkpoint's
 * data on --resume) fails here. */
Test(checkpoint, data_hash_known_values)
{
    float x[6] = {0.0f, 1.0f, -0.5f, 0.25f, 3.5f, -0.0f};
    int32_t y[3] = {0, 2, 1};
    bprop_dataset labelled = {.n = 3, .dim = 2, .classes = 3, .x = x, .y = y};
    bprop_dataset unlabelled = {.n = 3, .dim = 2, .classes = 0, .x = x, .y = NULL};
    bprop_dataset one_row = {.n = 1, .dim = 5, .classes = 4, .x = x, .y = y};
    cr_assert_eq(bprop_dataset_hash(&labelled), 0x78b6537083a92485ull);
    cr_assert_eq(bprop_dataset_hash(&unlabelled), 0x7a46c00a57c9180aull);
    cr_assert_eq(bprop_dataset_hash(&one_row), 0x64cba74de24aaec3ull);
    cr_assert_eq(bprop_dataset_hash(NULL), 0);
}

/* ---- refused saves leave the old file ----------------------------------------------------- */

Test(checkpoint, refused_saves_keep_the_old_file)
{
    run r;
    run_start(&r, 1, 0);
    char *path = save_snapshot(&r, "keep.ckpt");
    size_t n0;
    unsigned char *before = (unsigned char *)tu_read_file(path, &n0);
    bprop_checkpoint ck = snapshot(&r, 0, NULL);
    bprop_error err = {0};
    r.m->params[3] = NAN;
    cr_assert_eq(bprop_checkpoint_save(&ck, path, NULL, NULL, &err), BPROP_E_NONFINITE);
    cr_assert(strstr(err.message, "parameter 3 is NaN"), "%s", err.message);
    r.m->params[3] = 0.0f;
    ck.state.step = ck.steps_per_epoch;
    cr_assert_eq(bprop_checkpoint_save(&ck, path, NULL, NULL, &err), BPROP_E_ARG);
    cr_assert(strstr(err.message, "steps per epoch"), "%s", err.message);
    ck = snapshot(&r, 0, NULL);
    ck.train.n++;
    cr_assert_eq(bprop_checkpoint_save(&ck, path, NULL, NULL, &err), BPROP_E_ARG);
    cr_assert(strstr(err.message, "training set description"), "%s", err.message);
    ck = snapshot(&r, 0, NULL);
    ck.config.batch = 0;
    cr_assert_eq(bprop_checkpoint_save(&ck, path, NULL, NULL, &err), BPROP_E_ARG);
    size_t n1;
    unsigned char *after = (unsigned char *)tu_read_file(path, &n1);
    cr_assert(n0 == n1 && memcmp(before, after, n0) == 0, "a refused save changed the file");
    DIR *dir = opendir(g_dir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(dir));)
        entries += e->d_name[0] != '.';
    closedir(dir);
    cr_assert_eq(entries, 1, "temporary files left behind");
    free(before);
    free(after);
    free(path);
    run_free(&r);
}

/* The temp-file hook sees the temporary name while it exists, then NULL. */
typedef struct hook_log {
    int calls, existed;
    char name[4096];
} hook_log;

static void on_temp(void *user, const char *tmp)
{
    hook_log *h = user;
    h->calls++;
    if (tmp) {
        snprintf(h->name, sizeof h->name, "%s", tmp);
        FILE *f = fopen(tmp, "rb");
        h->existed = f != NULL;
        if (f)
            fclose(f);
    } else {
        h->name[0] = '\0';
    }
}

Test(checkpoint, temp_file_hook_names_the_file_being_written)
{
    run r;
    run_start(&r, 1, 0);
    char *path = tu_path(g_dir, "hook.ckpt");
    bprop_checkpoint ck = snapshot(&r, 0, NULL);
    hook_log h = {0};
    cr_assert_eq(bprop_checkpoint_save(&ck, path, on_temp, &h, NULL), BPROP_OK);
    cr_assert_eq(h.calls, 2);
    cr_assert(h.existed, "the hook was called before the temporary file existed");
    cr_assert_str_empty(h.name);
    char *model = tu_path(g_dir, "hook.bpm");
    h = (hook_log){0};
    cr_assert_eq(bprop_model_save_notify(r.m, model, on_temp, &h, NULL), BPROP_OK);
    cr_assert(h.calls == 2 && h.existed);
    free(model);
    free(path);
    run_free(&r);
}

/* ---- corrupt files: one clear error each, never a crash ----------------------------------- */

typedef struct fixture {
    run r;
    char *path;
    unsigned char *buf;
    size_t n;
} fixture;

static void fixture_make(fixture *fx)
{
    run_start(&fx->r, 1, 1);
    for (int e = 0; e < 2; e++)
        cr_assert_eq(bprop_trainer_epoch(fx->r.t, fx->r.d, NULL, NULL, NULL, NULL), BPROP_OK);
    fx->path = save_snapshot(&fx->r, "good.ckpt");
    fx->buf = (unsigned char *)tu_read_file(fx->path, &fx->n);
}

static void fixture_free(fixture *fx)
{
    free(fx->buf);
    free(fx->path);
    run_free(&fx->r);
}

/* Load buf (n bytes) from a scratch file; the status, with the message in err. */
static bprop_status load_bytes(const unsigned char *buf, size_t n, bprop_error *err)
{
    char *path = tu_path(g_dir, "bad.ckpt");
    tu_write_file(path, buf, n);
    bprop_checkpoint *ck = NULL;
    *err = (bprop_error){0};
    bprop_status st = bprop_checkpoint_load(path, &ck, err);
    cr_assert(st != BPROP_OK || ck != NULL);
    bprop_checkpoint_free(ck);
    free(path);
    return st;
}

static void expect_error(const unsigned char *buf, size_t n, bprop_status want, const char *text)
{
    bprop_error err;
    bprop_status st = load_bytes(buf, n, &err);
    cr_assert_eq(st, want, "status %s, want %s (%s)", bprop_strerror(st), bprop_strerror(want), err.message);
    cr_assert(strstr(err.message, text), "message '%s' lacks '%s'", err.message, text);
    cr_assert(strstr(err.message, "bad.ckpt"), "message '%s' does not name the file", err.message);
    cr_assert_null(strchr(err.message, '\n'));
}

Test(checkpoint, header_errors)
{
    fixture fx;
    fixture_make(&fx);
    cr_assert_eq(tu_get_le(fx.buf + OFF_HLEN, 4), OFF_BODY - 16);
    cr_assert_eq(tu_get_le(fx.buf + OFF_TRAIN_N, 8), N_TRAIN);
    cr_assert_eq(tu_get_le(fx.buf + OFF_RECORDS, 8), 2);
    unsigned char *b = malloc(fx.n + 8);
    memcpy(b, fx.buf, fx.n);
    b[0] = 'X';
    expect_error(b, fx.n, BPROP_E_FORMAT, "not a bprop checkpoint (bad magic)");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_VERSION, 9, 4);
    expect_error(b, fx.n, BPROP_E_VERSION, "checkpoint format version 9, this build reads version 1");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HLEN, 100, 4);
    expect_error(b, fx.n, BPROP_E_FORMAT, "header length 100");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HAS_BIAS, 2, 4);
    expect_error(b, fx.n, BPROP_E_FORMAT, "must be 0 or 1");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_BATCH, 0, 8);
    expect_error(b, fx.n, BPROP_E_FORMAT, "invalid training settings");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_STEP, 10, 8); /* 300 samples in batches of 32: 10 steps */
    expect_error(b, fx.n, BPROP_E_FORMAT, "step 10 of 10 steps per epoch");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_NTRAIN, N_TRAIN + 1, 8);
    expect_error(b, fx.n, BPROP_E_FORMAT, "permutation of 301 samples");
    memcpy(b, fx.buf, fx.n);
    memset(b + OFF_DATA, 'a', 256);
    expect_error(b, fx.n, BPROP_E_FORMAT, "data string is not NUL-terminated");
    /* Huge sizes are refused against the file length before any allocation. */
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HIDDEN, (uint64_t)1 << 30, 8);
    expect_error(b, fx.n, BPROP_E_FORMAT, "need a");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_HIDDEN, (uint64_t)1 << 62, 8);
    expect_error(b, fx.n, BPROP_E_SIZE, "too large");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_SETTINGS_LEN, (uint64_t)1 << 21, 8);
    expect_error(b, fx.n, BPROP_E_FORMAT, "settings of 2097152 bytes");
    free(b);
    fixture_free(&fx);
}

Test(checkpoint, truncation_checksum_trailing_bytes)
{
    fixture fx;
    fixture_make(&fx);
    size_t cuts[] = {0, 5, 8, 12, 16, 300, OFF_BODY - 1, OFF_BODY, OFF_BODY + 7, fx.n / 2, fx.n - 5, fx.n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        bprop_error err;
        bprop_status st = load_bytes(fx.buf, cuts[i], &err);
        cr_assert_neq(st, BPROP_OK, "a file cut to %zu bytes loaded", cuts[i]);
        cr_assert(strstr(err.message, cuts[i] == 0 ? "bad magic" : "truncated"), "cut %zu: %s", cuts[i],
                  err.message);
    }
    unsigned char *b = malloc(fx.n + 1);
    memcpy(b, fx.buf, fx.n);
    b[OFF_BODY + 10] ^= 0x40;
    expect_error(b, fx.n, BPROP_E_CHECKSUM, "checksum mismatch");
    memcpy(b, fx.buf, fx.n);
    b[fx.n] = 0;
    expect_error(b, fx.n + 1, BPROP_E_FORMAT, "1 trailing bytes after the checksum");
    free(b);
    fixture_free(&fx);
}

Test(checkpoint, values_the_checksum_cannot_vouch_for)
{
    fixture fx;
    fixture_make(&fx);
    unsigned char *b = malloc(fx.n);
    size_t total = fx.r.m->layout.total;
    /* A NaN parameter, with a correct checksum. */
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + OFF_BODY + 4 * 7, 0x7fc00000u, 4);
    fix_crc(b, fx.n);
    expect_error(b, fx.n, BPROP_E_NONFINITE, "parameter 7 is not finite");
    /* An infinite momentum entry: after parameters and the two standardisation vectors. */
    size_t vel = OFF_BODY + 4 * total + 8 * DIM;
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + vel + 4 * 2, 0x7f800000u, 4);
    fix_crc(b, fx.n);
    expect_error(b, fx.n, BPROP_E_NONFINITE, "momentum 2 is not finite");
    /* A repeated sample and an out-of-range one in the permutation. */
    size_t perm = vel + 4 * total;
    memcpy(b, fx.buf, fx.n);
    memcpy(b + perm + 8 * 5, b + perm + 8 * 4, 8);
    fix_crc(b, fx.n);
    expect_error(b, fx.n, BPROP_E_FORMAT, "permutation entry 5 is a repeated sample");
    memcpy(b, fx.buf, fx.n);
    tu_put_le(b + perm + 8 * 9, N_TRAIN, 8);
    fix_crc(b, fx.n);
    expect_error(b, fx.n, BPROP_E_FORMAT, "permutation entry 9 is beyond the training set");
    /* A NUL inside the settings text (the last bytes before the checksum). */
    memcpy(b, fx.buf, fx.n);
    b[fx.n - 6] = 0;
    fix_crc(b, fx.n);
    expect_error(b, fx.n, BPROP_E_FORMAT, "NUL byte in the settings text");
    free(b);
    fixture_free(&fx);
}

Test(checkpoint, models_and_checkpoints_are_told_apart)
{
    run r;
    run_start(&r, 1, 0);
    char *model = tu_path(g_dir, "m.bpm"), *ck = save_snapshot(&r, "c.ckpt");
    cr_assert_eq(bprop_model_save(r.m, model, NULL), BPROP_OK);
    cr_assert_not(bprop_is_checkpoint(model));
    cr_assert(bprop_is_checkpoint(ck));
    cr_assert_not(bprop_is_checkpoint("/nonexistent/x"));
    bprop_checkpoint *c = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_load(model, &c, &err), BPROP_E_FORMAT);
    cr_assert(strstr(err.message, "not a bprop checkpoint"), "%s", err.message);
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_load(ck, &m, &err), BPROP_E_FORMAT);
    cr_assert_eq(bprop_checkpoint_load(g_dir, &c, &err), BPROP_E_IO);
    free(model);
    free(ck);
    run_free(&r);
}

/* ---- resuming through a checkpoint file ends bitwise where the uninterrupted run does ----- */

static bprop_model *uninterrupted(int threads, double *last_loss)
{
    run r;
    run_start(&r, threads, 1);
    bprop_epoch_stats st = {0};
    for (size_t e = 0; e < r.c.epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(r.t, r.d, NULL, NULL, &st, NULL), BPROP_OK);
    *last_loss = st.train_loss;
    bprop_model *m = r.m;
    r.m = NULL;
    run_free(&r);
    return m;
}

/* Run on `threads` until epoch stop_epoch (0-based), step stop_step (0: the epoch boundary
 * before it), checkpoint to a file, then continue from the file alone on resume_threads. */
static void check_resume(int threads, size_t stop_epoch, size_t stop_step, int resume_threads)
{
    double want_loss = 0.0;
    bprop_model *want = uninterrupted(resume_threads, &want_loss);
    run r;
    run_start(&r, threads, 1);
    for (size_t e = 0; e < stop_epoch; e++)
        cr_assert_eq(bprop_trainer_epoch(r.t, r.d, NULL, NULL, NULL, NULL), BPROP_OK);
    if (stop_step) {
        /* Step 1: the flag is already set when the epoch starts (as after a signal). */
        tu_stopper s = {&r.cancel, stop_step - 1};
        r.cancel = stop_step == 1;
        cr_assert_eq(bprop_trainer_epoch(r.t, r.d, stop_step > 1 ? tu_stop_at : NULL, &s, NULL, NULL),
                     BPROP_E_CANCELLED);
    }
    char *path = tu_path(g_dir, "resume.ckpt");
    bprop_checkpoint snap = snapshot(&r, 0, NULL);
    cr_assert_eq(snap.state.epoch, stop_epoch);
    cr_assert_eq(snap.state.step, stop_step);
    cr_assert_eq(bprop_checkpoint_save(&snap, path, NULL, NULL, NULL), BPROP_OK);
    run_free(&r);

    bprop_checkpoint *ck = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_load(path, &ck, &err), BPROP_OK, "%s", err.message);
    bprop_dataset *d = noisy_blobs();
    cr_assert_eq(bprop_model_prepare_data(ck->model, d, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_hash(d), ck->train.hash, "the prepared data hashes differently");
    bprop_train_config c = ck->config;
    c.threads = resume_threads;
    bprop_trainer *t = NULL;
    cr_assert_eq(bprop_trainer_create(ck->model, &c, d->n, &t, NULL), BPROP_OK);
    cr_assert_eq(bprop_trainer_set_state(t, &ck->state, &err), BPROP_OK, "%s", err.message);
    bprop_epoch_stats st = {0};
    for (size_t e = stop_epoch; e < c.epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(t, d, NULL, NULL, &st, NULL), BPROP_OK);
    const bprop_model *m = ck->model;
    cr_assert(tu_same_bits(m->params, want->params, m->layout.total),
              "%d thread(s), stopped at epoch %zu step %zu, resumed on %d: parameters differ",
              threads, stop_epoch, stop_step, resume_threads);
    cr_assert_eq(st.epoch, c.epochs);
    cr_assert_eq(memcmp(&st.train_loss, &want_loss, sizeof want_loss), 0,
                 "last epoch's running loss %.17g, uninterrupted %.17g", st.train_loss, want_loss);
    cr_assert_eq(m->info.epochs_done, want->info.epochs_done);
    cr_assert_eq(m->info.samples_seen, want->info.samples_seen);
    bprop_trainer_free(t);
    bprop_checkpoint_free(ck);
    bprop_dataset_free(d);
    bprop_model_free(want);
    free(path);
}

Test(resume, mid_epoch_one_thread) { check_resume(1, 1, 4, 1); }
Test(resume, mid_epoch_two_threads) { check_resume(2, 1, 7, 2); }
Test(resume, mid_epoch_first_step_of_the_run) { check_resume(2, 0, 1, 2); }
Test(resume, epoch_boundary_one_thread) { check_resume(1, 2, 0, 1); }
Test(resume, epoch_boundary_two_threads) { check_resume(2, 1, 0, 2); }
Test(resume, checkpoint_on_two_threads_resume_on_one) { check_resume(2, 1, 5, 1); }
Test(resume, checkpoint_on_one_thread_resume_on_two_at_boundary) { check_resume(1, 1, 0, 2); }

/* Cancelling twice in one epoch, and a flag already set when the epoch starts. */
Test(resume, repeated_stops_in_one_epoch)
{
    double want_loss;
    bprop_model *want = uninterrupted(2, &want_loss);
    run r;
    run_start(&r, 2, 1);
    tu_stopper s = {&r.cancel, 3};
    cr_assert_eq(bprop_trainer_epoch(r.t, r.d, tu_stop_at, &s, NULL, NULL), BPROP_E_CANCELLED);
    bprop_trainer_state now;
    bprop_trainer_get_state(r.t, &now);
    cr_assert_eq(now.step, 4);
    r.cancel = 0;
    s.at = 6; /* the callback counts steps within the epoch, not within the call */
    cr_assert_eq(bprop_trainer_epoch(r.t, r.d, tu_stop_at, &s, NULL, NULL), BPROP_E_CANCELLED);
    bprop_trainer_get_state(r.t, &now);
    cr_assert(now.step == 7 && now.epoch == 0, "step %llu", (unsigned long long)now.step);
    /* Still set when the next call starts: that call's first step completes, then it stops. */
    bprop_status st = bprop_trainer_epoch(r.t, r.d, NULL, NULL, NULL, NULL);
    cr_assert_eq(st, BPROP_E_CANCELLED);
    bprop_trainer_get_state(r.t, &now);
    cr_assert_eq(now.step, 8);
    r.cancel = 0;
    bprop_epoch_stats es;
    for (size_t e = 0; e < r.c.epochs; e++)
        cr_assert_eq(bprop_trainer_epoch(r.t, r.d, NULL, NULL, &es, NULL), BPROP_OK);
    cr_assert(tu_same_bits(r.m->params, want->params, r.m->layout.total));
    cr_assert_eq(memcmp(&es.train_loss, &want_loss, sizeof want_loss), 0);
    bprop_model_free(want);
    run_free(&r);
}
