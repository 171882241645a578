/* runtime.c: the hooks of the runtime a command runs in (a single process unless bprop-mpi
 * passes its own). */
#include "runtime.h"

#include <stddef.h>

const cli_runtime cli_single_process = {.rank = 0, .size = 1};

int cli_root(const cli_runtime *rt) { return rt->rank == 0; }

int cli_agree(const cli_runtime *rt, int rc) { return rt->agree ? rt->agree(rt->ctx, rc) : rc; }

int cli_same_data(const cli_runtime *rt, const bprop_dataset *d, const char *what)
{
    return rt->same_data ? rt->same_data(rt->ctx, d, what) : 0;
}

int cli_max(const cli_runtime *rt, int value) { return rt->max ? rt->max(rt->ctx, value) : value; }

int cli_same_value(const cli_runtime *rt, uint64_t value, const char *what)
{
    return rt->same_value ? rt->same_value(rt->ctx, value, what) : 0;
}
