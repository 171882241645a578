/* peak_fma.h: the measured peak fp32 FMA rate of T threads, shared by the benchmark programs. */
#ifndef BPROP_BENCH_PEAK_FMA_H
#define BPROP_BENCH_PEAK_FMA_H

#include "bprop.h"

#include <omp.h>
#include <stddef.h>
#include <string.h>
#include <time.h>

/* The peak is that of the instruction set bprop's kernels use (bprop_isa(): the widest the CPU
 * runs, or BPROP_ISA), so the fraction of peak compares the kernels with their own ceiling. Each
 * level's loop is compiled for that level by a target attribute; the generic level is 4-wide
 * multiply-then-add, like the generic kernels on x86-64 without FMA. */
typedef float pf_v4 __attribute__((vector_size(16)));
typedef float pf_v8 __attribute__((vector_size(32)));
typedef float pf_v16 __attribute__((vector_size(64)));

/* Independent chains per thread: FMA latency (4-5 cycles) times FMA ports (2) is about 10, and
 * the chains plus two constants must stay in registers: 32 with AVX-512, 16 below. */
#define PF_CHAINS_MAX 16

/* Defines pf_chains_NAME(iters, start): iters trips of chains independent multiply-add chains
 * of vectors VT (lanes floats); returns a value that depends on all of them so the compiler
 * keeps the work. acc = acc * m + c converges to c / (1 - m) = 1: no overflow, no denormals. */
#define PF_DEFINE_CHAINS(NAME, ATTR, VT, lanes, chains)                                          \
    static ATTR __attribute__((noinline)) float pf_chains_##NAME(long iters, float start)        \
    {                                                                                            \
        VT m, c, a[chains];                                                                      \
        for (int l = 0; l < (lanes); l++) {                                                      \
            m[l] = 0.99999f;                                                                     \
            c[l] = 0.00001f;                                                                     \
        }                                                                                        \
        _Pragma("GCC unroll 16") for (int k = 0; k < (chains); k++)                              \
            for (int l = 0; l < (lanes); l++)                                                    \
                a[k][l] = start + 0.01f * (float)k;                                              \
        for (long i = 0; i < iters; i++) {                                                       \
            _Pragma("GCC unroll 16") for (int k = 0; k < (chains); k++)                          \
                a[k] = a[k] * m + c;                                                             \
        }                                                                                        \
        float total = 0.0f;                                                                      \
        for (int k = 0; k < (chains); k++)                                                       \
            for (int l = 0; l < (lanes); l++)                                                    \
                total += a[k][l];                                                                \
        return total;                                                                            \
    }

PF_DEFINE_CHAINS(generic, , pf_v4, 4, 12)
#if defined(__x86_64__)
PF_DEFINE_CHAINS(avx2, __attribute__((target("avx2,fma"))), pf_v8, 8, 12)
PF_DEFINE_CHAINS(avx512, __attribute__((target("avx512f,avx2,fma"))), pf_v16, 16, 16)
#endif

/* One level's peak loop. */
typedef struct pf_level {
    const char *name;                  /* as the CSV reports it */
    int lanes, chains;
    float (*run)(long iters, float start);
} pf_level;

/* The level of the kernel set in use. */
static inline pf_level bench_peak_level(void)
{
    const char *isa = bprop_isa();
#if defined(__x86_64__)
    if (strcmp(isa, "avx512") == 0)
        return (pf_level){"avx512f-fma", 16, 16, pf_chains_avx512};
    if (strcmp(isa, "avx2") == 0)
        return (pf_level){"avx2-fma", 8, 12, pf_chains_avx2};
#endif
    (void)isa;
    return (pf_level){"generic-128 (mul+add)", 4, 12, pf_chains_generic};
}

/* Name of the instruction set the peak loop uses. */
static inline const char *bench_peak_isa(void) { return bench_peak_level().name; }

/* Flops of one trip through a level's inner loop: chains FMAs of lanes lanes, 2 flops each. */
static inline double bench_flops_per_iter(pf_level L) { return 2.0 * L.chains * (double)L.lanes; }

/* Now, in seconds: wall time, or with cpu the CPU time of the whole process (all threads) —
 * what a loaded machine's time-slicing does not inflate. */
static inline double bench_now(int cpu)
{
    struct timespec ts;
    if (cpu && clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts) == 0)
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return omp_get_wtime();
}

/* Seconds for threads threads each running iters trips at once: wall seconds, or with cpu the
 * process's CPU seconds per thread. *sink receives a value derived from every thread's chains,
 * so none of them can be optimised away. */
static inline double bench_fma_run(int threads, long iters, float *sink, int cpu)
{
    const pf_level L = bench_peak_level();
    float total = 0.0f;
    double t0 = 0.0, t1 = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        /* Start together so the wall time covers the work, not the thread wake-up. */
#pragma omp barrier
#pragma omp master
        t0 = bench_now(cpu);
        total += L.run(iters, 1.0f + 0.001f * (float)omp_get_thread_num());
#pragma omp barrier
#pragma omp master
        t1 = bench_now(cpu);
    }
    *sink += total;
    return (t1 - t0) / (cpu ? threads : 1);
}

/**
 * Peak fp32 FMA rate in GFLOP/s of threads threads: each thread runs PF_CHAINS independent
 * chains for about seconds s; the best of runs runs counts (after an untimed warm-up that also
 * brings wide vector units and clocks up); cpu: timed in CPU seconds (see bench_now). 0 when
 * threads < 1 or the timer failed.
 */
static inline double bench_peak_gflops(int threads, double seconds, int runs, int cpu)
{
    if (threads < 1 || seconds <= 0.0 || runs < 1)
        return 0.0;
    float sink = 0.0f;
    /* Calibrate on the full team so that iters gives about seconds of work per run. */
    long iters = 1L << 16;
    double dt = bench_fma_run(threads, iters, &sink, cpu);
    while (dt < 0.02 && iters < (1L << 40)) {
        iters *= 4;
        dt = bench_fma_run(threads, iters, &sink, cpu);
    }
    if (dt > 0.0)
        iters = (long)((double)iters * seconds / dt) + 1;
    double best = 0.0;
    for (int r = 0; r < runs; r++) {
        dt = bench_fma_run(threads, iters, &sink, cpu);
        double gflops = dt > 0.0 ? bench_flops_per_iter(bench_peak_level()) * (double)iters * threads / dt / 1e9 : 0.0;
        if (gflops > best)
            best = gflops;
    }
    /* sink is finite by construction; the test keeps the compiler from dropping the runs. */
    return sink == sink ? best : 0.0;
}

#endif /* BPROP_BENCH_PEAK_FMA_H */
