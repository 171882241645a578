/* train_signal.h: SIGINT/SIGTERM/SIGUSR1 during `bprop train`: the first asks the trainer to
 * stop after its current step, a second aborts at once, removing any file half-written. */
#ifndef BPROP_CLI_TRAIN_SIGNAL_H
#define BPROP_CLI_TRAIN_SIGNAL_H

#include "bprop.h"
#include "cli.h"

#include <signal.h>

/* Install the handlers (sigaction, SA_RESTART). 0, or CLI_EXIT_RUNTIME (printed). */
int train_signal_install(const cli_runtime *rt);
/* The flag to give bprop_trainer_set_cancel: set by the first signal, or by train_signal_stop. */
const volatile sig_atomic_t *train_signal_flag(void);
/* Ask the trainer to stop after the current step (for a periodic checkpoint); no signal. */
void train_signal_stop(void);
/* Clear a stop asked by train_signal_stop; a pending signal keeps the flag set. */
void train_signal_resume(void);
/* The first signal received (SIGINT, SIGTERM, SIGUSR1), 0 while none. */
int train_signal_received(void);

/* Bracket a file write whose temporary name train_signal_tempfile is told: a second signal during
 * it removes the temporary file and exits 128 + signal. */
void train_signal_write_begin(void);
void train_signal_write_end(void);
/* A bprop_tempfile_fn (user unused): records the temporary file being written. */
void train_signal_tempfile(void *user, const char *tmp);

#endif /* BPROP_CLI_TRAIN_SIGNAL_H */
