/* _retrace: low-level Retrace probes of a patched CPython.
 *
 * Coordinates, thread deltas and location hashes are derived lazily from
 * the frame chain; scheduling callbacks, call_at and identity hashes are
 * implemented in Python/retrace.c and reached from the hook sites. */

#ifndef Py_BUILD_CORE_BUILTIN
#  define Py_BUILD_CORE_MODULE 1
#endif

#include "Python.h"
#include "pycore_ceval.h"
#include "pycore_frame.h"
#include "pycore_interp.h"
#include "pycore_pystate.h"
#include "pycore_runtime.h"
#include "pycore_retrace.h"
#include "cpython/retrace_probe.h"

#include <pthread.h>

#include <string.h>


/* ---- helpers ------------------------------------------------------------ */

typedef struct {
    PyTypeObject *scope_type;
    PyTypeObject *handoff_type;
    PyObject *delta_key;        /* thread-dict key of thread_delta()'s last words */
} module_state;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

static PyThreadState *
find_thread(PyInterpreterState *interp, uint64_t id)
{
    for (PyThreadState *t = interp->threads.head; t != NULL; t = t->next) {
        if (_PyRetrace_ThreadId(t) == id) {
            return t;
        }
    }
    return NULL;
}

static PyThreadState *
thread_from_arg(PyObject *arg)
{
    PyThreadState *tstate = _PyThreadState_GET();
    if (arg == NULL || arg == Py_None) {
        return tstate;
    }
    if (!PyLong_Check(arg)) {
        PyErr_Format(PyExc_TypeError, "thread_id must be an int or None, not %.100s",
                     Py_TYPE(arg)->tp_name);
        return NULL;
    }
    uint64_t id = PyLong_AsUnsignedLongLong(arg);
    if (id == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_LookupError, "unknown retrace thread id %R", arg);
        return NULL;
    }
    PyThreadState *t = find_thread(tstate->interp, id);
    if (t == NULL) {
        PyErr_Format(PyExc_LookupError, "unknown retrace thread id %R", arg);
    }
    return t;
}

static Py_ssize_t
collect(PyThreadState *tstate, _PyRetraceFrames *fr)
{
    Py_ssize_t n = _PyRetrace_CollectFrames(tstate, fr);
    if (n < 0) {
        PyErr_NoMemory();
    }
    return n;
}

/* ---- coordinates / thread_delta / hash ------------------------------------ */

static PyObject *
retrace_coordinates(PyObject *module, PyObject *const *args, Py_ssize_t nargs,
                    PyObject *kwnames)
{
    static const char *const kwlist[] = {"thread_id", "drop", NULL};
    PyObject *thread_arg = Py_None;
    Py_ssize_t drop = 0;
    PyObject *argv[2] = {NULL, NULL};
    Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "coordinates() takes at most 2 arguments (%zd given)",
                     nargs + nkw);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        argv[i] = args[i];
    }
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int k;
        for (k = 0; kwlist[k]; k++) {
            if (PyUnicode_Check(name) && PyUnicode_CompareWithASCIIString(name, kwlist[k]) == 0) {
                break;
            }
        }
        if (kwlist[k] == NULL || argv[k] != NULL) {
            PyErr_Format(PyExc_TypeError, "coordinates() got an unexpected or repeated "
                         "keyword argument %R", name);
            return NULL;
        }
        argv[k] = args[nargs + i];
    }
    if (argv[0] != NULL) {
        thread_arg = argv[0];
    }
    if (argv[1] != NULL) {
        if (!PyLong_Check(argv[1])) {
            PyErr_SetString(PyExc_TypeError, "drop must be an int");
            return NULL;
        }
        drop = PyLong_AsSsize_t(argv[1]);
        if (drop == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (drop < 0) {
            PyErr_SetString(PyExc_ValueError, "drop must be >= 0");
            return NULL;
        }
    }
    PyThreadState *t = thread_from_arg(thread_arg);
    if (t == NULL) {
        return NULL;
    }
    _PyRetraceFrames fr;
    Py_ssize_t n = collect(t, &fr);
    if (n < 0) {
        return NULL;
    }
    Py_ssize_t total = 2 * n;
    Py_ssize_t size = drop >= total ? 0 : total - drop;
    PyObject *result = PyTuple_New(size);
    if (result != NULL) {
        Py_ssize_t pos = 0, out = 0;
        for (Py_ssize_t i = n - 1; i >= 0; i--) {
            uint64_t pair[2];
            _PyRetrace_FrameWords(&fr, i, pair);
            for (int k = 0; k < 2; k++, pos++) {
                if (pos < drop) {
                    continue;
                }
                PyObject *v = PyLong_FromUnsignedLongLong(pair[k]);
                if (v == NULL) {
                    Py_CLEAR(result);
                    goto done;
                }
                PyTuple_SET_ITEM(result, out++, v);
            }
        }
    }
done:
    _PyRetrace_FramesFree(&fr);
    return result;
}

