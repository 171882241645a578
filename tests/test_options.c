/* test_options.c: `bprop train`'s option table (src/cli/train_options.c and data.c's data rows):
 * every row parses, is in the help, is recorded by a checkpoint and comes back on --resume; the
 * settings text of earlier builds still applies. Links the CLI's sources (without main). */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include "runtime.h"
#include "train_options.h"
#include "train_state.h"

#include <criterion/criterion.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The rows `bprop train` takes: its own table, then the data options (fields in o->data). */
static const cli_option *const tables[2] = {train_options, cli_data_options};

static const void *base_of(int t, const train_opts *o) { return t ? (const void *)&o->data : o; }

/* ---- usage errors are captured rather than printed ------------------------------------------ */

static char g_messages[16384];

static void capture(void *ctx, int usage, const char *text)
{
    (void)ctx;
    (void)usage;
    strncat(g_messages, text, sizeof g_messages - strlen(g_messages) - 1);
}

static const cli_runtime capturing = {.rank = 0, .size = 1, .message = capture};

static void capture_messages(void)
{
    g_messages[0] = '\0';
}

TestSuite(options, .init = capture_messages);

/* ---- values for every row -------------------------------------------------------------------- */

/* A value training accepts for r (written to buf; NULL for a flag), and with other = 1 another
 * value of the same kind. */
static const char *value_for(const cli_option *r, int other, char *buf, size_t n)
{
    switch (r->kind) {
    case CLI_OPT_FLAG:
        return NULL;
    case CLI_OPT_SIZE:
    case CLI_OPT_INT:
        snprintf(buf, n, "%zu", r->min + 3 + (size_t)other);
        return buf;
    case CLI_OPT_U64:
        return other ? "6" : "5";
    case CLI_OPT_FLOAT:
    case CLI_OPT_REAL:
        return other ? "0.5" : "0.25";
    case CLI_OPT_STRING:
        snprintf(buf, n, "%s%s.out", r->name + 2, other ? "-2" : "");
        return buf;
    case CLI_OPT_SCHEDULE:
        return other ? "constant" : "step";
    case CLI_OPT_PARALLEL:
        return other ? "data" : "hidden";
    }
    return NULL;
}

/* Parse "train spelling [value]" from the defaults into o; returns the parser's code. */
static int parse_one(const char *spelling, const char *value, train_opts *o)
{
    char *argv[] = {"train", (char *)spelling, (char *)value, NULL};
    return train_parse_args(&capturing, value ? 3 : 2, argv, o);
}

static void show(const cli_option *r, int t, const train_opts *o, char *buf, size_t n)
{
    cli_option_show(r, base_of(t, o), buf, n);
}

Test(options, every_row_parses_into_its_field)
{
    train_opts def;
    train_opts_default(&def);
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++) {
            char buf[64], now[256], was[256];
            train_opts o;
            const char *v = value_for(r, 0, buf, sizeof buf);
            cr_assert_eq(parse_one(r->name, v, &o), 0, "%s %s: %s", r->name, v ? v : "", g_messages);
            show(r, t, &o, now, sizeof now);
            show(r, t, &def, was, sizeof was);
            if (r->kind == CLI_OPT_FLAG)
                cr_assert_eq(*(const int *)((const char *)base_of(t, &o) + r->field), r->set, "%s", r->name);
            else
                cr_assert_str_neq(now, was, "%s %s left the default %s", r->name, v, was);
            cr_assert(train_given(&o, r), "%s not noted as given", r->name);
            if (r->alias) {
                train_opts a;
                cr_assert_eq(parse_one(r->alias, v, &a), 0, "%s", r->alias);
                show(r, t, &a, was, sizeof was);
                cr_assert_str_eq(now, was, "%s and %s differ", r->name, r->alias);
            }
            if (r->negation) {
                cr_assert_eq(parse_one(r->negation, NULL, &o), 0, "%s", r->negation);
                cr_assert_eq(*(const int *)((const char *)base_of(t, &o) + r->field), !r->set, "%s",
                             r->negation);
            }
        }
}

