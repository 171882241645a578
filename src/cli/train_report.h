/* train_report.h: per-epoch output of `bprop train`: the aligned table and the JSON Lines log. */
#ifndef BPROP_CLI_TRAIN_REPORT_H
#define BPROP_CLI_TRAIN_REPORT_H

#include "bprop.h"

#include <stdio.h>

/* What one epoch produced; pointers are NULL for figures the run does not have. */
typedef struct epoch_report {
    const bprop_epoch_stats *st;
    const bprop_eval *val;  /* validation split, evaluated every epoch */
    const bprop_eval *test; /* test set: every epoch without a val split, else at the end */
    int has_val;            /* the run holds out a validation split */
    int threads;
    size_t batch, hidden;
} epoch_report;

void train_print_header(FILE *f, int has_val);
void train_print_row(FILE *f, const epoch_report *r);

/* --metrics FILE: all lines so far live in memory and replace FILE atomically every epoch. */
typedef struct metrics_log {
    const char *path; /* NULL: no log */
    FILE *mem;
    char *buf;
    size_t len;
} metrics_log;

int metrics_open(metrics_log *m, const char *path); /* 0, or CLI_EXIT_RUNTIME (printed) */
int metrics_append(metrics_log *m, const epoch_report *r); /* 0, or CLI_EXIT_RUNTIME (printed) */
void metrics_close(metrics_log *m);

#endif /* BPROP_CLI_TRAIN_REPORT_H */
