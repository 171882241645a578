/* train_resume.c: `bprop train`'s --checkpoint/--checkpoint-every/--resume/--init options: the
 * settings text a checkpoint carries, and what a resumed run or an --init model allows. */
#define _POSIX_C_SOURCE 200809L
#include "train_state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_EVERY ((size_t)1 << 40)

void train_state_help(FILE *f)
{
    fputs("Checkpoints (see docs/cli.md):\n"
          "  --checkpoint FILE    write the run's full state to FILE (atomically) after every\n"
          "                       epoch; SIGINT/SIGTERM/SIGUSR1 also write it, then exit\n"
          "                       130/143/138 (bprop-mpi: rank 0 writes it)\n"
          "  --checkpoint-every N also every N steps (counted over the whole run)\n"
          "  --resume FILE        continue the run FILE holds, with its recorded settings and\n"
          "                       data; only --epochs N (N >= recorded: extend), --threads,\n"
          "                       --parallel, --save, --metrics, --checkpoint (default: FILE),\n"
          "                       --checkpoint-every and --quiet may be given, or options\n"
          "                       repeating the recorded values\n"
          "  --init MODEL         start from MODEL's weights (shape, biases and\n"
          "                       standardisation come from it), with fresh momentum\n"
          "  Without --checkpoint, a signal writes MODEL.ckpt beside --save MODEL, else\n"
          "  bprop-PID.ckpt in the working directory (the name is printed; bprop-mpi: rank\n"
          "  0's). A second signal exits at once, removing any half-written file.\n\n", f);
}

void train_state_note(train_state_opts *s, const char *opt)
{
    if (!opt || strlen(opt) >= sizeof s->given[0])
        return; /* too long for any option name: cli_parse reports it */
    for (int i = 0; i < s->n_given; i++)
        if (strcmp(s->given[i], opt) == 0)
            return;
    if (s->n_given < (int)(sizeof s->given / sizeof s->given[0]))
        strcpy(s->given[s->n_given++], opt);
}

static int given(const train_state_opts *s, const char *opt)
{
    for (int i = 0; i < s->n_given; i++)
        if (strcmp(s->given[i], opt) == 0)
            return 1;
    return 0;
}

int train_state_option(cli_args *a, train_state_opts *s)
{
    if (cli_is(a, "--checkpoint"))
        return cli_value(a, &s->checkpoint);
    if (cli_is(a, "--checkpoint-every"))
        return cli_size(a, 1, MAX_EVERY, &s->every);
    if (cli_is(a, "--resume"))
        return cli_value(a, &s->resume);
    if (cli_is(a, "--init"))
        return cli_value(a, &s->init);
    return CLI_NOMATCH;
}

