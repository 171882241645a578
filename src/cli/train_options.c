/* train_options.c: the table of `bprop train`'s options and what is made of it: the help text,
 * parsing, the settings text a checkpoint carries, and what --resume allows. */
#define _POSIX_C_SOURCE 200809L
#include "train_options.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HIDDEN ((size_t)1 << 24)
#define MAX_EPOCHS ((size_t)1000000)
#define MAX_BATCH ((size_t)1 << 24)
#define MAX_THREADS 4096
#define MAX_EVERY ((size_t)1 << 40)

#define TRAIN_FIELD(member, type) CLI_FIELD(train_opts, member, type)
#define MODEL .group = TRAIN_SECTION_MODEL
#define OUTPUT .group = TRAIN_SECTION_OUTPUT
#define CHECKPOINT .group = TRAIN_SECTION_CHECKPOINT

/* One row per option, in help order within each section. Without .key an option is not in the
 * settings text: the library's config is in the checkpoint header, and the rest are not part of
 * the run. Without .resume, --resume refuses the option unless it repeats the recorded value. */
const cli_option train_options[] = {
    {.name = "--hidden", .kind = CLI_OPT_SIZE, .field = TRAIN_FIELD(hidden, size_t), .min = 1,
     .max = MAX_HIDDEN, .metavar = "N", .help = "hidden units [{default}]", .key = "hidden", MODEL},
    {.name = "--epochs", .kind = CLI_OPT_SIZE, .field = TRAIN_FIELD(cfg.epochs, size_t), .min = 1,
     .max = MAX_EPOCHS, .metavar = "N", .help = "passes over the training set [{default}]",
     .noun = "epochs", .resume = CLI_RESUME_GROW, MODEL},
    {.name = "--batch", .kind = CLI_OPT_SIZE, .field = TRAIN_FIELD(cfg.batch, size_t), .min = 1,
     .max = MAX_BATCH, .metavar = "N", .help = "samples per step [{default}]", MODEL},
    {.name = "--lr", .kind = CLI_OPT_FLOAT, .field = TRAIN_FIELD(cfg.lr, float), .range = &CLI_POSITIVE,
     .metavar = "X", .help = "base learning rate [{default}]", MODEL},
    {.name = "--momentum", .kind = CLI_OPT_FLOAT, .field = TRAIN_FIELD(cfg.momentum, float),
     .range = &CLI_FRACTION, .metavar = "X", .help = "momentum in [0, 1) [{default}]", MODEL},
    {.name = "--nesterov", .negation = "--no-nesterov", .kind = CLI_OPT_FLAG,
     .field = TRAIN_FIELD(cfg.nesterov, int), .set = 1, .usage = "--nesterov, --no-nesterov",
     .help = "Nesterov momentum [{default}; off when --momentum 0]", .noun = "Nesterov", MODEL},
    {.name = "--weight-decay", .kind = CLI_OPT_FLOAT, .field = TRAIN_FIELD(cfg.weight_decay, float),
     .range = &CLI_NONNEG, .metavar = "X", .help = "L2 coefficient on W1 and W2 [{default}]", MODEL},
    {.name = "--schedule", .kind = CLI_OPT_SCHEDULE, .field = TRAIN_FIELD(cfg.schedule, bprop_schedule),
     .metavar = "NAME", .help = "constant, step or cosine [{default}]", MODEL},
    {.name = "--step-epochs", .kind = CLI_OPT_SIZE, .field = TRAIN_FIELD(cfg.step_epochs, size_t),
     .min = 1, .max = MAX_EPOCHS, .metavar = "N",
     .help = "step schedule: epochs between decays [{default}]", MODEL},
    {.name = "--step-gamma", .kind = CLI_OPT_FLOAT, .field = TRAIN_FIELD(cfg.step_gamma, float),
     .range = &CLI_GAMMA, .metavar = "X", .help = "step schedule: decay factor in (0, 1] [{default}]",
     MODEL},
    {.name = "--clip", .kind = CLI_OPT_FLOAT, .field = TRAIN_FIELD(cfg.clip_norm, float),
     .range = &CLI_NONNEG, .metavar = "X",
     .help = "clip the global gradient norm to X, 0 disables [{default}]", MODEL},
    {.name = "--seed", .kind = CLI_OPT_U64, .field = TRAIN_FIELD(cfg.seed, uint64_t), .metavar = "N",
     .help = "initialisation, shuffling and --val-fraction split [{default}]", MODEL},
    {.name = "--threads", .kind = CLI_OPT_INT, .field = TRAIN_FIELD(cfg.threads, int), .min = 0,
     .max = MAX_THREADS, .metavar = "N",
     .help = "OpenMP threads; 0: OMP_NUM_THREADS or all cores [{default}]", .resume = CLI_RESUME_FREE,
     MODEL},
    {.name = "--parallel", .kind = CLI_OPT_PARALLEL, .field = TRAIN_FIELD(cfg.parallel, bprop_parallel),
     .metavar = "MODE",
     .help = "split each step over threads by samples (data), by hidden\n"
             "units (hidden) or as a cost model of the step predicts\n"
             "fastest (auto, never timed, so the choice and the\n"
             "parameters do not vary from run to run); with\n"
             "--reproducible the parameters are the same for every\n"
             "choice, without it hidden gives one thread's [{default}]",
     .resume = CLI_RESUME_FREE, MODEL}, /* the same parameters for every mode */
    {.name = "--reproducible", .negation = "--no-reproducible", .kind = CLI_OPT_FLAG,
     .field = TRAIN_FIELD(cfg.reproducible, int), .set = 1,
     .help = "exact fixed-point gradient sums: the same parameters for\n"
             "every thread count (and, with bprop-mpi, every layout of\n"
             "ranks); without it each thread count is deterministic on\n"
             "its own, in float sums [--no-reproducible]",
     .noun = "reproducible sums", MODEL},
    {.name = "--val-fraction", .kind = CLI_OPT_REAL, .field = TRAIN_FIELD(val_fraction, double),
     .range = &CLI_FRACTION, .metavar = "F",
     .help = "hold out F of the training set (seeded) for per-epoch\n"
             "validation; the test set is then evaluated at the end [{default}]",
     .key = "val_fraction", MODEL},
    {.name = "--no-shuffle", .kind = CLI_OPT_FLAG, .field = TRAIN_FIELD(cfg.shuffle, int), .set = 0,
     .help = "keep the training order fixed", .noun = "shuffling", MODEL},
    {.name = "--no-bias", .kind = CLI_OPT_FLAG, .field = TRAIN_FIELD(bias, int), .set = 0,
     .help = "no bias vectors b1, b2", .noun = "biases", .key = "bias", MODEL},
    {.name = "--standardize", .alias = "--standardise", .kind = CLI_OPT_FLAG,
     .field = TRAIN_FIELD(standardize, int), .set = 1,
     .help = "standardise features with training-split statistics\n"
             "(stored in the model, applied to val/test/predict inputs)",
     .noun = "standardisation", .key = "standardize", MODEL},
    {.name = "--save", .kind = CLI_OPT_STRING, .field = TRAIN_FIELD(save, const char *), .metavar = "FILE",
     .help = "save the trained model (written atomically)", .key = "save", .resume = CLI_RESUME_FREE,
     OUTPUT},
    {.name = "--metrics", .kind = CLI_OPT_STRING, .field = TRAIN_FIELD(metrics, const char *),
     .metavar = "FILE",
     .help = "JSON Lines, one object per epoch, written during the run\n"
             "to FILE.tmp.XXXXXX beside FILE (flushed every epoch, so\n"
             "tail -f works) and renamed to FILE only when the whole run\n"
             "succeeds, after --save. A failed run leaves FILE as it was\n"
             "and keeps the temporary file, naming it on stderr",
     .key = "metrics", .resume = CLI_RESUME_FREE, OUTPUT},
    {.name = "--quiet", .kind = CLI_OPT_FLAG, .field = TRAIN_FIELD(quiet, int), .set = 1,
     .help = "print only the final accuracy line (and errors)", .resume = CLI_RESUME_FREE, OUTPUT},
    {.name = "--checkpoint", .kind = CLI_OPT_STRING, .field = TRAIN_FIELD(ts.checkpoint, const char *),
     .metavar = "FILE",
     .help = "write the run's full state to FILE (atomically) after every\n"
             "epoch; SIGINT/SIGTERM/SIGUSR1 also write it, then exit\n"
             "130/143/138 (bprop-mpi: rank 0 writes it)",
     .resume = CLI_RESUME_FREE, CHECKPOINT},
    {.name = "--checkpoint-every", .kind = CLI_OPT_SIZE, .field = TRAIN_FIELD(ts.every, size_t), .min = 1,
     .max = MAX_EVERY, .metavar = "N", .help = "also every N steps (counted over the whole run)",
     .key = "checkpoint_every", .resume = CLI_RESUME_FREE, CHECKPOINT},
    /* Its list of what a resumed run takes is checked against the rows by test_options. */
    {.name = "--resume", .kind = CLI_OPT_STRING, .field = TRAIN_FIELD(ts.resume, const char *),
     .metavar = "FILE",
     .help = "continue the run FILE holds, with its recorded settings and\n"
             "data; only --epochs N (N >= recorded: extend), --threads,\n"
             "--parallel, --save, --metrics, --checkpoint (default: FILE),\n"
             "--checkpoint-every and --quiet may be given, or options\n"
             "repeating the recorded values",
     .resume = CLI_RESUME_FREE, CHECKPOINT},
    {.name = "--init", .kind = CLI_OPT_STRING, .field = TRAIN_FIELD(ts.init, const char *),
     .metavar = "MODEL",
     .help = "start from MODEL's weights (shape, biases and\n"
             "standardisation come from it), with fresh momentum",
     .key = "init", .resume = CLI_RESUME_NEVER, CHECKPOINT},
    {.name = NULL},
};

