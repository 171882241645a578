/* checkpoint.c: the bprop checkpoint file (a training run's full state: versioned, little-endian,
 * CRC-32 checked, written atomically). The data hash it records is data_hash.c's. */
#define _POSIX_C_SOURCE 200809L

#include "atomic_file.h"
#include "crc_file.h"
#include "le_cursor.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>


/*
 * Checkpoint file format, version 1. The model file's conventions: every integer and float is
 * little-endian, floats are IEEE-754 binary32/binary64 stored by their bit pattern (round trips
 * are bitwise exact), a header length lets later versions append header fields, and a CRC-32 of
 * every earlier byte ends the file. Offsets are bytes from the start of the file.
 *
 *   offset  size  field
 *   ------  ----  -----------------------------------------------------------------------------
 *        0     8  magic "BPROPCKP"
 *        8     4  u32 format version (1)
 *       12     4  u32 header length H: bytes from offset 16 to the body (696 in v1)
 *   --- header: the model's shape ---
 *       16    24  u64 inputs, hidden, classes
 *       40     8  u32 has_bias, has_standardization (0 or 1)
 *   --- the run's settings (bprop_train_config) ---
 *       48    16  u64 epochs, batch
 *       64    16  f32 lr, f32 momentum, i32 nesterov, f32 weight_decay
 *       80     4  u32 schedule (0 constant, 1 step, 2 cosine)
 *       84     8  u64 step_epochs
 *       92     8  f32 step_gamma, f32 clip_norm
 *      100     8  u64 seed
 *      108     8  i32 shuffle, i32 threads
 *      116     8  u32 parallel (0 auto, 1 data, 2 hidden), u32 reproducible
 *   --- where the run stands (bprop_trainer_state) and its schedule position ---
 *      124     8  u64 epoch: epochs completed
 *      132     8  u64 step: steps done in the epoch in progress (0 at an epoch boundary)
 *      140     8  u64 steps_per_epoch (= ceil(n_train / batch))
 *      148    32  u64 rng[4]: the shuffling generator
 *      180     8  u64 n_train: length of the permutation
 *      188    16  u64 seen, correct: running sums of the epoch in progress
 *      204    24  f64 loss, reduce_seconds, seconds: running sums of the epoch in progress
 *      228    32  f64 norm2_sum[4]: running sums of squared gradient norms (W1, b1, W2, b2)
 *   --- the model's provenance (bprop_provenance; its config is the run's settings above) ---
 *      260    16  u64 epochs_done, samples_seen
 *      276     4  i32 threads
 *      280    16  f32 train_loss, train_acc, test_loss, test_acc
 *      296    16  i64 created_unix, saved_unix
 *      312   256  data: NUL-terminated string, zero-padded
 *      568    16  isa: NUL-terminated string, zero-padded
 *      584     4  i32 ranks
 *      588     4  reserved, zero
 *   --- the data (bprop_data_desc: u64 n, dim, classes, hash; all zero for a missing set) ---
 *           the hash is bprop_dataset_hash of the prepared set (data_hash.c)
 *      592    32  training set
 *      624    32  validation set
 *      656    32  test set
 *   --- sizes of the variable parts, and when this file was written ---
 *      688     8  u64 R: epoch records
 *      696     8  u64 L: settings text bytes (at most 2^20)
 *      704     8  i64 written_unix
 *   --- body, from B = 16 + H (712 in v1) ---
 *        B   4*T  f32 parameters, T = layout.total: W1 | b1 | W2 | b2 (as in model files)
 *            4*I  f32 std_mean (I = inputs), only when has_standardization = 1
 *            4*I  f32 std_scale, only when has_standardization = 1
 *            4*T  f32 momentum (velocity), same layout as the parameters
 *            8*N  u64 permutation of the epoch in progress (N = n_train)
 *          136*R  epoch records, each: u64 epoch, u64 steps, i32 threads, u32 reserved (zero),
 *                 f64 train_loss, train_acc, test_loss, test_acc, val_loss, val_acc,
 *                 samples_per_s, seconds, reduce_seconds, lr, grad_norm[4] (NaN: not measured)
 *              L  settings: the caller's text (no NUL byte; the CLI writes key=value lines)
 *              4  u32 CRC-32 (zlib's crc32) of every byte before it
 *   (end of file: any byte after the checksum is an error)
 *
 * Loading checks, in order: magic, version, header fields (each against the others: shape,
 * settings, step < steps_per_epoch = ceil(n_train / batch), the training set's n and dim against
 * n_train and inputs), the sizes against the file length (before anything is allocated), the
 * checksum, trailing bytes, then the values: finite parameters, momentum and statistics, a true
 * permutation, settings text without NUL bytes.
 */

