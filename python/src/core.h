/* core.h: what the files of the bprop._core extension module share (internal). */
#ifndef BPROP_PY_CORE_H
#define BPROP_PY_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#define PY_ARRAY_UNIQUE_SYMBOL bprop_core_ARRAY_API
#ifndef BPROP_CORE_MODULE
#define NO_IMPORT_ARRAY
#endif
#include <numpy/arrayobject.h>

#include <signal.h>

#include "bprop.h"

/* Load NumPy's C API table (numpy_api.c); -1 with a Python exception set on failure. */
int bp_py_import_numpy(void);

/* A network and, while it trains, its trainer. The trainer borrows the model, so both live and
 * die together here. `busy` is set while the GIL is released around a call that uses the model
 * (training, prediction, evaluation), so a second Python thread cannot use it at the same time. */
typedef struct bp_net {
    PyObject_HEAD
    bprop_model *model;       /* owned */
    bprop_trainer *trainer;   /* owned; NULL when no training run is set up */
    size_t trainer_n;         /* the samples the trainer was made for */
    PyObject *history;        /* list: one dict per epoch finished by the current trainer */
    int busy;
    volatile sig_atomic_t cancel; /* the trainer's cancellation flag */
} bp_net;

extern PyTypeObject bp_net_type;

/* Raise the Python exception that matches st, with err's message. Returns NULL. */
PyObject *bp_raise(const bprop_error *err, bprop_status st);
/* RuntimeError when another thread is using the network now; 0 when free. */
int bp_net_check_free(const bp_net *self);
/* A new Net owning m (freed on failure). */
PyObject *bp_net_wrap(bprop_model *m);

/* X as a 2-D C-contiguous aligned float32 array: the same object when it already is one (no
 * copy), otherwise converted once. dim != 0 also checks the column count. */
int bp_as_x(PyObject *obj, size_t dim, PyArrayObject **out);
/* y as a 1-D int32 array of n labels, each in [0, classes). */
int bp_as_y(PyObject *obj, size_t n, size_t classes, PyArrayObject **out);
/* A dataset that borrows the arrays' memory (never passed to bprop_dataset_free). */
bprop_dataset bp_view(PyArrayObject *x, PyArrayObject *y, size_t classes);
/* A new float32 copy of x with the model's standardisation applied; x itself when the model
 * has none (a new reference). */
PyArrayObject *bp_standardized(const bprop_model *m, PyArrayObject *x);
/* A new (n, dim) float32 array holding d's features, starting on a 64-byte boundary as the
 * library's own data sets do; and a new int32 array of its labels. */
PyObject *bp_x_array(const bprop_dataset *d);
PyObject *bp_y_array(const bprop_dataset *d);

/* train.c: the methods of Net that train. */
PyObject *bp_net_start(bp_net *self, PyObject *args, PyObject *kw);
PyObject *bp_net_stop(bp_net *self, PyObject *unused);
PyObject *bp_net_epoch(bp_net *self, PyObject *args, PyObject *kw);

/* predict.c: the methods of Net that predict and evaluate. */
PyObject *bp_net_predict_proba(bp_net *self, PyObject *args, PyObject *kw);
PyObject *bp_net_evaluate(bp_net *self, PyObject *args, PyObject *kw);

#endif
