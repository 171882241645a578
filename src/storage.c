/* storage.c: the memory behind a data set's features: file mappings and heap buffers. */
#define _POSIX_C_SOURCE 200809L
#include "storage.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* 1 when fd starts with the gzip magic; reads with pread so the offset stays where it was. */
static int starts_gzip(int fd)
{
    unsigned char m[2];
    return pread(fd, m, 2, 0) == 2 && m[0] == 0x1f && m[1] == 0x8b;
}

bprop_status bp_storage_map(const char *path, int writable, bp_storage **out, bprop_error *err)
{
    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return bp_fail(err, BPROP_E_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || starts_gzip(fd) ||
        (uint64_t)st.st_size > SIZE_MAX) {
        close(fd); /* read through zlib instead */
        return BPROP_OK;
    }
    size_t len = (size_t)st.st_size;
    void *addr = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_PRIVATE, fd, 0);
    int saved = errno;
    close(fd); /* the mapping keeps the file */
    if (addr == MAP_FAILED) {
        if (saved == ENOMEM)
            return bp_fail(err, BPROP_E_NOMEM, "%s: cannot map %zu bytes: %s", path, len,
                           strerror(saved));
        return BPROP_OK; /* a file system without mmap: read it instead */
    }
    bp_storage *m = malloc(sizeof *m);
    if (!m) {
        munmap(addr, len);
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory", path);
    }
    *m = (bp_storage){addr, len, 1};
    *out = m;
    return BPROP_OK;
}

bp_storage *bp_storage_heap(void *buf, size_t len)
{
    bp_storage *m = malloc(sizeof *m);
    if (!m) {
        free(buf);
        return NULL;
    }
    *m = (bp_storage){buf, len, 0};
    return m;
}

void bp_storage_free(bp_storage *s)
{
    if (!s)
        return;
    if (s->mapped)
        munmap(s->addr, s->len);
    else
        free(s->addr);
    free(s);
}
