/* ckpt_info.h: `bprop info` for checkpoint files (the run they hold). */
#ifndef BPROP_CLI_CKPT_INFO_H
#define BPROP_CLI_CKPT_INFO_H

/* Describe the checkpoint at path as text or one JSON object: 0, or CLI_EXIT_RUNTIME (printed). */
int info_checkpoint(const char *path, int json);

#endif /* BPROP_CLI_CKPT_INFO_H */
