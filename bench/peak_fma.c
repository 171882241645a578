/* peak_fma.c: prints the measured peak fp32 FMA rate (GFLOP/s) for a list of thread counts. */
#include "peak_fma.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: peak_fma [--seconds S] [--runs N] [--cpu-time] [THREADS ...]\n"
            "Measures the peak fp32 FMA rate of THREADS threads (default 1, 2, 4, ... up to\n"
            "the processor count): each thread runs %d independent FMA chains (of the kernel set\n"
            "bprop_isa() names: BPROP_ISA chooses) for about S\n"
            "seconds (default 0.2), best of N runs (default 5). Prints CSV:\n"
            "--cpu-time times CPU seconds of the process per thread instead of wall seconds (a loaded\n"
            "machine). ""threads,peak_gflops,per_thread_gflops,isa\n",
            bench_peak_level().chains);
}

/* Parses a positive number from s into *out; 0 on success. */
static int parse_positive(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v > 0.0))
        return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv)
{
    double seconds = 0.2, runs = 5.0;
    int counts[64], n = 0, cpu = 0;
    for (int i = 1; i < argc; i++) {
        double v = 0.0;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--cpu-time")) {
            cpu = 1;
        } else if (!strcmp(argv[i], "--seconds") || !strcmp(argv[i], "--runs")) {
            if (i + 1 >= argc || parse_positive(argv[i + 1], &v) != 0) {
                fprintf(stderr, "peak_fma: %s needs a positive number\n", argv[i]);
                return 2;
            }
            *(argv[i][2] == 's' ? &seconds : &runs) = v;
            i++;
        } else if (parse_positive(argv[i], &v) == 0 && v == (int)v && n < 64) {
            counts[n++] = (int)v;
        } else {
            fprintf(stderr, "peak_fma: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (n == 0) {
        int procs = omp_get_num_procs();
        for (int t = 1; t < procs && n < 63; t *= 2)
            counts[n++] = t;
        counts[n++] = procs;
    }
    printf("threads,peak_gflops,per_thread_gflops,isa\n");
    for (int i = 0; i < n; i++) {
        double g = bench_peak_gflops(counts[i], seconds, (int)runs, cpu);
        printf("%d,%.1f,%.1f,%s\n", counts[i], g, g / counts[i], bench_peak_isa());
        fflush(stdout);
    }
    return 0;
}
