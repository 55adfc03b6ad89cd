/* The per-instance hook side-table and shared trampoline helpers. */
#include "activation.h"

#include <stdint.h>
#include <string.h>

PyObject *rk_additem;
PyObject *rk_setitem;
PyObject *rk_delitem;
PyObject *rk_discarditem;
PyObject *rk_setattr;
PyObject *rk_delattr;

rk_table rk_instances;

/* ------------------------------------------------------------------ table */

#define RK_MIN_BITS 6u

static size_t
rk_home(const rk_table *t, const void *key)
{
    uint64_t x = (uint64_t)(uintptr_t)key;
    return (size_t)((x * UINT64_C(0x9E3779B97F4A7C15)) >> (64u - t->bits));
}

rk_entry *
rk_table_find(rk_table *t, const void *key)
{
    if (t->used == 0) {
        return NULL;
    }
    size_t mask = t->capacity - 1;
    for (size_t i = rk_home(t, key);; i = (i + 1) & mask) {
        rk_entry *e = &t->slots[i];
        if (e->key == key) {
            return e;
        }
        if (e->key == NULL) {
            return NULL;
        }
    }
}

static void
rk_table_place(rk_table *t, const rk_entry *src)
{
    size_t mask = t->capacity - 1;
    size_t i = rk_home(t, src->key);
    while (t->slots[i].key != NULL) {
        i = (i + 1) & mask;
    }
    t->slots[i] = *src;
}

static int
rk_table_resize(rk_table *t, unsigned bits)
{
    size_t capacity = (size_t)1 << bits;
    rk_entry *fresh = PyMem_Calloc(capacity, sizeof(rk_entry));
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    rk_entry *old = t->slots;
    size_t old_capacity = t->capacity;
    t->slots = fresh;
    t->capacity = capacity;
    t->bits = bits;
    for (size_t i = 0; i < old_capacity; i++) {
        if (old[i].key != NULL) {
            rk_table_place(t, &old[i]);
        }
    }
    PyMem_Free(old);
    return 0;
}

rk_entry *
rk_table_insert(rk_table *t, void *key)
{
    if (t->capacity == 0 || (t->used + 1) * 2 > t->capacity) {
        if (rk_table_resize(t, t->capacity == 0 ? RK_MIN_BITS : t->bits + 1) < 0) {
            return NULL;
        }
    }
    rk_entry e = {key, NULL, NULL, NULL};
    rk_table_place(t, &e);
    t->used++;
    return rk_table_find(t, key);
}

