/* cmd_predict.c: `bprop predict`: class probabilities of a saved model for CSV, IDX or .npy
 * inputs. */
#include "cli.h"
#include "data.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Rows predicted per library call: bounds the probability buffer for any input size. */
#define PREDICT_CHUNK 4096

typedef struct predict_opts {
    const char *model, *input, *output;
    int labelled, threads;
} predict_opts;

static void predict_help(void)
{
    printf("Usage: bprop predict MODEL --input FILE [--labelled] [--output FILE] [--threads N]\n"
           "Print class probabilities for every input as CSV: a header\n"
           "\"index,predicted,p0,p1,...\", then one row per input (probabilities as %%.6g).\n\n"
           "Options:\n"
           "  --input FILE         CSV of features (one sample per line), IDX images or .npy\n"
           "                       images (uint8 or float32); gzip ok\n"
           "  --labelled           the CSV's first column is a label: ignore it (no effect on\n"
           "                       IDX images, which never hold labels)\n"
           "  --output FILE        write the CSV to FILE (atomically) instead of stdout\n"
           "  --threads N          OpenMP threads; 0: OMP_NUM_THREADS or all cores [0]\n"
           "Inputs are standardised with the model's statistics when it has them.\n\n"
           "Example:\n  bprop predict fashion.bpm --input t10k-images-idx3-ubyte.gz --output p.csv\n");
}

static int predict_option(cli_args *a, void *opts)
{
    predict_opts *o = opts;
    if (cli_is(a, "--input"))
        return cli_value(a, &o->input);
    if (cli_is(a, "--output"))
        return cli_value(a, &o->output);
    if (cli_is(a, "--labelled") || cli_is(a, "--labeled")) {
        o->labelled = 1;
        return cli_flag(a);
    }
    if (cli_is(a, "--threads"))
        return cli_int(a, 0, 4096, &o->threads);
    return CLI_NOMATCH;
}

static int parse_predict(const cli_runtime *rt, int argc, char **argv, predict_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_command c = {"predict", predict_help, predict_option, o, &o->model};
    int rc = cli_parse(rt, &c, argc, argv);
    if (rc)
        return rc;
    if (!o->model)
        return cli_usage(rt, "predict", "missing MODEL (a file saved by 'bprop train --save')");
    if (!o->input)
        return cli_usage(rt, "predict", "missing --input FILE");
    return 0;
}

static int load_input(const cli_runtime *rt, const predict_opts *o, const bprop_model *m, bprop_dataset **out)
{
    bprop_error err = {0};
    bprop_dataset *d = NULL;
    /* IDX and .npy images carry no label column to skip, so --labelled is meaningless there. */
    const int kind = cli_data_kind(o->input);
    int labelled = o->labelled && kind != CLI_KIND_IDX && kind != CLI_KIND_NPY;
    cli_bus_guard_add(o->input);
    bprop_status st = bprop_dataset_load(o->input, NULL, labelled, 0, &d, &err);
    if (st != BPROP_OK)
        return cli_fail_path(rt, o->input, &err, st);
    if (d->dim != m->inputs) {
        int rc = cli_fail(rt, "%s: %zu features per sample, the model %s expects %zu%s", o->input, d->dim,
                          o->model, m->inputs,
                          (!o->labelled && d->dim == m->inputs + 1) ? " (labelled CSV? use --labelled)" : "");
        bprop_dataset_free(d);
        return rc;
    }
    /* Labels (if any) are ignored, so standardise directly rather than through prepare_data,
     * which would also reject labels outside the model's classes. */
    if (m->std_mean && bprop_dataset_standardize(d, m->std_mean, m->std_scale) != BPROP_OK) {
        bprop_dataset_free(d);
        return cli_fail(rt, "%s: out of memory standardising the input", o->input);
    }
    *out = d;
    return 0;
}

static void write_rows(FILE *f, const float *probs, size_t first, size_t n, size_t classes)
{
    for (size_t i = 0; i < n; i++) {
        const float *p = probs + i * classes; /* (classes) */
        size_t best = 0;
        for (size_t c = 1; c < classes; c++)
            best = p[c] > p[best] ? c : best;
        fprintf(f, "%zu,%zu", first + i, best);
        for (size_t c = 0; c < classes; c++)
            fprintf(f, ",%.6g", (double)p[c]);
        fputc('\n', f);
    }
}

static int write_predictions(const cli_runtime *rt, const predict_opts *o, const bprop_model *m,
                             const bprop_dataset *d, FILE *f)
{
    size_t chunk = d->n < PREDICT_CHUNK ? d->n : PREDICT_CHUNK;
    float *probs = malloc(chunk * m->classes * sizeof *probs); /* (chunk, classes) */
    /* (chunk, dim) byte features of a chunk as floats; float32 input is read in place */
    float *rows = d->x ? NULL : malloc(chunk * d->dim * sizeof *rows);
    if (!probs || (!d->x && !rows)) {
        free(probs);
        free(rows);
        return cli_fail(rt, "out of memory for %zu x %zu probabilities", chunk, m->classes);
    }
    fputs("index,predicted", f);
    for (size_t c = 0; c < m->classes; c++)
        fprintf(f, ",p%zu", c);
    fputc('\n', f);
    int rc = 0;
    for (size_t first = 0; first < d->n && !rc; first += chunk) {
        size_t n = d->n - first < chunk ? d->n - first : chunk;
        bprop_error err = {0};
        for (size_t i = 0; rows && i < n; i++)
            bprop_dataset_row(d, first + i, rows + i * d->dim);
        const float *x = rows ? rows : d->x + first * d->dim;
        bprop_status st = bprop_predict(m, x, n, o->threads, probs, &err);
        if (st != BPROP_OK)
            rc = cli_fail_path(rt, o->input, &err, st);
        else
            write_rows(f, probs, first, n, m->classes);
    }
    free(probs);
    free(rows);
    if (!rc && (fflush(f) != 0 || ferror(f)))
        rc = cli_fail(rt, "%s: write error: %s", o->output ? o->output : "standard output", strerror(errno));
    return rc;
}

static int emit(const cli_runtime *rt, const predict_opts *o, const bprop_model *m, const bprop_dataset *d)
{
    if (!o->output)
        return write_predictions(rt, o, m, d, stdout);
    cli_atomic w;
    int rc = cli_atomic_open(rt, &w, o->output);
    if (rc)
        return rc;
    rc = write_predictions(rt, o, m, d, w.f);
    if (rc) {
        cli_atomic_abort(&w);
        return rc;
    }
    return cli_atomic_commit(&w);
}

int cmd_predict(const cli_runtime *rt, int argc, char **argv)
{
    predict_opts o;
    int rc = parse_predict(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    bprop_model *m = NULL;
    bprop_dataset *d = NULL;
    rc = cli_load_model(rt, o.model, &m);
    if (!rc)
        rc = load_input(rt, &o, m, &d);
    if (!rc)
        rc = emit(rt, &o, m, d);
    bprop_dataset_free(d);
    bprop_model_free(m);
    return rc;
}
