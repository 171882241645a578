/* progress.h: the training progress bar drawn on a terminal through bprop_progress_fn. */
#ifndef BPROP_CLI_PROGRESS_H
#define BPROP_CLI_PROGRESS_H

#include <stdio.h>
#include <stddef.h>

typedef struct cli_progress {
    FILE *f;            /* where to draw; NULL disables the bar */
    size_t epoch, epochs;
    size_t batch;       /* samples per step, for samples/s */
    double start;       /* monotonic time the epoch began */
    double last_draw;   /* when the bar was last drawn (rate limit) */
    int drawn;          /* something is on the line and must be cleared */
} cli_progress;

/* Draw on f only when it is a terminal and enabled is set. */
void cli_progress_init(cli_progress *p, FILE *f, int enabled, size_t epochs, size_t batch);
void cli_progress_epoch(cli_progress *p, size_t epoch);
/* A bprop_progress_fn: user is the cli_progress. Never stops training. */
int cli_progress_cb(void *user, size_t step, size_t steps, double loss, double acc);
/* Erase the bar so ordinary lines can follow. */
void cli_progress_clear(cli_progress *p);

#endif /* BPROP_CLI_PROGRESS_H */
