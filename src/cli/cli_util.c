/* cli_util.c: runtime-error reporting, atomic file replacement and clocks for the CLI. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bprop: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return CLI_EXIT_RUNTIME;
}

int cli_fail_err(const bprop_error *err, bprop_status st)
{
    if (err && err->message[0])
        return cli_fail("%s", err->message);
    return cli_fail("%s", bprop_strerror(st));
}

int cli_fail_path(const char *path, const bprop_error *err, bprop_status st)
{
    const char *msg = (err && err->message[0]) ? err->message : bprop_strerror(st);
    if (!strstr(msg, path))
        return cli_fail("%s: %s", path, msg);
    return cli_fail("%s", msg);
}

int cli_load_model(const char *path, bprop_model **out)
{
    bprop_error err = {0};
    bprop_status st = bprop_model_load(path, out, &err);
    return st == BPROP_OK ? 0 : cli_fail_path(path, &err, st);
}

static char *concat(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    char *s = malloc(na + nb + 1);
    if (s) {
        memcpy(s, a, na);
        memcpy(s + na, b, nb + 1);
    }
    return s;
}

int cli_atomic_open(cli_atomic *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->path = concat(path, "");
    w->tmp = concat(path, ".tmp");
    if (!w->path || !w->tmp) {
        cli_atomic_abort(w);
        return cli_fail("%s: out of memory", path);
    }
    w->f = fopen(w->tmp, "wb");
    if (!w->f) {
        int rc = cli_fail("%s: cannot create: %s", w->tmp, strerror(errno));
        cli_atomic_abort(w);
        return rc;
    }
    return 0;
}

void cli_atomic_abort(cli_atomic *w)
{
    if (w->f) {
        fclose(w->f);
        remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

int cli_atomic_commit(cli_atomic *w)
{
    /* Data must reach the disk before the rename publishes it, or a crash could leave an empty
     * file under the final name. */
    int bad = fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0;
    int saved = errno;
    if (fclose(w->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    w->f = NULL;
    if (!bad && rename(w->tmp, w->path) != 0) {
        bad = 1;
        saved = errno;
    }
    int rc = 0;
    if (bad) {
        rc = cli_fail("%s: cannot write: %s", w->path, strerror(saved));
        remove(w->tmp);
    }
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
    return rc;
}

int cli_write_file_atomic(const char *path, const void *data, size_t n)
{
    cli_atomic w;
    int rc = cli_atomic_open(&w, path);
    if (rc)
        return rc;
    if (n && fwrite(data, 1, n, w.f) != n) {
        rc = cli_fail("%s: cannot write: %s", w.tmp, strerror(errno));
        cli_atomic_abort(&w);
        return rc;
    }
    return cli_atomic_commit(&w);
}

int cli_dir_writable(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return access(".", W_OK | X_OK) == 0;
    if (slash == path)
        return access("/", W_OK | X_OK) == 0;
    char *dir = strndup(path, (size_t)(slash - path));
    int ok = dir && access(dir, W_OK | X_OK) == 0;
    free(dir);
    return ok;
}

void cli_format_trunc(char *buf, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, size, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n >= size && size > 4)
        memcpy(buf + size - 4, "...", 4);
}

double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_iso_time(int64_t t, char *buf, size_t size)
{
    struct tm tm;
    time_t tt = (time_t)t;
    if (t <= 0 || !gmtime_r(&tt, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, size, "unknown");
}
