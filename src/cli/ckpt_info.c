/* ckpt_info.c: `bprop info` for checkpoint files: the run's settings, how far it got, its data
 * and the figures of its finished epochs; and the "config" object that model files share. */
#define _POSIX_C_SOURCE 200809L
#include "ckpt_info.h"

#include "cli.h"
#include "json.h"
#include "train_options.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const set_names[3] = {"train", "val", "test"};

static const bprop_data_desc *desc_at(const bprop_checkpoint *ck, int i)
{
    return i == 0 ? &ck->train : i == 1 ? &ck->val : &ck->test;
}

/* ---- JSON ---- */

void info_shape_json(json_writer *j, const bprop_model *m)
{
    json_uint(j, "inputs", m->inputs);
    json_uint(j, "hidden", m->hidden);
    json_uint(j, "classes", m->classes);
    json_uint(j, "parameters", m->layout.total);
    json_bool(j, "bias", m->has_bias);
    json_bool(j, "standardized", m->std_mean != NULL);
}

void info_config_json(json_writer *j, const bprop_train_config *c)
{
    json_object_begin(j, "config");
    json_uint(j, "epochs", c->epochs);
    json_uint(j, "batch", c->batch);
    json_float(j, "lr", c->lr);
    json_float(j, "momentum", c->momentum);
    json_bool(j, "nesterov", c->nesterov);
    json_float(j, "weight_decay", c->weight_decay);
    json_string(j, "schedule", bprop_schedule_name(c->schedule));
    json_uint(j, "step_epochs", c->step_epochs);
    json_float(j, "step_gamma", c->step_gamma);
    json_float(j, "clip", c->clip_norm);
    json_uint(j, "seed", c->seed);
    json_bool(j, "shuffle", c->shuffle);
    json_int(j, "threads", c->threads);
    json_string(j, "parallel", bprop_parallel_name(c->parallel));
    json_bool(j, "reproducible", c->reproducible);
    json_object_end(j);
}

static int settings_json_one(void *user, const char *key, const char *value)
{
    json_string(user, key, value ? value : "");
    return 0;
}

static void records_json(json_writer *j, const bprop_checkpoint *ck)
{
    json_array_begin(j, "epochs");
    for (size_t i = 0; i < ck->n_records; i++) {
        const bprop_epoch_record *e = &ck->records[i];
        json_object_begin(j, NULL);
        json_uint(j, "epoch", e->epoch);
        json_uint(j, "steps", e->steps);
        json_real(j, "train_loss", e->train_loss);
        json_real(j, "train_acc", e->train_acc);
        json_real(j, "test_loss", e->test_loss);
        json_real(j, "test_acc", e->test_acc);
        json_real(j, "val_loss", e->val_loss);
        json_real(j, "val_acc", e->val_acc);
        json_real(j, "samples_per_s", e->samples_per_s);
        json_real(j, "seconds", e->seconds);
        json_real(j, "lr", e->lr);
        json_int(j, "threads", e->threads);
        json_object_end(j);
    }
    json_array_end(j);
}

static void print_json(const char *path, const bprop_checkpoint *ck, char *settings)
{
    const bprop_model *m = ck->model;
    char written[32];
    cli_iso_time(ck->saved_unix, written, sizeof written);
    json_writer j;
    json_init(&j, stdout);
    json_object_begin(&j, NULL);
    json_string(&j, "checkpoint", path);
    json_string(&j, "written", written);
    json_uint(&j, "epochs_done", ck->state.epoch);
    json_uint(&j, "step", ck->state.step);
    json_uint(&j, "steps_per_epoch", ck->steps_per_epoch);
    json_bool(&j, "finished", ck->state.epoch >= ck->config.epochs && ck->state.step == 0);
    info_shape_json(&j, m);
    info_config_json(&j, &ck->config);
    json_object_begin(&j, "settings");
    train_settings_each(settings, settings_json_one, &j);
    json_object_end(&j);
    json_object_begin(&j, "data");
    for (int i = 0; i < 3; i++) {
        const bprop_data_desc *d = desc_at(ck, i);
        if (!d->n) {
            json_null(&j, set_names[i]);
            continue;
        }
        char hash[24];
        snprintf(hash, sizeof hash, "%016llx", (unsigned long long)d->hash);
        json_object_begin(&j, set_names[i]);
        json_uint(&j, "n", d->n);
        json_uint(&j, "dim", d->dim);
        json_uint(&j, "classes", d->classes);
        json_string(&j, "hash", hash);
        json_object_end(&j);
    }
    json_string(&j, "source", m->info.data);
    json_object_end(&j);
    json_uint(&j, "samples_seen", m->info.samples_seen);
    records_json(&j, ck);
    json_object_end(&j);
    putchar('\n');
}

/* ---- text ---- */

static int settings_text_one(void *user, const char *key, const char *value)
{
    int *first = user;
    /* Unset options (empty, 0) say nothing. */
    if (!value || !value[0] || strcmp(value, "0") == 0)
        return 0;
    printf("%s%s=%s", *first ? "" : ", ", key, value);
    *first = 0;
    return 0;
}

