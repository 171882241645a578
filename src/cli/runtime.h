/* runtime.h: the processes running a command: one (bprop) or several MPI ranks (bprop-mpi,
 * which installs its hooks here), so commands stay free of MPI. */
#ifndef BPROP_CLI_RUNTIME_H
#define BPROP_CLI_RUNTIME_H

#include "bprop.h"

typedef struct cli_runtime {
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
} cli_runtime;

/* The runtime commands run in: the one installed, else a single process. */
const cli_runtime *cli_runtime_get(void);
/* Install rt (borrowed; it must outlive every command) before any command runs: the CLI's one
 * piece of process-wide state, set once by the program's main. */
void cli_runtime_set(const cli_runtime *rt);

/* 1 on the process that prints results and writes output files (rank 0). */
int cli_root(void);
/* The runtime's agree hook: rc unchanged in a single process. */
int cli_agree(int rc);
/* The runtime's same_data hook: 0 in a single process. */
int cli_same_data(const bprop_dataset *d, const char *what);

#endif /* BPROP_CLI_RUNTIME_H */
