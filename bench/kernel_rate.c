/* kernel_rate.c: one thread's forward + backward kernel rate on Fashion-MNIST, against the FMA peak. */
#include "bprop.h"
#include "exec_fma.h"
#include "kernels.h"
#include "peak_fma.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* CPU seconds of the calling thread: what the kernels cost, whatever else the machine runs. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The kernels of one training step of batch nb on one thread (W1 packed once, then blocks of
 * BP_BLOCK: forward, softmax cross-entropy, backward into g), as the trainer's data split runs
 * them. */
static void step(const bp_kernels *k, const bp_net *net, const float *const *xr, const int32_t *y,
                 size_t nb, float *h, float *logits, int32_t *pred, bp_grads *g, bp_scratch *sc)
{
    if (net->w1p)
        bp_pack_w1(k, net, 0, net->H, (float *)net->w1p);
    for (size_t s0 = 0; s0 < nb; s0 += BP_BLOCK) {
        size_t n = nb - s0 < BP_BLOCK ? nb - s0 : BP_BLOCK;
        bp_forward_block(net, xr + s0, n, h, logits, sc);
        bp_softmax_xent(logits, y + s0, n, net->C, pred);
        bp_backward_block(net, xr + s0, n, h, logits, g, 1, sc);
    }
}

/* The features of d standardised with its own statistics, as bprop train --standardize does. */
static bprop_status standardize(bprop_dataset *d, bprop_error *err)
{
    float *mean = malloc(d->dim * sizeof(float)), *scale = malloc(d->dim * sizeof(float));
    bprop_status st = mean && scale ? bprop_dataset_feature_stats(d, mean, scale) : BPROP_E_NOMEM;
    if (st == BPROP_OK)
        st = bprop_dataset_standardize(d, mean, scale);
    if (st != BPROP_OK)
        snprintf(err->message, sizeof err->message, "cannot standardise the features");
    free(mean), free(scale);
    return st;
}

int main(int argc, char **argv)
{
    size_t H = argc > 1 ? (size_t)atol(argv[1]) : 256, nb = argc > 2 ? (size_t)atol(argv[2]) : 512;
    int runs = argc > 3 ? atoi(argv[3]) : 15;
    const int dense = argc > 4 && strcmp(argv[4], "--standardize") == 0;
    if (H == 0 || nb == 0 || runs < 1 || (argc > 4 && !dense) || argc > 5) {
        fprintf(stderr, "usage: kernel_rate [H [BATCH [RUNS [--standardize]]]]\n"
                        "Best of RUNS timings (thread CPU time, ~0.2 s each) of the forward and backward\n"
                        "kernels over batches of Fashion-MNIST training images on one thread, in the\n"
                        "kernel set in use (BPROP_ISA chooses); prints CSV, with the %% of peak by\n"
                        "the dense FLOP count and on the FMAs executed (bench/exec_fma.h).\n"
                        "--standardize: the features standardised (as bprop train --standardize):\n"
                        "dense inputs, no zero input to skip.\n");
        return 2;
    }
    bprop_error err;
    bprop_dataset *d = NULL;
    if (bprop_isa_check(&err) != BPROP_OK ||
        bprop_dataset_load_idx("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz",
                               "/usr/share/datasets/fashion-mnist/train-labels-idx1-ubyte.gz", 10, &d,
                               &err) != BPROP_OK ||
        bprop_dataset_to_float(d, &err) != BPROP_OK || /* the kernels read float rows */
        (dense && standardize(d, &err) != BPROP_OK)) {
        fprintf(stderr, "kernel_rate: %s\n", err.message);
        return 1;
    }
    const size_t D = d->dim, C = 10, nbatch = d->n / nb;
    float *w1 = malloc(D * H * sizeof(float)), *b1 = calloc(H, sizeof(float));
    float *w2t = malloc(C * H * sizeof(float)), *b2 = calloc(C, sizeof(float));
    float *gw1 = malloc(D * H * sizeof(float)), *gb1 = calloc(H, sizeof(float));
    float *gw2t = calloc(C * H, sizeof(float)), *gb2 = calloc(C, sizeof(float));
    float *h = malloc(BP_BLOCK * H * sizeof(float)), *logits = malloc(BP_BLOCK * C * sizeof(float));
    const float **xr = malloc(d->n * sizeof(float *));
    int32_t pred[BP_BLOCK];
    srand(42);
    for (size_t i = 0; i < D * H; i++)
        w1[i] = 0.1f * ((float)rand() / (float)RAND_MAX - 0.5f);
    for (size_t i = 0; i < C * H; i++)
        w2t[i] = 0.2f * ((float)rand() / (float)RAND_MAX - 0.5f);
    for (size_t s = 0; s < d->n; s++)
        xr[s] = d->x + s * D;
    const bp_kernels *k = bp_kernels_choose(NULL, 0);
    const size_t packed = bp_w1_packed_size(k, D, H);
    float *w1p = packed ? malloc(packed * sizeof(float)) : NULL;
    bp_net net = {D, H, C, H, w1, b1, w2t, b2, w1p};
    bp_grads g = {gw1, gb1, gw2t, gb2, NULL};
    bp_scratch sc;
    if (!bp_scratch_alloc(&sc, k, D, H, C)) {
        fprintf(stderr, "kernel_rate: out of memory\n");
        return 1;
    }
    /* Each timing walks on through the training set, batch after batch, for about 0.2 s. */
    double best = 0.0;
    size_t next = 0;
    for (int r = 0; r < runs; r++) {
        size_t samples = 0;
        double t0 = thread_seconds(), t;
        do {
            size_t b = next++ % nbatch;
            step(k, &net, xr + b * nb, d->y + b * nb, nb, h, logits, pred, &g, &sc);
            samples += nb;
        } while ((t = thread_seconds() - t0) < 0.2);
        if (samples / t > best)
            best = samples / t;
    }
    double flops = 3196.0 * (double)H, peak = bench_peak_gflops(1, 0.2, runs, 1);
    /* The timings cycle through the whole batches; their executed FMAs (exec_fma.h) over the
     * dense count: one thread runs each batch's blocks in order, as a one-thread step does. */
    double share = -1.0;
    exec_counter ec;
    if (exec_counter_init(&ec, NULL, D, C, H) == 0) {
        bprop_dataset whole = *d; /* a view of the first nbatch * nb samples, not owned */
        whole.n = nbatch * nb;
        share = exec_epoch_fmas(&ec, &whole, nb, 1, H, BPROP_PARALLEL_DATA, 0) /
                ((double)whole.n * (2.0 * (double)D * (double)H + 3.0 * (double)H * (double)C));
        exec_counter_free(&ec);
    }
    printf("isa,hidden,batch,samples_per_s,gflops,peak_gflops,peak_fraction,exec_share,"
           "exec_fraction\n");
    printf("%s,%zu,%zu,%.0f,%.2f,%.1f,%.4f", k->name, H, nb, best, best * flops / 1e9, peak,
           best * flops / 1e9 / peak);
    if (share >= 0.0)
        printf(",%.4f,%.4f\n", share, share * best * flops / 1e9 / peak);
    else
        printf(",,\n");
    bp_scratch_free(&sc);
    free(w1), free(b1), free(w2t), free(b2), free(gw1), free(gb1), free(gw2t), free(gb2);
    free(h), free(logits), free(xr), free(w1p);
    bprop_dataset_free(d);
    return 0;
}