Test(options, bad_values_are_usage_errors)
{
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++) {
            train_opts o;
            if (r->kind == CLI_OPT_FLAG) {
                char with_value[64];
                snprintf(with_value, sizeof with_value, "%s=1", r->name);
                cr_assert_eq(parse_one(with_value, NULL, &o), CLI_EXIT_USAGE, "%s", with_value);
                continue;
            }
            cr_assert_eq(parse_one(r->name, NULL, &o), CLI_EXIT_USAGE, "%s without a value", r->name);
            cr_assert(strstr(g_messages, "missing value"), "%s", g_messages);
            if (r->kind != CLI_OPT_STRING)
                cr_assert_eq(parse_one(r->name, "-1x", &o), CLI_EXIT_USAGE, "%s -1x", r->name);
        }
}

/* ---- the help -------------------------------------------------------------------------------- */

Test(options, every_row_is_in_the_help)
{
    char *help = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&help, &len);
    cr_assert_not_null(f);
    train_help_to(f);
    cr_assert_eq(fclose(f), 0);
    size_t rows = 0, lines = 0;
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++, rows++) {
            char start[64];
            snprintf(start, sizeof start, "\n  %s%s%s", r->usage ? r->usage : r->name,
                     r->metavar && !r->usage ? " " : "", r->metavar && !r->usage ? r->metavar : "");
            cr_assert(strstr(help, start), "'%s' is not in the help:\n%s", start + 1, help);
        }
    for (const char *p = help; (p = strstr(p, "\n  --")); p++)
        lines++;
    cr_assert_eq(lines, rows, "%zu option lines in the help, %zu rows", lines, rows);
    /* The defaults come from the same settings the parser starts from. */
    cr_assert(strstr(help, "  --hidden N           hidden units [256]\n"), "%s", help);
    cr_assert(strstr(help, "Nesterov momentum [on; off when --momentum 0]"), "%s", help);
    free(help);
}

/* ---- the settings text ----------------------------------------------------------------------- */

Test(options, every_row_round_trips_through_the_settings_text)
{
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++) {
            char buf[64], rec[64], a[256], b[256];
            train_opts o, back;
            parse_one(r->negation ? r->negation : r->name, value_for(r, 0, buf, sizeof buf), &o);
            train_opts_default(&back);
            const char *v = cli_option_record(r, base_of(t, &o), rec, sizeof rec);
            cr_assert_not_null(v, "%s records nothing", r->name);
            cr_assert_eq(cli_option_apply(r, (void *)base_of(t, &back), v), 0, "%s=%s", r->name, v);
            show(r, t, &o, a, sizeof a);
            show(r, t, &back, b, sizeof b);
            cr_assert_str_eq(a, b, "%s: recorded '%s'", r->name, v);
            if (!r->key)
                continue;
            /* Through the whole text, as a checkpoint carries it. */
            char *text = train_settings_text(&o);
            cr_assert_not_null(text);
            train_opts_default(&back);
            cr_assert_eq(train_settings_apply(&capturing, text, &back, "t.ckpt"), 0, "%s", g_messages);
            show(r, t, &back, b, sizeof b);
            cr_assert_str_eq(a, b, "%s: through the settings text", r->name);
            free(text);
        }
}

Test(options, settings_keys_are_unique)
{
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++)
            for (int u = 0; u < 2; u++)
                for (const cli_option *q = tables[u]; q->name; q++)
                    cr_assert(q == r || !r->key || !q->key || strcmp(q->key, r->key) != 0, "%s", r->key);
}

