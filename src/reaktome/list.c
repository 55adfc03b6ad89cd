/* Trampolines for patched lists. */
#include "activation.h"

PyTypeObject *rk_list_shadow;

static objobjargproc base_ass_subscript;
static ssizeobjargproc base_ass_item;
static ssizeargfunc base_inplace_repeat;
static binaryfunc base_inplace_concat;
static initproc base_init;
static PyObject *base_copy, *base_extend, *base_pop, *base_remove, *base_clear, *base_sort,
    *base_reverse;

/* Items old[0:m] that stood at start.. were replaced by new[0:k] (tuples).
 * With only_changed, positions holding the same object fire nothing. */
static void
fire_replace(PyObject *self, Py_ssize_t start, PyObject *old, PyObject *new, int only_changed)
{
    Py_ssize_t m = old ? PyTuple_GET_SIZE(old) : 0;
    Py_ssize_t k = new ? PyTuple_GET_SIZE(new) : 0;
    Py_ssize_t common = m < k ? m : k;
    for (Py_ssize_t j = 0; j < common; j++) {
        PyObject *o = PyTuple_GET_ITEM(old, j), *n = PyTuple_GET_ITEM(new, j);
        if (!only_changed || o != n) {
            rk_fire_index(self, rk_setitem, start + j, o, n);
        }
    }
    for (Py_ssize_t j = common; j < k; j++) {
        rk_fire_index(self, rk_additem, start + j, NULL, PyTuple_GET_ITEM(new, j));
    }
    for (Py_ssize_t j = common; j < m; j++) {
        rk_fire_index(self, rk_delitem, start + j, PyTuple_GET_ITEM(old, j), NULL);
    }
}

static int
wants_any(PyObject *self)
{
    return activation_has_hook(self, rk_additem) || activation_has_hook(self, rk_setitem) ||
           activation_has_hook(self, rk_delitem);
}

static int
rk_list_ass_item(PyObject *self, Py_ssize_t i, PyObject *value)
{
    PyObject *name = value ? rk_setitem : rk_delitem;
    if (!activation_has_hook(self, name)) {
        return base_ass_item(self, i, value);
    }
    PyObject *old = NULL;
    if (i >= 0 && i < PyList_GET_SIZE(self)) {
        old = Py_NewRef(PyList_GET_ITEM(self, i));
    }
    if (base_ass_item(self, i, value) < 0) {
        Py_XDECREF(old);
        return -1;
    }
    rk_fire_index(self, name, i, old, value);
    Py_XDECREF(old);
    return 0;
}

static int
rk_list_ass_slice(PyObject *self, PyObject *slice, PyObject *value)
{
    if (value ? !wants_any(self) : !activation_has_hook(self, rk_delitem)) {
        return base_ass_subscript(self, slice, value);
    }
    Py_ssize_t start, stop, step;
    if (PySlice_Unpack(slice, &start, &stop, &step) < 0) {
        return -1;
    }
    PyObject *new = NULL;
    if (value != NULL) {
        /* Materialise first (this can run Python code), with the base type's
         * error messages; the tuple is also what the hooks report. */
        const char *message = step == 1 ? "can only assign an iterable"
                                        : "must assign iterable to extended slice";
        PyObject *fast = PySequence_Fast(value, message);
        if (fast == NULL) {
            return -1;
        }
        new = PySequence_Tuple(fast);
        Py_DECREF(fast);
        if (new == NULL) {
            return -1;
        }
    }
    Py_ssize_t len = PySlice_AdjustIndices(PyList_GET_SIZE(self), &start, &stop, step);
    PyObject *old = PyTuple_New(len);
    if (old == NULL) {
        Py_XDECREF(new);
        return -1;
    }
    for (Py_ssize_t j = 0; j < len; j++) {
        PyTuple_SET_ITEM(old, j, Py_NewRef(PyList_GET_ITEM(self, start + j * step)));
    }
    if (base_ass_subscript(self, slice, new) < 0) {
        Py_DECREF(old);
        Py_XDECREF(new);
        return -1;
    }
    if (step == 1) {
        fire_replace(self, start, old, new, 0);
    }
    else {
        for (Py_ssize_t j = 0; j < len; j++) {
            PyObject *o = PyTuple_GET_ITEM(old, j);
            if (new != NULL) {
                rk_fire_index(self, rk_setitem, start + j * step, o, PyTuple_GET_ITEM(new, j));
            }
            else {
                rk_fire_index(self, rk_delitem, start + j * step, o, NULL);
            }
        }
    }
    Py_DECREF(old);
    Py_XDECREF(new);
    return 0;
}

