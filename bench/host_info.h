/* host_info.h: the CPU's model name and widest vector instruction set, for the benchmarks' CSV rows. */
#ifndef BPROP_BENCH_HOST_INFO_H
#define BPROP_BENCH_HOST_INFO_H

#include <stdio.h>
#include <string.h>

/* The first "model name" of /proc/cpuinfo into out (size n), commas turned into spaces so that
 * it is one CSV field; "unknown" where there is none (another OS, a CPU that does not say). */
static inline void host_cpu_model(char *out, size_t n)
{
    snprintf(out, n, "unknown");
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) != 0 || !colon)
            continue;
        const char *v = colon + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        snprintf(out, n, "%s", v);
        out[strcspn(out, "\r\n")] = '\0';
        for (char *c = out; *c; c++)
            if (*c == ',')
                *c = ' ';
        break;
    }
    fclose(f);
}

/* The widest vector instruction set this CPU runs, whatever the kernel set in use: "avx512f",
 * "avx2" (with FMA), "avx", "sse2", or "other". bench/torch_throughput.py names them the same
 * way from /proc/cpuinfo's flags. */
static inline const char *host_widest_isa(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return "avx512f";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        return "avx2";
    if (__builtin_cpu_supports("avx"))
        return "avx";
    if (__builtin_cpu_supports("sse2"))
        return "sse2";
#endif
    return "other";
}

#endif /* BPROP_BENCH_HOST_INFO_H */
