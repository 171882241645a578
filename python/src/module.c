/* module.c: the bprop._core module: model files, IDX data, the seeded split and the Net type. */
#include "core.h"

/* load(path) -> Net: any .bpm file (bprop train, bprop-mpi, Net.save). */
static PyObject *mod_load(PyObject *mod, PyObject *arg)
{
    (void)mod;
    PyObject *path = NULL;
    if (!PyUnicode_FSConverter(arg, &path))
        return NULL;
    bprop_model *m = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_model_load(PyBytes_AS_STRING(path), &m, &err);
    Py_DECREF(path);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    return bp_net_wrap(m);
}

/* Hand a dataset the library made over to Python as (X float32, y) arrays (copies), then free it. */
static PyObject *dataset_arrays(bprop_dataset *d)
{
    bprop_error err = {0};
    bprop_status st = bprop_dataset_to_float(d, &err); /* IDX pixels come as bytes: the same floats */
    if (st != BPROP_OK) {
        bprop_dataset_free(d);
        return bp_raise(&err, st);
    }
    PyObject *r = Py_BuildValue("(NN)", bp_x_array(d), bp_y_array(d));
    bprop_dataset_free(d);
    return r;
}

/* load_idx(images, labels) -> (X float32 (n, dim) in [0, 1], y int32): bprop_dataset_load_idx,
 * the reader `bprop train --train IMAGES --train-labels LABELS` uses. */
static PyObject *mod_load_idx(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *images = NULL, *labels = NULL;
    if (!PyArg_ParseTuple(args, "O&O&", PyUnicode_FSConverter, &images, PyUnicode_FSConverter, &labels))
        return NULL;
    bprop_dataset *d = NULL;
    bprop_error err = {0};
    bprop_status st;
    Py_BEGIN_ALLOW_THREADS
    st = bprop_dataset_load_idx(PyBytes_AS_STRING(images), PyBytes_AS_STRING(labels), 0, &d, &err);
    Py_END_ALLOW_THREADS
    Py_DECREF(images);
    Py_DECREF(labels);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    return dataset_arrays(d);
}

/* split(X, y, classes, fraction, seed) -> (X_train, y_train, X_val, y_val):
 * bprop_dataset_split, as `bprop train --val-fraction F --seed S` splits its training set. */
static PyObject *mod_split(PyObject *mod, PyObject *args)
{
    (void)mod;
    PyObject *xo, *yo;
    Py_ssize_t classes;
    double fraction;
    unsigned long long seed;
    if (!PyArg_ParseTuple(args, "OOndK", &xo, &yo, &classes, &fraction, &seed))
        return NULL;
    if (classes < 1 || !(fraction > 0.0 && fraction < 1.0))
        return PyErr_Format(PyExc_ValueError, "split: need classes >= 1 and 0 < fraction < 1");
    PyArrayObject *x = NULL, *y = NULL;
    if (bp_as_x(xo, 0, &x))
        return NULL;
    if (bp_as_y(yo, (size_t)PyArray_DIM(x, 0), (size_t)classes, &y)) {
        Py_DECREF(x);
        return NULL;
    }
    bprop_dataset d = bp_view(x, y, (size_t)classes), *tr = NULL, *va = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_dataset_split(&d, fraction, (uint64_t)seed, &tr, &va, &err);
    Py_DECREF(x);
    Py_DECREF(y);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    PyObject *a = dataset_arrays(tr), *b = dataset_arrays(va);
    if (!a || !b) {
        Py_XDECREF(a);
        Py_XDECREF(b);
        return NULL;
    }
    PyObject *r = PySequence_Concat(a, b);
    Py_DECREF(a);
    Py_DECREF(b);
    return r;
}

/* isa() -> the kernel set in use ("generic", "avx2", "avx512"). */
static PyObject *mod_isa(PyObject *mod, PyObject *unused)
{
    (void)mod, (void)unused;
    return PyUnicode_FromString(bprop_isa());
}

static PyMethodDef mod_methods[] = {
    {"load", mod_load, METH_O, "load(path) -> Net from a .bpm model file"},
    {"load_idx", mod_load_idx, METH_VARARGS, "load_idx(images, labels) -> (X, y) as bprop train reads them"},
    {"split", mod_split, METH_VARARGS, "split(X, y, classes, fraction, seed) -> (X_train, y_train, X_val, y_val)"},
    {"isa", mod_isa, METH_NOARGS, "isa() -> the kernel set in use"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef mod_def = {
    PyModuleDef_HEAD_INIT, "bprop._core", "The C part of bprop: libbprop through the NumPy C API.",
    -1, mod_methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__core(void)
{
    if (bp_py_import_numpy() < 0)
        return NULL;
    if (PyType_Ready(&bp_net_type) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&mod_def);
    if (!m)
        return NULL;
    Py_INCREF(&bp_net_type);
    if (PyModule_AddObject(m, "Net", (PyObject *)&bp_net_type) < 0 ||
        PyModule_AddStringConstant(m, "version", BPROP_VERSION_STRING) < 0) {
        Py_DECREF(&bp_net_type);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
