/* test_edges.c: gzip failures told apart (cut off, CRC or length mismatch, undecodable), and the
 * warning for classes that never occur when the class count is inferred. */
#define _POSIX_C_SOURCE 200809L
#include "testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

static char *g_dir;

static void scratch_create(void) { g_dir = tu_tmpdir(); }

static void scratch_remove(void)
{
    tu_remove_dir(g_dir);
    free(g_dir);
}

TestSuite(edges, .init = scratch_create, .fini = scratch_remove, .timeout = 60);

/* ---- gzip ---------------------------------------------------------------------------------- */

/* gzip bytes of a labelled CSV of rows lines (3 features), in a malloc'd buffer. */
static unsigned char *gz_csv(size_t rows, size_t *len)
{
    size_t cap = rows * 32 + 64, n = 0;
    char *text = malloc(cap);
    for (size_t i = 0; i < rows; i++)
        n += (size_t)snprintf(text + n, cap - n, "%zu,%zu.5,%zu,%zu\n", i % 3, i, i * 7 % 101, i % 13);
    char *tmp = tu_path(g_dir, "tmp.gz");
    gzFile g = gzopen(tmp, "wb6");
    cr_assert_not_null(g);
    cr_assert_eq(gzwrite(g, text, (unsigned)n), (int)n);
    cr_assert_eq(gzclose(g), Z_OK);
    FILE *f = fopen(tmp, "rb");
    unsigned char *buf = malloc(cap + 1024);
    *len = fread(buf, 1, cap + 1024, f);
    fclose(f);
    free(text);
    free(tmp);
    return buf;
}

static void expect_csv_fails(const char *name, const unsigned char *bytes, size_t len, const char *text,
                             const char *absent)
{
    char *p = tu_path(g_dir, name);
    tu_write_file(p, bytes, len);
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_dataset_load_csv(p, 1, 0, &d, &err), BPROP_E_FORMAT, "%s loaded", name);
    cr_assert_null(d);
    cr_assert_not_null(strstr(err.message, p), "%s", err.message);
    cr_assert_not_null(strstr(err.message, text), "'%s' lacks '%s'", err.message, text);
    cr_assert_null(strstr(err.message, absent), "'%s' has '%s'", err.message, absent);
    free(p);
}

Test(edges, gzip_cut_off_and_corrupt_are_told_apart)
{
    size_t len;
    unsigned char *gz = gz_csv(20000, &len);
    cr_assert_gt(len, 1000);
    expect_csv_fails("cut.csv.gz", gz, len / 2, "cut-off gzip data: the compressed stream ends early",
                     "corrupt");
    expect_csv_fails("cut-trailer.csv.gz", gz, len - 3, "cut-off gzip data", "corrupt");
    /* The trailer: CRC-32 of the data, then its length, little-endian. */
    gz[len - 8] ^= 0x5A;
    expect_csv_fails("crc.csv.gz", gz, len, "corrupt gzip data: CRC-32 mismatch", "cut-off");
    gz[len - 8] ^= 0x5A;
    gz[len - 1] ^= 0x01;
    expect_csv_fails("length.csv.gz", gz, len, "corrupt gzip data: length mismatch", "cut-off");
    gz[len - 1] ^= 0x01;
    /* The first deflate block header (after the 10-byte gzip header): reserved block type 3. */
    gz[10] = 0x07;
    expect_csv_fails("bad.csv.gz", gz, len, "corrupt gzip data: the deflate stream cannot be decoded",
                     "cut-off");
    free(gz);
}

Test(edges, gzip_crc_mismatch_in_idx)
{
    const unsigned char idx[] = {0, 0, 8, 3, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 2, 7, 9};
    char *tmp = tu_path(g_dir, "img.gz");
    gzFile g = gzopen(tmp, "wb");
    cr_assert_eq(gzwrite(g, idx, sizeof idx), (int)sizeof idx);
    cr_assert_eq(gzclose(g), Z_OK);
    FILE *f = fopen(tmp, "rb");
    unsigned char buf[256];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    buf[n - 6] ^= 0xFF; /* inside the stored CRC-32 */
    tu_write_file(tmp, buf, n);
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    cr_assert_eq(bprop_dataset_load_idx(tmp, NULL, 0, &d, &err), BPROP_E_FORMAT);
    cr_assert_not_null(strstr(err.message, "CRC-32 mismatch"), "%s", err.message);
    free(tmp);
}

