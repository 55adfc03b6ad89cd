/* Retrace probes: thread identities, scheduling callbacks, call_at and
 * deterministic identity hashes.  Hooked from the eval loop, the GIL hand-off
 * path, the _thread module and object deallocation. */

#include "Python.h"
#include "pycore_ceval.h"
#include "pycore_frame.h"
#include "pycore_interp.h"
#include "pycore_object.h"        // _PyReftracerTrack()
#include "pycore_pystate.h"
#include "pycore_runtime.h"
#include "pycore_retrace.h"

#include <stdlib.h>
#include <string.h>

#ifndef Py_NO_INLINE
#  define Py_NO_INLINE
#endif

#if PY_VERSION_HEX < 0x030C0000
#  include "pycore_opcode.h"      // _PyOpcode_Deopt
#endif

Py_ssize_t _PyRetrace_identity_live = 0;      /* live identity-table entries */
Py_ssize_t _PyRetrace_identity_objects = 0;   /* ... whose object is not a type */

_Static_assert(sizeof(((PyTypeObject *)0)->tp_flags) * 8 > 40,
               "_PyRetrace_TPFLAGS_IDENTITY needs a 64-bit tp_flags");

/* Counts of thread starts and identity hashes made by control-plane
 * (transparent) code; tagged so they never equal an application count. */
#define HIDDEN_TAG (1ULL << 63)
static uint64_t hidden_spawns;
static uint64_t hidden_hashes;

/* ---- mixing ------------------------------------------------------------ */

static inline uint64_t
mix64(uint64_t x)
{
    /* splitmix64 finaliser */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static inline uint64_t
combine(uint64_t h, uint64_t word)
{
    return mix64(h ^ (word + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2)));
}

static uint64_t
nonzero(uint64_t x)
{
    /* 0 means "unassigned"; also keep ids positive as Python ints of 63 bits
     * would surprise nobody, but full 64 bits are allowed. */
    return x ? x : 0x5245545241434531ULL;
}

/* The root seed is read once per process, at the first thread id handed out:
 * the program may change its environment afterwards (Retrace itself removes
 * the variables it set to re-execute) without changing ids already in use. */
static char root_seed_buf[256];
static int root_seed_state;   /* 0: unread, 1: RETRACE_ROOT_SEED unset, 2: read */
static uint64_t root_seed_id;

static void
read_root_seed(void)
{
    if (root_seed_state != 0) {
        return;
    }
    const char *seed = getenv("RETRACE_ROOT_SEED");
    root_seed_state = 1;
    if (seed != NULL) {
        size_t n = strlen(seed);
        if (n >= sizeof(root_seed_buf)) {
            n = sizeof(root_seed_buf) - 1;   /* longer seeds: the first 255 bytes count */
        }
        memcpy(root_seed_buf, seed, n);
        root_seed_buf[n] = '\0';
        root_seed_state = 2;
    }
    const char *text = root_seed_state == 2 ? root_seed_buf : "retrace";
    uint64_t h = 0xcbf29ce484222325ULL;    /* FNV-1a */
    for (const unsigned char *c = (const unsigned char *)text; *c; c++) {
        h ^= *c;
        h *= 0x100000001b3ULL;
    }
    root_seed_id = nonzero(mix64(h));
}

static uint64_t
seed_id(void)
{
    read_root_seed();
    return root_seed_id;
}

const char *
_PyRetrace_RootSeed(void)
{
    read_root_seed();
    return root_seed_state == 2 ? root_seed_buf : NULL;
}

/* ---- frames --------------------------------------------------------------- */