#define CK_MAGIC "BPROPCKP"
enum {
    CK_MAGIC_LEN = 8,
    CK_VERSION = 1,
    CK_PREFIX = 16,
    CK_HEADER = 696,    /* header bytes of version 1 */
    CK_BODY = CK_PREFIX + CK_HEADER,
    CK_DATA_LEN = 256,
    CK_ISA_LEN = 16,
    CK_RECORD = 136,    /* bytes per epoch record */
    CK_CHUNK = 4096,    /* values converted per I/O call */
    /* Offsets named in error messages. */
    OFF_CONFIG = 48, OFF_STATE = 124, OFF_STEP = 132, OFF_NTRAIN = 180, OFF_DATA = 312,
    OFF_ISA = 568, OFF_TRAIN = 592, OFF_COUNTS = 688,
};

/* ---- little-endian encoding ------------------------------------------------------------- */

static void put_bytes(bp_cursor *c, const void *s, size_t n, size_t field)
{
    memset(c->p + c->pos, 0, field);
    memcpy(c->p + c->pos, s, n);
    c->pos += field;
}

/* ---- header encoding -------------------------------------------------------------------- */

static void put_config(bp_cursor *c, const bprop_train_config *k)
{
    bp_put_u64(c, k->epochs);
    bp_put_u64(c, k->batch);
    bp_put_f32(c, k->lr);
    bp_put_f32(c, k->momentum);
    bp_put_i32(c, k->nesterov);
    bp_put_f32(c, k->weight_decay);
    bp_put_u32(c, (uint32_t)k->schedule);
    bp_put_u64(c, k->step_epochs);
    bp_put_f32(c, k->step_gamma);
    bp_put_f32(c, k->clip_norm);
    bp_put_u64(c, k->seed);
    bp_put_i32(c, k->shuffle);
    bp_put_i32(c, k->threads);
    bp_put_u32(c, (uint32_t)k->parallel);
    bp_put_u32(c, k->reproducible ? 1 : 0);
}

static void put_state(bp_cursor *c, const bprop_checkpoint *ck)
{
    const bprop_trainer_state *s = &ck->state;
    bp_put_u64(c, s->epoch);
    bp_put_u64(c, s->step);
    bp_put_u64(c, ck->steps_per_epoch);
    for (int i = 0; i < 4; i++)
        bp_put_u64(c, s->rng[i]);
    bp_put_u64(c, s->n_train);
    bp_put_u64(c, s->seen);
    bp_put_u64(c, s->correct);
    bp_put_f64(c, s->loss);
    bp_put_f64(c, s->reduce_seconds);
    bp_put_f64(c, s->seconds);
    for (int t = 0; t < BPROP_TENSORS; t++)
        bp_put_f64(c, s->norm2_sum[t]);
}

static void put_provenance(bp_cursor *c, const bprop_provenance *p)
{
    bp_put_u64(c, p->epochs_done);
    bp_put_u64(c, p->samples_seen);
    bp_put_i32(c, p->threads);
    bp_put_f32(c, p->train_loss);
    bp_put_f32(c, p->train_acc);
    bp_put_f32(c, p->test_loss);
    bp_put_f32(c, p->test_acc);
    bp_put_u64(c, (uint64_t)p->created_unix);
    bp_put_u64(c, (uint64_t)p->saved_unix);
    put_bytes(c, p->data, strnlen(p->data, CK_DATA_LEN - 1), CK_DATA_LEN);
    put_bytes(c, p->isa, strnlen(p->isa, CK_ISA_LEN - 1), CK_ISA_LEN);
    bp_put_i32(c, p->ranks);
    bp_put_u32(c, 0);
}

static void put_desc(bp_cursor *c, const bprop_data_desc *d)
{
    bp_put_u64(c, d->n);
    bp_put_u64(c, d->dim);
    bp_put_u64(c, d->classes);
    bp_put_u64(c, d->hash);
}

static void encode_header(const bprop_checkpoint *ck, size_t settings_len, unsigned char *buf)
{
    const bprop_model *m = ck->model;
    memcpy(buf, CK_MAGIC, CK_MAGIC_LEN);
    bp_cursor c = {buf, CK_MAGIC_LEN};
    bp_put_u32(&c, CK_VERSION);
    bp_put_u32(&c, CK_HEADER);
    bp_put_u64(&c, m->inputs);
    bp_put_u64(&c, m->hidden);
    bp_put_u64(&c, m->classes);
    bp_put_u32(&c, m->has_bias ? 1 : 0);
    bp_put_u32(&c, m->std_mean ? 1 : 0);
    put_config(&c, &ck->config);
    put_state(&c, ck);
    put_provenance(&c, &m->info);
    put_desc(&c, &ck->train);
    put_desc(&c, &ck->val);
    put_desc(&c, &ck->test);
    bp_put_u64(&c, ck->n_records);
    bp_put_u64(&c, settings_len);
    bp_put_u64(&c, (uint64_t)(int64_t)time(NULL));
}

