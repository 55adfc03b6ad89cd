/* Attribute hooks for instances of Python classes.
 *
 * The class of a patched instance is instrumented once: C-implemented
 * __setattr__ and __delattr__ method descriptors are stored in its __dict__
 * (through type.__setattr__, so CPython updates the slot of the class and of
 * its subclasses and invalidates specialised attribute stores).  They run the
 * behaviour the class had before - its own __setattr__ if it defined one,
 * otherwise the next one along the MRO - and then the instance's hook.
 *
 * A C-level tp_setattro trampoline is not used: CPython's "hackcheck" would
 * then refuse object.__setattr__(instance, ...) for every instance of the
 * class.  With descriptors in the class dict the slot is CPython's own
 * slot_tp_setattro, which the check accepts.
 *
 * Entries of patched instances are dropped by a weak-reference callback.
 */
#include "activation.h"

/* Registry of instrumented classes: key = class, hooks = tuple of the
 * class's own (__setattr__, __delattr__) before instrumentation (None when it
 * had none), wr = weak reference to the class (its callback drops the entry),
 * fn = an rk_resolve_cache. */
static rk_table rk_types;

/* The implementations resolved for the last instance type seen, valid while
 * that type keeps its version tag (any change to a class dict along its MRO
 * gives it a new one; tags are never reused). */
typedef struct {
    PyTypeObject *type;
    unsigned int version;
    PyObject *impl[2]; /* owned: [0] setattr, [1] delattr */
} rk_resolve_cache;

static unsigned int
valid_version(PyTypeObject *type)
{
#if PY_VERSION_HEX < 0x030D0000
    if (!(type->tp_flags & Py_TPFLAGS_VALID_VERSION_TAG)) {
        return 0;
    }
#endif
    return type->tp_version_tag;
}

static void
free_cache(rk_resolve_cache *cache)
{
    if (cache != NULL) {
        Py_XDECREF(cache->impl[0]);
        Py_XDECREF(cache->impl[1]);
        PyMem_Free(cache);
    }
}

static PyObject *str_setattr_name; /* "__setattr__" */
static PyObject *str_delattr_name; /* "__delattr__" */

static PyObject *obj_setattr_method(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames);
static PyObject *obj_delattr_method(PyObject *self, PyTypeObject *cls, PyObject *const *args,
                                    size_t nargsf, PyObject *kwnames);

static PyMethodDef setattr_def = {
    "__setattr__", RK_CAST_FUNC(obj_setattr_method), METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
    "Implement setattr(self, name, value); reaktome reports it to the instance's hook."};
static PyMethodDef delattr_def = {
    "__delattr__", RK_CAST_FUNC(obj_delattr_method), METH_METHOD | METH_FASTCALL | METH_KEYWORDS,
    "Implement delattr(self, name); reaktome reports it to the instance's hook."};

/* Borrowed value of name in the type's own namespace, or NULL. */
static PyObject *
own_attribute(PyTypeObject *type, PyObject *name)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *dict = PyType_GetDict(type);
    if (dict == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *value = PyDict_GetItemWithError(dict, name);
    Py_DECREF(dict); /* the type's dict keeps the value alive */
#else
    PyObject *value = type->tp_dict ? PyDict_GetItemWithError(type->tp_dict, name) : NULL;
#endif
    if (value == NULL) {
        PyErr_Clear();
    }
    return value;
}

/* The implementation to run for cls's method `name` on self: what the class
 * had before instrumentation, else the next definition along type(self)'s
 * MRO (instrumented classes contribute their saved originals).  New ref. */
static PyObject *
resolve_walk(PyObject *self, PyTypeObject *cls, PyObject *name, int which)
{
    PyObject *mro = Py_TYPE(self)->tp_mro;
    Py_ssize_t n = PyTuple_GET_SIZE(mro), start = 0;
    while (start < n && PyTuple_GET_ITEM(mro, start) != (PyObject *)cls) {
        start++;
    }
    for (Py_ssize_t i = start; i < n; i++) {
        PyTypeObject *type = (PyTypeObject *)PyTuple_GET_ITEM(mro, i);
        rk_entry *e = rk_table_find(&rk_types, type);
        if (e != NULL) {
            PyObject *saved = PyTuple_GET_ITEM(e->hooks, which);
            if (saved != Py_None) {
                return Py_NewRef(saved);
            }
            continue;
        }
        PyObject *found = own_attribute(type, name);
        if (found != NULL) {
            return Py_NewRef(found);
        }
    }
    return Py_XNewRef(own_attribute(&PyBaseObject_Type, name));
}