static uint64_t
_PyRetrace_VisibleCoordinate(_PyInterpreterFrame *f, int innermost)
{
    uint64_t c = _PyRetrace_FrameCoordinate(f);
#if PY_VERSION_HEX < 0x030C0000
    /* 3.11 checks the eval-breaker *after* a backward jump while prev_instr
     * still names the jump, whose bias is already applied.  Report the
     * innermost frame at the jump itself, as 3.13 (which checks before
     * jumping) does, so such points stay ordered and can be hit by call_at. */
    if (innermost) {
        _Py_CODEUNIT *ip = _PyRetrace_INSTR(f);
        _Py_CODEUNIT *start = _PyCode_CODE(_PyRetrace_CODE(f));
        if (ip >= start) {
            int op = _PyOpcode_Deopt[_Py_OPCODE(*ip)];
            if (op == JUMP_BACKWARD || op == POP_JUMP_BACKWARD_IF_FALSE
                || op == POP_JUMP_BACKWARD_IF_TRUE || op == POP_JUMP_BACKWARD_IF_NONE
                || op == POP_JUMP_BACKWARD_IF_NOT_NONE) {
                uint64_t oparg = _Py_OPARG(*ip);
                int shift = 8;
                for (_Py_CODEUNIT *p = ip - 1;
                     p >= start && _PyOpcode_Deopt[_Py_OPCODE(*p)] == EXTENDED_ARG;
                     p--, shift += 8) {
                    oparg |= (uint64_t)_Py_OPARG(*p) << shift;
                }
                c -= oparg;
            }
        }
    }
#else
    (void)innermost;
#endif
    return c;
}

_PyInterpreterFrame *
_PyRetrace_VisibleParent(_PyInterpreterFrame *f)
{
    while (f != NULL && !_PyRetrace_FrameVisible(f)) {
        f = f->previous;
    }
    return f;
}

/* Slow path of _PyRetrace_Activate(); sets the frame's ordinal and gate.
 *
 * Ordinals: a child gets the number of earlier children of its nearest visible
 * parent at the parent's current position.  The parent's ``gate`` holds the
 * position key while C-driven children are counted there; a direct (eval-loop)
 * call is always the only direct call at its position, so it takes ordinal 0
 * unless counting is open at that key.  A child entered from C at a fresh key
 * starts at 1 when the parent's last direct call was made from the same
 * instruction (that call may have used ordinal 0 at this very key: finalisers
 * run while the callee's frame is cleared, before the caller moves on). */
static Py_NO_INLINE void
activate_general(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
    _PyRetraceFrameState *rs = &frame->retrace;
    if (tstate->retrace.transparent) {
        /* Control-plane frames never consume application ordinals. */
        rs->ordinal = _PyRetrace_ORDINAL_TRANSPARENT;
        rs->gate = _PyRetrace_GATE_TRANSPARENT;
        return;
    }
    rs->gate = _PyRetrace_GATE_CLEAN;
    int from_c = _PyRetrace_ENTERED_FROM_C(frame);
    _PyInterpreterFrame *p = frame->previous;
    /* Walk to the nearest visible frame.  Shims (3.12+ entry frames, the only
     * FRAME_OWNED_BY_CSTACK frames) carry _PyRetrace_GATE_SHIM, transparent
     * frames _PyRetrace_GATE_TRANSPARENT: one load per frame decides. */
    for (;; p = p->previous) {
        if (p == NULL) {
            rs->ordinal = tstate->retrace.root_ordinal++;
            return;
        }
        uintptr_t g = p->retrace.gate;
        if (g == _PyRetrace_GATE_SHIM) {
            from_c = 1;
        }
        else if (g != _PyRetrace_GATE_TRANSPARENT) {
            break;
        }
    }
    _PyRetraceFrameState *ps = &p->retrace;
    uintptr_t key = _PyRetrace_PositionKey(p);
    if (ps->gate == key) {
        /* Counting is open at this position (the common case of a generator
         * or callback driven repeatedly from one C call). */
        if (ps->next_child == UINT32_MAX) {
            /* Counter exhausted: move the parent's coordinate on by one code
             * unit (still ordered: every later coordinate moves too) and
             * count afresh at the new position. */
            ps->bias += 1;
            ps->gate = _PyRetrace_PositionKey(p);
            ps->next_child = 0;
        }
        rs->ordinal = ps->next_child++;
        if (!from_c) {
            ps->last_call = (uint32_t)(uintptr_t)_PyRetrace_INSTR(p);
        }
        return;
    }
    uint32_t here = (uint32_t)(uintptr_t)_PyRetrace_INSTR(p);
    if (from_c) {
        uint32_t first = ps->last_call == here ? 1 : 0;
        ps->gate = key;
        ps->next_child = first + 1;
        rs->ordinal = first;
    }
    else {
        /* A direct call at a fresh position: close any stale counting. */
        ps->gate = _PyRetrace_GATE_CLEAN;
        ps->last_call = here;
        rs->ordinal = 0;
    }
}

