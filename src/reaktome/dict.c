/* Trampolines for patched dicts. */
#include "activation.h"

PyTypeObject *rk_dict_shadow;

static objobjargproc base_ass_subscript;
static binaryfunc base_inplace_or;
static initproc base_init;
static PyObject *base_copy, *base_update, *base_setdefault, *base_pop, *base_popitem, *base_clear;

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

/* update, |= and __init__ run the base implementation on self, so the table
 * grows exactly as for a plain dict.  To know what it assigns, the same
 * arguments are first applied to a private dict: a single-use iterable of
 * pairs is read into a list beforehand so that both runs see the same pairs
 * (mappings are read twice).  Each event reports the value the base stored. */

typedef struct {
    PyObject *const *args; /* positional arguments then keyword values */
    Py_ssize_t nargs;
    PyObject *kwnames;
    PyObject *other;  /* for |= */
    PyObject *tuple;  /* for __init__ */
    PyObject *kwargs; /* for __init__ */
    int kind;         /* 0 update, 1 |=, 2 __init__ */
} update_call;

static PyObject *
apply_update(PyObject *target, update_call *call)
{
    switch (call->kind) {
    case 0:
        return rk_call_base(base_update, target, call->args, (size_t)call->nargs, call->kwnames);
    case 1:
        return base_inplace_or(target, call->other);
    default:
        return base_init(target, call->tuple, call->kwargs) < 0 ? NULL : Py_NewRef(Py_None);
    }
}

static PyObject *absent;   /* marks "no previous value" */
static PyObject *str_keys; /* "keys" */

/* A source both runs read identically: dicts and mappings as they are, any
 * other iterable as a list of its items.  New reference. */
static PyObject *
stable_source(PyObject *arg)
{
    if (PyDict_CheckExact(arg)) {
        return Py_NewRef(arg);
    }
    /* The base type's own test: does the argument have a keys attribute?
     * (An interned name, and no AttributeError raised and cleared per call.) */
    PyObject *keys = NULL;
#if PY_VERSION_HEX >= 0x030D0000
    int found = PyObject_GetOptionalAttr(arg, str_keys, &keys);
#else
    int found = _PyObject_LookupAttr(arg, str_keys, &keys);
#endif
    if (found < 0) {
        return NULL;
    }
    if (found > 0) {
        Py_DECREF(keys);
        return Py_NewRef(arg);
    }
    return PySequence_List(arg);
}

static PyObject *
update_hooked(PyObject *self, update_call *call)
{
    PyObject *staged = PyDict_New();
    if (staged == NULL) {
        return NULL;
    }
    PyObject *res = apply_update(staged, call);
    if (res == NULL) {
        /* The real run below fails at the same place and raises the error. */
        if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
            Py_DECREF(staged);
            return NULL;
        }
        PyErr_Clear();
    }
    Py_XDECREF(res);
    PyObject *keys = PyDict_Keys(staged);
    Py_ssize_t n = keys ? PyList_GET_SIZE(keys) : 0;
    PyObject *olds = keys ? PyList_New(n) : NULL;
    if (olds == NULL) {
        Py_XDECREF(keys);
        Py_DECREF(staged);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *old = PyDict_GetItemWithError(self, PyList_GET_ITEM(keys, i));
        if (old == NULL && PyErr_Occurred()) {
            PyErr_Clear();
        }
        PyList_SET_ITEM(olds, i, Py_NewRef(old ? old : absent));
    }
    res = apply_update(self, call);
    rk_saved_exc saved;
    rk_exc_save(&saved);
    /* Read every stored value before any hook can run. */
    PyObject *news = PyList_New(n);
    if (news == NULL) {
        PyErr_WriteUnraisable(self);
    }
    else {
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *now = PyDict_GetItemWithError(self, PyList_GET_ITEM(keys, i));
            if (now == NULL && PyErr_Occurred()) {
                PyErr_Clear();
            }
            PyList_SET_ITEM(news, i, Py_NewRef(now ? now : absent));
        }
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *key = PyList_GET_ITEM(keys, i);
            PyObject *old = PyList_GET_ITEM(olds, i), *now = PyList_GET_ITEM(news, i);
            if (now == absent) {
                continue;
            }
            if (old == absent) {
                reaktome_call_dunder(self, rk_additem, key, NULL, now);
            }
            else {
                reaktome_call_dunder(self, rk_setitem, key, old, now);
            }
        }
        Py_DECREF(news);
    }
    rk_exc_restore(&saved);
    Py_DECREF(olds);
    Py_DECREF(keys);
    Py_DECREF(staged);
    return res;
}