/* thread_delta(): the words emitted last time live in the thread's state
 * dict (cleared with the thread) as a bytes object of native uint64 words. */
static PyObject *
retrace_thread_delta(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    PyThreadState *tstate = _PyThreadState_GET();
    PyObject *tdict = PyThreadState_GetDict();
    if (tdict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "thread_delta(): no thread state dict");
        return NULL;
    }
    PyObject *key = get_state(module)->delta_key;
    PyObject *prev = PyDict_GetItemWithError(tdict, key);   /* borrowed */
    if (prev == NULL && PyErr_Occurred()) {
        return NULL;
    }
    const uint64_t *old = NULL;
    Py_ssize_t oldlen = 0;
    if (prev != NULL && PyBytes_Check(prev)) {
        old = (const uint64_t *)PyBytes_AS_STRING(prev);
        oldlen = PyBytes_GET_SIZE(prev) / (Py_ssize_t)sizeof(uint64_t);
    }
    _PyRetraceFrames fr;
    Py_ssize_t n = collect(tstate, &fr);
    if (n < 0) {
        return NULL;
    }
    PyObject *result = NULL;
    PyObject *words = PyBytes_FromStringAndSize(NULL, 2 * n * (Py_ssize_t)sizeof(uint64_t));
    if (words == NULL) {
        goto done;
    }
    uint64_t *w = (uint64_t *)PyBytes_AS_STRING(words);
    for (Py_ssize_t i = n - 1, pos = 0; i >= 0; i--, pos += 2) {
        _PyRetrace_FrameWords(&fr, i, &w[pos]);
    }
    /* Common prefix in whole (ordinal, coordinate) pairs. */
    Py_ssize_t common = 0;
    while (common + 2 <= 2 * n && common + 2 <= oldlen && w[common] == old[common]
           && w[common + 1] == old[common + 1]) {
        common += 2;
    }
    result = PyTuple_New(1 + 2 * n - common);
    if (result == NULL) {
        goto done;
    }
    PyObject *v = PyLong_FromSsize_t(common);
    if (v == NULL) {
        Py_CLEAR(result);
        goto done;
    }
    PyTuple_SET_ITEM(result, 0, v);
    for (Py_ssize_t pos = common; pos < 2 * n; pos++) {
        v = PyLong_FromUnsignedLongLong(w[pos]);
        if (v == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        PyTuple_SET_ITEM(result, 1 + pos - common, v);
    }
    /* Commit only once the result exists. */
    if (PyDict_SetItem(tdict, key, words) < 0) {
        Py_CLEAR(result);
    }
done:
    Py_XDECREF(words);
    _PyRetrace_FramesFree(&fr);
    return result;
}

static PyObject *
retrace_hash(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(_PyRetrace_LocationHash(_PyThreadState_GET()));
}

static PyObject *
retrace_thread_id(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(_PyRetrace_ThreadId(_PyThreadState_GET()));
}

