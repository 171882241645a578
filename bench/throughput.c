/* throughput.c: training throughput of bprop on Fashion-MNIST over a thread x batch x hidden grid. */
#include "bprop.h"
#include "peak_fma.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64

static const char *const COLUMNS =
    "impl,threads,batch,hidden,samples_per_s,gflops,peak_gflops,peak_fraction,speedup,"
    "efficiency,reduce_share,test_acc";

typedef struct int_list {
    size_t n;
    long v[MAX_LIST];
} int_list;

typedef struct options {
    const char *data;      /* directory of the four IDX .gz files */
    int_list threads, batch, hidden;
    double lr, momentum;
    long repeats;          /* timed epochs per point; the median is reported */
    long warmup_samples;   /* untimed epoch over this many samples before each timed one */
    long train_samples;    /* 0: the whole training set */
    long seed;
    double peak_seconds;   /* per peak run; 0 skips the peak measurement */
    long peak_runs;
    const char *out;       /* NULL: stdout */
    const char *init_dir;  /* NULL, or where to save each width's initial model (init_hH.bpm) */
    int header, quiet;
    int cpu_time;          /* time epochs and the peak in process CPU seconds, not wall seconds */
    int reproducible;      /* --reproducible: exact fixed-point sums (default: the library's) */
    bprop_parallel parallel; /* --parallel: how a step splits over threads (default auto) */
} options;

/* What one timed epoch gave. */
typedef struct run_result {
    double samples_per_s, reduce_share, test_acc;
} run_result;

static void usage(FILE *f)
{
    fprintf(f,
        "usage: throughput [options]\n"
        "Trains 784-H-10 on Fashion-MNIST for one timed epoch per grid point and prints CSV:\n"
        "  %s\n"
        "Options (LIST is comma-separated, e.g. 1,2,4):\n"
        "  --data DIR            IDX files {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz\n"
        "                        (default /usr/share/datasets/fashion-mnist)\n"
        "  --threads LIST        default 1,2,4,... up to the processor count\n"
        "  --batch LIST          default 32,128,512\n"
        "  --hidden LIST         default 256\n"
        "  --lr X                default 0.1 (constant; classical momentum, no weight decay)\n"
        "  --momentum X          default 0.9\n"
        "  --repeats N           timed epochs per point (at most 64), fresh model each; the\n"
        "                        median is reported (default 1)\n"
        "  --warmup-samples N    untimed epoch over N samples first (default 8192; 0: none)\n"
        "  --train-samples N     time an epoch over the first N samples only (default: all)\n"
        "  --seed N              model and shuffling seed (default 42)\n"
        "  --peak-seconds S      length of one peak-FMA run (default 0.2; 0: skip the peak)\n"
        "  --peak-runs N         best of N peak-FMA runs (default 5)\n"
        "  --out FILE            write the CSV to FILE instead of stdout\n"
        "  --init-dir DIR        save each width's initial model as DIR/init_hH.bpm (for\n"
        "                        torch_throughput.py --init-dir: identical starting weights)\n"
        "  --no-header           omit the CSV header line\n"
        "  --reproducible        exact fixed-point block sums, the same parameters for every\n"
        "                        thread count (as bprop train --reproducible); default off\n"
        "  --parallel MODE       auto, data or hidden (as bprop train --parallel); default auto\n"
        "  --cpu-time            time epochs and the peak in the process's CPU seconds per\n"
        "                        thread instead of wall seconds (on a loaded machine; 1 thread)\n"
        "  --quiet               no progress lines on stderr\n",
        COLUMNS);
}

/* Parses a comma-separated list of positive integers. */
static int parse_list(const char *s, int_list *out)
{
    out->n = 0;
    while (*s) {
        char *end = NULL;
        errno = 0;
        long v = strtol(s, &end, 10);
        if (errno != 0 || end == s || v < 1 || out->n == MAX_LIST || (*end && *end != ','))
            return -1;
        out->v[out->n++] = v;
        s = *end ? end + 1 : end;
    }
    return out->n > 0 ? 0 : -1;
}

static int parse_long(const char *s, long min, long *out)
{
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        return -1;
    *out = v;
    return 0;
}

static int parse_double(const char *s, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= 0.0))
        return -1;
    *out = v;
    return 0;
}

