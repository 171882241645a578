/* train.c: training a Net: trainer set-up, one epoch with the GIL released, and Ctrl-C. */
#include "core.h"

#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Carry the old trainer's momentum, epoch count (the schedule's position) and shuffling
 * generator into t, a trainer for another number of samples (partial_fit on a new batch). */
static bprop_status carry_state(const bprop_trainer *old, bprop_trainer *t, bprop_error *err)
{
    bprop_trainer_state from, to;
    bprop_trainer_get_state(old, &from);
    bprop_trainer_get_state(t, &to);
    to.epoch = from.epoch;
    memcpy(to.rng, from.rng, sizeof to.rng);
    to.velocity = from.velocity;
    return bprop_trainer_set_state(t, &to, err);
}

/* Net.start_training(**settings): a new trainer (and an empty history) for n_train samples;
 * carry=True keeps the current trainer's momentum, epoch count and generator. */
PyObject *bp_net_start(bp_net *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"n_train", "epochs", "batch", "lr", "momentum", "nesterov",
                            "weight_decay", "schedule", "step_epochs", "step_gamma", "clip", "seed",
                            "shuffle", "threads", "parallel", "reproducible", "carry", NULL};
    int carry = 0;
    bprop_train_config c;
    bprop_train_config_default(&c);
    Py_ssize_t n = 0, epochs = 0, batch = 0, step_epochs = 0;
    const char *schedule = NULL, *parallel = NULL;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nnnffpfsnffKpisp|p", names, &n, &epochs, &batch,
                                     &c.lr, &c.momentum, &c.nesterov, &c.weight_decay, &schedule,
                                     &step_epochs, &c.step_gamma, &c.clip_norm, &seed, &c.shuffle,
                                     &c.threads, &parallel, &c.reproducible, &carry))
        return NULL;
    if (bp_net_check_free(self))
        return NULL;
    if (n < 1 || epochs < 1 || batch < 1 || step_epochs < 1)
        return PyErr_Format(PyExc_ValueError, "n_train, epochs, batch and step_epochs must be positive");
    c.epochs = (size_t)epochs;
    c.batch = (size_t)batch;
    c.step_epochs = (size_t)step_epochs;
    c.seed = (uint64_t)seed;
    if (bprop_schedule_parse(schedule, &c.schedule) != BPROP_OK)
        return PyErr_Format(PyExc_ValueError, "schedule must be 'constant', 'step' or 'cosine', not '%s'", schedule);
    if (bprop_parallel_parse(parallel, &c.parallel) != BPROP_OK)
        return PyErr_Format(PyExc_ValueError, "parallel must be 'auto', 'data' or 'hidden', not '%s'", parallel);
    bprop_error err = {0};
    bprop_trainer *t = NULL;
    bprop_status st = bprop_train_config_check(&c, &err);
    if (st == BPROP_OK)
        st = bprop_trainer_create(self->model, &c, (size_t)n, &t, &err);
    if (st == BPROP_OK && carry && self->trainer)
        st = carry_state(self->trainer, t, &err);
    if (st != BPROP_OK) {
        bprop_trainer_free(t);
        return bp_raise(&err, st);
    }
    PyObject *history = PyList_New(0);
    if (!history) {
        bprop_trainer_free(t);
        return NULL;
    }
    bprop_trainer_free(self->trainer);
    self->trainer = t;
    self->trainer_n = (size_t)n;
    bprop_trainer_set_cancel(t, &self->cancel);
    Py_SETREF(self->history, history);
    Py_RETURN_NONE;
}

PyObject *bp_net_stop(bp_net *self, PyObject *unused)
{
    (void)unused;
    if (bp_net_check_free(self))
        return NULL;
    bprop_trainer_free(self->trainer);
    self->trainer = NULL;
    self->trainer_n = 0;
    Py_RETURN_NONE;
}

/* Where training stood before an epoch, so that an interrupted epoch can be undone: parameters,
 * provenance and the trainer's state (momentum, permutation, shuffling generator). */
typedef struct snapshot {
    float *params;          /* (layout.total) */
    bprop_provenance info;
    bprop_trainer_state state;
    size_t *perm;           /* (n_train) */
    float *velocity;        /* (layout.total) */
} snapshot;

static void snapshot_free(snapshot *s)
{
    PyMem_Free(s->params);
    PyMem_Free(s->perm);
    PyMem_Free(s->velocity);
}