/* Slow path of _PyRetrace_Activate().  Its first test is the common case of
 * a frame entered from C (3.12+: the caller is a shim) while the caller's
 * visible parent is already counting children at its current position (a
 * generator or callback driven repeatedly from one C call, e.g. sum() over a
 * generator): the next ordinal, without a stack frame of its own.  Everything
 * else (the first C-driven child at a position, transparent frames, root
 * frames, an exhausted counter, a frame left with a non-zero ordinal by its
 * previous activation) goes to activate_general(). */
void
_PyRetrace_ActivateSlow(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
#if PY_VERSION_HEX >= 0x030C0000
    _PyInterpreterFrame *p = frame->previous;
    if (p->retrace.gate == _PyRetrace_GATE_SHIM) {
        _PyInterpreterFrame *q = p->previous;
        if (q != NULL && q->retrace.gate == _PyRetrace_PositionKey(q)) {
            uint32_t n = q->retrace.next_child;
            if (n != UINT32_MAX && !tstate->retrace.transparent) {
                q->retrace.next_child = n + 1;
                frame->retrace.ordinal = n;
                frame->retrace.gate = _PyRetrace_GATE_CLEAN;
                return;
            }
        }
    }
#endif
    activate_general(tstate, frame);
}

Py_ssize_t
_PyRetrace_CollectFrames(PyThreadState *tstate, _PyRetraceFrames *out)
{
    _PyInterpreterFrame **frames = out->small;
    Py_ssize_t n = 0, cap = (Py_ssize_t)(sizeof(out->small) / sizeof(out->small[0]));
    for (_PyInterpreterFrame *f = _PyRetrace_VisibleParent(_PyRetrace_CURRENT_FRAME(tstate));
         f != NULL; f = _PyRetrace_VisibleParent(f->previous)) {
        if (n == cap) {
            _PyInterpreterFrame **bigger = PyMem_RawMalloc(sizeof(*frames) * cap * 2);
            if (bigger == NULL) {
                if (frames != out->small) {
                    PyMem_RawFree(frames);
                }
                out->frames = out->small;
                out->count = 0;
                return -1;
            }
            memcpy(bigger, frames, sizeof(*frames) * n);
            if (frames != out->small) {
                PyMem_RawFree(frames);
            }
            frames = bigger;
            cap *= 2;
        }
        frames[n++] = f;
    }
    out->frames = frames;
    out->count = n;
    return n;
}

void
_PyRetrace_FramesFree(_PyRetraceFrames *fr)
{
    if (fr->frames != fr->small) {
        PyMem_RawFree(fr->frames);
    }
    fr->frames = fr->small;
    fr->count = 0;
}

void
_PyRetrace_FrameWords(_PyRetraceFrames *fr, Py_ssize_t i, uint64_t pair[2])
{
    _PyInterpreterFrame *f = fr->frames[i];
    pair[0] = f->retrace.ordinal;
    pair[1] = _PyRetrace_VisibleCoordinate(f, i == 0);
}

uint64_t
_PyRetrace_LocationHash(PyThreadState *tstate)
{
    _PyRetraceFrames fr;
    /* Out of memory: hash what is known (the thread id); never fails. */
    Py_ssize_t n = _PyRetrace_CollectFrames(tstate, &fr);
    uint64_t h = _PyRetrace_ThreadId(tstate);
    for (Py_ssize_t i = n - 1; i >= 0; i--) {
        uint64_t pair[2];
        _PyRetrace_FrameWords(&fr, i, pair);
        h = combine(h, pair[0]);
        h = combine(h, pair[1]);
    }
    _PyRetrace_FramesFree(&fr);
    return h;
}

/* ---- thread identities ---------------------------------------------------- */

