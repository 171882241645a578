/* test_cli.c: the `bprop` program end to end: train/eval/predict/info/gradcheck and its errors. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <dirent.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

/* ---- scratch directory: one per test (Criterion runs each test in its own process) --------- */

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(cli, .init = scratch_create, .fini = scratch_remove, .timeout = 60);

/* ---- running the program ------------------------------------------------------------------- */

static char *path_in(const char *name) { return tu_path(g_dir, name); }

/* Run the CLI with the given arguments (NULL-terminated), capturing stdout and stderr; with
 * stdout_path, standard output goes there instead and r.out is empty. */
static tu_run run_to(const char *stdout_path, const char *const *args)
{
    const char *argv[64] = {BPROP_CLI_PATH};
    size_t n = 1;
    while (args[n - 1]) {
        cr_assert_lt(n, 63);
        argv[n] = args[n - 1];
        n++;
    }
    argv[n] = NULL;
    char *out = path_in("stdout.txt"), *err = path_in("stderr.txt");
    const tu_spawn_opts o = {.out = stdout_path ? stdout_path : out, .err = err, .omp_threads = "2"};
    const pid_t pid = tu_spawn(argv, &o);
    tu_run r = tu_finish(pid, &(tu_spawn_opts){.out = stdout_path ? NULL : out, .err = err});
    free(out);
    free(err);
    return r;
}

static tu_run run_argv(const char *const *args) { return run_to(NULL, args); }

#define RUN(...) run_argv((const char *const[]){__VA_ARGS__, NULL})
#define RUN_TO(path, ...) run_to(path, (const char *const[]){__VA_ARGS__, NULL})

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The number after "key": in a JSON text; fails the test when the key is missing. */
static double json_number(const char *json, const char *key)
{
    char pat[64];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(json, pat);
    cr_assert_not_null(p, "key %s missing in %s", key, json);
    char *end;
    double v = strtod(p + strlen(pat), &end);
    cr_assert_neq(end, p + strlen(pat), "key %s has no number in %s", key, json);
    return v;
}

/* ---- data --------------------------------------------------------------------------------- */

static void write_csv(const char *name, const bprop_dataset *d, int labelled)
{
    char *p = path_in(name);
    tu_write_csv(p, d, d->n, labelled);
    free(p);
}

/* train.csv (200 samples), test.csv (60) and in.csv (10 unlabelled): 4 features, 3 classes. */
static void write_blob_files(void)
{
    bprop_dataset *train = tu_blobs(200, 4, 3, 11), *test = tu_blobs(60, 4, 3, 11);
    write_csv("train.csv", train, 1);
    write_csv("test.csv", test, 1);
    test->n = 10; /* only the first rows; the allocation stays whole for the free below */
    write_csv("in.csv", test, 0);
    test->n = 60;
    bprop_dataset_free(train);
    bprop_dataset_free(test);
}

static char *train_small_model(const char *model_name)
{
    write_blob_files();
    char *train = path_in("train.csv"), *test = path_in("test.csv"), *model = path_in(model_name);
    tu_run r = RUN("train", "--train", train, "--test", test, "--epochs", "2", "--hidden", "8",
                       "--batch", "32", "--threads", "2", "--save", model, "--quiet");
    cr_assert_eq(r.status, 0, "train failed: %s", r.err);
    tu_run_free(&r);
    free(train);
    free(test);
    return model;
}

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

static void copy_file(const char *from, const char *to)
{
    size_t n;
    char *bytes = tu_read_file(from, &n);
    tu_write_file(to, bytes, n);
    free(bytes);
}

/* Entries of the scratch directory whose names start with prefix (temporary files left behind). */
static size_t count_entries(const char *prefix)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return n;
}

static unsigned file_mode(const char *path)
{
    struct stat st;
    cr_assert_eq(stat(path, &st), 0, "cannot stat %s", path);
    return (unsigned)(st.st_mode & 0777);
}

/* ---- tests -------------------------------------------------------------------------------- */