static PyObject *
rk_dict_update(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if ((!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) ||
        nargs > 1) {
        return rk_call_base(base_update, self, args, (size_t)nargsf, kwnames);
    }
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    PyObject *stack = PyTuple_New(nargs + nkw); /* owns the (stable) arguments */
    if (stack == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs + nkw; i++) {
        PyObject *arg = (i < nargs) ? stable_source(args[i]) : Py_NewRef(args[i]);
        if (arg == NULL) {
            Py_DECREF(stack);
            return NULL;
        }
        PyTuple_SET_ITEM(stack, i, arg);
    }
    update_call call = {&PyTuple_GET_ITEM(stack, 0), nargs, kwnames, NULL, NULL, NULL, 0};
    PyObject *res = update_hooked(self, &call);
    Py_DECREF(stack);
    return res;
}

static PyObject *
rk_dict_inplace_or(PyObject *self, PyObject *other)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) {
        return base_inplace_or(self, other);
    }
    PyObject *source = stable_source(other);
    if (source == NULL) {
        return NULL;
    }
    update_call call = {NULL, 0, NULL, source, NULL, NULL, 1};
    PyObject *res = update_hooked(self, &call);
    Py_DECREF(source);
    return res;
}

static int
rk_dict_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    if ((!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_setitem)) ||
        PyTuple_GET_SIZE(args) > 1) {
        return base_init(self, args, kwds);
    }
    PyObject *tuple;
    if (PyTuple_GET_SIZE(args) == 0) {
        tuple = Py_NewRef(args);
    }
    else {
        PyObject *source = stable_source(PyTuple_GET_ITEM(args, 0));
        tuple = source ? PyTuple_Pack(1, source) : NULL;
        Py_XDECREF(source);
        if (tuple == NULL) {
            return -1;
        }
    }
    update_call call = {NULL, 0, NULL, NULL, tuple, kwds, 2};
    PyObject *res = update_hooked(self, &call);
    Py_DECREF(tuple);
    if (res == NULL) {
        return -1;
    }
    Py_DECREF(res);
    return 0;
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

/* copy.copy(): what dict.copy() gives, exactly as for a plain dict. */
static PyObject *
rk_dict_copy_module(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return rk_call_base(base_copy, self, NULL, 0, NULL);
}

static PyMethodDef rk_dict_methods[] = {
    {"__copy__", RK_CAST_FUNC(rk_dict_copy_module), METH_NOARGS, NULL},
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
    if (absent == NULL) {
        absent = PyObject_CallNoArgs((PyObject *)&PyBaseObject_Type);
        str_keys = PyUnicode_InternFromString("keys");
        if (absent == NULL || str_keys == NULL) {
            return -1;
        }
    }
    if (rk_dict_shadow == NULL) {
        base_ass_subscript = PyDict_Type.tp_as_mapping->mp_ass_subscript;
        base_inplace_or = PyDict_Type.tp_as_number->nb_inplace_or;
        base_init = PyDict_Type.tp_init;
        const rk_method_ref methods[] = {{&base_copy, "copy"},
                       {&base_update, "update"},
                       {&base_setdefault, "setdefault"},
                       {&base_pop, "pop"},       {&base_popitem, "popitem"},
                       {&base_clear, "clear"}};
        if (rk_load_base_methods(&PyDict_Type, methods, RK_COUNT(methods)) < 0) {
            return -1;
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
    return rk_add_function(m, &patch_dict_def);
}