static PyObject *
resolve_original(PyObject *self, PyTypeObject *cls, PyObject *name, int which)
{
    PyTypeObject *type = Py_TYPE(self);
    unsigned int version = valid_version(type);
    rk_entry *e = rk_table_find(&rk_types, cls);
    rk_resolve_cache *cache = e ? (rk_resolve_cache *)e->fn : NULL;
    if (cache != NULL && version != 0 && cache->type == type && cache->version == version &&
        cache->impl[which] != NULL) {
        return Py_NewRef(cache->impl[which]);
    }
    PyObject *impl = resolve_walk(self, cls, name, which);
    if (impl == NULL || version == 0 || valid_version(type) != version) {
        return impl;
    }
    e = rk_table_find(&rk_types, cls);
    cache = e ? (rk_resolve_cache *)e->fn : NULL;
    if (cache == NULL) {
        return impl;
    }
    PyObject *stale[3] = {NULL, NULL, cache->impl[which]};
    if (cache->type != type || cache->version != version) {
        stale[0] = cache->impl[0];
        stale[1] = cache->impl[1];
        stale[2] = NULL;
        cache->impl[0] = cache->impl[1] = NULL;
        cache->type = type;
        cache->version = version;
    }
    cache->impl[which] = Py_NewRef(impl);
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(stale[i]);
    }
    return impl;
}

/* Run the original store (value != NULL) or delete.  0 or -1. */
static int
call_original(PyObject *self, PyTypeObject *cls, PyObject *name, PyObject *value)
{
    PyObject *method_name = value ? str_setattr_name : str_delattr_name;
    PyObject *impl = resolve_original(self, cls, method_name, value ? 0 : 1);
    if (impl == NULL) {
        PyErr_SetString(PyExc_SystemError, "reaktome: no original attribute setter");
        return -1;
    }
    int rc;
    if (Py_IS_TYPE(impl, &PyWrapperDescr_Type)) {
        /* A C slot (object's generic setter, or a C base's own): call it
         * directly, as its wrapper would. */
        setattrofunc func = (setattrofunc)((PyWrapperDescrObject *)impl)->d_wrapped;
        rc = func(self, name, value);
    }
    else {
        /* Call it the way slot_tp_setattro would: functions get self
         * prepended, other descriptors are bound first, plain callables are
         * called with the arguments only. */
        PyObject *res;
        PyObject *args[3] = {self, name, value};
        size_t nargs = value ? 2 : 1;
        descrgetfunc get = Py_TYPE(impl)->tp_descr_get;
        if (PyFunction_Check(impl)) {
            res = PyObject_Vectorcall(impl, args, nargs + 1, NULL);
        }
        else if (get != NULL) {
            PyObject *bound = get(impl, self, (PyObject *)Py_TYPE(self));
            res = bound ? PyObject_Vectorcall(bound, args + 1, nargs, NULL) : NULL;
            Py_XDECREF(bound);
        }
        else {
            res = PyObject_Vectorcall(impl, args + 1, nargs, NULL);
        }
        rc = res ? 0 : -1;
        Py_XDECREF(res);
    }
    Py_DECREF(impl);
    return rc;
}

/* The current value of attribute name stored on the instance itself (its
 * __dict__ or a __slots__ member), without running properties or
 * __getattr__; NULL if there is none.  Never leaves an exception set. */
static PyObject *
stored_value(PyObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        return NULL;
    }
    PyObject *descr = _PyType_Lookup(Py_TYPE(self), name);
    if (descr != NULL && Py_IS_TYPE(descr, &PyMemberDescr_Type)) {
        PyObject *value = Py_TYPE(descr)->tp_descr_get(descr, self, (PyObject *)Py_TYPE(self));
        if (value == NULL) {
            PyErr_Clear();
        }
        return value;
    }
    if (Py_TYPE(self)->tp_dictoffset == 0) {
        return NULL;
    }
    PyObject *dict = PyObject_GenericGetDict(self, NULL);
    if (dict == NULL) {
        PyErr_Clear();
        return NULL;
    }
    PyObject *value = NULL;
    if (PyDict_Check(dict)) {
        value = Py_XNewRef(PyDict_GetItemWithError(dict, name));
        if (value == NULL) {
            PyErr_Clear();
        }
    }
    Py_DECREF(dict);
    return value;
}

/* Only the outermost instrumented class of the instance reports, so that a
 * subclass's __setattr__ calling super() fires the hook once. */
static int
is_outermost(PyObject *self, PyTypeObject *cls)
{
    PyObject *mro = Py_TYPE(self)->tp_mro;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
        PyObject *type = PyTuple_GET_ITEM(mro, i);
        if (rk_table_find(&rk_types, type) != NULL) {
            return type == (PyObject *)cls;
        }
    }
    return 0;
}

