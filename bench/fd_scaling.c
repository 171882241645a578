/* fd_scaling.c: cost of one full gradient by backprop versus finite differences as P grows. */
#include "bprop.h"

#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LIST 64
#define DEFAULT_DATA "/usr/share/datasets/fashion-mnist"

typedef struct options {
    const char *data;          /* directory holding train-{images-idx3,labels-idx1}-ubyte.gz */
    size_t batch;              /* samples in the fixed batch */
    size_t hidden[MAX_LIST];   /* sweep of hidden widths */
    size_t n_hidden;
    int threads[MAX_LIST];     /* thread counts */
    size_t n_threads;
    double budget;             /* seconds a full FD gradient may take before we sample */
    size_t coords;             /* coordinates timed when sampling (>= 200) */
    int repeats;               /* backprop repeats (median) */
    size_t fit_min_hidden;     /* second fit over hidden >= this: the asymptotic regime */
    uint64_t seed;
    const char *out;           /* CSV file, NULL: stdout */
    const char *fits;          /* CSV of the fitted exponents, NULL: none */
} options;

/* One CSV row. */
typedef struct row {
    const char *method;
    int threads;
    size_t hidden, params;
    double seconds;
    size_t forward_passes, passes_timed;
    double rel_error;
    int estimated;
    double ratio;
    size_t coords, kinks;
} row;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: fd_scaling [options]\n"
            "  --data DIR        Fashion-MNIST directory (default " DEFAULT_DATA ")\n"
            "  --batch N         samples in the fixed batch (default 64)\n"
            "  --hidden LIST     hidden widths, comma-separated (default 1,2,4,...,1024)\n"
            "  --threads LIST    thread counts (default 1 and the core count)\n"
            "  --budget S        seconds a full finite-difference gradient may take (default 10);\n"
            "                    beyond it, time --coords coordinates and extrapolate\n"
            "  --coords N        coordinates timed when extrapolating, >= 200 (default 256)\n"
            "  --repeats R       backprop repeats, the median is kept (default 7)\n"
            "  --fit-min-hidden H  second fit over hidden >= H (default 32)\n"
            "  --seed S          model initialisation and sampled coordinates (default 1)\n"
            "  --out FILE        CSV output (default stdout)\n"
            "  --fits FILE       CSV of the fits: method,threads,range (all, or large: hidden >=\n"
            "                    --fit-min-hidden),points,intercept,exponent,min_params\n");
}

static int parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v == 0)
        return -1;
    *out = (size_t)v;
    return 0;
}

static int parse_seconds(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0.0) || !isfinite(v))
        return -1;
    *out = v;
    return 0;
}

static int parse_size_list(const char *s, size_t *out, size_t *count)
{
    char buf[1024];
    if (strlen(s) >= sizeof buf)
        return -1;
    strcpy(buf, s);
    *count = 0;
    for (char *tok = strtok(buf, ","); tok; tok = strtok(NULL, ",")) {
        if (*count == MAX_LIST || parse_size(tok, &out[*count]) != 0)
            return -1;
        (*count)++;
    }
    return *count ? 0 : -1;
}

