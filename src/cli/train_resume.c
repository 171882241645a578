/* train_resume.c: what `bprop train --resume` and `--init` bring to a run: the recorded run a
 * checkpoint holds (its settings text read through train_options.c's table), and the shape an
 * --init model imposes. */
#define _POSIX_C_SOURCE 200809L
#include "train_state.h"

#include "train_options.h"

#include <stdlib.h>
#include <string.h>

void train_state_opts_free(train_state_opts *s)
{
    bprop_checkpoint_free(s->ck);
    bprop_model_free(s->init_model);
    free(s->text);
    s->ck = NULL;
    s->init_model = NULL;
    s->text = NULL;
}

/* The run a checkpoint records, as the options that would start it. */
static int recorded_opts(const cli_runtime *rt, const char *path, const bprop_checkpoint *ck, char *text,
                         train_opts *rec)
{
    train_opts_default(rec);
    rec->cfg = ck->config;
    int rc = train_settings_apply(rt, text, rec, path);
    /* The model is the authority on its own shape. */
    rec->hidden = ck->model->hidden;
    rec->bias = ck->model->has_bias;
    return rc;
}

static int load_resume(const cli_runtime *rt, train_opts *o)
{
    train_state_opts *s = &o->ts;
    bprop_error err = {0};
    bprop_status st = bprop_checkpoint_load(s->resume, &s->ck, &err);
    if (st != BPROP_OK) {
        bprop_model *m = NULL;
        /* A model file is an easy mistake: say what to do with it. */
        if (st == BPROP_E_FORMAT && bprop_model_load(s->resume, &m, NULL) == BPROP_OK) {
            bprop_model_free(m);
            return cli_fail(rt, "--resume %s: a model file, not a checkpoint (start from its weights "
                                "with --init)", s->resume);
        }
        return cli_fail_path(rt, s->resume, &err, st);
    }
    s->text = strdup(s->ck->settings ? s->ck->settings : "");
    if (!s->text)
        return cli_fail(rt, "%s: out of memory", s->resume);
    train_opts rec;
    int rc = recorded_opts(rt, s->resume, s->ck, s->text, &rec);
    if (!rc)
        rc = train_resume_check(rt, o, &rec);
    if (rc)
        return rc;
    train_resume_overlay(&rec, o);
    /* What this command line was and loaded stays with it. */
    memcpy(rec.ts.given, s->given, sizeof rec.ts.given);
    rec.ts.n_given = s->n_given;
    rec.ts.ck = s->ck;
    rec.ts.text = s->text;
    *o = rec;
    return 0;
}

/* ---- --init: shape, biases and standardisation come from the model ------------------------ */

static int load_init(const cli_runtime *rt, train_opts *o)
{
    train_state_opts *s = &o->ts;
    if (bprop_is_checkpoint(s->init))
        return cli_usage(rt, "train", "--init %s: a checkpoint, not a model (continue its run with --resume)",
                         s->init);
    if (cli_load_model(rt, s->init, &s->init_model))
        return CLI_EXIT_RUNTIME;
    const bprop_model *m = s->init_model;
    if (train_given(o, cli_option_find(train_options, "--hidden")) && o->hidden != m->hidden)
        return cli_usage(rt, "train", "--hidden %zu: the --init model %s has %zu hidden units", o->hidden,
                         s->init, m->hidden);
    if (!o->bias && m->has_bias)
        return cli_usage(rt, "train", "--no-bias: the --init model %s has biases", s->init);
    if (o->standardize && !m->std_mean)
        return cli_usage(rt, "train", "--standardize: the --init model %s has no standardisation "
                             "statistics (its inputs are used as given)", s->init);
    if (o->data.classes && o->data.classes != m->classes)
        return cli_usage(rt, "train", "--classes %zu: the --init model %s has %zu classes", o->data.classes,
                         s->init, m->classes);
    o->hidden = m->hidden;
    o->bias = m->has_bias;
    o->standardize = m->std_mean != NULL;
    return 0;
}

/* The checkpoint file is neither --save's nor --metrics' (which a resumed run may take from its
 * checkpoint: checked again then). */
static int check_checkpoint_name(const cli_runtime *rt, const train_opts *o)
{
    const char *ck = o->ts.checkpoint ? o->ts.checkpoint : o->ts.resume;
    if (ck && ((o->save && strcmp(ck, o->save) == 0) || (o->metrics && strcmp(ck, o->metrics) == 0)))
        return cli_usage(rt, "train", "the checkpoint '%s' is also named by --%s", ck,
                         o->save && strcmp(ck, o->save) == 0 ? "save" : "metrics");
    return 0;
}

static int check_targets(const cli_runtime *rt, const train_opts *o)
{
    const train_state_opts *s = &o->ts;
    if (s->checkpoint && !s->checkpoint[0])
        return cli_usage(rt, "train", "--checkpoint: empty file name");
    if (s->resume && s->init)
        return cli_usage(rt, "train",
                         "--init: cannot be combined with --resume (the checkpoint holds the model)");
    if (s->every && !s->checkpoint && !s->resume)
        return cli_usage(rt, "train", "--checkpoint-every: needs --checkpoint FILE");
    return check_checkpoint_name(rt, o);
}

int train_state_resolve(const cli_runtime *rt, train_opts *o)
{
    int rc = check_targets(rt, o);
    if (!rc && o->ts.resume) {
        rc = load_resume(rt, o);
        if (!rc)
            rc = check_checkpoint_name(rt, o);
    } else if (!rc && o->ts.init) {
        rc = load_init(rt, o);
    }
    return rc;
}
