/* reader.c: gzip-transparent sequential file reading shared by the data loaders. */
#include "reader.h"

#include <errno.h>
#include <string.h>

/* gzread takes an int-sized count; larger requests go in pieces of this size. */
#define BP_READ_PIECE (1u << 30)
/* zlib's own buffer; larger than its 8 KiB default so big files need fewer system calls. */
#define BP_GZ_BUFFER (1u << 17)

bprop_status bp_reader_open(bp_reader *r, const char *path, bprop_error *err)
{
    r->gz = NULL;
    r->map = NULL;
    r->path = path;
    r->offset = 0;
    errno = 0;
    r->gz = gzopen(path, "rb");
    if (!r->gz)
        return bp_fail(err, BPROP_E_IO, "%s: cannot open: %s", path,
                       errno ? strerror(errno) : "out of memory");
    gzbuffer(r->gz, BP_GZ_BUFFER);
    return BPROP_OK;
}

bprop_status bp_reader_open_mapped(bp_reader *r, const char *path, bprop_error *err)
{
    r->gz = NULL;
    r->map = NULL;
    r->path = path;
    r->offset = 0;
    bprop_status s = bp_storage_map(path, 0, &r->map, err);
    if (s != BPROP_OK || r->map)
        return s;
    return bp_reader_open(r, path, err); /* compressed, empty or not a regular file */
}

void bp_reader_view(bp_reader *r, size_t n, const unsigned char **p, size_t *got)
{
    *p = NULL;
    *got = 0;
    if (!r->map)
        return;
    size_t left = bp_reader_left(r);
    *got = n < left ? n : left;
    *p = (const unsigned char *)r->map->addr + r->offset;
    r->offset += *got;
}

size_t bp_reader_left(const bp_reader *r) { return r->map ? r->map->len - r->offset : 0; }

/* Turn zlib's error state into a status and a message naming where the data went wrong: a
 * stream that stops early (Z_BUF_ERROR) is cut off; one whose trailer does not match what was
 * decompressed (Z_DATA_ERROR "incorrect data check"/"incorrect length check") was damaged after
 * compression (zlib only finds that out at the end of the stream, so no byte count means anything
 * there); any other Z_DATA_ERROR is deflate data that cannot be decoded. zlib drops the bytes it
 * decompressed in a failing call, so r->offset counts only those delivered before it. */
static bprop_status reader_failure(const bp_reader *r, int saved_errno, bprop_error *err)
{
    int code = Z_OK;
    const char *what = gzerror(r->gz, &code);
    if (code == Z_ERRNO)
        return bp_fail(err, BPROP_E_IO, "%s: read error after %zu bytes: %s", r->path, r->offset,
                       strerror(saved_errno));
    if (code == Z_MEM_ERROR)
        return bp_fail(err, BPROP_E_NOMEM, "%s: out of memory while decompressing", r->path);
    /* zlib's message repeats the path ("path: unexpected end of file"); keep only its reason. */
    size_t plen = strlen(r->path);
    if (what && strncmp(what, r->path, plen) == 0 && strncmp(what + plen, ": ", 2) == 0)
        what += plen + 2;
    what = what && *what ? what : "unknown error";
    if (code == Z_BUF_ERROR)
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: cut-off gzip data: the compressed stream ends early, after the first %zu "
                       "decompressed bytes (zlib: %s)", r->path, r->offset, what);
    if (strstr(what, "incorrect data check"))
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: corrupt gzip data: CRC-32 mismatch (the decompressed data does not match "
                       "the checksum in the gzip trailer; the file was damaged after compression)",
                       r->path);
    if (strstr(what, "incorrect length check"))
        return bp_fail(err, BPROP_E_FORMAT,
                       "%s: corrupt gzip data: length mismatch (the decompressed size does not match "
                       "the size in the gzip trailer; the file was damaged after compression)",
                       r->path);
    return bp_fail(err, BPROP_E_FORMAT,
                   "%s: corrupt gzip data: the deflate stream cannot be decoded after the first %zu "
                   "decompressed bytes (zlib: %s)", r->path, r->offset, what);
}

bprop_status bp_reader_read(bp_reader *r, void *buf, size_t n, size_t *got, bprop_error *err)
{
    *got = 0;
    if (r->map) {
        const unsigned char *p;
        bp_reader_view(r, n, &p, got);
        if (*got)
            memcpy(buf, p, *got);
        return BPROP_OK;
    }
    while (*got < n) {
        size_t left = n - *got;
        unsigned piece = left > BP_READ_PIECE ? BP_READ_PIECE : (unsigned)left;
        errno = 0;
        int k = gzread(r->gz, (char *)buf + *got, piece);
        if (k < 0)
            return reader_failure(r, errno, err);
        *got += (size_t)k;
        r->offset += (size_t)k;
        if ((unsigned)k < piece)
            break;
    }
    /* A short read is the end of the data, unless zlib flagged the stream: Z_BUF_ERROR there
     * means the compressed input stopped in the middle. */
    int code = Z_OK;
    gzerror(r->gz, &code);
    if (code != Z_OK)
        return reader_failure(r, errno, err);
    return BPROP_OK;
}

void bp_reader_close(bp_reader *r)
{
    if (r->gz)
        gzclose(r->gz);
    r->gz = NULL;
    bp_storage_free(r->map);
    r->map = NULL;
}