Test(cli, train_writes_metrics_and_model)
{
    write_blob_files();
    char *train = path_in("train.csv"), *test = path_in("test.csv"), *model = path_in("m.bpm"),
         *metrics = path_in("m.jsonl");
    /* An older log is replaced, keeping its permissions. */
    tu_write_text(metrics, "{\"old\":1}\n");
    cr_assert_eq(chmod(metrics, 0640), 0);
    tu_run r = RUN("train", "--train", train, "--test", test, "--epochs", "2", "--hidden", "8",
                       "--batch", "32", "--threads", "2", "--save", model, "--metrics", metrics);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "final test accuracy"), "stdout: %s", r.out);
    cr_assert_not_null(strstr(r.out, "train_loss"), "no per-epoch table: %s", r.out);
    cr_assert_eq(access(model, R_OK), 0, "model not saved");
    cr_assert_eq(count_entries("m.jsonl.tmp"), 0, "temporary metrics file left behind");
    cr_assert_eq(file_mode(metrics), 0640);

    char *m = tu_read_file(metrics, NULL);
    cr_assert_eq(count_lines(m), 2, "metrics: %s", m);
    static const char *const keys[] = {"epoch", "train_loss", "train_acc", "test_loss", "test_acc",
                                       "samples_per_s", "seconds", "lr", "grad_norm_w1", "grad_norm_b1",
                                       "grad_norm_w2", "grad_norm_b2", "threads", "batch", "hidden"};
    char *line2 = strchr(m, '\n') + 1;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        json_number(m, keys[k]);
        json_number(line2, keys[k]);
    }
    cr_assert_eq(m[0], '{');
    cr_assert_eq(json_number(m, "epoch"), 1.0);
    cr_assert_eq(json_number(line2, "epoch"), 2.0);
    cr_assert_eq(json_number(m, "hidden"), 8.0);
    cr_assert_eq(json_number(m, "batch"), 32.0);
    cr_assert_eq(json_number(m, "threads"), 2.0);
    double acc = json_number(line2, "test_acc");
    cr_assert(acc > 0.8 && acc <= 1.0, "test accuracy after 2 epochs on separated blobs: %g", acc);
    cr_assert(json_number(line2, "grad_norm_w1") > 0.0);
    free(m);
    tu_run_free(&r);
    free(train);
    free(test);
    free(model);
    free(metrics);
}

Test(cli, eval_json_and_table)
{
    char *model = train_small_model("m.bpm"), *test = path_in("test.csv");
    tu_run r = RUN("eval", model, "--test", test, "--json", "--threads", "2");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    double loss = json_number(r.out, "loss"), acc = json_number(r.out, "accuracy");
    cr_assert(isfinite(loss) && loss > 0.0 && loss < 1.5, "loss %g", loss);
    cr_assert(acc > 0.8 && acc <= 1.0, "accuracy %g", acc);
    cr_assert_eq(json_number(r.out, "n"), 60.0);
    cr_assert_not_null(strstr(r.out, "\"confusion\":[["));
    cr_assert_eq(count_lines(r.out), 1);
    tu_run_free(&r);

    r = RUN("eval", model, "--test", test);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "accuracy:"));
    cr_assert_not_null(strstr(r.out, "confusion matrix"));
    tu_run_free(&r);
    free(model);
    free(test);
}

/* Check the predict CSV: header, one row per input, probabilities summing to 1, argmax. */
static void check_predictions(const char *csv, size_t rows)
{
    cr_assert_eq(strncmp(csv, "index,predicted,p0,p1,p2\n", 25), 0, "header: %.40s", csv);
    cr_assert_eq(count_lines(csv), rows + 1);
    const char *p = strchr(csv, '\n') + 1;
    for (size_t i = 0; i < rows; i++) {
        unsigned idx, pred;
        double q[3];
        cr_assert_eq(sscanf(p, "%u,%u,%lf,%lf,%lf", &idx, &pred, &q[0], &q[1], &q[2]), 5, "row: %.60s", p);
        cr_assert_eq(idx, i);
        cr_assert_lt(pred, 3u);
        cr_assert_float_eq(q[0] + q[1] + q[2], 1.0, 1e-4, "row %zu sums to %g", i, q[0] + q[1] + q[2]);
        for (int c = 0; c < 3; c++)
            cr_assert(q[c] <= q[pred], "row %zu: predicted %u is not the most probable", i, pred);
        p = strchr(p, '\n') + 1;
    }
}