/* What checkpoints of the build before the option table hold (its own order of keys). */
Test(options, settings_text_of_an_earlier_build_applies)
{
    char text[] = "hidden=7\nbias=0\nstandardize=1\nval_fraction=0.20000000000000001\ndata=/d\n"
                  "train=train.csv\ntest=test.csv\ntrain_limit=50\ntest_limit=10\nclasses=4\n"
                  "init=i.bpm\nsave=we\\\\ird\\nname.bpm\nmetrics=m.jsonl\ncheckpoint_every=2\n";
    train_opts o;
    train_opts_default(&o);
    cr_assert_eq(train_settings_apply(&capturing, text, &o, "old.ckpt"), 0, "%s", g_messages);
    cr_assert(o.hidden == 7 && o.bias == 0 && o.standardize == 1 && o.val_fraction == 0.2);
    cr_assert_str_eq(o.data.dir, "/d");
    cr_assert_str_eq(o.data.train, "train.csv");
    cr_assert_str_eq(o.data.test, "test.csv");
    cr_assert(o.data.train_limit == 50 && o.data.test_limit == 10 && o.data.classes == 4);
    cr_assert_str_eq(o.ts.init, "i.bpm");
    cr_assert_str_eq(o.save, "we\\ird\nname.bpm");
    cr_assert_str_eq(o.metrics, "m.jsonl");
    cr_assert_eq(o.ts.every, 2);
    char bad[] = "hidden=7\nwidth=3\n";
    cr_assert_eq(train_settings_apply(&capturing, bad, &o, "old.ckpt"), CLI_EXIT_RUNTIME);
    cr_assert(strstr(g_messages, "old.ckpt: settings: bad or unknown entry 'width=3'"), "%s", g_messages);
    char bad_flag[] = "bias=2\n";
    cr_assert_eq(train_settings_apply(&capturing, bad_flag, &o, "old.ckpt"), CLI_EXIT_RUNTIME);
}

/* ---- --resume's rules ------------------------------------------------------------------------ */

/* The options a resumed run takes are listed in --resume's help and in the refusal: both must
 * name every row that --resume takes. */
Test(options, resume_texts_name_every_option_a_resumed_run_takes)
{
    const cli_option *resume = cli_option_find(train_options, "--resume");
    char help[1024];
    snprintf(help, sizeof help, "%s", resume->help);
    for (char *p = help; *p; p++)
        *p = *p == '\n' ? ' ' : *p;
    train_opts o, rec;
    train_opts_default(&rec);
    cr_assert_eq(parse_one("--lr", "0.5", &o), 0);
    cr_assert_eq(train_resume_check(&capturing, &o, &rec), CLI_EXIT_USAGE);
    cr_assert(strstr(g_messages, "--lr: 0.5 differs from the checkpoint's 0.100000001"), "%s", g_messages);
    size_t taken = 0;
    for (const cli_option *r = train_options; r->name; r++) {
        if (r->resume != CLI_RESUME_FREE && r->resume != CLI_RESUME_GROW)
            continue;
        taken++;
        if (r == resume)
            continue;
        char word[64];
        snprintf(word, sizeof word, "%s%s", r->name, r->resume == CLI_RESUME_GROW ? " N" : "");
        cr_assert(strstr(help, word), "--resume's help lacks %s: %s", word, help);
        cr_assert(strstr(g_messages, word), "the refusal lacks %s: %s", word, g_messages);
    }
    cr_assert_eq(taken, 9);
}

Test(options, overlay_takes_only_what_a_resumed_run_may_change)
{
    train_opts o, rec;
    train_opts_default(&rec);
    char *argv[] = {"train", "--threads", "3", "--epochs", "20", "--lr", "0.5", "--save", "s.bpm", NULL};
    cr_assert_eq(train_parse_args(&capturing, 9, argv, &o), 0);
    train_resume_overlay(&rec, &o);
    cr_assert_eq(rec.cfg.threads, 3);
    cr_assert_eq(rec.cfg.epochs, 20);
    cr_assert_str_eq(rec.save, "s.bpm");
    cr_assert_eq(rec.cfg.lr, 0.1f, "--lr is the checkpoint's");
}

