/* cost.c: the cost model of one step (counts of FMAs, bytes by cache level, barriers) and the split it predicts fastest. */
#include "cost.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

/*
 * The model. A step's time is predicted as sum_k terms[k] * weights[k]: terms count what the
 * slowest thread executes (FMAs, input values) and the bytes the step moves at each level of the
 * memory hierarchy, weights are the seconds each unit costs. The counts follow the code of each
 * split (docs/parallel.md, "Choosing the split"); the weights are this file's assumptions about
 * the machine, fitted to step times measured on a 2-core AMD EPYC (Zen 4) with the avx512 set
 * (docs/performance.md, "The cost model"). Nothing here reads a clock: the choice is a function
 * of the shape, the threads, the ranks and the kernel set alone.
 */

/* ---- the machine ---------------------------------------------------------------------------- */

/* Cache sizes the traffic is placed by: a thread's working set within its private L2 moves at L2
 * speed, the team's within the shared L3 at L3 speed, anything larger at memory speed. */
static const double L2_BYTES = 1024.0 * 1024.0;      /* per core (Zen 4: 1 MiB) */
static const double L3_BYTES = 32.0 * 1024.0 * 1024.0; /* shared by the cores of the team */

/* Seconds per byte and per event, shared by every kernel set, and the avx512 set's rates below:
 * fitted to the means over every round of the avx512 grid (scripts/cost_fit.py --fit --mean,
 * ratio weight 0.5, which rewrites the lines marked "fitted"; docs/performance.md, "The cost
 * model"). The means count the two states the 2-core VM is seen in at their frequency: in one
 * the data split's sums over threads (lines another core wrote) are cheap, in the other dear
 * (likely where the host places the two virtual cores: sharing an L3 or not; not verified); a
 * choice made without timings has to do well in both. The grid of the current fit ran into the
 * dear state in 3 of its 15 rounds at 2 threads x 128 x 256 (ping-pong probes earlier the same
 * day: 7 of 22), so the fitted price of a line another core wrote includes it at about its
 * share. The rates are effective ones (write-allocation, prefetch and overlap with
 * the FMAs included), lower than the hardware's peak bandwidths. */
static const double SEC_PER_L2_BYTE = 1.0 / 44.7e9;    /* fitted: a core's own L2 */
static const double SEC_PER_L3_BYTE = 1.0 / 44.7e9;    /* fitted: a core's share of the L3 */
static const double SEC_PER_MEM_BYTE = 1.0 / 26.1e9;   /* fitted: the team's memory bandwidth */
static const double SEC_PER_XCORE_BYTE = 1.0 / 8.73e9; /* fitted: a line another core wrote */
static const double SEC_PER_NET_BYTE = 1.0 / 4e9;      /* an allreduce between processes: assumed,
                                                          not measured (shared-memory MPI) */
static const double SEC_PER_BARRIER = 4.5e-06;         /* fitted: an OpenMP barrier of 2 threads */
static const double SEC_PER_STEP = 0.0;                /* fitted: a step's fixed costs (plan,
                                                          scales, loss) */
#define AVX512_FMA_PER_SEC 49.6e9        /* fitted: executed FMAs per second, avx512 */
#define AVX512_SEC_PER_ROW_VALUE 0.58e-9 /* fitted: an input value gathered, converted, listed */
/* avx2's two rates, fitted to the avx2 grid with the weights above held (cost_fit.py --kernels
 * avx2 --fit): the same machine's FMAs, 256 bits wide, and its input values. */
#define AVX2_FMA_PER_SEC 42.8e9          /* fitted: executed FMAs per second, avx2 */
#define AVX2_SEC_PER_ROW_VALUE 0.59e-9   /* fitted: an input value gathered, converted, listed */

/* A kernel set's speed: seconds per executed FMA (both layers: their counts are in a fixed
 * ratio for every split, so one weight is all the measurements can tell apart) and per input
 * value gathered, converted and listed, and the share of layer-1 FMAs it executes on image-like
 * inputs (zero inputs skipped: the shares the executed-FMA counter gives on Fashion-MNIST at 256
 * units, docs/performance.md, "Dense FLOPs and executed FMAs"). Inputs without zeros
 * (standardised) execute every FMA, which the model does not see: it assumes these shares for
 * every data set. */
typedef struct kernel_speed {
    const char *name;
    double sec_per_fma, sec_per_row_value;
    double layer1_share;
    int packs_w1; /* the set's FWD_PACK (src/kernels/kernels_<set>.c; tests/test_cost.c checks) */
} kernel_speed;

