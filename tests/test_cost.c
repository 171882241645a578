/* test_cost.c: the cost model that --parallel auto chooses the split by (src/cost.h): deterministic, monotone, and right where measurements were clear. */
#include "cost.h"
#include "kernels.h"

#include <criterion/criterion.h>
#include <string.h>

static const char *const SETS[] = {"avx512", "avx2", "generic"};

static bp_cost_shape shape(const char *set, int threads, size_t batch, size_t hidden)
{
    return (bp_cost_shape){.samples = batch, .inputs = 784, .hidden = hidden, .classes = 10,
                           .has_bias = 1, .threads = threads, .ranks = 1, .exact = 0,
                           .kernels = set};
}

Test(cost, the_same_shape_gives_the_same_terms_seconds_and_choice)
{
    for (size_t k = 0; k < 3; k++)
        for (int exact = 0; exact <= 1; exact++) {
            bp_cost_shape s = shape(SETS[k], 2, 100, 300);
            s.exact = exact;
            for (int split = 0; split < BP_SPLITS; split++) {
                double a[BP_COST_TERMS], b[BP_COST_TERMS];
                bp_cost_terms(&s, (bp_split)split, a);
                bp_cost_terms(&s, (bp_split)split, b);
                cr_expect_eq(memcmp(a, b, sizeof a), 0);
                const double x = bp_cost_seconds(&s, (bp_split)split);
                const double y = bp_cost_seconds(&s, (bp_split)split);
                cr_expect_eq(memcmp(&x, &y, sizeof x), 0);
            }
            cr_expect_eq(bp_cost_choose(&s), bp_cost_choose(&s));
        }
}

/* No count makes a step cheaper; FMAs and bytes cost something; a byte costs no less at a
 * farther level (the model stays monotone in the sizes). */
Test(cost, weights_are_ordered_and_not_negative)
{
    for (size_t k = 0; k < 3; k++) {
        const bp_cost_shape s = shape(SETS[k], 2, 128, 256);
        double w[BP_COST_TERMS];
        bp_cost_weights(&s, w);
        for (int j = 0; j < BP_COST_TERMS; j++)
            cr_expect_geq(w[j], 0.0, "%s weight %d", SETS[k], j);
        cr_expect_gt(w[BP_COST_FMA], 0.0);
        cr_expect_gt(w[BP_COST_L2], 0.0);
        cr_expect_leq(w[BP_COST_L2], w[BP_COST_L3]);
        cr_expect_leq(w[BP_COST_L3], w[BP_COST_MEM]);
    }
}

/* More samples or more hidden units (more FMAs, more bytes) never predict a cheaper step. */
Test(cost, more_work_is_never_cheaper)
{
    const int threads[] = {1, 2, 3, 4, 8, 16};
    for (size_t k = 0; k < 3; k++)
        for (size_t t = 0; t < 6; t++)
            for (int split = 0; split < BP_SPLITS; split++)
                for (int exact = 0; exact <= 1; exact++)
                    for (size_t h = 64 * (size_t)threads[t]; h <= 8192; h = h * 3 / 2)
                        for (size_t b = 1; b <= 2048; b = b * 2 + 1) {
                            bp_cost_shape s = shape(SETS[k], threads[t], b, h);
                            s.exact = exact;
                            bp_cost_shape more_b = s, more_h = s;
                            more_b.samples = b * 2 + 1;
                            more_h.hidden = h * 3 / 2;
                            const double sec = bp_cost_seconds(&s, (bp_split)split);
                            cr_expect_leq(sec, bp_cost_seconds(&more_b, (bp_split)split),
                                          "%s %d threads batch %zu hidden %zu split %d exact %d",
                                          SETS[k], threads[t], b, h, split, exact);
                            cr_expect_leq(sec, bp_cost_seconds(&more_h, (bp_split)split),
                                          "%s %d threads batch %zu hidden %zu split %d exact %d",
                                          SETS[k], threads[t], b, h, split, exact);
                        }
}

/* The model counts a packed W1 exactly for the sets that pack it (their fwd_pack), for every set
 * this build has and this CPU runs. */
Test(cost, packed_w1_is_counted_for_the_sets_that_pack)
{
    size_t n;
    const char *const *names = bp_kernels_list(&n);
    for (size_t i = 0; i < n; i++) {
        const bp_kernels *k = bp_kernels_named(names[i]);
        if (k)
            cr_expect_eq(bp_cost_packs_w1(names[i]), k->fwd_pack, "%s", names[i]);
    }
}

