/* test_mpi.c: `bprop-mpi` in real multi-process runs (mpirun): models bitwise equal to plain
 * `bprop` for every ranks x threads layout, failures that end every rank with one message, and
 * checkpoints and signals: a run stopped under one layout resumes bitwise under another. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>

#ifndef BPROP_MPI_CLI_PATH

Test(mpi, skipped)
{
    cr_skip_test("built without MPI (BPROP_MPI=OFF, or CMake found no MPI for C): no "
                 "multi-process tests; install openmpi-bin and libopenmpi-dev");
}

#else

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

/* Start of the parameters in a model file (test_model_io.c's OFF_BODY); the last 4 bytes are
 * the CRC, which also covers the header (threads, ranks, times) and so differs between runs. */
#define OFF_BODY 456
#define OFF_RANKS 440
#define OFF_ISA 424

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

/* Oversubscribed ranks on 2 cores are slow; still, no test comes near this. */
TestSuite(mpi, .init = scratch_create, .fini = scratch_remove, .timeout = 240);

static char *path_in(const char *name) { return tu_path(g_dir, name); }

/* ---- running programs ---------------------------------------------------------------------- */

/* Start argv[0] with stdout and stderr going to files in the scratch directory. */
static pid_t start(const char *const *argv)
{
    char *out = path_in("stdout.txt"), *err = path_in("stderr.txt");
    const pid_t pid = tu_spawn(argv, &(tu_spawn_opts){.out = out, .err = err});
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

/* args: the program's arguments after its name (NULL-terminated); ranks 0 runs plain bprop. */
static const char **command(int ranks, const char *const *args)
{
    static const char *argv[96]; /* each test is its own process; one command at a time */
    static char np_buf[16];
    size_t n = 0;
    if (ranks > 0) {
        snprintf(np_buf, sizeof np_buf, "%d", ranks);
        argv[n++] = BPROP_MPIEXEC;
        argv[n++] = "--oversubscribe";
        argv[n++] = "-np";
        argv[n++] = np_buf;
        argv[n++] = BPROP_MPI_CLI_PATH;
    } else {
        argv[n++] = BPROP_CLI_PATH;
    }
    for (size_t i = 0; args[i]; i++) {
        cr_assert_lt(n, 95);
        argv[n++] = args[i];
    }
    argv[n] = NULL;
    return argv;
}

static tu_run run_ranks(int ranks, const char *const *args) { return finish(start(command(ranks, args))); }

#define MPI_RUN(ranks, ...) run_ranks(ranks, (const char *const[]){__VA_ARGS__, NULL})
#define PLAIN_RUN(...) run_ranks(0, (const char *const[]){__VA_ARGS__, NULL})

/* Lines of text that start with prefix. */
static size_t count_prefixed(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
        n += strncmp(p, prefix, len) == 0;
    return n;
}

/* A failure: exit status 1, exactly one "bprop:" line, which contains every given fragment. */
static void expect_one_message(const tu_run *r, const char *const *fragments)
{
    cr_assert_eq(r->status, 1, "exit status %d; stderr:\n%s", r->status, r->err);
    cr_assert_eq(count_prefixed(r->err, "bprop:"), 1, "not one message; stderr:\n%s", r->err);
    for (size_t i = 0; fragments[i]; i++)
        cr_assert_not_null(strstr(r->err, fragments[i]), "'%s' missing; stderr:\n%s", fragments[i],
                           r->err);
}

#define EXPECT_MESSAGE(r, ...) expect_one_message(r, (const char *const[]){__VA_ARGS__, NULL})

static int exists(const char *path) { return access(path, F_OK) == 0; }

static void sleep_ms(long ms) { nanosleep(&(struct timespec){ms / 1000, (ms % 1000) * 1000000L}, NULL); }

static int same_file(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    int same = na == nb && memcmp(x, y, na) == 0;
    free(x);
    free(y);
    return same;
}

/* ---- models -------------------------------------------------------------------------------- */

/* 1 when two saved models hold the same parameter bytes (header and CRC aside). */
static int same_parameters(const char *a, const char *b)
{
    size_t na, nb;
    char *x = tu_read_file(a, &na), *y = tu_read_file(b, &nb);
    cr_assert_gt(na, OFF_BODY + 4, "%s is too short", a);
    int same = na == nb && memcmp(x + OFF_BODY, y + OFF_BODY, na - OFF_BODY - 4) == 0;
    free(x);
    free(y);
    return same;
}

static uint32_t file_u32(const char *path, size_t off)
{
    size_t n;
    unsigned char *b = (unsigned char *)tu_read_file(path, &n);
    cr_assert_gt(n, off + 4);
    uint32_t v = (uint32_t)b[off] | (uint32_t)b[off + 1] << 8 | (uint32_t)b[off + 2] << 16 |
                 (uint32_t)b[off + 3] << 24;
    free(b);
    return v;
}

/* ---- the layouts: ranks x threads against plain bprop --------------------------------------- */

/* One epoch, hidden 64, batch 128, the first 12,000 Fashion-MNIST samples. */
#define FASHION_ARGS "train", "--reproducible", "--hidden", "64", "--batch", "128", "--epochs", "1", \
    "--train-limit", "12000", "--test-limit", "1000", "--quiet"

static void need_fashion(void)
{
    if (!tu_have_fashion())
        cr_skip_test("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)");
}

static char *plain_model(const char *threads)
{
    char name[32];
    snprintf(name, sizeof name, "plain_%s.bpm", threads);
    char *path = path_in(name);
    tu_run r = PLAIN_RUN(FASHION_ARGS, "--threads", threads, "--save", path);
    cr_assert_eq(r.status, 0, "bprop train --threads %s failed:\n%s", threads, r.err);
    tu_run_free(&r);
    return path;
}

static void check_layout(int ranks, const char *threads)
{
    need_fashion();
    char *one = plain_model("1"), *two = plain_model("2"), *dist = path_in("dist.bpm");
    cr_assert(same_parameters(one, two), "plain bprop: 1 and 2 threads differ");
    tu_run r = MPI_RUN(ranks, FASHION_ARGS, "--threads", threads, "--save", dist);
    cr_assert_eq(r.status, 0, "%d ranks x %s threads failed:\n%s", ranks, threads, r.err);
    cr_assert(same_parameters(dist, one), "%d ranks x %s threads: parameters differ from plain "
              "bprop's (1 and 2 threads)", ranks, threads);
    cr_assert_eq(file_u32(dist, OFF_RANKS), (uint32_t)ranks, "model records %u ranks",
                 file_u32(dist, OFF_RANKS));
    tu_run_free(&r);
    free(one);
    free(two);
    free(dist);
}

Test(mpi, layout_1x1) { check_layout(1, "1"); }
Test(mpi, layout_1x2) { check_layout(1, "2"); }
Test(mpi, layout_2x1) { check_layout(2, "1"); }
Test(mpi, layout_3x1) { check_layout(3, "1"); }

Test(mpi, layout_2x2_and_info)
{
    check_layout(2, "2");
    char *dist = path_in("dist.bpm");
    tu_run r = MPI_RUN(2, "info", dist);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    /* info runs on rank 0 alone: one report, naming the layout of the run. */
    cr_assert_eq(count_prefixed(r.out, "model:"), 1, "stdout:\n%s", r.out);
    cr_assert_not_null(strstr(r.out, "2 ranks x 2 threads"), "stdout:\n%s", r.out);
    tu_run_free(&r);
    free(dist);
}

/* The exact sums travel as int64 (sum_i64), or as each rank's float block sums (gather_f32)
 * when no rank holds more than one block; both give plain bprop's bits. Batch 192 is 3 blocks:
 * one each on 3 ranks (float blocks), two on one of 2 ranks (int64); batch 256 is 4 blocks:
 * int64 on 2 and 3 ranks. Batch 128 (float blocks on 2 and 3 ranks) is the layout tests'. */
#define SMALL_ARGS "train", "--reproducible", "--hidden", "32", "--epochs", "1", "--train-limit", \
    "6000", "--test-limit", "100", "--quiet", "--threads", "1"

static void check_batch_over_ranks(const char *batch)
{
    need_fashion();
    char *plain = path_in("plain.bpm"), *dist = path_in("dist.bpm");
    tu_run r = PLAIN_RUN(SMALL_ARGS, "--batch", batch, "--save", plain);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    for (int ranks = 2; ranks <= 3; ranks++) {
        r = MPI_RUN(ranks, SMALL_ARGS, "--batch", batch, "--save", dist);
        cr_assert_eq(r.status, 0, "%d ranks: stderr: %s", ranks, r.err);
        cr_assert(same_parameters(plain, dist), "batch %s on %d ranks: parameters differ from "
                  "plain bprop's", batch, ranks);
        tu_run_free(&r);
    }
    free(plain);
    free(dist);
}

Test(mpi, exact_sums_of_3_blocks_on_2_and_3_ranks) { check_batch_over_ranks("192"); }
Test(mpi, exact_sums_of_4_blocks_on_2_and_3_ranks) { check_batch_over_ranks("256"); }

/* Float sums (sum_f32 over ranks): each layout trains the same bits every time. */
Test(mpi, float_sums_are_deterministic_for_2_and_3_ranks)
{
    need_fashion();
    char *a = path_in("a.bpm"), *b = path_in("b.bpm");
    for (int ranks = 2; ranks <= 3; ranks++) {
        for (int k = 0; k < 2; k++) {
            tu_run r = MPI_RUN(ranks, "train", "--no-reproducible", "--hidden", "32", "--epochs", "1",
                               "--train-limit", "6000", "--test-limit", "100", "--quiet",
                               "--threads", "1", "--batch", "128", "--save", k ? b : a);
            cr_assert_eq(r.status, 0, "%d ranks: stderr: %s", ranks, r.err);
            tu_run_free(&r);
        }
        cr_assert(same_parameters(a, b), "float sums on %d ranks: two runs differ", ranks);
    }
    free(a);
    free(b);
}

/* ---- the float hidden split over ranks ----------------------------------------------------- */

/* Each of the ranks x threads workers owns a slice of 64-unit blocks and sums it over the whole
 * batch as one thread's pass does, and the partial logits meet in one process's order, so every
 * layout trains plain bprop's bits on one thread. Hidden 200: 4 blocks, the last of 8 units,
 * shared 2-1-1 on 3 ranks; 5,000 samples: a last batch of 8; two epochs: the slices gathered
 * between them. */
#define RH_ARGS "train", "--no-reproducible", "--hidden", "200", "--batch", "128", "--epochs", "2", \
    "--train-limit", "2000", "--test-limit", "100", "--quiet", "--weight-decay", "1e-4"

static void check_rank_hidden(int ranks, const char *threads, const char *parallel)
{
    need_fashion();
    char *one = path_in("one.bpm"), *dist = path_in("dist.bpm");
    tu_run r = PLAIN_RUN(RH_ARGS, "--threads", "1", "--save", one);
    cr_assert_eq(r.status, 0, "plain bprop: stderr: %s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(ranks, RH_ARGS, "--threads", threads, "--parallel", parallel, "--save", dist);
    cr_assert_eq(r.status, 0, "%d ranks x %s threads: stderr: %s", ranks, threads, r.err);
    tu_run_free(&r);
    cr_assert(same_parameters(one, dist), "--parallel %s on %d ranks x %s threads: parameters "
              "differ from plain bprop's on one thread", parallel, ranks, threads);
    free(one);
    free(dist);
}

Test(mpi, hidden_split_over_2x1_ranks_trains_one_threads_bits) { check_rank_hidden(2, "1", "hidden"); }
Test(mpi, hidden_split_over_3x1_ranks_trains_one_threads_bits) { check_rank_hidden(3, "1", "hidden"); }
Test(mpi, hidden_split_over_2x2_ranks_trains_one_threads_bits) { check_rank_hidden(2, "2", "hidden"); }
/* The cost model prices the rank split below the data split's exchange of the whole gradient
 * at this shape, for the full batches and the last one. */
Test(mpi, auto_takes_the_hidden_split_over_2x1_ranks) { check_rank_hidden(2, "1", "auto"); }

/* Two ranks with different --threads (an MPMD command line), each with --parallel `parallel`:
 * the job must end within 60 s (ranks that disagree on the split wait in different
 * collectives) and succeed; the model goes to save. */
static void run_mixed_teams(const char *hidden, const char *t0, const char *t1,
                            const char *parallel, const char *save)
{
#define MIXED_RANK(threads)                                                                        \
    BPROP_MPI_CLI_PATH, "train", "--no-reproducible", "--hidden", hidden, "--batch", "128",      \
        "--epochs", "1", "--train-limit", "1000", "--test-limit", "100", "--quiet", "--threads", \
        threads, "--parallel", parallel, "--save", save
    const char *argv[] = {BPROP_MPIEXEC, "--oversubscribe", "-np", "1", MIXED_RANK(t0), ":",
                          "-np", "1", MIXED_RANK(t1), NULL};
#undef MIXED_RANK
    pid_t job = start(argv);
    int ws = 0, waited = 0;
    pid_t got = 0;
    for (; waited < 60000 && (got = waitpid(job, &ws, WNOHANG)) == 0; waited += 50)
        sleep_ms(50);
    if (got == 0) {
        kill(job, SIGKILL);
        waitpid(job, &ws, 0);
        cr_assert_fail("ranks of %s and %s threads, --parallel %s, %s units: still running after "
                       "60 s", t0, t1, parallel, hidden);
    }
    cr_assert(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "ranks of %s and %s threads, --parallel %s, "
              "%s units: status %d", t0, t1, parallel, hidden, ws);
}

/* Ranks whose teams differ take the data split whatever was asked for, so --parallel hidden
 * and auto train the bits of --parallel data on the same layout. Before, at 256 units a 3- and
 * a 1-thread rank made different plans and waited in different collectives, and at 320 units
 * a 2- and a 1-thread rank cut different hidden slices and trained a wrong model. */
Test(mpi, ranks_with_different_thread_counts_take_the_data_split)
{
    need_fashion();
    static const char *const shapes[][3] = {{"256", "3", "1"}, {"320", "2", "1"}};
    char *data = path_in("data.bpm"), *other = path_in("other.bpm");
    for (size_t i = 0; i < 2; i++) {
        const char *H = shapes[i][0], *t0 = shapes[i][1], *t1 = shapes[i][2];
        run_mixed_teams(H, t0, t1, "data", data);
        run_mixed_teams(H, t0, t1, "hidden", other);
        cr_assert(same_parameters(data, other), "%s units, %s and %s threads: --parallel hidden "
                  "differs from --parallel data", H, t0, t1);
        run_mixed_teams(H, t0, t1, "auto", other);
        cr_assert(same_parameters(data, other), "%s units, %s and %s threads: auto differs from "
                  "--parallel data", H, t0, t1);
    }
    free(data);
    free(other);
}

/* ---- small CSV data for the failure cases -------------------------------------------------- */

static void write_csv(const char *name, const bprop_dataset *d)
{
    char *p = path_in(name);
    tu_write_csv(p, d, d->n, 1);
    free(p);
}

/* t0.csv .. t<copies-1>.csv: the same 201 blob samples (4 features, 3 classes). */
static void write_copies(int copies)
{
    bprop_dataset *d = tu_blobs(201, 4, 3, 5);
    for (int i = 0; i < copies; i++) {
        char name[16];
        snprintf(name, sizeof name, "t%d.csv", i);
        write_csv(name, d);
    }
    bprop_dataset_free(d);
}

/* Rank r reads t<r>.csv. */
static char *rank_path(void) { return path_in("t%r.csv"); }

Test(mpi, more_ranks_than_samples_in_a_batch)
{
    /* Batch 2 over 3 ranks, and a last batch of 1 (201 samples): some ranks' shares are empty. */
    write_copies(1);
    char *data = path_in("t0.csv"), *plain = path_in("plain.bpm"), *dist = path_in("dist.bpm");
    tu_run r = PLAIN_RUN("train", "--reproducible", "--train", data, "--hidden", "8", "--batch", "2", "--epochs",
                             "2", "--threads", "1", "--quiet", "--save", plain);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(3, "train", "--reproducible", "--train", data, "--hidden", "8", "--batch", "2", "--epochs", "2",
                "--threads", "1", "--quiet", "--save", dist);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert(same_parameters(plain, dist), "3 ranks at batch 2: parameters differ from bprop's");
    tu_run_free(&r);
    free(data);
    free(plain);
    free(dist);
}

Test(mpi, a_rank_cannot_read_its_data)
{
    write_copies(2); /* no t2.csv for rank 2 */
    char *data = rank_path(), *model = path_in("m.bpm"), *missing = path_in("t2.csv");
    tu_run r = MPI_RUN(3, "train", "--train", data, "--hidden", "8", "--epochs", "1",
                           "--threads", "1", "--save", model);
    EXPECT_MESSAGE(&r, "bprop: rank 2: ", missing);
    cr_assert(!exists(model), "a failed run wrote the model");
    cr_assert_null(strstr(r.out, "epoch"), "training started:\n%s", r.out);
    tu_run_free(&r);
    free(data);
    free(model);
    free(missing);
}

Test(mpi, a_rank_with_malformed_data)
{
    write_copies(1);
    char *bad = path_in("t1.csv");
    tu_write_text(bad, "0,1,2,3,4\n1,2,3,4,5\n2,3,4,5\n"); /* line 3: a missing field */
    char *data = rank_path(), *model = path_in("m.bpm");
    tu_run r = MPI_RUN(2, "train", "--train", data, "--hidden", "8", "--epochs", "1",
                           "--threads", "1", "--save", model);
    EXPECT_MESSAGE(&r, "bprop: rank 1: ", bad, "line 3");
    cr_assert(!exists(model), "a failed run wrote the model");
    tu_run_free(&r);
    free(bad);
    free(data);
    free(model);
}

Test(mpi, a_rank_holds_different_data)
{
    write_copies(3);
    /* Rank 2's copy differs in one feature of one sample. */
    bprop_dataset *d = tu_blobs(201, 4, 3, 5);
    d->x[100 * 4 + 2] += 0.5f;
    write_csv("t2.csv", d);
    bprop_dataset_free(d);
    char *data = rank_path(), *model = path_in("m.bpm");
    tu_run r = MPI_RUN(3, "train", "--train", data, "--hidden", "8", "--epochs", "1",
                           "--threads", "1", "--save", model);
    EXPECT_MESSAGE(&r, "bprop: rank 2: training data differs from rank 0's");
    /* The ranks compare bprop_dataset_hash, the hash checkpoints record. */
    char *p0 = path_in("t0.csv"), *p2 = path_in("t2.csv"), hashes[96];
    bprop_dataset *d0 = NULL, *d2 = NULL;
    cr_assert_eq(bprop_dataset_load(p0, NULL, 1, 0, &d0, NULL), BPROP_OK);
    cr_assert_eq(bprop_dataset_load(p2, NULL, 1, 0, &d2, NULL), BPROP_OK);
    snprintf(hashes, sizeof hashes, "(hash %016llx, rank 0 has %016llx)",
             (unsigned long long)bprop_dataset_hash(d2), (unsigned long long)bprop_dataset_hash(d0));
    cr_assert(strstr(r.err, hashes), "'%s' missing; stderr:\n%s", hashes, r.err);
    bprop_dataset_free(d0);
    bprop_dataset_free(d2);
    free(p0);
    free(p2);
    cr_assert(!exists(model), "a failed run wrote the model");
    tu_run_free(&r);
    free(data);
    free(model);
}

Test(mpi, unwritable_outputs_are_refused_before_training)
{
    write_copies(1);
    char *data = path_in("t0.csv"), *model = path_in("no/such/dir/m.bpm"), *metrics = path_in("m.jsonl");
    tu_run r = MPI_RUN(2, "train", "--train", data, "--hidden", "8", "--epochs", "1",
                           "--threads", "1", "--save", model, "--metrics", metrics);
    EXPECT_MESSAGE(&r, "bprop: rank 0: --save: ", model);
    cr_assert_null(strstr(r.out, "epoch"), "training started:\n%s", r.out);
    cr_assert(!exists(metrics), "the metrics were written");
    tu_run_free(&r);

    /* --metrics naming a directory. */
    char *good = path_in("m.bpm");
    r = MPI_RUN(2, "train", "--train", data, "--hidden", "8", "--epochs", "1", "--threads", "1",
                "--save", good, "--metrics", g_dir);
    EXPECT_MESSAGE(&r, "bprop: rank 0: --metrics: ", "is a directory");
    cr_assert(!exists(good), "the model was written");
    tu_run_free(&r);
    free(data);
    free(model);
    free(metrics);
    free(good);
}

Test(mpi, divergence_is_seen_by_every_rank)
{
    write_copies(1);
    char *data = path_in("t0.csv"), *model = path_in("m.bpm"), *old = path_in("old.bpm");
    tu_write_text(model, "an older model\n");
    tu_write_text(old, "an older model\n");
    tu_run r = MPI_RUN(3, "train", "--train", data, "--lr", "1e30", "--hidden", "8",
                           "--epochs", "2", "--threads", "1", "--save", model);
    /* Every rank fails at the same step: the global loss is non-finite everywhere. */
    EXPECT_MESSAGE(&r, "bprop: rank 0: ", "(3 of 3 ranks failed)");
    cr_assert(same_file(model, old), "a diverged run replaced the model");
    tu_run_free(&r);
    free(data);
    free(model);
    free(old);
}

Test(mpi, usage_errors_and_help_print_once)
{
    tu_run r = MPI_RUN(2, "train", "--no-such-option");
    cr_assert_eq(r.status, 2, "stderr: %s", r.err);
    cr_assert_eq(count_prefixed(r.err, "bprop train: --no-such-option: unknown option"), 1,
                 "stderr:\n%s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(2, "train", "--checkpoint-every", "5");
    cr_assert_eq(r.status, 2, "stderr: %s", r.err);
    cr_assert_eq(count_prefixed(r.err, "bprop train: --checkpoint-every: needs --checkpoint FILE"),
                 1, "stderr:\n%s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(2, "train", "--help");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    cr_assert_eq(count_prefixed(r.out, "Usage: bprop train"), 1, "stdout:\n%s", r.out);
    tu_run_free(&r);
}

/* The kernel set a plain bprop run records in its model, with BPROP_ISA=isa (NULL: unset). */
static char *recorded_isa(const char *isa, const char *data)
{
    char *model = path_in("isa.bpm");
    if (isa)
        setenv("BPROP_ISA", isa, 1);
    tu_run r = PLAIN_RUN("train", "--train", data, "--hidden", "8", "--epochs", "1", "--quiet",
                             "--save", model);
    unsetenv("BPROP_ISA");
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    size_t n;
    char *bytes = tu_read_file(model, &n), *name = calloc(1, 17);
    cr_assert_gt(n, OFF_ISA + 16);
    memcpy(name, bytes + OFF_ISA, 16);
    free(bytes);
    free(model);
    return name;
}

Test(mpi, ranks_with_different_kernel_sets_are_refused)
{
    /* Rank 1 forced to the generic kernels, rank 0 on the widest: as on nodes of two CPU kinds.
     * That needs a build that has both, which plain runs show. */
    write_copies(1);
    char *t0 = path_in("t0.csv"), *generic = recorded_isa("generic", t0), *widest = recorded_isa(NULL, t0);
    free(t0);
    if (strcmp(generic, widest) == 0)
        cr_skip_test("this build runs one kernel set here ('%s' with and without BPROP_ISA=generic): "
                     "no second one to give a rank", widest);
    free(generic);
    free(widest);
    char *data = path_in("t0.csv"), *model = path_in("m.bpm");
    const char *argv[] = {BPROP_MPIEXEC, "--oversubscribe", "-np", "1", BPROP_MPI_CLI_PATH, "train",
                          "--train", data, "--hidden", "8", "--epochs", "1", "--save", model, ":",
                          "-np", "1", "/usr/bin/env", "BPROP_ISA=generic", BPROP_MPI_CLI_PATH, "train",
                          "--train", data, "--hidden", "8", "--epochs", "1", "--save", model, NULL};
    tu_run r = finish(start(argv));
    EXPECT_MESSAGE(&r, "bprop: rank 1: kernel set 'generic' differs from rank 0's", "BPROP_ISA=");
    cr_assert(!exists(model), "a refused run wrote the model");
    tu_run_free(&r);
    free(data);
    free(model);
}

/* ---- a rank killed mid-run ----------------------------------------------------------------- */

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    for (size_t i = 0; i + 1 < n; i++)
        if (buf[i] == '\0')
            buf[i] = '\n';
    return strstr(buf, needle) != NULL;
}

/* The pid of the bprop-mpi process of this test (its arguments name the scratch directory) that
 * has the given rank, or 0. */
static pid_t find_rank(int rank)
{
    char want[64];
    snprintf(want, sizeof want, "OMPI_COMM_WORLD_RANK=%d", rank);
    DIR *d = opendir("/proc");
    cr_assert_not_null(d);
    pid_t found = 0;
    for (struct dirent *e; !found && (e = readdir(d));) {
        char *end;
        long pid = strtol(e->d_name, &end, 10);
        if (*end || pid <= 0)
            continue;
        char cmd[64], env[64];
        snprintf(cmd, sizeof cmd, "/proc/%ld/cmdline", pid);
        snprintf(env, sizeof env, "/proc/%ld/environ", pid);
        if (file_contains(cmd, "bprop-mpi") && file_contains(cmd, g_dir) && file_contains(env, want))
            found = (pid_t)pid;
    }
    closedir(d);
    return found;
}

/* 1 when a file whose name starts with prefix is in the scratch directory. */
static int temp_present(const char *prefix)
{
    DIR *d = opendir(g_dir);
    cr_assert_not_null(d);
    int found = 0;
    for (struct dirent *e; !found && (e = readdir(d));)
        found = strncmp(e->d_name, prefix, strlen(prefix)) == 0;
    closedir(d);
    return found;
}

Test(mpi, a_killed_rank_ends_the_job)
{
    need_fashion();
    char *model = path_in("m.bpm"), *old = path_in("old.bpm"), *metrics = path_in("log.jsonl");
    tu_write_text(model, "an older model\n");
    tu_write_text(old, "an older model\n");
    /* Long enough to be killed while training (it is never left to finish). */
    pid_t job = start(command(2, (const char *const[]){"train", "--hidden", "64", "--epochs", "1000",
                                  "--train-limit", "12000", "--test-limit", "100", "--threads", "1",
                                  "--save", model, "--metrics", metrics, NULL}));
    /* Training has begun once rank 0 opened the metrics log (the last step before it). */
    int waited = 0, ws = 0;
    for (; waited < 60000 && !temp_present("log.jsonl.tmp."); waited += 50) {
        if (waitpid(job, &ws, WNOHANG) == job) {
            char *err = path_in("stderr.txt"), *text = tu_read_file(err, NULL);
            cr_assert_fail("the job ended before training (status %d):\n%s", ws, text);
        }
        sleep_ms(50);
    }
    cr_assert(temp_present("log.jsonl.tmp."), "training did not start within 60 s");
    pid_t victim = find_rank(1);
    cr_assert_gt(victim, 0, "rank 1 not found");
    cr_assert_eq(kill(victim, SIGKILL), 0);
    /* mpirun must notice and end the whole job: no hang. */
    pid_t got = 0;
    for (waited = 0; waited < 60000 && (got = waitpid(job, &ws, WNOHANG)) == 0; waited += 50)
        sleep_ms(50);
    if (got == 0) {
        kill(job, SIGKILL);
        waitpid(job, &ws, 0);
        cr_assert_fail("mpirun still running 60 s after rank 1 was killed");
    }
    cr_assert(!(WIFEXITED(ws) && WEXITSTATUS(ws) == 0), "mpirun reported success");
    /* Nothing replaced the old model, and no rank 0 process is left behind. */
    for (waited = 0; waited < 10000 && find_rank(0); waited += 50)
        sleep_ms(50);
    cr_assert_eq(find_rank(0), 0, "rank 0 is still running");
    cr_assert(same_file(model, old), "the killed run replaced the model");
    cr_assert(!exists(metrics), "the killed run published its metrics");
    free(model);
    free(old);
    free(metrics);
}

/* ---- checkpoints, --resume and signals across layouts -------------------------------------- */

/* 8 epochs of 40 steps (hidden 32, batch 100, 4,000 Fashion-MNIST samples): a few seconds. */
#define CK_ARGS "train", "--reproducible", "--hidden", "32", "--batch", "100", "--epochs", "8", \
    "--train-limit", "4000", "--test-limit", "200", "--quiet"

/* The uninterrupted run every stopped and resumed one must end at, bitwise. */
static char *ck_reference(void)
{
    need_fashion();
    char *ref = path_in("ref.bpm");
    tu_run r = PLAIN_RUN(CK_ARGS, "--threads", "2", "--save", ref);
    cr_assert_eq(r.status, 0, "uninterrupted run failed:\n%s", r.err);
    tu_run_free(&r);
    return ref;
}

/* Wait until path exists, failing if the job ends first. */
static void wait_for_file(pid_t job, const char *path)
{
    for (int waited = 0; waited < 60000 && !exists(path); waited++) {
        int ws;
        cr_assert_eq(waitpid(job, &ws, WNOHANG), 0, "the job ended before %s appeared", path);
        sleep_ms(1);
    }
    cr_assert(exists(path), "%s did not appear within 60 s", path);
}

/* Training has begun (the metrics log is the last file opened before it), so every rank has its
 * signal handlers. */
static void wait_for_training(pid_t job, const char *metrics_prefix)
{
    for (int waited = 0; waited < 60000 && !temp_present(metrics_prefix); waited++) {
        int ws;
        cr_assert_eq(waitpid(job, &ws, WNOHANG), 0, "the job ended before training");
        sleep_ms(1);
    }
    cr_assert(temp_present(metrics_prefix), "training did not start within 60 s");
}

/* A run stopped by sig: its exit status, rank 0's one message naming the checkpoint, no model
 * saved, no temporary file left, and a checkpoint that loads and is not at the run's end. */
static void expect_stopped(const tu_run *r, int status, const char *sig_name, const char *ckpt,
                           const char *model, uint64_t epochs)
{
    char want[64];
    snprintf(want, sizeof want, "bprop: stopped by %s: checkpoint written to ", sig_name);
    if (status >= 0)
        cr_assert_eq(r->status, status, "exit status %d (want %d); stderr:\n%s", r->status, status,
                     r->err);
    cr_assert_eq(count_prefixed(r->err, want), 1, "not one '%s' line; stderr:\n%s", want, r->err);
    /* Besides the metrics log a stopped run keeps under its temporary name (as in bprop). */
    cr_assert_eq(count_prefixed(r->err, "bprop:") - count_prefixed(r->err, "bprop: partial metrics kept"),
                 1, "more than one message; stderr:\n%s", r->err);
    cr_assert_not_null(strstr(r->err, ckpt), "the checkpoint's name is not printed:\n%s", r->err);
    cr_assert(!exists(model), "a stopped run saved its model");
    cr_assert(!temp_present("ck.tmp.") && !temp_present("m.bpm.tmp.") && !temp_present("m.bpm.ckpt.tmp."),
              "a temporary file was left behind");
    bprop_checkpoint *ck = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_checkpoint_load(ckpt, &ck, &err), BPROP_OK, "%s", err.message);
    cr_assert_lt(ck->state.epoch, epochs, "the run had finished: nothing left to resume");
    bprop_checkpoint_free(ck);
}

static size_t count_lines(const char *path)
{
    char *text = tu_read_file(path, NULL);
    size_t n = 0;
    for (const char *p = text; *p; p++)
        n += *p == '\n';
    free(text);
    return n;
}

Test(mpi, plain_checkpoint_resumes_on_two_ranks_bitwise)
{
    char *ref = ck_reference(), *ckpt = path_in("ck"), *model = path_in("m.bpm");
    /* Plain bprop on 2 threads, stopped by SIGUSR1 once its first periodic checkpoint exists. */
    pid_t job = start(command(0, (const char *const[]){CK_ARGS, "--threads", "2", "--checkpoint", ckpt,
                                  "--checkpoint-every", "10", "--save", model, NULL}));
    wait_for_file(job, ckpt);
    cr_assert_eq(kill(job, SIGUSR1), 0);
    tu_run r = finish(job);
    expect_stopped(&r, 138, "SIGUSR1", ckpt, model, 8);
    tu_run_free(&r);
    /* Continued by 2 ranks x 1 thread: every rank reads the checkpoint, rank 0 saves. */
    r = MPI_RUN(2, "train", "--resume", ckpt, "--threads", "1");
    cr_assert_eq(r.status, 0, "resume on 2 ranks failed:\n%s", r.err);
    cr_assert(same_parameters(ref, model), "plain checkpoint resumed on 2 ranks: parameters differ "
              "from the uninterrupted run's");
    cr_assert_eq(file_u32(model, OFF_RANKS), 2u, "the model records %u ranks", file_u32(model, OFF_RANKS));
    tu_run_free(&r);
    free(ref);
    free(ckpt);
    free(model);
}

Test(mpi, sigusr1_to_mpirun_checkpoints_and_plain_bprop_resumes_bitwise)
{
    char *ref = ck_reference(), *ckpt = path_in("ck"), *model = path_in("m.bpm");
    /* mpirun forwards SIGUSR1 to every rank as it is. */
    pid_t job = start(command(2, (const char *const[]){CK_ARGS, "--threads", "1", "--checkpoint", ckpt,
                                  "--checkpoint-every", "10", "--save", model, NULL}));
    wait_for_file(job, ckpt);
    cr_assert_eq(kill(job, SIGUSR1), 0);
    tu_run r = finish(job);
    expect_stopped(&r, 138, "SIGUSR1", ckpt, model, 8);
    cr_assert_not_null(strstr(r.err, "bprop-mpi train --resume"), "stderr:\n%s", r.err);
    tu_run_free(&r);
    /* Continued by plain bprop on one thread. */
    r = PLAIN_RUN("train", "--resume", ckpt, "--threads", "1");
    cr_assert_eq(r.status, 0, "plain resume failed:\n%s", r.err);
    cr_assert(same_parameters(ref, model), "2-rank checkpoint resumed by plain bprop: parameters "
              "differ from the uninterrupted run's");
    tu_run_free(&r);
    free(ref);
    free(ckpt);
    free(model);
}

Test(mpi, a_signal_to_one_rank_stops_all_and_three_ranks_resume_bitwise)
{
    char *ref = ck_reference(), *model = path_in("m.bpm"), *metrics = path_in("log.jsonl");
    char *ckpt = path_in("m.bpm.ckpt"); /* no --checkpoint: the name beside --save */
    pid_t job = start(command(2, (const char *const[]){CK_ARGS, "--threads", "1", "--save", model,
                                  "--metrics", metrics, NULL}));
    wait_for_training(job, "log.jsonl.tmp.");
    /* Rank 1 alone gets SIGTERM: its flag is combined with rank 0's in the next step, so both
     * stop after that step, and rank 0, which got no signal, writes the checkpoint. */
    pid_t victim = find_rank(1);
    cr_assert_gt(victim, 0, "rank 1 not found");
    cr_assert_eq(kill(victim, SIGTERM), 0);
    tu_run r = finish(job);
    expect_stopped(&r, 143, "SIGTERM", ckpt, model, 8);
    cr_assert(!exists(metrics), "a stopped run published its metrics");
    tu_run_free(&r);
    /* 3 ranks continue the 2-rank run; the recorded --save and --metrics are rank 0's. */
    r = MPI_RUN(3, "train", "--resume", ckpt, "--threads", "1");
    cr_assert_eq(r.status, 0, "resume on 3 ranks failed:\n%s", r.err);
    cr_assert(same_parameters(ref, model), "2-rank checkpoint resumed on 3 ranks: parameters differ "
              "from the uninterrupted run's");
    cr_assert_eq(count_lines(metrics), 8, "the resumed run's metrics lack epochs");
    tu_run_free(&r);
    free(ref);
    free(model);
    free(metrics);
    free(ckpt);
}

Test(mpi, sigint_to_mpirun_reaches_the_ranks_as_sigterm)
{
    need_fashion();
    char *ckpt = path_in("ck"), *model = path_in("m.bpm"), *metrics = path_in("log.jsonl");
    /* Open MPI's mpirun answers SIGINT (and SIGTERM) with SIGCONT to the ranks, SIGTERM a
     * timeout later and SIGKILL another timeout later: 3 s here, so that the ranks' SIGTERM
     * stop (a step and a small checkpoint) fits even on a loaded machine. */
    const char *argv[] = {BPROP_MPIEXEC, "--oversubscribe", "--mca", "odls_base_sigkill_timeout", "3",
                          "-np", "2", BPROP_MPI_CLI_PATH, "train", "--reproducible", "--hidden", "32", "--epochs", "1000",
                          "--train-limit", "4000", "--test-limit", "100", "--threads", "1",
                          "--checkpoint", ckpt, "--save", model, "--metrics", metrics, "--quiet", NULL};
    pid_t job = start(argv);
    wait_for_training(job, "log.jsonl.tmp.");
    cr_assert_eq(kill(job, SIGINT), 0);
    tu_run r = finish(job);
    /* mpirun's own status after it killed the job is 1, whatever the ranks returned. */
    cr_assert_neq(r.status, 0, "mpirun reported success");
    expect_stopped(&r, -1, "SIGTERM", ckpt, model, 1000);
    for (int waited = 0; waited < 10000 && (find_rank(0) || find_rank(1)); waited += 50)
        sleep_ms(50);
    cr_assert(!find_rank(0) && !find_rank(1), "a rank is still running");
    tu_run_free(&r);
    free(ckpt);
    free(model);
    free(metrics);
}

Test(mpi, every_rank_must_resume_the_same_checkpoint)
{
    write_copies(1);
    char *data = path_in("t0.csv"), *c0 = path_in("c0.ckpt"), *c1 = path_in("c1.ckpt");
    tu_run r = PLAIN_RUN("train", "--train", data, "--hidden", "8", "--epochs", "1", "--threads",
                             "1", "--quiet", "--checkpoint", c0);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    /* Rank r reads c<r>.ckpt: rank 1's is missing. */
    char *each = path_in("c%r.ckpt"), *model = path_in("m.bpm");
    r = MPI_RUN(2, "train", "--resume", each, "--epochs", "2", "--save", model);
    EXPECT_MESSAGE(&r, "bprop: rank 1: ", c1);
    cr_assert(!exists(model), "a refused run wrote the model");
    tu_run_free(&r);
    /* Rank 1's is another run's (another seed): the same data and shape, another state. */
    r = PLAIN_RUN("train", "--train", data, "--hidden", "8", "--epochs", "1", "--threads", "1",
                  "--quiet", "--seed", "7", "--checkpoint", c1);
    cr_assert_eq(r.status, 0, "stderr: %s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(2, "train", "--resume", each, "--epochs", "2", "--save", model);
    EXPECT_MESSAGE(&r, "bprop: rank 1: the state read from the --resume checkpoint differs from "
                   "rank 0's");
    cr_assert(!exists(model), "a refused run wrote the model");
    cr_assert_null(strstr(r.out, "    2 "), "training started:\n%s", r.out);
    tu_run_free(&r);
    free(data);
    free(c0);
    free(c1);
    free(each);
    free(model);
}

/* The data split on several ranks splits the update (each rank updates its run of the
 * parameters, then the runs are gathered), float sums or exact: a rank keeps only its run of
 * the momentum while an epoch runs, so a checkpoint must hold all of it, gathered, for the run
 * resumed from it on the same layout to end bitwise where the uninterrupted one did. Hidden 50
 * is 39,760 parameters: 2,485 cache lines, uneven runs on 2 and 3 ranks. Exact sums: batch 100
 * is 2 blocks, one a rank on 2 ranks (float blocks to the runs' owners) and none on the third
 * of 3; batch 200 is 4 blocks (int64 runs). */
#define SPLIT_ARGS "train", "--hidden", "50", "--epochs", "8", "--train-limit", "4000", \
    "--test-limit", "200", "--quiet"

static void check_split_resume(int ranks, const char *threads, const char *sums, const char *batch)
{
    need_fashion();
    char *ref = path_in("ref.bpm"), *ckpt = path_in("ck"), *model = path_in("m.bpm");
    tu_run r = MPI_RUN(ranks, SPLIT_ARGS, sums, "--batch", batch, "--threads", threads, "--save", ref);
    cr_assert_eq(r.status, 0, "%d ranks x %s threads: stderr: %s", ranks, threads, r.err);
    tu_run_free(&r);
    pid_t job = start(command(ranks, (const char *const[]){SPLIT_ARGS, sums, "--batch", batch,
                                      "--threads", threads, "--checkpoint", ckpt,
                                      "--checkpoint-every", "10", "--save", model, NULL}));
    wait_for_file(job, ckpt);
    cr_assert_eq(kill(job, SIGUSR1), 0);
    r = finish(job);
    expect_stopped(&r, 138, "SIGUSR1", ckpt, model, 8);
    tu_run_free(&r);
    r = MPI_RUN(ranks, "train", "--resume", ckpt, "--threads", threads);
    cr_assert_eq(r.status, 0, "resume on %d ranks failed:\n%s", ranks, r.err);
    cr_assert(same_parameters(ref, model), "%s, batch %s on %d ranks x %s threads: resumed from "
              "the checkpoint, parameters differ from the uninterrupted run's", sums, batch, ranks,
              threads);
    tu_run_free(&r);
    free(ref);
    free(ckpt);
    free(model);
}

#define FLOAT_SUMS "--no-reproducible"
#define EXACT_SUMS "--reproducible"
Test(mpi, split_update_checkpoint_resumes_bitwise_on_2x1) { check_split_resume(2, "1", FLOAT_SUMS, "100"); }
Test(mpi, split_update_checkpoint_resumes_bitwise_on_3x1) { check_split_resume(3, "1", FLOAT_SUMS, "100"); }
Test(mpi, split_update_checkpoint_resumes_bitwise_on_2x2) { check_split_resume(2, "2", FLOAT_SUMS, "100"); }
Test(mpi, exact_split_update_checkpoint_resumes_bitwise_on_2x1) { check_split_resume(2, "1", EXACT_SUMS, "100"); }
Test(mpi, exact_split_update_checkpoint_resumes_bitwise_on_3x1) { check_split_resume(3, "1", EXACT_SUMS, "100"); }
Test(mpi, exact_split_update_checkpoint_resumes_bitwise_on_2x2) { check_split_resume(2, "2", EXACT_SUMS, "100"); }
Test(mpi, exact_int64_split_update_checkpoint_resumes_bitwise_on_2x1) { check_split_resume(2, "1", EXACT_SUMS, "200"); }
Test(mpi, exact_int64_split_update_checkpoint_resumes_bitwise_on_3x1) { check_split_resume(3, "1", EXACT_SUMS, "200"); }

/* Auto at 256 units (every kernel set) takes the data split for batches of 2,048 on 2 ranks x
 * 1 thread and on 2 threads, and the hidden split for the last batch of 300: the data split's
 * split update leaves each rank only its run of the momentum, which the rank split's slices
 * read across every run, so it is gathered first. Both data splits add the same two halves of
 * the batch (2 ranks of 16 blocks, 2 threads of 1,024 samples) and both hidden splits train one
 * thread's bits, so the layouts agree bitwise. */
Test(mpi, data_split_then_hidden_split_over_ranks_in_one_epoch)
{
    need_fashion();
    char *two = path_in("two.bpm"), *dist = path_in("dist.bpm");
    tu_run r = PLAIN_RUN("train", "--hidden", "256", "--batch", "2048", "--train-limit", "4396",
                         "--epochs", "3", "--test-limit", "100", "--quiet", "--threads", "2",
                         "--save", two);
    cr_assert_eq(r.status, 0, "plain bprop: stderr: %s", r.err);
    tu_run_free(&r);
    r = MPI_RUN(2, "train", "--hidden", "256", "--batch", "2048", "--train-limit", "4396",
                "--epochs", "3", "--test-limit", "100", "--quiet", "--threads", "1", "--save", dist);
    cr_assert_eq(r.status, 0, "2 ranks: stderr: %s", r.err);
    tu_run_free(&r);
    cr_assert(same_parameters(two, dist), "2 ranks x 1 thread differ from 2 threads (or auto's "
              "choices at this shape changed)");
    free(two);
    free(dist);
}

/* A checkpoint of a rank-split run holds the whole model and momentum (gathered when the run
 * stops), so 3 ranks, or plain bprop, continue it to the uninterrupted one-thread run's bits. */
#define RHCK_ARGS "train", "--no-reproducible", "--hidden", "200", "--batch", "100", "--epochs", "8", \
    "--train-limit", "4000", "--test-limit", "200", "--quiet", "--parallel", "hidden"

static void check_rank_hidden_resume(int resume_ranks)
{
    need_fashion();
    char *ref = path_in("ref.bpm"), *ckpt = path_in("ck"), *model = path_in("m.bpm");
    tu_run r = PLAIN_RUN(RHCK_ARGS, "--threads", "1", "--save", ref);
    cr_assert_eq(r.status, 0, "uninterrupted run: stderr: %s", r.err);
    tu_run_free(&r);
    pid_t job = start(command(2, (const char *const[]){RHCK_ARGS, "--threads", "1", "--checkpoint",
                                  ckpt, "--checkpoint-every", "10", "--save", model, NULL}));
    wait_for_file(job, ckpt);
    cr_assert_eq(kill(job, SIGUSR1), 0);
    r = finish(job);
    expect_stopped(&r, 138, "SIGUSR1", ckpt, model, 8);
    tu_run_free(&r);
    r = run_ranks(resume_ranks, (const char *const[]){"train", "--resume", ckpt, "--threads", "1", NULL});
    cr_assert_eq(r.status, 0, "resume on %d ranks failed:\n%s", resume_ranks, r.err);
    cr_assert(same_parameters(ref, model), "2-rank hidden-split checkpoint resumed on %d ranks: "
              "parameters differ from the uninterrupted run's", resume_ranks);
    tu_run_free(&r);
    free(ref);
    free(ckpt);
    free(model);
}

Test(mpi, hidden_split_over_ranks_checkpoint_resumes_bitwise_on_3_ranks) { check_rank_hidden_resume(3); }
Test(mpi, hidden_split_over_ranks_checkpoint_resumes_bitwise_in_plain_bprop) { check_rank_hidden_resume(0); }

#endif /* BPROP_MPI_CLI_PATH */