static const kernel_speed KERNEL_SPEEDS[] = {
    /* avx512: fitted on the grid (Zen 4, 2 cores). */
    {"avx512", 1.0 / AVX512_FMA_PER_SEC, AVX512_SEC_PER_ROW_VALUE, 0.68, 0},
    /* avx2: fitted on its own grid (Zen 4, 2 cores, BPROP_ISA=avx2). generic: not fitted; its
     * FMAs cost 4.8 times avx512's, the ratio of one-thread kernel rates at 256 units, batch 512
     * (37k samples/s on an AVX2 EPYC, docs/performance.md "Kernel rate on AVX2", against 166k
     * for avx512 on this grid). */
    {"avx2", 1.0 / AVX2_FMA_PER_SEC, AVX2_SEC_PER_ROW_VALUE, 0.65, 1},
    {"generic", 4.8 / AVX512_FMA_PER_SEC, 0.62e-9, 0.63, 1}, /* also any set the table does not name */
};

static const kernel_speed *speed_of(const char *name)
{
    const size_t n = sizeof KERNEL_SPEEDS / sizeof KERNEL_SPEEDS[0];
    for (size_t i = 0; name && i < n; i++)
        if (!strcmp(KERNEL_SPEEDS[i].name, name))
            return &KERNEL_SPEEDS[i];
    return &KERNEL_SPEEDS[n - 1];
}

int bp_cost_packs_w1(const char *kernels)
{
    return speed_of(kernels)->packs_w1;
}

void bp_cost_weights(const bp_cost_shape *s, double w[BP_COST_TERMS])
{
    const kernel_speed *k = speed_of(s->kernels);
    w[BP_COST_FMA] = k->sec_per_fma;
    w[BP_COST_ROWS] = k->sec_per_row_value;
    w[BP_COST_L2] = SEC_PER_L2_BYTE;
    w[BP_COST_L3] = SEC_PER_L3_BYTE;
    w[BP_COST_MEM] = SEC_PER_MEM_BYTE;
    w[BP_COST_XCORE] = SEC_PER_XCORE_BYTE;
    w[BP_COST_NET] = SEC_PER_NET_BYTE;
    w[BP_COST_BARRIER] = SEC_PER_BARRIER;
    w[BP_COST_STEP] = SEC_PER_STEP;
}

/* ---- counting ------------------------------------------------------------------------------- */

/* One thread's view of the step: the samples it runs, the hidden units it owns, its blocks. */
typedef struct view {
    double rows, width, blocks;
    double D, H, C, P, nt;
    int fwd_grouped;  /* the forward runs blocks in groups: the hidden split always, the data
                         split where W1 is BP_FWD_GROUP_MIN bytes or more (not with exact sums,
                         whose pass runs block by block) */
    int sums_grouped; /* and their dW1 sums go once a group (float sums) */
} view;

static double ceil_div(double a, double b)
{
    return ceil(a / b);
}

static view common_view(const bp_cost_shape *s)
{
    view v = {.D = (double)s->inputs, .H = (double)s->hidden, .C = (double)s->classes,
              .nt = s->threads > 1 ? s->threads : 1};
    v.P = v.D * v.H + v.H * v.C + (s->has_bias ? v.H + v.C : 0.0);
    return v;
}

/* bytes moved in total by par threads over arrays whose per-thread part is own bytes and whose
 * union is all bytes: in L2 when each part fits a core's L2, else in L3 as far as the union fits
 * it (the share L3 / all of a larger union), the rest from memory (whose bandwidth the threads
 * share, so memory counts the total). */
static void traffic(double t[BP_COST_TERMS], double bytes, double par, double own, double all)
{
    if (own <= L2_BYTES) {
        t[BP_COST_L2] += bytes / par;
        return;
    }
    const double in_l3 = all <= L3_BYTES ? 1.0 : L3_BYTES / all;
    t[BP_COST_L3] += in_l3 * bytes / par;
    t[BP_COST_MEM] += (1.0 - in_l3) * bytes;
}

/* Of the input values' costs (gather, bitmaps, forward lists, backward lists), the share a
 * backward that gathers its rows again pays once more: the gather and the bitmaps, 2.8 of the
 * 8.2% of a one-thread 1 x 512 x 256 step that the four take (bench/results/peak80_2026-12-05.md). */