static int
rk_list_ass_subscript(PyObject *self, PyObject *key, PyObject *value)
{
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (i < 0) {
            i += PyList_GET_SIZE(self);
        }
        return rk_list_ass_item(self, i, value);
    }
    if (PySlice_Check(key)) {
        return rk_list_ass_slice(self, key, value);
    }
    return base_ass_subscript(self, key, value);
}

static PyObject *
rk_list_append(PyObject *self, PyObject *value)
{
    if (PyList_Append(self, value) < 0) {
        return NULL;
    }
    /* No Python code ran since the append: the element is the last one. */
    rk_fire_index(self, rk_additem, PyList_GET_SIZE(self) - 1, NULL, value);
    Py_RETURN_NONE;
}

static PyObject *
rk_list_insert(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "insert expected 2 arguments, got %zd", nargs);
        return NULL;
    }
    PyObject *index = PyNumber_Index(args[0]);
    if (index == NULL) {
        return NULL;
    }
    Py_ssize_t i = PyLong_AsSsize_t(index);
    Py_DECREF(index);
    if (i == -1 && PyErr_Occurred()) {
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(self);
    if (PyList_Insert(self, i, args[1]) < 0) {
        return NULL;
    }
    if (i < 0) {
        i += n;
        if (i < 0) {
            i = 0;
        }
    }
    if (i > n) {
        i = n;
    }
    rk_fire_index(self, rk_additem, i, NULL, args[1]);
    Py_RETURN_NONE;
}

/* extend and += run the base implementation with the caller's iterable (so
 * lst.extend(lst), generators and the list's capacity behave exactly as for
 * a plain list), then report the elements that were appended. */
static PyObject *
extend_hooked(PyObject *self, PyObject *iterable, int inplace)
{
    if (!activation_has_hook(self, rk_additem)) {
        return inplace ? base_inplace_concat(self, iterable)
                       : rk_call_base(base_extend, self, &iterable, 1, NULL);
    }
    Py_ssize_t n0 = PyList_GET_SIZE(self);
    PyObject *res = inplace ? base_inplace_concat(self, iterable)
                            : rk_call_base(base_extend, self, &iterable, 1, NULL);
    /* A failing iterator leaves the elements it produced before failing. */
    rk_saved_exc saved;
    rk_exc_save(&saved);
    Py_ssize_t n1 = PyList_GET_SIZE(self);
    if (n1 > n0) {
        PyObject *added = PyList_GetSlice(self, n0, n1);
        PyObject *items = added ? PyList_AsTuple(added) : NULL;
        Py_XDECREF(added);
        if (items == NULL) {
            PyErr_WriteUnraisable(self);
        }
        else {
            fire_replace(self, n0, NULL, items, 0);
            Py_DECREF(items);
        }
    }
    rk_exc_restore(&saved);
    return res;
}

static PyObject *
rk_list_extend(PyObject *self, PyObject *iterable)
{
    return extend_hooked(self, iterable, 0);
}

static PyObject *
rk_list_inplace_concat(PyObject *self, PyObject *other)
{
    return extend_hooked(self, other, 1);
}

static PyObject *
rk_list_inplace_repeat(PyObject *self, Py_ssize_t count)
{
    Py_ssize_t n0 = PyList_GET_SIZE(self);
    PyObject *old = NULL;
    if (count < 1 && n0 > 0 && activation_has_hook(self, rk_delitem)) {
        old = PyList_AsTuple(self);
        if (old == NULL) {
            return NULL;
        }
    }
    PyObject *res = base_inplace_repeat(self, count);
    if (res == NULL) {
        Py_XDECREF(old);
        return NULL;
    }
    if (old != NULL) {
        fire_replace(self, 0, old, NULL, 0);
        Py_DECREF(old);
    }
    else if (PyList_GET_SIZE(self) > n0 && activation_has_hook(self, rk_additem)) {
        PyObject *added = PyList_GetSlice(self, n0, PyList_GET_SIZE(self));
        PyObject *items = added ? PyList_AsTuple(added) : NULL;
        Py_XDECREF(added);
        if (items == NULL) {
            PyErr_WriteUnraisable(self);
        }
        else {
            fire_replace(self, n0, NULL, items, 0);
            Py_DECREF(items);
        }
    }
    return res;
}

