/* data.c: the shared data options (one table row each), locating IDX files and loading the
 * splits. */
#define _POSIX_C_SOURCE 200809L
#include "data.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#ifndef BPROP_DEFAULT_DATA_DIR
#define BPROP_DEFAULT_DATA_DIR "/usr/share/datasets/fashion-mnist"
#endif

static const char *const idx_names[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};

#define DATA_FIELD(member, type) CLI_FIELD(cli_data_opts, member, type)

const cli_option cli_data_options[] = {
    {.name = "--data", .kind = CLI_OPT_STRING, .field = DATA_FIELD(dir, const char *), .metavar = "DIR",
     .help = "the standard IDX files of DIR (train-images-idx3-ubyte,\n"
             "train-labels-idx1-ubyte, t10k-images-idx3-ubyte,\n"
             "t10k-labels-idx1-ubyte; each plain or .gz)",
     .key = "data"},
    {.name = "--train", .kind = CLI_OPT_STRING, .field = DATA_FIELD(train, const char *), .metavar = "FILE",
     .help = "training set: CSV (label, then features), IDX images or\n"
             ".npy images (uint8 or float32, (N, D) or (N, rows, cols))", .key = "train",
     .group = CLI_DATA_TRAIN},
    {.name = "--train-labels", .kind = CLI_OPT_STRING, .field = DATA_FIELD(train_labels, const char *),
     .metavar = "FILE",
     .help = "labels of IDX or .npy images given with --train (IDX, or\n"
             ".npy integers of shape (N,))", .key = "train_labels",
     .group = CLI_DATA_TRAIN},
    {.name = "--train-limit", .kind = CLI_OPT_SIZE, .field = DATA_FIELD(train_limit, size_t), .min = 1,
     .max = SIZE_MAX, .metavar = "N", .help = "use only the first N training samples", .key = "train_limit",
     .group = CLI_DATA_TRAIN},
    {.name = "--test", .kind = CLI_OPT_STRING, .field = DATA_FIELD(test, const char *), .metavar = "FILE",
     .help = "test set: CSV (label, then features), IDX or .npy images", .key = "test", .group = CLI_DATA_TEST},
    {.name = "--test-labels", .kind = CLI_OPT_STRING, .field = DATA_FIELD(test_labels, const char *),
     .metavar = "FILE", .help = "labels of IDX or .npy images given with --test", .key = "test_labels",
     .group = CLI_DATA_TEST},
    {.name = "--test-limit", .kind = CLI_OPT_SIZE, .field = DATA_FIELD(test_limit, size_t), .min = 1,
     .max = SIZE_MAX, .metavar = "N", .help = "use only the first N test samples", .key = "test_limit",
     .group = CLI_DATA_TEST},
    {.name = "--classes", .kind = CLI_OPT_SIZE, .field = DATA_FIELD(classes, size_t), .min = 0,
     .max = (size_t)1 << 20, .metavar = "N",
     .help = "number of classes (default 0: one more than the largest label)", .key = "classes",
     .group = CLI_DATA_CLASSES},
    {.name = NULL},
};

/* --data belongs to every command that reads data; the others to those that admit their group. */
static int admitted(const cli_option *r, unsigned allowed) { return !r->group || (r->group & allowed); }

void cli_data_help(FILE *f, unsigned allowed)
{
    fputs("Data options:\n", f);
    for (const cli_option *r = cli_data_options; r->name; r++)
        if (admitted(r, allowed))
            cli_option_help(f, r, NULL);
    fputs("  Without any data option: " BPROP_DEFAULT_DATA_DIR "\n"
          "  (Debian: apt-get install dataset-fashion-mnist). Files may be gzip-compressed.\n", f);
}

int cli_data_option(cli_args *a, cli_data_opts *o)
{
    o->cmd = a->cmd;
    const cli_option *r = cli_option_find(cli_data_options, a->opt);
    if (!r || !admitted(r, o->allowed))
        return CLI_NOMATCH;
    return cli_option_parse(r, a, o);
}

int cli_data_given(const cli_data_opts *o)
{
    return o->dir || o->train || o->test || o->train_labels || o->test_labels;
}

