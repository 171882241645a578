/* cost.h: a model of the time of one training step under each split over threads, from which --parallel auto picks (internal). */
#ifndef BPROP_COST_H
#define BPROP_COST_H

#include <stddef.h>

/* How a step splits its work over the threads of a team. A new split is one more value here, one
 * more function that counts its terms in cost.c, and its pass in step_pass.c. */
typedef enum bp_split {
    BP_SPLIT_DATA,   /* each thread takes samples of the batch, all hidden units */
    BP_SPLIT_HIDDEN, /* each thread takes a slice of hidden units, all samples of the rank */
    BP_SPLITS        /* how many there are */
} bp_split;

/* Everything the model reads: the decision is a function of these alone, never of a timing. */
typedef struct bp_cost_shape {
    size_t samples;      /* the most samples any rank holds of the batch (the same on every rank) */
    size_t inputs, hidden, classes;
    int has_bias;
    int threads;         /* the team */
    int ranks;           /* processes taking part */
    int exact;           /* --reproducible: exact fixed-point sums */
    const char *kernels; /* the kernel set's name: "avx512", "avx2", "generic" */
    size_t batch;        /* the whole batch (rank_split: every rank runs all of it) */
    int rank_split;      /* the hidden split would split the hidden units over the ranks too
                            (float sums: each of ranks x threads workers owns a slice, every rank
                            runs the whole batch, only partial logits travel) */
} bp_cost_shape;

/* The counts the model predicts a step from; the time is their sum weighted by the machine's
 * cost of each (cost.c). Per thread: the work of the slowest thread; total: over all threads. */
enum {
    BP_COST_FMA,     /* FMAs one thread executes: layer 1 (x W1, dW1) with zero inputs skipped,
                        layer 2 (logits, dW2, dh) dense */
    BP_COST_ROWS,    /* input values one thread gathers, converts and lists */
    BP_COST_L2,      /* bytes one thread moves within its own L2 */
    BP_COST_L3,      /* bytes one thread moves from the shared L3 */
    BP_COST_MEM,     /* bytes all threads together move from memory (shared bandwidth) */
    BP_COST_XCORE,   /* bytes one core reads that other cores wrote in the step (the slowest
                        thread's: every core reads its share at once) */
    BP_COST_NET,     /* bytes summed over ranks */
    BP_COST_BARRIER, /* team barriers (none on one thread) */
    BP_COST_STEP,    /* one per step: the fixed cost of a step */
    BP_COST_TERMS
};

/* Whether split can run this shape (the hidden split needs a 64-unit block per thread, or per
 * worker of every rank for rank_split). */
int bp_cost_applies(const bp_cost_shape *s, bp_split split);

/* The counts of one step of shape s under split (zeros where it does not apply). */
void bp_cost_terms(const bp_cost_shape *s, bp_split split, double terms[BP_COST_TERMS]);

/* The seconds each count costs on the model's machine with s's kernel set. */
void bp_cost_weights(const bp_cost_shape *s, double weights[BP_COST_TERMS]);

/* Whether the model counts kernel set `kernels` as packing W1 for its forward (the set's
 * fwd_pack: packed once per step when a thread runs more than one forward block). */
int bp_cost_packs_w1(const char *kernels);

/* The predicted seconds of one step of shape s under split (HUGE_VAL where it does not apply). */
double bp_cost_seconds(const bp_cost_shape *s, bp_split split);

/* The split with the least predicted time; the data split on a tie. */
bp_split bp_cost_choose(const bp_cost_shape *s);

#endif
