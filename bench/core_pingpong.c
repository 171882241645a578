/* core_pingpong.c: prints the one-way latency of a cache line handed back and forth between two threads. */
/* A probe of the state of the machine's cores rather than of bprop: on the shared 2-core VMs the
 * project's figures come from, lines written by the other core move several times slower for
 * seconds to minutes at a time (about 30 ns one way in the fast state, 150 ns and more in the
 * slow one), and the data split's sums over threads slow down with them. Scripts run it before
 * and after a timed run to tag it (scripts/split_states.sh). */
#include <errno.h>
#include <omp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Seconds for `rounds` round trips of a counter between two threads: thread 0 writes an odd
 * value and waits for the next even one, thread 1 the other way round. -1 when the runtime
 * gave fewer than two threads (OMP_THREAD_LIMIT). */
static double bounce(long rounds)
{
    _Alignas(64) atomic_long turn = 0;
    double t0 = 0.0, t1 = -1.0;
#pragma omp parallel num_threads(2)
    if (omp_get_num_threads() == 2) {
        const long me = omp_get_thread_num();
#pragma omp barrier
        if (me == 0)
            t0 = omp_get_wtime();
        for (long i = 0; i < rounds; i++) {
            const long mine = 2 * i + 1 + me, theirs = 2 * i + me; /* 0 writes odd, 1 even */
            while (atomic_load_explicit(&turn, memory_order_acquire) != theirs)
                ;
            atomic_store_explicit(&turn, mine, memory_order_release);
        }
        if (me == 0) {
            while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * rounds)
                ;
            t1 = omp_get_wtime();
        }
    }
    return t1 - t0;
}

int main(int argc, char **argv)
{
    long rounds = 200000;
    if (argc > 2 || (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")))) {
        fprintf(argc == 2 ? stdout : stderr,
                "usage: core_pingpong [ROUNDS]\n"
                "Hands a cache line between two threads ROUNDS times (default 200000) and prints\n"
                "\"pingpong N ns one way\". Needs two processors.\n");
        return argc == 2 ? 0 : 2;
    }
    if (argc == 2) {
        char *end = NULL;
        errno = 0;
        rounds = strtol(argv[1], &end, 10);
        if (errno || end == argv[1] || *end || rounds < 1 || rounds > 100000000) {
            fprintf(stderr, "core_pingpong: ROUNDS must be an integer in 1..100000000, not '%s'\n",
                    argv[1]);
            return 2;
        }
    }
    if (omp_get_num_procs() < 2) {
        fprintf(stderr, "core_pingpong: needs two processors, this process has %d\n",
                omp_get_num_procs());
        return 1;
    }
    omp_set_dynamic(0);
    const double sec = bounce(rounds);
    if (sec < 0.0) {
        fprintf(stderr, "core_pingpong: the OpenMP runtime gave fewer than two threads\n");
        return 1;
    }
    printf("pingpong %.0f ns one way\n", sec / (2.0 * (double)rounds) * 1e9);
    return 0;
}
