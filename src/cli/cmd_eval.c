/* cmd_eval.c: `bprop eval`: loss, accuracy and confusion matrix of a saved model on a test set. */
#include "cli.h"
#include "data.h"
#include "json.h"

#include <stdlib.h>
#include <string.h>

typedef struct eval_opts {
    const char *model;
    int json, threads;
    cli_data_opts data;
} eval_opts;

static void eval_help(void)
{
    printf("Usage: bprop eval MODEL [data options] [--json] [--threads N]\n"
           "Evaluate a saved model on the test set: mean loss, accuracy and the confusion matrix\n"
           "(rows: true class, columns: predicted class).\n\n"
           "Options:\n"
           "  --json               one JSON object {\"loss\",\"accuracy\",\"n\",\"confusion\",...}\n"
           "  --threads N          OpenMP threads; 0: OMP_NUM_THREADS or all cores [0]\n\n");
    cli_data_help(stdout, CLI_DATA_TEST);
    printf("\nExample:\n  bprop eval fashion.bpm --data /usr/share/datasets/fashion-mnist --json\n");
}

static int eval_option(cli_args *a, void *opts)
{
    eval_opts *o = opts;
    if (cli_is(a, "--json")) {
        o->json = 1;
        return cli_flag(a);
    }
    if (cli_is(a, "--threads"))
        return cli_int(a, 0, 4096, &o->threads);
    return cli_data_option(a, &o->data);
}

static int parse_eval(const cli_runtime *rt, int argc, char **argv, eval_opts *o)
{
    memset(o, 0, sizeof *o);
    o->data.allowed = CLI_DATA_TEST;
    cli_command c = {"eval", eval_help, eval_option, o, &o->model};
    int rc = cli_parse(rt, &c, argc, argv);
    if (rc)
        return rc;
    if (!o->model)
        return cli_usage(rt, "eval", "missing MODEL (a file saved by 'bprop train --save')");
    return 0;
}

static int digits(uint64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

/* (classes, classes) counts, rows true, columns predicted, with per-class recall. */
static void print_confusion(const uint64_t *conf, size_t classes)
{
    uint64_t max = classes - 1;
    for (size_t i = 0; i < classes * classes; i++)
        max = conf[i] > max ? conf[i] : max;
    int w = digits(max) + 1;
    printf("confusion matrix (rows: true class, columns: predicted class):\n%9s", "true\\pred");
    for (size_t c = 0; c < classes; c++)
        printf(" %*zu", w, c);
    printf("  %7s\n", "recall");
    for (size_t r = 0; r < classes; r++) {
        uint64_t total = 0;
        printf("%9zu", r);
        for (size_t c = 0; c < classes; c++) {
            printf(" %*llu", w, (unsigned long long)conf[r * classes + c]);
            total += conf[r * classes + c];
        }
        if (total)
            printf("  %7.4f\n", (double)conf[r * classes + r] / (double)total);
        else
            printf("  %7s\n", "-");
    }
}

static void print_json(const eval_opts *o, const char *desc, const bprop_eval *e,
                       const uint64_t *conf, size_t classes)
{
    json_writer j;
    json_init(&j, stdout);
    json_object_begin(&j, NULL);
    json_string(&j, "model", o->model);
    json_string(&j, "data", desc);
    json_real(&j, "loss", e->loss);
    json_real(&j, "accuracy", e->accuracy);
    json_uint(&j, "n", e->n);
    json_array_begin(&j, "confusion");
    for (size_t r = 0; r < classes; r++) {
        json_array_begin(&j, NULL);
        for (size_t c = 0; c < classes; c++)
            json_uint(&j, NULL, conf[r * classes + c]);
        json_array_end(&j);
    }
    json_array_end(&j);
    json_object_end(&j);
    putchar('\n');
}

static int run_eval(const cli_runtime *rt, const eval_opts *o, bprop_model *m, bprop_dataset *d,
                    const char *path,
                    const char *desc)
{
    bprop_error err = {0};
    bprop_status st = bprop_model_prepare_data(m, d, &err);
    if (st != BPROP_OK)
        return cli_fail_path(rt, path, &err, st);
    uint64_t *conf = calloc(m->classes * m->classes, sizeof *conf);
    if (!conf)
        return cli_fail(rt, "out of memory for a %zu-class confusion matrix", m->classes);
    bprop_eval e;
    st = bprop_evaluate(m, d, o->threads, &e, conf, &err);
    if (st != BPROP_OK) {
        free(conf);
        return cli_fail_path(rt, path, &err, st);
    }
    if (o->json) {
        print_json(o, desc, &e, conf, m->classes);
    } else {
        uint64_t correct = 0;
        for (size_t c = 0; c < m->classes; c++)
            correct += conf[c * m->classes + c];
        printf("model: %s (%zu-%zu-%zu)\ndata: %s\nsamples: %zu\nloss: %.6f\n"
               "accuracy: %.4f (%llu of %zu correct)\n",
               o->model, m->inputs, m->hidden, m->classes, desc, e.n, e.loss, e.accuracy,
               (unsigned long long)correct, e.n);
        print_confusion(conf, m->classes);
    }
    free(conf);
    return 0;
}

int cmd_eval(const cli_runtime *rt, int argc, char **argv)
{
    eval_opts o;
    int rc = parse_eval(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    bprop_model *m = NULL;
    bprop_dataset *d = NULL;
    cli_data_paths paths;
    rc = cli_load_model(rt, o.model, &m);
    if (!rc)
        rc = cli_data_resolve(rt, &o.data, CLI_NEED_TEST, &paths);
    if (!rc)
        rc = cli_load_split(rt, &paths.test, m->classes, &d);
    if (!rc)
        rc = run_eval(rt, &o, m, d, paths.test.images, paths.desc);
    bprop_dataset_free(d);
    bprop_model_free(m);
    return rc;
}
