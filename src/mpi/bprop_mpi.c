/* bprop_mpi.c: bprop_comm over an MPI communicator, and the collective checks a distributed
 * program needs (agreeing on failures, comparing data across ranks). */
#include "bprop_mpi.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Elements per MPI call: counts are ints, and some implementations misbehave near INT_MAX. */
#define MPI_PIECE ((size_t)INT_MAX / 2)

typedef struct mpi_ctx {
    MPI_Comm comm; /* owned duplicate, errors returned */
    int *runs;     /* (2, size) owned: the runs' counts, then their offsets, as MPI's ints */
    void *tmp;     /* owned: one run received (sum_scatter_f32, sum_scatter_i64), cap bytes */
    size_t cap;
} mpi_ctx;

/* The same failure record as the core library's, which keeps its helper private. */
static bprop_status fail(bprop_error *err, bprop_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bprop_status fail(bprop_error *err, bprop_status st, const char *fmt, ...)
{
    if (err) {
        err->status = st;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return st;
}

static bprop_status fail_mpi(bprop_error *err, const char *call, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", code);
    return fail(err, BPROP_E_COMM, "%s failed: %s", call, text);
}

static int allreduce(void *ctx, void *buf, size_t n, size_t elem, MPI_Datatype type, MPI_Op op)
{
    MPI_Comm comm = ((const mpi_ctx *)ctx)->comm;
    char *p = buf;
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < MPI_PIECE ? n - done : MPI_PIECE;
        int rc = MPI_Allreduce(MPI_IN_PLACE, p + done * elem, (int)piece, type, op, comm);
        if (rc != MPI_SUCCESS)
            return rc;
        done += piece;
    }
    return 0;
}

static int sum_i64(void *ctx, int64_t *buf, size_t n)
{
    return allreduce(ctx, buf, n, sizeof *buf, MPI_INT64_T, MPI_SUM);
}

static int sum_f64(void *ctx, double *buf, size_t n)
{
    return allreduce(ctx, buf, n, sizeof *buf, MPI_DOUBLE, MPI_SUM);
}

/* Floats summed as floats: for 2 ranks the correctly rounded sum of the two values (what a sum
 * in double rounded back to float gives); for more, the MPI library's order, the same on every
 * rank. */
static int sum_f32(void *ctx, float *buf, size_t n)
{
    return allreduce(ctx, buf, n, sizeof *buf, MPI_FLOAT, MPI_SUM);
}

/* MPI_Allgather of n floats a rank, in pieces: a piece's receive type is the piece laid out
 * with the stride of a whole rank's values. */
static int gather_f32(void *ctx, const float *mine, float *all, size_t n)
{
    MPI_Comm comm = ((const mpi_ctx *)ctx)->comm;
    if (n <= MPI_PIECE)
        return MPI_Allgather(mine, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, comm);
    for (size_t done = 0; done < n;) {
        size_t piece = n - done < MPI_PIECE ? n - done : MPI_PIECE;
        MPI_Datatype run, strided;
        int rc = MPI_Type_contiguous((int)piece, MPI_FLOAT, &run);
        if (rc != MPI_SUCCESS)
            return rc;
        rc = MPI_Type_create_resized(run, 0, (MPI_Aint)(n * sizeof(float)), &strided);
        MPI_Type_free(&run);
        if (rc != MPI_SUCCESS)
            return rc;
        rc = MPI_Type_commit(&strided);
        if (rc == MPI_SUCCESS)
            rc = MPI_Allgather(mine + done, (int)piece, MPI_FLOAT, all + done, 1, strided, comm);
        MPI_Type_free(&strided);
        if (rc != MPI_SUCCESS)
            return rc;
        done += piece;
    }
    return 0;
}

static int max_f64(void *ctx, double *buf, size_t n)
{
    return allreduce(ctx, buf, n, sizeof *buf, MPI_DOUBLE, MPI_MAX);
}

/* The runs of sum_scatter_f32 and gather_runs_f32 as MPI counts and displacements; 0 when a
 * run or an offset does not fit an int. */
static int set_runs(mpi_ctx *c, const size_t *counts)
{
    int size = 0;
    MPI_Comm_size(c->comm, &size);
    size_t at = 0;
    for (int r = 0; r < size; r++) {
        if (counts[r] > (size_t)INT_MAX || at > (size_t)INT_MAX)
            return 0;
        c->runs[r] = (int)counts[r];
        c->runs[size + r] = (int)at;
        at += counts[r];
    }
    return 1;
}

/* Room for one run received from the left neighbour, n bytes; 0 when out of memory. */
static int reserve(mpi_ctx *c, size_t n)
{
    if (n <= c->cap)
        return 1;
    void *t = realloc(c->tmp, n);
    if (!t)
        return 0;
    c->tmp = t;
    c->cap = n;
    return 1;
}

/* This rank's place in a ring over the communicator, for the runs of counts. */
typedef struct ring {
    int rank, size, right, left; /* right sends to rank + 1, left receives from rank - 1 */
} ring;

/* The ring of a transfer of runs `counts`, their offsets in c->runs; 0 when a run is too long. */
static int ring_begin(mpi_ctx *c, const size_t *counts, ring *g)
{
    MPI_Comm_rank(c->comm, &g->rank);
    MPI_Comm_size(c->comm, &g->size);
    g->right = (g->rank + 1) % g->size;
    g->left = (g->rank + g->size - 1) % g->size;
    return set_runs(c, counts);
}

/* dst += the n received values of a reduce-scatter's step. */
typedef void (*add_fn)(void *dst, const void *src, size_t n);

static void add_f32(void *dst, const void *src, size_t n)
{
    float *restrict d = dst;
    const float *restrict v = src;
    for (size_t i = 0; i < n; i++)
        d[i] = d[i] + v[i];
}

static void add_i64(void *dst, const void *src, size_t n)
{
    int64_t *restrict d = dst;
    const int64_t *restrict v = src;
    for (size_t i = 0; i < n; i++)
        d[i] += v[i];
}

/* A ring: in step k (of size - 1) rank r sends run (r - k - 1) mod size to rank r + 1 and adds
 * run (r - k - 2) mod size from rank r - 1 to its own, so that it ends with the whole sum of
 * run r. Each run's sum is a chain of additions in ring order: for floats on 2 ranks a single
 * a + b, the bits of MPI_Allreduce's (float addition commutes); for int64 exact in any order.
 * Hand-made MPI_Sendrecv: Open MPI's MPI_Reduce_scatter and MPI_Allgatherv took longer than
 * the allreduce they replace. */
static int ring_sum_scatter(mpi_ctx *c, char *buf, const size_t *counts, MPI_Datatype type,
                            size_t elem, add_fn add)
{
    ring g;
    if (!ring_begin(c, counts, &g))
        return 1;
    const int rank = g.rank, size = g.size;
    for (int k = 0; k < size - 1; k++) {
        const int out = ((rank - k - 1) % size + size) % size, in = ((rank - k - 2) % size + size) % size;
        if (!reserve(c, counts[in] * elem))
            return 1;
        int rc = MPI_Sendrecv(buf + (size_t)c->runs[size + out] * elem, c->runs[out], type, g.right, 0,
                              c->tmp, c->runs[in], type, g.left, 0, c->comm, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return rc;
        add(buf + (size_t)c->runs[size + in] * elem, c->tmp, counts[in]);
    }
    return 0;
}

static int sum_scatter_f32(void *ctx, float *buf, const size_t *counts)
{
    return ring_sum_scatter(ctx, (char *)buf, counts, MPI_FLOAT, sizeof *buf, add_f32);
}

static int sum_scatter_i64(void *ctx, int64_t *buf, const size_t *counts)
{
    return ring_sum_scatter(ctx, (char *)buf, counts, MPI_INT64_T, sizeof *buf, add_i64);
}

/* A ring as sum_scatter_f32's: in step k rank r passes on run (r - k) mod size, whole. */
static int gather_runs_f32(void *ctx, float *buf, const size_t *counts)
{
    mpi_ctx *c = ctx;
    ring g;
    if (!ring_begin(c, counts, &g))
        return 1;
    const int rank = g.rank, size = g.size;
    for (int k = 0; k < size - 1; k++) {
        const int out = ((rank - k) % size + size) % size, in = ((rank - k - 1) % size + size) % size;
        int rc = MPI_Sendrecv(buf + c->runs[size + out], c->runs[out], MPI_FLOAT, g.right, 1,
                              buf + c->runs[size + in], c->runs[in], MPI_FLOAT, g.left, 1, c->comm,
                              MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return rc;
    }
    return 0;
}

/* Pairwise exchange: in step k (1 .. size - 1) rank r sends its values of run (r + k) mod size
 * to that rank and receives its own run's values from rank (r - k) mod size; no reduction, so
 * the order is free. */
static int runs_to_owners_f32(void *ctx, const float *mine, float *out, const size_t *counts)
{
    mpi_ctx *c = ctx;
    ring g;
    if (!ring_begin(c, counts, &g))
        return 1;
    const int rank = g.rank, size = g.size, n = c->runs[rank];
    memcpy(out + (size_t)rank * (size_t)n, mine + c->runs[size + rank], (size_t)n * sizeof *out);
    for (int k = 1; k < size; k++) {
        const int to = (rank + k) % size, from = (rank - k + size) % size;
        int rc = MPI_Sendrecv(mine + c->runs[size + to], c->runs[to], MPI_FLOAT, to, 2,
                              out + (size_t)from * (size_t)n, n, MPI_FLOAT, from, 2, c->comm,
                              MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
            return rc;
    }
    return 0;
}

bprop_status bprop_mpi_comm_init(MPI_Comm comm, bprop_comm *out, bprop_error *err)
{
    if (!out)
        return fail(err, BPROP_E_ARG, "bprop_mpi_comm_init: NULL argument");
    memset(out, 0, sizeof *out);
    /* Allocate first, but take part in the collective dup either way, so a rank that ran out of
     * memory does not leave the others waiting. */
    mpi_ctx *c = malloc(sizeof *c);
    MPI_Comm dup = MPI_COMM_NULL;
    int rc = MPI_Comm_dup(comm, &dup);
    if (rc != MPI_SUCCESS) {
        free(c);
        return fail_mpi(err, "MPI_Comm_dup", rc);
    }
    if (!c) {
        MPI_Comm_free(&dup);
        return fail(err, BPROP_E_NOMEM, "cannot allocate the communicator");
    }
    MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
    c->comm = dup;
    MPI_Comm_rank(dup, &out->rank);
    MPI_Comm_size(dup, &out->size);
    out->ctx = c;
    out->sum_i64 = sum_i64;
    out->sum_f64 = sum_f64;
    out->max_f64 = max_f64;
    out->sum_f32 = sum_f32;
    out->gather_f32 = gather_f32;
    /* Without room for the runs the update stays whole on every rank, as it was. */
    c->tmp = NULL;
    c->cap = 0;
    c->runs = malloc(2 * (size_t)out->size * sizeof *c->runs);
    if (c->runs) {
        out->sum_scatter_f32 = sum_scatter_f32;
        out->gather_runs_f32 = gather_runs_f32;
        out->sum_scatter_i64 = sum_scatter_i64;
        out->runs_to_owners_f32 = runs_to_owners_f32;
    }
    return BPROP_OK;
}

void bprop_mpi_comm_free(bprop_comm *c)
{
    if (!c || !c->ctx)
        return;
    mpi_ctx *m = c->ctx;
    MPI_Comm_free(&m->comm);
    free(m->runs);
    free(m->tmp);
    free(m);
    memset(c, 0, sizeof *c);
}

MPI_Comm bprop_mpi_comm_get(const bprop_comm *c)
{
    return c && c->ctx ? ((const mpi_ctx *)c->ctx)->comm : MPI_COMM_NULL;
}

bprop_status bprop_mpi_trainer_create(bprop_model *m, const bprop_train_config *c,
                                      size_t n_train, const bprop_comm *comm,
                                      bprop_trainer **out, bprop_error *err)
{
    bprop_status st = bprop_trainer_create_comm(m, c, n_train, comm, out, err);
    if (st == BPROP_OK)
        m->info.ranks = comm ? comm->size : 1;
    return st;
}

/* What the lowest failing rank sends to everyone. */
typedef struct failure {
    int status;
    char message[BPROP_ERROR_MAX];
} failure;

bprop_status bprop_mpi_agree(MPI_Comm comm, bprop_status st, bprop_error *err)
{
    int rank = 0, size = 1;
    MPI_Comm_rank(comm, &rank);
    MPI_Comm_size(comm, &size);
    /* Lowest failing rank (size: none) and how many failed. */
    int first = st != BPROP_OK ? rank : size, count = st != BPROP_OK;
    int rc = MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm);
    if (rc == MPI_SUCCESS)
        rc = MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_INT, MPI_SUM, comm);
    if (rc != MPI_SUCCESS)
        return fail_mpi(err, "MPI_Allreduce", rc);
    if (first == size)
        return BPROP_OK;
    failure f = {.status = st};
    if (rank == first)
        snprintf(f.message, sizeof f.message, "%s",
                 err && err->message[0] ? err->message : bprop_strerror(st));
    rc = MPI_Bcast(&f, (int)sizeof f, MPI_BYTE, first, comm);
    if (rc != MPI_SUCCESS)
        return fail_mpi(err, "MPI_Bcast", rc);
    f.message[sizeof f.message - 1] = '\0';
    if (count > 1)
        return fail(err, (bprop_status)f.status, "rank %d: %s (%d of %d ranks failed)", first,
                    f.message, count, size);
    return fail(err, (bprop_status)f.status, "rank %d: %s", first, f.message);
}

/* The library's data hash, so that what ranks compare is what checkpoints record. */
uint64_t bprop_mpi_dataset_hash(const bprop_dataset *d) { return bprop_dataset_hash(d); }

bprop_status bprop_mpi_check_same(MPI_Comm comm, uint64_t value, const char *what,
                                  bprop_error *err)
{
    uint64_t root = value;
    int rc = MPI_Bcast(&root, 1, MPI_UINT64_T, 0, comm);
    if (rc != MPI_SUCCESS)
        return fail_mpi(err, "MPI_Bcast", rc);
    bprop_error mine = {0};
    bprop_status st = BPROP_OK;
    if (value != root)
        st = fail(&mine, BPROP_E_MISMATCH, "%s differs from rank 0's (hash %016llx, rank 0 has "
                  "%016llx)", what ? what : "value", (unsigned long long)value,
                  (unsigned long long)root);
    st = bprop_mpi_agree(comm, st, &mine);
    if (st != BPROP_OK && err)
        *err = mine;
    return st;
}

bprop_status bprop_mpi_check_dataset(MPI_Comm comm, const bprop_dataset *d, const char *what,
                                     bprop_error *err)
{
    return bprop_mpi_check_same(comm, bprop_dataset_hash(d), what ? what : "data", err);
}