uint64_t
_PyRetrace_MainThreadId(PyInterpreterState *interp)
{
    uint64_t id = seed_id();
    if (!_Py_IsMainInterpreter(interp)) {
        id = nonzero(combine(id, (uint64_t)interp->id));
    }
    return id;
}

static int
id_in_use(PyInterpreterState *interp, uint64_t id, PyThreadState *except)
{
    if (id == _PyRetrace_MainThreadId(interp)) {
        return 1;
    }
    for (PyThreadState *t = interp->threads.head; t != NULL; t = t->next) {
        if (t != except && t->retrace.thread_id == id) {
            return 1;
        }
    }
    return 0;
}

static uint64_t
unique_id(PyInterpreterState *interp, uint64_t id, PyThreadState *self)
{
#ifdef HEAD_LOCK
    _PyRuntimeState *runtime = &_PyRuntime;
    HEAD_LOCK(runtime);
#endif
    /* Without HEAD_LOCK (3.11) the GIL held by the caller protects the list. */
    while (id_in_use(interp, id, self)) {
        id = nonzero(mix64(id + 1));
    }
    self->retrace.thread_id = id;
#ifdef HEAD_LOCK
    HEAD_UNLOCK(runtime);
#endif
    return id;
}

/* A thread state of the process's main OS thread.  In every interpreter it
 * gets that interpreter's main-thread id, which _thread._get_main_thread_ident()
 * reports too (so threading's idea of the main thread holds in subinterpreters). */
static int
is_main_tstate(PyThreadState *tstate)
{
    return tstate->thread_id == _PyRuntime.main_thread;
}

uint64_t
_PyRetrace_AssignThreadId(PyThreadState *tstate)
{
    PyInterpreterState *interp = tstate->interp;
    if (is_main_tstate(tstate)) {
        /* The seed id needs no uniqueness check: children always avoid it. */
        tstate->retrace.thread_id = _PyRetrace_MainThreadId(interp);
        return tstate->retrace.thread_id;
    }
    /* A thread created outside _thread (C API): derive from the
     * interpreter's order of first use. */
    uint64_t id = nonzero(combine(_PyRetrace_MainThreadId(interp),
                                  ++interp->retrace.foreign_threads | (1ULL << 62)));
    return unique_id(interp, id, tstate);
}

uint64_t
_PyRetrace_ThreadIdNoLock(PyThreadState *tstate)
{
    if (tstate->retrace.thread_id) {
        return tstate->retrace.thread_id;
    }
    if (is_main_tstate(tstate)) {
        tstate->retrace.thread_id = _PyRetrace_MainThreadId(tstate->interp);
        return tstate->retrace.thread_id;
    }
    return (uint64_t)tstate->thread_id;
}

void
_PyRetrace_InitChildThread(PyThreadState *parent, PyThreadState *child)
{
    if (parent == NULL || child == NULL) {
        return;
    }
    uint64_t pid = _PyRetrace_ThreadId(parent);
    uint64_t h;
    if (parent->retrace.transparent) {
        /* Started by control-plane code (a recorder's writer thread, say):
         * it must not shift the ids of the application's threads, so it uses
         * a separate process-wide count (its own id need not repeat). */
        h = combine(pid, ++hidden_spawns | HIDDEN_TAG);
    }
    else {
        h = combine(pid, ++parent->retrace.spawn_count);
        h = combine(h, _PyRetrace_LocationHash(parent));
    }
    unique_id(child->interp, nonzero(h), child);
}

/* ---- scheduling callbacks -------------------------------------------------- */

static void
call_python_callback(PyThreadState *tstate, PyObject *cb)
{
    Py_INCREF(cb);
    tstate->retrace.transparent++;
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyObject *res = PyObject_CallNoArgs(cb);
    if (res == NULL) {
        PyErr_WriteUnraisable(cb);
    }
    else {
        Py_DECREF(res);
    }
    PyErr_Restore(type, value, tb);
    tstate->retrace.transparent--;
    Py_DECREF(cb);
}

