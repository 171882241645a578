/* throughput.c: training throughput of bprop on Fashion-MNIST over a thread x batch x hidden grid. */
#include "bprop.h"
#include "exec_fma.h"
#include "host_info.h"
#include "peak_fma.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64
#define MAX_MODES 3 /* auto, data, hidden */

/* The same columns as bench/torch_throughput.py writes (docs/performance.md, "CSV columns",
 * explains them); the peer's columns stay empty in bprop's rows. */
static const char *const COLUMNS =
    "impl,threads,batch,hidden,samples_per_s,gflops,peak_gflops,peak_fraction,speedup,"
    "efficiency,reduce_share,test_acc,parallel,standardize,exec_share,exec_gflops,"
    "exec_fraction,cpu,cpu_isa,kernel_set,peer_blas,peer_blas_file,peer_blas_version,"
    "peer_arch,torch_version";

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
    int standardize;       /* --standardize: features standardised with the training set's statistics */
    int exec_count;        /* count the FMAs the kernels execute (exec_fma.h); --no-exec-count: 0 */
    bprop_parallel parallel[MAX_MODES]; /* --parallel: the splits to run at each point */
    size_t nparallel;
} options;

/* One grid point. */
typedef struct point {
    int threads;
    size_t batch, hidden;
    bprop_parallel parallel;
} point;

/* The data of the sweep; with --standardize all of it is standardised with the statistics of
 * train (mean, scale), as bprop train --standardize does with its training split. */
typedef struct bench_data {
    bprop_dataset *train, *warm, *test; /* warm: NULL without a warm-up epoch */
    float *mean, *scale;                /* (dim) or NULL */
} bench_data;

/* What every row says about the machine and the kernels. */
typedef struct host_desc {
    char cpu[256];
    const char *isa, *kernels;
} host_desc;

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
        "  --parallel LIST       splits to run at each point, among auto, data and hidden (as\n"
        "                        bprop train --parallel), back to back; default auto\n"
        "  --standardize         standardise the features with the training set's statistics\n"
        "                        (as bprop train --standardize): dense inputs, no zero to skip\n"
        "  --no-exec-count       leave the executed-FMA columns empty (they are counted with\n"
        "                        the kernels' own zero-input lists before each timed epoch)\n"
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
    o->exec_count = 1;
    o->parallel[0] = BPROP_PARALLEL_AUTO;
    o->nparallel = 1;
}

/* Parses a comma-separated list of split names, each at most once. */
static int parse_modes(const char *s, options *o)
{
    char name[16];
    o->nparallel = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        if (len == 0 || len >= sizeof name || o->nparallel == MAX_MODES)
            return -1;
        memcpy(name, s, len);
        name[len] = '\0';
        bprop_parallel p;
        if (bprop_parallel_parse(name, &p) != BPROP_OK)
            return -1;
        for (size_t i = 0; i < o->nparallel; i++)
            if (o->parallel[i] == p)
                return -1;
        o->parallel[o->nparallel++] = p;
        s += len + (s[len] == ',');
    }
    return o->nparallel > 0 ? 0 : -1;
}

/* The initial model every run of this width starts from (same seed), saved for the PyTorch side;
 * with --standardize it carries the statistics, so that PyTorch standardises with the same. */
