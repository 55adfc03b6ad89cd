/* Retrace probe hooks used by CPython's core (Py_BUILD_CORE only).
 *
 * Everything on the evaluation hot path is an inline function here; the
 * patch files only call these at their hook sites.  Work done per frame
 * activation is a handful of loads and stores; nothing runs per instruction.
 */
#ifndef Py_INTERNAL_RETRACE_H
#define Py_INTERNAL_RETRACE_H

#ifndef Py_BUILD_CORE
#  error "this header requires Py_BUILD_CORE define"
#endif

#include "pycore_ceval.h"         // _Py_set_eval_breaker_bit()
#include "pycore_frame.h"
#include "pycore_interp.h"        // PyInterpreterState.retrace
#include "pycore_runtime.h"       // _PyRuntime
#include "pycore_pystate.h"       // _PyThreadState_GET()

#ifdef __cplusplus
extern "C" {
#endif

/* Eval-breaker bit used while a call_at target is armed for a thread. */
#define _PY_RETRACE_CALL_AT_BIT (1U << 7)

/* The few frame/thread accessors that differ between CPython series. */
#if PY_VERSION_HEX >= 0x030D0000
#  define _PyRetrace_INSTR(f) ((f)->instr_ptr)
#  define _PyRetrace_CODE(f) _PyFrame_GetCode(f)
#  define _PyRetrace_CURRENT_FRAME(t) ((t)->current_frame)
#else
#  define _PyRetrace_INSTR(f) ((f)->prev_instr)
#  define _PyRetrace_CODE(f) ((f)->f_code)
#  define _PyRetrace_CURRENT_FRAME(t) ((t)->cframe->current_frame)
#endif
#if PY_VERSION_HEX >= 0x030C0000
#  define _PyRetrace_IS_SHIM(f) ((f)->owner == FRAME_OWNED_BY_CSTACK)
#else
#  define _PyRetrace_IS_SHIM(f) 0
#endif

/* Is *f* a visible Python frame for coordinates? */
static inline int
_PyRetrace_FrameVisible(_PyInterpreterFrame *f)
{
    return !_PyRetrace_IS_SHIM(f) && f->retrace.gate != _PyRetrace_GATE_TRANSPARENT;
}

/* Instruction coordinate of a frame: code units since the code start plus
 * the bias accumulated by backward jumps. */
static inline uint64_t
_PyRetrace_FrameCoordinate(_PyInterpreterFrame *f)
{
    PyCodeObject *code = _PyRetrace_CODE(f);
    intptr_t units = (intptr_t)(_PyRetrace_INSTR(f) - _PyCode_CODE(code));
    return (uint64_t)(units + f->retrace.bias);
}

/* Position key of a frame: its instruction pointer moved on by the bias, so
 * it changes whenever the coordinate does (never a gate marker value). */
static inline uintptr_t
_PyRetrace_PositionKey(_PyInterpreterFrame *f)
{
    return (uintptr_t)_PyRetrace_INSTR(f)
        + (uintptr_t)f->retrace.bias * (uintptr_t)sizeof(_Py_CODEUNIT);
}

/* Was *frame* entered from C (rather than pushed by the eval loop)? 3.11 marks
 * such frames is_entry; 3.12+ put a C-stack shim frame below them instead,
 * whose gate is _PyRetrace_GATE_SHIM, so the fast path needs no test. */
#if PY_VERSION_HEX >= 0x030C0000
#  define _PyRetrace_ENTERED_FROM_C(f) 0
#else
#  define _PyRetrace_ENTERED_FROM_C(f) ((f)->is_entry)
#endif

PyAPI_FUNC(_PyInterpreterFrame *) _PyRetrace_VisibleParent(_PyInterpreterFrame *f);
PyAPI_FUNC(void) _PyRetrace_ActivateSlow(PyThreadState *tstate, _PyInterpreterFrame *frame);

/* Hook: a frame starts or resumes executing (RESUME and its variants).
 *
 * Fast path, taken by every call the eval loop makes itself from a visible
 * frame with no C-driven counting open (the caller's gate is CLEAN) into a
 * frame whose state is clean (ordinal 0: fresh frames are zeroed when pushed,
 * and every activation that leaves another ordinal behind, a transparent one
 * included, goes through the slow path): the child is the first child at the
 * caller's position (a position can hold at most one such call), so its
 * ordinal is 0, which it already holds; the caller remembers where that call
 * was so that a child entered from C at the same instruction later (a
 * finaliser run while the callee's frame is cleared) starts counting after
 * it.  The child's gate is left alone: a stale position key there can never
 * match again (coordinates only grow) and is reset by the first child.
 * Everything else (frames entered from C, transparent frames, positions with
 * C-driven children) goes to _PyRetrace_ActivateSlow(), kept out of line so
 * the eval loop's register allocation does not change. */
static inline void
_PyRetrace_Activate(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
    _PyInterpreterFrame *p = frame->previous;
    if (_PyRetrace_ENTERED_FROM_C(frame) || (p->retrace.gate | frame->retrace.ordinal) != 0) {
        _PyRetrace_ActivateSlow(tstate, frame);
        return;
    }
    p->retrace.last_call = (uint32_t)(uintptr_t)_PyRetrace_INSTR(p);
}

/* Hook: a backward jump of *units* code units inside *frame*. */
static inline void
_PyRetrace_BackJump(_PyInterpreterFrame *frame, intptr_t units)
{
    frame->retrace.bias += (int64_t)units;
}

/* Hook: control is transferred from *src* to *dest* inside *frame*
 * (exception handlers, instrumented jumps). */
static inline void
_PyRetrace_Jump(_PyInterpreterFrame *frame, _Py_CODEUNIT *src, _Py_CODEUNIT *dest)
{
    if (dest <= src) {
        _PyRetrace_BackJump(frame, (src - dest) + 1);
    }
}

/* JUMPBY(x) adapter (3.11, whose backward jumps share JUMPBY): returns x
 * after accounting for backward jumps. */
static inline int
_PyRetrace_JumpBy(_PyInterpreterFrame *frame, int x)
{
    if (x < 0) {
        _PyRetrace_BackJump(frame, -(intptr_t)x);
    }
    return x;
}

/* Visible frames of a thread, innermost first (shared by Python/retrace.c and
 * Modules/_retracemodule.c).  *small* holds up to *smallcap* frames; longer
 * chains are copied to a PyMem_RawMalloc'd array that _PyRetrace_FramesFree()
 * releases.  Returns the count, or -1 (no exception set) when out of memory. */
typedef struct {
    _PyInterpreterFrame **frames;
    Py_ssize_t count;
    _PyInterpreterFrame *small[64];
} _PyRetraceFrames;

PyAPI_FUNC(Py_ssize_t) _PyRetrace_CollectFrames(PyThreadState *tstate, _PyRetraceFrames *out);
PyAPI_FUNC(void) _PyRetrace_FramesFree(_PyRetraceFrames *fr);
/* The (ordinal, coordinate) words of fr->frames[i] (i = 0 is the innermost). */
PyAPI_FUNC(void) _PyRetrace_FrameWords(_PyRetraceFrames *fr, Py_ssize_t i, uint64_t pair[2]);
PyAPI_FUNC(int) _PyRetrace_CompareCoordinates(PyThreadState *tstate,
                                              const uint64_t *words, Py_ssize_t len);

/* Thread hooks (Python/retrace.c). */
PyAPI_FUNC(uint64_t) _PyRetrace_AssignThreadId(PyThreadState *tstate);

static inline uint64_t
_PyRetrace_ThreadId(PyThreadState *tstate)
{
    uint64_t id = tstate->retrace.thread_id;
    return id ? id : _PyRetrace_AssignThreadId(tstate);
}

/* For callers that hold HEAD_LOCK: never takes the lock; a thread without an
 * assigned id reports its OS ident. */
PyAPI_FUNC(uint64_t) _PyRetrace_ThreadIdNoLock(PyThreadState *tstate);
PyAPI_FUNC(uint64_t) _PyRetrace_MainThreadId(PyInterpreterState *interp);
/* RETRACE_ROOT_SEED as read at the first thread id, or NULL when unset. */
PyAPI_FUNC(const char *) _PyRetrace_RootSeed(void);
PyAPI_FUNC(void) _PyRetrace_InitChildThread(PyThreadState *parent, PyThreadState *child);
PyAPI_FUNC(void) _PyRetrace_ThreadStart(PyThreadState *tstate);
PyAPI_FUNC(void) _PyRetrace_ThreadYield(PyThreadState *tstate);
PyAPI_FUNC(void) _PyRetrace_ThreadResume(PyThreadState *tstate);
PyAPI_FUNC(int) _PyRetrace_CheckCallAt(PyThreadState *tstate);
PyAPI_FUNC(uint64_t) _PyRetrace_LocationHash(PyThreadState *tstate);

/* Bridge between OS idents (what CPython's C code keeps) and retrace ids
 * (what Python code sees).  Unknown values pass through unchanged. */
PyAPI_FUNC(void) _PyRetrace_SetNativeIdent(PyThreadState *tstate, unsigned long long native);
PyAPI_FUNC(uint64_t) _PyRetrace_IdentFromNative(PyInterpreterState *interp,
                                                unsigned long long native);
PyAPI_FUNC(unsigned long long) _PyRetrace_NativeFromIdent(PyInterpreterState *interp,
                                                          uint64_t ident);
/* Retrace id of the thread that is currently the process's main thread. */
PyAPI_FUNC(uint64_t) _PyRetrace_CurrentMainThreadId(PyInterpreterState *interp);

PyAPI_FUNC(void) _PyRetrace_InterpClear(PyInterpreterState *interp);
PyAPI_FUNC(void) _PyRetrace_InterpFree(PyInterpreterState *interp);

/* Deterministic identity hashes (object's default tp_hash).
 *
 * _PyRetrace_identity_live counts every live entry of the identity tables,
 * _PyRetrace_identity_objects those that are not type objects (types hashed
 * at startup, such as the ones registered with the ABCs, live as long as the
 * interpreter; 3.13+ forget dying types in type_dealloc instead). */
PyAPI_FUNC(Py_hash_t) _PyRetrace_IdentityHash(PyObject *op);
PyAPI_FUNC(void) _PyRetrace_ForgetIdentity(PyObject *op);
extern Py_ssize_t _PyRetrace_identity_live;
extern Py_ssize_t _PyRetrace_identity_objects;

/* Set in a type's tp_flags when an instance of it is first given an identity
 * hash, whichever way it was asked for: the default tp_hash, object.__hash__
 * called by a class that defines __hash__ (or after the class replaced its
 * __hash__), retrace.identity_hash().  Never cleared.  tp_flags is an
 * unsigned long, 64 bits on the (LP64) platforms the runtime supports; CPython
 * uses the low 32, and no flag is inherited unless typeobject.c copies it. */
#define _PyRetrace_TPFLAGS_IDENTITY (1UL << 40)

/* Hook in _Py_Dealloc and ceval.c's inlined Py_DECREF (3.11): drop the
 * identity hash of a dying object.  The type test comes first: instances of
 * the types none of whose instances ever had an identity hash (ints, strs,
 * tuples, lists, dicts, most classes) stop there. */
static inline void
_PyRetrace_OnDealloc(PyObject *op, PyTypeObject *type)
{
    if ((type->tp_flags & _PyRetrace_TPFLAGS_IDENTITY) && _PyRetrace_identity_live != 0) {
        _PyRetrace_ForgetIdentity(op);
    }
}

#if PY_VERSION_HEX >= 0x030D0000
PyAPI_FUNC(void) _PyRetrace_DeallocSlow(PyObject *op, PyTypeObject *type);

/* 3.13+: replaces _PyReftracerTrack(op, PyRefTracer_DESTROY) in _Py_Dealloc
 * and ceval.c's inlined Py_DECREF.  One test covers both the reference
 * tracer and the identity hashes: while no tracer is set and no object other
 * than a type holds an identity hash (the common case: the types hashed at
 * startup stay), a dying object costs one load and one OR more than vanilla,
 * and each Py_DECREF site of the eval loop holds one call instead of the
 * tracer's inlined one (_PyRetrace_DeallocSlow() runs the tracer first). */
static inline void
_PyRetrace_DeallocHooks(PyObject *op, PyTypeObject *type)
{
    if (((uintptr_t)_PyRuntime.ref_tracer.tracer_func
         | (uintptr_t)_PyRetrace_identity_objects) != 0) {
        _PyRetrace_DeallocSlow(op, type);
    }
}

/* Hook at the start of type_dealloc (3.13+): a dying type drops its identity
 * hash here, since _PyRetrace_DeallocHooks() only looks while other objects
 * hold one. */
static inline void
_PyRetrace_TypeDealloc(PyObject *type)
{
    if (_PyRetrace_identity_live != _PyRetrace_identity_objects) {
        _PyRetrace_ForgetIdentity(type);
    }
}
#endif

/* Make *tstate* reach _PyRetrace_CheckCallAt() at its next eval-breaker
 * check (3.13: a per-thread eval-breaker bit; 3.11: the interpreter-wide
 * eval_breaker, which the patched COMPUTE_EVAL_BREAKER keeps set while armed). */
static inline void
_PyRetrace_ArmThread(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030D0000
    _Py_set_eval_breaker_bit(tstate, _PY_RETRACE_CALL_AT_BIT);
#else
    _Py_atomic_store_relaxed(&tstate->interp->ceval.eval_breaker, 1);
#endif
}

static inline void
_PyRetrace_DisarmThread(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030D0000
    _Py_unset_eval_breaker_bit(tstate, _PY_RETRACE_CALL_AT_BIT);
#else
    (void)tstate;   /* recomputed by COMPUTE_EVAL_BREAKER */
#endif
}

/* Does the interpreter have a scheduling callback of either kind? */
static inline int
_PyRetrace_HasYieldHooks(PyInterpreterState *interp)
{
    return interp->retrace.thread_yield != NULL || interp->retrace.native_yield != NULL
        || interp->retrace.thread_resume != NULL || interp->retrace.native_resume != NULL;
}

#ifdef __cplusplus
}
#endif
#endif /* !Py_INTERNAL_RETRACE_H */
