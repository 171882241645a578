/* runtime.h: the processes running a command: one (bprop) or several MPI ranks (bprop-mpi,
 * whose main passes its hooks in), so commands stay free of MPI. */
#ifndef BPROP_CLI_RUNTIME_H
#define BPROP_CLI_RUNTIME_H

#include "bprop.h"
#include "cli.h"

#include <stdint.h>

struct cli_runtime {
    int rank, size;         /* this process and how many run the command: 0 and 1 in bprop */
    const bprop_comm *comm; /* for the trainer; NULL in bprop */
    void *ctx;              /* passed to the hooks */
    /* Collective: every rank passes its result code (0 success, CLI_EXIT_*); every rank gets
     * the code of the lowest failing rank, whose message rank 0 has printed, once. NULL: the
     * code is returned as it is. */
    int (*agree)(void *ctx, int rc);
    /* Collective: 0 when this rank's prepared training data is rank 0's, byte for byte; else
     * CLI_EXIT_RUNTIME on every rank, rank 0 having printed which rank differs. NULL: 0. */
    int (*same_data)(void *ctx, const bprop_dataset *d, const char *what);
    /* Where diagnostics go instead of stderr: a runtime error's message (usage = 0, without
     * "bprop: " and newline) or a usage error's whole text (usage = 1). NULL: stderr. */
    void (*message)(void *ctx, int usage, const char *text);
    /* Collective: the largest of the ranks' values (a signal number, so that every rank stops
     * at the same point when any of them got one). NULL: value. */
    int (*max)(void *ctx, int value);
    /* Collective: 0 when value (a hash) is rank 0's; else CLI_EXIT_RUNTIME on every rank, rank
     * 0 having printed "rank N: <what> differs from rank 0's ...". NULL: 0. */
    int (*same_value)(void *ctx, uint64_t value, const char *what);
};

/* A single process (bprop's runtime): rank 0 of 1, no hooks. The program's main passes a
 * runtime to cli_main, which hands it to every command; nothing in the CLI keeps one. */
extern const cli_runtime cli_single_process;

/* 1 on the process that prints results and writes output files (rank 0). */
int cli_root(const cli_runtime *rt);
/* The runtime's agree hook: rc unchanged in a single process. */
int cli_agree(const cli_runtime *rt, int rc);
/* The runtime's same_data hook: 0 in a single process. */
int cli_same_data(const cli_runtime *rt, const bprop_dataset *d, const char *what);
/* The runtime's max hook: value in a single process. */
int cli_max(const cli_runtime *rt, int value);
/* The runtime's same_value hook: 0 in a single process. */
int cli_same_value(const cli_runtime *rt, uint64_t value, const char *what);

#endif /* BPROP_CLI_RUNTIME_H */
