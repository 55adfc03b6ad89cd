/* Trampolines for patched dicts. */
#include "activation.h"

PyTypeObject *rk_dict_shadow;

static objobjargproc base_ass_subscript;
static binaryfunc base_inplace_or;
static initproc base_init;
static PyObject *base_update, *base_setdefault, *base_pop, *base_popitem, *base_clear;

/* d[key] = value (value != NULL) with the matching hook. */
static int
setitem_hooked(PyObject *self, PyObject *key, PyObject *value)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) {
        return base_ass_subscript(self, key, value);
    }
    PyObject *old = PyDict_GetItemWithError(self, key);
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    Py_XINCREF(old);
    if (base_ass_subscript(self, key, value) < 0) {
        Py_XDECREF(old);
        return -1;
    }
    if (old != NULL) {
        reaktome_call_dunder(self, rk_setitem, key, old, value);
        Py_DECREF(old);
    }
    else {
        reaktome_call_dunder(self, rk_additem, key, NULL, value);
    }
    return 0;
}

static int
rk_dict_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    if (value != NULL) {
        return setitem_hooked(self, key, value);
    }
    if (!activation_has_hook(self, rk_delitem)) {
        return base_ass_subscript(self, key, NULL);
    }
    PyObject *old = PyDict_GetItemWithError(self, key);
    if (old == NULL && PyErr_Occurred()) {
        return -1;
    }
    Py_XINCREF(old);
    if (base_ass_subscript(self, key, NULL) < 0) {
        Py_XDECREF(old);
        return -1;
    }
    reaktome_call_dunder(self, rk_delitem, key, old, NULL);
    Py_XDECREF(old);
    return 0;
}

/* Apply the (private) dict staged to self, one hooked assignment per key. */
static int
apply_staged(PyObject *self, PyObject *staged)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(staged, &pos, &key, &value)) {
        Py_INCREF(key);
        Py_INCREF(value);
        int rc = setitem_hooked(self, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            return -1;
        }
    }
    return 0;
}

/* The base implementation parses the arguments into a fresh dict (identical
 * argument handling and error messages, and d.update(d) reads a stable
 * source); its entries are then assigned to self through the hooks.  Entries
 * collected before an error are still applied, like the base method does. */
static int
finish_staged(PyObject *self, PyObject *staged, int failed)
{
    if (failed) {
        rk_saved_exc saved;
        rk_exc_save(&saved);
        if (apply_staged(self, staged) < 0) {
            PyErr_WriteUnraisable(self);
        }
        rk_exc_restore(&saved);
        Py_DECREF(staged);
        return -1;
    }
    int rc = apply_staged(self, staged);
    Py_DECREF(staged);
    return rc;
}

static PyObject *
rk_dict_update(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) {
        return rk_call_base(base_update, self, args, (size_t)nargsf, kwnames);
    }
    PyObject *staged = PyDict_New();
    if (staged == NULL) {
        return NULL;
    }
    PyObject *res = rk_call_base(base_update, staged, args, (size_t)nargsf, kwnames);
    Py_XDECREF(res);
    if (finish_staged(self, staged, res == NULL) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rk_dict_inplace_or(PyObject *self, PyObject *other)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) {
        return base_inplace_or(self, other);
    }
    PyObject *staged = PyDict_New();
    if (staged == NULL) {
        return NULL;
    }
    PyObject *res = base_inplace_or(staged, other);
    if (res == Py_NotImplemented) {
        Py_DECREF(staged);
        return res;
    }
    Py_XDECREF(res);
    if (finish_staged(self, staged, res == NULL) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static int
rk_dict_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) {
        return base_init(self, args, kwds);
    }
    PyObject *staged = PyDict_New();
    if (staged == NULL) {
        return -1;
    }
    int rc = base_init(staged, args, kwds);
    return finish_staged(self, staged, rc < 0);
}

static PyObject *
rk_dict_setdefault(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n0 = PyDict_GET_SIZE(self);
    PyObject *res = rk_call_base(base_setdefault, self, args, (size_t)nargs, NULL);
    if (res != NULL && PyDict_GET_SIZE(self) > n0) {
        reaktome_call_dunder(self, rk_additem, args[0], NULL, res);
    }
    return res;
}

static PyObject *
rk_dict_pop(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t n0 = PyDict_GET_SIZE(self);
    PyObject *res = rk_call_base(base_pop, self, args, (size_t)nargs, NULL);
    if (res != NULL && PyDict_GET_SIZE(self) < n0) {
        reaktome_call_dunder(self, rk_delitem, args[0], res, NULL);
    }
    return res;
}