int
rk_table_take(rk_table *t, const void *key, rk_entry *out)
{
    rk_entry *e = rk_table_find(t, key);
    if (e == NULL) {
        return 0;
    }
    *out = *e;
    size_t mask = t->capacity - 1;
    size_t hole = (size_t)(e - t->slots);
    /* Backward-shift deletion keeps probe chains intact without tombstones. */
    for (size_t j = (hole + 1) & mask; t->slots[j].key != NULL; j = (j + 1) & mask) {
        size_t home = rk_home(t, t->slots[j].key);
        int stays = (hole <= j) ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    memset(&t->slots[hole], 0, sizeof(rk_entry));
    t->used--;
    /* Shrink after a burst so that memory follows the number of live entries. */
    if (t->bits > RK_MIN_BITS && t->used * 8 < t->capacity) {
        unsigned bits = t->bits - 1;
        while (bits > RK_MIN_BITS && t->used * 8 < ((size_t)1 << bits)) {
            bits--;
        }
        if (rk_table_resize(t, bits) < 0) {
            PyErr_Clear(); /* keeping the larger table is harmless */
        }
    }
    return 1;
}

size_t
rk_table_capacity(const rk_table *t)
{
    return t->capacity;
}

/* ------------------------------------------------------------------ hooks */

int
activation_init(void)
{
    struct {
        PyObject **slot;
        const char *text;
    } names[] = {
        {&rk_additem, "__reaktome_additem__"},
        {&rk_setitem, "__reaktome_setitem__"},
        {&rk_delitem, "__reaktome_delitem__"},
        {&rk_discarditem, "__reaktome_discarditem__"},
        {&rk_setattr, "__reaktome_setattr__"},
        {&rk_delattr, "__reaktome_delattr__"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (*names[i].slot == NULL) {
            *names[i].slot = PyUnicode_InternFromString(names[i].text);
            if (*names[i].slot == NULL) {
                return -1;
            }
        }
    }
    return 0;
}

static PyObject *
rk_allowed_text(PyObject *const *allowed, int nallowed)
{
    PyObject *list = PyList_New(0);
    if (list == NULL) {
        return NULL;
    }
    for (int i = 0; i < nallowed; i++) {
        if (PyList_Append(list, allowed[i]) < 0) {
            Py_DECREF(list);
            return NULL;
        }
    }
    PyObject *sep = PyUnicode_FromString(", ");
    PyObject *text = sep ? PyUnicode_Join(sep, list) : NULL;
    Py_XDECREF(sep);
    Py_DECREF(list);
    return text;
}

PyObject *
rk_validate_hooks(PyObject *hooks, const char *func, PyObject *const *allowed, int nallowed)
{
    if (!PyDict_Check(hooks)) {
        PyErr_Format(PyExc_TypeError,
                     "%s() argument 2 must be a dict of hook callables, not %.200s", func,
                     Py_TYPE(hooks)->tp_name);
        return NULL;
    }
    PyObject *out = PyDict_New();
    if (out == NULL) {
        return NULL;
    }
    /* Copy first: iterating the caller's dict must not be disturbed by anything. */
    PyObject *items = PyDict_Items(hooks);
    if (items == NULL) {
        Py_DECREF(out);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(items); i++) {
        PyObject *pair = PyList_GET_ITEM(items, i);
        PyObject *name = PyTuple_GET_ITEM(pair, 0);
        PyObject *value = PyTuple_GET_ITEM(pair, 1);
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "%s(): hook names must be str, not %.200s", func,
                         Py_TYPE(name)->tp_name);
            goto error;
        }
        PyObject *canonical = NULL;
        for (int j = 0; j < nallowed; j++) {
            int eq = PyUnicode_Compare(name, allowed[j]);
            if (eq == -1 && PyErr_Occurred()) {
                goto error;
            }
            if (eq == 0) {
                canonical = allowed[j];
                break;
            }
        }
        if (canonical == NULL) {
            PyObject *text = rk_allowed_text(allowed, nallowed);
            if (text != NULL) {
                PyErr_Format(PyExc_ValueError, "%s(): unknown hook name %R (expected one of: %U)",
                             func, name, text);
                Py_DECREF(text);
            }
            goto error;
        }
        if (value != Py_None && !PyCallable_Check(value)) {
            PyErr_Format(PyExc_TypeError, "%s(): hook %U must be callable or None, not %.200s",
                         func, canonical, Py_TYPE(value)->tp_name);
            goto error;
        }
        if (PyDict_SetItem(out, canonical, value) < 0) {
            goto error;
        }
    }
    Py_DECREF(items);
    return out;
error:
    Py_DECREF(items);
    Py_DECREF(out);
    return NULL;
}

int
activation_merge(PyObject *obj, PyObject *dunders, PyObject *wr, PyObject **garbage)
{
    rk_entry *e = rk_table_find(&rk_instances, obj);
    PyObject *merged = (e != NULL) ? PyDict_Copy(e->hooks) : PyDict_New();
    if (merged == NULL) {
        return -1;
    }
    /* The old dict still owns every value, so the deletions below cannot run
     * a finaliser (no Python code between here and the table update). */
    Py_ssize_t pos = 0;
    PyObject *name, *value;
    while (PyDict_Next(dunders, &pos, &name, &value)) {
        int rc;
        if (value == Py_None) {
            rc = PyDict_Contains(merged, name) == 1 ? PyDict_DelItem(merged, name) : 0;
        }
        else {
            rc = PyDict_SetItem(merged, name, value);
        }
        if (rc < 0) {
            Py_DECREF(merged);
            return -1;
        }
    }
    /* Re-find: PyDict_Copy cannot run Python code, but stay defensive. */
    e = rk_table_find(&rk_instances, obj);
    if (PyDict_GET_SIZE(merged) == 0) {
        garbage[0] = merged;
        if (e != NULL) {
            rk_entry old;
            rk_table_take(&rk_instances, obj, &old);
            garbage[1] = old.hooks;
            garbage[2] = old.wr;
        }
        return 0;
    }
    if (e == NULL) {
        e = rk_table_insert(&rk_instances, obj);
        if (e == NULL) {
            Py_DECREF(merged);
            return -1;
        }
        e->wr = Py_XNewRef(wr);
    }
    else {
        garbage[0] = e->hooks;
    }
    e->hooks = merged;
    return 1;
}