Test(cost, one_thread_and_too_few_hidden_blocks_take_the_data_split)
{
    for (size_t k = 0; k < 3; k++) {
        bp_cost_shape s = shape(SETS[k], 1, 32, 4096);
        cr_expect_eq(bp_cost_choose(&s), BP_SPLIT_DATA);
        cr_expect_not(bp_cost_applies(&s, BP_SPLIT_HIDDEN));
        s = shape(SETS[k], 2, 32, 64); /* one hidden block for two threads */
        cr_expect_eq(bp_cost_choose(&s), BP_SPLIT_DATA);
        s = shape(SETS[k], 4, 32, 192);
        cr_expect_eq(bp_cost_choose(&s), BP_SPLIT_DATA);
    }
}

/* Points of the measured grids (docs/performance.md, "The cost model") where one split was the
 * better choice on 2 threads over both states of the machine (data/hidden time ratios): hidden at
 * batch 32 from 256 units (1.2-1.4 in the fast state, 2-3 in the slow one) and at batch 128 x
 * 1,024 units (a tie in the fast state, medians 0.98-1.07; 1.6-1.7 in the slow one), data at
 * batch 512 x 256 units (0.87-0.90 and 0.94) and at 128 units from batch 256 (medians of 7
 * rounds at batch 256 and 512: 0.88 and 0.84; on the avx2 set 0.85 and 0.79). Not here: the near ties (128 x 128, 128 x 256,
 * 128 x 4,096, 256 x 256, 512 x 1,024, 512 x 4,096), which a refit may move. */
Test(cost, auto_takes_the_split_measured_clearly_faster)
{
    const struct {
        size_t batch, hidden;
        bp_split want;
    } clear[] = {
        {32, 256, BP_SPLIT_HIDDEN}, {32, 1024, BP_SPLIT_HIDDEN}, {32, 4096, BP_SPLIT_HIDDEN},
        {128, 1024, BP_SPLIT_HIDDEN}, {512, 256, BP_SPLIT_DATA}, {256, 128, BP_SPLIT_DATA},
        {512, 128, BP_SPLIT_DATA},
    };
    for (size_t i = 0; i < sizeof clear / sizeof clear[0]; i++) {
        const bp_cost_shape s = shape("avx512", 2, clear[i].batch, clear[i].hidden);
        cr_expect_eq(bp_cost_choose(&s), clear[i].want, "batch %zu hidden %zu", clear[i].batch,
                     clear[i].hidden);
    }
}

/* The hidden split over ranks (rank_split): it needs a 64-unit block for each of ranks x
 * threads workers, moves only partial logits (far fewer bytes than the data split's sums over
 * ranks), does half the FMAs of one process's whole batch per rank on 2 ranks, and auto takes it
 * on 2 ranks x 1 thread at batch 128 for 256 and 1,024 units (every kernel set). */
Test(cost, the_hidden_split_over_ranks)
{
    for (size_t k = 0; k < 3; k++) {
        bp_cost_shape s = shape(SETS[k], 1, 64, 1024);
        s.ranks = 2;
        s.batch = 128;
        s.rank_split = 1;
        cr_expect(bp_cost_applies(&s, BP_SPLIT_HIDDEN), "%s: 16 blocks for 2 workers", SETS[k]);
        double d[BP_COST_TERMS], h[BP_COST_TERMS];
        bp_cost_terms(&s, BP_SPLIT_DATA, d);
        bp_cost_terms(&s, BP_SPLIT_HIDDEN, h);
        cr_expect_lt(h[BP_COST_NET] * 50.0, d[BP_COST_NET], "%s: partial logits, not sums", SETS[k]);
        cr_expect_eq(h[BP_COST_FMA], d[BP_COST_FMA], "%s: each rank half of the work", SETS[k]);
        cr_expect_eq(bp_cost_choose(&s), BP_SPLIT_HIDDEN, "%s at 1,024 units", SETS[k]);
        s.hidden = 256;
        cr_expect_eq(bp_cost_choose(&s), BP_SPLIT_HIDDEN, "%s at 256 units", SETS[k]);
        s.hidden = 64;
        cr_expect(!bp_cost_applies(&s, BP_SPLIT_HIDDEN), "%s: one block for 2 workers", SETS[k]);
        s.hidden = 128;
        s.threads = 2;
        cr_expect(!bp_cost_applies(&s, BP_SPLIT_HIDDEN), "%s: 2 blocks for 4 workers", SETS[k]);
    }
}
