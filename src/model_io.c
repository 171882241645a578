/* model_io.c: the bprop model file format (versioned, little-endian, CRC-32 checked). */
#define _POSIX_C_SOURCE 200809L

#include "atomic_file.h"
#include "crc_file.h"
#include "le_cursor.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/*
 * Model file format, version 1. Every integer and float is little-endian; floats are IEEE-754
 * binary32 stored by their bit pattern, so a save/load round trip is bitwise exact. Offsets are
 * bytes from the start of the file.
 *
 *   offset  size  field
 *   ------  ----  -----------------------------------------------------------------------------
 *        0     8  magic "BPROPMDL"
 *        8     4  u32 format version (1)
 *       12     4  u32 header length H: bytes from offset 16 to the first parameter (408 in v1)
 *   --- header (H bytes from offset 16) ---
 *       16     8  u64 inputs
 *       24     8  u64 hidden
 *       32     8  u64 classes
 *       40     4  u32 has_bias (0 or 1)
 *       44     4  u32 has_standardization (0 or 1)
 *       48     8  u64 config.epochs
 *       56     8  u64 config.batch
 *       64     4  f32 config.lr
 *       68     4  f32 config.momentum
 *       72     4  i32 config.nesterov
 *       76     4  f32 config.weight_decay
 *       80     4  u32 config.schedule (0 constant, 1 step, 2 cosine)
 *       84     8  u64 config.step_epochs
 *       92     4  f32 config.step_gamma
 *       96     4  f32 config.clip_norm
 *      100     8  u64 config.seed
 *      108     4  i32 config.shuffle
 *      112     4  i32 config.threads
 *      116     8  u64 epochs_done
 *      124     8  u64 samples_seen
 *      132     4  i32 threads
 *      136     4  f32 train_loss
 *      140     4  f32 train_acc
 *      144     4  f32 test_loss (NaN when never evaluated)
 *      148     4  f32 test_acc
 *      152     8  i64 created_unix
 *      160     8  i64 saved_unix (the time of this save)
 *      168   256  data: NUL-terminated string, zero-padded
 *      424        (end of the v1 header; a reader skips any further header bytes, H > 408, so
 *                 later writers can append fields without changing the version)
 *   --- appended in bprop 0.2 (H = 440); a file with H = 408 reads as isa "", ranks 0,
 *       parallel auto ---
 *      424    16  isa: kernel set of the last run, NUL-terminated, zero-padded
 *      440     4  u32 ranks: processes of the last run
 *      444     4  u32 config.parallel (0 auto, 1 data, 2 hidden)
 *      448     4  u32 config.reproducible (0 or 1)
 *      452     4  reserved, zero
 *   --- body, from P = 16 + H ---
 *        P   4*T  f32 parameters, T = layout.total: W1 (inputs, hidden) | b1 (hidden)
 *                 | W2 (hidden, classes) | b2 (classes); no biases when has_bias = 0
 *            4*I  f32 std_mean (I = inputs), only when has_standardization = 1
 *            4*I  f32 std_scale, only when has_standardization = 1
 *            4    u32 CRC-32 (zlib's crc32) of every byte before it
 *   (end of file: any byte after the checksum is an error)
 *
 * Loading checks, in order: magic, version (before the checksum, since another version may lay
 * out its bytes differently), header fields, sizes against the file length (before anything is
 * allocated), the checksum, trailing bytes, then that every parameter is finite.
 */

#define MF_MAGIC "BPROPMDL"
enum {
    MF_MAGIC_LEN = 8,
    MF_VERSION = 1,
    MF_PREFIX = 16,     /* magic, version, header length */
    MF_HEADER_V1 = 408, /* header bytes this version needs */
    MF_HEADER_EXT = 32, /* bytes appended after the v1 header (isa, ranks, parallel) */
    MF_HEADER = MF_HEADER_V1 + MF_HEADER_EXT, /* header bytes this build writes */
    MF_ISA_LEN = 16,
    MF_DATA_LEN = 256,  /* bytes of the provenance data string */
    MF_CHUNK = 4096,    /* floats converted per I/O call */
};

/* ---- little-endian encoding ------------------------------------------------------------- */

/* ---- validation shared by save and load ------------------------------------------------- */

/* Where a non-finite value sits: which = tensor (0..3), BPROP_TENSORS for std_mean,
 * BPROP_TENSORS + 1 for std_scale; index within it. */
typedef struct mf_bad {
    int which;
    size_t index;
    float value;
} mf_bad;

static int first_nonfinite_in(const float *p, size_t n, size_t *index)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) {
            *index = i;
            return 1;
        }
    return 0;
}