static void encode_record(const bprop_epoch_record *r, unsigned char *buf)
{
    bp_cursor c = {buf, 0};
    bp_put_u64(&c, r->epoch);
    bp_put_u64(&c, r->steps);
    bp_put_i32(&c, r->threads);
    bp_put_u32(&c, 0);
    const double v[10] = {r->train_loss, r->train_acc, r->test_loss, r->test_acc, r->val_loss,
                          r->val_acc, r->samples_per_s, r->seconds, r->reduce_seconds, r->lr};
    for (int i = 0; i < 10; i++)
        bp_put_f64(&c, v[i]);
    for (int t = 0; t < BPROP_TENSORS; t++)
        bp_put_f64(&c, r->grad_norm[t]);
}

/* ---- save ------------------------------------------------------------------------------- */

static uint64_t ceil_div(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

static int nonfinite_at(const float *p, size_t n, size_t *at)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            *at = i;
            return 1;
        }
    return 0;
}

static bprop_status check_model(const bprop_model *m, const char *path, bprop_error *err)
{
    bprop_layout l;
    if (!m->params || bprop_layout_make(m->inputs, m->hidden, m->classes, m->has_bias != 0, &l) != BPROP_OK ||
        l.total != m->layout.total || !m->std_mean != !m->std_scale)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the model's sizes, layout or "
                       "standardisation are inconsistent", path);
    if (!memchr(m->info.data, '\0', sizeof m->info.data) || !memchr(m->info.isa, '\0', sizeof m->info.isa))
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: a provenance string is not NUL-terminated", path);
    size_t at;
    if (nonfinite_at(m->params, l.total, &at))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: cannot save: parameter %zu is %s", path, at,
                       isnan(m->params[at]) ? "NaN" : "infinite");
    if (m->std_mean && (nonfinite_at(m->std_mean, m->inputs, &at) || nonfinite_at(m->std_scale, m->inputs, &at)))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: cannot save: standardisation statistic %zu is not finite",
                       path, at);
    return BPROP_OK;
}

/* The state must be one a trainer of this model, settings and data can take back. */
static bprop_status check_state(const bprop_checkpoint *ck, const char *path, bprop_error *err)
{
    const bprop_trainer_state *s = &ck->state;
    if (!s->perm || !s->velocity || s->params != ck->model->layout.total)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the trainer state has no permutation or "
                       "momentum, or momentum for %zu parameters (the model has %zu)", path, s->params,
                       ck->model->layout.total);
    if (s->n_train == 0 || s->n_train != ck->train.n || ck->train.dim != ck->model->inputs)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the trainer state is for %zu samples, the "
                       "training set description says %llu samples of %llu features (model: %zu inputs)",
                       path, s->n_train, (unsigned long long)ck->train.n,
                       (unsigned long long)ck->train.dim, ck->model->inputs);
    if (ck->steps_per_epoch != ceil_div(s->n_train, ck->config.batch) || s->step >= ck->steps_per_epoch)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: step %llu of %llu steps per epoch does not "
                       "fit %zu samples in batches of %zu", path, (unsigned long long)s->step,
                       (unsigned long long)ck->steps_per_epoch, s->n_train, ck->config.batch);
    size_t at;
    if (nonfinite_at(s->velocity, s->params, &at))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: cannot save: momentum %zu is not finite", path, at);
    if (ck->n_records && !ck->records)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: %zu epoch records but no array", path,
                       ck->n_records);
    return BPROP_OK;
}

static bprop_status check_checkpoint(const bprop_checkpoint *ck, const char *path, size_t *settings_len,
                                     bprop_error *err)
{
    bprop_status st = check_model(ck->model, path, err);
    if (st != BPROP_OK)
        return st;
    bprop_error cfg_err = {0};
    if (bprop_train_config_check(&ck->config, &cfg_err) != BPROP_OK)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: %s", path, cfg_err.message);
    st = check_state(ck, path, err);
    if (st != BPROP_OK)
        return st;
    *settings_len = ck->settings ? strnlen(ck->settings, BPROP_CHECKPOINT_SETTINGS_MAX + 1) : 0;
    if (*settings_len > BPROP_CHECKPOINT_SETTINGS_MAX)
        return bp_fail(err, BPROP_E_SIZE, "%s: cannot save: settings text longer than %zu bytes", path,
                       BPROP_CHECKPOINT_SETTINGS_MAX);
    return BPROP_OK;
}

static void wr_perm(bp_crc_writer *w, const size_t *perm, size_t n)
{
    unsigned char buf[8 * CK_CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CK_CHUNK ? n - done : CK_CHUNK;
        bp_cursor c = {buf, 0};
        for (size_t i = 0; i < k; i++)
            bp_put_u64(&c, perm[done + i]);
        bp_crc_write(w, buf, c.pos);
        done += k;
    }
}