static bprop_status save_init(const options *o, const bench_data *bd, size_t hidden,
                              bprop_error *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/init_h%zu.bpm", o->init_dir, hidden);
    const bprop_dataset *d = bd->train;
    bprop_model *m = NULL;
    bprop_status st = bprop_model_create(d->dim, hidden, d->classes, 1, (uint64_t)o->seed, &m, err);
    if (st == BPROP_OK && bd->mean)
        st = bprop_model_set_standardization(m, bd->mean, bd->scale);
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
        return parse_modes(value, o);
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
        if (!strcmp(arg, "--standardize") || !strcmp(arg, "--standardise")) {
            o->standardize = 1;
            continue;
        }
        if (!strcmp(arg, "--no-exec-count")) {
            o->exec_count = 0;
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

/* A fresh model (fixed seed) trained for one epoch over d; *model_out receives it (or it is freed
 * when model_out is NULL). */
static bprop_status train_one_epoch(const options *o, const bprop_dataset *d, const point *pt,
                                    bprop_model **model_out, bprop_epoch_stats *stats,
                                    bprop_error *err)
{
    bprop_train_config c;
    bprop_train_config_default(&c);
    c.epochs = 1;
    c.batch = pt->batch;
    c.lr = (float)o->lr;
    c.momentum = (float)o->momentum;
    c.nesterov = 0; /* classical momentum, as torch.optim.SGD(momentum=...) */
    c.schedule = BPROP_SCHEDULE_CONSTANT;
    c.seed = (uint64_t)o->seed;
    /* The training file's own order (already class-mixed), as torch_throughput.py uses: with the
     * same initial weights (--init-dir) both then train on identical batches. */
    c.shuffle = 0;
    c.threads = pt->threads;
    c.reproducible = o->reproducible;
    c.parallel = pt->parallel;

    bprop_model *m = NULL;
    bprop_trainer *t = NULL;
    bprop_status st = bprop_model_create(d->dim, pt->hidden, d->classes, 1, (uint64_t)o->seed, &m,
                                         err);
    if (st == BPROP_OK)
        st = bprop_trainer_create(m, &c, d->n, &t, err);
    double t0 = bench_now(o->cpu_time);
    if (st == BPROP_OK)
        st = bprop_trainer_epoch(t, d, NULL, NULL, stats, err);
    double cpu_s = (bench_now(o->cpu_time) - t0) / pt->threads;
    if (st == BPROP_OK && o->cpu_time && cpu_s > 0.0)
        stats->samples_per_s = (double)d->n / cpu_s; /* CPU seconds per thread, not wall */
    bprop_trainer_free(t);
    if (st == BPROP_OK && model_out)
        *model_out = m;
    else
        bprop_model_free(m);
    return st;
}

/* One untimed warm-up epoch on bd->warm (when there is one), then one timed epoch on a fresh
 * model over bd->train and its test accuracy. */
static bprop_status run_once(const options *o, const bench_data *bd, const point *pt,
                             run_result *r, bprop_error *err)
{
    bprop_epoch_stats stats;
    bprop_status st = BPROP_OK;
    if (bd->warm)
        st = train_one_epoch(o, bd->warm, pt, NULL, &stats, err);
    bprop_model *m = NULL;
    if (st == BPROP_OK)
        st = train_one_epoch(o, bd->train, pt, &m, &stats, err);
    bprop_eval ev;
    if (st == BPROP_OK)
        st = bprop_evaluate(m, bd->test, pt->threads, &ev, NULL, err);
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

/* One row. flops: dense FLOPs per sample; exec_share: executed over dense FMAs (negative:
 * not counted); peak: GFLOP/s (0: not measured); base: samples/s at one thread (negative:
 * none). */
static void print_row(FILE *f, const options *o, const host_desc *hd, const point *pt,
                      double flops, double exec_share, double peak, double base,
                      const run_result *r)
{
    double gflops = r->samples_per_s * flops / 1e9;
    double exec_gflops = exec_share >= 0.0 ? gflops * exec_share : -1.0;
    double speedup = base > 0.0 ? r->samples_per_s / base : -1.0;
    fprintf(f, "bprop,%d,%zu,%zu,%.1f,%.2f", pt->threads, pt->batch, pt->hidden,
            r->samples_per_s, gflops);
    put_field(f, "%.1f", peak > 0.0 ? peak : -1.0);
    put_field(f, "%.4f", peak > 0.0 ? gflops / peak : -1.0);
    put_field(f, "%.3f", speedup);
    put_field(f, "%.3f", speedup >= 0.0 ? speedup / pt->threads : -1.0);
    put_field(f, "%.4f", r->reduce_share);
    put_field(f, "%.4f", r->test_acc);
    fprintf(f, ",%s,%d", bprop_parallel_name(pt->parallel), o->standardize);
    put_field(f, "%.4f", exec_share);
    put_field(f, "%.2f", exec_gflops);
    put_field(f, "%.4f", peak > 0.0 && exec_gflops >= 0.0 ? exec_gflops / peak : -1.0);
    /* cpu, cpu_isa, kernel_set; the peer's five columns are PyTorch's rows' */
    fprintf(f, ",%s,%s,%s,,,,,\n", hd->cpu, hd->isa, hd->kernels);
    fflush(f);
}

/* Executed over dense FMAs of one timed epoch at pt (exec_fma.h); -1 when ec is NULL. */
static double exec_share_of(const options *o, exec_counter *ec, const bprop_dataset *d,
                            const point *pt)
{
    if (!ec)
        return -1.0;
    const double D = (double)d->dim, H = (double)pt->hidden, C = (double)d->classes;
    const double dense = (double)d->n * (2.0 * D * H + 3.0 * H * C);
    const double exec = exec_epoch_fmas(ec, d, pt->batch, (size_t)pt->threads, pt->hidden,
                                        pt->parallel, o->reproducible);
    return exec / dense;
}

/* The repeats at one point (median reported) and its row. base: the one-thread samples/s of
 * this split, set when pt has one thread. */
static bprop_status measure_point(const options *o, const bench_data *bd, const host_desc *hd,
                                  exec_counter *ec, const point *pt, double peak, double *base,
                                  FILE *f, bprop_error *err)
{
    run_result runs[MAX_LIST];
    const size_t repeats = (size_t)o->repeats;
    /* 2(DH + HC) forward plus 2(DH + 2HC) backward: 3196 H for 784 inputs, 10 classes. */
    const double flops = (double)pt->hidden * (4.0 * (double)bd->train->dim +
                                               6.0 * (double)bd->train->classes);
    const double exec_share = exec_share_of(o, ec, bd->train, pt);
    for (size_t r = 0; r < repeats; r++) {
        bprop_status st = run_once(o, bd, pt, &runs[r], err);
        if (st != BPROP_OK)
            return st;
    }
    qsort(runs, repeats, sizeof runs[0], cmp_run);
    const run_result *med = &runs[repeats / 2];
    if (pt->threads == 1)
        *base = med->samples_per_s;
    print_row(f, o, hd, pt, flops, exec_share, peak, *base, med);
    if (!o->quiet)
        fprintf(stderr, "bprop threads=%d batch=%zu hidden=%zu parallel=%s: %.0f samples/s, "
                "%.1f GFLOP/s, executed %.1f%% of the dense FMAs, reduce %.1f%%, test acc %.4f\n",
                pt->threads, pt->batch, pt->hidden, bprop_parallel_name(pt->parallel),
                med->samples_per_s, med->samples_per_s * flops / 1e9, 100.0 * exec_share,
                100.0 * med->reduce_share, med->test_acc);
    return BPROP_OK;
}

/* Runs the whole grid, printing a row per point: the splits of a point back to back, so that
 * they are measured close in time. */
static bprop_status sweep(const options *o, const bench_data *bd, const host_desc *hd,
                          const double *peaks, FILE *f, bprop_error *err)
{
    bprop_status st = BPROP_OK;
    for (size_t h = 0; st == BPROP_OK && h < o->hidden.n; h++) {
        exec_counter ec_store, *ec = NULL;
        size_t hidden = (size_t)o->hidden.v[h];
        if (o->exec_count && exec_counter_init(&ec_store, NULL, bd->train->dim,
                                               bd->train->classes, hidden) == 0)
            ec = &ec_store;
        else if (o->exec_count)
            fprintf(stderr, "throughput: cannot count the executed FMAs at hidden %zu (the "
                    "kernels' lists are not as exec_fma.h expects, or out of memory)\n", hidden);
        for (size_t b = 0; st == BPROP_OK && b < o->batch.n; b++) {
            double base[MAX_MODES] = {-1.0, -1.0, -1.0};
            for (size_t k = 0; st == BPROP_OK && k < o->threads.n; k++)
                for (size_t p = 0; st == BPROP_OK && p < o->nparallel; p++) {
                    point pt = {(int)o->threads.v[k], (size_t)o->batch.v[b], hidden,
                                o->parallel[p]};
                    st = measure_point(o, bd, hd, ec, &pt, peaks[k], &base[p], f, err);
                }
        }
        if (ec)
            exec_counter_free(ec);
    }
    return st;
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

static void free_data(bench_data *bd)
{
    bprop_dataset_free(bd->train);
    bprop_dataset_free(bd->warm);
    bprop_dataset_free(bd->test);
    free(bd->mean);
    free(bd->scale);
    memset(bd, 0, sizeof *bd);
}

/* Fills err with status and a message; returns status. */
static bprop_status bench_fail(bprop_error *err, bprop_status status, const char *msg)
{
    err->status = status;
    snprintf(err->message, sizeof err->message, "%s", msg);
    return status;
}

/* With --standardize: the training set's statistics, applied to the training and test sets. */
static bprop_status standardize(bench_data *bd, bprop_error *err)
{
    const size_t dim = bd->train->dim;
    bd->mean = malloc(dim * sizeof *bd->mean);
    bd->scale = malloc(dim * sizeof *bd->scale);
    if (!bd->mean || !bd->scale)
        return bench_fail(err, BPROP_E_NOMEM, "out of memory for the standardisation");
    bprop_status st = bprop_dataset_feature_stats(bd->train, bd->mean, bd->scale);
    if (st != BPROP_OK)
        return bench_fail(err, st, "cannot standardise the training set");
    bprop_dataset_standardize(bd->train, bd->mean, bd->scale);
    bprop_dataset_standardize(bd->test, bd->mean, bd->scale);
    return BPROP_OK;
}

/* The training set (or its first --train-samples), standardised when asked, its first
 * --warmup-samples for the warm-up epochs, and the test set. */
static bprop_status load_data(const options *o, bench_data *bd, bprop_error *err)
{
    bprop_dataset *full = NULL;
    memset(bd, 0, sizeof *bd);
    bprop_status st = load_split(o->data, "train", 0, &full, err);
    if (st == BPROP_OK)
        st = load_split(o->data, "t10k", full->classes, &bd->test, err);
    if (st == BPROP_OK && o->train_samples > 0 && (size_t)o->train_samples < full->n) {
        st = bprop_dataset_subset(full, 0, (size_t)o->train_samples, &bd->train, err);
    } else if (st == BPROP_OK) {
        bd->train = full;
        full = NULL;
    }
    bprop_dataset_free(full);
    if (st == BPROP_OK && o->standardize)
        st = standardize(bd, err);
    if (st == BPROP_OK && o->warmup_samples > 0) {
        const size_t n = bd->train->n;
        st = bprop_dataset_subset(bd->train, 0, (size_t)o->warmup_samples < n ?
                                  (size_t)o->warmup_samples : n, &bd->warm, err);
    }
    return st;
}

/* Loads the data, measures the peaks, runs the sweep; returns the exit status. */
static int run(const options *o, FILE *f)
{
    bprop_error err = {BPROP_OK, ""};
    bench_data bd;
    host_desc hd;
    host_cpu_model(hd.cpu, sizeof hd.cpu);
    hd.isa = host_widest_isa();
    hd.kernels = bprop_isa();
    bprop_status st = load_data(o, &bd, &err);

    for (size_t k = 0; st == BPROP_OK && o->init_dir && k < o->hidden.n; k++)
        st = save_init(o, &bd, (size_t)o->hidden.v[k], &err);

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
        st = sweep(o, &bd, &hd, peaks, f, &err);
    }
    free_data(&bd);
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
