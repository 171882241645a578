/* testutil.c: helpers shared by the Criterion tests (temporary files, synthetic data, running programs). */
#define _XOPEN_SOURCE 700 /* nftw */
#include "testutil.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int tu_remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)type;
    (void)ftw;
    remove(path);
    return 0;
}

void tu_remove_dir(const char *dir)
{
    /* Depth first, so each directory is empty by the time it is removed. */
    nftw(dir, tu_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Directories made by this test process, removed at exit (Criterion runs each test in its own
 * process, so this is per test). */
#define TU_MAX_DIRS 32
static char tu_dirs[TU_MAX_DIRS][4096];
static int tu_ndirs;

static void tu_remove_dirs(void)
{
    for (int i = 0; i < tu_ndirs; i++)
        tu_remove_dir(tu_dirs[i]);
}

char *tu_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/bprop-test-XXXXXX", base && *base ? base : "/tmp");
    cr_assert_not_null(mkdtemp(buf), "mkdtemp failed");
    if (tu_ndirs == 0)
        atexit(tu_remove_dirs);
    if (tu_ndirs < TU_MAX_DIRS)
        memcpy(tu_dirs[tu_ndirs++], buf, sizeof buf);
    return strdup(buf);
}

char *tu_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    cr_assert_not_null(p);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

void tu_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    cr_assert_eq(fclose(f), 0);
}

void tu_write_text(const char *path, const char *text) { tu_write_file(path, text, strlen(text)); }

/* A small local generator so the test data does not depend on library internals. */
static uint64_t tu_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double tu_normal(uint64_t *s)
{
    double u1 = ((tu_next(s) >> 11) + 1.0) * 0x1.0p-53, u2 = (tu_next(s) >> 11) * 0x1.0p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

bprop_dataset *tu_blobs(size_t n, size_t dim, size_t classes, uint64_t seed)
{
    bprop_dataset *d = NULL;
    cr_assert_eq(bprop_dataset_alloc(n, dim, classes, 1, &d, NULL), BPROP_OK);
    uint64_t s = seed;
    double *centers = malloc(classes * dim * sizeof(double)); /* (classes, dim) */
    for (size_t i = 0; i < classes * dim; i++)
        centers[i] = 3.0 * tu_normal(&s);
    for (size_t i = 0; i < n; i++) {
        size_t c = i % classes;
        d->y[i] = (int32_t)c;
        for (size_t k = 0; k < dim; k++)
            d->x[i * dim + k] = (float)(centers[c * dim + k] + tu_normal(&s));
    }
    free(centers);
    return d;
}

int tu_have_fashion(void)
{
    return access(BPROP_FASHION_DIR "/train-images-idx3-ubyte.gz", R_OK) == 0 &&
           access(BPROP_FASHION_DIR "/t10k-labels-idx1-ubyte.gz", R_OK) == 0;
}

int tu_same_bits(const float *a, const float *b, size_t n) { return memcmp(a, b, n * sizeof(float)) == 0; }

void tu_put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

void tu_write_csv(const char *path, const bprop_dataset *d, size_t n, int labelled)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "cannot write %s", path);
    for (size_t i = 0; i < n; i++) {
        if (labelled)
            fprintf(f, "%d,", (int)d->y[i]);
        for (size_t k = 0; k < d->dim; k++)
            fprintf(f, "%.6g%s", (double)d->x[i * d->dim + k], k + 1 < d->dim ? "," : "\n");
    }
    cr_assert_eq(fclose(f), 0);
}

static void put_be32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
}

unsigned char *tu_idx_bytes(uint32_t magic, const uint32_t *dims, unsigned nd,
                            const unsigned char *payload, size_t plen, size_t *len)
{
    *len = 4 + 4 * (size_t)nd + plen;
    unsigned char *buf = malloc(*len);
    cr_assert_not_null(buf);
    put_be32(buf, magic);
    for (unsigned k = 0; k < nd; k++)
        put_be32(buf + 4 + 4 * k, dims[k]);
    if (plen)
        memcpy(buf + 4 + 4 * nd, payload, plen);
    return buf;
}

uint64_t tu_get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

char *tu_read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    for (size_t got; (got = fread(buf + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (cap - n < 2)
            buf = realloc(buf, cap *= 2);
    }
    buf[n] = '\0';
    fclose(f);
    if (len)
        *len = n;
    return buf;
}

/* In the child: fd goes to path (created or truncated). */
static void tu_redirect(const char *path, int fd)
{
    int f = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f < 0 || dup2(f, fd) < 0)
        _exit(126);
    close(f);
}

pid_t tu_spawn(const char *const *argv, const tu_spawn_opts *o)
{
    fflush(NULL);
    pid_t pid = fork();
    cr_assert_geq(pid, 0, "fork failed");
    if (pid == 0) {
        if (o->dir && chdir(o->dir) != 0)
            _exit(125);
        if (o->out)
            tu_redirect(o->out, STDOUT_FILENO);
        tu_redirect(o->err, STDERR_FILENO);
        if (o->omp_threads)
            setenv("OMP_NUM_THREADS", o->omp_threads, 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

tu_run tu_finish(pid_t pid, const tu_spawn_opts *o)
{
    int ws = 0;
    cr_assert_eq(waitpid(pid, &ws, 0), pid);
    return (tu_run){.status = WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws),
                    .out = o->out ? tu_read_file(o->out, NULL) : strdup(""),
                    .err = tu_read_file(o->err, NULL)};
}

void tu_run_free(tu_run *r)
{
    free(r->out);
    free(r->err);
}

int tu_stop_at(void *user, size_t step, size_t steps, double loss, double acc)
{
    (void)steps;
    (void)loss;
    (void)acc;
    tu_stopper *s = user;
    if (step >= s->at)
        *s->flag = 1;
    return 0;
}