static int write_checkpoint(FILE *f, const bprop_checkpoint *ck, const unsigned char *head, size_t settings_len)
{
    const bprop_model *m = ck->model;
    bp_crc_writer w;
    bp_crc_writer_init(&w, f);
    bp_crc_write(&w, head, CK_BODY);
    bp_crc_write_floats(&w, m->params, m->layout.total);
    if (m->std_mean) {
        bp_crc_write_floats(&w, m->std_mean, m->inputs);
        bp_crc_write_floats(&w, m->std_scale, m->inputs);
    }
    bp_crc_write_floats(&w, ck->state.velocity, ck->state.params);
    wr_perm(&w, ck->state.perm, ck->state.n_train);
    unsigned char rec[CK_RECORD];
    for (size_t i = 0; i < ck->n_records; i++) {
        encode_record(&ck->records[i], rec);
        bp_crc_write(&w, rec, sizeof rec);
    }
    for (size_t done = 0; done < settings_len; done += CK_CHUNK)
        bp_crc_write(&w, ck->settings + done, settings_len - done < CK_CHUNK ? settings_len - done : CK_CHUNK);
    return bp_crc_write_trailer(&w);
}

bprop_status bprop_checkpoint_save(const bprop_checkpoint *ck, const char *path,
                                   bprop_tempfile_fn on_temp, void *user, bprop_error *err)
{
    if (!ck || !ck->model || !path)
        return bp_fail(err, BPROP_E_ARG, "bprop_checkpoint_save: NULL argument");
    size_t settings_len = 0;
    bprop_status st = check_checkpoint(ck, path, &settings_len, err);
    if (st != BPROP_OK)
        return st;
    unsigned char head[CK_BODY];
    encode_header(ck, settings_len, head);
    bp_atomic a;
    st = bp_atomic_open_notify(&a, path, on_temp, user, err);
    if (st != BPROP_OK)
        return st;
    return bp_atomic_commit(&a, write_checkpoint(a.f, ck, head, settings_len), err);
}

/* ---- load ------------------------------------------------------------------------------- */

/* A loaded checkpoint and the storage its pointers lead to. */
typedef struct ck_owned {
    bprop_checkpoint ck; /* first, so a bprop_checkpoint * converts back */
    size_t *perm;
    float *velocity;
    bprop_epoch_record *records;
    char *settings;
} ck_owned;

void bprop_checkpoint_free(bprop_checkpoint *ck)
{
    if (!ck)
        return;
    ck_owned *o = (ck_owned *)ck;
    bprop_model_free(o->ck.model);
    bp_free(o->perm);
    bp_free(o->velocity);
    free(o->records);
    free(o->settings);
    free(o);
}

int bprop_is_checkpoint(const char *path)
{
    FILE *f = path ? fopen(path, "rb") : NULL;
    if (!f)
        return 0;
    char buf[CK_MAGIC_LEN];
    int yes = fread(buf, 1, CK_MAGIC_LEN, f) == CK_MAGIC_LEN && memcmp(buf, CK_MAGIC, CK_MAGIC_LEN) == 0;
    fclose(f);
    return yes;
}

static bprop_status rd_perm(bp_crc_reader *r, size_t *dst, size_t n, bprop_error *err)
{
    unsigned char buf[8 * CK_CHUNK];
    for (size_t done = 0; done < n;) {
        size_t k = n - done < CK_CHUNK ? n - done : CK_CHUNK;
        bprop_status st = bp_crc_read(r, buf, 8 * k, "the permutation", err);
        if (st != BPROP_OK)
            return st;
        bp_cursor c = {buf, 0};
        for (size_t i = 0; i < k; i++) {
            uint64_t v = bp_get_u64(&c);
            dst[done + i] = v < n ? (size_t)v : n; /* out of range: caught by check_perm */
        }
        done += k;
    }
    return BPROP_OK;
}

/* The header as stored, before its sizes are trusted. */
typedef struct ck_header {
    uint64_t inputs, hidden, classes;
    uint32_t has_bias, has_std;
    bprop_checkpoint ck;      /* scalars only: no pointers yet */
    bprop_provenance info;
    uint64_t n_train, n_records, settings_len;
} ck_header;

static int to_size(uint64_t v, size_t *out)
{
    if ((uint64_t)(size_t)v != v)
        return 0;
    *out = (size_t)v;
    return 1;
}

