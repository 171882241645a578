/* cli_option.h: an option as one table row (spelling, value kind, help, how a checkpoint records
 * it, what --resume allows) and what each kind of row does with its value. */
#ifndef BPROP_CLI_OPTION_H
#define BPROP_CLI_OPTION_H

#include "cli.h"

#include <stddef.h>

/* The value an option carries, and so the C type of its field. */
typedef enum cli_opt_kind {
    CLI_OPT_FLAG,     /* int: no value; the name stores .set, the negation !.set */
    CLI_OPT_SIZE,     /* size_t in [min, max] */
    CLI_OPT_INT,      /* int in [min, max] */
    CLI_OPT_U64,      /* uint64_t */
    CLI_OPT_FLOAT,    /* float in *range */
    CLI_OPT_REAL,     /* double in *range */
    CLI_OPT_STRING,   /* const char *: the argument itself */
    CLI_OPT_SCHEDULE, /* bprop_schedule by name */
    CLI_OPT_PARALLEL, /* bprop_parallel by name */
} cli_opt_kind;

/* What `bprop train --resume` does with the option given beside it. */
typedef enum cli_resume_rule {
    CLI_RESUME_SAME = 0, /* refused unless it repeats the recorded value */
    CLI_RESUME_FREE,     /* taken: it changes nothing the parameters depend on */
    CLI_RESUME_GROW,     /* SIZE only: taken when not below the recorded value */
    CLI_RESUME_NEVER,    /* refused */
} cli_resume_rule;

typedef struct cli_option {
    const char *name;        /* "--lr"; NULL ends a table */
    const char *alias;       /* another spelling with the same meaning ("--standardise") */
    const char *negation;    /* FLAG: the spelling that stores the opposite ("--no-nesterov") */
    cli_opt_kind kind;
    size_t field;            /* where the value lives: CLI_FIELD of the table's options struct */
    size_t min, max;         /* SIZE, INT: accepted values */
    const cli_range *range;  /* FLOAT, REAL: accepted values */
    int set;                 /* FLAG: what the name stores */
    const char *metavar;     /* "N", "FILE" in the help; NULL for a flag */
    const char *usage;       /* help's left column when it is not "name metavar" */
    const char *help;        /* help text; "{default}" stands for the default value, and each
                                '\n' starts a continuation line */
    const char *noun;        /* FLAG: what it switches ("biases on"); SIZE+GROW: the unit */
    const char *key;         /* key in a checkpoint's settings text; NULL: not written there
                                (the checkpoint header holds the library's own settings) */
    cli_resume_rule resume;
    unsigned group;          /* train: the help section; data: the CLI_DATA_* bit admitting it */
} cli_option;

/* offsetof(type, member), refused at compile time unless the member has type ftype. */
#define CLI_FIELD(type, member, ftype) \
    (offsetof(type, member) + 0 * sizeof((ftype *)0 == &((type *)0)->member))

/* The row among rows (ended by a NULL name) that spelling names, or NULL. */
const cli_option *cli_option_find(const cli_option *rows, const char *spelling);
/* 1 when spelling is one of r's (name, alias or negation). */
int cli_option_is(const cli_option *r, const char *spelling);

/* Parse the option a holds (one of r's spellings) into r's field of base. 0, or CLI_EXIT_USAGE
 * after printing the usage error. */
int cli_option_parse(const cli_option *r, cli_args *a, void *base);
/* r's help lines; "{default}" is r's value in defaults (which may be NULL when the text has no
 * "{default}"). */
void cli_option_help(FILE *f, const cli_option *r, const void *defaults);
/* r's value in base as messages show it ("0.0500000007", "'train.csv'", "biases off"). */
void cli_option_show(const cli_option *r, const void *base, char *buf, size_t size);
/* r's value in base as the settings text records it (buf or the string field itself), NULL when
 * there is nothing to record (a string option not given). */
const char *cli_option_record(const cli_option *r, const void *base, char *buf, size_t size);
/* The inverse: a recorded value into r's field of base (strings point into value). 0, or -1
 * when value is not one cli_option_record writes. SIZE values are not range-checked: 0
 * records "not given" for options whose smallest value is 1. */
int cli_option_apply(const cli_option *r, void *base, const char *value);
/* Copy r's field from src to dst (both bases of the same struct type). */
void cli_option_copy(const cli_option *r, void *dst, const void *src);

#endif /* BPROP_CLI_OPTION_H */