Test(cli, predict_rows_sum_to_one)
{
    char *model = train_small_model("m.bpm"), *in = path_in("in.csv"), *out = path_in("p.csv"),
         *test = path_in("test.csv");
    tu_run r = RUN("predict", model, "--input", in);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    check_predictions(r.out, 10);
    char *stdout_copy = strdup(r.out);
    tu_run_free(&r);

    r = RUN("predict", model, "--input", in, "--output", out);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(r.out[0], '\0', "stdout not empty with --output");
    char *file = tu_read_file(out, NULL);
    cr_assert_str_eq(file, stdout_copy);
    tu_run_free(&r);

    /* A labelled file: the label column is ignored, so 60 rows of 3 probabilities. */
    r = RUN("predict", model, "--input", test, "--labelled");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    check_predictions(r.out, 60);
    tu_run_free(&r);

    /* Without --labelled the widths disagree: a runtime error naming the file. */
    r = RUN("predict", model, "--input", test);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, test), "stderr: %s", r.err);
    tu_run_free(&r);
    free(file);
    free(stdout_copy);
    free(model);
    free(in);
    free(out);
    free(test);
}

Test(cli, info_shows_shape)
{
    char *model = train_small_model("m.bpm");
    tu_run r = RUN("info", model);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "4-8-3"), "stdout: %s", r.out);
    cr_assert_not_null(strstr(r.out, "67"), "parameter count missing: %s", r.out);
    cr_assert_not_null(strstr(r.out, "train.csv"), "data description missing: %s", r.out);
    tu_run_free(&r);

    r = RUN("info", model, "--json");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(json_number(r.out, "inputs"), 4.0);
    cr_assert_eq(json_number(r.out, "hidden"), 8.0);
    cr_assert_eq(json_number(r.out, "classes"), 3.0);
    cr_assert_eq(json_number(r.out, "epochs_done"), 2.0);
    cr_assert_eq(json_number(r.out, "samples_seen"), 400.0);
    cr_assert_eq(json_number(r.out, "batch"), 32.0);
    double acc = json_number(r.out, "test_acc");
    cr_assert(acc > 0.8 && acc <= 1.0, "stored test accuracy %g", acc);
    cr_assert_not_null(strstr(r.out, "\"bias\":true"));
    cr_assert_not_null(strstr(r.out, "\"standardized\":false"));
    tu_run_free(&r);
    free(model);
}

Test(cli, standardize_and_validation_split)
{
    write_blob_files();
    char *train = path_in("train.csv"), *test = path_in("test.csv"), *model = path_in("s.bpm"),
         *metrics = path_in("s.jsonl"), *in = path_in("in.csv");
    tu_run r = RUN("train", "--train", train, "--test", test, "--epochs", "2", "--hidden", "8",
                       "--batch", "32", "--threads", "2", "--standardize", "--val-fraction", "0.25",
                       "--no-bias", "--save", model, "--metrics", metrics);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "val_loss"), "stdout: %s", r.out);
    cr_assert_not_null(strstr(r.out, "150 training samples, 50 validation, 60 test"), "stdout: %s", r.out);
    tu_run_free(&r);
    char *m = tu_read_file(metrics, NULL);
    cr_assert_eq(count_lines(m), 2);
    double va = json_number(m, "val_acc");
    cr_assert(va >= 0.0 && va <= 1.0);
    /* Test figures appear with the last epoch only when a validation split is used. */
    cr_assert_not_null(strstr(m, "\"test_acc\":null"));
    double ta = json_number(strchr(m, '\n') + 1, "test_acc");
    cr_assert(ta > 0.5 && ta <= 1.0, "final test accuracy %g", ta);
    free(m);

    r = RUN("info", model, "--json");
    cr_assert_not_null(strstr(r.out, "\"standardized\":true"), "info: %s", r.out);
    cr_assert_not_null(strstr(r.out, "\"bias\":false"), "info: %s", r.out);
    cr_assert_eq(json_number(r.out, "parameters"), 4 * 8 + 8 * 3);
    tu_run_free(&r);
    r = RUN("predict", model, "--input", in);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    check_predictions(r.out, 10);
    tu_run_free(&r);
    free(train);
    free(test);
    free(model);
    free(metrics);
    free(in);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* IDX images (n, 6, 6) of two classes (bright left or right half) and their labels. */