static void
deliver(PyThreadState *tstate, void *pycb, _PyRetraceNativeCallback native, void *data)
{
    if (tstate->retrace.in_callback) {
        return;
    }
    tstate->retrace.in_callback = 1;
    if (native != NULL) {
        native(data, tstate->interp, tstate, _PyRetrace_LocationHash(tstate));
    }
    if (pycb != NULL) {
        call_python_callback(tstate, (PyObject *)pycb);
    }
    tstate->retrace.in_callback = 0;
}

void
_PyRetrace_ThreadStart(PyThreadState *tstate)
{
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    (void)_PyRetrace_ThreadId(tstate);
    tstate->retrace.native_ident = (uint64_t)PyThread_get_thread_ident();
    if (rs->call_at_armed && rs->call_at_thread == tstate->retrace.thread_id) {
        _PyRetrace_ArmThread(tstate);
    }
    if (rs->thread_start != NULL || rs->native_start != NULL) {
        deliver(tstate, rs->thread_start, rs->native_start, rs->native_start_data);
    }
}

void
_PyRetrace_ThreadYield(PyThreadState *tstate)
{
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    if (rs->thread_yield != NULL || rs->native_yield != NULL) {
        deliver(tstate, rs->thread_yield, rs->native_yield, rs->native_yield_data);
    }
}

void
_PyRetrace_ThreadResume(PyThreadState *tstate)
{
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    if (rs->thread_resume != NULL || rs->native_resume != NULL) {
        deliver(tstate, rs->thread_resume, rs->native_resume, rs->native_resume_data);
    }
}

/* ---- call_at --------------------------------------------------------------- */

/* Compare the visible coordinates of *tstate* with *words*: -1 before,
 * 0 exactly at, 1 past the target, -2 out of memory. */
int
_PyRetrace_CompareCoordinates(PyThreadState *tstate, const uint64_t *words, Py_ssize_t len)
{
    _PyRetraceFrames fr;
    Py_ssize_t n = _PyRetrace_CollectFrames(tstate, &fr);
    if (n < 0) {
        return -2;
    }
    int result = 0;
    Py_ssize_t pos = 0;
    for (Py_ssize_t i = n - 1; i >= 0 && result == 0; i--) {
        uint64_t pair[2];
        _PyRetrace_FrameWords(&fr, i, pair);
        for (int k = 0; k < 2; k++, pos++) {
            if (pos >= len) {
                result = 1;   /* target is a proper prefix: we are inside it, past */
                break;
            }
            if (pair[k] != words[pos]) {
                result = pair[k] < words[pos] ? -1 : 1;
                break;
            }
        }
    }
    if (result == 0 && pos < len) {
        result = -1;   /* current is a proper prefix of the target */
    }
    _PyRetrace_FramesFree(&fr);
    return result;
}

int
_PyRetrace_CheckCallAt(PyThreadState *tstate)
{
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    if (!rs->call_at_armed || rs->call_at_thread != _PyRetrace_ThreadId(tstate)) {
        _PyRetrace_DisarmThread(tstate);
        return 0;
    }
    if (tstate->retrace.transparent) {
        return 0;   /* never fire inside control-plane code */
    }
    int cmp = _PyRetrace_CompareCoordinates(tstate, (const uint64_t *)rs->call_at_words,
                                            rs->call_at_len);
    if (cmp == -2) {
        PyErr_NoMemory();
        return -1;
    }
    if (cmp < 0) {
        return 0;
    }
    PyObject *hit = (PyObject *)rs->call_at_callback;
    PyObject *over = (PyObject *)rs->call_at_overshoot;
    PyMem_RawFree(rs->call_at_words);
    rs->call_at_words = NULL;
    rs->call_at_len = 0;
    rs->call_at_callback = NULL;
    rs->call_at_overshoot = NULL;
    rs->call_at_armed = 0;
    _PyRetrace_DisarmThread(tstate);
    PyObject *cb = cmp == 0 ? hit : over;
    int rc = 0;
    if (cb != NULL && cb != Py_None) {
        tstate->retrace.transparent++;
        PyObject *res = PyObject_CallNoArgs(cb);
        tstate->retrace.transparent--;
        if (res == NULL) {
            rc = -1;
        }
        else {
            Py_DECREF(res);
        }
    }
    Py_XDECREF(hit);
    Py_XDECREF(over);
    return rc;
}

