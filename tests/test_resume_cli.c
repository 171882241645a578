/* test_resume_cli.c: `bprop train` checkpoints end to end: SIGTERM/SIGINT stop a running
 * program, --resume continues it to the parameters of an uninterrupted run, refused options,
 * changed data, `bprop info` on a checkpoint, and --init. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Byte offset of the parameters in a model file (tests/test_model_io.c: OFF_BODY). */
enum { MODEL_BODY = 456 };

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(resume_cli, .init = scratch_create, .fini = scratch_remove, .timeout = 240);

static char *path_in(const char *name) { return tu_path(g_dir, name); }

static int exists(const char *name)
{
    char *p = path_in(name);
    int yes = access(p, F_OK) == 0;
    free(p);
    return yes;
}

/* ---- running the program (in the scratch directory, so relative names land there) -------- */

/* Start the CLI with args (NULL-terminated) in the scratch directory, its output going to files
 * there: one run at a time in each test process. */
static pid_t spawn(const char *const *args)
{
    const char *argv[64] = {BPROP_CLI_PATH};
    size_t n = 1;
    for (; args[n - 1]; n++) {
        cr_assert_lt(n, 63);
        argv[n] = args[n - 1];
    }
    argv[n] = NULL;
    char *out = path_in("stdout.txt"), *err = path_in("stderr.txt");
    const pid_t pid = tu_spawn(argv, &(tu_spawn_opts){.out = out, .err = err, .dir = g_dir,
                                                      .omp_threads = "2"});
    free(out);
    free(err);
    return pid;
}

static tu_run finish(pid_t pid)
{
    char *out = path_in("stdout.txt"), *err = path_in("stderr.txt");
    tu_run r = tu_finish(pid, &(tu_spawn_opts){.out = out, .err = err});
    free(out);
    free(err);
    return r;
}

static tu_run run_argv(const char *const *args) { return finish(spawn(args)); }

#define RUN(...) run_argv((const char *const[]){__VA_ARGS__, NULL})
#define SPAWN(...) spawn((const char *const[]){__VA_ARGS__, NULL})

static void expect_ok(tu_run *r, const char *what)
{
    cr_assert_eq(r->status, 0, "%s: exit %d\nstdout:\n%s\nstderr:\n%s", what, r->status, r->out, r->err);
}

/* Exit status and the message that goes with it. */
static void expect_fail(tu_run *r, int status, const char *text)
{
    cr_assert_eq(r->status, status, "exit %d (want %d)\nstderr:\n%s", r->status, status, r->err);
    cr_assert(strstr(r->err, text), "stderr lacks '%s':\n%s", text, r->err);
}

/* ---- data and model comparison ------------------------------------------------------------ */

static void write_csv(const char *name, const bprop_dataset *d)
{
    char *p = path_in(name);
    tu_write_csv(p, d, d->n, 1);
    free(p);
}

enum { DIM = 48, CLASSES = 4 };

/* Blobs with every fifth label moved to the next class: without that noise the clusters are
 * learnt perfectly, gradients become exactly zero, and runs that should differ (another thread
 * count, a lost step) could end bitwise equal by accident. */
static bprop_dataset *noisy_blobs(size_t n, size_t classes, uint64_t seed)
{
    bprop_dataset *d = tu_blobs(n, DIM, classes, seed);
    for (size_t i = 0; i < n; i += 5)
        d->y[i] = (int32_t)((size_t)(d->y[i] + 1) % classes);
    return d;
}

/* train.csv (n samples) and test.csv (200), DIM features, CLASSES classes. */
static void write_data(size_t n)
{
    bprop_dataset *train = noisy_blobs(n, CLASSES, 21), *test = noisy_blobs(200, CLASSES, 22);
    write_csv("train.csv", train);
    write_csv("test.csv", test);
    bprop_dataset_free(train);
    bprop_dataset_free(test);
}