PyObject *
activation_get_hooks(PyObject *obj)
{
    rk_entry *e = rk_table_find(&rk_instances, obj);
    if (e == NULL) {
        return NULL;
    }
    return PyDict_Copy(e->hooks);
}

PyObject *
activation_hook(PyObject *obj, PyObject *name)
{
    rk_entry *e = rk_table_find(&rk_instances, obj);
    if (e == NULL) {
        return NULL;
    }
    /* Keys are exact interned str: the lookup cannot fail or run code. */
    return Py_XNewRef(PyDict_GetItemWithError(e->hooks, name));
}

int
activation_has_hook(PyObject *obj, PyObject *name)
{
    rk_entry *e = rk_table_find(&rk_instances, obj);
    return e != NULL && PyDict_GetItemWithError(e->hooks, name) != NULL;
}

void
rk_invoke(PyObject *hook, PyObject *self, PyObject *key, PyObject *old, PyObject *newv)
{
    PyObject *args[4] = {
        self,
        key ? key : Py_None,
        old ? old : Py_None,
        newv ? newv : Py_None,
    };
    PyObject *res = PyObject_Vectorcall(hook, args, 4, NULL);
    if (res == NULL) {
        PyErr_WriteUnraisable(hook);
    }
    else {
        Py_DECREF(res);
    }
}

int
reaktome_call_dunder(PyObject *self, PyObject *name, PyObject *key, PyObject *old,
                     PyObject *newv)
{
    PyObject *hook = activation_hook(self, name);
    if (hook == NULL) {
        return 0;
    }
    rk_invoke(hook, self, key, old, newv);
    Py_DECREF(hook);
    return 1;
}

void
rk_fire_index(PyObject *self, PyObject *name, Py_ssize_t index, PyObject *old, PyObject *newv)
{
    PyObject *hook = activation_hook(self, name);
    if (hook == NULL) {
        return;
    }
    PyObject *key = PyLong_FromSsize_t(index);
    if (key == NULL) {
        PyErr_WriteUnraisable(hook);
    }
    else {
        rk_invoke(hook, self, key, old, newv);
        Py_DECREF(key);
    }
    Py_DECREF(hook);
}

/* ------------------------------------------------------ base-type helpers */

PyObject *
rk_call_base(PyObject *descr, PyObject *self, PyObject *const *args, size_t nargsf,
             PyObject *kwnames)
{
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    Py_ssize_t total = nargs + (kwnames ? PyTuple_GET_SIZE(kwnames) : 0);
    PyObject *small[8];
    PyObject **stack = small;
    if (total + 1 > (Py_ssize_t)(sizeof(small) / sizeof(small[0]))) {
        stack = PyMem_Malloc((size_t)(total + 1) * sizeof(PyObject *));
        if (stack == NULL) {
            return PyErr_NoMemory();
        }
    }
    stack[0] = self;
    if (total > 0) {
        memcpy(stack + 1, args, (size_t)total * sizeof(PyObject *));
    }
    PyObject *res = PyObject_Vectorcall(descr, stack, (size_t)nargs + 1, kwnames);
    if (stack != small) {
        PyMem_Free(stack);
    }
    return res;
}

PyObject *
rk_base_method(PyTypeObject *base, const char *name)
{
    return PyObject_GetAttrString((PyObject *)base, name);
}

int
rk_load_base_methods(PyTypeObject *base, const rk_method_ref *refs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *refs[i].slot = rk_base_method(base, refs[i].name);
        if (*refs[i].slot == NULL) {
            return -1;
        }
    }
    return 0;
}

