/* predict.c: class probabilities and evaluation of a Net, with the GIL released. */
#include "core.h"

/* Net.predict_proba(X, threads=0): (n, classes) float32 probabilities; X is standardised on a
 * copy when the model carries statistics, else read in place. */
PyObject *bp_net_predict_proba(bp_net *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"X", "threads", NULL};
    PyObject *xo;
    int threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "O|i", names, &xo, &threads))
        return NULL;
    PyArrayObject *x = NULL;
    if (bp_net_check_free(self) || bp_as_x(xo, self->model->inputs, &x))
        return NULL;
    PyArrayObject *xs = bp_standardized(self->model, x);
    Py_DECREF(x);
    if (!xs)
        return NULL;
    npy_intp shape[2] = {PyArray_DIM(xs, 0), (npy_intp)self->model->classes};
    PyArrayObject *probs = (PyArrayObject *)PyArray_SimpleNew(2, shape, NPY_FLOAT32);
    if (!probs) {
        Py_DECREF(xs);
        return NULL;
    }
    bprop_error err = {0};
    bprop_status st;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = bprop_predict(self->model, PyArray_DATA(xs), (size_t)shape[0], threads, PyArray_DATA(probs), &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(xs);
    if (st != BPROP_OK) {
        Py_DECREF(probs);
        return bp_raise(&err, st);
    }
    return (PyObject *)probs;
}

/* Net.evaluate(X, y, threads=0): (mean loss, accuracy); X as predict_proba takes it, y encoded
 * labels in [0, classes). */
PyObject *bp_net_evaluate(bp_net *self, PyObject *args, PyObject *kw)
{
    static char *names[] = {"X", "y", "threads", NULL};
    PyObject *xo, *yo;
    int threads = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "OO|i", names, &xo, &yo, &threads))
        return NULL;
    const bprop_model *m = self->model;
    PyArrayObject *x = NULL, *y = NULL, *xs = NULL;
    if (bp_net_check_free(self) || bp_as_x(xo, m->inputs, &x))
        return NULL;
    if (bp_as_y(yo, (size_t)PyArray_DIM(x, 0), m->classes, &y) == 0)
        xs = bp_standardized(m, x);
    Py_DECREF(x);
    if (!xs) {
        Py_XDECREF(y);
        return NULL;
    }
    bprop_dataset d = bp_view(xs, y, m->classes);
    bprop_eval out = {0};
    bprop_error err = {0};
    bprop_status st;
    self->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    st = bprop_evaluate(m, &d, threads, &out, NULL, &err);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    Py_DECREF(xs);
    Py_DECREF(y);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    return Py_BuildValue("(dd)", out.loss, out.accuracy);
}