static PyObject *
rk_list_pop(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs > 1 || !activation_has_hook(self, rk_delitem)) {
        return rk_call_base(base_pop, self, args, (size_t)nargs, NULL);
    }
    Py_ssize_t i = -1;
    if (nargs == 1) {
        PyObject *index = PyNumber_Index(args[0]);
        if (index == NULL) {
            return NULL;
        }
        i = PyLong_AsSsize_t(index);
        Py_DECREF(index);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
    }
    Py_ssize_t n = PyList_GET_SIZE(self);
    PyObject *res = rk_call_base(base_pop, self, args, (size_t)nargs, NULL);
    if (res == NULL) {
        return NULL;
    }
    if (i < 0) {
        i += n;
    }
    rk_fire_index(self, rk_delitem, i, res, NULL);
    return res;
}

static PyObject *
rk_list_remove(PyObject *self, PyObject *value)
{
    if (!activation_has_hook(self, rk_delitem)) {
        return rk_call_base(base_remove, self, &value, 1, NULL);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(self); i++) {
        PyObject *item = Py_NewRef(PyList_GET_ITEM(self, i));
        int cmp = PyObject_RichCompareBool(item, value, Py_EQ);
        if (cmp > 0) {
            Py_ssize_t before = PyList_GET_SIZE(self);
            if (PyList_SetSlice(self, i, i + 1, NULL) < 0) {
                Py_DECREF(item);
                return NULL;
            }
            if (PyList_GET_SIZE(self) < before) {
                rk_fire_index(self, rk_delitem, i, item, NULL);
            }
            Py_DECREF(item);
            Py_RETURN_NONE;
        }
        Py_DECREF(item);
        if (cmp < 0) {
            return NULL;
        }
    }
    PyErr_SetString(PyExc_ValueError, "list.remove(x): x not in list");
    return NULL;
}

static PyObject *
rk_list_clear(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *old = NULL;
    if (activation_has_hook(self, rk_delitem)) {
        old = PyList_AsTuple(self);
        if (old == NULL) {
            return NULL;
        }
    }
    PyObject *res = rk_call_base(base_clear, self, NULL, 0, NULL);
    if (res != NULL && old != NULL) {
        fire_replace(self, 0, old, NULL, 0);
    }
    Py_XDECREF(old);
    return res;
}

/* After a whole-list operation: report the positions whose element differs from
 * the snapshot `old` (stolen), keeping any exception the operation set. */
static void
report_reordered(PyObject *self, PyObject *old)
{
    rk_saved_exc saved;
    rk_exc_save(&saved);
    PyObject *now = PyList_AsTuple(self);
    if (now == NULL) {
        PyErr_WriteUnraisable(self);
    }
    else {
        fire_replace(self, 0, old, now, 1);
        Py_DECREF(now);
    }
    Py_DECREF(old);
    rk_exc_restore(&saved);
}

/* Run a whole-list operation and report the positions whose element changed,
 * also when the operation fails halfway (the list may still have changed). */
static PyObject *
reorder_hooked(PyObject *self, PyObject *descr, PyObject *const *args, size_t nargsf,
               PyObject *kwnames)
{
    if (!wants_any(self)) {
        return rk_call_base(descr, self, args, nargsf, kwnames);
    }
    PyObject *old = PyList_AsTuple(self);
    if (old == NULL) {
        return NULL;
    }
    PyObject *res = rk_call_base(descr, self, args, nargsf, kwnames);
    report_reordered(self, old);
    return res;
}

static PyObject *
rk_list_sort(PyObject *self, PyObject *const *args, Py_ssize_t nargsf, PyObject *kwnames)
{
    return reorder_hooked(self, base_sort, args, (size_t)nargsf, kwnames);
}

static PyObject *
rk_list_reverse(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return reorder_hooked(self, base_reverse, NULL, 0, NULL);
}

static int
rk_list_init(PyObject *self, PyObject *args, PyObject *kwds)
{
    /* list.__init__ refuses keywords only for lists and types sharing its
     * tp_new; a patched list must keep refusing them. */
    if (kwds != NULL && PyDict_Check(kwds) && PyDict_GET_SIZE(kwds) > 0) {
        PyErr_SetString(PyExc_TypeError, "list() takes no keyword arguments");
        return -1;
    }
    if (!wants_any(self)) {
        return base_init(self, args, kwds);
    }
    PyObject *old = PyList_AsTuple(self);
    if (old == NULL) {
        return -1;
    }
    int rc = base_init(self, args, kwds);
    report_reordered(self, old);
    return rc;
}