static PyObject *
retrace_main_thread_id(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyLong_FromUnsignedLongLong(_PyRetrace_MainThreadId(_PyInterpreterState_GET()));
}

static PyObject *
retrace_root_seed(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    const char *seed = _PyRetrace_RootSeed();
    if (seed == NULL) {
        Py_RETURN_NONE;
    }
    return PyUnicode_DecodeFSDefault(seed);
}

static PyObject *
retrace_native_thread_id(PyObject *module, PyObject *arg)
{
    PyThreadState *t = thread_from_arg(arg);
    if (t == NULL) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(t->thread_id);
}

static PyObject *
retrace_identity_hash(PyObject *module, PyObject *obj)
{
    Py_hash_t h = _PyRetrace_IdentityHash(obj);
    if (h == -1 && PyErr_Occurred()) {
        return NULL;
    }
    return PyLong_FromSsize_t(h);
}

/* ---- exclude / include wrappers ------------------------------------------- */

typedef struct {
    PyObject_HEAD
    PyObject *func;
    int include;           /* 0: exclude (transparent), 1: include (visible) */
    vectorcallfunc vectorcall;
} ScopeWrapper;

static PyObject *
scope_vectorcall(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ScopeWrapper *w = (ScopeWrapper *)self;
    PyThreadState *tstate = _PyThreadState_GET();
    int saved = tstate->retrace.transparent;
    tstate->retrace.transparent = w->include ? 0 : saved + 1;
    PyObject *res = PyObject_Vectorcall(w->func, args, nargsf, kwnames);
    tstate->retrace.transparent = saved;
    return res;
}

static int
scope_traverse(PyObject *self, visitproc visit, void *arg)
{
    Py_VISIT(((ScopeWrapper *)self)->func);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int
scope_clear(PyObject *self)
{
    Py_CLEAR(((ScopeWrapper *)self)->func);
    return 0;
}

static void
scope_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    scope_clear(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyObject *
scope_repr(PyObject *self)
{
    ScopeWrapper *w = (ScopeWrapper *)self;
    return PyUnicode_FromFormat("<retrace.%s %R>", w->include ? "include" : "exclude", w->func);
}

static PyObject *
scope_get(PyObject *self, PyObject *obj, PyObject *type)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self);
    }
    return PyMethod_New(self, obj);
}

#if PY_VERSION_HEX < 0x030C0000
#  include "structmember.h"
#  define Py_T_OBJECT_EX T_OBJECT_EX
#  define Py_T_PYSSIZET T_PYSSIZET
#  define Py_READONLY READONLY
#endif

static PyMemberDef scope_members[] = {
    {"__wrapped__", Py_T_OBJECT_EX, offsetof(ScopeWrapper, func), Py_READONLY, NULL},
    {"__vectorcalloffset__", Py_T_PYSSIZET, offsetof(ScopeWrapper, vectorcall), Py_READONLY,
     NULL},
    {NULL},
};

static PyType_Slot scope_slots[] = {
    {Py_tp_dealloc, scope_dealloc},
    {Py_tp_traverse, scope_traverse},
    {Py_tp_clear, scope_clear},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_repr, scope_repr},
    {Py_tp_descr_get, scope_get},
    {Py_tp_members, scope_members},
    {0, NULL},
};

static PyType_Spec scope_spec = {
    .name = "_retrace.ScopeWrapper",
    .basicsize = sizeof(ScopeWrapper),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL
             | Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = scope_slots,
};