static PyObject *
rk_dict_popitem(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *res = rk_call_base(base_popitem, self, NULL, 0, NULL);
    if (res != NULL && PyTuple_Check(res) && PyTuple_GET_SIZE(res) == 2) {
        reaktome_call_dunder(self, rk_delitem, PyTuple_GET_ITEM(res, 0), PyTuple_GET_ITEM(res, 1),
                             NULL);
    }
    return res;
}

static PyObject *
rk_dict_clear(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *items = NULL;
    if (activation_has_hook(self, rk_delitem)) {
        items = PyDict_Items(self);
        if (items == NULL) {
            return NULL;
        }
    }
    PyObject *res = rk_call_base(base_clear, self, NULL, 0, NULL);
    if (res != NULL && items != NULL) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
            PyObject *pair = PyList_GET_ITEM(items, i);
            reaktome_call_dunder(self, rk_delitem, PyTuple_GET_ITEM(pair, 0),
                                 PyTuple_GET_ITEM(pair, 1), NULL);
        }
    }
    Py_XDECREF(items);
    return res;
}

static PyObject *
rk_dict_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Pickles and copies are plain, unpatched dicts. */
    PyObject *items = PyDict_Items(self);
    if (items == NULL) {
        return NULL;
    }
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    if (it == NULL) {
        return NULL;
    }
    return Py_BuildValue("(O()OON)", (PyObject *)&PyDict_Type, Py_None, Py_None, it);
}

static PyObject *
rk_dict_reduce_ex(PyObject *self, PyObject *Py_UNUSED(protocol))
{
    return rk_dict_reduce(self, NULL);
}

static PyMethodDef rk_dict_methods[] = {
    {"update", RK_CAST_FUNC(rk_dict_update), METH_FASTCALL | METH_KEYWORDS, NULL},
    {"setdefault", RK_CAST_FUNC(rk_dict_setdefault), METH_FASTCALL, NULL},
    {"pop", RK_CAST_FUNC(rk_dict_pop), METH_FASTCALL, NULL},
    {"popitem", RK_CAST_FUNC(rk_dict_popitem), METH_NOARGS, NULL},
    {"clear", RK_CAST_FUNC(rk_dict_clear), METH_NOARGS, NULL},
    {"__reduce__", RK_CAST_FUNC(rk_dict_reduce), METH_NOARGS, NULL},
    {"__reduce_ex__", RK_CAST_FUNC(rk_dict_reduce_ex), METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
py_patch_dict(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "patch_dict() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *allowed[] = {rk_additem, rk_setitem, rk_delitem};
    return rk_patch_container(args[0], args[1], &PyDict_Type, rk_dict_shadow, "patch_dict",
                              allowed, 3);
}

static PyMethodDef patch_dict_def = {
    "patch_dict", RK_CAST_FUNC(py_patch_dict), METH_FASTCALL,
    "patch_dict(d, hooks)\n--\n\nMerge hooks into the dict's entry (None removes a hook)."};

int
reaktome_patch_dict(PyObject *m)
{
    if (rk_dict_shadow == NULL) {
        base_ass_subscript = PyDict_Type.tp_as_mapping->mp_ass_subscript;
        base_inplace_or = PyDict_Type.tp_as_number->nb_inplace_or;
        base_init = PyDict_Type.tp_init;
        struct {
            PyObject **slot;
            const char *name;
        } methods[] = {{&base_update, "update"}, {&base_setdefault, "setdefault"},
                       {&base_pop, "pop"},       {&base_popitem, "popitem"},
                       {&base_clear, "clear"}};
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            *methods[i].slot = rk_base_method(&PyDict_Type, methods[i].name);
            if (*methods[i].slot == NULL) {
                return -1;
            }
        }
        PyType_Slot slots[] = {
            {Py_tp_dealloc, (void *)rk_shadow_dealloc},
            {Py_tp_new, (void *)rk_shadow_new},
            {Py_tp_init, (void *)rk_dict_init},
            {Py_tp_getset, rk_shadow_getset},
            {Py_tp_methods, rk_dict_methods},
            {Py_mp_ass_subscript, (void *)rk_dict_ass_subscript},
            {Py_nb_inplace_or, (void *)rk_dict_inplace_or},
            {0, NULL},
        };
        rk_dict_shadow = rk_make_shadow(&PyDict_Type, "reaktome.dict", slots);
        if (rk_dict_shadow == NULL) {
            return -1;
        }
    }
    PyObject *func = PyCFunction_NewEx(&patch_dict_def, NULL, NULL);
    if (func == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(m, "patch_dict", func);
    Py_DECREF(func);
    return rc;
}