static int first_nonfinite(const bprop_model *m, mf_bad *bad)
{
    for (int t = 0; t < BPROP_TENSORS; t++)
        if (first_nonfinite_in(m->params + m->layout.offset[t], m->layout.count[t], &bad->index)) {
            bad->which = t;
            bad->value = m->params[m->layout.offset[t] + bad->index];
            return 1;
        }
    const float *std[2] = {m->std_mean, m->std_scale};
    for (int s = 0; s < 2; s++)
        if (std[s] && first_nonfinite_in(std[s], m->inputs, &bad->index)) {
            bad->which = BPROP_TENSORS + s;
            bad->value = std[s][bad->index];
            return 1;
        }
    return 0;
}

static const char *bad_name(const mf_bad *bad)
{
    if (bad->which < BPROP_TENSORS)
        return bprop_tensor_name((bprop_tensor)bad->which);
    return bad->which == BPROP_TENSORS ? "std_mean" : "std_scale";
}

/* Byte offset of a bad value in the file whose body starts at body. */
static uint64_t bad_offset(const bprop_model *m, const mf_bad *bad, uint64_t body)
{
    uint64_t index = bad->index;
    if (bad->which < BPROP_TENSORS)
        index += m->layout.offset[bad->which];
    else
        index += m->layout.total + (uint64_t)(bad->which - BPROP_TENSORS) * m->inputs;
    return body + 4 * index;
}

/* ---- save ------------------------------------------------------------------------------- */

static bprop_status check_model(const bprop_model *m, const char *path, bprop_error *err)
{
    bprop_layout l;
    if (bprop_layout_make(m->inputs, m->hidden, m->classes, m->has_bias != 0, &l) != BPROP_OK)
        return bp_fail(err, BPROP_E_SIZE, "%s: cannot save: model sizes %zu-%zu-%zu are zero or too large",
                       path, m->inputs, m->hidden, m->classes);
    int same = l.total == m->layout.total;
    for (int t = 0; t < BPROP_TENSORS; t++)
        same = same && l.offset[t] == m->layout.offset[t] && l.count[t] == m->layout.count[t];
    if (!same)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the model's layout does not match its sizes %zu-%zu-%zu",
                       path, m->inputs, m->hidden, m->classes);
    if (!m->params || !m->std_mean != !m->std_scale)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the model has no parameters or half its standardisation",
                       path);
    if (!memchr(m->info.data, '\0', sizeof m->info.data))
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: the provenance data string is not NUL-terminated", path);
    if ((int)m->info.config.schedule < 0 || m->info.config.schedule > BPROP_SCHEDULE_COSINE)
        return bp_fail(err, BPROP_E_ARG, "%s: cannot save: unknown learning-rate schedule %d", path,
                       (int)m->info.config.schedule);
    mf_bad bad;
    if (first_nonfinite(m, &bad))
        return bp_fail(err, BPROP_E_NONFINITE, "%s: cannot save: %s[%zu] is %s", path, bad_name(&bad),
                       bad.index, isnan(bad.value) ? "NaN" : "infinite");
    return BPROP_OK;
}

/* Magic, version, header length and the v1 header; saved_unix goes to the file only, so that
 * save can take a const model. */