static PyObject *
make_scope(PyObject *module, PyObject *func, int include)
{
    if (!PyCallable_Check(func)) {
        PyErr_Format(PyExc_TypeError, "%s() expects a callable, not %.100s",
                     include ? "include" : "exclude", Py_TYPE(func)->tp_name);
        return NULL;
    }
    ScopeWrapper *w = PyObject_GC_New(ScopeWrapper, get_state(module)->scope_type);
    if (w == NULL) {
        return NULL;
    }
    w->func = Py_NewRef(func);
    w->include = include;
    w->vectorcall = scope_vectorcall;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static PyObject *
retrace_exclude(PyObject *module, PyObject *func)
{
    return make_scope(module, func, 0);
}

static PyObject *
retrace_include(PyObject *module, PyObject *func)
{
    return make_scope(module, func, 1);
}

/* ---- scheduling callbacks ------------------------------------------------- */

static void **
callback_slot(PyInterpreterState *interp, int which)
{
    switch (which) {
    case 0: return &interp->retrace.thread_start;
    case 1: return &interp->retrace.thread_yield;
    default: return &interp->retrace.thread_resume;
    }
}

static PyObject *
set_callback(int which, PyObject *cb)
{
    if (cb != Py_None && !PyCallable_Check(cb)) {
        PyErr_Format(PyExc_TypeError, "callback must be callable or None, not %.100s",
                     Py_TYPE(cb)->tp_name);
        return NULL;
    }
    void **slot = callback_slot(_PyInterpreterState_GET(), which);
    PyObject *old = (PyObject *)*slot;
    *slot = cb == Py_None ? NULL : Py_NewRef(cb);
    Py_XDECREF(old);
    Py_RETURN_NONE;
}

static PyObject *
get_callback(int which)
{
    PyObject *cb = (PyObject *)*callback_slot(_PyInterpreterState_GET(), which);
    return Py_NewRef(cb ? cb : Py_None);
}

#define CALLBACK_FUNCS(NAME, IDX) \
    static PyObject *retrace_set_##NAME(PyObject *m, PyObject *cb) \
    { return set_callback(IDX, cb); } \
    static PyObject *retrace_get_##NAME(PyObject *m, PyObject *Py_UNUSED(x)) \
    { return get_callback(IDX); }

CALLBACK_FUNCS(thread_start_callback, 0)
CALLBACK_FUNCS(thread_yield_callback, 1)
CALLBACK_FUNCS(thread_resume_callback, 2)

/* ---- call_at ---------------------------------------------------------------- */

static void
disarm(PyInterpreterState *interp)
{
    _PyRetraceInterpState *rs = &interp->retrace;
    PyObject *cb = (PyObject *)rs->call_at_callback;
    PyObject *over = (PyObject *)rs->call_at_overshoot;
    PyMem_RawFree(rs->call_at_words);
    rs->call_at_words = NULL;
    rs->call_at_len = 0;
    rs->call_at_callback = NULL;
    rs->call_at_overshoot = NULL;
    rs->call_at_armed = 0;
    for (PyThreadState *t = interp->threads.head; t != NULL; t = t->next) {
        _PyRetrace_DisarmThread(t);
    }
    Py_XDECREF(cb);
    Py_XDECREF(over);
}

static PyObject *
retrace_call_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyInterpreterState *interp = _PyInterpreterState_GET();
    if (nargs == 1 && args[0] == Py_None) {
        disarm(interp);
        Py_RETURN_NONE;
    }
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError,
                        "call_at(thread_id, coordinates, callback, overshoot_callback=None) "
                        "or call_at(None)");
        return NULL;
    }
    PyObject *tid = args[0], *coords = args[1], *cb = args[2];
    PyObject *over = nargs == 4 ? args[3] : Py_None;
    if (!PyLong_Check(tid)) {
        PyErr_SetString(PyExc_TypeError, "thread_id must be an int");
        return NULL;
    }
    uint64_t id = PyLong_AsUnsignedLongLong(tid);
    if (id == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "thread_id out of range");
        return NULL;
    }
    if (!PyTuple_Check(coords)) {
        PyErr_SetString(PyExc_TypeError, "coordinates must be a tuple of ints");
        return NULL;
    }
    if (!PyCallable_Check(cb) || (over != Py_None && !PyCallable_Check(over))) {
        PyErr_SetString(PyExc_TypeError, "callback and overshoot_callback must be callable");
        return NULL;
    }
    Py_ssize_t len = PyTuple_GET_SIZE(coords);
    if (len % 2 != 0) {
        PyErr_SetString(PyExc_ValueError, "coordinates must hold (ordinal, coordinate) pairs");
        return NULL;
    }
    uint64_t *words = PyMem_RawMalloc(sizeof(uint64_t) * (len ? len : 1));
    if (words == NULL) {
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < len; i++) {
        PyObject *w = PyTuple_GET_ITEM(coords, i);
        if (!PyLong_Check(w)) {
            PyMem_RawFree(words);
            PyErr_SetString(PyExc_TypeError, "coordinates must be a tuple of ints");
            return NULL;
        }
        words[i] = PyLong_AsUnsignedLongLong(w);
        if (words[i] == (uint64_t)-1 && PyErr_Occurred()) {
            PyMem_RawFree(words);
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError, "coordinate words must be in [0, 2**64)");
            return NULL;
        }
    }
    PyThreadState *target = find_thread(interp, id);
    if (target != NULL) {
        int cmp = _PyRetrace_CompareCoordinates(target, words, len);
        if (cmp == -2) {
            PyMem_RawFree(words);
            return PyErr_NoMemory();
        }
        /* For the calling thread "now" is this call itself: the target must be
         * strictly ahead.  Another thread's current point may still be hit. */
        if (cmp > 0 || (cmp == 0 && target == _PyThreadState_GET())) {
            PyMem_RawFree(words);
            PyErr_SetString(PyExc_ValueError, "call_at target is already in the past");
            return NULL;
        }
    }
    disarm(interp);
    _PyRetraceInterpState *rs = &interp->retrace;
    rs->call_at_words = words;
    rs->call_at_len = len;
    rs->call_at_thread = id;
    rs->call_at_callback = Py_NewRef(cb);
    rs->call_at_overshoot = over == Py_None ? NULL : Py_NewRef(over);
    rs->call_at_armed = 1;
    if (target != NULL) {
        _PyRetrace_ArmThread(target);
    }
    Py_RETURN_NONE;
}

