/* crc_file.h: opening and sequential reads and writes of the binary formats, with a running CRC-32 (internal). */
#ifndef BPROP_CRC_FILE_H
#define BPROP_CRC_FILE_H

#include "internal.h"

#include <stdint.h>
#include <stdio.h>

/* Floats converted per I/O call by the float readers and writers. */
#define BP_CRC_CHUNK 4096

/* zlib's CRC-32 of p[0..n) continued from crc (crc32(0, NULL, 0) to start). */
uint32_t bp_crc_update(uint32_t crc, const void *p, size_t n);

/* A file being written; the first failed write is remembered and the rest are skipped, so the
 * caller checks once, at the end. The FILE is borrowed. */
typedef struct bp_crc_writer {
    FILE *f;
    uint32_t crc; /* of every byte written so far */
    int failed;   /* errno of the first failed write, 0 while all is well */
} bp_crc_writer;

void bp_crc_writer_init(bp_crc_writer *w, FILE *f);
void bp_crc_write(bp_crc_writer *w, const void *p, size_t n);
/* n floats, little-endian. */
void bp_crc_write_floats(bp_crc_writer *w, const float *src, size_t n);
/* The CRC of everything written, as a little-endian u32 (itself outside the CRC); returns the
 * errno of the first failed write, 0 if none. */
int bp_crc_write_trailer(bp_crc_writer *w);

/* A file being read, with its path for the messages. The FILE and path are borrowed. */
typedef struct bp_crc_reader {
    FILE *f;
    const char *path;
    uint64_t size; /* file length */
    uint64_t pos;  /* bytes read so far */
    uint32_t crc;  /* CRC-32 of those bytes */
} bp_crc_reader;

/* Open path for reading, a regular file only (not a directory or a pipe, whose length the
 * format checks could not use), and its length; the caller fcloses *f. One error line naming
 * path on failure (the binary formats' loaders, the .npy reader too). */
bprop_status bp_open_regular(const char *path, FILE **f, uint64_t *size, bprop_error *err);
/* bp_open_regular into a reader; the caller fcloses r->f. */
bprop_status bp_crc_reader_open(bp_crc_reader *r, const char *path, bprop_error *err);
/* Read exactly n bytes; what names them in the truncation message ("truncated at byte offset
 * N (reading WHAT)"), and a read error names the offset and the system's reason. */
bprop_status bp_crc_read(bp_crc_reader *r, void *buf, size_t n, const char *what, bprop_error *err);
/* n little-endian floats. */
bprop_status bp_crc_read_floats(bp_crc_reader *r, float *dst, size_t n, const char *what,
                                bprop_error *err);

#endif /* BPROP_CRC_FILE_H */