/* ---- end to end: a checkpoint records every option, and --resume gets it back ---------------- */

static char *g_dir;

static void write_csv(const char *name, const bprop_dataset *d)
{
    char *p = tu_path(g_dir, name);
    tu_write_csv(p, d, d->n, 1);
    free(p);
}

/* d's 4 features as 2 x 2 IDX images (bytes), and its labels. */
static void write_idx(const char *images, const char *labels, const bprop_dataset *d)
{
    size_t n = d->n;
    unsigned char *buf = calloc(16 + n * 4, 1);
    const uint32_t head[4] = {0x803, (uint32_t)n, 2, 2};
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 4; b++)
            buf[4 * i + b] = (unsigned char)(head[i] >> (24 - 8 * b));
    for (size_t i = 0; i < n * 4; i++)
        buf[16 + i] = (unsigned char)(128 + 20 * d->x[i]);
    char *p = tu_path(g_dir, images);
    tu_write_file(p, buf, 16 + n * 4);
    free(p);
    buf[2] = 8, buf[3] = 1; /* labels: magic 0x801, the count as before */
    for (size_t i = 0; i < n; i++)
        buf[8 + i] = (unsigned char)d->y[i];
    p = tu_path(g_dir, labels);
    tu_write_file(p, buf, 8 + n);
    free(p);
    free(buf);
}

/* Run the CLI in the scratch directory with the NULL-terminated args. */
static tu_run run_cli(const char *const *args)
{
    const char *argv[64] = {BPROP_CLI_PATH};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        cr_assert_lt(n, 63);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    char *out = tu_path(g_dir, "stdout.txt"), *err = tu_path(g_dir, "stderr.txt");
    const tu_spawn_opts so = {.out = out, .err = err, .dir = g_dir, .omp_threads = "1"};
    tu_run r = tu_finish(tu_spawn(argv, &so), &so);
    free(out);
    free(err);
    return r;
}

static void make_scratch(void)
{
    capture_messages();
    g_dir = tu_tmpdir();
    bprop_dataset *train = tu_blobs(40, 4, 3, 11), *test = tu_blobs(12, 4, 3, 12);
    write_csv("train.csv", train);
    write_csv("test.csv", test);
    char *idx = tu_path(g_dir, "idx");
    cr_assert_eq(mkdir(idx, 0777), 0);
    free(idx);
    write_idx("idx/train-images-idx3-ubyte", "idx/train-labels-idx1-ubyte", train);
    write_idx("idx/t10k-images-idx3-ubyte", "idx/t10k-labels-idx1-ubyte", test);
    bprop_dataset_free(train);
    bprop_dataset_free(test);
    tu_run r = run_cli((const char *const[]){"train", "--train", "train.csv", "--hidden", "4", "--epochs",
                                             "1", "--quiet", "--save", "init.bpm", NULL});
    cr_assert_eq(r.status, 0, "%s", r.err);
    tu_run_free(&r);
}