void train_opts_default(train_opts *o)
{
    memset(o, 0, sizeof *o);
    bprop_train_config_default(&o->cfg);
    o->hidden = 256;
    o->bias = 1;
    o->data.allowed = CLI_DATA_TRAIN | CLI_DATA_TEST | CLI_DATA_CLASSES;
    o->data.cmd = "train";
}

/* ---- the rows of both tables ------------------------------------------------------------- */

static const cli_option *const tables[2] = {train_options, cli_data_options};
static const size_t table_base[2] = {0, offsetof(train_opts, data)};

/* The row of either table that spelling names (NULL: none); *base is then the offset within
 * train_opts of the struct its field is in. */
static const cli_option *option_row(const char *spelling, size_t *base)
{
    for (int t = 0; t < 2; t++) {
        const cli_option *r = cli_option_find(tables[t], spelling);
        if (r) {
            *base = table_base[t];
            return r;
        }
    }
    return NULL;
}

int train_given(const train_opts *o, const cli_option *r)
{
    for (int i = 0; i < o->ts.n_given; i++)
        if (cli_option_is(r, o->ts.given[i]))
            return 1;
    return 0;
}

/* Remember a spelling met on the command line (for --resume's checks and train_given). */
static void note_given(train_state_opts *s, const char *opt)
{
    if (!opt || strlen(opt) >= sizeof s->given[0])
        return; /* too long for any option name: cli_parse reports it */
    for (int i = 0; i < s->n_given; i++)
        if (strcmp(s->given[i], opt) == 0)
            return;
    if (s->n_given < (int)(sizeof s->given / sizeof s->given[0]))
        strcpy(s->given[s->n_given++], opt);
}