static void write_idx_pair(const char *images, const char *labels, size_t n, int gz)
{
    size_t isize = 16 + n * 36, lsize = 8 + n;
    unsigned char *img = calloc(isize, 1), *lab = calloc(lsize, 1);
    put_be32(img, 0x803);
    put_be32(img + 4, (uint32_t)n);
    put_be32(img + 8, 6);
    put_be32(img + 12, 6);
    put_be32(lab, 0x801);
    put_be32(lab + 4, (uint32_t)n);
    for (size_t i = 0; i < n; i++) {
        lab[8 + i] = (unsigned char)(i % 2);
        for (size_t p = 0; p < 36; p++)
            img[16 + i * 36 + p] = (unsigned char)(((p % 6 < 3) == (i % 2 == 0)) ? 200 + i % 50 : i % 40);
    }
    const char *names[2] = {images, labels};
    unsigned char *data[2] = {img, lab};
    size_t sizes[2] = {isize, lsize};
    for (int k = 0; k < 2; k++) {
        char *p = path_in(names[k]);
        if (gz) {
            gzFile f = gzopen(p, "wb");
            cr_assert_not_null(f);
            cr_assert_eq(gzwrite(f, data[k], (unsigned)sizes[k]), (int)sizes[k]);
            cr_assert_eq(gzclose(f), Z_OK);
        } else {
            tu_write_file(p, data[k], sizes[k]);
        }
        free(p);
    }
    free(img);
    free(lab);
}

Test(cli, idx_directory_plain_and_gz)
{
    write_idx_pair("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 100, 0);
    write_idx_pair("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", 40, 1);
    char *model = path_in("i.bpm");
    tu_run r = RUN("train", "--data", g_dir, "--epochs", "3", "--hidden", "8", "--batch", "10",
                       "--threads", "2", "--test-limit", "30", "--save", model);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.out, "model 36-8-2"), "stdout: %s", r.out);
    cr_assert_not_null(strstr(r.out, "100 training samples, 30 test"), "stdout: %s", r.out);
    tu_run_free(&r);
    r = RUN("eval", model, "--data", g_dir, "--json");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(json_number(r.out, "n"), 40.0);
    cr_assert(json_number(r.out, "accuracy") > 0.9, "eval: %s", r.out);
    tu_run_free(&r);
    free(model);
}

/* Each bad command line: exit 2, the first stderr line names the flag, then the help hint. */
static void expect_usage_error(const char *flag, const char *const *args)
{
    tu_run r = run_argv(args);
    cr_assert_eq(r.status, 2, "%s: exit %d, stderr: %s", flag, r.status, r.err);
    cr_assert_eq(count_lines(r.err), 2, "%s: stderr: %s", flag, r.err);
    char *nl = strchr(r.err, '\n');
    *nl = '\0';
    cr_assert_not_null(strstr(r.err, flag), "first line does not mention %s: %s", flag, r.err);
    cr_assert_eq(strncmp(r.err, "bprop ", 6), 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(nl + 1, "--help"), "no help hint: %s", nl + 1);
    cr_assert_eq(r.out[0], '\0', "%s: stdout not empty: %s", flag, r.out);
    tu_run_free(&r);
}

#define EXPECT_USAGE(flag, ...) expect_usage_error(flag, (const char *const[]){__VA_ARGS__, NULL})

Test(cli, bad_command_lines_exit_2)
{
    EXPECT_USAGE("--lr", "train", "--lr", "-1");
    EXPECT_USAGE("--lr", "train", "--lr", "abc");
    EXPECT_USAGE("--lr", "train", "--lr", "nan");
    EXPECT_USAGE("--lr", "train", "--lr", "");
    EXPECT_USAGE("--lr", "train", "--lr=0");
    EXPECT_USAGE("--lr", "train", "--lr");
    EXPECT_USAGE("--batch", "train", "--batch", "0");
    EXPECT_USAGE("--batch", "train", "--batch", "-5");
    EXPECT_USAGE("--epochs", "train", "--epochs", "0");
    EXPECT_USAGE("--epochs", "train", "--epochs", "12abc");
    EXPECT_USAGE("--hidden", "train", "--hidden", "0");
    EXPECT_USAGE("--hidden", "train", "--hidden", "99999999999999999999999");
    EXPECT_USAGE("--momentum", "train", "--momentum", "1");
    EXPECT_USAGE("--val-fraction", "train", "--val-fraction", "1.5");
    EXPECT_USAGE("--threads", "train", "--threads", "-2");
    EXPECT_USAGE("--seed", "train", "--seed", "-1");
    EXPECT_USAGE("--schedule", "train", "--schedule", "linear");
    EXPECT_USAGE("--step-gamma", "train", "--step-gamma", "0");
    EXPECT_USAGE("--weight-decay", "train", "--weight-decay", "-0.1");
    EXPECT_USAGE("--nesterov", "train", "--nesterov", "--momentum", "0");
    EXPECT_USAGE("--quiet", "train", "--quiet=yes");
    EXPECT_USAGE("--bogus", "train", "--bogus");
    EXPECT_USAGE("--bogus", "eval", "m.bpm", "--bogus");
    EXPECT_USAGE("--threads", "eval", "m.bpm", "--threads", "x");
    EXPECT_USAGE("--train", "eval", "m.bpm", "--train", "x.csv");
    EXPECT_USAGE("MODEL", "eval");
    EXPECT_USAGE("--input", "predict", "m.bpm");
    EXPECT_USAGE("--tol", "gradcheck", "--tol", "0");
    EXPECT_USAGE("--method", "gradcheck", "--method", "sideways");
    EXPECT_USAGE("--plant-tensor", "gradcheck", "--plant-tensor", "W3");
    EXPECT_USAGE("--samples", "gradcheck", "--samples", "1e3");
    EXPECT_USAGE("extra", "info", "a.bpm", "extra");
}

