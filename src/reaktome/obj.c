/* Attribute hooks for instances of Python classes.
 *
 * An instance's class cannot be swapped without side effects (creating a
 * subclass runs __init_subclass__ and metaclass code), so the class itself is
 * instrumented once: its tp_setattro becomes a trampoline that calls the
 * original and then the instance's hook.  Unpatched instances of that class
 * pay one side-table probe per attribute store; instances of every other
 * class are untouched.  Entries are dropped by a weak-reference callback when
 * the instance dies.
 */
#include "activation.h"

/* Registry of instrumented classes: key = type, wr = weak reference to the
 * type (its callback drops the entry), fn = the original tp_setattro. */
static rk_table rk_types;

static setattrofunc
original_setattro(PyTypeObject *type)
{
    PyObject *mro = type->tp_mro;
    if (mro != NULL && PyTuple_Check(mro)) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(mro); i++) {
            rk_entry *e = rk_table_find(&rk_types, PyTuple_GET_ITEM(mro, i));
            if (e != NULL) {
                return (setattrofunc)e->fn;
            }
        }
    }
    return PyObject_GenericSetAttr;
}

/* The current value of attribute name stored on the instance itself (its
 * __dict__ or a __slots__ member), without running descriptors or
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

static int
rk_obj_setattro(PyObject *self, PyObject *name, PyObject *value)
{
    setattrofunc base = original_setattro(Py_TYPE(self));
    PyObject *hook = activation_hook(self, value ? rk_setattr : rk_delattr);
    if (hook == NULL) {
        return base(self, name, value);
    }
    PyObject *old = stored_value(self, name);
    int rc = base(self, name, value);
    if (rc == 0) {
        rk_invoke(hook, self, name, old, value);
    }
    Py_XDECREF(old);
    Py_DECREF(hook);
    return rc;
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
        Py_XDECREF(old.wr);
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
    if (rk_table_find(&rk_types, type) != NULL || type->tp_setattro == rk_obj_setattro) {
        return 0;
    }
    PyObject *ref = tracking_ref((PyObject *)type, &forget_type_def);
    if (ref == NULL) {
        return -1;
    }
    rk_entry *e = rk_table_insert(&rk_types, type);
    if (e == NULL) {
        Py_DECREF(ref);
        return -1;
    }
    e->wr = ref;
    e->fn = (void *)type->tp_setattro;
    type->tp_setattro = rk_obj_setattro;
    /* New type version: attribute stores specialised for this class deopt. */
    PyType_Modified(type);
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
    if (rk_table_find(&rk_instances, obj) == NULL && PyDict_GET_SIZE(valid) > 0) {
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
    PyObject *func = PyCFunction_NewEx(&patch_obj_def, NULL, NULL);
    if (func == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(m, "patch_obj", func);
    Py_DECREF(func);
    return rc;
}
