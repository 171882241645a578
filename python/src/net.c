/* net.c: the Net type: a bprop_model (and its trainer) with save, tensors and statistics. */
#include "core.h"

#include <string.h>

static void net_dealloc(bp_net *self)
{
    bprop_trainer_free(self->trainer);
    bprop_model_free(self->model);
    Py_XDECREF(self->history);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *net_alloc(PyTypeObject *type, bprop_model *m)
{
    bp_net *self = (bp_net *)type->tp_alloc(type, 0);
    if (!self) {
        bprop_model_free(m);
        return NULL;
    }
    self->model = m;
    self->history = PyList_New(0);
    if (!self->history) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

PyObject *bp_net_wrap(bprop_model *m) { return net_alloc(&bp_net_type, m); }

/* Net(inputs, hidden, classes, bias, seed): bprop_model_create, as `bprop train` calls it. */
static PyObject *net_new(PyTypeObject *type, PyObject *args, PyObject *kw)
{
    static char *names[] = {"inputs", "hidden", "classes", "bias", "seed", NULL};
    Py_ssize_t inputs, hidden, classes;
    int bias = 1;
    unsigned long long seed = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "nnn|pK", names, &inputs, &hidden, &classes, &bias, &seed))
        return NULL;
    if (inputs < 1 || hidden < 1 || classes < 1)
        return PyErr_Format(PyExc_ValueError, "network sizes must be positive, got %zd-%zd-%zd",
                            inputs, hidden, classes);
    bprop_model *m = NULL;
    bprop_error err = {0};
    bprop_status st = bprop_model_create((size_t)inputs, (size_t)hidden, (size_t)classes, bias,
                                         (uint64_t)seed, &m, &err);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    return net_alloc(type, m);
}

static PyObject *net_save(bp_net *self, PyObject *arg)
{
    PyObject *path = NULL;
    if (bp_net_check_free(self) || !PyUnicode_FSConverter(arg, &path))
        return NULL;
    bprop_error err = {0};
    bprop_status st = bprop_model_save(self->model, PyBytes_AS_STRING(path), &err);
    Py_DECREF(path);
    if (st != BPROP_OK)
        return bp_raise(&err, st);
    Py_RETURN_NONE;
}

/* A new float32 array copy of count floats at src, shaped (rows, cols) or (rows) when cols is 0. */
static PyObject *float_copy(const float *src, size_t rows, size_t cols)
{
    if (!src)
        Py_RETURN_NONE;
    npy_intp shape[2] = {(npy_intp)rows, (npy_intp)cols};
    PyObject *a = PyArray_SimpleNew(cols ? 2 : 1, shape, NPY_FLOAT32);
    if (a)
        memcpy(PyArray_DATA((PyArrayObject *)a), src, rows * (cols ? cols : 1) * sizeof(float));
    return a;
}

/* (W1 (inputs, hidden), b1 (hidden) or None, W2 (hidden, classes), b2 (classes) or None), copies. */
static PyObject *net_tensors(bp_net *self, PyObject *unused)
{
    (void)unused;
    const bprop_model *m = self->model;
    return Py_BuildValue("(NNNN)", float_copy(bprop_model_tensor(m, BPROP_W1), m->inputs, m->hidden),
                         float_copy(bprop_model_tensor(m, BPROP_B1), m->hidden, 0),
                         float_copy(bprop_model_tensor(m, BPROP_W2), m->hidden, m->classes),
                         float_copy(bprop_model_tensor(m, BPROP_B2), m->classes, 0));
}

/* The flat parameter block as one float32 array (a copy), for bitwise comparisons. */
static PyObject *net_params(bp_net *self, PyObject *unused)
{
    (void)unused;
    return float_copy(self->model->params, self->model->layout.total, 0);
}

/* (mean, scale) copies, or None without standardisation. */
static PyObject *net_standardization(bp_net *self, PyObject *unused)
{
    (void)unused;
    const bprop_model *m = self->model;
    if (!m->std_mean)
        Py_RETURN_NONE;
    return Py_BuildValue("(NN)", float_copy(m->std_mean, m->inputs, 0), float_copy(m->std_scale, m->inputs, 0));
}