/* ---- help and parsing -------------------------------------------------------------------- */

static void section_help(FILE *f, const char *title, unsigned group, const train_opts *defaults)
{
    fputs(title, f);
    for (const cli_option *r = train_options; r->name; r++)
        if (r->group == group)
            cli_option_help(f, r, defaults);
}

void train_help_to(FILE *f)
{
    train_opts d;
    train_opts_default(&d);
    fputs("Usage: bprop train [options]\n"
          "Train a two-layer ReLU/softmax network with minibatch SGD; print one line per epoch.\n\n", f);
    section_help(f, "Model and training options (defaults in brackets):\n", TRAIN_SECTION_MODEL, &d);
    section_help(f, "\nOutput options:\n", TRAIN_SECTION_OUTPUT, &d);
    fputs("  Both targets are checked before training (not a directory, directory writable).\n\n", f);
    section_help(f, "Checkpoints (see docs/cli.md):\n",
                 TRAIN_SECTION_CHECKPOINT, &d);
    fputs("  Without --checkpoint, a signal writes MODEL.ckpt beside --save MODEL, else\n"
          "  bprop-PID.ckpt in the working directory (the name is printed; bprop-mpi: rank\n"
          "  0's). A second signal exits at once, removing any half-written file.\n\n", f);
    cli_data_help(f, d.data.allowed);
    fputs("\nA progress bar (loss, samples/s, ETA) is drawn on stderr when it is a terminal.\n"
          "Examples:\n"
          "  bprop train --epochs 10 --save fashion.bpm --metrics fashion.jsonl\n"
          "  bprop train --train train.csv --test test.csv --standardize --hidden 64 --epochs 5\n"
          "Exit status: 0 success, 1 runtime error (including divergence: nothing is saved),\n"
          "2 bad command line, 130/143/138 stopped by SIGINT/SIGTERM/SIGUSR1 (checkpoint\n"
          "written; under mpirun send SIGUSR1 to mpirun: see docs/clusters.md).\n", f);
}

