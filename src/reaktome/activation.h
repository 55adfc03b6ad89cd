/* Side-table of per-instance hooks and the helpers shared by the trampolines.
 *
 * Every function here must be called with the GIL held.  Nothing in this
 * header keeps a pointer into the table across a call that can run Python
 * code: the table may be resized or edited by any such call.
 */
#ifndef REAKTOME_ACTIVATION_H
#define REAKTOME_ACTIVATION_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Interned hook names (set by activation_init). */
extern PyObject *rk_additem;
extern PyObject *rk_setitem;
extern PyObject *rk_delitem;
extern PyObject *rk_discarditem;
extern PyObject *rk_setattr;
extern PyObject *rk_delattr;

/* A pointer-keyed open-addressing hash table (linear probing, backward-shift
 * deletion).  Values are owned references; removal hands them back to the
 * caller so that they are released only once the table is consistent. */
typedef struct {
    void *key;
    PyObject *hooks; /* dict {interned name: callable}, owned */
    PyObject *wr;    /* weak reference with a clean-up callback, or NULL */
    void *fn;        /* free slot for the type registry (original setattro) */
} rk_entry;

typedef struct {
    rk_entry *slots;
    size_t capacity; /* 0 or a power of two */
    size_t used;
    unsigned bits;
} rk_table;

rk_entry *rk_table_find(rk_table *t, const void *key);
/* Insert a zeroed entry for key (which must be absent); NULL + MemoryError on failure. */
rk_entry *rk_table_insert(rk_table *t, void *key);
/* Remove key, copying the entry to *out; returns 1 if it was present. */
int rk_table_take(rk_table *t, const void *key, rk_entry *out);
size_t rk_table_capacity(const rk_table *t);

/* The instance side-table. */
extern rk_table rk_instances;

int activation_init(void);

/* Validate a user mapping of hook names to callables (or None) against the
 * allowed names; returns a new dict keyed by the interned names. */
PyObject *rk_validate_hooks(PyObject *hooks, const char *func, PyObject *const *allowed,
                            int nallowed);

/* Merge validated hooks into obj's entry (None removes a hook).  Returns 1 if
 * obj has an entry afterwards, 0 if not, -1 on error.  References that must be
 * released once the caller's state is consistent are stored in garbage[0..2]
 * (NULL-initialised by the caller).  wr is stored on a newly created entry. */
int activation_merge(PyObject *obj, PyObject *dunders, PyObject *wr, PyObject **garbage);

/* New reference to a copy of obj's hooks dict, or NULL (no exception) if none. */
PyObject *activation_get_hooks(PyObject *obj);

/* New reference to the hook called name for obj, or NULL (no exception). */
PyObject *activation_hook(PyObject *obj, PyObject *name);

/* 1 if obj has a hook called name. */
int activation_has_hook(PyObject *obj, PyObject *name);

/* Call hook(self, key, old, newv) (NULL arguments become None).  A raised
 * exception is reported through sys.unraisablehook.  Must be called with no
 * exception set. */
void rk_invoke(PyObject *hook, PyObject *self, PyObject *key, PyObject *old, PyObject *newv);

/* Look up obj's hook called name and invoke it; returns 1 if a hook ran. */
int reaktome_call_dunder(PyObject *self, PyObject *name, PyObject *key, PyObject *old,
                         PyObject *newv);

/* Same, with an index key (the int is only built when a hook exists). */
void rk_fire_index(PyObject *self, PyObject *name, Py_ssize_t index, PyObject *old,
                   PyObject *newv);

/* Saving and restoring the current exception around hook calls. */
#if PY_VERSION_HEX >= 0x030C0000
typedef struct {
    PyObject *exc;
} rk_saved_exc;
static inline void rk_exc_save(rk_saved_exc *s) { s->exc = PyErr_GetRaisedException(); }
static inline void rk_exc_restore(rk_saved_exc *s) { PyErr_SetRaisedException(s->exc); }
#else
typedef struct {
    PyObject *type, *value, *tb;
} rk_saved_exc;
static inline void rk_exc_save(rk_saved_exc *s) { PyErr_Fetch(&s->type, &s->value, &s->tb); }
static inline void rk_exc_restore(rk_saved_exc *s) { PyErr_Restore(s->type, s->value, s->tb); }
#endif

/* Call a method descriptor of the base type with self prepended. */
PyObject *rk_call_base(PyObject *descr, PyObject *self, PyObject *const *args, size_t nargsf,
                       PyObject *kwnames);

/* Method descriptor `name` of a builtin type (new reference). */
PyObject *rk_base_method(PyTypeObject *base, const char *name);

/* Number of elements of a C array. */
#define RK_COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* A base-type method a shadow's trampoline calls: where to keep it, its name. */
typedef struct {
    PyObject **slot;
    const char *name;
} rk_method_ref;

/* Fill every `refs[i].slot` with the method descriptor of `base`; -1 on error. */
int rk_load_base_methods(PyTypeObject *base, const rk_method_ref *refs, size_t n);

/* Add the module-level function `def` to module `m`; -1 on error. */
int rk_add_function(PyObject *m, PyMethodDef *def);

/* Shadow types: a private, non-subclassable heap subtype of a builtin
 * container whose slots and methods are the trampolines.  A patched instance
 * has its ob_type switched to the shadow; every other instance is untouched. */
PyTypeObject *rk_make_shadow(PyTypeObject *base, const char *name, PyType_Slot *slots);
/* Slot functions shared by all shadows. */
void rk_shadow_dealloc(PyObject *self);
PyObject *rk_shadow_new(PyTypeObject *type, PyObject *args, PyObject *kwds);
extern PyGetSetDef rk_shadow_getset[];

/* Generic patch/unpatch of a container instance. */
PyObject *rk_patch_container(PyObject *obj, PyObject *hooks, PyTypeObject *base,
                             PyTypeObject *shadow, const char *func, PyObject *const *allowed,
                             int nallowed);

/* Shadow types, set by the reaktome_patch_* initialisers. */
extern PyTypeObject *rk_list_shadow;
extern PyTypeObject *rk_dict_shadow;
extern PyTypeObject *rk_set_shadow;

/* Module initialisers: each adds its patch_<kind> function to m. */
int reaktome_patch_list(PyObject *m);
int reaktome_patch_dict(PyObject *m);
int reaktome_patch_set(PyObject *m);
int reaktome_patch_obj(PyObject *m);

/* Drop obj's entry (and restore its type if it is a shadow instance).
 * Returns 1 if obj was patched, 0 if not. */
int rk_unpatch(PyObject *obj);

/* Number of live entries / capacity (for tests). */
Py_ssize_t rk_obj_registry_size(void);

#define RK_CAST_FUNC(f) ((PyCFunction)(void (*)(void))(f))

#endif
