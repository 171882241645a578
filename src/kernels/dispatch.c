/* dispatch.c: chooses the kernel set once, from BPROP_ISA or what the CPU reports, and forwards. */
#include "fixed.h"
#include "kernels.h"
#include "internal.h"

#include <pthread.h>
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
 * compiler's check includes that) can run set s. */
static int cpu_runs(const bp_kernels *s)
{
#if defined(BPROP_KERNELS_X86)
    __builtin_cpu_init();
    if (s == &bp_kernels_avx2)
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (s == &bp_kernels_avx512)
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
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

/* The choice, made once per process (pthread_once): written by choose() only, read-only after. */
static struct {
    const bp_kernels *set;
    char problem[160]; /* why BPROP_ISA was not honoured; "" when it was (or is unset) */
} chosen;
static pthread_once_t chosen_once = PTHREAD_ONCE_INIT;

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

static void choose(void)
{
    const char *want = getenv("BPROP_ISA");
    const bp_kernels *best = &bp_kernels_generic, *named = NULL;
    for (size_t i = 0; i < N_SETS; i++) {
        if (cpu_runs(all_sets[i]))
            best = all_sets[i];
        if (want && strcmp(all_sets[i]->name, want) == 0)
            named = all_sets[i];
    }
    chosen.set = best;
    if (!want || !*want)
        return;
    char ok[64];
    supported_names(ok, sizeof ok);
    if (!named) {
        snprintf(chosen.problem, sizeof chosen.problem,
                 "BPROP_ISA=%.40s: no such kernel set (supported: %s)", want, ok);
        chosen.set = &bp_kernels_generic;
    } else if (!cpu_runs(named)) {
        snprintf(chosen.problem, sizeof chosen.problem,
                 "BPROP_ISA=%s: this CPU has no %s (supported: %s)", want, feature_of(named), ok);
        chosen.set = &bp_kernels_generic;
    } else {
        chosen.set = named;
    }
}

const bp_kernels *bp_kernels_active(void)
{
    pthread_once(&chosen_once, choose);
    return chosen.set;
}

const char *bprop_isa(void) { return bp_kernels_active()->name; }

bprop_status bprop_isa_check(bprop_error *err)
{
    bp_kernels_active();
    if (chosen.problem[0])
        return bp_fail(err, BPROP_E_ISA, "%s", chosen.problem);
    return BPROP_OK;
}

/* ---- the kernels.h entry points, through the chosen set ------------------------------------ */

int bp_scratch_alloc(bp_scratch *sc, size_t D, size_t H, size_t C)
{
    return bp_kernels_active()->scratch_alloc(sc, D, H, C);
}

void bp_scratch_free(bp_scratch *sc) { bp_kernels_active()->scratch_free(sc); }

size_t bp_w1_packed_size(size_t D, size_t H) { return bp_kernels_active()->w1_packed_size(D, H); }

void bp_pack_w1(const bp_net *net, size_t j0, size_t j1, float *w1p)
{
    bp_kernels_active()->pack_w1(net, j0, j1, w1p);
}

void bp_forward_hidden(const bp_net *net, const float *const *xr, size_t nb, float *h,
                       bp_scratch *sc)
{
    bp_kernels_active()->forward_hidden(net, xr, nb, h, sc);
}

void bp_logits_partial(const bp_net *net, size_t nb, const float *h, float *part)
{
    bp_kernels_active()->logits_partial(net, nb, h, part);
}

void bp_logits_combine(const float *b2, const float *part, size_t nhb, size_t nb, size_t C,
                       float *logits)
{
    bp_kernels_active()->logits_combine(b2, part, nhb, nb, C, logits);
}

void bp_forward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                      float *logits, bp_scratch *sc)
{
    bp_kernels_active()->forward_block(net, xr, nb, h, logits, sc);
}

double bp_softmax_xent(float *logits, const int32_t *y, size_t nb, size_t C, int32_t *pred)
{
    return bp_kernels_active()->softmax_xent(logits, y, nb, C, pred);
}

void bp_softmax(float *logits, size_t nb, size_t C, int32_t *pred)
{
    bp_kernels_active()->softmax(logits, nb, C, pred);
}

void bp_backward_block(const bp_net *net, const float *const *xr, size_t nb, float *h,
                       const float *dl, bp_grads *g, int first, bp_scratch *sc)
{
    bp_kernels_active()->backward_block(net, xr, nb, h, dl, g, first, sc);
}

double bp_fixed_add(int64_t *acc, const float *g, size_t n, double scale, int first)
{
    return bp_kernels_active()->fixed_add(acc, g, n, scale, first);
}

void bp_fixed_to_float(const int64_t *s, size_t n, double mul, float *out)
{
    bp_kernels_active()->fixed_to_float(s, n, mul, out);
}

void bp_add_i64(int64_t *dst, const int64_t *src, size_t n) { bp_kernels_active()->add_i64(dst, src, n); }

float bp_sgd(float *w, float *v, const float *g, size_t n, const bp_sgd_params *p)
{
    return bp_kernels_active()->sgd(w, v, g, n, p);
}

double bp_fixed_round(const float *g, size_t n, double scale, double mul, float *out)
{
    return bp_kernels_active()->fixed_round(g, n, scale, mul, out);
}

float bp_sgd_fixed(float *w, float *v, const int64_t *sq, const float *f, size_t n, double scale,
                   double mul, const bp_sgd_params *p, double *big, double *norm2)
{
    return bp_kernels_active()->sgd_fixed(w, v, sq, f, n, scale, mul, p, big, norm2);
}
