/* train_options.h: `bprop train`'s options, one table row each (train_options.c), and what is
 * made of the table: the help, parsing, the settings text a checkpoint carries and the rules of
 * --resume. Adding a train option is adding a row. */
#ifndef BPROP_CLI_TRAIN_OPTIONS_H
#define BPROP_CLI_TRAIN_OPTIONS_H

#include "cli_option.h"
#include "train.h"

/* Help sections of `bprop train --help` (cli_option.group of train_options). */
enum { TRAIN_SECTION_MODEL = 1, TRAIN_SECTION_OUTPUT, TRAIN_SECTION_CHECKPOINT };

/* Every option of `bprop train` but the data options, which it takes from data.c's
 * cli_data_options (their fields are in train_opts.data); a NULL name ends it. */
extern const cli_option train_options[];

/* The options before any is parsed: the library's default config, 256 hidden units, biases. */
void train_opts_default(train_opts *o);
/* `bprop train --help`. */
void train_help_to(FILE *f);
/* Only the walk over argv (argv[0] = "train") from the defaults into o: 0, CLI_DONE after
 * --help, or CLI_EXIT_USAGE (printed). */
int train_parse_args(const cli_runtime *rt, int argc, char **argv, train_opts *o);
/* train_parse_args, then the check of the options' combination: 0, CLI_DONE after --help or
 * CLI_EXIT_USAGE (printed). --resume and --init are resolved after it (train_state_resolve). */
int train_parse(const cli_runtime *rt, int argc, char **argv, train_opts *o);

/* 1 when any spelling of r was on the command line that o was parsed from. */
int train_given(const train_opts *o, const cli_option *r);

/* The rows that have a settings key, as key=value lines ('\\' and newlines escaped); the
 * caller frees it. NULL when out of memory. */
char *train_settings_text(const train_opts *o);
/* Walk such text (modified in place: lines split, escapes undone): fn gets each key and value
 * (NULL for a line without '='); the first non-zero return stops the walk and is returned. */
int train_settings_each(char *text, int (*fn)(void *user, const char *key, const char *value),
                        void *user);
/* Set o's fields from such text (o's strings then point into text). 0, or CLI_EXIT_RUNTIME
 * with "path: settings: bad or unknown entry ..." printed. */
int train_settings_apply(const cli_runtime *rt, char *text, train_opts *o, const char *path);

/* --resume: every option given in o must be one the resumed run takes, or repeat the value rec
 * (the recorded run) holds. 0, or CLI_EXIT_USAGE (printed). */
int train_resume_check(const cli_runtime *rt, const train_opts *o, const train_opts *rec);
/* Into rec, the values of the options given in o that a resumed run takes. */
void train_resume_overlay(train_opts *rec, const train_opts *o);

#endif /* BPROP_CLI_TRAIN_OPTIONS_H */