/* ---- classes that never occur -------------------------------------------------------------- */

typedef struct run_result {
    int status;
    char *err;
} run_result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strdup(buf);
}

/* Run bprop with args (NULL-terminated); stdout is discarded, stderr captured. */
static run_result run_bprop(const char *const *args)
{
    const char *argv[32] = {BPROP_CLI_PATH};
    size_t n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    char *err = tu_path(g_dir, "stderr.txt");
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        int o = open("/dev/null", O_WRONLY), e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0 || dup2(o, 1) < 0 || dup2(e, 2) < 0)
            _exit(126);
        setenv("OMP_NUM_THREADS", "1", 1);
        execv(BPROP_CLI_PATH, (char *const *)argv);
        _exit(127);
    }
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    run_result r = {WIFEXITED(ws) ? WEXITSTATUS(ws) : -1, slurp(err)};
    free(err);
    return r;
}

#define RUN(...) run_bprop((const char *const[]){__VA_ARGS__, NULL})

static char *labels_csv(const char *name, const int *labels, size_t n)
{
    char *p = tu_path(g_dir, name);
    FILE *f = fopen(p, "w");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%d,%zu,%g\n", labels[i], i, 0.5 * (double)i);
    fclose(f);
    return p;
}

Test(edges, unseen_classes_warned_when_inferred)
{
    const int stray[] = {0, 1, 2, 0, 1, 2, 9};
    char *csv = labels_csv("train.csv", stray, 7);
    run_result r = RUN("train", "--train", csv, "--hidden", "2", "--epochs", "1", "--quiet");
    cr_assert_eq(r.status, 0, "%s", r.err);
    char want[512];
    snprintf(want, sizeof want,
             "bprop: warning: %s: classes 3..8 never occur in the training labels (classes inferred "
             "as 10 from the largest label); pass --classes N to fix the count\n", csv);
    cr_assert_str_eq(r.err, want);
    free(r.err);
    /* Single gaps are listed one by one. */
    const int gaps[] = {0, 2, 4, 0};
    char *gap = labels_csv("gap.csv", gaps, 4);
    r = RUN("train", "--train", gap, "--hidden", "2", "--epochs", "1", "--quiet");
    cr_assert_eq(r.status, 0);
    cr_assert_not_null(strstr(r.err, "classes 1, 3 never occur"), "%s", r.err);
    free(r.err);
    /* Every class present: no warning. */
    const int full[] = {0, 1, 2, 1};
    char *ok = labels_csv("ok.csv", full, 4);
    r = RUN("train", "--train", ok, "--hidden", "2", "--epochs", "1", "--quiet");
    cr_assert_eq(r.status, 0);
    cr_assert_str_eq(r.err, "");
    free(r.err);
    free(csv), free(gap), free(ok);
}

Test(edges, given_classes_no_warning_and_out_of_range_is_an_error)
{
    const int stray[] = {0, 1, 2, 0, 1, 2, 9};
    char *csv = labels_csv("train.csv", stray, 7);
    run_result r = RUN("train", "--train", csv, "--hidden", "2", "--epochs", "1", "--quiet",
                       "--classes", "10");
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert_str_eq(r.err, "");
    free(r.err);
    char *model = tu_path(g_dir, "m.bpm");
    r = RUN("train", "--train", csv, "--hidden", "2", "--epochs", "1", "--quiet", "--classes", "5",
            "--save", model);
    cr_assert_eq(r.status, 1);
    char want[512];
    snprintf(want, sizeof want, "bprop: %s: line 7: label 9 is not below classes 5\n", csv);
    cr_assert_str_eq(r.err, want);
    cr_assert_neq(access(model, F_OK), 0, "a model was saved");
    free(r.err), free(model), free(csv);
}
