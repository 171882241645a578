/* storage.h: the memory behind a data set's features: a read-only file mapping or a heap
 * buffer (internal; not installed). */
#ifndef BPROP_STORAGE_H
#define BPROP_STORAGE_H

#include "internal.h"

#include <stddef.h>
#include <stdint.h>

/* One block of memory a data set owns: munmap'ed or freed with it. */
typedef struct bp_storage {
    void *addr;  /* start of the mapping or buffer */
    size_t len;  /* bytes */
    int mapped;  /* 1: mmap of a file (MAP_PRIVATE), 0: malloc'ed */
} bp_storage;

/* Map the whole of path read-only (writable: copy-on-write pages, MAP_PRIVATE; the file is never
 * written). Sets *out to NULL without failing when path cannot be mapped but may still be read
 * another way: not a regular file, empty, or gzip-compressed (magic 1f 8b). BPROP_E_IO naming the
 * file when it cannot be opened. */
bprop_status bp_storage_map(const char *path, int writable, bp_storage **out, bprop_error *err);

/* Wrap a malloc'ed buffer of len bytes (taken over: freed with the storage, also when this
 * fails, which returns NULL). */
bp_storage *bp_storage_heap(void *buf, size_t len);

/* Release the memory and the record; NULL is allowed. */
void bp_storage_free(bp_storage *s);

/* A dataset of n samples x dim features held in st (taken over: freed with the dataset, also
 * when this fails): float32 features at x, or bytes at x8 (the other NULL); labels allocated
 * (zeroed) when labelled. Sizes are the caller's, already checked against st. */
bprop_status bp_dataset_wrap(size_t n, size_t dim, int labelled, bp_storage *st, float *x,
                             const uint8_t *x8, const char *path, bprop_dataset **out,
                             bprop_error *err);

/* A loader's last step: d to *out when s is BPROP_OK, else d freed (NULL is allowed); returns s. */
bprop_status bp_dataset_hand_over(bprop_status s, bprop_dataset *d, bprop_dataset **out);

#endif /* BPROP_STORAGE_H */