/* ---- identity hashes -------------------------------------------------------- */

static inline uintptr_t
slot_of(uintptr_t key, uintptr_t mask)
{
    return (uintptr_t)mix64((uint64_t)key) & mask;
}

static int
identity_grow(_PyRetraceInterpState *rs)
{
    uintptr_t newsize = rs->id_table ? (rs->id_mask + 1) * 2 : 256;
    struct _PyRetraceIdentityEntry *table =
        PyMem_RawCalloc(newsize, sizeof(struct _PyRetraceIdentityEntry));
    if (table == NULL) {
        return -1;
    }
    uintptr_t mask = newsize - 1;
    if (rs->id_table != NULL) {
        for (uintptr_t i = 0; i <= rs->id_mask; i++) {
            struct _PyRetraceIdentityEntry *e = &rs->id_table[i];
            if (e->key) {
                uintptr_t j = slot_of(e->key, mask);
                while (table[j].key) {
                    j = (j + 1) & mask;
                }
                table[j] = *e;
            }
        }
        PyMem_RawFree(rs->id_table);
    }
    rs->id_table = table;
    rs->id_mask = mask;
    return 0;
}

Py_hash_t
_PyRetrace_IdentityHash(PyObject *op)
{
    PyThreadState *tstate = _PyThreadState_GET();
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    uintptr_t key = (uintptr_t)op;
    if (rs->id_table != NULL) {
        uintptr_t j = slot_of(key, rs->id_mask);
        while (rs->id_table[j].key) {
            if (rs->id_table[j].key == key) {
                return (Py_hash_t)rs->id_table[j].value;
            }
            j = (j + 1) & rs->id_mask;
        }
    }
    if (rs->id_table == NULL || (rs->id_used + 1) * 2 > rs->id_mask + 1) {
        if (identity_grow(rs) < 0) {
            PyErr_NoMemory();
            return -1;
        }
    }
    /* Control-plane code (transparent scope) hashes with a separate count,
     * so what it hashes never shifts the application's identity hashes. */
    uint64_t h = tstate->retrace.transparent
        ? combine(_PyRetrace_ThreadId(tstate), ++hidden_hashes | HIDDEN_TAG)
        : combine(_PyRetrace_ThreadId(tstate), ++tstate->retrace.hash_count);
    Py_hash_t value = (Py_hash_t)(h >> 1);   /* non-negative, never -1 */
    uintptr_t j = slot_of(key, rs->id_mask);
    while (rs->id_table[j].key) {
        j = (j + 1) & rs->id_mask;
    }
    rs->id_table[j].key = key;
    rs->id_table[j].value = value;
    rs->id_used++;
    _PyRetrace_identity_live++;
    if (!PyType_Check(op)) {
        rs->id_objects++;
        _PyRetrace_identity_objects++;
    }
    /* Its type's instances are looked up when they die from now on, whatever
     * the type's tp_hash is then. */
    PyTypeObject *type = Py_TYPE(op);
    if (!(type->tp_flags & _PyRetrace_TPFLAGS_IDENTITY)) {
        type->tp_flags |= _PyRetrace_TPFLAGS_IDENTITY;
    }
    return value;
}