static void remove_scratch(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(options_run, .init = make_scratch, .fini = remove_scratch, .timeout = 240);

/* How one row is exercised: the arguments that give it, and other arguments a resumed run must
 * refuse (none: the row's kind says). Rows not listed take value_for's values. */
typedef struct row_case {
    const char *name;
    const char *given[5], *refused[3];
} row_case;

static const row_case special_cases[] = {
    {"--train", {"--train", "train.csv"}, {"--train", "test.csv"}},
    {"--test", {"--test", "test.csv"}, {"--test", "train.csv"}},
    {"--train-labels",
     {"--train", "idx/train-images-idx3-ubyte", "--train-labels", "idx/train-labels-idx1-ubyte"},
     {"--train-labels", "idx/t10k-labels-idx1-ubyte"}},
    {"--test-labels",
     {"--test", "idx/t10k-images-idx3-ubyte", "--test-labels", "idx/t10k-labels-idx1-ubyte"},
     {"--test-labels", "idx/train-labels-idx1-ubyte"}},
    {"--data", {"--data", "idx"}, {"--data", "."}},
    {"--init", {"--init", "init.bpm"}, {NULL}},
    {"--resume", {NULL}, {NULL}}, /* every case resumes */
};

/* args = prefix, then the NULL-terminated list more (at most 5), then suffix (NULL-terminated). */
static void build(const char **args, const char *const *prefix, const char *const *more,
                  const char *const *suffix)
{
    size_t n = 0;
    for (; *prefix; prefix++)
        args[n++] = *prefix;
    for (size_t i = 0; i < 5 && more[i]; i++)
        args[n++] = more[i];
    for (; *suffix; suffix++)
        args[n++] = *suffix;
    args[n] = NULL;
}

static void expect(tu_run r, int status, const char *text, const char *what)
{
    cr_assert_eq(r.status, status, "%s: exit %d\n%s", what, r.status, r.err);
    cr_assert(!text || strstr(r.err, text), "%s: '%s' missing:\n%s", what, text, r.err);
    tu_run_free(&r);
}

/* 1 when the row was exercised (every row but --resume, which every case uses). */
static int check_row(const cli_option *r)
{
    static const char *const base[] = {"train", "--train", "train.csv", "--test", "test.csv", "--epochs",
                                       "1", "--batch", "8", "--threads", "1", "--quiet", NULL};
    static const char *const ck[] = {"--checkpoint", "c.ckpt", NULL}, *const resume[] = {
        "train", "--resume", "c.ckpt", NULL}, *const none[] = {NULL};
    char buf[64], other_buf[64], fewer[32];
    const char *given[5] = {r->name, value_for(r, 0, buf, sizeof buf)}, *refused[3] = {NULL};
    if (r->kind != CLI_OPT_FLAG)
        refused[0] = r->name, refused[1] = value_for(r, 1, other_buf, sizeof other_buf);
    else if (r->negation)
        refused[0] = r->negation;
    if (r->resume == CLI_RESUME_GROW) {
        snprintf(fewer, sizeof fewer, "%zu", r->min + 2);
        refused[1] = fewer;
    }
    for (size_t i = 0; i < sizeof special_cases / sizeof special_cases[0]; i++)
        if (strcmp(special_cases[i].name, r->name) == 0) {
            memcpy(given, special_cases[i].given, sizeof given);
            memcpy(refused, special_cases[i].refused, sizeof refused);
        }
    if (!given[0])
        return 0;
    const char *args[32];
    build(args, base, given, ck); /* the run records the option */
    expect(run_cli(args), 0, NULL, r->name);
    build(args, resume, given, none); /* and takes it back */
    expect(run_cli(args), r->resume == CLI_RESUME_NEVER ? 2 : 0,
           r->resume == CLI_RESUME_NEVER ? "cannot be combined with --resume" : NULL, r->name);
    if (r->resume == CLI_RESUME_FREE || r->resume == CLI_RESUME_NEVER)
        return 1;
    const char *why = r->resume == CLI_RESUME_GROW ? "is fewer than" : "differs from the checkpoint's";
    if (!refused[0]) { /* a flag without its opposite: a run without it refuses it */
        build(args, base, none, ck);
        expect(run_cli(args), 0, NULL, "a run without options");
        memcpy(refused, given, sizeof refused);
    }
    build(args, resume, refused, none);
    expect(run_cli(args), 2, why, r->name);
    return 1;
}

Test(options_run, every_row_is_recorded_and_checked_on_resume)
{
    size_t rows = 0, checked = 0;
    for (int t = 0; t < 2; t++)
        for (const cli_option *r = tables[t]; r->name; r++, rows++)
            checked += (size_t)check_row(r);
    cr_assert_eq(checked, rows - 1);
}
