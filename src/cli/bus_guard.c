/* bus_guard.c: a memory-mapped data file cut short or rewritten during a run makes reading its
 * pages raise SIGBUS; this turns that into one line naming the mapped files and exit status 1.
 *
 * The handler reaches only the static message below, written by the main thread before any
 * worker starts (cli_bus_guard_add) and read-only afterwards; write() and _exit() are
 * async-signal-safe. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

enum { BUS_MSG_MAX = 2048 };

static char g_msg[BUS_MSG_MAX];      /* the whole line, ready to write */
static volatile sig_atomic_t g_len;  /* its length; 0 until a file is added */
static char g_files[BUS_MSG_MAX];    /* "a, b" */

static void on_bus(int sig)
{
    (void)sig;
    if (g_len > 0 && write(STDERR_FILENO, g_msg, (size_t)g_len) < 0)
        _exit(CLI_EXIT_RUNTIME);
    _exit(CLI_EXIT_RUNTIME);
}

/* 1 when path starts with the gzip magic: such files are decompressed, never mapped. */
static int is_gzip(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    int a = fgetc(f), b = fgetc(f);
    fclose(f);
    return a == 0x1f && b == 0x8b;
}

void cli_bus_guard_add(const char *path)
{
    if (is_gzip(path) || strlen(g_files) + strlen(path) + 3 >= sizeof g_files)
        return;
    if (g_files[0])
        strcat(g_files, ", ");
    strcat(g_files, path);
    int n = snprintf(g_msg, sizeof g_msg,
                     "bprop: bus error reading a memory-mapped data file (%s): it was truncated "
                     "or rewritten during the run; copy it or use a .gz file to train while it "
                     "changes\n", g_files);
    g_len = n < 0 ? 0 : n >= (int)sizeof g_msg ? (int)sizeof g_msg - 1 : n;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_bus;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGBUS, &sa, NULL);
}