static PyObject *
rk_list_reduce(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Pickles and copies are plain, unpatched lists. */
    PyObject *it = PyObject_GetIter(self);
    if (it == NULL) {
        return NULL;
    }
    return Py_BuildValue("(O()ON)", (PyObject *)&PyList_Type, Py_None, it);
}

static PyObject *
rk_list_reduce_ex(PyObject *self, PyObject *Py_UNUSED(protocol))
{
    return rk_list_reduce(self, NULL);
}

/* copy.copy(): what list.copy() gives, exactly as for a plain list. */
static PyObject *
rk_list_copy_module(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return rk_call_base(base_copy, self, NULL, 0, NULL);
}

static PyMethodDef rk_list_methods[] = {
    {"__copy__", RK_CAST_FUNC(rk_list_copy_module), METH_NOARGS, NULL},
    {"append", RK_CAST_FUNC(rk_list_append), METH_O, NULL},
    {"insert", RK_CAST_FUNC(rk_list_insert), METH_FASTCALL, NULL},
    {"extend", RK_CAST_FUNC(rk_list_extend), METH_O, NULL},
    {"pop", RK_CAST_FUNC(rk_list_pop), METH_FASTCALL, NULL},
    {"remove", RK_CAST_FUNC(rk_list_remove), METH_O, NULL},
    {"clear", RK_CAST_FUNC(rk_list_clear), METH_NOARGS, NULL},
    {"sort", RK_CAST_FUNC(rk_list_sort), METH_FASTCALL | METH_KEYWORDS, NULL},
    {"reverse", RK_CAST_FUNC(rk_list_reverse), METH_NOARGS, NULL},
    {"__reduce__", RK_CAST_FUNC(rk_list_reduce), METH_NOARGS, NULL},
    {"__reduce_ex__", RK_CAST_FUNC(rk_list_reduce_ex), METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyObject *
py_patch_list(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "patch_list() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *allowed[] = {rk_additem, rk_setitem, rk_delitem};
    return rk_patch_container(args[0], args[1], &PyList_Type, rk_list_shadow, "patch_list",
                              allowed, 3);
}

static PyMethodDef patch_list_def = {
    "patch_list", RK_CAST_FUNC(py_patch_list), METH_FASTCALL,
    "patch_list(lst, hooks)\n--\n\nMerge hooks into the list's entry (None removes a hook)."};

int
reaktome_patch_list(PyObject *m)
{
    if (rk_list_shadow == NULL) {
        base_ass_subscript = PyList_Type.tp_as_mapping->mp_ass_subscript;
        base_ass_item = PyList_Type.tp_as_sequence->sq_ass_item;
        base_inplace_repeat = PyList_Type.tp_as_sequence->sq_inplace_repeat;
        base_inplace_concat = PyList_Type.tp_as_sequence->sq_inplace_concat;
        base_init = PyList_Type.tp_init;
        const rk_method_ref methods[] = {{&base_copy, "copy"},   {&base_extend, "extend"},
                       {&base_pop, "pop"},     {&base_remove, "remove"},
                       {&base_clear, "clear"}, {&base_sort, "sort"},
                       {&base_reverse, "reverse"}};
        if (rk_load_base_methods(&PyList_Type, methods, RK_COUNT(methods)) < 0) {
            return -1;
        }
        PyType_Slot slots[] = {
            {Py_tp_dealloc, (void *)rk_shadow_dealloc},
            {Py_tp_new, (void *)rk_shadow_new},
            {Py_tp_init, (void *)rk_list_init},
            {Py_tp_getset, rk_shadow_getset},
            {Py_tp_methods, rk_list_methods},
            {Py_mp_ass_subscript, (void *)rk_list_ass_subscript},
            {Py_sq_ass_item, (void *)rk_list_ass_item},
            {Py_sq_inplace_concat, (void *)rk_list_inplace_concat},
            {Py_sq_inplace_repeat, (void *)rk_list_inplace_repeat},
            {0, NULL},
        };
        rk_list_shadow = rk_make_shadow(&PyList_Type, "reaktome.list", slots);
        if (rk_list_shadow == NULL) {
            return -1;
        }
    }
    return rk_add_function(m, &patch_list_def);
}