static int snapshot_take(const bp_net *self, snapshot *s)
{
    const bprop_model *m = self->model;
    memset(s, 0, sizeof *s);
    bprop_trainer_get_state(self->trainer, &s->state);
    s->params = PyMem_Malloc(m->layout.total * sizeof(float));
    s->velocity = PyMem_Malloc(s->state.params * sizeof(float));
    s->perm = PyMem_Malloc(s->state.n_train * sizeof(size_t));
    if (!s->params || !s->velocity || !s->perm) {
        snapshot_free(s);
        PyErr_NoMemory();
        return -1;
    }
    memcpy(s->params, m->params, m->layout.total * sizeof(float));
    memcpy(s->velocity, s->state.velocity, s->state.params * sizeof(float));
    memcpy(s->perm, s->state.perm, s->state.n_train * sizeof(size_t));
    s->state.velocity = s->velocity;
    s->state.perm = s->perm;
    s->info = m->info;
    return 0;
}

static void snapshot_restore(bp_net *self, snapshot *s)
{
    bprop_model *m = self->model;
    memcpy(m->params, s->params, m->layout.total * sizeof(float));
    m->info = s->info;
    bprop_error err = {0};
    if (bprop_trainer_set_state(self->trainer, &s->state, &err) != BPROP_OK) {
        /* Cannot happen (the state came from this trainer); drop the trainer rather than keep
         * one that stands elsewhere than the model. */
        bprop_trainer_free(self->trainer);
        self->trainer = NULL;
        self->trainer_n = 0;
    }
}

/* The progress callback when a wakeup fd watches for signals: Python's C signal handler writes
 * a byte to the pipe whose read end this is (signal.set_wakeup_fd), so a byte there means a
 * signal arrived; the trainer then stops after the step in progress. Called between steps by
 * one thread, without the GIL: only read(), poll() and the flag.
 * gate_fd is for the tests, one end of a socket pair: at the first step the callback writes a
 * byte to it (the trainer is inside the epoch) and waits (up to GATE_MS) for a byte back, which
 * another Python thread can only send if this one has released the GIL. */
enum { GATE_MS = 60000 };

typedef struct watch {
    int fd, gate_fd;
    int gate_opened;  /* -1 no gate, 0 closed (timed out), 1 a byte arrived */
    int stops;        /* times a signal stopped the epoch and its handlers let it go on */
    volatile sig_atomic_t *cancel;
} watch;

static int watch_step(void *user, size_t step, size_t steps, double loss, double acc)
{
    (void)step, (void)steps, (void)loss, (void)acc;
    watch *w = user;
    unsigned char buf[64];
    if (w->gate_fd >= 0 && w->gate_opened < 0) {
        struct pollfd p = {.fd = w->gate_fd, .events = POLLIN};
        w->gate_opened = write(w->gate_fd, "r", 1) == 1 && poll(&p, 1, GATE_MS) == 1 &&
                         read(w->gate_fd, buf, 1) == 1;
    }
    if (w->fd >= 0 && read(w->fd, buf, sizeof buf) > 0)
        *w->cancel = 1;
    return 0;
}

/* One epoch with the GIL released. A stop for a signal runs Python's handlers (with the GIL);
 * when they raise (KeyboardInterrupt), *raised is set; otherwise the epoch continues where it
 * stopped (bitwise as without the stop). */
static bprop_status run_epoch(bp_net *self, const bprop_dataset *d, watch *w,
                              bprop_epoch_stats *stats, bprop_error *err, int *raised)
{
    w->stops = 0;
    bprop_status st;
    *raised = 0;
    self->busy = 1;
    for (;;) {
        self->cancel = 0;
        Py_BEGIN_ALLOW_THREADS
        st = bprop_trainer_epoch(self->trainer, d, w->fd >= 0 || w->gate_fd >= 0 ? watch_step : NULL,
                                 w, stats, err);
        Py_END_ALLOW_THREADS
        if (st != BPROP_E_CANCELLED)
            break;
        if (PyErr_CheckSignals() < 0) {
            *raised = 1;
            break;
        }
        w->stops++;
    }
    self->busy = 0;
    return st;
}

/* The epoch's figures as a dict; val_loss and val_acc are None until a validation set fills them,
 * data_address is where the trainer read the features (the tests check it is X's own). */