static int parse_args(int argc, char **argv, options *o)
{
    static const size_t hid[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024};
    *o = (options){.data = DEFAULT_DATA, .batch = 64, .budget = 10.0, .coords = 256, .repeats = 7,
                   .fit_min_hidden = 32, .seed = 1};
    o->n_hidden = sizeof hid / sizeof hid[0];
    memcpy(o->hidden, hid, sizeof hid);
    int cores = omp_get_num_procs();
    o->threads[0] = 1;
    o->threads[1] = cores;
    o->n_threads = cores > 1 ? 2 : 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t tmp[MAX_LIST], nt, sz = 0;
        int bad = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        }
        if (!v) {
            fprintf(stderr, "fd_scaling: %s: missing value or unknown option\n", a);
            return -1;
        }
        if (!strcmp(a, "--data"))
            o->data = v;
        else if (!strcmp(a, "--batch"))
            bad = parse_size(v, &o->batch);
        else if (!strcmp(a, "--hidden"))
            bad = parse_size_list(v, o->hidden, &o->n_hidden);
        else if (!strcmp(a, "--threads")) {
            bad = parse_size_list(v, tmp, &nt);
            for (size_t k = 0; !bad && k < nt; k++) {
                bad = tmp[k] > 4096;
                o->threads[k] = (int)tmp[k];
            }
            o->n_threads = nt;
        } else if (!strcmp(a, "--budget"))
            bad = parse_seconds(v, &o->budget);
        else if (!strcmp(a, "--coords"))
            bad = parse_size(v, &o->coords) || o->coords < 200;
        else if (!strcmp(a, "--repeats")) {
            bad = parse_size(v, &sz) || sz > 1000;
            o->repeats = (int)sz;
        }
        else if (!strcmp(a, "--fit-min-hidden"))
            bad = parse_size(v, &o->fit_min_hidden);
        else if (!strcmp(a, "--seed")) {
            bad = parse_size(v, &sz);
            o->seed = sz;
        }
        else if (!strcmp(a, "--out"))
            o->out = v;
        else if (!strcmp(a, "--fits"))
            o->fits = v;
        else {
            fprintf(stderr, "fd_scaling: unknown option %s\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "fd_scaling: %s: bad value '%s'\n", a, v);
            return -1;
        }
        i++;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median time of one bprop_loss_grad call over at least o->repeats calls (more for fast calls,
 * so that timer resolution does not dominate); grad receives the gradient. The calls share one
 * workspace, so that what is timed is the pass and not the allocation of its buffers. */
static int time_backprop(const bprop_model *m, const bprop_dataset *d, size_t n, int threads,
                         int repeats, float *grad, double *median)
{
    double t[1000];
    bprop_error err;
    bprop_workspace *ws = NULL;
    int r = 0;
    double start = omp_get_wtime();
    if (bprop_workspace_create(&ws, &err) != BPROP_OK ||
        bprop_loss_grad_ws(ws, m, d->x, d->y, n, threads, NULL, grad, &err) != BPROP_OK) { /* warm-up */
        fprintf(stderr, "fd_scaling: backprop: %s\n", err.message);
        bprop_workspace_free(ws);
        return -1;
    }
    while (r < 1000 && (r < repeats || omp_get_wtime() - start < 0.05)) {
        double t0 = omp_get_wtime();
        bprop_loss_grad_ws(ws, m, d->x, d->y, n, threads, NULL, grad, NULL);
        t[r++] = omp_get_wtime() - t0;
    }
    bprop_workspace_free(ws);
    qsort(t, (size_t)r, sizeof t[0], cmp_double);
    *median = r % 2 ? t[r / 2] : 0.5 * (t[r / 2 - 1] + t[r / 2]);
    return 0;
}

/* Seconds of one full double forward pass (median of 3), the unit of finite-difference cost. */
static double time_pass(const bprop_model *m, const bprop_dataset *d, size_t n)
{
    size_t p = m->layout.total;
    double *theta = malloc(p * sizeof *theta), t[3];
    if (!theta)
        return -1.0;
    for (size_t k = 0; k < p; k++)
        theta[k] = (double)m->params[k];
    for (int r = 0; r < 3; r++) {
        double t0 = omp_get_wtime();
        volatile double loss = bprop_loss_double(m, theta, d->x, d->y, n);
        (void)loss;
        t[r] = omp_get_wtime() - t0;
    }
    free(theta);
    qsort(t, 3, sizeof t[0], cmp_double);
    return t[1];
}

/* Smallest per-tensor sample count K whose per-tensor picks (min(K, count)) reach want. */
static size_t per_tensor_k(const bprop_layout *L, size_t want)
{
    for (size_t k = 1;; k++) {
        size_t got = 0, maxc = 0;
        for (int t = 0; t < BPROP_TENSORS; t++) {
            got += L->count[t] < k ? L->count[t] : k;
            maxc = L->count[t] > maxc ? L->count[t] : maxc;
        }
        if (got >= want || k >= maxc)
            return k;
    }
}

/* One finite-difference row: full when the predicted time fits the budget, else sampled and
 * extrapolated by forward passes (every pass is a full forward, so cost per pass is flat). */
static int fd_row(const bprop_model *m, const bprop_dataset *d, const options *o, int threads,
                  bprop_fd_method method, double t_pass, const float *grad, row *r)
{
    size_t p = m->layout.total;
    size_t full = method == BPROP_FD_CENTRAL ? 2 * p : p + 1;
    bprop_gradcheck_config c;
    bprop_gradcheck_config_default(&c);
    c.method = method;
    c.step = method == BPROP_FD_CENTRAL ? 1e-4 : 1e-7;
    c.threads = threads;
    c.seed = o->seed;
    int sampled = (double)full * t_pass / threads > o->budget && p > o->coords;
    c.samples = sampled ? per_tensor_k(&m->layout, o->coords) : 0;
    bprop_gradcheck_report rep;
    bprop_error err;
    if (bprop_gradcheck(m, d->x, d->y, o->batch, &c, grad, &rep, &err) != BPROP_OK) {
        fprintf(stderr, "fd_scaling: gradcheck: %s\n", err.message);
        return -1;
    }
    r->method = method == BPROP_FD_CENTRAL ? "central" : "forward";
    r->forward_passes = full;
    r->passes_timed = rep.forward_passes;
    r->seconds = rep.seconds_fd * (double)full / (double)rep.forward_passes;
    r->estimated = rep.forward_passes < full;
    r->rel_error = rep.max_rel_error;
    r->coords = r->kinks = 0;
    for (int t = 0; t < BPROP_TENSORS; t++) {
        r->coords += rep.tensor[t].checked + rep.tensor[t].kinks;
        r->kinks += rep.tensor[t].kinks;
    }
    return 0;
}

static void print_row(FILE *f, const row *r)
{
    fprintf(f, "%s,%d,%zu,%zu,%.6e,%zu,%.3e,%d,%.4g,%zu,%zu,%zu\n", r->method, r->threads, r->hidden,
            r->params, r->seconds, r->forward_passes, r->rel_error, r->estimated, r->ratio,
            r->passes_timed, r->coords, r->kinks);
    fflush(f);
}

/* All rows of one hidden width: per thread count, backprop then forward and central FD. */
static int sweep_point(const options *o, const bprop_dataset *d, size_t hidden, FILE *f,
                       row *rows, size_t *n_rows)
{
    bprop_model *m = NULL;
    bprop_error err;
    if (bprop_model_create(d->dim, hidden, d->classes, 1, o->seed, &m, &err) != BPROP_OK) {
        fprintf(stderr, "fd_scaling: %s\n", err.message);
        return -1;
    }
    size_t p = m->layout.total;
    float *grad = malloc(p * sizeof *grad);
    double t_pass = time_pass(m, d, o->batch);
    int rc = grad && t_pass >= 0.0 ? 0 : -1;
    for (size_t ti = 0; rc == 0 && ti < o->n_threads; ti++) {
        int th = o->threads[ti];
        row b = {.method = "backprop", .threads = th, .hidden = hidden, .params = p,
                 .forward_passes = 1, .passes_timed = 1, .ratio = 1.0, .coords = p};
        rc = time_backprop(m, d, o->batch, th, o->repeats, grad, &b.seconds);
        rows[(*n_rows)++] = b;
        if (rc == 0)
            print_row(f, &b);
        for (int meth = BPROP_FD_FORWARD; rc == 0 && meth >= BPROP_FD_CENTRAL; meth--) {
            row r = {.threads = th, .hidden = hidden, .params = p};
            rc = fd_row(m, d, o, th, (bprop_fd_method)meth, t_pass, grad, &r);
            r.ratio = r.seconds / b.seconds;
            rows[(*n_rows)++] = r;
            if (rc == 0) {
                print_row(f, &r);
                fprintf(stderr, "H=%zu P=%zu threads=%d %s: %.4g s (%s), %.3g x backprop, rel err %.2e\n",
                        hidden, p, th, r.method, r.seconds, r.estimated ? "estimated" : "measured",
                        r.ratio, r.rel_error);
            }
        }
    }
    free(grad);
    bprop_model_free(m);
    return rc;
}

/* Least squares of log(seconds) = a + b log(params) over the rows of one method and thread
 * count with hidden >= min_hidden. @return points used. */
static size_t fit(const row *rows, size_t n, const char *method, int threads, size_t min_hidden,
                  double *a, double *b, size_t *min_params)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    size_t k = 0;
    *min_params = 0;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(rows[i].method, method) || rows[i].threads != threads || rows[i].hidden < min_hidden)
            continue;
        double x = log((double)rows[i].params), y = log(rows[i].seconds);
        if (k == 0 || rows[i].params < *min_params)
            *min_params = rows[i].params;
        sx += x, sy += y, sxx += x * x, sxy += x * y, k++;
    }
    double den = (double)k * sxx - sx * sx;
    *b = k >= 2 && den > 0 ? ((double)k * sxy - sx * sy) / den : NAN;
    *a = k >= 2 ? (sy - *b * sx) / (double)k : NAN;
    return k;
}