/* Statistics of X (as `bprop train --standardize` takes them from its training split) stored in
 * the model. */
static PyObject *net_fit_standardization(bp_net *self, PyObject *arg)
{
    PyArrayObject *x = NULL;
    if (bp_net_check_free(self) || bp_as_x(arg, self->model->inputs, &x))
        return NULL;
    size_t dim = self->model->inputs;
    float *mean = PyMem_Malloc(dim * sizeof *mean), *scale = PyMem_Malloc(dim * sizeof *scale);
    bprop_dataset d = bp_view(x, NULL, 0);
    bprop_status st = (mean && scale) ? bprop_dataset_feature_stats(&d, mean, scale) : BPROP_E_NOMEM;
    if (st == BPROP_OK)
        st = bprop_model_set_standardization(self->model, mean, scale);
    PyMem_Free(mean);
    PyMem_Free(scale);
    Py_DECREF(x);
    if (st != BPROP_OK)
        return bp_raise(NULL, st);
    Py_RETURN_NONE;
}

/* X as the network sees it: a standardised copy, or X itself (as float32) without statistics. */
static PyObject *net_standardize(bp_net *self, PyObject *arg)
{
    PyArrayObject *x = NULL;
    if (bp_as_x(arg, self->model->inputs, &x))
        return NULL;
    PyArrayObject *s = bp_standardized(self->model, x);
    Py_DECREF(x);
    return (PyObject *)s;
}

/* Set d[key] = value, taking the reference to value; -1 on failure. */
static int put(PyObject *d, const char *key, PyObject *value)
{
    int rc = value ? PyDict_SetItemString(d, key, value) : -1;
    Py_XDECREF(value);
    return rc;
}

/* The model's provenance (what `bprop info` shows) as a dict. */
static PyObject *net_info(bp_net *self, void *unused)
{
    (void)unused;
    const bprop_provenance *p = &self->model->info;
    const bprop_train_config *c = &p->config;
    PyObject *d = PyDict_New();
    if (!d || put(d, "epochs_done", PyLong_FromUnsignedLongLong(p->epochs_done)) ||
        put(d, "samples_seen", PyLong_FromUnsignedLongLong(p->samples_seen)) ||
        put(d, "threads", PyLong_FromLong(p->threads)) || put(d, "ranks", PyLong_FromLong(p->ranks)) ||
        put(d, "train_loss", PyFloat_FromDouble(p->train_loss)) ||
        put(d, "train_acc", PyFloat_FromDouble(p->train_acc)) ||
        put(d, "test_loss", PyFloat_FromDouble(p->test_loss)) ||
        put(d, "test_acc", PyFloat_FromDouble(p->test_acc)) ||
        put(d, "created_unix", PyLong_FromLongLong(p->created_unix)) ||
        put(d, "saved_unix", PyLong_FromLongLong(p->saved_unix)) ||
        put(d, "data", PyUnicode_DecodeUTF8(p->data, (Py_ssize_t)strnlen(p->data, sizeof p->data), "replace")) ||
        put(d, "isa", PyUnicode_DecodeUTF8(p->isa, (Py_ssize_t)strnlen(p->isa, sizeof p->isa), "replace")) ||
        put(d, "epochs", PyLong_FromSize_t(c->epochs)) || put(d, "batch", PyLong_FromSize_t(c->batch)) ||
        put(d, "lr", PyFloat_FromDouble(c->lr)) || put(d, "momentum", PyFloat_FromDouble(c->momentum)) ||
        put(d, "nesterov", PyBool_FromLong(c->nesterov)) ||
        put(d, "weight_decay", PyFloat_FromDouble(c->weight_decay)) ||
        put(d, "schedule", PyUnicode_FromString(bprop_schedule_name(c->schedule))) ||
        put(d, "step_epochs", PyLong_FromSize_t(c->step_epochs)) ||
        put(d, "step_gamma", PyFloat_FromDouble(c->step_gamma)) ||
        put(d, "clip", PyFloat_FromDouble(c->clip_norm)) ||
        put(d, "seed", PyLong_FromUnsignedLongLong(c->seed)) ||
        put(d, "shuffle", PyBool_FromLong(c->shuffle)) ||
        put(d, "parallel", PyUnicode_FromString(bprop_parallel_name(c->parallel))) ||
        put(d, "reproducible", PyBool_FromLong(c->reproducible)))
        Py_CLEAR(d);
    return d;
}

