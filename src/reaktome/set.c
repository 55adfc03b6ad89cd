/* Trampolines for patched sets.  Set hooks get the element as key; old and
 * new are None. */
#include "activation.h"

PyTypeObject *rk_set_shadow;

static initproc base_init;
static PyObject *base_copy, *base_update, *base_difference_update;
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

/* Arguments for a base bulk method: sets, frozensets and exact dicts are
 * passed as they are (the base type merges them specially, and that decides
 * the table layout, hence the iteration order); any other iterable is read
 * once into a tuple, which the base type consumes element by element exactly
 * as it would the iterable.  New tuple. */
static PyObject *
stable_args(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *out = PyTuple_New(nargs);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject *arg = args[i];
        PyObject *stable = (PyAnySet_Check(arg) || PyDict_CheckExact(arg)) ? Py_NewRef(arg)
                                                                           : PySequence_Tuple(arg);
        if (stable == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(out, i, stable);
    }
    return out;
}

/* The elements the bulk operation will add (adding) or remove (!adding), in
 * the order the base type processes them, without duplicates.  Collection
 * stops quietly at the first element that cannot be looked up (unhashable):
 * the base method stops there too, with the proper error. */
static PyObject *
candidates(PyObject *self, PyObject *stable, int adding)
{
    PyObject *found = PyList_New(0);
    PyObject *seen = PySet_New(NULL);
    if (found == NULL || seen == NULL) {
        Py_XDECREF(found);
        Py_XDECREF(seen);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(stable); i++) {
        PyObject *it = PyObject_GetIter(PyTuple_GET_ITEM(stable, i));
        if (it == NULL) {
            goto stop;
        }
        PyObject *element;
        while ((element = PyIter_Next(it)) != NULL) {
            int present = PySet_Contains(self, element);
            int fresh = present < 0 ? -1 : PySet_Contains(seen, element);
            int take = fresh == 0 && (adding ? present == 0 : present == 1);
            if (present < 0 || fresh < 0 ||
                (take && (PySet_Add(seen, element) < 0 || PyList_Append(found, element) < 0))) {
                Py_DECREF(element);
                Py_DECREF(it);
                goto stop;
            }
            Py_DECREF(element);
        }
        Py_DECREF(it);
        if (PyErr_Occurred()) {
            goto stop;
        }
    }
    Py_DECREF(seen);
    return found;
stop:
    if (PyErr_ExceptionMatches(PyExc_MemoryError)) {
        Py_DECREF(found);
        Py_DECREF(seen);
        return NULL;
    }
    PyErr_Clear();
    Py_DECREF(seen);
    return found;
}

/* update / difference_update (and |= / -=): the base method does the work,
 * so the table ends up exactly as for a plain set; the hooks report the
 * candidates whose membership really changed (also after a failure). */
static PyObject *
bulk_hooked(PyObject *self, PyObject *descr, PyObject *const *args, Py_ssize_t nargs, int adding)
{
    if (!activation_has_hook(self, adding ? rk_additem : rk_discarditem)) {
        return rk_call_base(descr, self, args, (size_t)nargs, NULL);
    }
    PyObject *stable = stable_args(args, nargs);
    if (stable == NULL) {
        return NULL;
    }
    PyObject *moving = candidates(self, stable, adding);
    if (moving == NULL) {
        Py_DECREF(stable);
        return NULL;
    }
    PyObject *res = rk_call_base(descr, self, &PyTuple_GET_ITEM(stable, 0), (size_t)nargs, NULL);
    rk_saved_exc saved;
    rk_exc_save(&saved);
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(moving); i++) {
        PyObject *element = PyList_GET_ITEM(moving, i);
        int present = PySet_Contains(self, element);
        if (present < 0) {
            PyErr_WriteUnraisable(self);
        }
        else if (present == adding) {
            reaktome_call_dunder(self, adding ? rk_additem : rk_discarditem, element, NULL, NULL);
        }
    }
    rk_exc_restore(&saved);
    Py_DECREF(moving);
    Py_DECREF(stable);
    return res;
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
    return bulk_hooked(self, base_update, args, nargs, 1);
}

static PyObject *
rk_set_difference_update(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    return bulk_hooked(self, base_difference_update, args, nargs, 0);
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

/* In-place operators accept only sets and frozensets, like the base type;
 * set.update / set.difference_update do what they do for one argument. */
static PyObject *
inplace_bulk(PyObject *self, PyObject *descr, PyObject *other, int adding)
{
    if (!PyAnySet_Check(other)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    PyObject *res = bulk_hooked(self, descr, &other, 1, adding);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    return Py_NewRef(self);
}

static PyObject *
rk_set_ior(PyObject *self, PyObject *other)
{
    return inplace_bulk(self, base_update, other, 1);
}

static PyObject *
rk_set_isub(PyObject *self, PyObject *other)
{
    return inplace_bulk(self, base_difference_update, other, 0);
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

/* copy.copy(): what set.copy() gives, exactly as for a plain set. */
static PyObject *
rk_set_copy_module(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return rk_call_base(base_copy, self, NULL, 0, NULL);
}

static PyMethodDef rk_set_methods[] = {
    {"__copy__", RK_CAST_FUNC(rk_set_copy_module), METH_NOARGS, NULL},
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
        const rk_method_ref methods[] = {{&base_copy, "copy"}, {&base_update, "update"},
                       {&base_difference_update, "difference_update"},
                       {&base_discard, "discard"},
                       {&base_remove, "remove"},
                       {&base_pop, "pop"},
                       {&base_clear, "clear"},
                       {&base_intersection_update, "intersection_update"},
                       {&base_symmetric_difference_update, "symmetric_difference_update"}};
        if (rk_load_base_methods(&PySet_Type, methods, RK_COUNT(methods)) < 0) {
            return -1;
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
    return rk_add_function(m, &patch_set_def);
}
