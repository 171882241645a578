/* cli_util.c: runtime-error reporting, atomic file replacement and clocks for the CLI. */
#define _POSIX_C_SOURCE 200809L
#include "cli.h"
#include "runtime.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cli_fail(const cli_runtime *rt, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (rt->message) {
        char text[BPROP_ERROR_MAX];
        vsnprintf(text, sizeof text, fmt, ap);
        rt->message(rt->ctx, 0, text);
    } else {
        fputs("bprop: ", stderr);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
    }
    va_end(ap);
    return CLI_EXIT_RUNTIME;
}

int cli_fail_err(const cli_runtime *rt, const bprop_error *err, bprop_status st)
{
    if (err && err->message[0])
        return cli_fail(rt, "%s", err->message);
    return cli_fail(rt, "%s", bprop_strerror(st));
}

int cli_fail_path(const cli_runtime *rt, const char *path, const bprop_error *err, bprop_status st)
{
    const char *msg = (err && err->message[0]) ? err->message : bprop_strerror(st);
    if (!strstr(msg, path))
        return cli_fail(rt, "%s: %s", path, msg);
    return cli_fail(rt, "%s", msg);
}

int cli_load_model(const cli_runtime *rt, const char *path, bprop_model **out)
{
    bprop_error err = {0};
    bprop_status st = bprop_model_load(path, out, &err);
    return st == BPROP_OK ? 0 : cli_fail_path(rt, path, &err, st);
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

/* Permissions for the file that will replace path: those of the file there now, else the usual
 * 0666 less the umask (mkstemp creates 0600). Special bits are not carried over to new content. */
static mode_t replacement_mode(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
        return st.st_mode & 0777;
    /* umask can only be read by setting it; nothing creates files meanwhile in this program. */
    mode_t mask = umask(0);
    umask(mask);
    return 0666 & ~mask;
}

static void atomic_release(cli_atomic *w)
{
    free(w->path);
    free(w->tmp);
    memset(w, 0, sizeof *w);
}

int cli_atomic_open(const cli_runtime *rt, cli_atomic *w, const char *path)
{
    memset(w, 0, sizeof *w);
    w->rt = rt;
    w->path = concat(path, "");
    w->tmp = concat(path, ".tmp.XXXXXX");
    if (!w->path || !w->tmp) {
        atomic_release(w);
        return cli_fail(rt, "%s: out of memory", path);
    }
    mode_t mode = replacement_mode(path);
    int fd = mkstemp(w->tmp);
    if (fd < 0) {
        int rc = cli_fail(rt, "%s: cannot create a temporary file beside it: %s", path, strerror(errno));
        atomic_release(w);
        return rc;
    }
    if (fchmod(fd, mode) != 0 || !(w->f = fdopen(fd, "wb"))) {
        int rc = cli_fail(rt, "%s: cannot create: %s", w->tmp, strerror(errno));
        close(fd);
        remove(w->tmp);
        atomic_release(w);
        return rc;
    }
    return 0;
}

/* After a failure, with the file closed: remove the temporary file, or keep partial output that
 * may help find out what went wrong. */
static void drop_temp(cli_atomic *w, int has_data)
{
    if (w->partial && has_data)
        fprintf(stderr, "bprop: partial %s kept in %s\n", w->partial, w->tmp);
    else
        remove(w->tmp);
}

void cli_atomic_abort(cli_atomic *w)
{
    if (w->f) {
        int has_data = ftello(w->f) > 0;
        fclose(w->f);
        drop_temp(w, has_data);
    }
    atomic_release(w);
}

int cli_atomic_commit(cli_atomic *w)
{
    /* Data must reach the disk before the rename publishes it, or a crash could leave an empty
     * file under the final name. */
    int bad = fflush(w->f) != 0 || ferror(w->f) || fsync(fileno(w->f)) != 0;
    int saved = errno;
    int has_data = ftello(w->f) > 0;
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
        rc = cli_fail(w->rt, "%s: cannot write: %s", w->path, strerror(saved));
        drop_temp(w, has_data);
    }
    atomic_release(w);
    return rc;
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

int cli_check_output(const cli_runtime *rt, const char *flag, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return cli_fail(rt, "%s: '%s' is a directory", flag, path);
    if (!cli_dir_writable(path))
        return cli_fail(rt, "%s: cannot create '%s': its directory is missing or not writable", flag, path);
    return 0;
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