static void print_position(const bprop_checkpoint *ck)
{
    const bprop_trainer_state *s = &ck->state;
    printf("progress:      %llu of %zu epochs done", (unsigned long long)s->epoch, ck->config.epochs);
    if (s->step)
        printf(", epoch %llu stopped after step %llu of %llu", (unsigned long long)s->epoch + 1,
               (unsigned long long)s->step, (unsigned long long)ck->steps_per_epoch);
    else if (s->epoch >= ck->config.epochs)
        printf(" (finished; --resume with --epochs N extends it)");
    else
        printf(" (at an epoch boundary)");
    printf("\n");
}

static void print_data(const bprop_checkpoint *ck)
{
    static const char *const label[3] = {"training", "validation", "test"};
    for (int i = 0; i < 3; i++) {
        const bprop_data_desc *d = desc_at(ck, i);
        printf("%-15s", i == 0 ? "data:" : "");
        if (d->n)
            printf("%s: %llu samples, %llu features, %llu classes, hash %016llx\n", label[i],
                   (unsigned long long)d->n, (unsigned long long)d->dim, (unsigned long long)d->classes,
                   (unsigned long long)d->hash);
        else
            printf("%s: none\n", label[i]);
    }
    printf("source:        %s\n", ck->model->info.data[0] ? ck->model->info.data : "(not recorded)");
}

static void print_records(const bprop_checkpoint *ck)
{
    if (!ck->n_records) {
        printf("epochs:        none finished yet\n");
        return;
    }
    printf("%5s %10s %9s %10s %9s %10s %9s %8s %9s\n", "epoch", "train_loss", "train_acc", "val_loss",
           "val_acc", "test_loss", "test_acc", "seconds", "lr");
    for (size_t i = 0; i < ck->n_records; i++) {
        const bprop_epoch_record *e = &ck->records[i];
        printf("%5llu %10.4f %9.4f ", (unsigned long long)e->epoch, e->train_loss, e->train_acc);
        const double held[4] = {e->val_loss, e->val_acc, e->test_loss, e->test_acc};
        for (int k = 0; k < 4; k++) {
            if (isnan(held[k]))
                printf("%*s ", k % 2 ? 9 : 10, "-");
            else
                printf("%*.4f ", k % 2 ? 9 : 10, held[k]);
        }
        printf("%8.3f %9.3g\n", e->seconds, e->lr);
    }
}

static void print_text(const char *path, const bprop_checkpoint *ck, char *settings)
{
    const bprop_model *m = ck->model;
    const bprop_train_config *c = &ck->config;
    char written[32], clip[32];
    cli_iso_time(ck->saved_unix, written, sizeof written);
    snprintf(clip, sizeof clip, c->clip_norm > 0.0f ? "%g" : "off", (double)c->clip_norm);
    printf("checkpoint:    %s (written %s)\n", path, written);
    print_position(ck);
    printf("shape:         %zu-%zu-%zu, %zu parameters, %s, %s\n", m->inputs, m->hidden, m->classes,
           m->layout.total, m->has_bias ? "with biases" : "no biases",
           m->std_mean ? "standardised inputs" : "inputs as given");
    printf("settings:      %zu epochs, batch %zu, lr %g (%s", c->epochs, c->batch, (double)c->lr,
           bprop_schedule_name(c->schedule));
    if (c->schedule == BPROP_SCHEDULE_STEP)
        printf(": x%g every %zu epochs", (double)c->step_gamma, c->step_epochs);
    printf("), momentum %g%s, weight decay %g, clip %s, seed %llu, %s, threads %d%s\n",
           (double)c->momentum, c->nesterov ? " (Nesterov)" : "", (double)c->weight_decay, clip,
           (unsigned long long)c->seed, c->shuffle ? "shuffled" : "not shuffled", c->threads,
           c->threads ? "" : " (all)");
    printf("options:       ");
    int first = 1;
    train_settings_each(settings, settings_text_one, &first);
    printf("%s\n", first ? "(none)" : "");
    print_data(ck);
    printf("model history: %llu epochs, %llu samples seen\n", (unsigned long long)m->info.epochs_done,
           (unsigned long long)m->info.samples_seen);
    print_records(ck);
}

int info_checkpoint(const cli_runtime *rt, const char *path, int json)
{
    bprop_checkpoint *ck = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_checkpoint_load(path, &ck, &err);
    if (st != BPROP_OK)
        return cli_fail_path(rt, path, &err, st);
    char *settings = strdup(ck->settings ? ck->settings : "");
    if (!settings) {
        bprop_checkpoint_free(ck);
        return cli_fail(rt, "out of memory");
    }
    if (json)
        print_json(path, ck, settings);
    else
        print_text(path, ck, settings);
    free(settings);
    bprop_checkpoint_free(ck);
    return 0;
}
