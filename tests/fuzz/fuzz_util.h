/* fuzz_util.h: helpers shared by the libFuzzer targets (a private scratch file per process,
 * writing an input plain or gzip-compressed, checking the one-line error contract). */
#ifndef BPROP_FUZZ_UTIL_H
#define BPROP_FUZZ_UTIL_H

#include "bprop.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

/* The readers take paths, so every input goes through files in one private directory (mkdtemp
 * under $TMPDIR), made on first use and removed at exit. A fuzzing process is single-threaded
 * and runs for one target only, so one static scratch directory is enough. */
static char fz_dir[512];      /* the scratch directory, "" until made */
static char fz_path[4][600];  /* files the target may use */

static void fz_cleanup(void)
{
    for (int i = 0; i < 4; i++)
        if (fz_path[i][0])
            unlink(fz_path[i]);
    rmdir(fz_dir);
}

/* Path of scratch file i (0..3) with the given name, creating the directory on first use. */
static const char *fz_file(int i, const char *name)
{
    if (!fz_dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(fz_dir, sizeof fz_dir, "%s/bprop-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(fz_dir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(fz_cleanup);
    }
    snprintf(fz_path[i], sizeof fz_path[i], "%s/%s", fz_dir, name);
    return fz_path[i];
}

/* Write n bytes to path as they are, or gzip-compressed when gz. */
static void fz_write(const char *path, const uint8_t *data, size_t n, int gz)
{
    if (gz) {
        gzFile g = gzopen(path, "wb1");
        if (!g || (n && gzwrite(g, data, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
            fprintf(stderr, "fuzz: cannot write %s\n", path);
            abort();
        }
        return;
    }
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "fuzz: cannot write %s\n", path);
        abort();
    }
}

/* An images-and-labels input, as the data-set targets take it: byte 0 flags (bit 0 gzip images,
 * bit 1 gzip labels, bit 2 no labels file, bit 3 classes 10 instead of inferred), bytes 1-2 the
 * images' length n (little-endian), then n bytes of images and the rest labels, written to
 * scratch files ia and ia + 1. Returns the flags, or -1 for an input too short to split. */
static inline int fz_image_label_files(const uint8_t *data, size_t size, int ia, const char *iname,
                                       const char *lname, const char **images, const char **labels)
{
    if (size < 3)
        return -1;
    unsigned flags = data[0];
    size_t n = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (n > size)
        n = size;
    *images = fz_file(ia, iname), *labels = fz_file(ia + 1, lname);
    fz_write(*images, data, n, flags & 1);
    fz_write(*labels, data + n, size - n, flags & 2);
    return (int)flags;
}

/* The library's contract for a refused input: a status that is not OK and one line that names
 * the file. A violation is a bug, so it aborts (libFuzzer then saves the input). */
static void fz_check_error(bprop_status st, const bprop_error *err, const char *path)
{
    if (st == BPROP_OK)
        return;
    if (st >= BPROP_E_COUNT || err->status != st) {
        fprintf(stderr, "fuzz: status %d, error record says %d\n", (int)st, (int)err->status);
        abort();
    }
    if (!err->message[0] || strchr(err->message, '\n') || !strstr(err->message, path)) {
        fprintf(stderr, "fuzz: bad error message for %s: '%s'\n", path, err->message);
        abort();
    }
}

#endif /* BPROP_FUZZ_UTIL_H */
