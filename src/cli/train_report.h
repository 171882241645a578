/* train_report.h: per-epoch output of `bprop train`: the aligned table and the JSON Lines log. */
#ifndef BPROP_CLI_TRAIN_REPORT_H
#define BPROP_CLI_TRAIN_REPORT_H

#include "bprop.h"
#include "cli.h"

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

/* --metrics FILE: lines go (flushed every epoch) to a temporary file beside FILE that replaces
 * FILE only when the whole run succeeded; after a failure FILE is untouched and the temporary
 * file is kept (its name printed). */
typedef struct metrics_log {
    const char *path; /* NULL: no log */
    cli_atomic out;   /* open from metrics_open to metrics_commit */
} metrics_log;

/* Each: 0, or CLI_EXIT_RUNTIME (printed) on rt. */
int metrics_open(const cli_runtime *rt, metrics_log *m, const char *path);
int metrics_append(const cli_runtime *rt, metrics_log *m, const epoch_report *r);
/* The run succeeded: rename the log over FILE. 0, or CLI_EXIT_RUNTIME (printed). */
int metrics_commit(metrics_log *m);
/* Keep an uncommitted log's temporary file (when it holds any epoch) and release everything. */
void metrics_close(metrics_log *m);
/* The temporary file the lines go to while the run lasts (NULL without a log). */
const char *metrics_temp_path(const metrics_log *m);

#endif /* BPROP_CLI_TRAIN_REPORT_H */
