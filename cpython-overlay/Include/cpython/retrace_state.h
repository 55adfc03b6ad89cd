/* Retrace probe state carried by CPython's core structures.
 *
 * Each patched core type (frame, thread state, interpreter state) holds one
 * field named ``retrace`` of the matching type below.  Only this overlay header
 * defines their shape, so adding state does not touch the per-release patches.
 */
#ifndef Py_CPYTHON_RETRACE_STATE_H
#define Py_CPYTHON_RETRACE_STATE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Probe ABI of this overlay: bump when any structure or semantic changes. */
#define RETRACE_PROBE_ABI_VERSION 1
#define RETRACE_PROBE_ABI_NAME "retrace-probe-1"

/* Frame gate values below _PyRetrace_GATE_KEYS are markers; anything else is
 * a position key (see _PyRetraceFrameState.gate). */
#define _PyRetrace_GATE_CLEAN 0u        /* visible; no C-driven counting open */
#define _PyRetrace_GATE_TRANSPARENT 1u  /* excluded (control-plane) frame */
#define _PyRetrace_GATE_SHIM 2u         /* C-stack entry frame (3.12+) */
#define _PyRetrace_GATE_KEYS 4u

/* Ordinal left in a transparent frame: never read (the frame is invisible),
 * but non-zero, so that the frame's next activation cannot take the fast path
 * (which requires the frame's ordinal to be 0 already). */
#define _PyRetrace_ORDINAL_TRANSPARENT UINT64_MAX

/* Per-frame state: four words, zeroed when the frame is pushed.
 *
 * The fast path of a call (a Python frame pushed by its visible Python
 * caller) only reads the caller's ``gate`` and the child's ``ordinal`` (both
 * 0) and remembers the caller's instruction in ``last_call``.  Counting
 * children at one position happens only for frames entered from C (or after
 * such an entry, until the caller moves on); see _PyRetrace_Activate(). */
typedef struct _PyRetraceFrameState {
    uint64_t ordinal;          /* call ordinal of this activation */
    uintptr_t gate;            /* marker, or the position key at which next_child counts */
    int64_t bias;              /* code units added by backward jumps */
    uint32_t next_child;       /* ordinal handed to the next child at ``gate`` */
    uint32_t last_call;        /* low bits of the instruction of the last direct call */
} _PyRetraceFrameState;

#define _PyRetrace_FRAME_INIT(rs) do { \
        (rs)->ordinal = 0; \
        (rs)->gate = _PyRetrace_GATE_CLEAN; \
        (rs)->bias = 0; \
        (rs)->last_call = 0; \
    } while (0)

typedef struct _PyRetraceThreadState {
    uint64_t thread_id;        /* deterministic id; 0 until assigned */
    uint64_t root_ordinal;     /* ordinals of frames without a visible parent */
    uint64_t spawn_count;      /* threads started by this thread */
    uint64_t hash_count;       /* identity hashes handed out by this thread */
    uint64_t native_ident;     /* PyThread ident recorded at start */
    int transparent;           /* > 0 while control-plane code runs */
    int in_callback;           /* scheduling callback re-entrancy guard */
    int reserved[2];
} _PyRetraceThreadState;

struct _PyRetraceIdentityEntry {
    uintptr_t key;
    int64_t value;
};

typedef void (*_PyRetraceNativeCallback)(void *userdata, void *interp,
                                         void *tstate, uint64_t coordinate_hash);

typedef struct _PyRetraceInterpState {
    /* Python-level scheduling callbacks (strong references or NULL). */
    void *thread_start;
    void *thread_yield;
    void *thread_resume;
    /* Native scheduling callbacks registered through the capsule API. */
    _PyRetraceNativeCallback native_start;
    _PyRetraceNativeCallback native_yield;
    _PyRetraceNativeCallback native_resume;
    void *native_start_data;
    void *native_yield_data;
    void *native_resume_data;
    /* call_at target. */
    int call_at_armed;
    uint64_t call_at_thread;
    uint64_t *call_at_words;
    intptr_t call_at_len;
    void *call_at_callback;
    void *call_at_overshoot;
    /* Deterministic identity hashes: open addressing, pointer -> value. */
    struct _PyRetraceIdentityEntry *id_table;
    uintptr_t id_mask;
    uintptr_t id_used;
    uintptr_t id_objects;      /* entries whose object is not a type */
    uint64_t foreign_threads;
} _PyRetraceInterpState;

#ifdef __cplusplus
}
#endif
#endif /* !Py_CPYTHON_RETRACE_STATE_H */
