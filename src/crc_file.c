/* crc_file.c: opening and sequential reads and writes of the binary formats, with a running CRC-32. */
#include "crc_file.h"
#include "atomic_file.h"
#include "le_cursor.h"

#include <errno.h>
#include <sys/stat.h>
#include <zlib.h>

uint32_t bp_crc_update(uint32_t crc, const void *p, size_t n)
{
    const unsigned char *b = p;
    while (n > 0) { /* zlib takes uInt lengths */
        const size_t k = n < (1u << 30) ? n : (1u << 30);
        crc = (uint32_t)crc32(crc, b, (uInt)k);
        b += k;
        n -= k;
    }
    return crc;
}

void bp_crc_writer_init(bp_crc_writer *w, FILE *f)
{
    *w = (bp_crc_writer){f, (uint32_t)crc32(0L, Z_NULL, 0), 0};
}

static void write_raw(bp_crc_writer *w, const void *p, size_t n)
{
    if (!w->failed && n > 0 && fwrite(p, 1, n, w->f) != n)
        w->failed = errno ? errno : EIO;
}

void bp_crc_write(bp_crc_writer *w, const void *p, size_t n)
{
    if (w->failed)
        return;
    w->crc = bp_crc_update(w->crc, p, n);
    write_raw(w, p, n);
}

void bp_crc_write_floats(bp_crc_writer *w, const float *src, size_t n)
{
    unsigned char buf[4 * BP_CRC_CHUNK];
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < BP_CRC_CHUNK ? n - done : BP_CRC_CHUNK;
        bp_floats_to_le(src + done, k, buf);
        bp_crc_write(w, buf, 4 * k);
        done += k;
    }
}

int bp_crc_write_trailer(bp_crc_writer *w)
{
    unsigned char crc[4];
    bp_cursor c = {crc, 0};
    bp_put_u32(&c, w->crc);
    write_raw(w, crc, sizeof crc);
    return w->failed;
}

bprop_status bp_open_regular(const char *path, FILE **f, uint64_t *size, bprop_error *err)
{
    *f = fopen(path, "rb");
    if (!*f) {
        char why[128];
        bp_errno_text(errno, why, sizeof why);
        return bp_fail(err, BPROP_E_IO, "%s: cannot open: %s", path, why);
    }
    struct stat st;
    if (fstat(fileno(*f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(*f);
        *f = NULL;
        return bp_fail(err, BPROP_E_IO, "%s: not a regular file", path);
    }
    *size = (uint64_t)st.st_size;
    return BPROP_OK;
}

bprop_status bp_crc_reader_open(bp_crc_reader *r, const char *path, bprop_error *err)
{
    *r = (bp_crc_reader){NULL, path, 0, 0, (uint32_t)crc32(0L, Z_NULL, 0)};
    return bp_open_regular(path, &r->f, &r->size, err);
}

bprop_status bp_crc_read(bp_crc_reader *r, void *buf, size_t n, const char *what, bprop_error *err)
{
    const size_t got = fread(buf, 1, n, r->f);
    r->crc = bp_crc_update(r->crc, buf, got);
    r->pos += got;
    if (got == n)
        return BPROP_OK;
    if (ferror(r->f)) {
        char why[128];
        bp_errno_text(errno, why, sizeof why);
        return bp_fail(err, BPROP_E_IO, "%s: byte offset %llu: read error: %s", r->path,
                       (unsigned long long)r->pos, why);
    }
    return bp_fail(err, BPROP_E_FORMAT, "%s: truncated at byte offset %llu (reading %s)", r->path,
                   (unsigned long long)r->pos, what);
}

bprop_status bp_crc_read_floats(bp_crc_reader *r, float *dst, size_t n, const char *what,
                                bprop_error *err)
{
    unsigned char buf[4 * BP_CRC_CHUNK];
    for (size_t done = 0; done < n;) {
        const size_t k = n - done < BP_CRC_CHUNK ? n - done : BP_CRC_CHUNK;
        bprop_status st = bp_crc_read(r, buf, 4 * k, what, err);
        if (st != BPROP_OK)
            return st;
        bp_le_to_floats(buf, k, dst + done);
        done += k;
    }
    return BPROP_OK;
}