static PyObject *
retrace_call_at_armed(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(_PyInterpreterState_GET()->retrace.call_at_armed);
}

/* ---- ThreadHandoff ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    pthread_mutex_t cmutex;  /* protects the fields below */
    pthread_cond_t cond;
    int closed;
    Py_ssize_t npermits, cap;
    uint64_t *permits;       /* durable runnable permits (multiset) */
    Py_ssize_t sleepers;
} Handoff;

static PyObject *
handoff_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "ThreadHandoff() takes no arguments");
        return NULL;
    }
    Handoff *self = (Handoff *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (pthread_mutex_init(&self->cmutex, NULL) != 0) {
        type->tp_free(self);
        Py_DECREF(type);
        PyErr_SetString(PyExc_RuntimeError, "cannot create ThreadHandoff mutex");
        return NULL;
    }
    if (pthread_cond_init(&self->cond, NULL) != 0) {
        pthread_mutex_destroy(&self->cmutex);
        type->tp_free(self);
        Py_DECREF(type);
        PyErr_SetString(PyExc_RuntimeError, "cannot create ThreadHandoff condition");
        return NULL;
    }
    return (PyObject *)self;
}

static void
handoff_dealloc(PyObject *op)
{
    Handoff *self = (Handoff *)op;
    PyTypeObject *tp = Py_TYPE(op);
    pthread_cond_destroy(&self->cond);
    pthread_mutex_destroy(&self->cmutex);
    PyMem_RawFree(self->permits);
    tp->tp_free(op);
    Py_DECREF(tp);
}

static int
take_permit(Handoff *self, uint64_t id)
{
    for (Py_ssize_t i = 0; i < self->npermits; i++) {
        if (self->permits[i] == id) {
            self->permits[i] = self->permits[--self->npermits];
            return 1;
        }
    }
    return 0;
}