Test(cli, help_exits_0)
{
    static const char *const cmds[] = {"train", "eval", "predict", "gradcheck", "info"};
    for (size_t i = 0; i < 5; i++) {
        tu_run r = RUN(cmds[i], "--help");
        cr_assert_eq(r.status, 0, "%s --help: %d", cmds[i], r.status);
        char want[64];
        snprintf(want, sizeof want, "Usage: bprop %s", cmds[i]);
        cr_assert_not_null(strstr(r.out, want), "%s --help: %s", cmds[i], r.out);
        tu_run_free(&r);
    }
    tu_run r = RUN("--help");
    cr_assert_eq(r.status, 0);
    tu_run_free(&r);
    r = RUN("frobnicate");
    cr_assert_eq(r.status, 2);
    tu_run_free(&r);
}

Test(cli, missing_and_corrupt_files_exit_1)
{
    char *missing = path_in("no-such.csv"), *model = path_in("bad.bpm"), *dir = path_in("no-such-dir");
    tu_run r = RUN("train", "--train", missing, "--epochs", "1");
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    cr_assert_eq(strncmp(r.err, "bprop: ", 7), 0, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.err, missing), "stderr: %s", r.err);
    tu_run_free(&r);

    r = RUN("eval", "--data", dir, missing);
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.err, missing), "stderr: %s", r.err);
    tu_run_free(&r);

    tu_write_text(model, "this is not a bprop model, just some text of modest length\n");
    tu_run rs[3] = {RUN("info", model), RUN("eval", model, "--test", missing),
                        RUN("predict", model, "--input", missing)};
    for (int i = 0; i < 3; i++) {
        cr_assert_eq(rs[i].status, 1, "run %d: exit %d, stderr: %s", i, rs[i].status, rs[i].err);
        cr_assert_not_null(strstr(rs[i].err, model), "run %d: stderr: %s", i, rs[i].err);
        cr_assert_eq(count_lines(rs[i].err), 1, "run %d: stderr: %s", i, rs[i].err);
        tu_run_free(&rs[i]);
    }
    r = RUN("train", "--data", dir);
    cr_assert_eq(r.status, 1);
    cr_assert_not_null(strstr(r.err, dir), "stderr: %s", r.err);
    tu_run_free(&r);
    free(missing);
    free(model);
    free(dir);
}

Test(cli, failed_training_keeps_the_old_model)
{
    char *model = train_small_model("m.bpm"), *backup = path_in("backup.bpm"), *train = path_in("train.csv"),
         *bad = path_in("bad.csv");
    copy_file(model, backup);

    /* Divergence: the error is printed, nothing is saved. */
    tu_run r = RUN("train", "--train", train, "--lr", "1e30", "--epochs", "2", "--hidden", "8",
                       "--threads", "2", "--save", model);
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    cr_assert_eq(strncmp(r.err, "bprop: ", 7), 0, "stderr: %s", r.err);
    cr_assert(same_file(model, backup), "diverged run replaced the model");
    tu_run_free(&r);

    /* Bad data: line 3 has a missing field. */
    tu_write_text(bad, "0,1,2,3,4\n1,2,3,4,5\n2,3,4,5\n");
    r = RUN("train", "--train", bad, "--hidden", "8", "--save", model);
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    cr_assert_not_null(strstr(r.err, bad), "stderr: %s", r.err);
    cr_assert(same_file(model, backup), "failed run replaced the model");
    tu_run_free(&r);

    /* A damaged copy (one byte flipped in the middle) is refused with its path. */
    size_t n;
    char *bytes = tu_read_file(backup, &n);
    bytes[n / 2] ^= 0x5a;
    tu_write_file(model, bytes, n);
    free(bytes);
    r = RUN("info", model);
    cr_assert_eq(r.status, 1, "damaged model accepted: %s", r.out);
    cr_assert_not_null(strstr(r.err, model), "stderr: %s", r.err);
    tu_run_free(&r);
    free(model);
    free(backup);
    free(train);
    free(bad);
}

