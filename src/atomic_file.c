/* atomic_file.c: write a file through a temporary beside it and a rename. */
#define _POSIX_C_SOURCE 200809L

#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

void bp_errno_text(int e, char *buf, size_t n)
{
    if (strerror_r(e, buf, n) != 0)
        snprintf(buf, n, "error %d", e);
}

/* Unlike mkstemp (mode 0600) open() applies the umask to 0666, so the file gets the permissions
 * fopen would give it; an existing file at path keeps its own mode. */
bprop_status bp_atomic_open(bp_atomic *a, const char *path, bprop_error *err)
{
    return bp_atomic_open_notify(a, path, NULL, NULL, err);
}

/* Tell the caller's hook that the temporary file is gone. */
static void notify_gone(bp_atomic *a)
{
    if (a->notify)
        a->notify(a->user, NULL);
}

bprop_status bp_atomic_open_notify(bp_atomic *a, const char *path, bprop_tempfile_fn notify,
                                   void *user, bprop_error *err)
{
    static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    *a = (bp_atomic){.path = path, .notify = notify, .user = user};
    size_t n = strlen(path);
    char *tmp = malloc(n + sizeof ".tmp.XXXXXX");
    if (!tmp)
        return bp_fail(err, BPROP_E_NOMEM, "%s: cannot save: out of memory", path);
    memcpy(tmp, path, n);
    memcpy(tmp + n, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    bp_rng rng;
    bp_rng_seed(&rng, (uint64_t)ts.tv_sec * 1000000007u ^ (uint64_t)ts.tv_nsec ^
                          (uint64_t)getpid() << 40 ^ (uint64_t)(uintptr_t)tmp);
    for (int attempt = 0; attempt < 100; attempt++) {
        for (size_t i = n + 5; i < n + 11; i++)
            tmp[i] = alphabet[bp_rng_below(&rng, sizeof alphabet - 1)];
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd < 0) {
            if (errno == EEXIST)
                continue;
            break;
        }
        if (notify)
            notify(user, tmp);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && fchmod(fd, st.st_mode & 07777) != 0) {
            /* Best effort: some file systems (FAT) have no modes to copy. */
        }
        a->f = fdopen(fd, "wb");
        if (!a->f) {
            int e = errno;
            close(fd);
            unlink(tmp);
            if (notify)
                notify(user, NULL);
            errno = e;
            break;
        }
        a->tmp = tmp;
        return BPROP_OK;
    }
    char why[128];
    bp_errno_text(errno, why, sizeof why);
    bprop_status st = bp_fail(err, BPROP_E_IO, "%s: cannot create temporary file %s: %s", path, tmp, why);
    free(tmp);
    return st;
}

/* Make the rename itself durable. Best effort: the data was already synced, and some systems
 * cannot open or sync directories. */
static void sync_parent_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir)
        return;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        if (fsync(fd) != 0) {
            /* Best effort, see above. */
        }
        close(fd);
    }
    free(dir);
}

bprop_status bp_atomic_commit(bp_atomic *a, int write_errno, bprop_error *err)
{
    int failed = write_errno;
    /* The data must be on the disk before the rename makes it the file at path. */
    if (!failed && (fflush(a->f) != 0 || fsync(fileno(a->f)) != 0))
        failed = errno ? errno : EIO;
    if (fclose(a->f) != 0 && !failed)
        failed = errno ? errno : EIO;
    a->f = NULL;
    char why[128];
    bprop_status st = BPROP_OK;
    if (failed) {
        bp_errno_text(failed, why, sizeof why);
        st = bp_fail(err, BPROP_E_IO, "%s: cannot write: %s", a->tmp, why);
    } else if (rename(a->tmp, a->path) != 0) {
        bp_errno_text(errno, why, sizeof why);
        st = bp_fail(err, BPROP_E_IO, "%s: cannot replace with %s: %s", a->path, a->tmp, why);
    }
    if (st != BPROP_OK)
        unlink(a->tmp);
    else
        sync_parent_dir(a->path);
    notify_gone(a);
    free(a->tmp);
    a->tmp = NULL;
    return st;
}

void bp_atomic_abort(bp_atomic *a)
{
    if (a->f)
        fclose(a->f);
    if (a->tmp) {
        unlink(a->tmp);
        notify_gone(a);
        free(a->tmp);
    }
    *a = (bp_atomic){0};
}
