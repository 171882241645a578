/* runtime.c: the installed cli_runtime (a single process unless bprop-mpi installs its own). */
#include "runtime.h"

#include <stddef.h>

static const cli_runtime single_process = {.rank = 0, .size = 1};
static const cli_runtime *installed = &single_process;

const cli_runtime *cli_runtime_get(void) { return installed; }

void cli_runtime_set(const cli_runtime *rt) { installed = rt ? rt : &single_process; }

int cli_root(void) { return installed->rank == 0; }

int cli_agree(int rc) { return installed->agree ? installed->agree(installed->ctx, rc) : rc; }

int cli_same_data(const bprop_dataset *d, const char *what)
{
    return installed->same_data ? installed->same_data(installed->ctx, d, what) : 0;
}
