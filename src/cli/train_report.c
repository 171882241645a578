/* train_report.c: the per-epoch table on stdout and the JSON Lines metrics log (published at the end). */
#define _POSIX_C_SOURCE 200809L
#include "train_report.h"

#include "cli.h"
#include "json.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void train_print_header(FILE *f, int has_val)
{
    fprintf(f, "%5s %10s %9s %10s %9s %11s %8s %9s %9s %9s %9s %9s\n", "epoch", "train_loss",
            "train_acc", has_val ? "val_loss" : "test_loss", has_val ? "val_acc" : "test_acc",
            "samples/s", "seconds", "lr", "|g_W1|", "|g_b1|", "|g_W2|", "|g_b2|");
}

void train_print_row(FILE *f, const epoch_report *r)
{
    const bprop_epoch_stats *s = r->st;
    const bprop_eval *held = r->has_val ? r->val : r->test;
    fprintf(f, "%5zu %10.4f %9.4f ", s->epoch, s->train_loss, s->train_acc);
    if (held)
        fprintf(f, "%10.4f %9.4f ", held->loss, held->accuracy);
    else
        fprintf(f, "%10s %9s ", "-", "-");
    fprintf(f, "%11.0f %8.3f %9.3g %9.3g %9.3g %9.3g %9.3g\n", s->samples_per_s, s->seconds, s->lr,
            s->grad_norm[BPROP_W1], s->grad_norm[BPROP_B1], s->grad_norm[BPROP_W2],
            s->grad_norm[BPROP_B2]);
    fflush(f);
}

static void write_eval(json_writer *j, const char *loss_key, const char *acc_key, const bprop_eval *e)
{
    json_real(j, loss_key, e ? e->loss : NAN);
    json_real(j, acc_key, e ? e->accuracy : NAN);
}

static void write_line(FILE *f, const epoch_report *r)
{
    const bprop_epoch_stats *s = r->st;
    json_writer j;
    json_init(&j, f);
    json_object_begin(&j, NULL);
    json_uint(&j, "epoch", s->epoch);
    json_uint(&j, "steps", s->steps);
    json_real(&j, "train_loss", s->train_loss);
    json_real(&j, "train_acc", s->train_acc);
    write_eval(&j, "test_loss", "test_acc", r->test);
    if (r->has_val)
        write_eval(&j, "val_loss", "val_acc", r->val);
    json_real(&j, "samples_per_s", s->samples_per_s);
    json_real(&j, "seconds", s->seconds);
    json_real(&j, "reduce_seconds", s->reduce_seconds);
    json_real(&j, "lr", s->lr);
    json_real(&j, "grad_norm_w1", s->grad_norm[BPROP_W1]);
    json_real(&j, "grad_norm_b1", s->grad_norm[BPROP_B1]);
    json_real(&j, "grad_norm_w2", s->grad_norm[BPROP_W2]);
    json_real(&j, "grad_norm_b2", s->grad_norm[BPROP_B2]);
    json_int(&j, "threads", r->threads);
    json_uint(&j, "batch", r->batch);
    json_uint(&j, "hidden", r->hidden);
    json_string(&j, "isa", bprop_isa()); /* the kernel set that ran the epoch */
    json_object_end(&j);
    fputc('\n', f);
}

int metrics_open(const cli_runtime *rt, metrics_log *m, const char *path)
{
    memset(m, 0, sizeof *m);
    m->path = path;
    if (!path)
        return 0;
    int rc = cli_atomic_open(rt, &m->out, path);
    if (rc)
        m->path = NULL;
    m->out.partial = "metrics";
    return rc;
}

int metrics_append(const cli_runtime *rt, metrics_log *m, const epoch_report *r)
{
    if (!m->path)
        return 0;
    write_line(m->out.f, r);
    /* Flushed every epoch so that the temporary file can be followed (tail -f) during the run. */
    if (fflush(m->out.f) != 0 || ferror(m->out.f))
        return cli_fail(rt, "%s: cannot write: %s", m->out.tmp, strerror(errno));
    return 0;
}

int metrics_commit(metrics_log *m)
{
    if (!m->path)
        return 0;
    m->path = NULL;
    return cli_atomic_commit(&m->out);
}

void metrics_close(metrics_log *m)
{
    if (m->path)
        cli_atomic_abort(&m->out);
    memset(m, 0, sizeof *m);
}

const char *metrics_temp_path(const metrics_log *m) { return m->path ? m->out.tmp : NULL; }
