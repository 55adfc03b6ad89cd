/* The reaktome._reaktome extension module: per-instance mutation hooks. */
#include "activation.h"

static PyObject *
py_unpatch(PyObject *Py_UNUSED(module), PyObject *obj)
{
    return PyBool_FromLong(rk_unpatch(obj));
}

static PyObject *
py_hooks(PyObject *Py_UNUSED(module), PyObject *obj)
{
    PyObject *hooks = activation_get_hooks(obj);
    if (hooks == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return hooks;
}

static PyObject *
py_table_stats(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return Py_BuildValue("{snsnsn}", "entries", (Py_ssize_t)rk_instances.used, "capacity",
                         (Py_ssize_t)rk_table_capacity(&rk_instances), "classes",
                         rk_obj_registry_size());
}

static PyMethodDef module_methods[] = {
    {"unpatch", py_unpatch, METH_O,
     "unpatch(obj)\n--\n\nDrop every hook of obj; returns whether it was patched."},
    {"hooks", py_hooks, METH_O,
     "hooks(obj)\n--\n\nA copy of obj's hooks, or None when it is not patched."},
    {"_table_stats", py_table_stats, METH_NOARGS,
     "_table_stats()\n--\n\nSide-table figures, for tests."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "reaktome._reaktome",
    .m_doc = "Per-instance mutation hooks for list, dict, set and Python objects.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__reaktome(void)
{
    if (activation_init() < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL) {
        return NULL;
    }
    if (reaktome_patch_list(m) < 0 || reaktome_patch_dict(m) < 0 || reaktome_patch_set(m) < 0 ||
        reaktome_patch_obj(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