static const double REGATHER_SHARE = 2.8 / 8.2;

/* What every split does per thread: its FMAs and input values, its reads of W1 by the forward
 * (the first block's from wherever the last update left W1, the next from L3 or memory when
 * its view is larger than L2: re-reads from L2 hide behind the FMAs, whose forward tiles run at
 * 97.5% of the peak with W1 in L2, peak80_2026-12-05.md) and the sums of dW1 over its blocks.
 * row_passes: 1, or 1 + REGATHER_SHARE where the backward gathers the rows again. */
static void pass_terms(const bp_cost_shape *s, const view *v, double row_passes, double all,
                       double t[])
{
    const double share = speed_of(s->kernels)->layer1_share;
    t[BP_COST_FMA] += 2.0 * v->rows * v->D * v->width * share + 3.0 * v->rows * v->width * v->C;
    t[BP_COST_ROWS] += row_passes * v->rows * v->D;
    const double w1 = 4.0 * v->D * v->width;
    /* Blocks in groups of BP_FWD_GROUP: the forward reads W1 once a group, and a float pass
     * sums dW1 through a group's blocks panel by panel (kernels.md, "Groups of blocks"). */
    const double groups = v->fwd_grouped ? ceil_div(v->blocks, BP_FWD_GROUP) : v->blocks;
    const double sum_passes = v->sums_grouped ? groups : v->blocks;
    traffic(t, v->nt * w1, v->nt, all / v->nt, all);
    if (groups > 1.0 && w1 > L2_BYTES)
        traffic(t, v->nt * (groups - 1.0) * w1, v->nt, w1, all);
    /* each block (group) after the first adds its dW1 to the thread's sums, a read and a write
     * that hide behind the FMAs as W1's re-reads do while the sums stay in L2 (the dW1 tiles
     * load and store them and run at 92% of the peak, peak80_2026-12-05.md) */
    if (sum_passes > 1.0 && w1 > L2_BYTES)
        traffic(t, v->nt * (sum_passes - 1.0) * 2.0 * w1, v->nt, w1, all);
    t[BP_COST_STEP] += 1.0;
}

/* Bytes of the packed W1 the step keeps (bp_w1_packed_size, unpadded), or 0: a set that packs
 * (its FWD_PACK) packs W1 once per step for its forward when a thread runs more than one forward
 * block (plan.pack_w1); with one block, or a set that reads W1 in place (avx512), no shared
 * packed copy is used. */
static double packed_w1(const bp_cost_shape *s, const view *v)
{
    return speed_of(s->kernels)->packs_w1 && v->blocks > 1.0 ? 4.0 * v->D * v->H : 0.0;
}

/* Team barriers of a step (bp_step): after the set-up, after the pass, after the combination and
 * after the update; the hidden split one more between its forward and backward, the data split
 * one more unless the update adds the float buffers itself (sum_in_update: no separate sum over
 * threads). Not counted: the one after an update that rounds a single block's exact sums itself
 * (round_in_update), which also saves the int64 array the model counts there. */
static double barriers(const bp_cost_shape *s, bp_split split)
{
    const int sum_in_update = split == BP_SPLIT_DATA && !s->exact && s->ranks <= 1;
    if (s->threads < 2)
        return 0.0;
    return split == BP_SPLIT_HIDDEN || !sum_in_update ? 5.0 : 4.0;
}

/* The data split after its pass, on several threads or with exact sums: the sums over threads
 * (on one process with float sums inside the update, which reads every thread's buffer: no
 * summed buffer written and read back), the update pass, and the bytes another core wrote. */
static void data_combine_terms(const bp_cost_shape *s, const view *v, double model, double acc,
                               double all, double t[])
{
    const double P4 = 4.0 * v->P, nt = v->nt;
    if (s->exact) /* every block's float sums into the int64 array */
        traffic(t, nt * v->blocks * (P4 + 2.0 * acc), nt, P4 + acc, all);
    traffic(t, nt * acc, nt, acc, all); /* the pass writes its sums */
    if (!s->exact && s->ranks <= 1) {
        traffic(t, nt * acc + 4.0 * P4, nt, (nt * acc + 2.0 * P4) / nt, all); /* the update */
    } else {
        traffic(t, (nt + 1.0) * acc, nt, acc, all);      /* the sum over threads */
        traffic(t, acc + 4.0 * P4, nt, model / nt, all); /* the update */
    }
    t[BP_COST_BARRIER] += barriers(s, BP_SPLIT_DATA);
    /* Per thread: its chunk of the other threads' buffers (the sum over threads), and the
     * parameters the others updated, which its forward reads (W1) or transposes (W2). */
    t[BP_COST_XCORE] += (nt - 1.0) / nt * (acc + P4);
}