int cli_data_kind(const char *path)
{
    gzFile f = gzopen(path, "rb");
    if (!f)
        return CLI_KIND_UNKNOWN;
    unsigned char head[4096];
    int got = gzread(f, head, sizeof head);
    gzclose(f);
    if (got >= 2 && head[0] == 0 && head[1] == 0)
        return CLI_KIND_IDX;
    if (got >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        return CLI_KIND_NPY;
    if (got <= 0 || memchr(head, 0, (size_t)got))
        return CLI_KIND_UNKNOWN;
    return CLI_KIND_TEXT;
}

/* A labels option only makes sense with IDX images named by its file option: CSV holds its
 * labels and --data finds its own label files, so silently ignoring it would mislead. */
static int check_labels_option(const cli_runtime *rt, const cli_data_opts *o, const char *flag,
                               const char *labels, const char *file_flag, const char *file)
{
    if (!labels)
        return 0;
    if (!file)
        return cli_usage(rt, o->cmd, "%s: only for IDX or .npy images given with %s FILE (--data DIR "
                                     "finds its own label files)", flag, file_flag);
    if (cli_data_kind(file) == CLI_KIND_TEXT)
        return cli_usage(rt, o->cmd, "%s: only for IDX or .npy images given with %s; '%s' is CSV, "
                                     "which holds its labels in its first column", flag, file_flag,
                         file);
    return 0;
}

/* dir/name or dir/name.gz, whichever exists. */
static int find_idx(const cli_runtime *rt, const char *dir, const char *name, char *out)
{
    int n = snprintf(out, CLI_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= CLI_PATH_MAX - 3)
        return cli_fail(rt, "%s: path too long", dir);
    if (access(out, R_OK) == 0)
        return 0;
    strcat(out, ".gz");
    if (access(out, R_OK) == 0)
        return 0;
    return cli_fail(rt, "%s: neither %s nor %s.gz is readable there", dir, name, name);
}

int cli_default_data_present(void)
{
    char path[CLI_PATH_MAX];
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s.gz", BPROP_DEFAULT_DATA_DIR, idx_names[i]);
        if (access(path, R_OK) != 0) {
            path[strlen(path) - 3] = '\0';
            if (access(path, R_OK) != 0)
                return 0;
        }
    }
    return 1;
}

static int copy_path(const cli_runtime *rt, char *dst, const char *src)
{
    if (strlen(src) >= CLI_PATH_MAX)
        return cli_fail(rt, "%.64s...: path too long", src);
    strcpy(dst, src);
    return 0;
}

/* One split from an explicit file (and labels), or from the IDX pair in dir. */
static int resolve_split(const cli_runtime *rt, const char *file, const char *labels, const char *dir,
                         int idx_first,
                         cli_split_paths *s)
{
    int rc = 0;
    if (file) {
        rc = copy_path(rt, s->images, file);
        if (!rc && labels)
            rc = copy_path(rt, s->labels, labels);
    } else if (dir) {
        rc = find_idx(rt, dir, idx_names[idx_first], s->images);
        if (!rc)
            rc = find_idx(rt, dir, idx_names[idx_first + 1], s->labels);
    }
    return rc;
}

static void describe(const cli_data_opts *o, const char *dir, cli_data_paths *p)
{
    const char *tr = p->train.images[0] ? p->train.images : NULL;
    const char *te = p->test.images[0] ? p->test.images : NULL;
    char limits[64] = "";
    if (tr && o->train_limit && te && o->test_limit)
        snprintf(limits, sizeof limits, " (first %zu train, %zu test)", o->train_limit, o->test_limit);
    else if (tr && o->train_limit)
        snprintf(limits, sizeof limits, " (first %zu train)", o->train_limit);
    else if (te && o->test_limit)
        snprintf(limits, sizeof limits, " (first %zu test)", o->test_limit);
    if (!o->train && !o->test) {
        cli_format_trunc(p->desc, sizeof p->desc, "%s%s", dir, limits);
        return;
    }
    cli_format_trunc(p->desc, sizeof p->desc, "%s%s%s%s%s%s", tr ? "train=" : "", tr ? tr : "",
                     tr && te ? " " : "", te ? "test=" : "", te ? te : "", limits);
}

