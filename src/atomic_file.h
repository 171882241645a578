/* atomic_file.h: write a file through a temporary beside it and a rename (internal). */
#ifndef BPROP_ATOMIC_FILE_H
#define BPROP_ATOMIC_FILE_H

#include "internal.h"

#include <stdio.h>

/* A file being written: whatever goes to f appears at path only when bp_atomic_commit
 * succeeds; until then (and after any failure) path keeps what it held before. */
typedef struct bp_atomic {
    FILE *f;          /* write the contents here */
    char *tmp;        /* owned: path + ".tmp.XXXXXX" */
    const char *path; /* borrowed */
    bprop_tempfile_fn notify; /* NULL, or told tmp once it exists and NULL once it is gone */
    void *user;               /* passed to notify */
} bp_atomic;

/* Create path.tmp.XXXXXX exclusively and open it for writing. The temporary gets the mode an
 * existing file at path has, or 0666 less the umask. */
bprop_status bp_atomic_open(bp_atomic *a, const char *path, bprop_error *err);
/* bp_atomic_open that tells notify (may be NULL) the temporary file's name right after creating
 * it, and NULL after commit or abort has renamed or removed it. */
bprop_status bp_atomic_open_notify(bp_atomic *a, const char *path, bprop_tempfile_fn notify,
                                   void *user, bprop_error *err);

/* Flush, fsync, close and rename over path, then sync the directory. write_errno is the errno
 * of the caller's first failed write (0 if none), so a failed write also lands here. On any
 * failure the temporary is removed; a is released either way. */
bprop_status bp_atomic_commit(bp_atomic *a, int write_errno, bprop_error *err);

/* Close and remove the temporary without touching path; releases a. */
void bp_atomic_abort(bp_atomic *a);

/* strerror_r into buf, or "error N". */
void bp_errno_text(int e, char *buf, size_t n);

#endif /* BPROP_ATOMIC_FILE_H */
