/* Trampolines for patched sets.  Set hooks get the element as key; old and
 * new are None. */
#include "activation.h"

PyTypeObject *rk_set_shadow;

static initproc base_init;
static PyObject *base_discard, *base_remove, *base_pop, *base_clear, *base_intersection_update,
    *base_symmetric_difference_update;

/* Add one element; fires additem when the set grew.  0 or -1. */
static int
add_hooked(PyObject *self, PyObject *element)
{
    Py_ssize_t n0 = PySet_GET_SIZE(self);
    if (PySet_Add(self, element) < 0) {
        return -1;
    }
    if (PySet_GET_SIZE(self) > n0) {
        reaktome_call_dunder(self, rk_additem, element, NULL, NULL);
    }
    return 0;
}

/* Add every element of every iterable (each materialised first, so s |= s and
 * s.update(s) read a stable source). */
static int
update_hooked(PyObject *self, PyObject *const *others, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *items = PySequence_Tuple(others[i]);
        if (items == NULL) {
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(items); j++) {
            if (add_hooked(self, PyTuple_GET_ITEM(items, j)) < 0) {
                Py_DECREF(items);
                return -1;
            }
        }
        Py_DECREF(items);
    }
    return 0;
}

static int
difference_update_hooked(PyObject *self, PyObject *const *others, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *items = PySequence_Tuple(others[i]);
        if (items == NULL) {
            return -1;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(items); j++) {
            PyObject *element = PyTuple_GET_ITEM(items, j);
            int rc = PySet_Discard(self, element);
            if (rc < 0) {
                Py_DECREF(items);
                return -1;
            }
            if (rc == 1) {
                reaktome_call_dunder(self, rk_discarditem, element, NULL, NULL);
            }
        }
        Py_DECREF(items);
    }
    return 0;
}

/* Fire discarditem for elements of before that left self, then additem for
 * elements of self that were not in before. */
static void
fire_diff(PyObject *self, PyObject *before_items, PyObject *before_set)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(before_items); j++) {
        PyObject *element = PyTuple_GET_ITEM(before_items, j);
        int rc = PySet_Contains(self, element);
        if (rc < 0) {
            PyErr_WriteUnraisable(self);
        }
        else if (rc == 0) {
            reaktome_call_dunder(self, rk_discarditem, element, NULL, NULL);
        }
    }
    if (before_set == NULL) {
        return;
    }
    PyObject *now = PySequence_Tuple(self);
    if (now == NULL) {
        PyErr_WriteUnraisable(self);
        return;
    }
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(now); j++) {
        PyObject *element = PyTuple_GET_ITEM(now, j);
        int rc = PySet_Contains(before_set, element);
        if (rc < 0) {
            PyErr_WriteUnraisable(self);
        }
        else if (rc == 0) {
            reaktome_call_dunder(self, rk_additem, element, NULL, NULL);
        }
    }
    Py_DECREF(now);
}

/* Run a base operation that may both add and remove elements, then report
 * the difference (also when the operation failed halfway). */
static PyObject *
diff_hooked(PyObject *self, PyObject *descr, PyObject *const *args, Py_ssize_t nargs,
            int may_add)
{
    int wants = activation_has_hook(self, rk_discarditem) ||
                (may_add && activation_has_hook(self, rk_additem));
    if (!wants) {
        return rk_call_base(descr, self, args, (size_t)nargs, NULL);
    }
    PyObject *before_items = PySequence_Tuple(self);
    if (before_items == NULL) {
        return NULL;
    }
    PyObject *before_set = NULL;
    if (may_add) {
        before_set = PySet_New(before_items);
        if (before_set == NULL) {
            Py_DECREF(before_items);
            return NULL;
        }
    }
    PyObject *res = rk_call_base(descr, self, args, (size_t)nargs, NULL);
    rk_saved_exc saved;
    rk_exc_save(&saved);
    fire_diff(self, before_items, before_set);
    rk_exc_restore(&saved);
    Py_DECREF(before_items);
    Py_XDECREF(before_set);
    return res;
}