static PyObject *epoch_record(const bprop_epoch_stats *s, const void *data)
{
    PyObject *r = Py_BuildValue("{snsnsdsdsdsdsdsd}", "epoch", (Py_ssize_t)s->epoch, "steps",
                                (Py_ssize_t)s->steps, "train_loss", s->train_loss, "train_acc",
                                s->train_acc, "seconds", s->seconds, "samples_per_s",
                                s->samples_per_s, "reduce_seconds", s->reduce_seconds, "lr", s->lr);
    PyObject *norms = Py_BuildValue("(dddd)", s->grad_norm[BPROP_W1], s->grad_norm[BPROP_B1],
                                    s->grad_norm[BPROP_W2], s->grad_norm[BPROP_B2]);
    PyObject *addr = PyLong_FromVoidPtr((void *)data);
    int bad = !r || !norms || !addr || PyDict_SetItemString(r, "grad_norm", norms) ||
              PyDict_SetItemString(r, "data_address", addr) ||
              PyDict_SetItemString(r, "val_loss", Py_None) || PyDict_SetItemString(r, "val_acc", Py_None);
    Py_XDECREF(norms);
    Py_XDECREF(addr);
    if (bad)
        Py_CLEAR(r);
    return r;
}

static int put_bool(PyObject *d, const char *key, int value)
{
    return PyDict_SetItemString(d, key, value ? Py_True : Py_False);
}

