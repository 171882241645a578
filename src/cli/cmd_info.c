/* cmd_info.c: `bprop info`: shape, training settings and history of a saved model. */
#include "ckpt_info.h"
#include "cli.h"
#include "json.h"

#include <math.h>
#include <string.h>

typedef struct info_opts {
    const char *model;
    int json;
} info_opts;

static void info_help(void)
{
    printf("Usage: bprop info MODEL [--json]\n"
           "Describe a saved model: shape (inputs-hidden-classes), parameter count, biases,\n"
           "standardisation, the settings of its last training run, epochs and samples seen,\n"
           "last metrics, training data and created/saved times (ISO 8601, UTC).\n"
           "A checkpoint (bprop train --checkpoint) shows its run instead: settings, how far it\n"
           "got, its data (sizes and hashes) and the figures of every finished epoch.\n\n"
           "Options:\n"
           "  --json               one JSON object instead of text\n");
}

static int info_option(cli_args *a, void *opts)
{
    info_opts *o = opts;
    if (!cli_is(a, "--json"))
        return CLI_NOMATCH;
    o->json = 1;
    return cli_flag(a);
}

static int parse_info(const cli_runtime *rt, int argc, char **argv, info_opts *o)
{
    memset(o, 0, sizeof *o);
    cli_command c = {"info", info_help, info_option, o, &o->model};
    int rc = cli_parse(rt, &c, argc, argv);
    if (rc)
        return rc;
    if (!o->model)
        return cli_usage(rt, "info", "missing MODEL (a file saved by 'bprop train --save')");
    return 0;
}

/* The description as a C string even if the file's field lacked its terminator. */
static void data_text(const bprop_provenance *p, char *buf, size_t size)
{
    snprintf(buf, size, "%.*s", (int)sizeof p->data, p->data);
}

static void print_json(const info_opts *o, const bprop_model *m)
{
    const bprop_provenance *p = &m->info;
    char created[32], saved[32], data[sizeof p->data + 1], isa[sizeof p->isa + 1];
    data_text(p, data, sizeof data);
    snprintf(isa, sizeof isa, "%.*s", (int)sizeof p->isa, p->isa);
    cli_iso_time(p->created_unix, created, sizeof created);
    cli_iso_time(p->saved_unix, saved, sizeof saved);
    json_writer j;
    json_init(&j, stdout);
    json_object_begin(&j, NULL);
    json_string(&j, "model", o->model);
    info_shape_json(&j, m);
    json_uint(&j, "epochs_done", p->epochs_done);
    json_uint(&j, "samples_seen", p->samples_seen);
    json_int(&j, "threads", p->threads);
    json_int(&j, "ranks", p->ranks);
    json_float(&j, "train_loss", p->train_loss);
    json_float(&j, "train_acc", p->train_acc);
    json_float(&j, "test_loss", p->test_loss);
    json_float(&j, "test_acc", p->test_acc);
    json_string(&j, "data", data);
    json_string(&j, "created", created);
    json_string(&j, "saved", saved);
    json_string(&j, "isa", isa);
    info_config_json(&j, &p->config);
    json_object_end(&j);
    putchar('\n');
}

static void print_text(const info_opts *o, const bprop_model *m)
{
    const bprop_provenance *p = &m->info;
    const bprop_train_config *c = &p->config;
    char created[32], saved[32], clip[32], data[sizeof p->data + 1];
    data_text(p, data, sizeof data);
    /* The kernel set of the last training run (older files did not record it). */
    const int isa_len = (int)strnlen(p->isa, sizeof p->isa);
    cli_iso_time(p->created_unix, created, sizeof created);
    cli_iso_time(p->saved_unix, saved, sizeof saved);
    snprintf(clip, sizeof clip, c->clip_norm > 0.0f ? "%g" : "off", (double)c->clip_norm);
    printf("model:         %s\n", o->model);
    printf("shape:         %zu-%zu-%zu (inputs-hidden-classes)\n", m->inputs, m->hidden, m->classes);
    printf("parameters:    %zu (%s)\n", m->layout.total, m->has_bias ? "with biases" : "no biases");
    printf("standardised:  %s\n", m->std_mean ? "yes (statistics stored in the model)" : "no");
    printf("trained:       %llu epochs, %llu samples seen, ", (unsigned long long)p->epochs_done,
           (unsigned long long)p->samples_seen);
    if (p->ranks > 1) /* a bprop-mpi run: processes x threads each */
        printf("%d ranks x ", (int)p->ranks);
    printf("%d threads in the last run\n", (int)p->threads);
    printf("kernels:       %.*s\n", isa_len ? isa_len : 15, isa_len ? p->isa : "(not recorded)");
    printf("settings:      %zu epochs, batch %zu, lr %g (%s", c->epochs, c->batch, (double)c->lr,
           bprop_schedule_name(c->schedule));
    if (c->schedule == BPROP_SCHEDULE_STEP)
        printf(": x%g every %zu epochs", (double)c->step_gamma, c->step_epochs);
    printf("), momentum %g%s, weight decay %g, clip %s, seed %llu, %s\n", (double)c->momentum,
           c->nesterov ? " (Nesterov)" : "", (double)c->weight_decay, clip,
           (unsigned long long)c->seed, c->shuffle ? "shuffled" : "not shuffled");
    printf("last epoch:    train loss %.4f, train accuracy %.4f\n", (double)p->train_loss,
           (double)p->train_acc);
    if (isfinite(p->test_loss))
        printf("held-out:      loss %.4f, accuracy %.4f\n", (double)p->test_loss, (double)p->test_acc);
    else
        printf("held-out:      not evaluated\n");
    printf("data:          %s\n", data[0] ? data : "(not recorded)");
    printf("created:       %s\nsaved:         %s\n", created, saved);
}

int cmd_info(const cli_runtime *rt, int argc, char **argv)
{
    info_opts o;
    int rc = parse_info(rt, argc, argv, &o);
    if (rc)
        return rc == CLI_DONE ? CLI_EXIT_OK : rc;
    if (bprop_is_checkpoint(o.model))
        return info_checkpoint(rt, o.model, o.json);
    bprop_model *m = NULL;
    rc = cli_load_model(rt, o.model, &m);
    if (rc)
        return rc;
    if (o.json)
        print_json(&o, m);
    else
        print_text(&o, m);
    bprop_model_free(m);
    return 0;
}