static PyObject *
rk_set_add(PyObject *self, PyObject *element)
{
    if (add_hooked(self, element) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rk_set_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (update_hooked(self, args, nargs) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
rk_set_difference_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (difference_update_hooked(self, args, nargs) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
removal_hooked(PyObject *self, PyObject *descr, PyObject *element)
{
    Py_ssize_t n0 = PySet_GET_SIZE(self);
    PyObject *res = rk_call_base(descr, self, &element, 1, NULL);
    if (res != NULL && PySet_GET_SIZE(self) < n0) {
        reaktome_call_dunder(self, rk_discarditem, element, NULL, NULL);
    }
    return res;
}

static PyObject *
rk_set_discard(PyObject *self, PyObject *element)
{
    return removal_hooked(self, base_discard, element);
}

static PyObject *
rk_set_remove(PyObject *self, PyObject *element)
{
    return removal_hooked(self, base_remove, element);
}

static PyObject *
rk_set_pop(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *res = rk_call_base(base_pop, self, NULL, 0, NULL);
    if (res != NULL) {
        reaktome_call_dunder(self, rk_discarditem, res, NULL, NULL);
    }
    return res;
}

static PyObject *
rk_set_clear(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return diff_hooked(self, base_clear, NULL, 0, 0);
}

static PyObject *
rk_set_intersection_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return diff_hooked(self, base_intersection_update, args, nargs, 0);
}

static PyObject *
rk_set_symmetric_difference_update(PyObject *self, PyObject *other)
{
    return diff_hooked(self, base_symmetric_difference_update, &other, 1, 1);
}

/* In-place operators accept only sets and frozensets, like the base type. */
static PyObject *
rk_set_ior(PyObject *self, PyObject *other)
{
    if (!PyAnySet_Check(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (update_hooked(self, &other, 1) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
rk_set_isub(PyObject *self, PyObject *other)
{
    if (!PyAnySet_Check(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (difference_update_hooked(self, &other, 1) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
inplace_diff(PyObject *self, PyObject *descr, PyObject *other, int may_add)
{
    if (!PyAnySet_Check(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *res = diff_hooked(self, descr, &other, 1, may_add);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    return Py_NewRef(self);
}

static PyObject *
rk_set_iand(PyObject *self, PyObject *other)
{
    return inplace_diff(self, base_intersection_update, other, 0);
}

static PyObject *
rk_set_ixor(PyObject *self, PyObject *other)
{
    return inplace_diff(self, base_symmetric_difference_update, other, 1);
}

static int
rk_set_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    if (!activation_has_hook(self, rk_additem) && !activation_has_hook(self, rk_discarditem)) {
        return base_init(self, args, kwds);
    }
    PyObject *before_items = PySequence_Tuple(self);
    if (before_items == NULL) {
        return -1;
    }
    PyObject *before_set = PySet_New(before_items);
    if (before_set == NULL) {
        Py_DECREF(before_items);
        return -1;
    }
    int rc = base_init(self, args, kwds);
    rk_saved_exc saved;
    rk_exc_save(&saved);
    fire_diff(self, before_items, before_set);
    rk_exc_restore(&saved);
    Py_DECREF(before_items);
    Py_DECREF(before_set);
    return rc;
}

static PyObject *
rk_set_repr(PyObject *self)
{
    /* The base repr names the type of non-exact sets: print a plain set's. */
    if (PySet_GET_SIZE(self) == 0) {
        return PyUnicode_FromString("set()");
    }
    int status = Py_ReprEnter(self);
    if (status != 0) {
        return status < 0 ? NULL : PyUnicode_FromString("set(...)");
    }
    PyObject *result = NULL;
    PyObject *items = PySequence_List(self);
    PyObject *text = items ? PyObject_Repr(items) : NULL;
    if (text != NULL) {
        PyObject *inner = PyUnicode_Substring(text, 1, PyUnicode_GET_LENGTH(text) - 1);
        if (inner != NULL) {
            result = PyUnicode_FromFormat("{%U}", inner);
            Py_DECREF(inner);
        }
    }
    Py_XDECREF(text);
    Py_XDECREF(items);
    Py_ReprLeave(self);
    return result;
}

static PyObject *
rk_set_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Pickles and copies are plain, unpatched sets. */
    PyObject *items = PySequence_List(self);
    if (items == NULL) {
        return NULL;
    }
    return Py_BuildValue("(O(N))", (PyObject *)&PySet_Type, items);
}

static PyObject *
rk_set_reduce_ex(PyObject *self, PyObject *Py_UNUSED(protocol))
{
    return rk_set_reduce(self, NULL);
}

static PyMethodDef rk_set_methods[] = {
    {"add", RK_CAST_FUNC(rk_set_add), METH_O, NULL},
    {"update", RK_CAST_FUNC(rk_set_update), METH_FASTCALL, NULL},
    {"discard", RK_CAST_FUNC(rk_set_discard), METH_O, NULL},
    {"remove", RK_CAST_FUNC(rk_set_remove), METH_O, NULL},
    {"pop", RK_CAST_FUNC(rk_set_pop), METH_NOARGS, NULL},
    {"clear", RK_CAST_FUNC(rk_set_clear), METH_NOARGS, NULL},
    {"difference_update", RK_CAST_FUNC(rk_set_difference_update), METH_FASTCALL, NULL},
    {"intersection_update", RK_CAST_FUNC(rk_set_intersection_update), METH_FASTCALL, NULL},
    {"symmetric_difference_update", RK_CAST_FUNC(rk_set_symmetric_difference_update), METH_O,
     NULL},
    {"__reduce__", RK_CAST_FUNC(rk_set_reduce), METH_NOARGS, NULL},
    {"__reduce_ex__", RK_CAST_FUNC(rk_set_reduce_ex), METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
py_patch_set(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "patch_set() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *allowed[] = {rk_additem, rk_discarditem};
    return rk_patch_container(args[0], args[1], &PySet_Type, rk_set_shadow, "patch_set",
                              allowed, 2);
}

static PyMethodDef patch_set_def = {
    "patch_set", RK_CAST_FUNC(py_patch_set), METH_FASTCALL,
    "patch_set(s, hooks)\n--\n\nMerge hooks into the set's entry (None removes a hook)."};

int
reaktome_patch_set(PyObject *m)
{
    if (rk_set_shadow == NULL) {
        base_init = PySet_Type.tp_init;
        struct {
            PyObject **slot;
            const char *name;
        } methods[] = {{&base_discard, "discard"},
                       {&base_remove, "remove"},
                       {&base_pop, "pop"},
                       {&base_clear, "clear"},
                       {&base_intersection_update, "intersection_update"},
                       {&base_symmetric_difference_update, "symmetric_difference_update"}};
        for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
            *methods[i].slot = rk_base_method(&PySet_Type, methods[i].name);
            if (*methods[i].slot == NULL) {
                return -1;
            }
        }
        PyType_Slot slots[] = {
            {Py_tp_dealloc, (void *)rk_shadow_dealloc},
            {Py_tp_new, (void *)rk_shadow_new},
            {Py_tp_init, (void *)rk_set_init},
            {Py_tp_repr, (void *)rk_set_repr},
            {Py_tp_getset, rk_shadow_getset},
            {Py_tp_methods, rk_set_methods},
            {Py_nb_inplace_or, (void *)rk_set_ior},
            {Py_nb_inplace_subtract, (void *)rk_set_isub},
            {Py_nb_inplace_and, (void *)rk_set_iand},
            {Py_nb_inplace_xor, (void *)rk_set_ixor},
            {0, NULL},
        };
        rk_set_shadow = rk_make_shadow(&PySet_Type, "reaktome.set", slots);
        if (rk_set_shadow == NULL) {
            return -1;
        }
    }
    PyObject *func = PyCFunction_NewEx(&patch_set_def, NULL, NULL);
    if (func == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(m, "patch_set", func);
    Py_DECREF(func);
    return rc;
}
