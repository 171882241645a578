/* cli_mpi.c: the `bprop-mpi` program: bprop's commands run under MPI; `train` is distributed
 * over the ranks, the other commands run on rank 0 while the others wait for its exit status. */
#define _POSIX_C_SOURCE 200809L
#include "bprop_mpi.h"
#include "cli.h"
#include "runtime.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Per-process state behind the runtime hooks. */
typedef struct mpi_cli {
    bprop_comm comm;
    MPI_Comm mpi;                  /* comm's duplicate of MPI_COMM_WORLD */
    char pending[BPROP_ERROR_MAX]; /* this rank's first unreported runtime-error message */
} mpi_cli;

/* Runtime errors wait for the next agreement; usage errors are the same on every rank (the
 * same command line), so rank 0 prints its own and the others stay silent. */
static void on_message(void *ctx, int usage, const char *text)
{
    mpi_cli *m = ctx;
    if (usage) {
        if (m->comm.rank == 0)
            fputs(text, stderr);
    } else if (!m->pending[0]) {
        snprintf(m->pending, sizeof m->pending, "%s", text[0] ? text : "failed");
    }
}

/* CLI exit codes travel as statuses: usage errors as BPROP_E_ARG (rank 0 printed those
 * already), a runtime error with its new message as BPROP_E_IO, one reported at an earlier
 * agreement (nothing pending) as BPROP_E_CANCELLED. CLI_DONE (help shown) counts as success.
 * 128 + signal (a stop that the ranks agreed on, rank 0 having printed why) is kept. */
static int on_agree(void *ctx, int rc)
{
    mpi_cli *m = ctx;
    bprop_error err = {0};
    bprop_status st = rc <= 0 ? BPROP_OK
                      : rc == CLI_EXIT_USAGE ? BPROP_E_ARG
                      : m->pending[0] ? BPROP_E_IO : BPROP_E_CANCELLED;
    snprintf(err.message, sizeof err.message, "%s", m->pending);
    m->pending[0] = '\0';
    st = bprop_mpi_agree(m->mpi, st, &err);
    if (st == BPROP_OK)
        return rc;
    if (m->comm.rank == 0 && st != BPROP_E_ARG && st != BPROP_E_CANCELLED)
        fprintf(stderr, "bprop: %s\n", err.message);
    if (st == BPROP_E_CANCELLED && rc >= 128)
        return rc;
    return st == BPROP_E_ARG ? CLI_EXIT_USAGE : CLI_EXIT_RUNTIME;
}

/* A failed MPI call leaves this rank's own value; the next agreement reports the failure. */
static int on_max(void *ctx, int value)
{
    mpi_cli *m = ctx;
    int v = value;
    return MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_MAX, m->mpi) == MPI_SUCCESS ? v : value;
}

static int on_same_value(void *ctx, uint64_t value, const char *what)
{
    mpi_cli *m = ctx;
    bprop_error err = {0};
    if (bprop_mpi_check_same(m->mpi, value, what, &err) == BPROP_OK)
        return 0;
    if (m->comm.rank == 0)
        fprintf(stderr, "bprop: %s\n", err.message);
    return CLI_EXIT_RUNTIME;
}

static int on_same_data(void *ctx, const bprop_dataset *d, const char *what)
{
    mpi_cli *m = ctx;
    bprop_error err = {0};
    bprop_status st = bprop_mpi_check_dataset(m->mpi, d, what, &err);
    if (st == BPROP_OK)
        return 0;
    if (m->comm.rank == 0)
        fprintf(stderr, "bprop: %s\n", err.message);
    return CLI_EXIT_RUNTIME;
}

/* "%r" in an argument becomes the rank: per-node copies of the data (train%r.csv), and the tests'
 * way of giving one rank different files. Returns a new argv (caller frees each string and the
 * array) or NULL when out of memory. */
static char **substitute_rank(int argc, char **argv, int rank)
{
    char **out = calloc((size_t)argc + 1, sizeof *out);
    char num[16];
    snprintf(num, sizeof num, "%d", rank);
    for (int i = 0; out && i < argc; i++) {
        size_t hits = 0, len = strlen(argv[i]);
        for (const char *p = argv[i]; (p = strstr(p, "%r")); p += 2)
            hits++;
        char *s = malloc(len + hits * strlen(num) + 1);
        if (!s) {
            for (int k = 0; k < i; k++)
                free(out[k]);
            free(out);
            return NULL;
        }
        char *w = s;
        for (const char *p = argv[i]; *p;) {
            if (p[0] == '%' && p[1] == 'r') {
                w += sprintf(w, "%s", num);
                p += 2;
            } else {
                *w++ = *p++;
            }
        }
        *w = '\0';
        out[i] = s;
    }
    return out;
}