/* Loss and accuracy on the validation set (already standardised as the model wants). */
static int evaluate_val(bp_net *self, PyObject *xv, PyObject *yv, int threads, bprop_eval *out)
{
    PyArrayObject *x = NULL, *y = NULL;
    const bprop_model *m = self->model;
    if (bp_as_x(xv, m->inputs, &x))
        return -1;
    if (bp_as_y(yv, (size_t)PyArray_DIM(x, 0), m->classes, &y)) {
        Py_DECREF(x);
        return -1;
    }
    bprop_dataset d = bp_view(x, y, m->classes);
    bprop_error err = {0};
    bprop_status st;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = bprop_evaluate(m, &d, threads, out, NULL, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(x);
    Py_DECREF(y);
    return st == BPROP_OK ? 0 : (bp_raise(&err, st), -1);
}

/* The signal watch: a non-blocking pipe installed as Python's wakeup fd for the epoch. Done here
 * rather than in Python so that no bytecode (where a pending KeyboardInterrupt would be raised)
 * runs between installing the pipe and remembering what it replaced. A wakeup fd that someone
 * else (an asyncio loop) holds is left alone, and so is any failure: the epoch then runs
 * without the watch and a signal takes effect when it returns. */
typedef struct signal_watch {
    int fds[2];    /* read, write end; -1 when not installed */
    PyObject *old; /* the wakeup fd the pipe replaced */
} signal_watch;

static PyObject *set_wakeup_fd(PyObject *fd)
{
    PyObject *mod = PyImport_ImportModule("signal"), *r = NULL;
    PyObject *f = mod ? PyObject_GetAttrString(mod, "set_wakeup_fd") : NULL;
    if (f)
        r = PyObject_CallOneArg(f, fd);
    Py_XDECREF(f);
    Py_XDECREF(mod);
    return r;
}

static void watch_close(signal_watch *sw)
{
    for (int i = 0; i < 2; i++)
        if (sw->fds[i] >= 0)
            close(sw->fds[i]);
    sw->fds[0] = sw->fds[1] = -1;
    Py_CLEAR(sw->old);
}

static void watch_install(signal_watch *sw)
{
    sw->fds[0] = sw->fds[1] = -1;
    sw->old = NULL;
    if (pipe2(sw->fds, O_NONBLOCK | O_CLOEXEC) != 0) {
        sw->fds[0] = sw->fds[1] = -1;
        return;
    }
    PyObject *w = PyLong_FromLong(sw->fds[1]);
    sw->old = w ? set_wakeup_fd(w) : NULL;
    Py_XDECREF(w);
    if (!sw->old) { /* not the main thread, or no signal module: no watch */
        PyErr_Clear();
        watch_close(sw);
    } else if (PyLong_AsLong(sw->old) != -1) { /* someone else's: give it back */
        PyObject *back = set_wakeup_fd(sw->old);
        if (!back)
            PyErr_Clear();
        Py_XDECREF(back);
        watch_close(sw);
    }
}

/* Put the replaced wakeup fd back, keeping any exception the epoch raised. */
static void watch_remove(signal_watch *sw)
{
    if (sw->fds[0] < 0)
        return;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *back = set_wakeup_fd(sw->old);
    if (!back)
        PyErr_Clear();
    Py_XDECREF(back);
    PyErr_Restore(type, value, tb);
    watch_close(sw);
}

/* Train one epoch over (X, y), prepared as the model wants them (standardised when it is), with
 * the trainer's sample count. An interrupted epoch is undone (the model and trainer stand at the
 * last finished epoch) and the exception propagates. */
static PyObject *epoch_run(bp_net *self, PyArrayObject *x, PyArrayObject *y, int signals, int gate_fd)
{
    bprop_dataset d = bp_view(x, y, self->model->classes);
    snapshot snap;
    if (snapshot_take(self, &snap))
        return NULL;
    signal_watch sw = {.fds = {-1, -1}};
    if (signals) {
        watch_install(&sw);
        /* A signal that came before the pipe was in place (set_wakeup_fd itself lets go of the
         * GIL) wrote its byte elsewhere: handle it now, before the epoch starts. */
        if (PyErr_CheckSignals() < 0) {
            watch_remove(&sw);
            snapshot_free(&snap);
            return NULL;
        }
    }
    watch w = {.fd = sw.fds[0], .gate_fd = gate_fd, .gate_opened = -1, .cancel = &self->cancel};
    bprop_epoch_stats stats = {0};
    bprop_error err = {0};
    int raised = 0;
    bprop_status st = run_epoch(self, &d, &w, &stats, &err, &raised);
    watch_remove(&sw);
    if (raised)
        snapshot_restore(self, &snap);
    snapshot_free(&snap);
    if (raised)
        return NULL;
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    PyObject *rec = epoch_record(&stats, d.x);
    PyObject *stops = PyLong_FromLong(w.stops);
    if (rec && (!stops || PyDict_SetItemString(rec, "signal_stops", stops) ||
                (gate_fd >= 0 && put_bool(rec, "gate_opened", w.gate_opened == 1))))
        Py_CLEAR(rec);
    Py_XDECREF(stops);
    return rec;
}

PyObject *bp_net_epoch(bp_net *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"X", "y", "X_val", "y_val", "threads", "signals", "gate_fd", NULL};
    PyObject *xo, *yo, *xv = Py_None, *yv = Py_None;
    int threads = 0, signals = 0, gate_fd = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|OOipi", names, &xo, &yo, &xv, &yv, &threads,
                                     &signals, &gate_fd))
        return NULL;
    if (bp_net_check_free(self))
        return NULL;
    if (!self->trainer)
        return PyErr_Format(PyExc_RuntimeError, "no training run is set up (start_training first)");
    PyArrayObject *x = NULL, *y = NULL;
    if (bp_as_x(xo, self->model->inputs, &x))
        return NULL;
    if (bp_as_y(yo, (size_t)PyArray_DIM(x, 0), self->model->classes, &y)) {
        Py_DECREF(x);
        return NULL;
    }
    PyObject *rec = NULL;
    if ((size_t)PyArray_DIM(x, 0) != self->trainer_n)
        PyErr_Format(PyExc_ValueError, "X has %zd samples, the training run was set up for %zu",
                     (Py_ssize_t)PyArray_DIM(x, 0), self->trainer_n);
    else
        rec = epoch_run(self, x, y, signals, gate_fd);
    Py_DECREF(x);
    Py_DECREF(y);
    bprop_eval val = {0};
    if (rec && xv != Py_None && evaluate_val(self, xv, yv, threads, &val) == 0) {
        PyObject *vl = PyFloat_FromDouble(val.loss), *va = PyFloat_FromDouble(val.accuracy);
        if (!vl || !va || PyDict_SetItemString(rec, "val_loss", vl) || PyDict_SetItemString(rec, "val_acc", va))
            Py_CLEAR(rec);
        Py_XDECREF(vl);
        Py_XDECREF(va);
    } else if (rec && xv != Py_None) {
        Py_CLEAR(rec);
    }
    if (rec && PyList_Append(self->history, rec))
        Py_CLEAR(rec);
    return rec;
}
