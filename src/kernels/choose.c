/* choose.c: which kernel set a workspace runs, from BPROP_ISA and what the CPU reports. */
/* The choice is a function of the environment and the CPU, evaluated by each caller (a
 * workspace when it is created, bprop_isa, bprop_isa_check); nothing is stored. */
#include "kernels.h"
#include "internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sets this build compiled (CMake defines BPROP_KERNELS_X86 when it builds the x86 ones). */
extern const bp_kernels bp_kernels_generic;
#if defined(BPROP_KERNELS_X86)
extern const bp_kernels bp_kernels_avx2;
extern const bp_kernels bp_kernels_avx512;
#endif

/* Narrowest first; the widest the CPU runs is the default. */
static const bp_kernels *const all_sets[] = {
    &bp_kernels_generic,
#if defined(BPROP_KERNELS_X86)
    &bp_kernels_avx2,
    &bp_kernels_avx512,
#endif
};
#define N_SETS (sizeof all_sets / sizeof all_sets[0])

/* Whether this CPU (and its operating system, which must save the wide registers: the
 * compiler's check includes that) can run set s, its list builders included (POPCNT, which
 * every AVX2 CPU has, is checked all the same). The CPU model is libgcc's, filled once by its
 * constructor before main; __builtin_cpu_init only returns when it is. */
static int cpu_runs(const bp_kernels *s)
{
#if defined(BPROP_KERNELS_X86)
    __builtin_cpu_init();
    const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                     __builtin_cpu_supports("popcnt");
    if (s == &bp_kernels_avx2)
        return avx2;
    if (s == &bp_kernels_avx512)
        return avx2 && __builtin_cpu_supports("avx512f");
#endif
    return s == &bp_kernels_generic;
}

const char *const *bp_kernels_list(size_t *n)
{
    static const char *const names[] = {
        "generic",
#if defined(BPROP_KERNELS_X86)
        "avx2",
        "avx512",
#endif
    };
    *n = sizeof names / sizeof names[0];
    return names;
}

const bp_kernels *bp_kernels_named(const char *name)
{
    for (size_t i = 0; i < N_SETS; i++)
        if (name && strcmp(all_sets[i]->name, name) == 0)
            return cpu_runs(all_sets[i]) ? all_sets[i] : NULL;
    return NULL;
}

/* "generic, avx2": the sets this CPU runs, for messages. */
static void supported_names(char *buf, size_t size)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < N_SETS && used < size; i++)
        if (cpu_runs(all_sets[i])) {
            int w = snprintf(buf + used, size - used, "%s%s", used ? ", " : "", all_sets[i]->name);
            used += w > 0 ? (size_t)w : 0;
        }
}

/* What CPU feature set s needs, for the message when it is missing. */
static const char *feature_of(const bp_kernels *s)
{
    return strcmp(s->name, "avx512") == 0 ? "AVX-512F" : strcmp(s->name, "avx2") == 0 ? "AVX2+FMA" : "";
}

const bp_kernels *bp_kernels_choose(char *why, size_t why_size)
{
    const char *want = getenv("BPROP_ISA");
    const bp_kernels *best = &bp_kernels_generic, *named = NULL;
    if (why && why_size)
        why[0] = '\0';
    for (size_t i = 0; i < N_SETS; i++) {
        if (cpu_runs(all_sets[i]))
            best = all_sets[i];
        if (want && strcmp(all_sets[i]->name, want) == 0)
            named = all_sets[i];
    }
    if (!want || !*want)
        return best;
    if (named && cpu_runs(named))
        return named;
    if (why && why_size) {
        char ok[64];
        supported_names(ok, sizeof ok);
        if (!named)
            snprintf(why, why_size, "BPROP_ISA=%.40s: no such kernel set (supported: %s)", want, ok);
        else
            snprintf(why, why_size, "BPROP_ISA=%s: this CPU has no %s (supported: %s)", want,
                     feature_of(named), ok);
    }
    return &bp_kernels_generic;
}

const char *bprop_isa(void) { return bp_kernels_choose(NULL, 0)->name; }

bprop_status bprop_isa_check(bprop_error *err)
{
    char why[160];
    bp_kernels_choose(why, sizeof why);
    if (why[0])
        return bp_fail(err, BPROP_E_ISA, "%s", why);
    return BPROP_OK;
}