static void train_help(void) { train_help_to(stdout); }

static int train_option(cli_args *a, void *opts)
{
    train_opts *o = opts;
    note_given(&o->ts, a->opt);
    const cli_option *r = cli_option_find(train_options, a->opt);
    return r ? cli_option_parse(r, a, o) : cli_data_option(a, &o->data);
}

/* Settings that only make sense together; the library's own check names the field. */
static int check_options(const cli_runtime *rt, const char *cmd, train_opts *o)
{
    const cli_option *nesterov = cli_option_find(train_options, "--nesterov");
    if (o->cfg.momentum == 0.0f && !train_given(o, nesterov))
        o->cfg.nesterov = 0;
    if (o->cfg.momentum == 0.0f && o->cfg.nesterov)
        return cli_usage(rt, cmd, "--nesterov: needs --momentum > 0");
    bprop_error err = {0};
    if (bprop_train_config_check(&o->cfg, &err) != BPROP_OK)
        return cli_usage(rt, cmd, "%s", err.message[0] ? err.message : "invalid training settings");
    if ((o->save && !o->save[0]) || (o->metrics && !o->metrics[0]))
        return cli_usage(rt, cmd, "%s: empty file name", o->save && !o->save[0] ? "--save" : "--metrics");
    if (o->save && o->metrics && strcmp(o->save, o->metrics) == 0)
        return cli_usage(rt, cmd, "--save and --metrics name the same file '%s'", o->save);
    return 0;
}

int train_parse_args(const cli_runtime *rt, int argc, char **argv, train_opts *o)
{
    train_opts_default(o);
    cli_command c = {"train", train_help, train_option, o, NULL};
    return cli_parse(rt, &c, argc, argv);
}

int train_parse(const cli_runtime *rt, int argc, char **argv, train_opts *o)
{
    int rc = train_parse_args(rt, argc, argv, o);
    return rc ? rc : check_options(rt, "train", o);
}

/* ---- the settings text: key=value lines, '\\' and newlines escaped ----------------------- */

typedef struct text_buf {
    char *s;
    size_t len, cap;
    int failed;
} text_buf;

static void tb_put(text_buf *b, const char *p, size_t n)
{
    if (b->failed)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->failed = 1;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void tb_line(text_buf *b, const char *key, const char *value)
{
    tb_put(b, key, strlen(key));
    tb_put(b, "=", 1);
    for (const char *p = value; *p; p++) {
        if (*p == '\\')
            tb_put(b, "\\\\", 2);
        else if (*p == '\n')
            tb_put(b, "\\n", 2);
        else
            tb_put(b, p, 1);
    }
    tb_put(b, "\n", 1);
}

char *train_settings_text(const train_opts *o)
{
    text_buf b = {0};
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++) {
            char buf[64];
            const char *v = r->key ? cli_option_record(r, (const char *)o + table_base[t], buf, sizeof buf)
                                   : NULL;
            if (v)
                tb_line(&b, r->key, v);
        }
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : calloc(1, 1);
}

