/* cmd_export.c: `bprop export MODEL DIR`: a saved model as NumPy .npy files. */
#include "cli.h"

#include <string.h>

typedef struct export_opts {
    const char *model, *dir;
} export_opts;

static void export_help(void)
{
    printf("Usage: bprop export MODEL DIR\n"
           "Write the tensors of a saved model to DIR (created if missing) as NumPy .npy files,\n"
           "little-endian float32 ('<f4'), C order, which numpy.load reads as they are:\n"
           "  W1.npy (inputs, hidden)   W2.npy (hidden, classes)\n"
           "  b1.npy (hidden)           b2.npy (classes)        only with biases\n"
           "  mean.npy (inputs)         scale.npy (inputs)      only for a standardised model\n"
           "The model computes softmax(relu(((x - mean) * scale) @ W1 + b1) @ W2 + b2).\n"
           "Each file is written atomically; b1/b2 or mean/scale left in DIR by an earlier\n"
           "export are removed when this model has none. 'bprop import' reads DIR back.\n\n"
           "Example:\n  bprop export fashion.bpm fashion-npy/\n");
}

static int export_option(cli_args *a, void *opts)
{
    (void)a;
    (void)opts;
    return CLI_NOMATCH; /* only --help, which cli_parse handles */
}

/* Two positional arguments, which cli_parse (one slot) cannot take: MODEL, then DIR. */
static int parse_export(const cli_runtime *rt, int argc, char **argv, export_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_args a;
    cli_args_init(&a, rt, "export", argc, argv);
    for (int kind; (kind = cli_args_next(&a)) != CLI_ARG_END;) {
        if (kind == CLI_ARG_OPTION && cli_is_help(&a)) {
            export_help();
            return CLI_DONE;
        }
        int rc = kind == CLI_ARG_OPTION ? export_option(&a, o) : cli_positional(&a, &o->model);
        if (rc == CLI_NOMATCH && kind == CLI_ARG_POSITIONAL)
            rc = cli_positional(&a, &o->dir);
        if (rc)
            return rc == CLI_NOMATCH ? cli_unknown(&a) : rc;
    }
    if (!o->model)
        return cli_usage(rt, "export", "missing MODEL (a file saved by 'bprop train --save')");
    if (!o->dir || !o->dir[0])
        return cli_usage(rt, "export", "missing DIR (where the .npy files go)");
    return 0;
}

int cmd_export(const cli_runtime *rt, int argc, char **argv)
{
    export_opts o;
    int rc = parse_export(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    bprop_model *m = NULL;
    rc = cli_load_model(rt, o.model, &m);
    if (rc)
        return rc;
    bprop_error err = {0};
    bprop_status st = bprop_model_export_npy(m, o.dir, &err);
    if (st == BPROP_OK) {
        printf("exported %s (%zu-%zu-%zu) to %s:", o.model, m->inputs, m->hidden, m->classes, o.dir);
        for (int f = 0; f < BPROP_NPY_FILES; f++)
            if ((f != BPROP_NPY_B1 && f != BPROP_NPY_B2) || m->has_bias)
                if ((f != BPROP_NPY_MEAN && f != BPROP_NPY_SCALE) || m->std_mean)
                    printf(" %s", bprop_npy_file_name((bprop_npy_file)f));
        printf("\n");
    }
    bprop_model_free(m);
    return st == BPROP_OK ? 0 : cli_fail_path(rt, o.dir, &err, st);
}