static void encode_header(const bprop_model *m, int64_t saved_unix, unsigned char *buf)
{
    memcpy(buf, MF_MAGIC, MF_MAGIC_LEN);
    bp_cursor c = {buf, MF_MAGIC_LEN};
    bp_put_u32(&c, MF_VERSION);
    bp_put_u32(&c, MF_HEADER);
    bp_put_u64(&c, m->inputs);
    bp_put_u64(&c, m->hidden);
    bp_put_u64(&c, m->classes);
    bp_put_u32(&c, m->has_bias ? 1 : 0);
    bp_put_u32(&c, m->std_mean ? 1 : 0);
    const bprop_train_config *k = &m->info.config;
    bp_put_u64(&c, k->epochs);
    bp_put_u64(&c, k->batch);
    bp_put_f32(&c, k->lr);
    bp_put_f32(&c, k->momentum);
    bp_put_u32(&c, (uint32_t)k->nesterov);
    bp_put_f32(&c, k->weight_decay);
    bp_put_u32(&c, (uint32_t)k->schedule);
    bp_put_u64(&c, k->step_epochs);
    bp_put_f32(&c, k->step_gamma);
    bp_put_f32(&c, k->clip_norm);
    bp_put_u64(&c, k->seed);
    bp_put_u32(&c, (uint32_t)k->shuffle);
    bp_put_u32(&c, (uint32_t)k->threads);
    const bprop_provenance *p = &m->info;
    bp_put_u64(&c, p->epochs_done);
    bp_put_u64(&c, p->samples_seen);
    bp_put_u32(&c, (uint32_t)p->threads);
    bp_put_f32(&c, p->train_loss);
    bp_put_f32(&c, p->train_acc);
    bp_put_f32(&c, p->test_loss);
    bp_put_f32(&c, p->test_acc);
    bp_put_u64(&c, (uint64_t)p->created_unix);
    bp_put_u64(&c, (uint64_t)saved_unix);
    /* Only the string, zero-padded: bytes after its NUL in the struct are not part of it. */
    memset(buf + c.pos, 0, MF_DATA_LEN + MF_HEADER_EXT);
    memcpy(buf + c.pos, p->data, strlen(p->data));
    c.pos += MF_DATA_LEN;
    memcpy(buf + c.pos, p->isa, strnlen(p->isa, MF_ISA_LEN - 1));
    c.pos += MF_ISA_LEN;
    bp_put_u32(&c, (uint32_t)p->ranks);
    bp_put_u32(&c, (uint32_t)k->parallel);
    bp_put_u32(&c, k->reproducible ? 1 : 0);
}

/* Write the whole file to a; returns the errno of the first failed write, 0 if none. */
static int write_model(FILE *f, const bprop_model *m, const unsigned char *head)
{
    bp_crc_writer w;
    bp_crc_writer_init(&w, f);
    bp_crc_write(&w, head, MF_PREFIX + MF_HEADER);
    bp_crc_write_floats(&w, m->params, m->layout.total);
    if (m->std_mean) {
        bp_crc_write_floats(&w, m->std_mean, m->inputs);
        bp_crc_write_floats(&w, m->std_scale, m->inputs);
    }
    return bp_crc_write_trailer(&w);
}

bprop_status bprop_model_save(const bprop_model *m, const char *path, bprop_error *err)
{
    return bprop_model_save_notify(m, path, NULL, NULL, err);
}

bprop_status bprop_model_save_notify(const bprop_model *m, const char *path,
                                     bprop_tempfile_fn on_temp, void *user, bprop_error *err)
{
    if (!m || !path)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_save: NULL argument");
    bprop_status st = check_model(m, path, err);
    if (st != BPROP_OK)
        return st;
    unsigned char head[MF_PREFIX + MF_HEADER];
    encode_header(m, (int64_t)time(NULL), head);
    bp_atomic a;
    st = bp_atomic_open_notify(&a, path, on_temp, user, err);
    if (st != BPROP_OK)
        return st;
    return bp_atomic_commit(&a, write_model(a.f, m, head), err);
}

/* ---- load ------------------------------------------------------------------------------- */

/* Magic, version and header length. */
static bprop_status read_prefix(bp_crc_reader *r, uint32_t *header_len, bprop_error *err)
{
    unsigned char buf[MF_PREFIX];
    size_t got = fread(buf, 1, MF_MAGIC_LEN, r->f);
    if (memcmp(buf, MF_MAGIC, got) != 0)
        return bp_fail(err, BPROP_E_FORMAT, "%s: not a bprop model file (bad magic)", r->path);
    r->crc = bp_crc_update(r->crc, buf, got);
    r->pos = got;
    if (got < MF_MAGIC_LEN)
        return bp_fail(err, BPROP_E_FORMAT, "%s: truncated at byte offset %zu (reading the magic)", r->path, got);
    bprop_status st = bp_crc_read(r, buf + MF_MAGIC_LEN, MF_PREFIX - MF_MAGIC_LEN, "the format version", err);
    if (st != BPROP_OK)
        return st;
    uint32_t version = bp_le_u32(buf + 8);
    if (version != MF_VERSION)
        return bp_fail(err, BPROP_E_VERSION, "%s: format version %lu, this build reads version %d", r->path,
                       (unsigned long)version, MF_VERSION);
    *header_len = bp_le_u32(buf + 12);
    if (*header_len < MF_HEADER_V1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 12: header length %lu, version %d needs at least %d",
                       r->path, (unsigned long)*header_len, MF_VERSION, MF_HEADER_V1);
    return BPROP_OK;
}