static void report_fits(const options *o, const row *rows, size_t n, FILE *ff)
{
    static const char *methods[] = {"backprop", "forward", "central"};
    if (ff)
        fprintf(ff, "method,threads,range,points,intercept,exponent,min_params\n");
    for (size_t ti = 0; ti < o->n_threads; ti++)
        for (int mi = 0; mi < 3; mi++) {
            double a, b, a2, b2;
            size_t p, p2;
            size_t k = fit(rows, n, methods[mi], o->threads[ti], 0, &a, &b, &p);
            size_t k2 = fit(rows, n, methods[mi], o->threads[ti], o->fit_min_hidden, &a2, &b2, &p2);
            fprintf(stderr, "# fit %-8s threads=%d: seconds ~ P^%.3f over %zu points; P^%.3f over the "
                    "%zu points with hidden >= %zu\n", methods[mi], o->threads[ti], b, k, b2, k2,
                    o->fit_min_hidden);
            if (ff) {
                fprintf(ff, "%s,%d,all,%zu,%.6f,%.6f,%zu\n", methods[mi], o->threads[ti], k, a, b, p);
                fprintf(ff, "%s,%d,large,%zu,%.6f,%.6f,%zu\n", methods[mi], o->threads[ti], k2, a2, b2, p2);
            }
        }
}