static int cmp_long(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* Ascending, without duplicates, so the one-thread row (the speedup base) comes first. */
static void sort_unique(int_list *l)
{
    qsort(l->v, l->n, sizeof l->v[0], cmp_long);
    size_t k = 0;
    for (size_t i = 0; i < l->n; i++)
        if (k == 0 || l->v[i] != l->v[k - 1])
            l->v[k++] = l->v[i];
    l->n = k;
}

static void default_options(options *o)
{
    memset(o, 0, sizeof *o);
    o->data = "/usr/share/datasets/fashion-mnist";
    int procs = omp_get_num_procs();
    for (long t = 1; t < procs && o->threads.n < MAX_LIST - 1; t *= 2)
        o->threads.v[o->threads.n++] = t;
    o->threads.v[o->threads.n++] = procs;
    parse_list("32,128,512", &o->batch);
    parse_list("256", &o->hidden);
    o->lr = 0.1;
    o->momentum = 0.9;
    o->repeats = 1;
    o->warmup_samples = 8192;
    o->seed = 42;
    o->peak_seconds = 0.2;
    o->peak_runs = 5;
    o->header = 1;
}

/* The initial model every run of this width starts from (same seed), saved for the PyTorch side. */
static bprop_status save_init(const options *o, const bprop_dataset *d, size_t hidden, bprop_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/init_h%zu.bpm", o->init_dir, hidden);
    bprop_model *m = NULL;
    bprop_status st = bprop_model_create(d->dim, hidden, d->classes, 1, (uint64_t)o->seed, &m, err);
    if (st == BPROP_OK)
        st = bprop_model_save(m, path, err);
    bprop_model_free(m);
    return st;
}

/* Applies option name with value; 0 on success, -1 when the value is bad, 1 for an unknown name. */
static int set_option(options *o, const char *name, const char *value)
{
    if (!strcmp(name, "--data")) {
        o->data = value;
        return 0;
    }
    if (!strcmp(name, "--init-dir")) {
        o->init_dir = value;
        return 0;
    }
    if (!strcmp(name, "--parallel"))
        return bprop_parallel_parse(value, &o->parallel) == BPROP_OK ? 0 : -1;
    if (!strcmp(name, "--out")) {
        o->out = value;
        return 0;
    }
    if (!strcmp(name, "--threads"))
        return parse_list(value, &o->threads);
    if (!strcmp(name, "--batch"))
        return parse_list(value, &o->batch);
    if (!strcmp(name, "--hidden"))
        return parse_list(value, &o->hidden);
    if (!strcmp(name, "--lr"))
        return parse_double(value, &o->lr) != 0 || o->lr <= 0.0 ? -1 : 0;
    if (!strcmp(name, "--momentum"))
        return parse_double(value, &o->momentum) != 0 || o->momentum >= 1.0 ? -1 : 0;
    if (!strcmp(name, "--peak-seconds"))
        return parse_double(value, &o->peak_seconds);
    if (!strcmp(name, "--repeats"))
        return parse_long(value, 1, &o->repeats) != 0 || o->repeats > MAX_LIST ? -1 : 0;
    if (!strcmp(name, "--warmup-samples"))
        return parse_long(value, 0, &o->warmup_samples);
    if (!strcmp(name, "--train-samples"))
        return parse_long(value, 0, &o->train_samples);
    if (!strcmp(name, "--seed"))
        return parse_long(value, 0, &o->seed);
    if (!strcmp(name, "--peak-runs"))
        return parse_long(value, 1, &o->peak_runs);
    return 1;
}

/* Parses argv into o; returns 0 to go on, 1 after --help, 2 on a usage error. */
static int parse_args(int argc, char **argv, options *o)
{
    default_options(o);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
            usage(stdout);
            return 1;
        }
        if (!strcmp(arg, "--no-header")) {
            o->header = 0;
            continue;
        }
        if (!strcmp(arg, "--quiet")) {
            o->quiet = 1;
            continue;
        }
        if (!strcmp(arg, "--cpu-time")) {
            o->cpu_time = 1;
            continue;
        }
        if (!strcmp(arg, "--reproducible") || !strcmp(arg, "--no-reproducible")) {
            o->reproducible = !strcmp(arg, "--reproducible");
            continue;
        }
        /* --name=value or --name value */
        char name[64];
        const char *eq = strchr(arg, '=');
        const char *value = NULL;
        size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
        if (len >= sizeof name)
            len = sizeof name - 1;
        memcpy(name, arg, len);
        name[len] = '\0';
        if (eq)
            value = eq + 1;
        else if (i + 1 < argc)
            value = argv[++i];
        int rc = value ? set_option(o, name, value) : 1;
        if (rc != 0) {
            if (rc > 0)
                fprintf(stderr, "throughput: unknown option or missing value: '%s'\n", arg);
            else
                fprintf(stderr, "throughput: %s: bad value '%s'\n", name, value);
            usage(stderr);
            return 2;
        }
    }
    sort_unique(&o->threads);
    return 0;
}

