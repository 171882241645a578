/* train_signal.c: SIGINT/SIGTERM/SIGUSR1 during `bprop train`: the first asks the trainer to
 * stop after its current step, a second aborts at once, removing any file half-written.
 *
 * A signal handler can reach nothing but static storage, so this file (and bus_guard.c, for
 * SIGBUS) holds the program's only mutable globals. Everything the handler touches is
 * async-signal-safe: lock-free atomics, unlink() and _exit(). The handler may run on any thread
 * (OpenMP workers included), hence C11 atomics rather than plain sig_atomic_t for what the main
 * thread and the handler exchange. */
#define _POSIX_C_SOURCE 200809L
#include "train_signal.h"

#include "cli.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

enum { TMP_NAME_MAX = 4096 };

static volatile sig_atomic_t g_cancel; /* the trainer's flag (it reads it between steps) */
static atomic_int g_signo;             /* first signal, 0 while none */
static atomic_int g_abort;             /* a second signal that arrived during a write */
static atomic_int g_writing;           /* a save is in progress (between begin and end) */
static atomic_int g_have_tmp;          /* g_tmp names the temporary file being written */
static char g_tmp[TMP_NAME_MAX];

static void die(int sig)
{
    _exit(128 + sig);
}

/* Second signal: remove the temporary file if one is known; if a save has begun but not yet
 * named its file, leave the removal to train_signal_tempfile (it checks g_abort after
 * publishing the name, and this handler checks the name after publishing g_abort, so one of the
 * two always sees the other). */
static void abort_now(int sig)
{
    atomic_store(&g_abort, sig);
    if (atomic_load(&g_have_tmp)) {
        unlink(g_tmp);
        die(sig);
    }
    if (!atomic_load(&g_writing))
        die(sig);
}

static void on_signal(int sig)
{
    int none = 0;
    if (atomic_compare_exchange_strong(&g_signo, &none, sig)) {
        g_cancel = 1;
        return;
    }
    abort_now(sig);
}

int train_signal_install(const cli_runtime *rt)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART; /* reads and writes carry on; the loop polls the flag */
    sigemptyset(&sa.sa_mask);
    /* SIGUSR1 as well: Open MPI's mpirun forwards it to every rank as it is (SIGINT and SIGTERM
     * it turns into SIGTERM followed by SIGKILL), and Slurm's --signal sends it by default. */
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0 ||
        sigaction(SIGUSR1, &sa, NULL) != 0)
        return cli_fail(rt, "cannot install signal handlers: %s", strerror(errno));
    return 0;
}

const volatile sig_atomic_t *train_signal_flag(void) { return &g_cancel; }

void train_signal_stop(void) { g_cancel = 1; }

void train_signal_resume(void)
{
    g_cancel = 0;
    /* A signal that arrived meanwhile must not be lost. */
    if (atomic_load(&g_signo))
        g_cancel = 1;
}

int train_signal_received(void) { return atomic_load(&g_signo); }

void train_signal_write_begin(void) { atomic_store(&g_writing, 1); }

void train_signal_write_end(void)
{
    atomic_store(&g_writing, 0);
    int sig = atomic_load(&g_abort);
    if (sig)
        die(sig); /* the save finished or failed cleanly: nothing half-written is left */
}

void train_signal_tempfile(void *user, const char *tmp)
{
    (void)user;
    if (!tmp) {
        atomic_store(&g_have_tmp, 0);
    } else if (strlen(tmp) < TMP_NAME_MAX) {
        memcpy(g_tmp, tmp, strlen(tmp) + 1);
        atomic_store(&g_have_tmp, 1);
    }
    int sig = atomic_load(&g_abort);
    if (sig) {
        if (tmp)
            unlink(tmp);
        die(sig);
    }
}
