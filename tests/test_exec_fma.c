/* test_exec_fma.c: the benchmark's count of executed FMAs (bench/exec_fma.h) on data whose count is known. */
#include "../bench/exec_fma.h"
#include "kernels.h"

#include <criterion/criterion.h>
#include <stdlib.h>

enum { D = 784, C = 10, N = 300 };

/* N samples of D pixels, each with exactly pixels [0, nz) non-zero (nz = D: dense). */
static bprop_dataset *leading_pixels(size_t nz)
{
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(N, D, C, 1, &d, NULL), BPROP_OK);
    for (size_t i = 0; i < N; i++) {
        for (size_t k = 0; k < nz; k++)
            d->x[i * D + k] = 0.5f + (float)((i + k) % 7);
        d->y[i] = (int32_t)(i % C);
    }
    return d;
}

/* Every split and summation the bench can ask for, on 1 and 2 threads and batches that cut
 * blocks in every way, gives want FMAs per sample on set k. */
static void check_every_layout(const bp_kernels *k, const bprop_dataset *d, size_t h, double want)
{
    exec_counter ec;
    cr_assert_eq(exec_counter_init(&ec, k, D, C, h), 0, "%s: the probe failed", k->name);
    const bprop_parallel modes[] = {BPROP_PARALLEL_AUTO, BPROP_PARALLEL_DATA, BPROP_PARALLEL_HIDDEN};
    const size_t batches[] = {32, 100, 128, 512};
    for (size_t m = 0; m < 3; m++)
        for (size_t b = 0; b < 4; b++)
            for (size_t nt = 1; nt <= 2; nt++)
                for (int fixed = 0; fixed <= 1; fixed++) {
                    double got = exec_epoch_fmas(&ec, d, batches[b], nt, h, modes[m], fixed);
                    cr_expect_eq(got, want * (double)N,
                                 "%s H %zu batch %zu threads %zu mode %d fixed %d: %.0f, not %.0f",
                                 k->name, h, batches[b], nt, (int)modes[m], fixed, got,
                                 want * (double)N);
                }
    exec_counter_free(&ec);
}

/* Identical samples with the first 48 pixels non-zero: every forward tile lists those 48, and
 * 48 is a whole number of dW1 tiles of 1 to 8 pixels for every height dividing 48 (4, 6, 8), so
 * layer 1 executes 48 H FMAs each way per sample whatever the tiles and blocks. */
static void check_sparse(const char *name)
{
    const bp_kernels *k = bp_kernels_named(name);
    if (!k)
        cr_skip_test("%s: not on this CPU", name);
    bprop_dataset *d = leading_pixels(48);
    for (size_t h = 64; h <= 256; h += 192)
        check_every_layout(k, d, h, 2.0 * 48 * (double)h + 3.0 * (double)(h * C));
    bprop_dataset_free(d);
}

/* No zero pixel: the dense count 2 D H + 3 H C, also for a slice narrower than the sparse
 * threshold (H = 100 splits into 64 + 36 units over two threads). */
static void check_dense(const char *name)
{
    const bp_kernels *k = bp_kernels_named(name);
    if (!k)
        cr_skip_test("%s: not on this CPU", name);
    bprop_dataset *d = leading_pixels(D);
    for (size_t h = 100; h <= 256; h += 156)
        check_every_layout(k, d, h, 2.0 * D * (double)h + 3.0 * (double)(h * C));
    bprop_dataset_free(d);
}

Test(exec_fma, generic_sparse) { check_sparse("generic"); }
Test(exec_fma, avx2_sparse) { check_sparse("avx2"); }
Test(exec_fma, avx512_sparse) { check_sparse("avx512"); }
Test(exec_fma, generic_dense) { check_dense("generic"); }
Test(exec_fma, avx2_dense) { check_dense("avx2"); }
Test(exec_fma, avx512_dense) { check_dense("avx512"); }

/* Where the step cuts the batch into blocks shows in the forward tiles: with every 32nd sample
 * dense and the others all zero, the kernels group a block's zero samples first, so only the
 * last tile (of ((n - 1) % m) + 1 samples for a block of n and tiles of m) lists pixels, all D
 * of them. Batches of 32 on two threads: the data split with float sums gives each thread 16
 * samples, one block of them, the other layouts one block of 32. */
Test(exec_fma, follows_the_cut_of_the_batch)
{
    enum { H = 256, B = 32, STEPS = 10 };
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(B * STEPS, D, C, 1, &d, NULL), BPROP_OK);
    for (size_t i = B - 1; i < d->n; i += B)
        for (size_t k = 0; k < D; k++)
            d->x[i * D + k] = 1.0f;
    exec_counter ec;
    cr_assert_eq(exec_counter_init(&ec, NULL, D, C, H), 0);
    const double m = (double)ec.fwd_mr, layer2 = 3.0 * B * H * C;
    const double whole = ((double)((B - 1) % ec.fwd_mr) + 1.0 + 1.0) * D * H + layer2;
    const double halves = ((double)((B / 2 - 1) % ec.fwd_mr) + 1.0 + 1.0) * D * H + layer2;
    cr_expect_eq(exec_epoch_fmas(&ec, d, B, 2, H, BPROP_PARALLEL_DATA, 0), STEPS * halves, "m %g", m);
    cr_expect_eq(exec_epoch_fmas(&ec, d, B, 2, H, BPROP_PARALLEL_DATA, 1), STEPS * whole, "m %g", m);
    cr_expect_eq(exec_epoch_fmas(&ec, d, B, 1, H, BPROP_PARALLEL_DATA, 0), STEPS * whole, "m %g", m);
    /* the hidden split: every thread's slice (128 units each) over the block of 32 */
    cr_expect_eq(exec_epoch_fmas(&ec, d, B, 2, H, BPROP_PARALLEL_HIDDEN, 0), STEPS * whole, "m %g", m);
    exec_counter_free(&ec);
    bprop_dataset_free(d);
}