Test(cli, gradcheck_pass_and_planted_failure)
{
    tu_run r = RUN("gradcheck", "--generated", "--inputs", "12", "--classes", "3", "--hidden", "8",
                       "--batch", "6", "--samples", "0", "--threads", "2");
    cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert_not_null(strstr(r.out, "PASS"), "stdout: %s", r.out);
    cr_assert_not_null(strstr(r.out, "W1"));
    cr_assert_not_null(strstr(r.out, "b2"));
    tu_run_free(&r);

    r = RUN("gradcheck", "--generated", "--inputs", "12", "--classes", "3", "--hidden", "8", "--batch", "6",
            "--samples", "0", "--threads", "2", "--plant", "5", "--plant-tensor", "W2", "--plant-delta", "0.01");
    cr_assert_eq(r.status, 3, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert_not_null(strstr(r.out, "FAIL"), "stdout: %s", r.out);
    /* The planted entry is the worst of W2: index 5 is row 1, col 2 of the (8, 3) matrix. */
    cr_assert_not_null(strstr(r.out, "[5] (row 1, col 2)"), "stdout: %s", r.out);
    tu_run_free(&r);

    r = RUN("gradcheck", "--generated", "--inputs", "12", "--hidden", "8", "--plant", "96");
    cr_assert_eq(r.status, 2, "index outside W1 (12 x 8 = 96 entries): %s", r.err);
    cr_assert_not_null(strstr(r.err, "--plant"));
    tu_run_free(&r);
}

Test(cli, gradcheck_saved_model_on_csv)
{
    char *model = train_small_model("m.bpm"), *train = path_in("train.csv");
    tu_run r = RUN("gradcheck", "--model", model, "--train", train, "--batch", "10", "--samples", "0",
                       "--threads", "2");
    cr_assert_eq(r.status, 0, "stdout: %s\nstderr: %s", r.out, r.err);
    cr_assert_not_null(strstr(r.out, "the first 10 samples of"), "stdout: %s", r.out);
    tu_run_free(&r);
    free(model);
    free(train);
}

/* The text after prefix in s, up to the end of its line, as a new string; fails when absent. */
static char *line_after(const char *s, const char *prefix)
{
    const char *p = strstr(s, prefix);
    cr_assert_not_null(p, "'%s' missing in: %s", prefix, s);
    p += strlen(prefix);
    return strndup(p, strcspn(p, "\n"));
}

Test(cli, failed_run_leaves_metrics_untouched)
{
    write_blob_files();
    char *train = path_in("train.csv"), *metrics = path_in("m.jsonl");
    tu_write_text(metrics, "old log\n");
    /* A --save that fails only after training: the name itself is valid, but the temporary file
     * the library writes beside it (name + ".tmp.XXXXXX") is longer than NAME_MAX (255). */
    char name[251];
    memset(name, 'm', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    char *model = path_in(name);
    tu_run r = RUN("train", "--train", train, "--epochs", "2", "--hidden", "8", "--batch", "32",
                       "--threads", "2", "--save", model, "--metrics", metrics, "--quiet");
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    char *old = tu_read_file(metrics, NULL);
    cr_assert_str_eq(old, "old log\n", "a failed run replaced the metrics");
    free(old);
    /* The epochs that ran are kept in the temporary file, whose name is printed. */
    char *kept = line_after(r.err, "bprop: partial metrics kept in ");
    cr_assert_eq(strncmp(kept, metrics, strlen(metrics)), 0, "kept: %s", kept);
    cr_assert_eq(strncmp(kept + strlen(metrics), ".tmp.", 5), 0, "kept: %s", kept);
    char *partial = tu_read_file(kept, NULL);
    cr_assert_eq(count_lines(partial), 2, "partial: %s", partial);
    cr_assert_eq(json_number(strchr(partial, '\n') + 1, "epoch"), 2.0);
    free(partial);
    tu_run_free(&r);

    /* Divergence: the old file stays as it was. */
    r = RUN("train", "--train", train, "--lr", "1e30", "--epochs", "2", "--hidden", "8", "--threads", "2",
            "--metrics", metrics);
    cr_assert_eq(r.status, 1, "stderr: %s", r.err);
    old = tu_read_file(metrics, NULL);
    cr_assert_str_eq(old, "old log\n", "a diverged run replaced the metrics");
    free(old);
    tu_run_free(&r);
    free(kept);
    free(train);
    free(metrics);
    free(model);
}

Test(cli, output_targets_checked_before_training)
{
    write_blob_files();
    char *train = path_in("train.csv"), *sub = path_in("sub"), *nodir = path_in("no-such-dir/m.bpm");
    cr_assert_eq(mkdir(sub, 0755), 0);
    static const char *const flags[] = {"--save", "--metrics"};
    for (int i = 0; i < 2; i++) {
        /* Nothing on stdout: the run stopped before it printed its plan. */
        tu_run r = RUN("train", "--train", train, "--epochs", "1", "--hidden", "4", flags[i], sub);
        cr_assert_eq(r.status, 1, "%s: stderr: %s", flags[i], r.err);
        cr_assert_eq(r.out[0], '\0', "%s: trained before failing: %s", flags[i], r.out);
        cr_assert_eq(count_lines(r.err), 1, "%s: stderr: %s", flags[i], r.err);
        cr_assert_not_null(strstr(r.err, flags[i]), "stderr: %s", r.err);
        cr_assert_not_null(strstr(r.err, "is a directory"), "stderr: %s", r.err);
        tu_run_free(&r);

        r = RUN("train", "--train", train, "--epochs", "1", "--hidden", "4", flags[i], nodir);
        cr_assert_eq(r.status, 1, "%s: stderr: %s", flags[i], r.err);
        cr_assert_eq(r.out[0], '\0', "%s: trained before failing: %s", flags[i], r.out);
        cr_assert_not_null(strstr(r.err, nodir), "stderr: %s", r.err);
        tu_run_free(&r);
    }
    free(train);
    free(sub);
    free(nodir);
}

Test(cli, stdout_write_errors_exit_1)
{
    if (access("/dev/full", W_OK) != 0)
        cr_skip_test("no writable /dev/full");
    char *model = train_small_model("m.bpm"), *test = path_in("test.csv"), *train = path_in("train.csv");
    tu_run rs[] = {
        RUN_TO("/dev/full", "info", model),
        RUN_TO("/dev/full", "info", model, "--json"),
        RUN_TO("/dev/full", "eval", model, "--test", test),
        RUN_TO("/dev/full", "eval", model, "--test", test, "--json"),
        RUN_TO("/dev/full", "train", "--train", train, "--epochs", "1", "--hidden", "4", "--threads", "2"),
        RUN_TO("/dev/full", "train", "--help"),
        RUN_TO("/dev/full", "--version"),
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        cr_assert_eq(rs[i].status, 1, "run %zu: exit %d, stderr: %s", i, rs[i].status, rs[i].err);
        cr_assert_eq(count_lines(rs[i].err), 1, "run %zu: stderr: %s", i, rs[i].err);
        cr_assert_not_null(strstr(rs[i].err, "bprop: cannot write to standard output: "),
                           "run %zu: stderr: %s", i, rs[i].err);
        tu_run_free(&rs[i]);
    }
    free(model);
    free(test);
    free(train);
}

Test(cli, atomic_output_unique_temp_and_mode)
{
    char *model = train_small_model("m.bpm"), *in = path_in("in.csv"), *out = path_in("out.csv"),
         *mine = path_in("out.csv.tmp"), *fresh = path_in("new.csv");
    tu_write_text(mine, "a file of the user's own\n");
    tu_write_text(out, "old\n");
    cr_assert_eq(chmod(out, 0640), 0);
    tu_run r = RUN("predict", model, "--input", in, "--output", out);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    char *text = tu_read_file(mine, NULL);
    cr_assert_str_eq(text, "a file of the user's own\n", "predict --output clobbered out.csv.tmp");
    free(text);
    text = tu_read_file(out, NULL);
    check_predictions(text, 10);
    free(text);
    cr_assert_eq(file_mode(out), 0640, "replaced file has mode %o", file_mode(out));
    cr_assert_eq(count_entries("out.csv.tmp."), 0, "temporary file left behind");

    /* A new file gets the usual 0666 less the umask (inherited by the program). */
    mode_t mask = umask(0);
    umask(mask);
    r = RUN("predict", model, "--input", in, "--output", fresh);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    cr_assert_eq(file_mode(fresh), 0666u & ~(unsigned)mask, "new file has mode %o", file_mode(fresh));
    free(model);
    free(in);
    free(out);
    free(mine);
    free(fresh);
}

Test(cli, labelled_is_ignored_for_idx_input)
{
    write_idx_pair("img-idx3-ubyte.gz", "lab-idx1-ubyte.gz", 40, 1);
    char *img = path_in("img-idx3-ubyte.gz"), *lab = path_in("lab-idx1-ubyte.gz"), *model = path_in("i.bpm");
    tu_run r = RUN("train", "--train", img, "--train-labels", lab, "--epochs", "1", "--hidden", "4",
                       "--batch", "10", "--threads", "2", "--save", model, "--quiet");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    r = RUN("predict", model, "--input", img);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    char *plain = strdup(r.out);
    tu_run_free(&r);
    r = RUN("predict", model, "--input", img, "--labelled");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(strncmp(r.out, "index,predicted,p0,p1\n", 22), 0, "stdout: %.60s", r.out);
    cr_assert_eq(count_lines(r.out), 41);
    cr_assert_str_eq(r.out, plain, "--labelled changed the predictions of IDX input");
    tu_run_free(&r);
    free(plain);
    free(img);
    free(lab);
    free(model);
}

Test(cli, labels_options_need_idx_files)
{
    char *model = train_small_model("m.bpm"), *train = path_in("train.csv"), *test = path_in("test.csv");
    EXPECT_USAGE("--train-labels", "train", "--train", train, "--train-labels", train);
    EXPECT_USAGE("--train-labels", "train", "--train-labels", train);
    EXPECT_USAGE("--train-labels", "train", "--data", g_dir, "--train-labels", train);
    EXPECT_USAGE("--test-labels", "train", "--train", train, "--test", test, "--test-labels", test);
    EXPECT_USAGE("--test-labels", "eval", model, "--test", test, "--test-labels", test);
    EXPECT_USAGE("--test-labels", "eval", model, "--data", g_dir, "--test-labels", test);
    EXPECT_USAGE("--train-labels", "gradcheck", "--train", train, "--train-labels", train);
    free(model);
    free(train);
    free(test);
}

Test(cli, corrupt_idx_is_neither_idx_nor_csv)
{
    write_idx_pair("img-idx3-ubyte", "lab-idx1-ubyte", 4, 0);
    /* IDX images whose magic lost its leading zero bytes. */
    unsigned char bytes[16 + 4 * 36] = {0};
    put_be32(bytes, 0x12345678);
    put_be32(bytes + 4, 4);
    put_be32(bytes + 8, 6);
    put_be32(bytes + 12, 6);
    char *bad = path_in("bad-idx3-ubyte"), *lab = path_in("lab-idx1-ubyte");
    char *model = train_small_model("m.bpm");
    tu_write_file(bad, bytes, sizeof bytes);
    tu_run rs[] = {
        RUN("train", "--train", bad, "--epochs", "1"),
        RUN("train", "--train", bad, "--train-labels", lab, "--epochs", "1"),
        RUN("predict", model, "--input", bad),
    };
    for (size_t i = 0; i < sizeof rs / sizeof rs[0]; i++) {
        cr_assert_eq(rs[i].status, 1, "run %zu: exit %d, stderr: %s", i, rs[i].status, rs[i].err);
        cr_assert_eq(count_lines(rs[i].err), 1, "run %zu: stderr: %s", i, rs[i].err);
        static const char *const want[] = {"neither IDX", "0x12345678", "nor CSV", "NUL byte"};
        for (size_t k = 0; k < 4; k++)
            cr_assert_not_null(strstr(rs[i].err, want[k]), "run %zu: no '%s' in: %s", i, want[k], rs[i].err);
        cr_assert_not_null(strstr(rs[i].err, bad), "run %zu: stderr: %s", i, rs[i].err);
        tu_run_free(&rs[i]);
    }
    free(bad);
    free(lab);
    free(model);
}