static PyObject *
handoff_call(PyObject *op, PyObject *args, PyObject *kwds)
{
    Handoff *self = (Handoff *)op;
    PyObject *tid;
    if (kwds != NULL && PyDict_GET_SIZE(kwds) != 0) {
        PyErr_SetString(PyExc_TypeError, "ThreadHandoff() call takes no keyword arguments");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "O:ThreadHandoff", &tid)) {
        return NULL;
    }
    if (!PyLong_Check(tid)) {
        PyErr_SetString(PyExc_TypeError, "thread id must be an int");
        return NULL;
    }
    uint64_t target = PyLong_AsUnsignedLongLong(tid);
    if (target == (uint64_t)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "thread id out of range");
        return NULL;
    }
    uint64_t me = _PyRetrace_ThreadId(_PyThreadState_GET());
    int closed = 0, nomem = 0;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->cmutex);
    if (self->closed) {
        closed = 1;
    }
    else {
        if (self->npermits == self->cap) {
            Py_ssize_t cap = self->cap ? self->cap * 2 : 8;
            uint64_t *p = PyMem_RawRealloc(self->permits, sizeof(uint64_t) * cap);
            if (p == NULL) {
                nomem = 1;
            }
            else {
                self->permits = p;
                self->cap = cap;
            }
        }
        if (!nomem) {
            self->permits[self->npermits++] = target;
            pthread_cond_broadcast(&self->cond);
            self->sleepers++;
            while (!self->closed && !take_permit(self, me)) {
                pthread_cond_wait(&self->cond, &self->cmutex);
            }
            self->sleepers--;
            if (self->closed) {
                closed = 1;
            }
        }
    }
    pthread_mutex_unlock(&self->cmutex);
    Py_END_ALLOW_THREADS
    if (nomem) {
        return PyErr_NoMemory();
    }
    if (closed) {
        PyErr_SetString(PyExc_RuntimeError, "ThreadHandoff is closed");
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
handoff_close(PyObject *op, PyObject *Py_UNUSED(ignored))
{
    Handoff *self = (Handoff *)op;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&self->cmutex);
    self->closed = 1;
    pthread_cond_broadcast(&self->cond);
    pthread_mutex_unlock(&self->cmutex);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *
handoff_get_closed(PyObject *op, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((Handoff *)op)->closed);
}

static PyMethodDef handoff_methods[] = {
    {"close", handoff_close, METH_NOARGS,
     "Wake every parked thread and reject later hand-offs."},
    {NULL},
};

static PyGetSetDef handoff_getset[] = {
    {"closed", handoff_get_closed, NULL, "True once close() was called.", NULL},
    {NULL},
};

static PyType_Slot handoff_slots[] = {
    {Py_tp_new, handoff_new},
    {Py_tp_dealloc, handoff_dealloc},
    {Py_tp_call, handoff_call},
    {Py_tp_methods, handoff_methods},
    {Py_tp_getset, handoff_getset},
    {Py_tp_doc, "ThreadHandoff()\n--\n\nReplay scheduling gate keyed by retrace thread ids."},
    {0, NULL},
};

static PyType_Spec handoff_spec = {
    .name = "_retrace.ThreadHandoff",
    .basicsize = sizeof(Handoff),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = handoff_slots,
};

/* ---- native capsule API ------------------------------------------------------ */

static int
set_native(_PyRetraceNativeCallback *slot, void **dataslot, void *userdata,
           _PyRetraceNativeCallback cb)
{
    *slot = cb;
    *dataslot = userdata;
    return 0;
}

static int
api_set_start(void *userdata, _PyRetraceNativeCallback cb)
{
    _PyRetraceInterpState *rs = &_PyInterpreterState_GET()->retrace;
    return set_native(&rs->native_start, &rs->native_start_data, userdata, cb);
}

static int
api_set_yield(void *userdata, _PyRetraceNativeCallback cb)
{
    _PyRetraceInterpState *rs = &_PyInterpreterState_GET()->retrace;
    return set_native(&rs->native_yield, &rs->native_yield_data, userdata, cb);
}