/* What the model was trained on, as `bprop info` shows it (truncated to fit). */
static PyObject *net_set_data(bp_net *self, PyObject *arg)
{
    const char *s = PyUnicode_AsUTF8(arg);
    if (!s)
        return NULL;
    snprintf(self->model->info.data, sizeof self->model->info.data, "%s", s);
    Py_RETURN_NONE;
}

static PyObject *net_shape(bp_net *self, void *unused)
{
    (void)unused;
    const bprop_model *m = self->model;
    return Py_BuildValue("(nnnO)", (Py_ssize_t)m->inputs, (Py_ssize_t)m->hidden,
                         (Py_ssize_t)m->classes, m->has_bias ? Py_True : Py_False);
}

static PyObject *net_history(bp_net *self, void *unused)
{
    (void)unused;
    return PyList_GetSlice(self->history, 0, PyList_GET_SIZE(self->history));
}

static PyObject *net_trainer_samples(bp_net *self, void *unused)
{
    (void)unused;
    return PyLong_FromSize_t(self->trainer ? self->trainer_n : 0);
}

#define KW_METHOD(f) ((PyCFunction)(void (*)(void))(f)), METH_VARARGS | METH_KEYWORDS

static PyMethodDef net_methods[] = {
    {"save", (PyCFunction)net_save, METH_O, "save(path): write the model as a .bpm file"},
    {"tensors", (PyCFunction)net_tensors, METH_NOARGS, "(W1, b1, W2, b2) as float32 copies"},
    {"params", (PyCFunction)net_params, METH_NOARGS, "the flat parameter block (a copy)"},
    {"standardization", (PyCFunction)net_standardization, METH_NOARGS, "(mean, scale) or None"},
    {"fit_standardization", (PyCFunction)net_fit_standardization, METH_O,
     "store the per-feature statistics of X in the model"},
    {"standardize", (PyCFunction)net_standardize, METH_O, "X with the model's standardisation"},
    {"set_data", (PyCFunction)net_set_data, METH_O, "set the provenance's data description"},
    {"start_training", KW_METHOD(bp_net_start), "set up a trainer (see bprop_train_config)"},
    {"stop_training", (PyCFunction)bp_net_stop, METH_NOARGS, "free the trainer"},
    {"epoch", KW_METHOD(bp_net_epoch), "train one epoch; returns its figures as a dict"},
    {"predict_proba", KW_METHOD(bp_net_predict_proba), "class probabilities (float32)"},
    {"evaluate", KW_METHOD(bp_net_evaluate), "(loss, accuracy) on labelled data"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef net_getset[] = {
    {"shape", (getter)net_shape, NULL, "(inputs, hidden, classes, has_bias)", NULL},
    {"info", (getter)net_info, NULL, "provenance of the model", NULL},
    {"history", (getter)net_history, NULL, "figures of the epochs of the current trainer", NULL},
    {"trainer_samples", (getter)net_trainer_samples, NULL, "samples of the current trainer, 0 if none", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

PyTypeObject bp_net_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "bprop._core.Net",
    .tp_basicsize = sizeof(bp_net),
    .tp_dealloc = (destructor)net_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Net(inputs, hidden, classes, bias=True, seed=0): a bprop network (libbprop model)",
    .tp_methods = net_methods,
    .tp_getset = net_getset,
    .tp_new = net_new,
};
