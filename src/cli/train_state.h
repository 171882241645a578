/* train_state.h: `bprop train`'s checkpoints, --resume, --init and signal stops (the parts of a
 * run that survive an interruption), kept apart from the epoch loop in cmd_train.c. */
#ifndef BPROP_CLI_TRAIN_STATE_H
#define BPROP_CLI_TRAIN_STATE_H

#include "train.h"

/* ---- --resume and --init (train_resume.c) ---- */

/* After parsing: with --resume, load the checkpoint, refuse options that would change its run
 * and replace o's settings with the recorded ones (train_options.c's rules); with --init, load
 * the model and take shape, biases and standardisation from it. 0, CLI_EXIT_USAGE or
 * CLI_EXIT_RUNTIME (printed). */
int train_state_resolve(const cli_runtime *rt, train_opts *o);
void train_state_opts_free(train_state_opts *s);

/* ---- the run (train_state.c) ---- */

/* The model --resume or --init brings (moved to *out), or CLI_NOMATCH: make a fresh one. */
int train_state_take_model(train_run *r, bprop_model **out);
/* Before preparing the data: an --init model must fit it. 0 or CLI_EXIT_RUNTIME (printed). */
int train_state_check_fit(const train_run *r);
/* After the trainer is made: describe the data (a resumed run's must match its checkpoint's),
 * restore a resumed trainer state, connect the signal flag, pick the checkpoint names.
 * 0 or CLI_EXIT_RUNTIME (printed). */
int train_state_attach(train_run *r);
/* Collective, after train_state_attach succeeded on every rank: 0 when every rank starts from
 * rank 0's model and trainer state (the same checkpoint or --init model was read), else
 * CLI_EXIT_RUNTIME on every rank with rank 0's message naming the rank. 0 in one process. */
int train_state_check_same(const train_run *r);
/* Write the run's first metrics lines: the epochs a resumed checkpoint already holds. */
int train_state_replay_metrics(train_run *r);
/* One epoch through the trainer, pausing for --checkpoint-every. 0, CLI_EXIT_RUNTIME (printed),
 * or 128 + signal after a signal stopped it and the checkpoint was written. */
int train_state_epoch(train_run *r, bprop_epoch_stats *st);
/* After an epoch's report: keep its figures, write the end-of-epoch checkpoint, stop on a
 * signal (128 + signal). */
int train_state_epoch_done(train_run *r, const epoch_report *rep);
/* Before an epoch: a signal that arrived while nothing polled the flag stops the run here. */
int train_state_poll(train_run *r);
/* Save the model as --save names it, a second signal removing the temporary file. */
int train_state_save_model(train_run *r, const char *path);
/* At the end of a completed run: 0, or 128 + signal when one arrived after the last epoch. */
int train_state_finish(train_run *r);
void train_state_free(train_state *s);

#endif /* BPROP_CLI_TRAIN_STATE_H */