/* The parameter bytes of two model files are identical (the header holds timestamps). */
static void expect_same_params(const char *a, const char *b)
{
    char *pa = path_in(a), *pb = path_in(b);
    size_t na, nb;
    char *x = tu_read_file(pa, &na), *y = tu_read_file(pb, &nb);
    cr_assert_eq(na, nb, "%s and %s differ in length", a, b);
    cr_assert_gt(na, MODEL_BODY + 4);
    cr_assert_eq(memcmp(x + MODEL_BODY, y + MODEL_BODY, na - MODEL_BODY - 4), 0,
                 "%s and %s hold different parameters", a, b);
    free(x);
    free(y);
    free(pa);
    free(pb);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* Names in the scratch directory containing ".tmp." (temporary files left behind). */
static int temp_files(void)
{
    DIR *d = opendir(g_dir);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* Wait until the running program has written name (its first checkpoint). */
static void wait_for(pid_t pid, const char *name)
{
    for (int i = 0; i < 60000 && !exists(name); i++) {
        int ws;
        cr_assert_eq(waitpid(pid, &ws, WNOHANG), 0, "bprop ended before writing %s", name);
        sleep_ms(1);
    }
    cr_assert(exists(name), "%s never appeared", name);
}

#define DATA_OPTS "--train", "train.csv", "--test", "test.csv", "--batch", "16", "--reproducible"
#define RUN_OPTS "train", DATA_OPTS, "--hidden", "32"

/* Stop a run with sig once its first checkpoint exists, resume it, compare with an
 * uninterrupted run. */
static void check_signal_stop(int sig, int with_checkpoint)
{
    write_data(2000);
    tu_run ref = RUN(RUN_OPTS, "--epochs", "40", "--save", "ref.bpm", "--metrics", "ref.jsonl", "--quiet");
    expect_ok(&ref, "uninterrupted run");
    const char *ck = with_checkpoint ? "run.ckpt" : "run.bpm.ckpt";
    pid_t pid = with_checkpoint
                    ? SPAWN(RUN_OPTS, "--epochs", "40", "--save", "run.bpm", "--checkpoint", "run.ckpt",
                            "--checkpoint-every", "100", "--metrics", "run.jsonl")
                    : SPAWN(RUN_OPTS, "--epochs", "40", "--save", "run.bpm", "--metrics", "run.jsonl");
    /* Without --checkpoint nothing is written before the signal: wait for the first epoch. */
    wait_for(pid, with_checkpoint ? "run.ckpt" : "stdout.txt");
    if (!with_checkpoint)
        for (int i = 0; i < 60000; i++) {
            char *out = path_in("stdout.txt");
            char *text = tu_read_file(out, NULL);
            int started = strstr(text, "\n    1 ") != NULL;
            free(text);
            free(out);
            if (started)
                break;
            sleep_ms(1);
        }
    cr_assert_eq(kill(pid, sig), 0);
    tu_run stop = finish(pid);
    expect_fail(&stop, 128 + sig, sig == SIGINT ? "stopped by SIGINT" : "stopped by SIGTERM");
    cr_assert(strstr(stop.err, ck), "the checkpoint's name is not printed:\n%s", stop.err);
    cr_assert(exists(ck));
    cr_assert_not(exists("run.bpm"), "a stopped run saved its model");
    cr_assert_not(exists("run.jsonl"), "a stopped run published its metrics");

    tu_run info = RUN("info", ck);
    expect_ok(&info, "info");
    cr_assert(strstr(info.out, "of 40 epochs done"), "%s", info.out);

    /* The resumed run takes its settings from the checkpoint; only outputs and threads vary. */
    tu_run res = RUN("train", "--resume", ck, "--threads", "1", "--parallel", "hidden", "--metrics", "run.jsonl");
    expect_ok(&res, "resumed run");
    cr_assert(strstr(res.out, "resuming"), "%s", res.out);
    expect_same_params("ref.bpm", "run.bpm");
    char *mp = path_in("run.jsonl");
    char *metrics = tu_read_file(mp, NULL);
    cr_assert_eq(count_lines(metrics), 40, "the resumed run's metrics lack epochs:\n%s", metrics);
    cr_assert(strncmp(metrics, "{\"epoch\":1,", 11) == 0, "%s", metrics);
    free(metrics);
    free(mp);
    tu_run_free(&ref);
    tu_run_free(&stop);
    tu_run_free(&info);
    tu_run_free(&res);
}

Test(resume_cli, sigterm_mid_run_then_resume_on_one_thread_is_bitwise) { check_signal_stop(SIGTERM, 1); }
Test(resume_cli, sigint_without_checkpoint_writes_beside_save) { check_signal_stop(SIGINT, 0); }

/* A second signal exits at once; whatever is on disk is whole: no temporary files, and the
 * checkpoint (if one was written) loads. */
Test(resume_cli, second_signal_aborts_and_leaves_no_temporary_file)
{
    write_data(2000);
    pid_t pid = SPAWN(RUN_OPTS, "--hidden", "256", "--epochs", "50", "--checkpoint", "c.ckpt",
                      "--checkpoint-every", "1", "--quiet");
    wait_for(pid, "c.ckpt");
    cr_assert_eq(kill(pid, SIGTERM), 0);
    cr_assert_eq(kill(pid, SIGTERM), 0);
    tu_run r = finish(pid);
    cr_assert_eq(r.status, 143, "exit %d\n%s", r.status, r.err);
    cr_assert_eq(temp_files(), 0, "a temporary file was left behind");
    char *p = path_in("c.ckpt");
    bprop_checkpoint *ck = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_load(p, &ck, &err), BPROP_OK, "%s", err.message);
    bprop_checkpoint_free(ck);
    free(p);
    tu_run_free(&r);
}

/* An epoch-boundary resume that extends a finished run: with a constant schedule, 2 + 1 epochs
 * are bitwise 3 epochs. */
Test(resume_cli, extending_a_finished_run)
{
    write_data(600);
    tu_run a = RUN(RUN_OPTS, "--schedule", "constant", "--epochs", "3", "--save", "a.bpm", "--quiet");
    expect_ok(&a, "3 epochs");
    tu_run b = RUN(RUN_OPTS, "--schedule", "constant", "--epochs", "2", "--checkpoint", "b.ckpt", "--quiet");
    expect_ok(&b, "2 epochs");
    tu_run info = RUN("info", "b.ckpt");
    expect_ok(&info, "info");
    cr_assert(strstr(info.out, "2 of 2 epochs done (finished"), "%s", info.out);
    tu_run c = RUN("train", "--resume", "b.ckpt", "--epochs", "3", "--save", "b.bpm",
                       "--metrics", "b.jsonl", "--threads", "1");
    expect_ok(&c, "extended");
    expect_same_params("a.bpm", "b.bpm");
    char *mp = path_in("b.jsonl");
    char *metrics = tu_read_file(mp, NULL);
    cr_assert_eq(count_lines(metrics), 3, "%s", metrics);
    free(metrics);
    free(mp);
    tu_run json = RUN("info", "b.ckpt", "--json");
    expect_ok(&json, "info --json");
    cr_assert(strstr(json.out, "\"epochs_done\":3"), "%s", json.out);
    cr_assert(strstr(json.out, "\"finished\":true"), "%s", json.out);
    cr_assert(strstr(json.out, "\"train\":{\"n\":600,\"dim\":48,\"classes\":4"), "%s", json.out);
    cr_assert(strstr(json.out, "\"hidden\":\"32\""), "%s", json.out);
    cr_assert(strstr(json.out, "\"epochs\":[{\"epoch\":1,"), "%s", json.out);
    tu_run_free(&a);
    tu_run_free(&b);
    tu_run_free(&info);
    tu_run_free(&c);
    tu_run_free(&json);
}

Test(resume_cli, options_that_would_change_the_run_are_refused)
{
    write_data(300);
    tu_run a = RUN(RUN_OPTS, "--epochs", "2", "--lr", "0.05", "--checkpoint", "c.ckpt", "--quiet");
    expect_ok(&a, "run");
    struct {
        const char *opt, *value, *text;
    } cases[] = {
        {"--lr", "0.1", "--lr: 0.100000001 differs from the checkpoint's 0.0500000007"},
        {"--hidden", "64", "--hidden: 64 differs from the checkpoint's 32"},
        {"--batch", "8", "--batch: 8 differs"},
        {"--seed", "7", "--seed: 7 differs"},
        {"--schedule", "step", "--schedule: step differs from the checkpoint's cosine"},
        {"--train-limit", "100", "--train-limit: 100 differs from the checkpoint's 0"},
        {"--val-fraction", "0.1", "--val-fraction: 0.10000000000000001 differs"},
        {"--epochs", "1", "--epochs: 1 is fewer than the 2 epochs"},
        {"--init", "x.bpm", "--init: cannot be combined with --resume"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tu_run r = RUN("train", "--resume", "c.ckpt", cases[i].opt, cases[i].value);
        expect_fail(&r, 2, cases[i].text);
        cr_assert(strstr(r.err, "a resumed run keeps the settings its checkpoint recorded") ||
                  strstr(r.err, "--init"), "%s", r.err);
        tu_run_free(&r);
    }
    const char *flags[] = {"--no-bias", "--standardize", "--no-shuffle", "--no-nesterov", "--no-reproducible"};
    for (size_t i = 0; i < 5; i++) {
        tu_run r = RUN("train", "--resume", "c.ckpt", flags[i]);
        expect_fail(&r, 2, flags[i]);
        cr_assert(strstr(r.err, "differs from the checkpoint's"), "%s", r.err);
        tu_run_free(&r);
    }
    /* Repeating the recorded settings is not a change. */
    tu_run same = RUN("train", "--resume", "c.ckpt", DATA_OPTS, "--hidden", "32", "--lr", "0.05", "--quiet");
    expect_ok(&same, "repeating the recorded settings");
    tu_run_free(&same);
    tu_run_free(&a);
}

Test(resume_cli, changed_data_is_refused)
{
    write_data(300);
    tu_run a = RUN(RUN_OPTS, "--epochs", "2", "--checkpoint", "c.ckpt", "--quiet");
    expect_ok(&a, "run");
    bprop_dataset *train = noisy_blobs(300, CLASSES, 21);
    train->x[5] += 0.5f; /* one value of one sample */
    write_csv("train.csv", train);
    tu_run r = RUN("train", "--resume", "c.ckpt", "--epochs", "3");
    expect_fail(&r, 1, "the training data changed since the checkpoint");
    tu_run_free(&r);
    train->n = 299;
    write_csv("train.csv", train);
    r = RUN("train", "--resume", "c.ckpt", "--epochs", "3");
    expect_fail(&r, 1, "now 299 samples");
    tu_run_free(&r);
    bprop_dataset_free(train);
    tu_run_free(&a);
}

Test(resume_cli, bad_checkpoints_are_refused)
{
    write_data(300);
    tu_run a = RUN(RUN_OPTS, "--epochs", "1", "--checkpoint", "c.ckpt", "--save", "m.bpm", "--quiet");
    expect_ok(&a, "run");
    tu_run r = RUN("train", "--resume", "m.bpm");
    expect_fail(&r, 1, "a model file, not a checkpoint (start from its weights with --init)");
    tu_run_free(&r);
    r = RUN("train", "--init", "c.ckpt");
    expect_fail(&r, 2, "a checkpoint, not a model (continue its run with --resume)");
    tu_run_free(&r);
    char *p = path_in("c.ckpt");
    size_t n;
    char *bytes = tu_read_file(p, &n);
    bytes[n / 2] ^= 1;
    tu_write_file(p, bytes, n);
    r = RUN("train", "--resume", "c.ckpt");
    expect_fail(&r, 1, "checksum mismatch");
    tu_run_free(&r);
    r = RUN("info", "c.ckpt");
    expect_fail(&r, 1, "checksum mismatch");
    tu_run_free(&r);
    r = RUN(RUN_OPTS, "--checkpoint-every", "5");
    expect_fail(&r, 2, "--checkpoint-every: needs --checkpoint FILE");
    tu_run_free(&r);
    r = RUN(RUN_OPTS, "--checkpoint", "m.bpm", "--save", "m.bpm");
    expect_fail(&r, 2, "also named by --save");
    tu_run_free(&r);
    free(bytes);
    free(p);
    tu_run_free(&a);
}

Test(resume_cli, init_starts_from_a_saved_model)
{
    write_data(300);
    tu_run a = RUN("train", DATA_OPTS, "--hidden", "16", "--epochs", "2", "--standardize", "--save", "a.bpm", "--quiet");
    expect_ok(&a, "base model");
    /* A learning rate too small to move any weight: the result is the --init model itself, so
     * the weights came from it (not from a fresh initialisation). */
    tu_run b = RUN("train", DATA_OPTS, "--init", "a.bpm", "--epochs", "1", "--lr", "1e-30", "--momentum", "0",
                       "--save", "b.bpm", "--quiet");
    expect_ok(&b, "--init run");
    expect_same_params("a.bpm", "b.bpm");
    tu_run info = RUN("info", "b.bpm");
    expect_ok(&info, "info");
    cr_assert(strstr(info.out, "-16-4"), "%s", info.out);
    cr_assert(strstr(info.out, "standardised:  yes"), "%s", info.out);
    cr_assert(strstr(info.out, "3 epochs"), "the model's history continues:\n%s", info.out);
    struct {
        const char *opt, *value, *text;
        int status;
    } cases[] = {
        {"--hidden", "8", "--hidden 8: the --init model a.bpm has 16 hidden units", 2},
        {"--classes", "5", "--classes 5: the --init model a.bpm has 4 classes", 2},
        {"--init", "missing.bpm", "missing.bpm: cannot open", 1},
    };
    for (size_t i = 0; i < 3; i++) {
        tu_run r = RUN("train", DATA_OPTS, "--init", "a.bpm", cases[i].opt, cases[i].value);
        expect_fail(&r, cases[i].status, cases[i].text);
        tu_run_free(&r);
    }
    tu_run nb = RUN("train", DATA_OPTS, "--no-bias", "--hidden", "16", "--epochs", "1", "--save", "nb.bpm", "--quiet");
    expect_ok(&nb, "no-bias model");
    tu_run r = RUN("train", DATA_OPTS, "--init", "a.bpm", "--no-bias");
    expect_fail(&r, 2, "--no-bias: the --init model a.bpm has biases");
    tu_run_free(&r);
    r = RUN("train", DATA_OPTS, "--init", "nb.bpm", "--standardize");
    expect_fail(&r, 2, "--standardize: the --init model nb.bpm has no standardisation");
    tu_run_free(&r);
    /* Data that does not fit the model. */
    bprop_dataset *narrow = tu_blobs(100, DIM - 8, CLASSES, 3), *wide = tu_blobs(100, DIM, CLASSES + 2, 3);
    write_csv("narrow.csv", narrow);
    write_csv("wide.csv", wide);
    r = RUN("train", "--train", "narrow.csv", "--init", "a.bpm");
    expect_fail(&r, 1, "--init a.bpm: the model takes 48 features, narrow.csv has 40");
    tu_run_free(&r);
    r = RUN("train", "--train", "wide.csv", "--init", "a.bpm");
    expect_fail(&r, 1, "--init a.bpm: the model has 4 classes, wide.csv has label 4");
    tu_run_free(&r);
    bprop_dataset_free(narrow);
    bprop_dataset_free(wide);
    tu_run_free(&a);
    tu_run_free(&b);
    tu_run_free(&info);
    tu_run_free(&nb);
}

/* tests/data/ckpt-v1 holds a checkpoint written by the build before the option table and the one
 * data hash (a finished 1-epoch run, --schedule constant, BPROP_ISA=generic) and its data. It must
 * still resume: to its own parameters when nothing is left to do, and, extended, bitwise to where an
 * uninterrupted run of this build ends. Generic kernels, so that neither the CPU nor the
 * optimisation level of the build moves a bit (the other sets contract into FMA differently). */
Test(resume_cli, a_checkpoint_written_by_an_earlier_build_resumes)
{
    static const char *const files[] = {"run.ckpt", "train.csv", "test.csv"};
    for (size_t i = 0; i < 3; i++) {
        char *src = tu_path(BPROP_TEST_DATA_DIR "/ckpt-v1", files[i]), *dst = path_in(files[i]);
        size_t n;
        char *bytes = tu_read_file(src, &n);
        tu_write_file(dst, bytes, n);
        free(bytes);
        free(src);
        free(dst);
    }
    cr_assert_eq(setenv("BPROP_ISA", "generic", 1), 0);
    tu_run info = RUN("info", "run.ckpt");
    expect_ok(&info, "info");
    cr_assert(strstr(info.out, "options:       hidden=5, standardize=1, val_fraction=0.20000000000000001, "
                     "train=train.csv, test=test.csv, train_limit=30\n"), "%s", info.out);
    char *ck_path = path_in("run.ckpt"), *same_path = path_in("same.bpm");
    bprop_checkpoint *ck = NULL;
    cr_assert_eq(bprop_checkpoint_load(ck_path, &ck, NULL), BPROP_OK);
    tu_run same = RUN("train", "--resume", "run.ckpt", "--epochs", "1", "--checkpoint", "same.ckpt",
                      "--save", "same.bpm", "--quiet");
    expect_ok(&same, "resume with nothing left to do");
    bprop_model *m = NULL;
    cr_assert_eq(bprop_model_load(same_path, &m, NULL), BPROP_OK);
    cr_assert(tu_same_bits(m->params, ck->model->params, ck->model->layout.total));
    tu_run resumed = RUN("train", "--resume", "run.ckpt", "--epochs", "2", "--save", "resumed.bpm",
                         "--quiet");
    expect_ok(&resumed, "resume");
    tu_run fresh = RUN("train", "--train", "train.csv", "--test", "test.csv", "--train-limit", "30",
                       "--val-fraction", "0.2", "--standardize", "--no-bias", "--hidden", "5", "--batch", "8",
                       "--schedule", "constant", "--lr", "0.05", "--seed", "3", "--threads", "1",
                       "--epochs", "2", "--save", "fresh.bpm", "--quiet");
    expect_ok(&fresh, "uninterrupted run");
    expect_same_params("resumed.bpm", "fresh.bpm");
    bprop_model_free(m);
    bprop_checkpoint_free(ck);
    free(ck_path);
    free(same_path);
    tu_run_free(&info);
    tu_run_free(&same);
    tu_run_free(&resumed);
    tu_run_free(&fresh);
}