int cli_data_resolve(const cli_runtime *rt, const cli_data_opts *o, unsigned need, cli_data_paths *p)
{
    memset(p, 0, sizeof *p);
    p->train.labels_flag = "--train-labels";
    p->test.labels_flag = "--test-labels";
    p->train.limit = o->train_limit;
    p->test.limit = o->test_limit;
    int rc = check_labels_option(rt, o, "--train-labels", o->train_labels, "--train", o->train);
    if (!rc)
        rc = check_labels_option(rt, o, "--test-labels", o->test_labels, "--test", o->test);
    if (rc)
        return rc;
    const char *dir = o->dir;
    if (!cli_data_given(o)) {
        if (!cli_default_data_present())
            return cli_fail(rt, "no data given and Fashion-MNIST is not installed in %s; install it "
                                "(apt-get install dataset-fashion-mnist) or pass --data DIR or %s FILE",
                            BPROP_DEFAULT_DATA_DIR, (need & CLI_NEED_TRAIN) ? "--train" : "--test");
        dir = BPROP_DEFAULT_DATA_DIR;
    }
    if (need & CLI_NEED_TRAIN)
        rc = resolve_split(rt, o->train, o->train_labels, dir, 0, &p->train);
    /* The test split is optional for training: with only --train there is none. */
    if (!rc && (need & (CLI_NEED_TEST | CLI_WANT_TEST)))
        rc = resolve_split(rt, o->test, o->test_labels, dir, 2, &p->test);
    if (rc)
        return rc;
    if ((need & CLI_NEED_TRAIN) && !p->train.images[0])
        return cli_fail(rt, "no training data: pass --train FILE or --data DIR");
    if ((need & CLI_NEED_TEST) && !p->test.images[0])
        return cli_fail(rt, "no test data: pass --test FILE or --data DIR");
    describe(o, dir ? dir : "", p);
    return 0;
}

int cli_load_split(const cli_runtime *rt, const cli_split_paths *s, size_t classes, bprop_dataset **out)
{
    bprop_error err = {0};
    bprop_dataset *d = NULL;
    const char *labels = s->labels[0] ? s->labels : NULL;
    cli_bus_guard_add(s->images);
    bprop_status st = bprop_dataset_load(s->images, labels, 1, classes, &d, &err);
    if (st != BPROP_OK && !labels && strstr(err.message, "label") && !strstr(err.message, "line "))
        return cli_fail(rt, "%s (pass %s FILE)", err.message, s->labels_flag);
    if (st != BPROP_OK) /* the message names whichever file is at fault */
        return cli_fail_path(rt, labels && strstr(err.message, labels) ? labels : s->images, &err, st);
    if (!d->y) {
        bprop_dataset_free(d);
        return cli_fail(rt, "%s: IDX images without labels: pass %s FILE", s->images, s->labels_flag);
    }
    if (s->limit && s->limit < d->n) {
        bprop_dataset *sub = NULL;
        st = bprop_dataset_subset(d, 0, s->limit, &sub, &err);
        bprop_dataset_free(d);
        if (st != BPROP_OK)
            return cli_fail_err(rt, &err, st);
        d = sub;
    }
    *out = d;
    return 0;
}

/* Append "a..b" or "a" (with ", " before all but the first) to buf; 0 when it no longer fits. */
static int append_range(char *buf, size_t size, size_t *used, size_t a, size_t b)
{
    int n = a == b ? snprintf(buf + *used, size - *used, "%s%zu", *used ? ", " : "", a)
                   : snprintf(buf + *used, size - *used, "%s%zu..%zu", *used ? ", " : "", a, b);
    if (n < 0 || (size_t)n >= size - *used)
        return 0;
    *used += (size_t)n;
    return 1;
}

void cli_warn_missing_classes(const char *path, const bprop_dataset *d)
{
    if (!d->y || d->classes == 0)
        return;
    unsigned char *seen = calloc(d->classes, 1);
    if (!seen)
        return; /* only a warning */
    for (size_t i = 0; i < d->n; i++)
        if (d->y[i] >= 0 && (size_t)d->y[i] < d->classes)
            seen[d->y[i]] = 1;
    char list[160];
    size_t used = 0, missing = 0;
    int fits = 1;
    list[0] = '\0';
    for (size_t c = 0; c < d->classes; c++) {
        if (seen[c])
            continue;
        size_t end = c;
        while (end + 1 < d->classes && !seen[end + 1])
            end++;
        missing += end - c + 1;
        fits = fits && append_range(list, sizeof list, &used, c, end);
        c = end;
    }
    free(seen);
    if (missing)
        fprintf(stderr, "bprop: warning: %s: class%s %s%s never occur%s in the training labels "
                        "(classes inferred as %zu from the largest label); pass --classes N to fix "
                        "the count\n", path, missing == 1 ? "" : "es", list, fits ? "" : ", ...",
                missing == 1 ? "s" : "", d->classes);
}
