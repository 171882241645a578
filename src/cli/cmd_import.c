/* cmd_import.c: `bprop import DIR --save MODEL`: a model from NumPy .npy files. */
#include "cli.h"

#include <string.h>

typedef struct import_opts {
    const char *dir, *save;
} import_opts;

static void import_help(void)
{
    printf("Usage: bprop import DIR --save MODEL\n"
           "Build a model from the NumPy .npy files in DIR (as 'bprop export' writes them, or\n"
           "numpy.save) and save it to MODEL (atomically):\n"
           "  W1.npy (inputs, hidden) and W2.npy (hidden, classes)   required\n"
           "  b1.npy (hidden) and b2.npy (classes)                   both or neither\n"
           "  mean.npy and scale.npy (inputs)                        both or neither\n"
           "Each file: NPY format 1.0, 2.0 or 3.0; dtype '<f4' (float32) or '<f8' (float64,\n"
           "rounded to float32, with a note on stderr); C order; finite values. Anything else\n"
           "(another dtype, big-endian, Fortran order, a bad header, truncated or trailing\n"
           "data, shapes that do not chain) is refused with one line and nothing is written.\n"
           "The model's history starts afresh: created now, data = DIR.\n\n"
           "Options:\n"
           "  --save MODEL         where to write the model (required)\n\n"
           "Example:\n  bprop import fashion-npy/ --save fashion2.bpm\n");
}

static int import_option(cli_args *a, void *opts)
{
    import_opts *o = opts;
    if (cli_is(a, "--save"))
        return cli_value(a, &o->save);
    return CLI_NOMATCH;
}

static int parse_import(const cli_runtime *rt, int argc, char **argv, import_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_command c = {"import", import_help, import_option, o, &o->dir};
    int rc = cli_parse(rt, &c, argc, argv);
    if (rc)
        return rc;
    if (!o->dir || !o->dir[0])
        return cli_usage(rt, "import", "missing DIR (a directory of .npy files from 'bprop export')");
    if (!o->save || !o->save[0])
        return cli_usage(rt, "import", "missing --save MODEL");
    return 0;
}

/* One note naming the files that held float64, which the model stores as float32. */
static void note_rounded(unsigned rounded)
{
    if (!rounded)
        return;
    fputs("bprop: note: float64 values rounded to float32 in", stderr);
    for (int f = 0; f < BPROP_NPY_FILES; f++)
        if (rounded & (1u << f))
            fprintf(stderr, " %s", bprop_npy_file_name((bprop_npy_file)f));
    fputc('\n', stderr);
}

int cmd_import(const cli_runtime *rt, int argc, char **argv)
{
    import_opts o;
    int rc = parse_import(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    rc = cli_check_output(rt, "--save", o.save);
    if (rc)
        return rc;
    bprop_model *m = NULL;
    bprop_error err = {0};
    unsigned rounded = 0;
    bprop_status st = bprop_model_import_npy(o.dir, &m, &rounded, &err);
    if (st != BPROP_OK)
        return cli_fail_path(rt, o.dir, &err, st);
    note_rounded(rounded);
    st = bprop_model_save(m, o.save, &err);
    if (st == BPROP_OK)
        printf("imported %s (%zu-%zu-%zu%s%s) into %s\n", o.dir, m->inputs, m->hidden, m->classes,
               m->has_bias ? "" : ", no biases", m->std_mean ? ", standardised" : "", o.save);
    bprop_model_free(m);
    return st == BPROP_OK ? 0 : cli_fail_err(rt, &err, st);
}
