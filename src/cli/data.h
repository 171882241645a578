/* data.h: the data options shared by train/eval/predict/gradcheck, and loading what they name. */
#ifndef BPROP_CLI_DATA_H
#define BPROP_CLI_DATA_H

#include "cli.h"
#include "cli_option.h"

#define CLI_PATH_MAX 4096

/* Which data options a command accepts. */
enum { CLI_DATA_TRAIN = 1, CLI_DATA_TEST = 2, CLI_DATA_CLASSES = 4 };

typedef struct cli_data_opts {
    unsigned allowed;          /* CLI_DATA_* */
    const char *cmd;           /* command name for usage errors; set by cli_data_option */
    const char *dir;           /* --data DIR: the four standard IDX files */
    const char *train, *train_labels; /* --train FILE (CSV or IDX), --train-labels FILE */
    const char *test, *test_labels;   /* --test FILE, --test-labels FILE */
    size_t train_limit, test_limit;   /* first N samples; 0: all */
    size_t classes;            /* --classes N; 0: infer */
} cli_data_opts;

/* Resolved files of one split; empty images means "no such split". */
typedef struct cli_split_paths {
    char images[CLI_PATH_MAX];
    char labels[CLI_PATH_MAX]; /* empty: CSV, or IDX whose labels were not given */
    const char *labels_flag;   /* option to suggest when labels are missing */
    size_t limit;
} cli_split_paths;

typedef struct cli_data_paths {
    cli_split_paths train, test;
    char desc[256]; /* "fashion-mnist (/usr/share/...)", "train=a.csv test=b.csv" */
} cli_data_paths;

/* The data options, one row each (fields in cli_data_opts, group: the CLI_DATA_* bit that admits
 * the option; --data has none: every command that reads data takes it); a NULL name ends it. */
extern const cli_option cli_data_options[];

/* Print the usage lines of the options in `allowed`, for --help texts. */
void cli_data_help(FILE *f, unsigned allowed);
/* Consume a data option: 0 (taken), CLI_EXIT_USAGE (printed) or CLI_NOMATCH. */
int cli_data_option(cli_args *a, cli_data_opts *o);
/* 1 when the user named any data at all. */
int cli_data_given(const cli_data_opts *o);

/* What a data file holds, judged by its first bytes (after gunzip), as the library's loader does:
 * IDX (two zero bytes), .npy (the NumPy magic), text (no NUL byte in the first 4 KiB: CSV), or
 * unknown (unreadable, empty or binary: the loader will say what is wrong). */
enum { CLI_KIND_UNKNOWN = 0, CLI_KIND_IDX, CLI_KIND_TEXT, CLI_KIND_NPY };
int cli_data_kind(const char *path);

enum { CLI_NEED_TRAIN = 1, CLI_NEED_TEST = 2, CLI_WANT_TEST = 4 /* test split if there is one */ };
/* Find the files: --train/--test win over --data, which wins over the default Fashion-MNIST
 * directory (used only when no data option is given). 0, CLI_EXIT_USAGE (--train-labels or
 * --test-labels without an IDX --train/--test file) or CLI_EXIT_RUNTIME (printed). */
int cli_data_resolve(const cli_runtime *rt, const cli_data_opts *o, unsigned need, cli_data_paths *p);
/* 1 when the default data directory holds all four files. */
int cli_default_data_present(void);

/* Load one split (labelled), keep its first `limit` samples. 0, or CLI_EXIT_RUNTIME (printed). */
int cli_load_split(const cli_runtime *rt, const cli_split_paths *s, size_t classes, bprop_dataset **out);

/* Without --classes the class count is the largest label + 1: warn on stderr (one line naming
 * path) when some classes below it never occur in d's labels, e.g. one stray label of 9 among
 * labels 0..2. */
void cli_warn_missing_classes(const char *path, const bprop_dataset *d);

/* Before reading a data file that may stay memory-mapped (uncompressed IDX or .npy): make a
 * SIGBUS (the file cut short or rewritten while mapped) print one line naming the mapped files
 * and exit with status 1 instead of dying of the signal. gzip files are skipped (never mapped).
 * Main thread only, before training starts (bus_guard.c). */
void cli_bus_guard_add(const char *path);

#endif /* BPROP_CLI_DATA_H */