static bprop_status get_config(bp_cursor *c, const char *path, bprop_train_config *k, bprop_error *err)
{
    uint64_t epochs = bp_get_u64(c), batch = bp_get_u64(c);
    k->lr = bp_get_f32(c);
    k->momentum = bp_get_f32(c);
    k->nesterov = bp_get_i32(c);
    k->weight_decay = bp_get_f32(c);
    uint32_t schedule = bp_get_u32(c);
    uint64_t step_epochs = bp_get_u64(c);
    k->step_gamma = bp_get_f32(c);
    k->clip_norm = bp_get_f32(c);
    k->seed = bp_get_u64(c);
    k->shuffle = bp_get_i32(c);
    k->threads = bp_get_i32(c);
    uint32_t parallel = bp_get_u32(c), reproducible = bp_get_u32(c);
    if (!to_size(epochs, &k->epochs) || !to_size(batch, &k->batch) || !to_size(step_epochs, &k->step_epochs))
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset %d: training settings do not fit this "
                       "platform's size_t", path, OFF_CONFIG);
    if (schedule > BPROP_SCHEDULE_COSINE || parallel > BPROP_PARALLEL_HIDDEN || reproducible > 1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 80: schedule %lu, parallel mode %lu or "
                       "reproducible flag %lu out of range", path, (unsigned long)schedule,
                       (unsigned long)parallel, (unsigned long)reproducible);
    k->schedule = (bprop_schedule)schedule;
    k->parallel = (bprop_parallel)parallel;
    k->reproducible = (int)reproducible;
    bprop_error cfg_err = {0};
    if (bprop_train_config_check(k, &cfg_err) != BPROP_OK)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: invalid training settings: %s", path,
                       OFF_CONFIG, cfg_err.message);
    return BPROP_OK;
}

static void get_state(bp_cursor *c, ck_header *h)
{
    bprop_trainer_state *s = &h->ck.state;
    s->epoch = bp_get_u64(c);
    s->step = bp_get_u64(c);
    h->ck.steps_per_epoch = bp_get_u64(c);
    for (int i = 0; i < 4; i++)
        s->rng[i] = bp_get_u64(c);
    h->n_train = bp_get_u64(c);
    s->seen = bp_get_u64(c);
    s->correct = bp_get_u64(c);
    s->loss = bp_get_f64(c);
    s->reduce_seconds = bp_get_f64(c);
    s->seconds = bp_get_f64(c);
    for (int t = 0; t < BPROP_TENSORS; t++)
        s->norm2_sum[t] = bp_get_f64(c);
}

static bprop_status get_provenance(bp_cursor *c, const char *path, bprop_provenance *p, bprop_error *err)
{
    p->epochs_done = bp_get_u64(c);
    p->samples_seen = bp_get_u64(c);
    p->threads = bp_get_i32(c);
    p->train_loss = bp_get_f32(c);
    p->train_acc = bp_get_f32(c);
    p->test_loss = bp_get_f32(c);
    p->test_acc = bp_get_f32(c);
    p->created_unix = bp_get_i64(c);
    p->saved_unix = bp_get_i64(c);
    const unsigned char *data = c->p + c->pos, *isa = data + CK_DATA_LEN;
    if (!memchr(data, '\0', CK_DATA_LEN))
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: data string is not NUL-terminated",
                       path, OFF_DATA);
    if (!memchr(isa, '\0', CK_ISA_LEN))
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: isa string is not NUL-terminated",
                       path, OFF_ISA);
    memcpy(p->data, data, CK_DATA_LEN);
    memcpy(p->isa, isa, CK_ISA_LEN);
    c->pos += CK_DATA_LEN + CK_ISA_LEN;
    p->ranks = bp_get_i32(c);
    c->pos += 4;
    return BPROP_OK;
}

static void get_desc(bp_cursor *c, bprop_data_desc *d)
{
    d->n = bp_get_u64(c);
    d->dim = bp_get_u64(c);
    d->classes = bp_get_u64(c);
    d->hash = bp_get_u64(c);
}

/* The run's position must be one its own settings and data can reach. */
static bprop_status check_position(const ck_header *h, const char *path, bprop_error *err)
{
    const bprop_checkpoint *ck = &h->ck;
    if (h->n_train == 0 || h->n_train != ck->train.n || ck->train.dim != h->inputs)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: permutation of %llu samples, but the "
                       "training set has %llu samples of %llu features (model: %llu inputs)", path,
                       OFF_NTRAIN, (unsigned long long)h->n_train, (unsigned long long)ck->train.n,
                       (unsigned long long)ck->train.dim, (unsigned long long)h->inputs);
    if (ck->steps_per_epoch != ceil_div(h->n_train, ck->config.batch) || ck->state.step >= ck->steps_per_epoch)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: step %llu of %llu steps per epoch, but "
                       "%llu samples in batches of %zu make %llu", path, OFF_STEP,
                       (unsigned long long)ck->state.step, (unsigned long long)ck->steps_per_epoch,
                       (unsigned long long)h->n_train, ck->config.batch,
                       (unsigned long long)ceil_div(h->n_train, ck->config.batch));
    if (h->n_records > ck->state.epoch || h->settings_len > BPROP_CHECKPOINT_SETTINGS_MAX)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %d: %llu epoch records after %llu epochs, "
                       "settings of %llu bytes (at most %zu)", path, OFF_COUNTS,
                       (unsigned long long)h->n_records, (unsigned long long)ck->state.epoch,
                       (unsigned long long)h->settings_len, BPROP_CHECKPOINT_SETTINGS_MAX);
    return BPROP_OK;
}

