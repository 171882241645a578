/* reader.h: gzip-transparent sequential file reading shared by the data loaders, and reading
 * from a memory mapping of an uncompressed file; not installed. */
#ifndef BPROP_READER_H
#define BPROP_READER_H

#include "internal.h"
#include "storage.h"

#include <stddef.h>
#include <zlib.h>

/* A file opened through zlib: gzip content is decompressed, anything else is read as it is, so
 * the loaders see the same bytes either way and never look at the file name. */
typedef struct bp_reader {
    gzFile gz;        /* NULL when map is set */
    bp_storage *map;  /* the whole file mapped (bp_reader_open_mapped), owned until taken */
    const char *path; /* borrowed, for messages */
    size_t offset;    /* (decompressed) bytes delivered so far */
} bp_reader;

/* Open path for reading; BPROP_E_IO naming the file and the system's reason on failure. */
bprop_status bp_reader_open(bp_reader *r, const char *path, bprop_error *err);

/* As bp_reader_open, but an uncompressed regular file is mapped instead (bp_storage_map), so
 * that bp_reader_view can hand out its bytes without a copy. */
bprop_status bp_reader_open_mapped(bp_reader *r, const char *path, bprop_error *err);

/* For a mapped reader: *p points at the next bytes, *got = min(n, bytes left), and the
 * offset moves past them. Without a mapping *p is NULL and nothing moves. */
void bp_reader_view(bp_reader *r, size_t n, const unsigned char **p, size_t *got);

/* Bytes left after the offset in a mapped reader (0 without a mapping). */
size_t bp_reader_left(const bp_reader *r);

/* Read up to n bytes into buf; *got < n only at the end of the data. A read failure is
 * BPROP_E_IO; cut-off gzip data, and gzip data that fails its CRC or cannot be decoded,
 * BPROP_E_FORMAT with a message telling which, each naming the byte offset. */
bprop_status bp_reader_read(bp_reader *r, void *buf, size_t n, size_t *got, bprop_error *err);

/* Close r (safe on a reader whose open failed); frees the mapping unless it was taken (r->map
 * set to NULL by the caller, who then owns it). */
void bp_reader_close(bp_reader *r);

#endif /* BPROP_READER_H */