int
rk_add_function(PyObject *m, PyMethodDef *def)
{
    PyObject *func = PyCFunction_NewEx(def, NULL, NULL);
    if (func == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(m, def->ml_name, func);
    Py_DECREF(func);
    return rc;
}

/* ---------------------------------------------------------------- shadows */

static PyObject *
rk_shadow_get_class(PyObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef((PyObject *)Py_TYPE(self)->tp_base);
}

PyGetSetDef rk_shadow_getset[] = {
    {"__class__", rk_shadow_get_class, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

void
rk_shadow_dealloc(PyObject *self)
{
    PyTypeObject *shadow = Py_TYPE(self);
    PyTypeObject *base = shadow->tp_base;
    rk_entry old = {NULL, NULL, NULL, NULL};
    int had = rk_table_take(&rk_instances, self, &old);
    /* Hand the object back to its builtin type before it is destroyed, so the
     * builtin deallocator (free lists, trashcan) sees exactly what it expects. */
    Py_SET_TYPE(self, base);
    base->tp_dealloc(self);
    Py_DECREF(shadow);
    if (had) {
        Py_XDECREF(old.hooks);
        Py_XDECREF(old.wr);
    }
}

PyObject *
rk_shadow_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    /* type(patched)(...) builds an ordinary, unpatched instance. */
    return PyObject_Call((PyObject *)type->tp_base, args, kwds);
}

PyTypeObject *
rk_make_shadow(PyTypeObject *base, const char *name, PyType_Slot *slots)
{
    PyType_Spec spec = {
        .name = name,
        .basicsize = 0,
        .itemsize = 0,
        .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
        .slots = slots,
    };
    PyObject *bases = PyTuple_Pack(1, (PyObject *)base);
    if (bases == NULL) {
        return NULL;
    }
    PyTypeObject *type = (PyTypeObject *)PyType_FromSpecWithBases(&spec, bases);
    Py_DECREF(bases);
    if (type == NULL) {
        return NULL;
    }
    if (type->tp_basicsize != base->tp_basicsize || type->tp_itemsize != base->tp_itemsize ||
        type->tp_dictoffset != base->tp_dictoffset ||
        type->tp_weaklistoffset != base->tp_weaklistoffset) {
        PyErr_Format(PyExc_SystemError, "reaktome: shadow of %s has a different layout",
                     base->tp_name);
        Py_DECREF(type);
        return NULL;
    }
    /* The spec name is dotted (reaktome.list) so that __module__ and repr(type)
     * tell the shadow apart; tp_name, which error messages quote, stays the
     * builtin's so that messages are unchanged.  Both strings are static. */
    type->tp_name = base->tp_name;
    PyObject *doc = PyObject_GetAttrString((PyObject *)base, "__doc__");
    int rc = doc == NULL ? -1 : PyDict_SetItemString(type->tp_dict, "__doc__", doc);
    Py_XDECREF(doc);
    if (rc < 0) {
        Py_DECREF(type);
        return NULL;
    }
    PyType_Modified(type);
    return type;
}

PyObject *
rk_patch_container(PyObject *obj, PyObject *hooks, PyTypeObject *base, PyTypeObject *shadow,
                   const char *func, PyObject *const *allowed, int nallowed)
{
    PyTypeObject *type = Py_TYPE(obj);
    if (type != base && type != shadow) {
        if (PyObject_TypeCheck(obj, base)) {
            PyErr_Format(PyExc_TypeError,
                         "%s() does not support %s subclasses (got an instance of '%.200s'); "
                         "patch_obj() watches attributes of such instances",
                         func, base->tp_name, type->tp_name);
        }
        else {
            PyErr_Format(PyExc_TypeError, "%s() argument 1 must be %s, not %.200s", func,
                         base->tp_name, type->tp_name);
        }
        return NULL;
    }
    PyObject *valid = rk_validate_hooks(hooks, func, allowed, nallowed);
    if (valid == NULL) {
        return NULL;
    }
    PyObject *garbage[3] = {NULL, NULL, NULL};
    int state = activation_merge(obj, valid, NULL, garbage);
    if (state == 1 && Py_TYPE(obj) == base) {
        Py_INCREF(shadow);
        Py_SET_TYPE(obj, shadow);
    }
    else if (state == 0 && Py_TYPE(obj) == shadow) {
        Py_SET_TYPE(obj, base);
        Py_DECREF(shadow);
    }
    Py_DECREF(valid);
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(garbage[i]);
    }
    if (state < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

int
rk_unpatch(PyObject *obj)
{
    rk_entry old = {NULL, NULL, NULL, NULL};
    int had = rk_table_take(&rk_instances, obj, &old);
    PyTypeObject *type = Py_TYPE(obj);
    if (type == rk_list_shadow || type == rk_dict_shadow || type == rk_set_shadow) {
        Py_SET_TYPE(obj, type->tp_base);
        Py_DECREF(type);
    }
    if (had) {
        Py_XDECREF(old.hooks);
        Py_XDECREF(old.wr);
    }
    return had;
}