static bprop_status decode_header(const unsigned char *buf, const char *path, ck_header *h, bprop_error *err)
{
    memset(h, 0, sizeof *h);
    bp_cursor c = {(unsigned char *)buf, 0};
    h->inputs = bp_get_u64(&c);
    h->hidden = bp_get_u64(&c);
    h->classes = bp_get_u64(&c);
    h->has_bias = bp_get_u32(&c);
    h->has_std = bp_get_u32(&c);
    if (h->has_bias > 1 || h->has_std > 1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 40: flags %lu, %lu (has_bias, "
                       "has_standardization) must be 0 or 1", path, (unsigned long)h->has_bias,
                       (unsigned long)h->has_std);
    bprop_status st = get_config(&c, path, &h->ck.config, err);
    if (st != BPROP_OK)
        return st;
    get_state(&c, h);
    st = get_provenance(&c, path, &h->info, err);
    if (st != BPROP_OK)
        return st;
    get_desc(&c, &h->ck.train);
    get_desc(&c, &h->ck.val);
    get_desc(&c, &h->ck.test);
    h->n_records = bp_get_u64(&c);
    h->settings_len = bp_get_u64(&c);
    h->ck.saved_unix = bp_get_i64(&c);
    return check_position(h, path, err);
}

static bprop_status read_prefix(bp_crc_reader *r, uint32_t *header_len, bprop_error *err)
{
    unsigned char buf[CK_PREFIX];
    size_t got = fread(buf, 1, CK_MAGIC_LEN, r->f);
    if (memcmp(buf, CK_MAGIC, got) != 0 || got == 0)
        return bp_fail(err, BPROP_E_FORMAT, "%s: not a bprop checkpoint (bad magic)", r->path);
    r->crc = bp_crc_update(r->crc, buf, got);
    r->pos = got;
    if (got < CK_MAGIC_LEN)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated at byte offset %zu (reading the magic)", r->path, got);
    bprop_status st = bp_crc_read(r, buf + CK_MAGIC_LEN, CK_PREFIX - CK_MAGIC_LEN, "the format version", err);
    if (st != BPROP_OK)
        return st;
    bp_cursor c = {buf, CK_MAGIC_LEN};
    uint32_t version = bp_get_u32(&c);
    if (version != CK_VERSION)
        return bp_fail(err, BPROP_E_VERSION, "%s: checkpoint format version %lu, this build reads version %d",
                       r->path, (unsigned long)version, CK_VERSION);
    *header_len = bp_get_u32(&c);
    if (*header_len < CK_HEADER)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 12: header length %lu, version %d needs at least %d",
                       r->path, (unsigned long)*header_len, CK_VERSION, CK_HEADER);
    return BPROP_OK;
}

/* Header plus any later header bytes this version does not know (they count in the CRC). */
static bprop_status read_header(bp_crc_reader *r, uint32_t header_len, ck_header *h, bprop_error *err)
{
    if ((uint64_t)header_len + CK_PREFIX > r->size)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated: header length %lu, file of %llu bytes",
                       r->path, (unsigned long)header_len, (unsigned long long)r->size);
    unsigned char buf[CK_HEADER];
    bprop_status st = bp_crc_read(r, buf, CK_HEADER, "the header", err);
    unsigned char skip[256];
    for (uint32_t left = header_len - CK_HEADER; st == BPROP_OK && left > 0;) {
        size_t k = left < sizeof skip ? left : sizeof skip;
        st = bp_crc_read(r, skip, k, "the header", err);
        left -= (uint32_t)k;
    }
    return st == BPROP_OK ? decode_header(buf, r->path, h, err) : st;
}

/* Sizes of the body parts, and that the file holds exactly them, before any allocation. */
static bprop_status check_extent(bp_crc_reader *r, const ck_header *h, size_t size[3], uint64_t *need,
                                 bprop_error *err)
{
    unsigned long long in = h->inputs, hid = h->hidden, cl = h->classes;
    bprop_layout l;
    if (!in || !hid || !cl || !to_size(in, &size[0]) || !to_size(hid, &size[1]) || !to_size(cl, &size[2]) ||
        bprop_layout_make(size[0], size[1], size[2], (int)h->has_bias, &l) != BPROP_OK)
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset 16: model sizes %llu-%llu-%llu are zero or too large",
                       r->path, in, hid, cl);
    /* n_train and n_records come straight from the file: every product and sum is checked. */
    uint64_t floats = 2 * (uint64_t)l.total + (h->has_std ? 2 * (uint64_t)size[0] : 0), n = 0, t;
    int over = __builtin_mul_overflow(floats, 4, &n) ||
               __builtin_mul_overflow(h->n_train, 8, &t) || __builtin_add_overflow(n, t, &n) ||
               __builtin_mul_overflow(h->n_records, CK_RECORD, &t) || __builtin_add_overflow(n, t, &n) ||
               __builtin_add_overflow(n, h->settings_len + 4 + r->pos, &n);
    if (over || n > r->size)
        return bp_fail(err, over ? BPROP_E_SIZE : BPROP_E_FORMAT, "%s: truncated, or wrong sizes in "
                       "the header: model %llu-%llu-%llu, %llu samples, %llu epoch records and %llu "
                       "settings bytes need a %s%llu-byte file, the file has %llu bytes", r->path, in,
                       hid, cl, (unsigned long long)h->n_train, (unsigned long long)h->n_records,
                       (unsigned long long)h->settings_len, over ? "more than " : "",
                       over ? (unsigned long long)UINT64_MAX : (unsigned long long)n,
                       (unsigned long long)r->size);
    *need = n;
    return BPROP_OK;
}