/* Other work on the machine distorts the thread sweep most: say how busy it was (Linux). */
static void print_load(const char *when)
{
    char buf[128] = "";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f && fgets(buf, sizeof buf, f))
        fprintf(stderr, "# load average %s: %s", when, buf);
    if (f)
        fclose(f);
}

static bprop_dataset *load_batch(const options *o)
{
    char img[4096], lab[4096];
    snprintf(img, sizeof img, "%s/train-images-idx3-ubyte.gz", o->data);
    snprintf(lab, sizeof lab, "%s/train-labels-idx1-ubyte.gz", o->data);
    bprop_dataset *d = NULL;
    bprop_error err;
    if (bprop_dataset_load_idx(img, lab, 0, &d, &err) != BPROP_OK ||
        bprop_dataset_to_float(d, &err) != BPROP_OK) { /* float rows for bprop_loss_grad */
        fprintf(stderr, "fd_scaling: %s\n", err.message);
        bprop_dataset_free(d);
        return NULL;
    }
    if (d->n < o->batch) {
        fprintf(stderr, "fd_scaling: %s: %zu samples, fewer than the batch of %zu\n", img, d->n, o->batch);
        bprop_dataset_free(d);
        return NULL;
    }
    return d;
}

int main(int argc, char **argv)
{
    options o;
    if (parse_args(argc, argv, &o) != 0) {
        usage(stderr);
        return 2;
    }
    bprop_dataset *d = load_batch(&o);
    if (!d)
        return 1;
    FILE *f = o.out ? fopen(o.out, "w") : stdout;
    row *rows = calloc(o.n_hidden * o.n_threads * 3, sizeof *rows);
    int rc = f && rows ? 0 : 1;
    if (!f)
        fprintf(stderr, "fd_scaling: %s: cannot open for writing\n", o.out);
    if (rc == 0) {
        fprintf(f, "method,threads,hidden,params,seconds,forward_passes,rel_error,estimated,"
                   "ratio_vs_backprop,passes_timed,coords,kinks\n");
        fprintf(stderr, "# fd_scaling: batch %zu of %s, budget %.3g s per FD gradient, %zu coords when "
                "sampled\n", o.batch, o.data, o.budget, o.coords);
    }
    size_t n_rows = 0;
    double t0 = omp_get_wtime();
    print_load("before the sweep");
    for (size_t h = 0; rc == 0 && h < o.n_hidden; h++)
        rc = sweep_point(&o, d, o.hidden[h], f, rows, &n_rows) ? 1 : 0;
    if (rc == 0) {
        FILE *ff = o.fits ? fopen(o.fits, "w") : NULL;
        if (o.fits && !ff)
            fprintf(stderr, "fd_scaling: %s: cannot open for writing\n", o.fits);
        report_fits(&o, rows, n_rows, ff);
        if (ff)
            fclose(ff);
        fprintf(stderr, "# sweep took %.1f s\n", omp_get_wtime() - t0);
        print_load("after the sweep");
    }
    if (f && f != stdout)
        fclose(f);
    free(rows);
    bprop_dataset_free(d);
    return rc;
}
