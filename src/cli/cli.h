/* cli.h: shared pieces of the bprop command-line program (argument parsing, errors, files). */
#ifndef BPROP_CLI_H
#define BPROP_CLI_H

#include "bprop.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit statuses of every command (documented in `bprop --help`). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_RUNTIME = 1,   /* bad data, unreadable files, divergence, ... */
    CLI_EXIT_USAGE = 2,     /* bad command line */
    CLI_EXIT_GRADCHECK = 3, /* gradcheck ran but a tensor exceeded the tolerance */
    CLI_NOMATCH = -1,       /* internal: an option parser did not recognise the option */
    CLI_DONE = -2           /* internal: --help was printed; exit 0 */
};

/* The processes running a command (runtime.h): every command and every function that reports
 * an error takes the one the program's main chose. */
typedef struct cli_runtime cli_runtime;

/* Cursor over one command's arguments; argv[0] is the command name ("train"). */
typedef struct cli_args {
    const cli_runtime *rt;  /* where usage errors go */
    const char *cmd;        /* command name used in messages */
    int argc;
    char **argv;
    int next;               /* index of the next unread argument */
    int options_done;       /* seen "--": everything after is positional */
    const char *opt;        /* current option name, e.g. "--lr" */
    const char *inline_val; /* value given as --opt=VALUE, else NULL */
    const char *pos;        /* current positional argument */
    char optbuf[64];        /* holds the name part of --opt=VALUE */
} cli_args;

enum { CLI_ARG_END = 0, CLI_ARG_OPTION, CLI_ARG_POSITIONAL };

/* Accepted interval of a real-valued option and its wording in messages. */
typedef struct cli_range {
    double lo, hi;
    int lo_open, hi_open; /* 1: the bound itself is excluded */
    const char *what;     /* "a positive number", "a number in [0, 1)" */
} cli_range;

extern const cli_range CLI_POSITIVE, CLI_NONNEG, CLI_FRACTION, CLI_GAMMA, CLI_ANY_REAL;
/* 1 when v lies in r. */
int cli_in_range(double v, const cli_range *r);

void cli_args_init(cli_args *a, const cli_runtime *rt, const char *cmd, int argc, char **argv);
/* Advance: CLI_ARG_OPTION (a->opt set), CLI_ARG_POSITIONAL (a->pos set) or CLI_ARG_END. */
int cli_args_next(cli_args *a);
int cli_is(const cli_args *a, const char *name);
/* 1 for --help or -h. */
int cli_is_help(const cli_args *a);

/* One command's parser: its help text, its option handler (CLI_NOMATCH for an option it does not
 * know) and the slot for its one positional argument (NULL when it takes none). */
typedef struct cli_command {
    const char *name;
    void (*help)(void);
    int (*option)(cli_args *a, void *opts);
    void *opts;
    const char **positional;
} cli_command;

/* Walk argv for c: --help prints the help and returns CLI_DONE; options go to c->option, a
 * positional argument to *c->positional; anything unrecognised is a usage error. Returns 0 or the
 * first non-zero code. */
int cli_parse(const cli_runtime *rt, const cli_command *c, int argc, char **argv);

/* Store the current positional argument in an empty *slot: 0, or CLI_NOMATCH when it is full. */
int cli_positional(const cli_args *a, const char **slot);
/* Each returns 0, or CLI_EXIT_USAGE after printing the usage error. */
int cli_flag(cli_args *a);
int cli_value(cli_args *a, const char **out);
int cli_size(cli_args *a, size_t min, size_t max, size_t *out);
int cli_u64(cli_args *a, uint64_t *out);
int cli_int(cli_args *a, int min, int max, int *out);
int cli_real(cli_args *a, const cli_range *r, double *out);
int cli_float(cli_args *a, const cli_range *r, float *out);

/* "bprop CMD: message" and "Try 'bprop CMD --help'." on stderr (or to rt's message hook);
 * returns CLI_EXIT_USAGE. */
int cli_usage(const cli_runtime *rt, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The usage error for an option the command does not know, or a stray positional argument. */
int cli_unknown(const cli_args *a);

/* "bprop: message" on stderr (or to rt's message hook); returns CLI_EXIT_RUNTIME. */
int cli_fail(const cli_runtime *rt, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Report a library failure (its message, or the status text when it left none). */
int cli_fail_err(const cli_runtime *rt, const bprop_error *err, bprop_status st);
/* cli_fail_err, with "path: " in front when the library's message does not name the file. */
int cli_fail_path(const cli_runtime *rt, const char *path, const bprop_error *err, bprop_status st);

/* Load a model file; 0, or CLI_EXIT_RUNTIME with the path in the printed message. */
int cli_load_model(const cli_runtime *rt, const char *path, bprop_model **out);

/* Write a file under a unique temporary name beside path (path.tmp.XXXXXX, with the mode of the
 * file it replaces, else 0666 less the umask) and rename it into place, so readers never see half
 * a file and concurrent writers never share a temporary file. */
typedef struct cli_atomic {
    const cli_runtime *rt; /* where failures are reported */
    FILE *f;
    char *path, *tmp;
    /* NULL: a failed write removes the temporary file. Else the temporary file is kept when it
     * holds anything, announced as "bprop: partial <partial> kept in <tmp>". */
    const char *partial;
} cli_atomic;
/* 0, or CLI_EXIT_RUNTIME (printed on rt, which commit reports on too). */
int cli_atomic_open(const cli_runtime *rt, cli_atomic *w, const char *path);
int cli_atomic_commit(cli_atomic *w); /* flush, sync, rename; 0 or 1 (printed) */
void cli_atomic_abort(cli_atomic *w);  /* remove (or keep) the temporary file */
/* 1 when the directory that would hold path accepts new files. */
int cli_dir_writable(const char *path);
/* Before long work: 0 when an output file could be created at path, else CLI_EXIT_RUNTIME with
 * "bprop: FLAG: 'path' is a directory" (or its directory is missing / not writable) printed. */
int cli_check_output(const cli_runtime *rt, const char *flag, const char *path);

/* snprintf that ends a truncated result with "..." (descriptions, not data). */
void cli_format_trunc(char *buf, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Seconds on a monotonic clock. */
double cli_now(void);
/* "2024-05-01T12:00:00Z", or "unknown" for t <= 0. */
void cli_iso_time(int64_t t, char *buf, size_t size);

/* The whole program after any setup: dispatch argv[1] to a command, check standard output;
 * returns the exit status. */
int cli_main(const cli_runtime *rt, int argc, char **argv);

/* Commands: argv[0] is the command name. */
int cmd_train(const cli_runtime *rt, int argc, char **argv);
int cmd_eval(const cli_runtime *rt, int argc, char **argv);
int cmd_predict(const cli_runtime *rt, int argc, char **argv);
int cmd_gradcheck(const cli_runtime *rt, int argc, char **argv);
int cmd_info(const cli_runtime *rt, int argc, char **argv);
int cmd_export(const cli_runtime *rt, int argc, char **argv);
int cmd_import(const cli_runtime *rt, int argc, char **argv);

#endif /* BPROP_CLI_H */