static PyObject *
store_hooked(PyObject *self, PyTypeObject *cls, PyObject *name, PyObject *value)
{
    PyObject *hook = activation_hook(self, value ? rk_setattr : rk_delattr);
    if (hook != NULL && !is_outermost(self, cls)) {
        Py_CLEAR(hook);
    }
    if (hook == NULL) {
        if (call_original(self, cls, name, value) < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    PyObject *old = stored_value(self, name);
    int rc = call_original(self, cls, name, value);
    if (rc == 0) {
        rk_invoke(hook, self, name, old, value);
    }
    Py_XDECREF(old);
    Py_DECREF(hook);
    if (rc < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static int
check_args(const char *func, Py_ssize_t expected, size_t nargsf, PyObject *kwnames)
{
    if (kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) {
        PyErr_Format(PyExc_TypeError, "%s() takes no keyword arguments", func);
        return -1;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs != expected) {
        PyErr_Format(PyExc_TypeError, "expected %zd argument%s, got %zd", expected,
                     expected == 1 ? "" : "s", nargs);
        return -1;
    }
    return 0;
}

static PyObject *
obj_setattr_method(PyObject *self, PyTypeObject *cls, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    if (check_args("__setattr__", 2, nargsf, kwnames) < 0) {
        return NULL;
    }
    return store_hooked(self, cls, args[0], args[1]);
}

static PyObject *
obj_delattr_method(PyObject *self, PyTypeObject *cls, PyObject *const *args, size_t nargsf,
                   PyObject *kwnames)
{
    if (check_args("__delattr__", 1, nargsf, kwnames) < 0) {
        return NULL;
    }
    return store_hooked(self, cls, args[0], NULL);
}

/* Weak-reference callbacks: self is the address (an int) of the dead object. */
static PyObject *
forget_instance(PyObject *address, PyObject *ref)
{
    void *key = PyLong_AsVoidPtr(address);
    if (key == NULL && PyErr_Occurred()) {
        return NULL;
    }
    rk_entry *e = rk_table_find(&rk_instances, key);
    if (e != NULL && e->wr == ref) {
        rk_entry old;
        rk_table_take(&rk_instances, key, &old);
        Py_XDECREF(old.hooks);
        Py_XDECREF(old.wr);
    }
    Py_RETURN_NONE;
}

static PyObject *
forget_type(PyObject *address, PyObject *ref)
{
    void *key = PyLong_AsVoidPtr(address);
    if (key == NULL && PyErr_Occurred()) {
        return NULL;
    }
    rk_entry *e = rk_table_find(&rk_types, key);
    if (e != NULL && e->wr == ref) {
        rk_entry old;
        rk_table_take(&rk_types, key, &old);
        Py_XDECREF(old.hooks);
        Py_XDECREF(old.wr);
        free_cache((rk_resolve_cache *)old.fn);
    }
    Py_RETURN_NONE;
}

static PyMethodDef forget_instance_def = {"_forget_instance", RK_CAST_FUNC(forget_instance),
                                          METH_O, NULL};
static PyMethodDef forget_type_def = {"_forget_type", RK_CAST_FUNC(forget_type), METH_O, NULL};

/* A weak reference to obj whose callback calls def with obj's address. */
static PyObject *
tracking_ref(PyObject *obj, PyMethodDef *def)
{
    PyObject *address = PyLong_FromVoidPtr(obj);
    if (address == NULL) {
        return NULL;
    }
    PyObject *callback = PyCFunction_NewEx(def, address, NULL);
    Py_DECREF(address);
    if (callback == NULL) {
        return NULL;
    }
    PyObject *ref = PyWeakref_NewRef(obj, callback);
    Py_DECREF(callback);
    return ref;
}

static int
instrument_type(PyTypeObject *type)
{
    if (rk_table_find(&rk_types, type) != NULL) {
        return 0;
    }
    PyObject *own_set = own_attribute(type, str_setattr_name);
    PyObject *own_del = own_attribute(type, str_delattr_name);
    PyObject *saved = PyTuple_Pack(2, own_set ? own_set : Py_None, own_del ? own_del : Py_None);
    if (saved == NULL) {
        return -1;
    }
    PyObject *ref = tracking_ref((PyObject *)type, &forget_type_def);
    PyObject *set_descr = ref ? PyDescr_NewMethod(type, &setattr_def) : NULL;
    PyObject *del_descr = set_descr ? PyDescr_NewMethod(type, &delattr_def) : NULL;
    if (del_descr == NULL) {
        Py_XDECREF(set_descr);
        Py_XDECREF(ref);
        Py_DECREF(saved);
        return -1;
    }
    rk_resolve_cache *cache = PyMem_Calloc(1, sizeof(rk_resolve_cache));
    rk_entry *e = cache ? rk_table_insert(&rk_types, type) : NULL;
    if (e == NULL) {
        if (cache == NULL) {
            PyErr_NoMemory();
        }
        PyMem_Free(cache);
        Py_DECREF(del_descr);
        Py_DECREF(set_descr);
        Py_DECREF(ref);
        Py_DECREF(saved);
        return -1;
    }
    e->hooks = saved;
    e->wr = ref;
    e->fn = cache;
    /* type.__setattr__ (not the metaclass's) updates the slots of the class
     * and its subclasses and gives them new type versions. */
    setattrofunc type_setattro = PyType_Type.tp_setattro;
    int rc = type_setattro((PyObject *)type, str_setattr_name, set_descr);
    if (rc == 0) {
        rc = type_setattro((PyObject *)type, str_delattr_name, del_descr);
    }
    Py_DECREF(set_descr);
    Py_DECREF(del_descr);
    if (rc < 0) {
        rk_saved_exc exc;
        rk_exc_save(&exc);
        /* Put back what was there; the registry entry is then dropped. */
        if (own_set ? type_setattro((PyObject *)type, str_setattr_name, own_set) < 0
                    : (own_attribute(type, str_setattr_name) != NULL &&
                       type_setattro((PyObject *)type, str_setattr_name, NULL) < 0)) {
            PyErr_WriteUnraisable((PyObject *)type);
        }
        rk_entry old;
        if (rk_table_take(&rk_types, type, &old)) {
            Py_XDECREF(old.hooks);
            Py_XDECREF(old.wr);
            free_cache((rk_resolve_cache *)old.fn);
        }
        rk_exc_restore(&exc);
        return -1;
    }
    return 0;
}

static PyObject *
py_patch_obj(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "patch_obj() takes 2 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *obj = args[0];
    PyTypeObject *type = Py_TYPE(obj);
    if (type == rk_list_shadow || type == rk_dict_shadow || type == rk_set_shadow) {
        PyErr_Format(PyExc_TypeError,
                     "patch_obj() argument 1 is a patched %s; use patch_%s() for its hooks",
                     type->tp_name, type->tp_name);
        return NULL;
    }
    if (PyType_Check(obj) || !(type->tp_flags & Py_TPFLAGS_HEAPTYPE) ||
        (type->tp_flags & Py_TPFLAGS_IMMUTABLETYPE)) {
        PyErr_Format(PyExc_TypeError,
                     "patch_obj() argument 1 must be an instance of a class defined in Python, "
                     "not %.200s",
                     type->tp_name);
        return NULL;
    }
    PyObject *allowed[] = {rk_setattr, rk_delattr};
    PyObject *valid = rk_validate_hooks(args[1], "patch_obj", allowed, 2);
    if (valid == NULL) {
        return NULL;
    }
    PyObject *ref = NULL;
    if (rk_table_find(&rk_instances, obj) == NULL) {
        if (PyDict_GET_SIZE(valid) == 0) {
            Py_DECREF(valid);
            Py_RETURN_NONE;
        }
        ref = tracking_ref(obj, &forget_instance_def);
        if (ref == NULL) {
            if (PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_Format(PyExc_TypeError,
                             "patch_obj() needs instances that support weak references; '%.200s' "
                             "defines __slots__ without '__weakref__'",
                             type->tp_name);
            }
            Py_DECREF(valid);
            return NULL;
        }
    }
    /* Also for an instance patched before: its class may have been reassigned. */
    if (instrument_type(type) < 0) {
        Py_XDECREF(ref);
        Py_DECREF(valid);
        return NULL;
    }
    PyObject *garbage[3] = {NULL, NULL, NULL};
    int state = activation_merge(obj, valid, ref, garbage);
    Py_XDECREF(ref);
    Py_DECREF(valid);
    for (int i = 0; i < 3; i++) {
        Py_XDECREF(garbage[i]);
    }
    if (state < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef patch_obj_def = {
    "patch_obj", RK_CAST_FUNC(py_patch_obj), METH_FASTCALL,
    "patch_obj(obj, hooks)\n--\n\nMerge attribute hooks into obj's entry (None removes a hook)."};

Py_ssize_t
rk_obj_registry_size(void)
{
    return (Py_ssize_t)rk_types.used;
}

int
reaktome_patch_obj(PyObject *m)
{
    if (str_setattr_name == NULL) {
        str_setattr_name = PyUnicode_InternFromString("__setattr__");
        str_delattr_name = PyUnicode_InternFromString("__delattr__");
        if (str_setattr_name == NULL || str_delattr_name == NULL) {
            return -1;
        }
    }
    return rk_add_function(m, &patch_obj_def);
}
