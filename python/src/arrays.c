/* arrays.c: NumPy arrays as bprop data sets (borrowed, no copy when possible), and errors. */
#include "core.h"

#include <stdint.h>
#include <string.h>

/* Floats of slack that let a buffer start on a 64-byte boundary (numpy aligns to 16 bytes). */
#define BP_ALIGN_FLOATS 16

PyObject *bp_raise(const bprop_error *err, bprop_status st)
{
    PyObject *type = PyExc_RuntimeError;
    switch (st) {
    case BPROP_E_NOMEM:
        type = PyExc_MemoryError;
        break;
    case BPROP_E_IO:
        type = PyExc_OSError;
        break;
    case BPROP_E_ARG: case BPROP_E_SIZE: case BPROP_E_FORMAT: case BPROP_E_MISMATCH:
    case BPROP_E_LABEL: case BPROP_E_NONFINITE: case BPROP_E_VERSION: case BPROP_E_CHECKSUM:
        type = PyExc_ValueError;
        break;
    case BPROP_E_DIVERGED:
        type = PyExc_FloatingPointError;
        break;
    default:
        break;
    }
    const char *msg = err && err->message[0] ? err->message : bprop_strerror(st);
    PyErr_SetString(type, msg);
    return NULL;
}

int bp_net_check_free(const bp_net *self)
{
    if (!self->busy)
        return 0;
    PyErr_SetString(PyExc_RuntimeError, "this bprop network is in use by another thread");
    return -1;
}

int bp_as_x(PyObject *obj, size_t dim, PyArrayObject **out)
{
    /* NPY_ARRAY_IN_ARRAY = C-contiguous and aligned (to the float): the kernels read rows with
     * unaligned vector loads, so 64-byte alignment is not needed and a NumPy buffer is used as
     * it is. */
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, NPY_FLOAT32, 2, 2, NPY_ARRAY_IN_ARRAY);
    if (!a)
        return -1;
    npy_intp n = PyArray_DIM(a, 0), d = PyArray_DIM(a, 1);
    if (n < 1 || d < 1) {
        PyErr_Format(PyExc_ValueError, "X has shape (%zd, %zd): at least one sample and one feature "
                     "are needed", (Py_ssize_t)n, (Py_ssize_t)d);
        Py_DECREF(a);
        return -1;
    }
    if (dim && (size_t)d != dim) {
        PyErr_Format(PyExc_ValueError, "X has %zd features, but the network expects %zu",
                     (Py_ssize_t)d, dim);
        Py_DECREF(a);
        return -1;
    }
    *out = a;
    return 0;
}

int bp_as_y(PyObject *obj, size_t n, size_t classes, PyArrayObject **out)
{
    PyArrayObject *a = (PyArrayObject *)PyArray_FROMANY(obj, NPY_INT32, 1, 1, NPY_ARRAY_IN_ARRAY);
    if (!a)
        return -1;
    if ((size_t)PyArray_DIM(a, 0) != n) {
        PyErr_Format(PyExc_ValueError, "y has %zd labels for %zu samples", (Py_ssize_t)PyArray_DIM(a, 0), n);
        Py_DECREF(a);
        return -1;
    }
    const int32_t *y = PyArray_DATA(a);
    for (size_t i = 0; i < n; i++)
        if (y[i] < 0 || (size_t)y[i] >= classes) {
            PyErr_Format(PyExc_ValueError, "sample %zu: label %d outside 0..%zu", i, (int)y[i], classes - 1);
            Py_DECREF(a);
            return -1;
        }
    *out = a;
    return 0;
}

bprop_dataset bp_view(PyArrayObject *x, PyArrayObject *y, size_t classes)
{
    /* Designated initialisers: any field not named here is zero (the float32 layout). */
    return (bprop_dataset){
        .n = (size_t)PyArray_DIM(x, 0),
        .dim = (size_t)PyArray_DIM(x, 1),
        .classes = y ? classes : 0,
        .x = PyArray_DATA(x),
        .y = y ? PyArray_DATA(y) : NULL,
    };
}

PyArrayObject *bp_standardized(const bprop_model *m, PyArrayObject *x)
{
    if (!m->std_mean) {
        Py_INCREF(x);
        return x;
    }
    PyArrayObject *c = (PyArrayObject *)PyArray_NewCopy(x, NPY_CORDER);
    if (!c)
        return NULL;
    bprop_dataset d = bp_view(c, NULL, 0);
    Py_BEGIN_ALLOW_THREADS
    bprop_dataset_standardize(&d, m->std_mean, m->std_scale);
    Py_END_ALLOW_THREADS
    return c;
}

/* A new (n, dim) float32 array whose data starts on a 64-byte boundary, as the library's own
 * data sets do (numpy aligns to 16): a view into a slightly larger buffer that it keeps alive. */
static PyObject *aligned_matrix(size_t n, size_t dim)
{
    npy_intp total = (npy_intp)(n * dim + BP_ALIGN_FLOATS);
    PyArrayObject *buf = (PyArrayObject *)PyArray_SimpleNew(1, &total, NPY_FLOAT32);
    if (!buf)
        return NULL;
    char *data = PyArray_DATA(buf);
    size_t skip = (64 - (uintptr_t)data % 64) % 64;
    npy_intp shape[2] = {(npy_intp)n, (npy_intp)dim};
    Py_INCREF(PyArray_DESCR(buf));
    PyObject *view = PyArray_NewFromDescr(&PyArray_Type, PyArray_DESCR(buf), 2, shape, NULL,
                                          data + skip, NPY_ARRAY_CARRAY, NULL);
    if (!view || PyArray_SetBaseObject((PyArrayObject *)view, (PyObject *)buf) < 0) {
        Py_XDECREF(view);
        Py_DECREF(buf);
        return NULL;
    }
    return view; /* owns buf now */
}

PyObject *bp_x_array(const bprop_dataset *d)
{
    PyObject *a = aligned_matrix(d->n, d->dim);
    if (a)
        memcpy(PyArray_DATA((PyArrayObject *)a), d->x, d->n * d->dim * sizeof(float));
    return a;
}

PyObject *bp_y_array(const bprop_dataset *d)
{
    npy_intp shape[1] = {(npy_intp)d->n};
    PyObject *a = PyArray_SimpleNew(1, shape, NPY_INT32);
    if (a && d->y)
        memcpy(PyArray_DATA((PyArrayObject *)a), d->y, d->n * sizeof(int32_t));
    else if (a)
        memset(PyArray_DATA((PyArrayObject *)a), 0, d->n * sizeof(int32_t));
    return a;
}