/* The data split: a share of the samples each, a gradient buffer of the whole model each, summed
 * over threads (on one process by the update pass itself), then one update pass; one thread with
 * float sums on one process updates W1 in its pass. */
static void data_terms(const bp_cost_shape *s, double t[])
{
    view v = common_view(s);
    const double n = (double)s->samples, P4 = 4.0 * v.P, nt = v.nt;
    v.rows = s->exact ? fmin(n, ceil_div(ceil_div(n, (double)BP_BLOCK), nt) * (double)BP_BLOCK)
                      : ceil_div(n, nt);
    v.width = v.H;
    v.blocks = ceil_div(v.rows, (double)BP_BLOCK);
    /* in groups where W1 leaves L2 (engine.c); exact sums: a pass per block */
    v.fwd_grouped = v.sums_grouped = !s->exact && 4.0 * v.D * v.H >= (double)BP_FWD_GROUP_MIN;
    const double packed = packed_w1(s, &v);
    const double model = 2.0 * P4 + packed; /* parameters, momentum, packed W1 */
    const double acc = s->exact ? 2.0 * P4 : P4; /* a thread's sums: int64 or float */
    const double all = model + nt * acc;
    pass_terms(s, &v, 1.0, all, t);
    if (nt == 1.0 && !s->exact && s->ranks <= 1) {
        /* W1 and momentum updated in the pass, the packed W1 with them (kept for the next step) */
        traffic(t, 5.0 * P4 + packed, 1.0, all, all);
        return;
    }
    if (packed > 0.0) { /* each thread packs a slice of W1 per step, from every chunk of rows */
        traffic(t, 2.0 * packed, nt, 2.0 * packed / nt, all);
        t[BP_COST_XCORE] += (nt - 1.0) / nt * packed / nt;
    }
    data_combine_terms(s, &v, model, acc, all, t);
    if (s->ranks > 1) {
        t[BP_COST_NET] += 2.0 * P4;
        if (!s->exact) /* thread 0 widens the float sums to double and back */
            traffic(t, 6.0 * P4, 1.0, all, all);
    }
}

/* The hidden split over ranks (rank_split): every rank runs the whole batch on its threads'
 * slices of the R nt workers' split, W1 updated in the pass; after the forward the ranks'
 * partial logits are gathered (the bytes a rank receives), one more barrier; no gradient
 * travels. Each rank updates its slices only. The statistics' small exchange after the update
 * is not counted. */
static void rank_hidden_terms(const bp_cost_shape *s, double t[])
{
    view v = common_view(s);
    const double n = (double)s->batch, nt = v.nt, R = (double)s->ranks;
    const double nhb = ceil_div(v.H, (double)BP_HBLOCK);
    v.rows = n;
    v.width = fmin(v.H, ceil_div(nhb, nt * R) * (double)BP_HBLOCK);
    v.blocks = ceil_div(n, (double)BP_BLOCK);
    v.fwd_grouped = v.sums_grouped = 1; /* float sums */
    const double P4 = 4.0 * v.P, packed = packed_w1(s, &v) / R;
    const double all = 2.0 * P4 + packed + P4 / R; /* the model, its slices and their sums */
    pass_terms(s, &v, v.blocks > BP_FWD_GROUP ? 1.0 + REGATHER_SHARE : 1.0, all, t);
    traffic(t, nt * 2.0 * 4.0 * n * v.width, nt, 8.0 * n * v.width, 8.0 * n * v.H / R); /* h */
    t[BP_COST_BARRIER] += s->threads < 2 ? 0.0 : 6.0;
    t[BP_COST_XCORE] += (nt - 1.0) / nt * 4.0 * (n * nhb / R * v.C + v.H / R * v.C);
    t[BP_COST_NET] += (R - 1.0) / R * 4.0 * n * nhb * v.C;
    traffic(t, (5.0 * P4 + packed) / R, nt, all / nt, all); /* its slices updated in the pass */
}

/* The hidden split: every sample on each thread's slice of hidden units, partial logits
 * exchanged after the forward (one more barrier), each slice updated by its thread: in the pass
 * with float sums on one process (the packed slice with it), else after exact sums of every
 * block (and the slice packed again for the next step). */
