/* train.h: what `bprop train` parses (its fields are named by train_options.c's table) and owns
 * during a run, shared by cmd_train.c and the checkpoint/resume code in train_state.c. */
#ifndef BPROP_CLI_TRAIN_H
#define BPROP_CLI_TRAIN_H

#include "cli.h"
#include "data.h"
#include "progress.h"
#include "train_report.h"

/* --checkpoint, --checkpoint-every, --resume, --init, and what a resume or --init brings. */
typedef struct train_state_opts {
    const char *checkpoint;  /* --checkpoint FILE */
    size_t every;            /* --checkpoint-every N (steps); 0: at epoch ends only */
    const char *resume;      /* --resume FILE */
    const char *init;        /* --init MODEL */
    char given[64][32];      /* every option named on the command line, for --resume's checks */
    int n_given;
    bprop_checkpoint *ck;    /* owned: the checkpoint --resume names (its model moves to the run) */
    char *text;              /* owned: ck's settings, unescaped; option strings point into it */
    bprop_model *init_model; /* owned until the run takes it: the model --init names */
} train_state_opts;

typedef struct train_opts {
    bprop_train_config cfg;
    size_t hidden;
    int bias, standardize, quiet;
    double val_fraction;
    const char *save, *metrics;
    cli_data_opts data;
    train_state_opts ts;
} train_opts;

/* Checkpoint bookkeeping of one run. */
typedef struct train_state {
    const char *path;            /* where checkpoints go (NULL: only on a signal, to fallback) */
    char fallback[CLI_PATH_MAX]; /* MODEL.ckpt beside --save, or bprop-PID.ckpt */
    size_t first_epoch;          /* 1-based epoch the loop starts with */
    uint64_t steps_per_epoch, step_in_epoch, global_step;
    bprop_data_desc train, val, test;
    bprop_epoch_record *records; /* (n_records) owned: every finished epoch of the run */
    size_t n_records, cap;
} train_state;

/* Everything one run owns; train_run_free releases it all. */
typedef struct train_run {
    const cli_runtime *rt; /* the processes running the command (runtime.h) */
    train_opts *o; /* not const: the run takes the model --resume or --init loaded */
    cli_data_paths paths;
    bprop_dataset *train, *val, *test;
    bprop_model *model;
    bprop_trainer *trainer;
    metrics_log log;
    cli_progress progress;
    bprop_eval val_eval, test_eval;
    int have_val_eval, have_test_eval;
    train_state state;
} train_run;

#endif /* BPROP_CLI_TRAIN_H */
