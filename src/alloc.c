/* alloc.c: overflow-checked, cache-line aligned allocation. */
#include "internal.h"

#include <stdlib.h>
#include <string.h>

int bp_mul_overflows(size_t a, size_t b, size_t *out)
{
    size_t r;
    if (__builtin_mul_overflow(a, b, &r))
        return 1;
    *out = r;
    return 0;
}

void *bp_alloc(size_t count, size_t size)
{
    size_t bytes;
    if (bp_mul_overflows(count, size, &bytes) || bytes > SIZE_MAX - BP_ALIGN)
        return NULL;
    bytes = (bytes + BP_ALIGN - 1) / BP_ALIGN * BP_ALIGN;
    if (bytes == 0)
        bytes = BP_ALIGN;
    void *p = aligned_alloc(BP_ALIGN, bytes);
    if (p)
        memset(p, 0, bytes);
    return p;
}

void bp_free(void *p) { free(p); }