static void decode_record(const unsigned char *buf, bprop_epoch_record *r)
{
    bp_cursor c = {(unsigned char *)buf, 0};
    r->epoch = bp_get_u64(&c);
    r->steps = bp_get_u64(&c);
    r->threads = bp_get_i32(&c);
    c.pos += 4;
    double *v[10] = {&r->train_loss, &r->train_acc, &r->test_loss, &r->test_acc, &r->val_loss,
                     &r->val_acc, &r->samples_per_s, &r->seconds, &r->reduce_seconds, &r->lr};
    for (int i = 0; i < 10; i++)
        *v[i] = bp_get_f64(&c);
    for (int t = 0; t < BPROP_TENSORS; t++)
        r->grad_norm[t] = bp_get_f64(&c);
}

static bprop_status read_records(bp_crc_reader *r, ck_owned *o, bprop_error *err)
{
    unsigned char buf[CK_RECORD];
    for (size_t i = 0; i < o->ck.n_records; i++) {
        bprop_status st = bp_crc_read(r, buf, sizeof buf, "the epoch records", err);
        if (st != BPROP_OK)
            return st;
        decode_record(buf, &o->records[i]);
    }
    return BPROP_OK;
}

static bprop_status read_settings(bp_crc_reader *r, ck_owned *o, size_t len, bprop_error *err)
{
    uint64_t at = r->pos;
    for (size_t done = 0; done < len; done += CK_CHUNK) {
        bprop_status st = bp_crc_read(r, o->settings + done, len - done < CK_CHUNK ? len - done : CK_CHUNK,
                             "the settings", err);
        if (st != BPROP_OK)
            return st;
    }
    o->settings[len] = '\0';
    if (strlen(o->settings) != len)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %llu: NUL byte in the settings text",
                       r->path, (unsigned long long)(at + strlen(o->settings)));
    return BPROP_OK;
}

/* Owned storage for everything the body holds. */
static bprop_status allocate(bp_crc_reader *r, const ck_header *h, const size_t size[3], ck_owned **out,
                             bprop_error *err)
{
    ck_owned *o = calloc(1, sizeof *o);
    if (!o)
        return bp_fail(err, BPROP_E_NOMEM, "%s: cannot allocate the checkpoint", r->path);
    *out = o;
    o->ck = h->ck;
    bprop_status st = bprop_model_create(size[0], size[1], size[2], (int)h->has_bias, 0, &o->ck.model, err);
    if (st != BPROP_OK)
        return st;
    size_t total = o->ck.model->layout.total, n = (size_t)h->n_train;
    o->velocity = bp_alloc(total, sizeof(float));
    o->perm = bp_alloc(n, sizeof(size_t));
    o->records = h->n_records ? calloc((size_t)h->n_records, sizeof *o->records) : NULL;
    o->settings = malloc((size_t)h->settings_len + 1);
    float *mean = h->has_std ? bp_alloc(size[0], sizeof(float)) : NULL;
    if (!o->velocity || !o->perm || (h->n_records && !o->records) || !o->settings ||
        (h->has_std && (!mean || bprop_model_set_standardization(o->ck.model, mean, mean) != BPROP_OK))) {
        bp_free(mean);
        return bp_fail(err, BPROP_E_NOMEM, "%s: cannot allocate the checkpoint's %zu parameters and "
                       "%zu samples", r->path, total, n);
    }
    bp_free(mean);
    o->ck.n_records = (size_t)h->n_records;
    return BPROP_OK;
}

static bprop_status read_body(bp_crc_reader *r, ck_owned *o, size_t settings_len, bprop_error *err)
{
    bprop_model *m = o->ck.model;
    bprop_status st = bp_crc_read_floats(r, m->params, m->layout.total, "the parameters", err);
    if (st == BPROP_OK && m->std_mean)
        st = bp_crc_read_floats(r, m->std_mean, m->inputs, "std_mean", err);
    if (st == BPROP_OK && m->std_mean)
        st = bp_crc_read_floats(r, m->std_scale, m->inputs, "std_scale", err);
    if (st == BPROP_OK)
        st = bp_crc_read_floats(r, o->velocity, m->layout.total, "the momentum", err);
    if (st == BPROP_OK)
        st = rd_perm(r, o->perm, (size_t)o->ck.state.n_train, err);
    if (st == BPROP_OK)
        st = read_records(r, o, err);
    if (st == BPROP_OK)
        st = read_settings(r, o, settings_len, err);
    return st;
}