static void free_args(int argc, char **args)
{
    for (int i = 0; args && i < argc; i++)
        free(args[i]);
    free(args);
}

/* Rank 0's exit status to every rank. The others wait without spinning a core (oversubscribed
 * runs share cores with rank 0's threads); a non-blocking broadcast on every rank, since it
 * would not match a blocking one. */
static int share_status(MPI_Comm comm, int rank, int rc)
{
    MPI_Request req;
    int e = MPI_Ibcast(&rc, 1, MPI_INT, 0, comm, &req);
    for (int done = 0; e == MPI_SUCCESS && !done;) {
        e = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (e == MPI_SUCCESS && !done && rank != 0)
            nanosleep(&(struct timespec){0, 2000000}, NULL);
    }
    return e == MPI_SUCCESS || rc ? rc : CLI_EXIT_RUNTIME;
}

/* Layout-independent results need one kernel set on every rank: ranks on different CPUs
 * would pick different ones (and round differently), unless BPROP_ISA names one for all. */
static int same_kernels(const cli_runtime *rt, mpi_cli *m)
{
    char root[32], mine[32];
    snprintf(mine, sizeof mine, "%s", bprop_isa());
    memcpy(root, mine, sizeof root);
    if (MPI_Bcast(root, (int)sizeof root, MPI_CHAR, 0, m->mpi) != MPI_SUCCESS)
        return cli_agree(rt, cli_fail(rt, "MPI_Bcast failed"));
    bprop_error err = {0};
    int rc = 0;
    if (bprop_isa_check(&err) != BPROP_OK)
        rc = cli_fail(rt, "%s", err.message);
    else if (strcmp(root, mine) != 0)
        rc = cli_fail(rt, "kernel set '%s' differs from rank 0's '%s' (CPUs of different kinds): set "
                          "BPROP_ISA to one that every rank supports, e.g. BPROP_ISA=%s", mine, root,
                      strcmp(root, "generic") == 0 || strcmp(mine, "generic") == 0 ? "generic" : "avx2");
    return cli_agree(rt, rc);
}

/* Train on every rank; any other command on rank 0 alone, as in bprop. */
static int run(const cli_runtime *rt, mpi_cli *m, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "train") == 0) {
        int rc = same_kernels(rt, m);
        return rc ? rc : cli_agree(rt, cli_main(rt, argc, argv)); /* one exit status everywhere */
    }
    int rc = 0;
    if (m->comm.rank == 0) {
        rc = cli_main(&cli_single_process, argc, argv); /* messages straight to stderr */
    }
    return share_status(m->mpi, m->comm.rank, rc);
}

static int start(mpi_cli *m)
{
    int provided = MPI_THREAD_SINGLE;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS) {
        fputs("bprop: MPI_Init_thread failed\n", stderr);
        return CLI_EXIT_RUNTIME;
    }
    bprop_error err = {0};
    bprop_status st = provided >= MPI_THREAD_SERIALIZED ? bprop_mpi_comm_init(MPI_COMM_WORLD, &m->comm, &err)
                                                        : BPROP_E_COMM;
    if (st != BPROP_OK) {
        int rank = 0;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank);
        if (rank == 0)
            fprintf(stderr, "bprop: %s\n", provided < MPI_THREAD_SERIALIZED
                    ? "the MPI library does not provide MPI_THREAD_SERIALIZED" : err.message);
        MPI_Finalize();
        return CLI_EXIT_RUNTIME;
    }
    m->mpi = bprop_mpi_comm_get(&m->comm);
    return 0;
}

int main(int argc, char **argv)
{
    mpi_cli m;
    memset(&m, 0, sizeof m);
    int rc = start(&m);
    if (rc)
        return rc;
    cli_runtime rt = {.rank = m.comm.rank, .size = m.comm.size, .comm = &m.comm, .ctx = &m};
    if (m.comm.size > 1) {
        rt.agree = on_agree;
        rt.same_data = on_same_data;
        rt.message = on_message;
        rt.max = on_max;
        rt.same_value = on_same_value;
    }
    /* Only rank 0 prints results; the others' diagnostics reach it through the agreements. */
    if (m.comm.rank != 0 && !freopen("/dev/null", "w", stdout))
        rc = CLI_EXIT_RUNTIME;
    char **args = substitute_rank(argc, argv, m.comm.rank);
    if (!args && !rc)
        rc = cli_fail(&rt, "out of memory");
    /* Every rank takes part in run() whatever happened here, so none waits for another. */
    rc = cli_agree(&rt, rc);
    if (!rc)
        rc = run(&rt, &m, argc, args);
    free_args(argc, args);
    bprop_mpi_comm_free(&m.comm);
    MPI_Finalize();
    return rc;
}