void
_PyRetrace_ForgetIdentity(PyObject *op)
{
    PyThreadState *tstate = _PyThreadState_GET();
    if (tstate == NULL) {
        return;
    }
    _PyRetraceInterpState *rs = &tstate->interp->retrace;
    if (rs->id_table == NULL || rs->id_used == 0) {
        return;
    }
    uintptr_t key = (uintptr_t)op, mask = rs->id_mask;
    uintptr_t j = slot_of(key, mask);
    while (rs->id_table[j].key != key) {
        if (rs->id_table[j].key == 0) {
            return;
        }
        j = (j + 1) & mask;
    }
    /* Backward-shift deletion keeps probe chains intact. */
    uintptr_t hole = j;
    for (;;) {
        j = (j + 1) & mask;
        uintptr_t k = rs->id_table[j].key;
        if (k == 0) {
            break;
        }
        uintptr_t home = slot_of(k, mask);
        /* Move entry j into the hole if its home is not in (hole, j]. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            rs->id_table[hole] = rs->id_table[j];
            hole = j;
        }
    }
    rs->id_table[hole].key = 0;
    rs->id_table[hole].value = 0;
    rs->id_used--;
    _PyRetrace_identity_live--;
    if (!PyType_Check(op)) {
        rs->id_objects--;
        _PyRetrace_identity_objects--;
    }
}

#if PY_VERSION_HEX >= 0x030D0000
void
_PyRetrace_DeallocSlow(PyObject *op, PyTypeObject *type)
{
    _PyReftracerTrack(op, PyRefTracer_DESTROY);
    if (_PyRetrace_identity_objects != 0 && (type->tp_flags & _PyRetrace_TPFLAGS_IDENTITY)) {
        _PyRetrace_ForgetIdentity(op);
    }
}
#endif

/* ---- interpreter teardown ---------------------------------------------------- */

void
_PyRetrace_InterpClear(PyInterpreterState *interp)
{
    _PyRetraceInterpState *rs = &interp->retrace;
    PyObject *objs[5] = {rs->thread_start, rs->thread_yield, rs->thread_resume,
                         rs->call_at_callback, rs->call_at_overshoot};
    rs->thread_start = rs->thread_yield = rs->thread_resume = NULL;
    rs->call_at_callback = rs->call_at_overshoot = NULL;
    rs->call_at_armed = 0;
    rs->native_start = rs->native_yield = rs->native_resume = NULL;
    PyMem_RawFree(rs->call_at_words);
    rs->call_at_words = NULL;
    rs->call_at_len = 0;
    for (int i = 0; i < 5; i++) {
        Py_XDECREF(objs[i]);
    }
}

void
_PyRetrace_InterpFree(PyInterpreterState *interp)
{
    _PyRetraceInterpState *rs = &interp->retrace;
    _PyRetrace_identity_live -= (Py_ssize_t)rs->id_used;
    _PyRetrace_identity_objects -= (Py_ssize_t)rs->id_objects;
    PyMem_RawFree(rs->id_table);
    rs->id_table = NULL;
    rs->id_mask = 0;
    rs->id_used = 0;
    rs->id_objects = 0;
}

/* ---- native ident bridge ------------------------------------------------------ */

void
_PyRetrace_SetNativeIdent(PyThreadState *tstate, unsigned long long native)
{
    tstate->retrace.native_ident = (uint64_t)native;
}

static PyThreadState *
find_by_native(PyInterpreterState *interp, unsigned long long native)
{
    for (PyThreadState *t = interp->threads.head; t != NULL; t = t->next) {
        uint64_t known = t->retrace.native_ident ? t->retrace.native_ident
                                                 : (uint64_t)t->thread_id;
        if (known == (uint64_t)native) {
            return t;
        }
    }
    return NULL;
}

uint64_t
_PyRetrace_IdentFromNative(PyInterpreterState *interp, unsigned long long native)
{
    PyThreadState *t = find_by_native(interp, native);
    return t != NULL ? _PyRetrace_ThreadIdNoLock(t) : (uint64_t)native;
}

unsigned long long
_PyRetrace_NativeFromIdent(PyInterpreterState *interp, uint64_t ident)
{
    for (PyThreadState *t = interp->threads.head; t != NULL; t = t->next) {
        if (_PyRetrace_ThreadIdNoLock(t) == ident) {
            return t->retrace.native_ident ? t->retrace.native_ident
                                           : (unsigned long long)t->thread_id;
        }
    }
    return ident;
}

uint64_t
_PyRetrace_CurrentMainThreadId(PyInterpreterState *interp)
{
    PyThreadState *t = find_by_native(interp, (unsigned long long)_PyRuntime.main_thread);
    return t != NULL ? _PyRetrace_ThreadIdNoLock(t) : _PyRetrace_MainThreadId(interp);
}
