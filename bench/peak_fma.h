/* peak_fma.h: the measured peak fp32 FMA rate of T threads, shared by the benchmark programs. */
#ifndef BPROP_BENCH_PEAK_FMA_H
#define BPROP_BENCH_PEAK_FMA_H

#include <omp.h>
#include <stddef.h>

/* The widest vector the build targets: the peak is what this build's code could reach, so a
 * portable build (no -march=native) measures its own SSE peak, not the machine's. */
#if defined(__AVX512F__)
#include <immintrin.h>
typedef __m512 pf_vec;
#define PF_ISA "avx512f-fma"
#define PF_SET1(v) _mm512_set1_ps(v)
#define PF_FMA(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
typedef __m256 pf_vec;
#define PF_ISA "avx2-fma"
#define PF_SET1(v) _mm256_set1_ps(v)
#define PF_FMA(a, b, c) _mm256_fmadd_ps((a), (b), (c))
#else
typedef float pf_vec __attribute__((vector_size(16)));
#define PF_ISA "generic-128 (mul+add)"
#define PF_SET1(v) ((pf_vec){(v), (v), (v), (v)})
#define PF_FMA(a, b, c) ((a) * (b) + (c))
#endif

#define PF_LANES (sizeof(pf_vec) / sizeof(float))
/* Independent chains per thread: FMA latency (4-5 cycles) times FMA ports (2) is about 10, and
 * the chains plus two constants must stay in registers: 32 with AVX-512, 16 below. */
#if defined(__AVX512F__)
#define PF_CHAINS 16
#else
#define PF_CHAINS 12
#endif
/* Flops of one trip through the inner loop: PF_CHAINS FMAs of PF_LANES lanes, 2 flops each. */
#define PF_FLOPS_PER_ITER (2.0 * PF_CHAINS * (double)PF_LANES)

/* Name of the instruction set the peak loop uses. */
static inline const char *bench_peak_isa(void) { return PF_ISA; }

/* Runs iters trips of PF_CHAINS independent FMA chains; returns a value that depends on all of
 * them so the compiler keeps the work. acc = acc * m + c converges to c / (1 - m) = 1: no
 * overflow, no denormals. */
static inline float bench_fma_chains(long iters, float start)
{
    const pf_vec m = PF_SET1(0.99999f), c = PF_SET1(0.00001f);
    pf_vec a[PF_CHAINS]; /* fully unrolled below, so each chain lives in its own register */
#pragma GCC unroll 16
    for (int k = 0; k < PF_CHAINS; k++)
        a[k] = PF_SET1(start + 0.01f * (float)k);
    for (long i = 0; i < iters; i++) {
#pragma GCC unroll 16
        for (int k = 0; k < PF_CHAINS; k++)
            a[k] = PF_FMA(a[k], m, c);
    }
    pf_vec s = a[0];
#pragma GCC unroll 16
    for (int k = 1; k < PF_CHAINS; k++)
        s += a[k];
    float total = 0.0f;
    for (size_t l = 0; l < PF_LANES; l++)
        total += s[l];
    return total;
}

/* Wall seconds for threads threads each running iters trips at once. *sink receives a value
 * derived from every thread's chains, so none of them can be optimised away. */
static inline double bench_fma_run(int threads, long iters, float *sink)
{
    float total = 0.0f;
    double t0 = 0.0, t1 = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
    {
        /* Start together so the wall time covers the work, not the thread wake-up. */
#pragma omp barrier
#pragma omp master
        t0 = omp_get_wtime();
        total += bench_fma_chains(iters, 1.0f + 0.001f * (float)omp_get_thread_num());
#pragma omp barrier
#pragma omp master
        t1 = omp_get_wtime();
    }
    *sink += total;
    return t1 - t0;
}

/**
 * Peak fp32 FMA rate in GFLOP/s of threads threads: each thread runs PF_CHAINS independent
 * chains for about seconds s; the best of runs runs counts (after an untimed warm-up that also
 * brings wide vector units and clocks up). 0 when threads < 1 or the timer failed.
 */
static inline double bench_peak_gflops(int threads, double seconds, int runs)
{
    if (threads < 1 || seconds <= 0.0 || runs < 1)
        return 0.0;
    float sink = 0.0f;
    /* Calibrate on the full team so that iters gives about seconds of work per run. */
    long iters = 1L << 16;
    double dt = bench_fma_run(threads, iters, &sink);
    while (dt < 0.02 && iters < (1L << 40)) {
        iters *= 4;
        dt = bench_fma_run(threads, iters, &sink);
    }
    if (dt > 0.0)
        iters = (long)((double)iters * seconds / dt) + 1;
    double best = 0.0;
    for (int r = 0; r < runs; r++) {
        dt = bench_fma_run(threads, iters, &sink);
        double gflops = dt > 0.0 ? PF_FLOPS_PER_ITER * (double)iters * threads / dt / 1e9 : 0.0;
        if (gflops > best)
            best = gflops;
    }
    /* sink is finite by construction; the test keeps the compiler from dropping the runs. */
    return sink == sink ? best : 0.0;
}

#endif /* BPROP_BENCH_PEAK_FMA_H */