/* Loads the train (images, labels) or t10k pair of IDX files from dir. */
static bprop_status load_split(const char *dir, const char *prefix, size_t classes,
                               bprop_dataset **out, bprop_error *err)
{
    char images[4096], labels[4096];
    snprintf(images, sizeof images, "%s/%s-images-idx3-ubyte.gz", dir, prefix);
    snprintf(labels, sizeof labels, "%s/%s-labels-idx1-ubyte.gz", dir, prefix);
    return bprop_dataset_load_idx(images, labels, classes, out, err);
}

/* A fresh model (fixed seed) trained for one epoch over d; *model_out receives it (or it is freed
 * when model_out is NULL). */
static bprop_status train_one_epoch(const options *o, const bprop_dataset *d, int threads,
                                    size_t batch, size_t hidden, bprop_model **model_out,
                                    bprop_epoch_stats *stats, bprop_error *err)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 1;
    c.batch = batch;
    c.lr = (float)o->lr;
    c.momentum = (float)o->momentum;
    c.nesterov = 0; /* classical momentum, as torch.optim.SGD(momentum=...) */
    c.schedule = BPROP_SCHEDULE_CONSTANT;
    c.seed = (uint64_t)o->seed;
    /* The training file's own order (already class-mixed), as torch_throughput.py uses: with the
     * same initial weights (--init-dir) both then train on identical batches. */
    c.shuffle = 0;
    c.threads = threads;
    c.reproducible = o->reproducible;
    c.parallel = o->parallel;

    bprop_model *m = NULL;
    bprop_trainer *t = NULL;
    bprop_status st = bprop_model_create(d->dim, hidden, d->classes, 1, (uint64_t)o->seed, &m, err);
    if (st == BPROP_OK)
        st = bprop_trainer_create(m, &c, d->n, &t, err);
    double t0 = bench_now(o->cpu_time);
    if (st == BPROP_OK)
        st = bprop_trainer_epoch(t, d, NULL, NULL, stats, err);
    double cpu_s = (bench_now(o->cpu_time) - t0) / threads;
    if (st == BPROP_OK && o->cpu_time && cpu_s > 0.0)
        stats->samples_per_s = (double)d->n / cpu_s; /* CPU seconds per thread, not wall */
    bprop_trainer_free(t);
    if (st == BPROP_OK && model_out)
        *model_out = m;
    else
        bprop_model_free(m);
    return st;
}

/* One untimed warm-up epoch on warm (when not NULL), then one timed epoch on a fresh model over
 * train and its test accuracy. */
static bprop_status run_once(const options *o, const bprop_dataset *train,
                             const bprop_dataset *warm, const bprop_dataset *test, int threads,
                             size_t batch, size_t hidden, run_result *r, bprop_error *err)
{
    bprop_epoch_stats stats;
    bprop_status st = BPROP_OK;
    if (warm)
        st = train_one_epoch(o, warm, threads, batch, hidden, NULL, &stats, err);
    bprop_model *m = NULL;
    if (st == BPROP_OK)
        st = train_one_epoch(o, train, threads, batch, hidden, &m, &stats, err);
    bprop_eval ev;
    if (st == BPROP_OK)
        st = bprop_evaluate(m, test, threads, &ev, NULL, err);
    if (st == BPROP_OK) {
        r->samples_per_s = stats.samples_per_s;
        r->reduce_share = stats.seconds > 0.0 ? stats.reduce_seconds / stats.seconds : 0.0;
        r->test_acc = ev.accuracy;
    }
    bprop_model_free(m);
    return st;
}

static int cmp_run(const void *a, const void *b)
{
    double x = ((const run_result *)a)->samples_per_s, y = ((const run_result *)b)->samples_per_s;
    return (x > y) - (x < y);
}

/* Prints one CSV field: the value, or nothing when it is unknown (negative). */
static void put_field(FILE *f, const char *fmt, double v)
{
    fputc(',', f);
    if (v >= 0.0)
        fprintf(f, fmt, v);
}

static void print_row(FILE *f, int threads, size_t batch, size_t hidden, double flops_per_sample,
                      double peak, double base, const run_result *r)
{
    double gflops = r->samples_per_s * flops_per_sample / 1e9;
    double speedup = base > 0.0 ? r->samples_per_s / base : -1.0;
    fprintf(f, "bprop,%d,%zu,%zu,%.1f,%.2f", threads, batch, hidden, r->samples_per_s, gflops);
    put_field(f, "%.1f", peak > 0.0 ? peak : -1.0);
    put_field(f, "%.4f", peak > 0.0 ? gflops / peak : -1.0);
    put_field(f, "%.3f", speedup);
    put_field(f, "%.3f", speedup >= 0.0 ? speedup / threads : -1.0);
    put_field(f, "%.4f", r->reduce_share);
    put_field(f, "%.4f", r->test_acc);
    fputc('\n', f);
    fflush(f);
}