static void hidden_terms(const bp_cost_shape *s, double t[])
{
    if (s->rank_split && s->ranks > 1) {
        rank_hidden_terms(s, t);
        return;
    }
    view v = common_view(s);
    const double n = (double)s->samples, nt = v.nt, nhb = ceil_div(v.H, (double)BP_HBLOCK);
    v.rows = n;
    v.width = fmin(v.H, ceil_div(nhb, nt) * (double)BP_HBLOCK);
    v.blocks = ceil_div(n, (double)BP_BLOCK);
    const double P4 = 4.0 * v.P, slice = 4.0 * v.D * v.width, packed = packed_w1(s, &v);
    const double model = 2.0 * P4 + packed;
    const int exact = s->exact || s->ranks > 1;
    v.fwd_grouped = 1;
    v.sums_grouped = !exact; /* float sums: the backward groups as the forward does */
    const double all = model + (exact ? 3.0 : 1.0) * P4; /* and the float (and int64) sums */
    /* the backward gathers the rows again when they are not all in one group (float sums) or
     * there are several blocks (exact sums, block by block) */
    const int regather = v.blocks > (exact ? 1.0 : (double)BP_FWD_GROUP);
    pass_terms(s, &v, regather ? 1.0 + REGATHER_SHARE : 1.0, all, t);
    traffic(t, nt * 2.0 * 4.0 * n * v.width, nt, 8.0 * n * v.width, 8.0 * n * v.H); /* h */
    t[BP_COST_BARRIER] += barriers(s, BP_SPLIT_HIDDEN);
    /* Per thread: the other slices' partial logits, and the rows of W2 the other threads
     * updated, which every thread transposes for its forward. */
    t[BP_COST_XCORE] += (nt - 1.0) / nt * 4.0 * (n * nhb * v.C + v.H * v.C);
    if (!exact) {
        traffic(t, 5.0 * P4 + packed, nt, all / nt, all); /* W1 and momentum updated in the pass */
        return;
    }
    if (packed > 0.0) /* the slice packed per step: W1 was updated after the pass */
        traffic(t, 2.0 * packed, nt, 2.0 * slice, all);
    traffic(t, nt * v.blocks * 5.0 * slice, nt, 3.0 * slice, all); /* sums into int64 */
    traffic(t, 2.0 * P4 + 4.0 * P4, nt, model / nt, all);        /* the update */
    if (s->ranks > 1)
        t[BP_COST_NET] += 2.0 * P4;
}

int bp_cost_applies(const bp_cost_shape *s, bp_split split)
{
    if (split == BP_SPLIT_DATA)
        return 1;
    const size_t nhb = (s->hidden + BP_HBLOCK - 1) / BP_HBLOCK;
    if (split == BP_SPLIT_HIDDEN && s->rank_split && s->ranks > 1)
        return nhb >= (size_t)s->threads * (size_t)s->ranks;
    if (split == BP_SPLIT_HIDDEN)
        return s->threads >= 2 && nhb >= (size_t)s->threads;
    return 0;
}

void bp_cost_terms(const bp_cost_shape *s, bp_split split, double t[BP_COST_TERMS])
{
    for (int k = 0; k < BP_COST_TERMS; k++)
        t[k] = 0.0;
    if (!bp_cost_applies(s, split))
        return;
    if (split == BP_SPLIT_HIDDEN)
        hidden_terms(s, t);
    else
        data_terms(s, t);
}

double bp_cost_seconds(const bp_cost_shape *s, bp_split split)
{
    if (!bp_cost_applies(s, split))
        return HUGE_VAL;
    double t[BP_COST_TERMS], w[BP_COST_TERMS], sec = 0.0;
    bp_cost_terms(s, split, t);
    bp_cost_weights(s, w);
    for (int k = 0; k < BP_COST_TERMS; k++)
        sec += t[k] * w[k];
    return sec;
}

bp_split bp_cost_choose(const bp_cost_shape *s)
{
    bp_split best = BP_SPLIT_DATA;
    double best_sec = bp_cost_seconds(s, BP_SPLIT_DATA);
    for (int k = 1; k < BP_SPLITS; k++) {
        const double sec = bp_cost_seconds(s, (bp_split)k);
        if (sec < best_sec) {
            best = (bp_split)k;
            best_sec = sec;
        }
    }
    return best;
}
