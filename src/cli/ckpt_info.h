/* ckpt_info.h: `bprop info` for checkpoint files (the run they hold). */
#ifndef BPROP_CLI_CKPT_INFO_H
#define BPROP_CLI_CKPT_INFO_H

#include "bprop.h"
#include "cli.h"
#include "json.h"

/* Describe the checkpoint at path as text or one JSON object: 0, or CLI_EXIT_RUNTIME (printed). */
int info_checkpoint(const cli_runtime *rt, const char *path, int json);

/* The model's shape in `info --json` (inputs ... standardized), for checkpoints and models. */
void info_shape_json(json_writer *j, const bprop_model *m);

/* The "config" object of `info --json`, for checkpoints and (cmd_info.c) models alike. */
void info_config_json(json_writer *j, const bprop_train_config *c);

#endif /* BPROP_CLI_CKPT_INFO_H */