/* Runs the whole grid, printing a row per point. */
static bprop_status sweep(const options *o, const bprop_dataset *train, const bprop_dataset *warm,
                          const bprop_dataset *test, const double *peaks, FILE *f,
                          bprop_error *err)
{
    run_result runs[MAX_LIST];
    size_t repeats = (size_t)o->repeats;
    for (size_t h = 0; h < o->hidden.n; h++) {
        size_t hidden = (size_t)o->hidden.v[h];
        /* 2(DH + HC) forward plus 2(DH + 2HC) backward: 3196 H for 784 inputs, 10 classes. */
        double flops = (double)hidden * (4.0 * (double)train->dim + 6.0 * (double)train->classes);
        for (size_t b = 0; b < o->batch.n; b++) {
            size_t batch = (size_t)o->batch.v[b];
            double base = -1.0;
            for (size_t k = 0; k < o->threads.n; k++) {
                int threads = (int)o->threads.v[k];
                for (size_t r = 0; r < repeats; r++) {
                    bprop_status st = run_once(o, train, warm, test, threads, batch, hidden,
                                               &runs[r], err);
                    if (st != BPROP_OK)
                        return st;
                }
                qsort(runs, repeats, sizeof runs[0], cmp_run);
                const run_result *med = &runs[repeats / 2];
                if (threads == 1)
                    base = med->samples_per_s;
                print_row(f, threads, batch, hidden, flops, peaks[k], base, med);
                if (!o->quiet)
                    fprintf(stderr, "bprop threads=%d batch=%zu hidden=%zu: %.0f samples/s, "
                            "%.1f GFLOP/s, reduce %.1f%%, test acc %.4f\n", threads, batch,
                            hidden, med->samples_per_s, med->samples_per_s * flops / 1e9,
                            100.0 * med->reduce_share, med->test_acc);
            }
        }
    }
    return BPROP_OK;
}

/* Loads the data, measures the peaks, runs the sweep; returns the exit status. */
static int run(const options *o, FILE *f)
{
    bprop_error err = {BPROP_OK, ""};
    bprop_dataset *full = NULL, *train = NULL, *warm = NULL, *test = NULL;
    bprop_status st = load_split(o->data, "train", 0, &full, &err);
    if (st == BPROP_OK)
        st = load_split(o->data, "t10k", full->classes, &test, &err);
    if (st == BPROP_OK && o->train_samples > 0 && (size_t)o->train_samples < full->n) {
        st = bprop_dataset_subset(full, 0, (size_t)o->train_samples, &train, &err);
    } else if (st == BPROP_OK) {
        train = full;
        full = NULL;
    }
    if (st == BPROP_OK && o->warmup_samples > 0) {
        size_t n = (size_t)o->warmup_samples < train->n ? (size_t)o->warmup_samples : train->n;
        st = bprop_dataset_subset(train, 0, n, &warm, &err);
    }

    for (size_t k = 0; st == BPROP_OK && o->init_dir && k < o->hidden.n; k++)
        st = save_init(o, train, (size_t)o->hidden.v[k], &err);

    double peaks[MAX_LIST];
    for (size_t k = 0; st == BPROP_OK && k < o->threads.n; k++) {
        int threads = (int)o->threads.v[k];
        peaks[k] = bench_peak_gflops(threads, o->peak_seconds, (int)o->peak_runs, o->cpu_time);
        if (!o->quiet && peaks[k] > 0.0)
            fprintf(stderr, "peak fp32 FMA (%s), %d threads: %.1f GFLOP/s\n", bench_peak_isa(),
                    threads, peaks[k]);
    }
    if (st == BPROP_OK) {
        if (o->header)
            fprintf(f, "%s\n", COLUMNS);
        st = sweep(o, train, warm, test, peaks, f, &err);
    }
    bprop_dataset_free(full);
    bprop_dataset_free(train);
    bprop_dataset_free(warm);
    bprop_dataset_free(test);
    if (st != BPROP_OK) {
        fprintf(stderr, "throughput: %s\n", err.message[0] ? err.message : bprop_strerror(st));
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc == 1 ? 0 : 2;
    FILE *f = stdout;
    if (o.out && !(f = fopen(o.out, "w"))) {
        fprintf(stderr, "throughput: %s: cannot open for writing: %s\n", o.out, strerror(errno));
        return 1;
    }
    rc = run(&o, f);
    if (f != stdout && fclose(f) != 0) {
        fprintf(stderr, "throughput: %s: write failed\n", o.out);
        rc = 1;
    }
    return rc;
}