/* The header as stored, before its sizes are trusted. */
typedef struct mf_header {
    uint64_t inputs, hidden, classes;
    uint32_t has_bias, has_std;
    bprop_provenance info;
} mf_header;

static int to_size(uint64_t v, size_t *out)
{
    if ((uint64_t)(size_t)v != v)
        return 0;
    *out = (size_t)v;
    return 1;
}

/* Decode the v1 header (buf holds its MF_HEADER_V1 bytes, which start at file offset 16). */
static bprop_status decode_header(const unsigned char *buf, const char *path, mf_header *h, bprop_error *err)
{
    bp_cursor c = {(unsigned char *)buf, 0};
    h->inputs = bp_get_u64(&c);
    h->hidden = bp_get_u64(&c);
    h->classes = bp_get_u64(&c);
    h->has_bias = bp_get_u32(&c);
    h->has_std = bp_get_u32(&c);
    if (h->has_bias > 1 || h->has_std > 1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 40: flags %lu, %lu (has_bias, has_standardization) must be 0 or 1",
                       path, (unsigned long)h->has_bias, (unsigned long)h->has_std);
    memset(&h->info, 0, sizeof h->info);
    bprop_train_config *k = &h->info.config;
    uint64_t epochs = bp_get_u64(&c), batch = bp_get_u64(&c);
    k->lr = bp_get_f32(&c);
    k->momentum = bp_get_f32(&c);
    k->nesterov = bp_get_i32(&c);
    k->weight_decay = bp_get_f32(&c);
    uint32_t schedule = bp_get_u32(&c);
    uint64_t step_epochs = bp_get_u64(&c);
    if (!to_size(epochs, &k->epochs) || !to_size(batch, &k->batch) || !to_size(step_epochs, &k->step_epochs))
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset 48: training settings do not fit this platform's size_t",
                       path);
    if (schedule > BPROP_SCHEDULE_COSINE)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 80: unknown learning-rate schedule %lu", path,
                       (unsigned long)schedule);
    k->schedule = (bprop_schedule)schedule;
    k->step_gamma = bp_get_f32(&c);
    k->clip_norm = bp_get_f32(&c);
    k->seed = bp_get_u64(&c);
    k->shuffle = bp_get_i32(&c);
    k->threads = bp_get_i32(&c);
    bprop_provenance *p = &h->info;
    p->epochs_done = bp_get_u64(&c);
    p->samples_seen = bp_get_u64(&c);
    p->threads = bp_get_i32(&c);
    p->train_loss = bp_get_f32(&c);
    p->train_acc = bp_get_f32(&c);
    p->test_loss = bp_get_f32(&c);
    p->test_acc = bp_get_f32(&c);
    p->created_unix = bp_get_i64(&c);
    p->saved_unix = bp_get_i64(&c);
    const unsigned char *data = buf + c.pos;
    const unsigned char *nul = memchr(data, '\0', MF_DATA_LEN);
    if (!nul)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset %zu: data string is not NUL-terminated", path,
                       MF_PREFIX + c.pos);
    memcpy(p->data, data, (size_t)(nul - data));
    return BPROP_OK;
}