static bprop_status read_trailer(bp_crc_reader *r, uint64_t need, bprop_error *err)
{
    uint32_t computed = r->crc;
    unsigned char buf[4];
    bprop_status st = bp_crc_read(r, buf, sizeof buf, "the checksum", err);
    if (st != BPROP_OK)
        return st;
    bp_cursor c = {buf, 0};
    uint32_t stored = bp_get_u32(&c);
    if (stored != computed)
        return bp_fail(err, BPROP_E_CHECKSUM, "%s: byte offset %llu: checksum mismatch: stored 0x%08lx, "
                       "computed 0x%08lx", r->path, (unsigned long long)(r->pos - 4),
                       (unsigned long)stored, (unsigned long)computed);
    if (r->size > need || fgetc(r->f) != EOF)
        return bp_fail(err, BPROP_E_FORMAT, "%s: %llu trailing bytes after the checksum at byte offset %llu",
                       r->path, (unsigned long long)(r->size > need ? r->size - need : 1),
                       (unsigned long long)need);
    return BPROP_OK;
}

/* Values the checksum cannot vouch for: finite numbers and a true permutation. */
static bprop_status check_values(const bp_crc_reader *r, ck_owned *o, uint64_t body, bprop_error *err)
{
    const bprop_model *m = o->ck.model;
    size_t total = m->layout.total, at, n = (size_t)o->ck.state.n_train;
    if (nonfinite_at(m->params, total, &at))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: byte offset %llu: parameter %zu is not finite",
                       r->path, (unsigned long long)(body + 4 * (uint64_t)at), at);
    uint64_t std_off = body + 4 * (uint64_t)total;
    if (m->std_mean && (nonfinite_at(m->std_mean, m->inputs, &at) || nonfinite_at(m->std_scale, m->inputs, &at)))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: byte offset %llu or after: standardisation "
                       "statistic %zu is not finite", r->path, (unsigned long long)std_off, at);
    uint64_t vel_off = std_off + (m->std_mean ? 8 * (uint64_t)m->inputs : 0);
    if (nonfinite_at(o->velocity, total, &at))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: byte offset %llu: momentum %zu is not finite",
                       r->path, (unsigned long long)(vel_off + 4 * (uint64_t)at), at);
    uint64_t perm_off = vel_off + 4 * (uint64_t)total;
    unsigned char *seen = calloc(n, 1);
    if (!seen)
        return bp_fail(err, BPROP_E_NOMEM, "%s: cannot check the permutation", r->path);
    for (at = 0; at < n && o->perm[at] < n && !seen[o->perm[at]]; at++)
        seen[o->perm[at]] = 1;
    free(seen);
    if (at < n)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %llu: permutation entry %zu is %s", r->path,
                       (unsigned long long)(perm_off + 8 * (uint64_t)at), at,
                       o->perm[at] < n ? "a repeated sample" : "beyond the training set");
    return BPROP_OK;
}

static bprop_status load_stream(bp_crc_reader *r, bprop_checkpoint **out, bprop_error *err)
{
    uint32_t header_len = 0;
    bprop_status st = read_prefix(r, &header_len, err);
    ck_header h;
    if (st == BPROP_OK)
        st = read_header(r, header_len, &h, err);
    size_t size[3] = {0, 0, 0};
    uint64_t need = 0;
    if (st == BPROP_OK)
        st = check_extent(r, &h, size, &need, err);
    if (st != BPROP_OK)
        return st;
    uint64_t body = r->pos;
    ck_owned *o = NULL;
    h.ck.state.n_train = (size_t)h.n_train; /* fits: the file holds 8 bytes per sample */
    st = allocate(r, &h, size, &o, err);
    if (st == BPROP_OK)
        st = read_body(r, o, (size_t)h.settings_len, err);
    if (st == BPROP_OK)
        st = read_trailer(r, need, err);
    if (st == BPROP_OK)
        st = check_values(r, o, body, err);
    if (st != BPROP_OK) {
        bprop_checkpoint_free(o ? &o->ck : NULL);
        return st;
    }
    bprop_checkpoint *ck = &o->ck;
    ck->model->info = h.info;
    ck->model->info.config = ck->config;
    ck->state.perm = o->perm;
    ck->state.velocity = o->velocity;
    ck->state.params = ck->model->layout.total;
    ck->records = o->records;
    ck->settings = o->settings;
    *out = ck;
    return BPROP_OK;
}

bprop_status bprop_checkpoint_load(const char *path, bprop_checkpoint **out, bprop_error *err)
{
    if (!path || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_checkpoint_load: NULL argument");
    bp_crc_reader r;
    bprop_status status = bp_crc_reader_open(&r, path, err);
    if (status != BPROP_OK)
        return status;
    status = load_stream(&r, out, err);
    fclose(r.f);
    return status;
}