/* Undo tb_line's escapes in place. */
static void unescape(char *s)
{
    char *w = s;
    for (const char *p = s; *p; p++) {
        if (*p == '\\' && (p[1] == '\\' || p[1] == 'n')) {
            *w++ = p[1] == 'n' ? '\n' : '\\';
            p++;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

int train_settings_each(char *text, int (*fn)(void *user, const char *key, const char *value),
                        void *user)
{
    for (char *line = text, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char *eq = strchr(line, '=');
        if (!eq)
            return fn(user, line, NULL);
        *eq = '\0';
        unescape(eq + 1);
        int rc = fn(user, line, eq + 1);
        if (rc)
            return rc;
    }
    return 0;
}

typedef struct apply_ctx {
    const cli_runtime *rt;
    train_opts *o;
    const char *path;
} apply_ctx;

/* One key=value of the text into the row that records that key. */
static int apply_one(void *user, const char *key, const char *value)
{
    apply_ctx *x = user;
    for (int t = 0; value && t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++)
            if (r->key && strcmp(r->key, key) == 0 &&
                cli_option_apply(r, (char *)x->o + table_base[t], value) == 0)
                return 0;
    return cli_fail(x->rt, "%s: settings: bad or unknown entry '%s%s%s'", x->path, key, value ? "=" : "",
                    value ? value : "");
}

int train_settings_apply(const cli_runtime *rt, char *text, train_opts *o, const char *path)
{
    apply_ctx x = {rt, o, path};
    return train_settings_each(text, apply_one, &x);
}

/* ---- what a resumed run may be told ------------------------------------------------------ */

/* Refuse opt beside --resume, saying why and which options a resumed run takes: the rows with
 * CLI_RESUME_GROW and CLI_RESUME_FREE (but --resume itself), in table order. */
static int refuse(const cli_runtime *rt, const char *opt, const char *why)
{
    char grow[128] = "", free_list[512] = "", last[64] = "";
    size_t used = 0;
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++) {
            if (r->resume == CLI_RESUME_GROW)
                snprintf(grow, sizeof grow, "%s %s >= recorded extends it; ", r->name, r->metavar);
            if (r->resume != CLI_RESUME_FREE || strcmp(r->name, "--resume") == 0)
                continue;
            if (last[0] && used < sizeof free_list)
                used += (size_t)snprintf(free_list + used, sizeof free_list - used, "%s%s",
                                         used ? ", " : "", last);
            snprintf(last, sizeof last, "%s", r->name);
        }
    return cli_usage(rt, "train", "%s: %s; a resumed run keeps the settings its checkpoint recorded "
                         "(%s%s and %s may be given)", opt, why, grow, free_list, last);
}

/* The check of one option given beside --resume; 0 when it is taken. */
static int check_one(const cli_runtime *rt, const char *opt, const cli_option *r, const void *now,
                     const void *was)
{
    char a[CLI_PATH_MAX + 32], b[CLI_PATH_MAX + 32], why[2 * sizeof a + 64];
    if (r->resume == CLI_RESUME_FREE)
        return 0;
    if (r->resume == CLI_RESUME_NEVER)
        return refuse(rt, opt, "cannot be combined with --resume");
    if (r->resume == CLI_RESUME_GROW) {
        const size_t n = *(const size_t *)((const char *)now + r->field);
        const size_t w = *(const size_t *)((const char *)was + r->field);
        if (n >= w)
            return 0;
        snprintf(why, sizeof why, "%zu is fewer than the %zu %s the run was recorded with (a run "
                 "cannot be shortened)", n, w, r->noun);
        return refuse(rt, opt, why);
    }
    cli_option_show(r, now, a, sizeof a);
    cli_option_show(r, was, b, sizeof b);
    if (strcmp(a, b) == 0)
        return 0;
    snprintf(why, sizeof why, "%s differs from the checkpoint's %s", a, b);
    return refuse(rt, opt, why);
}

int train_resume_check(const cli_runtime *rt, const train_opts *o, const train_opts *rec)
{
    for (int i = 0; i < o->ts.n_given; i++) {
        size_t base = 0;
        const char *opt = o->ts.given[i];
        const cli_option *r = option_row(opt, &base);
        int rc = r ? check_one(rt, opt, r, (const char *)o + base, (const char *)rec + base) : 0;
        if (rc)
            return rc;
    }
    return 0;
}

void train_resume_overlay(train_opts *rec, const train_opts *o)
{
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++)
            if ((r->resume == CLI_RESUME_FREE || r->resume == CLI_RESUME_GROW) && train_given(o, r))
                cli_option_copy(r, (char *)rec + table_base[t], (const char *)o + table_base[t]);
}
