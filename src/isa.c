/* isa.c: which kernel set runs (interim: the one this build compiled; dispatch replaces it). */
#include "internal.h"

const char *bprop_isa(void)
{
#if defined(__AVX512F__)
    return "avx512";
#elif defined(__AVX2__)
    return "avx2";
#else
    return "generic";
#endif
}

bprop_status bprop_isa_check(bprop_error *err)
{
    (void)err;
    return BPROP_OK;
}