static int
api_set_resume(void *userdata, _PyRetraceNativeCallback cb)
{
    _PyRetraceInterpState *rs = &_PyInterpreterState_GET()->retrace;
    return set_native(&rs->native_resume, &rs->native_resume_data, userdata, cb);
}

static uint64_t
api_thread_id(void *tstate)
{
    return _PyRetrace_ThreadId(tstate ? (PyThreadState *)tstate : _PyThreadState_GET());
}

static uint64_t
api_location_hash(void *tstate)
{
    return _PyRetrace_LocationHash(tstate ? (PyThreadState *)tstate : _PyThreadState_GET());
}

static const RetraceProbeAPI probe_api = {
    .abi_version = RETRACE_PROBE_ABI_VERSION,
    .feature_flags = RETRACE_PROBE_THREAD_SCHEDULING | RETRACE_PROBE_COORDINATES
                     | RETRACE_PROBE_CALL_AT | RETRACE_PROBE_THREAD_IDS
                     | RETRACE_PROBE_IDENTITY_HASH,
    .size = sizeof(RetraceProbeAPI),
    .userdata = NULL,
    .set_thread_start_callback = api_set_start,
    .set_thread_yield_callback = api_set_yield,
    .set_thread_resume_callback = api_set_resume,
    .thread_id = api_thread_id,
    .location_hash = api_location_hash,
};

/* ---- module ------------------------------------------------------------------ */

static PyMethodDef retrace_methods[] = {
    {"coordinates", _PyCFunction_CAST(retrace_coordinates), METH_FASTCALL | METH_KEYWORDS,
     "coordinates(thread_id=None, drop=0)\n--\n\n"
     "Visible frame coordinates, oldest frame first: (call_ordinal, instruction) pairs."},
    {"thread_delta", retrace_thread_delta, METH_NOARGS,
     "thread_delta()\n--\n\n(common_prefix_length, *changed_suffix) for the current thread."},
    {"hash", retrace_hash, METH_NOARGS,
     "hash()\n--\n\n64-bit hash of the current thread's coordinates."},
    {"thread_id", retrace_thread_id, METH_NOARGS,
     "thread_id()\n--\n\nDeterministic id of the current thread."},
    {"root_seed", retrace_root_seed, METH_NOARGS,
     "root_seed()\n--\n\nRETRACE_ROOT_SEED as read at the first thread id (None: unset, "
     "the default seed)."},
    {"main_thread_id", retrace_main_thread_id, METH_NOARGS,
     "main_thread_id()\n--\n\nDeterministic id of the main thread (from RETRACE_ROOT_SEED)."},
    {"native_thread_id", retrace_native_thread_id, METH_O,
     "native_thread_id(thread_id)\n--\n\nOS-level ident of a thread given its retrace id."},
    {"identity_hash", retrace_identity_hash, METH_O,
     "identity_hash(obj)\n--\n\nThe deterministic identity hash of obj."},
    {"exclude", retrace_exclude, METH_O,
     "exclude(callable)\n--\n\nWrap callable so its frames are coordinate-transparent."},
    {"include", retrace_include, METH_O,
     "include(callable)\n--\n\nWrap callable so it runs in application-visible space."},
    {"set_thread_start_callback", retrace_set_thread_start_callback, METH_O, NULL},
    {"get_thread_start_callback", retrace_get_thread_start_callback, METH_NOARGS, NULL},
    {"set_thread_yield_callback", retrace_set_thread_yield_callback, METH_O, NULL},
    {"get_thread_yield_callback", retrace_get_thread_yield_callback, METH_NOARGS, NULL},
    {"set_thread_resume_callback", retrace_set_thread_resume_callback, METH_O, NULL},
    {"get_thread_resume_callback", retrace_get_thread_resume_callback, METH_NOARGS, NULL},
    {"call_at", _PyCFunction_CAST(retrace_call_at), METH_FASTCALL,
     "call_at(thread_id, coordinates, callback, overshoot_callback=None) or call_at(None)"},
    {"call_at_armed", retrace_call_at_armed, METH_NOARGS, "True while a call_at is armed."},
    {NULL, NULL},
};