void train_state_opts_free(train_state_opts *s)
{
    bprop_checkpoint_free(s->ck);
    bprop_model_free(s->init_model);
    free(s->text);
    s->ck = NULL;
    s->init_model = NULL;
    s->text = NULL;
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

static void tb_str(text_buf *b, const char *key, const char *value)
{
    if (!value)
        return;
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

static void tb_fmt(text_buf *b, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tb_fmt(text_buf *b, const char *key, const char *fmt, ...)
{
    char value[64];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(value, sizeof value, fmt, ap);
    va_end(ap);
    tb_str(b, key, value);
}

char *train_settings_text(const train_opts *o)
{
    text_buf b = {0};
    const cli_data_opts *d = &o->data;
    tb_fmt(&b, "hidden", "%zu", o->hidden);
    tb_fmt(&b, "bias", "%d", o->bias);
    tb_fmt(&b, "standardize", "%d", o->standardize);
    tb_fmt(&b, "val_fraction", "%.17g", o->val_fraction);
    tb_str(&b, "data", d->dir);
    tb_str(&b, "train", d->train);
    tb_str(&b, "train_labels", d->train_labels);
    tb_str(&b, "test", d->test);
    tb_str(&b, "test_labels", d->test_labels);
    tb_fmt(&b, "train_limit", "%zu", d->train_limit);
    tb_fmt(&b, "test_limit", "%zu", d->test_limit);
    tb_fmt(&b, "classes", "%zu", d->classes);
    tb_str(&b, "init", o->ts.init);
    tb_str(&b, "save", o->save);
    tb_str(&b, "metrics", o->metrics);
    tb_fmt(&b, "checkpoint_every", "%zu", o->ts.every);
    if (b.failed) {
        free(b.s);
        return NULL;
    }
    return b.s ? b.s : calloc(1, 1);
}

/* Undo tb_str's escapes in place. */
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

static int parse_size(const char *v, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (!*v || *end || errno || v[0] == '-')
        return -1;
    *out = (size_t)x;
    return 0;
}

/* One key=value of a checkpoint's settings into o (strings point into the text). */
static int apply_setting(train_opts *o, const char *key, const char *v)
{
    cli_data_opts *d = &o->data;
    const char **str = strcmp(key, "data") == 0 ? &d->dir
                       : strcmp(key, "train") == 0 ? &d->train
                       : strcmp(key, "train_labels") == 0 ? &d->train_labels
                       : strcmp(key, "test") == 0 ? &d->test
                       : strcmp(key, "test_labels") == 0 ? &d->test_labels
                       : strcmp(key, "init") == 0 ? &o->ts.init
                       : strcmp(key, "save") == 0 ? &o->save
                       : strcmp(key, "metrics") == 0 ? &o->metrics : NULL;
    if (str) {
        *str = v;
        return 0;
    }
    size_t *num = strcmp(key, "train_limit") == 0 ? &d->train_limit
                  : strcmp(key, "test_limit") == 0 ? &d->test_limit
                  : strcmp(key, "classes") == 0 ? &d->classes
                  : strcmp(key, "checkpoint_every") == 0 ? &o->ts.every
                  : strcmp(key, "hidden") == 0 ? &o->hidden : NULL;
    size_t x = 0;
    if (num)
        return parse_size(v, num);
    if (strcmp(key, "bias") == 0 || strcmp(key, "standardize") == 0) {
        if (parse_size(v, &x) || x > 1)
            return -1;
        *(key[0] == 'b' ? &o->bias : &o->standardize) = (int)x;
        return 0;
    }
    if (strcmp(key, "val_fraction") == 0) {
        char *end;
        o->val_fraction = strtod(v, &end);
        return (*v && !*end && o->val_fraction >= 0.0 && o->val_fraction < 1.0) ? 0 : -1;
    }
    return -1;
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
    train_opts *o;
    const char *path;
} apply_ctx;

static int apply_one(void *user, const char *key, const char *value)
{
    apply_ctx *x = user;
    if (!value || apply_setting(x->o, key, value))
        return cli_fail("%s: settings: bad or unknown entry '%s%s%s'", x->path, key, value ? "=" : "",
                        value ? value : "");
    return 0;
}

/* The run a checkpoint records, as the options that would start it. */
static int recorded_opts(const char *path, bprop_checkpoint *ck, char *text, train_opts *rec)
{
    memset(rec, 0, sizeof *rec);
    rec->cfg = ck->config;
    rec->data.allowed = CLI_DATA_TRAIN | CLI_DATA_TEST | CLI_DATA_CLASSES;
    rec->data.cmd = "train";
    apply_ctx x = {rec, path};
    int rc = train_settings_each(text, apply_one, &x);
    if (rc)
        return rc;
    /* The model is the authority on its own shape. */
    rec->hidden = ck->model->hidden;
    rec->bias = ck->model->has_bias;
    return 0;
}

/* ---- what a resumed run may be told ------------------------------------------------------ */

/* The value an option sets in o, as text; 0 when the option names a setting of the run. */
static int option_value(const train_opts *o, const char *opt, char *buf, size_t n)
{
    const bprop_train_config *c = &o->cfg;
    const cli_data_opts *d = &o->data;
    if (strcmp(opt, "--hidden") == 0)
        snprintf(buf, n, "%zu", o->hidden);
    else if (strcmp(opt, "--no-bias") == 0)
        snprintf(buf, n, "biases %s", o->bias ? "on" : "off");
    else if (strcmp(opt, "--standardize") == 0 || strcmp(opt, "--standardise") == 0)
        snprintf(buf, n, "standardisation %s", o->standardize ? "on" : "off");
    else if (strcmp(opt, "--batch") == 0)
        snprintf(buf, n, "%zu", c->batch);
    else if (strcmp(opt, "--lr") == 0)
        snprintf(buf, n, "%.9g", (double)c->lr);
    else if (strcmp(opt, "--momentum") == 0)
        snprintf(buf, n, "%.9g", (double)c->momentum);
    else if (strcmp(opt, "--nesterov") == 0 || strcmp(opt, "--no-nesterov") == 0)
        snprintf(buf, n, "Nesterov %s", c->nesterov ? "on" : "off");
    else if (strcmp(opt, "--weight-decay") == 0)
        snprintf(buf, n, "%.9g", (double)c->weight_decay);
    else if (strcmp(opt, "--schedule") == 0)
        snprintf(buf, n, "%s", bprop_schedule_name(c->schedule));
    else if (strcmp(opt, "--step-epochs") == 0)
        snprintf(buf, n, "%zu", c->step_epochs);
    else if (strcmp(opt, "--step-gamma") == 0)
        snprintf(buf, n, "%.9g", (double)c->step_gamma);
    else if (strcmp(opt, "--clip") == 0)
        snprintf(buf, n, "%.9g", (double)c->clip_norm);
    else if (strcmp(opt, "--seed") == 0)
        snprintf(buf, n, "%llu", (unsigned long long)c->seed);
    else if (strcmp(opt, "--reproducible") == 0 || strcmp(opt, "--no-reproducible") == 0)
        snprintf(buf, n, "reproducible sums %s", c->reproducible ? "on" : "off");
    else if (strcmp(opt, "--no-shuffle") == 0)
        snprintf(buf, n, "shuffling %s", c->shuffle ? "on" : "off");
    else if (strcmp(opt, "--val-fraction") == 0)
        snprintf(buf, n, "%.17g", o->val_fraction);
    else if (strcmp(opt, "--data") == 0 || strcmp(opt, "--train") == 0 || strcmp(opt, "--test") == 0 ||
             strcmp(opt, "--train-labels") == 0 || strcmp(opt, "--test-labels") == 0) {
        const char *v = opt[2] == 'd' ? d->dir : strcmp(opt, "--train") == 0 ? d->train
                        : strcmp(opt, "--test") == 0 ? d->test
                        : strcmp(opt, "--train-labels") == 0 ? d->train_labels : d->test_labels;
        snprintf(buf, n, "'%s'", v ? v : "(none)");
    } else if (strcmp(opt, "--train-limit") == 0)
        snprintf(buf, n, "%zu", d->train_limit);
    else if (strcmp(opt, "--test-limit") == 0)
        snprintf(buf, n, "%zu", d->test_limit);
    else if (strcmp(opt, "--classes") == 0)
        snprintf(buf, n, "%zu", d->classes);
    else
        return -1;
    return 0;
}

static int resume_allows(const char *opt)
{
    static const char *const ok[] = {"--resume", "--threads", "--parallel", "--save", "--metrics",
                                     "--checkpoint", "--checkpoint-every", "--quiet", "--epochs"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(opt, ok[i]) == 0)
            return 1;
    return 0;
}

static int refuse(const char *opt, const char *why)
{
    return cli_usage("train", "%s: %s; a resumed run keeps the settings its checkpoint recorded "
                     "(--epochs N >= recorded extends it; --threads, --parallel, --save, --metrics, "
                     "--checkpoint, --checkpoint-every and --quiet may be given)", opt, why);
}

/* Every option given must be one a resumed run takes, or repeat the recorded value. */
static int check_resume_options(const train_opts *o, const train_opts *rec)
{
    for (int i = 0; i < o->ts.n_given; i++) {
        const char *opt = o->ts.given[i];
        char now[CLI_PATH_MAX + 32], was[CLI_PATH_MAX + 32], why[2 * sizeof now + 64];
        if (strcmp(opt, "--epochs") == 0 && o->cfg.epochs < rec->cfg.epochs) {
            snprintf(why, sizeof why, "%zu is fewer than the %zu epochs the run was recorded with "
                     "(a run cannot be shortened)", o->cfg.epochs, rec->cfg.epochs);
            return refuse(opt, why);
        }
        if (resume_allows(opt))
            continue;
        if (option_value(o, opt, now, sizeof now) || option_value(rec, opt, was, sizeof was))
            return refuse(opt, "cannot be combined with --resume");
        if (strcmp(now, was) != 0) {
            snprintf(why, sizeof why, "%s differs from the checkpoint's %s", now, was);
            return refuse(opt, why);
        }
    }
    return 0;
}

/* Keep what a resumed run may change; everything else comes from the checkpoint. */
static void overlay(train_opts *rec, const train_opts *o)
{
    rec->quiet = o->quiet;
    if (given(&o->ts, "--threads"))
        rec->cfg.threads = o->cfg.threads;
    if (given(&o->ts, "--parallel")) /* the same parameters for every mode */
        rec->cfg.parallel = o->cfg.parallel;
    if (given(&o->ts, "--epochs"))
        rec->cfg.epochs = o->cfg.epochs;
    if (o->save)
        rec->save = o->save;
    if (o->metrics)
        rec->metrics = o->metrics;
    if (given(&o->ts, "--checkpoint-every"))
        rec->ts.every = o->ts.every;
    size_t every = rec->ts.every;
    rec->ts = o->ts;
    rec->ts.every = every;
}

static int load_resume(train_opts *o)
{
    train_state_opts *s = &o->ts;
    bprop_error err = {0};
    bprop_status st = bprop_checkpoint_load(s->resume, &s->ck, &err);
    if (st != BPROP_OK) {
        bprop_model *m = NULL;
        /* A model file is an easy mistake: say what to do with it. */
        if (st == BPROP_E_FORMAT && bprop_model_load(s->resume, &m, NULL) == BPROP_OK) {
            bprop_model_free(m);
            return cli_fail("--resume %s: a model file, not a checkpoint (start from its weights "
                            "with --init)", s->resume);
        }
        return cli_fail_path(s->resume, &err, st);
    }
    s->text = strdup(s->ck->settings ? s->ck->settings : "");
    if (!s->text)
        return cli_fail("%s: out of memory", s->resume);
    train_opts rec;
    int rc = recorded_opts(s->resume, s->ck, s->text, &rec);
    if (!rc)
        rc = check_resume_options(o, &rec);
    if (rc)
        return rc;
    overlay(&rec, o);
    *o = rec;
    return 0;
}

/* ---- --init: shape, biases and standardisation come from the model ------------------------ */

static int load_init(train_opts *o)
{
    train_state_opts *s = &o->ts;
    if (bprop_is_checkpoint(s->init))
        return cli_usage("train", "--init %s: a checkpoint, not a model (continue its run with --resume)",
                         s->init);
    if (cli_load_model(s->init, &s->init_model))
        return CLI_EXIT_RUNTIME;
    const bprop_model *m = s->init_model;
    if (given(s, "--hidden") && o->hidden != m->hidden)
        return cli_usage("train", "--hidden %zu: the --init model %s has %zu hidden units", o->hidden,
                         s->init, m->hidden);
    if (!o->bias && m->has_bias)
        return cli_usage("train", "--no-bias: the --init model %s has biases", s->init);
    if (o->standardize && !m->std_mean)
        return cli_usage("train", "--standardize: the --init model %s has no standardisation "
                         "statistics (its inputs are used as given)", s->init);
    if (o->data.classes && o->data.classes != m->classes)
        return cli_usage("train", "--classes %zu: the --init model %s has %zu classes", o->data.classes,
                         s->init, m->classes);
    o->hidden = m->hidden;
    o->bias = m->has_bias;
    o->standardize = m->std_mean != NULL;
    return 0;
}

static int check_targets(const train_opts *o)
{
    const train_state_opts *s = &o->ts;
    if (s->checkpoint && !s->checkpoint[0])
        return cli_usage("train", "--checkpoint: empty file name");
    if (s->resume && s->init)
        return cli_usage("train", "--init: cannot be combined with --resume (the checkpoint holds the model)");
    if (s->every && !s->checkpoint && !s->resume)
        return cli_usage("train", "--checkpoint-every: needs --checkpoint FILE");
    const char *ck = s->checkpoint ? s->checkpoint : s->resume;
    if (ck && ((o->save && strcmp(ck, o->save) == 0) || (o->metrics && strcmp(ck, o->metrics) == 0)))
        return cli_usage("train", "the checkpoint '%s' is also named by --%s", ck,
                         o->save && strcmp(ck, o->save) == 0 ? "save" : "metrics");
    return 0;
}

int train_state_resolve(train_opts *o)
{
    int rc = check_targets(o);
    if (!rc && o->ts.resume)
        rc = load_resume(o);
    else if (!rc && o->ts.init)
        rc = load_init(o);
    return rc ? rc : check_targets(o);
}
