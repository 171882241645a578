/* reader.h: gzip-transparent sequential file reading shared by the data loaders; not installed. */
#ifndef BPROP_READER_H
#define BPROP_READER_H

#include "internal.h"

#include <stddef.h>
#include <zlib.h>

/* A file opened through zlib: gzip content is decompressed, anything else is read as it is, so
 * the loaders see the same bytes either way and never look at the file name. */
typedef struct bp_reader {
    gzFile gz;
    const char *path; /* borrowed, for messages */
    size_t offset;    /* (decompressed) bytes delivered so far */
} bp_reader;

/* Open path for reading; BPROP_E_IO naming the file and the system's reason on failure. */
bprop_status bp_reader_open(bp_reader *r, const char *path, bprop_error *err);

/* Read up to n bytes into buf; *got < n only at the end of the data. A read failure is
 * BPROP_E_IO; cut-off gzip data, and gzip data that fails its CRC or cannot be decoded,
 * BPROP_E_FORMAT with a message telling which, each naming the byte offset. */
bprop_status bp_reader_read(bp_reader *r, void *buf, size_t n, size_t *got, bprop_error *err);

/* Close r (safe on a reader whose open failed). */
void bp_reader_close(bp_reader *r);

#endif /* BPROP_READER_H */