static int
retrace_exec(PyObject *module)
{
    module_state *st = get_state(module);
    st->delta_key = PyUnicode_InternFromString("_retrace.thread_delta");
    if (st->delta_key == NULL) {
        return -1;
    }
    st->scope_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &scope_spec, NULL);
    if (st->scope_type == NULL) {
        return -1;
    }
    st->handoff_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &handoff_spec, NULL);
    if (st->handoff_type == NULL) {
        return -1;
    }
    if (PyModule_AddType(module, st->handoff_type) < 0) {
        return -1;
    }
    PyObject *capsule = PyCapsule_New((void *)&probe_api, RETRACE_PROBE_CAPSULE_NAME, NULL);
    if (capsule == NULL) {
        return -1;
    }
    int rc = PyModule_AddObjectRef(module, "_C_API", capsule);
    Py_DECREF(capsule);
    if (rc < 0) {
        return -1;
    }
    if (PyModule_AddIntConstant(module, "ABI_VERSION", RETRACE_PROBE_ABI_VERSION) < 0
        || PyModule_AddStringConstant(module, "ABI_NAME", RETRACE_PROBE_ABI_NAME) < 0
        || PyModule_AddIntConstant(module, "FEATURE_FLAGS", probe_api.feature_flags) < 0
        || PyModule_AddIntConstant(module, "PROBE_THREAD_SCHEDULING",
                                   RETRACE_PROBE_THREAD_SCHEDULING) < 0
        || PyModule_AddIntConstant(module, "PROBE_COORDINATES", RETRACE_PROBE_COORDINATES) < 0
        || PyModule_AddIntConstant(module, "PROBE_CALL_AT", RETRACE_PROBE_CALL_AT) < 0
        || PyModule_AddIntConstant(module, "PROBE_THREAD_IDS", RETRACE_PROBE_THREAD_IDS) < 0
        || PyModule_AddIntConstant(module, "PROBE_IDENTITY_HASH",
                                   RETRACE_PROBE_IDENTITY_HASH) < 0) {
        return -1;
    }
    return 0;
}

static int
retrace_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = get_state(module);
    Py_VISIT(st->scope_type);
    Py_VISIT(st->handoff_type);
    Py_VISIT(st->delta_key);
    return 0;
}

static int
retrace_clear(PyObject *module)
{
    module_state *st = get_state(module);
    Py_CLEAR(st->scope_type);
    Py_CLEAR(st->handoff_type);
    Py_CLEAR(st->delta_key);
    return 0;
}

static void
retrace_free(void *module)
{
    PyInterpreterState *interp = _PyInterpreterState_GET();
    for (int i = 0; i < 3; i++) {
        void **slot = callback_slot(interp, i);
        PyObject *old = (PyObject *)*slot;
        *slot = NULL;
        Py_XDECREF(old);
    }
    disarm(interp);
    retrace_clear((PyObject *)module);
}

static PyModuleDef_Slot retrace_module_slots[] = {
    {Py_mod_exec, retrace_exec},
#ifdef Py_MOD_PER_INTERPRETER_GIL_SUPPORTED
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
    {0, NULL},
};

static struct PyModuleDef retrace_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_retrace",
    .m_doc = "Low-level Retrace execution probes of a patched CPython.",
    .m_size = sizeof(module_state),
    .m_methods = retrace_methods,
    .m_slots = retrace_module_slots,
    .m_traverse = retrace_traverse,
    .m_clear = retrace_clear,
    .m_free = retrace_free,
};

PyMODINIT_FUNC
PyInit__retrace(void)
{
    return PyModuleDef_Init(&retrace_module);
}
