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
    return !_PyRetrace_IS_SHIM(f)
        && (f->retrace.flags & _PyRetrace_FRAME_TRANSPARENT) == 0;
}

/* Instruction coordinate of a frame: code units since the code start plus
 * the bias accumulated by backward jumps. */
static inline uint64_t
_PyRetrace_FrameCoordinate(_PyInterpreterFrame *f)
{
    PyCodeObject *code = _PyRetrace_CODE(f);
    intptr_t bytes = (intptr_t)((char *)_PyRetrace_INSTR(f) - (char *)_PyCode_CODE(code));
    return (uint64_t)(bytes + f->retrace.bias) / sizeof(_Py_CODEUNIT);
}

PyAPI_FUNC(_PyInterpreterFrame *) _PyRetrace_VisibleParent(_PyInterpreterFrame *f);

/* Hook: a frame starts or resumes executing (RESUME and its variants). */
static inline void
_PyRetrace_Activate(PyThreadState *tstate, _PyInterpreterFrame *frame)
{
    _PyRetraceFrameState *rs = &frame->retrace;
    rs->last_ordinal = _PyRetrace_UNSET;
    if (tstate->retrace.transparent) {
        /* Control-plane frames never consume application ordinals. */
        rs->flags |= _PyRetrace_FRAME_TRANSPARENT;
        return;
    }
    rs->flags &= ~_PyRetrace_FRAME_TRANSPARENT;
    _PyInterpreterFrame *p = frame->previous;
    if (p == NULL || !_PyRetrace_FrameVisible(p)) {
        p = _PyRetrace_VisibleParent(p);
        if (p == NULL) {
            rs->ordinal = tstate->retrace.root_ordinal++;
            return;
        }
    }
    uintptr_t key = (uintptr_t)_PyRetrace_INSTR(p) + (uintptr_t)p->retrace.bias;
    if (key != p->retrace.child_key) {
        p->retrace.child_key = key;
        p->retrace.next_child = 0;
    }
    rs->ordinal = p->retrace.next_child++;
}

/* Hook: control moves backward by *units* code units inside *frame*. */
static inline void
_PyRetrace_BackJump(_PyInterpreterFrame *frame, intptr_t units)
{
    frame->retrace.bias += (int64_t)units * (int64_t)sizeof(_Py_CODEUNIT);
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

/* JUMPBY(x) adapter: returns x after accounting for backward jumps. */
static inline int
_PyRetrace_JumpBy(_PyInterpreterFrame *frame, int x)
{
    if (x < 0) {
        _PyRetrace_BackJump(frame, -(intptr_t)x);
    }
    return x;
}

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

/* Deterministic identity hashes (object's default tp_hash). */
PyAPI_FUNC(Py_hash_t) _PyRetrace_IdentityHash(PyObject *op);
PyAPI_FUNC(void) _PyRetrace_ForgetIdentity(PyObject *op);
extern Py_ssize_t _PyRetrace_identity_live;

/* Hook in _Py_Dealloc: drop the identity hash of a dying object. */
static inline void
_PyRetrace_OnDealloc(PyObject *op, PyTypeObject *type)
{
    if (_PyRetrace_identity_live != 0 && type->tp_hash == _PyRetrace_IdentityHash) {
        _PyRetrace_ForgetIdentity(op);
    }
}

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