/* The appended fields (ext holds their MF_HEADER_EXT bytes, from file offset 424). */
static bprop_status decode_ext(const unsigned char *ext, const char *path, mf_header *h, bprop_error *err)
{
    if (!memchr(ext, '\0', MF_ISA_LEN))
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 424: isa string is not NUL-terminated", path);
    memcpy(h->info.isa, ext, MF_ISA_LEN);
    bp_cursor c = {(unsigned char *)ext, MF_ISA_LEN};
    h->info.ranks = bp_get_i32(&c);
    uint32_t parallel = bp_get_u32(&c);
    if (parallel > BPROP_PARALLEL_HIDDEN)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 444: unknown parallel mode %lu", path,
                       (unsigned long)parallel);
    h->info.config.parallel = (bprop_parallel)parallel;
    uint32_t reproducible = bp_get_u32(&c);
    if (reproducible > 1)
        return bp_fail(err, BPROP_E_FORMAT, "%s: byte offset 448: reproducible flag %lu must be 0 or 1",
                       path, (unsigned long)reproducible);
    h->info.config.reproducible = (int)reproducible;
    return BPROP_OK;
}

/* Header plus any later header bytes this version does not know, which count in the CRC. */
static bprop_status read_header(bp_crc_reader *r, uint32_t header_len, mf_header *h, bprop_error *err)
{
    unsigned char buf[MF_HEADER];
    const uint32_t known = header_len < MF_HEADER ? MF_HEADER_V1 : MF_HEADER;
    bprop_status st = bp_crc_read(r, buf, known, "the header", err);
    if (st != BPROP_OK)
        return st;
    unsigned char skip[256];
    for (uint32_t left = header_len - known; left > 0;) {
        size_t k = left < sizeof skip ? left : sizeof skip;
        st = bp_crc_read(r, skip, k, "the header", err);
        if (st != BPROP_OK)
            return st;
        left -= (uint32_t)k;
    }
    st = decode_header(buf, r->path, h, err);
    if (st == BPROP_OK && known == MF_HEADER)
        st = decode_ext(buf + MF_HEADER_V1, r->path, h, err);
    return st;
}

/* 1 when the last four bytes of the file are the CRC-32 of all the others: the file is intact
 * as written, so a header that does not fit it carries wrong sizes rather than lost bytes. */
static int whole_file_crc_ok(bp_crc_reader *r)
{
    if (r->size < 4 || fseek(r->f, 0, SEEK_SET) != 0)
        return 0;
    unsigned char buf[4 * MF_CHUNK];
    uint32_t crc = (uint32_t)crc32(0L, Z_NULL, 0);
    for (uint64_t left = r->size - 4; left > 0;) {
        size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
        if (fread(buf, 1, k, r->f) != k)
            return 0;
        crc = bp_crc_update(crc, buf, k);
        left -= k;
    }
    return fread(buf, 1, 4, r->f) == 4 && bp_le_u32(buf) == crc;
}

/* Check the sizes and that the file holds exactly what they describe, before any allocation. */
static bprop_status check_extent(bp_crc_reader *r, const mf_header *h, size_t size[3], uint64_t *need,
                                 bprop_error *err)
{
    unsigned long long in = h->inputs, hid = h->hidden, cl = h->classes;
    if (!in || !hid || !cl)
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset 16: model sizes %llu-%llu-%llu: a size is zero",
                       r->path, in, hid, cl);
    bprop_layout l;
    if (!to_size(in, &size[0]) || !to_size(hid, &size[1]) || !to_size(cl, &size[2]) ||
        bprop_layout_make(size[0], size[1], size[2], (int)h->has_bias, &l) != BPROP_OK)
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset 16: model sizes %llu-%llu-%llu are too large",
                       r->path, in, hid, cl);
    uint64_t floats = l.total, n;
    if ((h->has_std && __builtin_add_overflow(floats, 2 * (uint64_t)size[0], &floats)) ||
        __builtin_mul_overflow(floats, 4, &n) || __builtin_add_overflow(n, r->pos + 4, &n))
        return bp_fail(err, BPROP_E_SIZE, "%s: byte offset 16: model sizes %llu-%llu-%llu are too large",
                       r->path, in, hid, cl);
    *need = n;
    if (n <= r->size)
        return BPROP_OK;
    if (whole_file_crc_ok(r))
        return bp_fail(err, BPROP_E_SIZE,
                       "%s: byte offset 16: model sizes %llu-%llu-%llu need a %llu-byte file, but the file has %llu bytes",
                       r->path, in, hid, cl, (unsigned long long)n, (unsigned long long)r->size);
    return bp_fail(err, BPROP_E_FORMAT, "%s: truncated at byte offset %llu: the header describes a %llu-byte file",
                   r->path, (unsigned long long)r->size, (unsigned long long)n);
}

