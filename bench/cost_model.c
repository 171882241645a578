/* cost_model.c: the cost model's counts, predicted step times and choice over a grid of shapes, as CSV (src/cost.h; no timing). */
#include "cost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const TERM_NAMES[BP_COST_TERMS] = {"fma", "rows", "l2", "l3",
                                                      "mem", "xcore", "net", "barrier", "step"};
static const char *const SPLIT_NAMES[BP_SPLITS] = {"data", "hidden"};

/* Parses the comma-separated list s into at most max sizes; returns how many. */
static size_t parse_list(const char *s, size_t *out, size_t max)
{
    size_t n = 0;
    while (s && *s && n < max) {
        char *end;
        unsigned long v = strtoul(s, &end, 10);
        if (end == s || v == 0)
            return 0;
        out[n++] = v;
        s = *end == ',' ? end + 1 : end;
    }
    return n;
}

/* One row per split of one shape: its counts, its weights' product and whether auto takes it. */
static void print_shape(const bp_cost_shape *s)
{
    const bp_split best = bp_cost_choose(s);
    for (int k = 0; k < BP_SPLITS; k++) {
        double t[BP_COST_TERMS];
        if (!bp_cost_applies(s, (bp_split)k))
            continue;
        bp_cost_terms(s, (bp_split)k, t);
        printf("%s,%d,%d,%zu,%zu,%d,%s", s->kernels, s->threads, s->ranks, s->samples, s->hidden,
               s->exact, SPLIT_NAMES[k]);
        for (int j = 0; j < BP_COST_TERMS; j++)
            printf(",%.6g", t[j]);
        printf(",%.6g,%d\n", bp_cost_seconds(s, (bp_split)k), best == (bp_split)k);
    }
}

int main(int argc, char **argv)
{
    if (argc < 4 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        fprintf(stderr, "usage: cost_model THREADS BATCHES HIDDENS [KERNELS [RANKS [EXACT]]]\n"
                        "  lists comma-separated, e.g. cost_model 1,2,4 32,128,512 32,256 avx512\n"
                        "  prints, per shape (784 inputs, 10 classes, biases) and applicable split,\n"
                        "  the model's counts, its predicted seconds per step and auto's choice\n");
        return argc < 4 ? 2 : 0;
    }
    size_t T[16], B[16], H[16];
    size_t nt = parse_list(argv[1], T, 16), nb = parse_list(argv[2], B, 16);
    size_t nh = parse_list(argv[3], H, 16);
    if (!nt || !nb || !nh) {
        fprintf(stderr, "cost_model: bad list\n");
        return 2;
    }
    const char *kernels = argc > 4 ? argv[4] : "avx512";
    const int ranks = argc > 5 ? atoi(argv[5]) : 1, exact = argc > 6 ? atoi(argv[6]) : 0;
    printf("kernels,threads,ranks,samples,hidden,exact,split");
    for (int j = 0; j < BP_COST_TERMS; j++)
        printf(",%s", TERM_NAMES[j]);
    printf(",seconds,chosen\n");
    for (size_t i = 0; i < nh; i++)
        for (size_t a = 0; a < nt; a++)
            for (size_t b = 0; b < nb; b++) {
                const bp_cost_shape s = {.samples = B[b] / (size_t)(ranks > 0 ? ranks : 1),
                                         .inputs = 784, .hidden = H[i], .classes = 10,
                                         .has_bias = 1, .threads = (int)T[a],
                                         .ranks = ranks > 0 ? ranks : 1, .exact = exact,
                                         .kernels = kernels, .batch = B[b],
                                         .rank_split = ranks > 1 && !exact &&
                                                       (H[i] + 63) / 64 >= T[a] * (size_t)ranks};
                print_shape(&s);
            }
    return 0;
}