/* Standardisation statistics, copied into m. */
static bprop_status read_std(bp_crc_reader *r, bprop_model *m, bprop_error *err)
{
    float *mean = bp_alloc(m->inputs, sizeof(float)), *scale = bp_alloc(m->inputs, sizeof(float));
    bprop_status st = BPROP_OK;
    if (!mean || !scale)
        st = bp_fail(err, BPROP_E_NOMEM, "%s: cannot allocate the standardisation statistics", r->path);
    if (st == BPROP_OK)
        st = bp_crc_read_floats(r, mean, m->inputs, "std_mean", err);
    if (st == BPROP_OK)
        st = bp_crc_read_floats(r, scale, m->inputs, "std_scale", err);
    if (st == BPROP_OK && bprop_model_set_standardization(m, mean, scale) != BPROP_OK)
        st = bp_fail(err, BPROP_E_NOMEM, "%s: cannot allocate the standardisation statistics", r->path);
    bp_free(mean);
    bp_free(scale);
    return st;
}

/* Parameters, standardisation, checksum and end of file. */
static bprop_status read_body(bp_crc_reader *r, bprop_model *m, int has_std, uint64_t need, bprop_error *err)
{
    bprop_status st = bp_crc_read_floats(r, m->params, m->layout.total, "the parameters", err);
    if (st == BPROP_OK && has_std)
        st = read_std(r, m, err);
    if (st != BPROP_OK)
        return st;
    uint32_t computed = r->crc;
    unsigned char buf[4];
    st = bp_crc_read(r, buf, sizeof buf, "the checksum", err);
    if (st != BPROP_OK)
        return st;
    if (bp_le_u32(buf) != computed)
        return bp_fail(err, BPROP_E_CHECKSUM, "%s: byte offset %llu: checksum mismatch: stored 0x%08lx, computed 0x%08lx",
                       r->path, (unsigned long long)(r->pos - 4), (unsigned long)bp_le_u32(buf),
                       (unsigned long)computed);
    if (r->size > need || fgetc(r->f) != EOF)
        return bp_fail(err, BPROP_E_FORMAT, "%s: %llu trailing bytes after the checksum at byte offset %llu",
                       r->path, (unsigned long long)(r->size > need ? r->size - need : 1),
                       (unsigned long long)need);
    return BPROP_OK;
}

static bprop_status load_stream(bp_crc_reader *r, bprop_model **out, bprop_error *err)
{
    uint32_t header_len = 0;
    bprop_status st = read_prefix(r, &header_len, err);
    mf_header h;
    if (st == BPROP_OK)
        st = read_header(r, header_len, &h, err);
    size_t size[3] = {0, 0, 0};
    uint64_t need = 0;
    if (st == BPROP_OK)
        st = check_extent(r, &h, size, &need, err);
    if (st != BPROP_OK)
        return st;
    uint64_t body = r->pos;
    bprop_model *m;
    st = bprop_model_create(size[0], size[1], size[2], (int)h.has_bias, 0, &m, err);
    if (st != BPROP_OK)
        return st;
    st = read_body(r, m, (int)h.has_std, need, err);
    mf_bad bad;
    if (st == BPROP_OK && first_nonfinite(m, &bad))
        st = bp_fail(err, BPROP_E_NONFINITE, "%s: byte offset %llu: %s[%zu] is %s", r->path,
                     (unsigned long long)bad_offset(m, &bad, body), bad_name(&bad), bad.index,
                     isnan(bad.value) ? "NaN" : "infinite");
    if (st != BPROP_OK) {
        bprop_model_free(m);
        return st;
    }
    m->info = h.info;
    *out = m;
    return BPROP_OK;
}

bprop_status bprop_model_load(const char *path, bprop_model **out, bprop_error *err)
{
    if (!path || !out)
        return bp_fail(err, BPROP_E_ARG, "bprop_model_load: NULL argument");
    bp_crc_reader r;
    bprop_status status = bp_crc_reader_open(&r, path, err);
    if (status != BPROP_OK)
        return status;
    status = load_stream(&r, out, err);
    fclose(r.f);
    return status;
}
